# What an R user of keras3 hit in their first hour, written as they wrote it:
# keras3's pipes, compile(), fit(), set_random_seed(), save_model(). Reruns
# and saving are checked in fresh R sessions (rscript(), helper-python.R).

test_that("integer inputs give float outputs, as keras3's layer_dense() does", {
  skip_if_no_python()
  layer <- layer_dense_flipout(units = 3)
  out <- layer(matrix(1:2, nrow = 1))  # an R integer matrix: int32 for Python
  expect_identical(out$dtype$name, "float32")
  expect_true(any(as.array(out) != 0))
  conv <- layer_conv_1d_flipout(filters = 2, kernel_size = 2)
  expect_identical(conv(array(1L, c(1, 4, 1)))$dtype$name, "float32")
})

test_that("predict_mc(classifier = TRUE) on logits says to pass from_logits = TRUE", {
  skip_if_no_python()
  model <- keras_model_sequential(input_shape = 4) |>
    layer_dense_flipout(units = 8, activation = "relu") |>
    layer_dense_flipout(units = 3)
  x <- matrix(rnorm(64, sd = 10), 16, 4)
  error <- tryCatch(predict_mc(model, x, n_samples = 5, classifier = TRUE), error = identity)
  expect_s3_class(error, "tfprobr_value_error")
  expect_match(conditionMessage(error), "needs class probabilities", fixed = TRUE)
  expect_match(conditionMessage(error), "pass `from_logits = TRUE`", fixed = TRUE)
  expect_match(conditionMessage(error), "Received: classifier=TRUE, from_logits=FALSE$")
  result <- predict_mc(model, x, n_samples = 5, classifier = TRUE, from_logits = TRUE)
  expect_true(all(result$mutual_information >= 0))
})

test_that("to_bayesian() without num_examples says why it is required", {
  skip_if_no_python()
  deterministic <- keras_model_sequential(input_shape = 8) |> layer_dense(units = 3)
  error <- tryCatch(to_bayesian(deterministic, estimator = "flipout"), error = identity)
  expect_s3_class(error, "tfprobr_type_error")
  expect_match(conditionMessage(error),
               "^`num_examples` is required: the number of training examples per epoch")
  expect_match(conditionMessage(error), "Received: num_examples=NULL$")
  expect_length(to_bayesian(deterministic, num_examples = 100)$layers, 1L)
})

test_that("a fn returning the wrong thing is named when the model is built", {
  skip_if_no_python()
  error <- tryCatch(
    keras_model_sequential(input_shape = 2) |>
      layer_dense_reparameterization(units = 3,
                                     kernel_divergence_fn = function(q, p, ignore) "kl"),
    error = identity
  )
  expect_s3_class(error, "tfprobr_type_error")
  expect_match(conditionMessage(error), "`kernel_divergence_fn` must return a number")
  vector_kl <- function(q, p, ignore) tf$ones(3L)
  error <- tryCatch(
    keras_model_sequential(input_shape = 2) |>
      layer_dense_reparameterization(units = 3, kernel_divergence_fn = vector_kl),
    error = identity
  )
  expect_match(conditionMessage(error), "must return one number \\(a scalar\\)")
})

test_that("predict_mc() repeats in 10 fresh R sessions with set_random_seed()", {
  skip_if_no_python()
  script <- c(
    "library(keras3); library(tfprobr)",
    "set_random_seed(1)",
    "x <- array(runif(16 * 6^3), c(16, 6, 6, 6, 1)); y <- runif(16)",
    "model <- keras_model_sequential(input_shape = c(6, 6, 6, 1)) |>",
    "  layer_conv_3d_reparameterization(filters = 4, kernel_size = 3, activation = 'relu') |>",
    "  layer_global_average_pooling_3d() |>",
    "  layer_dense_flipout(units = 1)",
    "compile(model, optimizer = 'adam', loss = 'mse')",
    "history <- fit(model, x, y, epochs = 2, verbose = 0)",
    "mc <- predict_mc(model, x, n_samples = 30, verbose = 0)",
    "cat('RESULT', sprintf('%.9g', tail(history$metrics$loss, 1)),",
    "    sprintf('%.9g', sum(predict(model, x, verbose = 0))),",
    "    sprintf('%.9g', sum(mc$mean)), sprintf('%.9g', sum(mc$stddev)), '\\n')"
  )
  results <- vapply(1:10, function(i) {
    output <- rscript(script)
    line <- grep("^RESULT", strsplit(output, "\n")[[1]], value = TRUE)
    expect_length(line, 1L)
    line[1]
  }, "")
  expect_length(unique(results), 1L)
})

