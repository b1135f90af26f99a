# predict_volume() and segment_nifti() from R, as a keras3 user writes them.
# The NIfTI files are written and read back with Python's nibabel through
# reticulate: segment_nifti() needs no R NIfTI package.

segmenter <- function(size = 8) {
  keras_model_sequential(input_shape = c(size, size, size, 1)) |>
    layer_conv_3d_reparameterization(filters = 4, kernel_size = 3, padding = "same",
                                     activation = "relu") |>
    layer_conv_3d_reparameterization(filters = 3, kernel_size = 3, padding = "same") |>
    layer_activation_softmax()
}

test_that("predict_volume() gives maps shaped like the volume, and refuses a deterministic net", {
  skip_if_no_python()
  volume <- array(runif(11 * 9 * 10), c(11, 9, 10))
  result <- predict_volume(segmenter(), volume, n_samples = 4, seed = 1)
  expect_equal(dim(result$probabilities), c(11, 9, 10, 3))
  expect_equal(dim(result$labels), c(11, 9, 10))
  expect_true(all(result$labels %in% 0:2))
  expect_equal(apply(result$probabilities, 1:3, sum), array(1, c(11, 9, 10)), tolerance = 1e-5)
  expect_true(all(result$mutual_information >= 0))
  expect_true(all(result$mutual_information <= result$predictive_entropy + 1e-6))
  expect_equal(dim(result$draw_volumes), c(4, 3))
  again <- predict_volume(segmenter(), volume, n_samples = 2, seed = 1, overlap = c(0, 0.5, 0.25),
                          blend = "constant")
  expect_equal(dim(again$std), c(11, 9, 10, 3))
  deterministic <- keras_model_sequential(input_shape = c(8, 8, 8, 1)) |>
    layer_conv_3d(filters = 2, kernel_size = 1) |>
    layer_activation_softmax()
  error <- tryCatch(predict_volume(deterministic, volume, n_samples = 5), error = identity)
  expect_s3_class(error, "tfprobr_value_error")
  expect_match(conditionMessage(error), "draws are all the same")
  expect_error(predict_volume(segmenter(), volume, overlap = 1), "`overlap` must be a number in \\[0, 1\\)")
})

test_that("segment_nifti() on a file: outputs in the scan's own space, and a summary", {
  skip_if_no_python()
  nibabel <- reticulate::import("nibabel")
  np <- reticulate::import("numpy", convert = FALSE)
  directory <- tempfile("nifti-")
  dir.create(directory)
  on.exit(unlink(directory, recursive = TRUE), add = TRUE)
  scan <- file.path(directory, "subject.nii.gz")
  affine <- diag(c(1.5, 1.2, 2, 1))
  affine[1:3, 4] <- c(-30, 10, 5)
  image <- nibabel$Nifti1Image(np$array(array(rnorm(13 * 11 * 9, 100, 20), c(13, 11, 9)),
                                        dtype = "float32"), affine)
  nibabel$save(image, scan)

  model_path <- file.path(directory, "segmenter.keras")
  saved <- save_segmenter(segmenter(), model_path, voxel_spacing = 2, normalization = "zscore",
                          class_names = c("other", "grey", "white"))
  expect_equal(unlist(saved$voxel_spacing_mm), c(2, 2, 2))

  results <- segment_nifti(model_path, scan, file.path(directory, "out"), n_samples = 3, seed = 2)
  expect_length(results, 1L)
  expect_identical(results[[1]]$status, "done")
  outputs <- results[[1]]$outputs
  expect_setequal(names(outputs), c("labels", "probabilities", "std", "predictive_entropy",
                                    "expected_entropy", "mutual_information", "summary"))
  expect_true(all(file.exists(unlist(outputs))))
  labels <- nibabel$load(outputs$labels)
  expect_equal(unlist(labels$shape), c(13, 11, 9))
  expect_equal(labels$affine, affine, tolerance = 1e-6)  # the header holds float32
  probabilities <- nibabel$load(outputs$probabilities)
  expect_equal(unlist(probabilities$shape), c(13, 11, 9, 3))
  summary <- jsonlite::fromJSON(outputs$summary)
  expect_identical(names(summary$classes), c("other", "grey", "white"))
  total <- sum(vapply(summary$classes, function(c) c$volume_ml, 1))
  expect_equal(total, 13 * 11 * 9 * 1.5 * 1.2 * 2 / 1000, tolerance = 1e-3)
  expect_equal(results[[1]]$summary$n_samples, 3L)

  # A second call leaves the outputs as they are, and says so; a bad option is an R error.
  again <- segment_nifti(model_path, scan, file.path(directory, "out"), n_samples = 2)
  expect_identical(again[[1]]$status, "failed")
  expect_match(again[[1]]$error, "outputs exist")
  expect_error(segment_nifti(model_path, scan, file.path(directory, "out"), blend = "median"),
               "`blend` must be \"gaussian\" or \"constant\"")
})
