test_that("predict_mc returns R arrays of the mean and standard deviation", {
  skip_if_no_python()
  model <- keras_model_sequential(input_shape = c(4, 4, 4, 1)) |>
    layer_conv_3d_reparameterization(filters = 2, kernel_size = 3, padding = "same")
  result <- predict_mc(model, volumes(3, 4), n_samples = 20, batch_size = 2)
  expect_equal(dim(result$mean), c(3L, 4L, 4L, 4L, 2L))
  expect_equal(dim(result$stddev), c(3L, 4L, 4L, 4L, 2L))
  expect_true(all(result$stddev >= 0) && any(result$stddev > 0))
  kept <- predict_mc(model, volumes(2, 4), n_samples = 5, return_samples = TRUE)
  expect_equal(dim(kept$samples), c(5L, 2L, 4L, 4L, 4L, 2L))
  expect_equal(kept$mean, apply(kept$samples, 2:6, mean), tolerance = 1e-5)
  expect_error(predict_mc(model, volumes(1, 4), n_samples = 0), "^`n_samples` must be a positive integer\\. Received: n_samples=0$")
})

test_that("scaled_kl_divergence_fn divides the KL and saves with the model", {
  skip_if_no_python()
  model <- keras_model_sequential(input_shape = c(4, 4, 4, 1)) |>
    layer_conv_3d_reparameterization(filters = 2, kernel_size = 3,
                                      kernel_divergence_fn = scaled_kl_divergence_fn(500),
                                      name = "bayes")
  model(volumes(1, 4))
  layer <- get_layer(model, "bayes")
  full <- as.numeric(tfd_kl_divergence(layer$kernel_posterior, layer$kernel_prior))
  expect_equal(as.numeric(model$losses[[1]]), full / 500, tolerance = 1e-6)
  path <- tempfile(fileext = ".keras")
  save_model(model, path)
  loaded <- load_model(path)
  loaded(volumes(1, 4))
  expect_equal(as.numeric(loaded$losses[[1]]), full / 500, tolerance = 1e-6)
  expect_error(scaled_kl_divergence_fn(0), "`num_examples` must be a positive number")
  expect_error(scaled_kl_divergence_fn("a"), "`num_examples` must be a positive number")
})

test_that("load_mni152_tissue gives the labelled template as R arrays", {
  skip_if_no_python()
  mri <- load_mni152_tissue(downsample = 6)
  expect_equal(dim(mri$t1), c(32L, 38L, 31L))
  expect_equal(dim(mri$labels), dim(mri$t1))
  expect_setequal(unique(as.vector(mri$labels)), 0:2)
  expect_equal(mri$tissues, c("other", "grey", "white"))
  expect_true(all(mri$t1 >= 0 & mri$t1 <= 1))
  # White matter is brighter than grey matter on a T1-weighted image.
  expect_gt(mean(mri$t1[mri$labels == 2]), mean(mri$t1[mri$labels == 1]))
})