test_that("saving a model that holds an R function: tfprobr's error, and no file left", {
  skip_if_no_python()
  directory <- tempfile("save-")
  dir.create(directory)
  on.exit(unlink(directory, recursive = TRUE), add = TRUE)
  path <- file.path(directory, "closure.keras")
  # In a fresh R session, as the user's script ran.
  output <- rscript(c(
    "library(keras3); library(tfprobr)",
    "model <- keras_model_sequential(input_shape = 2) |>",
    "  layer_dense_flipout(units = 3, kernel_divergence_fn = function(q, p, ignore) {",
    "    tfd_kl_divergence(q, p) / 100",
    "  })",
    sprintf("path <- %s", deparse(path)),
    "error <- tryCatch(save_model(model, path), error = identity)",
    "cat('CLASS', class(error), '\\n')",
    "cat('MESSAGE', conditionMessage(error), '\\n')",
    "cat('EXISTS', file.exists(path), length(list.files(dirname(path))), '\\n')",
    "good <- keras_model_sequential(input_shape = 2) |> layer_dense_flipout(units = 3)",
    "save_model(good, path)",
    "size <- file.size(path)",
    "again <- tryCatch(save_model(model, path, overwrite = TRUE), error = function(e) class(e)[1])",
    "cat('AGAIN', again, identical(file.size(path), size), length(load_model(path)$layers), '\\n')"
  ))
  lines <- strsplit(output, "\n")[[1]]
  classes <- strsplit(sub("^CLASS ", "", grep("^CLASS", lines, value = TRUE)), " ")[[1]]
  expect_identical(classes[1:2], c("tfprobr_type_error", "tfprobr_error"))
  message <- grep("^MESSAGE", lines, value = TRUE)
  expect_match(message, "^MESSAGE `kernel_divergence_fn` cannot be saved")
  expect_no_match(message, "py_last_error", fixed = TRUE)
  expect_no_match(message, "TypeError", fixed = TRUE)
  expect_match(output, "EXISTS FALSE 0", fixed = TRUE)  # no 0-byte file left behind
  # A good model saved there before is kept, and still loads.
  expect_match(output, "AGAIN tfprobr_type_error TRUE 1", fixed = TRUE)
})

test_that("messages speak R: NULL, numeric, TRUE, the value as R prints it", {
  skip_if_no_python()
  error <- tryCatch(layer_conv_3d_reparameterization(object = 42, filters = 2, kernel_size = 3),
                    error = identity)
  expect_match(conditionMessage(error), "^`object` must be NULL, ")
  expect_match(conditionMessage(error), "Received: object=42 of type numeric$")
  error <- tryCatch(layer_conv_3d_reparameterization(filters = 2, kernel_size = 3,
                                                     trainable = "yes"), error = identity)
  expect_match(conditionMessage(error), "must be TRUE or FALSE\\. Received: trainable=\"yes\"$")
  error <- tryCatch(layer_dense_flipout(units = 3, object = list(a = 1)), error = identity)
  expect_match(conditionMessage(error), "Received: object=list\\(a = 1\\) of type list$")
})

test_that("a misspelt argument gets 'did you mean'; an R fn's error names its argument", {
  skip_if_no_python()
  error <- tryCatch(layer_conv_3d_reparameterization(filters = 2, kernal_size = 3),
                    error = identity)
  expect_s3_class(error, "tfprobr_type_error")
  expect_identical(conditionMessage(error),
                   "Unknown argument `kernal_size`: did you mean `kernel_size`? Received: kernal_size=3")
  # Without a misspelling, a required argument left out is still named.
  expect_error(layer_conv_3d_reparameterization(filters = 2),
               "^`kernel_size` is required: a positive integer or a vector of 1 or 3 positive integers\\.$")
  # An error inside the user's own R function names the fn argument it was given as.
  broken <- function(q, p, ignore) tf_undefined$reduce_sum(q)  # `tf_undefined` does not exist
  error <- tryCatch(
    keras_model_sequential(input_shape = 2) |>
      layer_dense_flipout(units = 3, kernel_divergence_fn = broken),
    error = identity
  )
  expect_match(conditionMessage(error),
               "`kernel_divergence_fn` (an R function) failed: object 'tf_undefined' not found",
               fixed = TRUE)
})

test_that("calibration() and wrong_predictions() take a factor: level order is class order", {
  skip_if_no_python()
  probabilities <- rbind(c(0.9, 0.1, 0), c(0.2, 0.7, 0.1), c(0.1, 0.1, 0.8), c(0.5, 0.4, 0.1))
  labels <- factor(c("grey", "white", "other", "white"), levels = c("grey", "white", "other"))
  expect_identical(wrong_predictions(probabilities, labels), c(FALSE, FALSE, FALSE, TRUE))
  expect_identical(wrong_predictions(probabilities, labels),
                   wrong_predictions(probabilities, c(0L, 1L, 2L, 1L)))
  expect_equal(calibration(probabilities, labels, n_bins = 4)$ece,
               calibration(probabilities, c(0L, 1L, 2L, 1L), n_bins = 4)$ece)
})

test_that("predict_mc()'s progress: one plain line in a log, nothing under testthat", {
  skip_if_no_python()
  output <- rscript(c(
    "library(keras3); library(tfprobr)",
    "model <- keras_model_sequential(input_shape = 4) |> layer_dense_flipout(units = 3)",
    "invisible(predict_mc(model, matrix(1, 100, 4), n_samples = 5, batch_size = 10))",
    "cat('DONE\\n')"
  ), env = c(TESTTHAT = NA))  # a script run on its own, its output going to a log
  lines <- strsplit(output, "\n")[[1]]
  progress <- grep("predict_mc", lines, value = TRUE)
  expect_length(progress, 1L)
  expect_match(progress, "^predict_mc: 10 batches, 100 examples, 5 samples each in ")
  expect_false(grepl("\r", output, fixed = TRUE) || grepl("\033", output, fixed = TRUE))
  # Here (TESTTHAT=true), "auto" is silent, as keras3's fit() is.
  model <- keras_model_sequential(input_shape = 4) |> layer_dense_flipout(units = 3)
  expect_silent(predict_mc(model, matrix(1, 100, 4), n_samples = 2, batch_size = 10))
})

test_that("predict_mc() takes a TensorFlow dataset and ignores its labels", {
  skip_if_no_python()
  model <- keras_model_sequential(input_shape = 4) |>
    layer_dense_flipout(units = 3) |>
    layer_activation_softmax()
  x <- matrix(rnorm(40), 10, 4)
  y <- rep(0:2, length.out = 10)
  # (x, y) pairs, as a keras3 user builds them for fit().
  features <- reticulate::np_array(x, dtype = "float32")
  dataset <- tf$data$Dataset$from_tensor_slices(reticulate::tuple(features, y))$batch(4L)
  from_dataset <- predict_mc(model, dataset, n_samples = 6, seed = 2, classifier = TRUE)
  from_arrays <- predict_mc(model, x, n_samples = 6, seed = 2, batch_size = 4, classifier = TRUE)
  expect_equal(from_dataset$mean, from_arrays$mean, tolerance = 1e-6)
  expect_equal(from_dataset$mutual_information, from_arrays$mutual_information, tolerance = 1e-6)
})
