# Reliability from R: strategy scopes, seeds, hostile input, resources, faults.

rscript_lines <- function(code, env = character()) {
  script <- tempfile(fileext = ".R")
  writeLines(code, script)
  suppressWarnings(system2(
    file.path(R.home("bin"), "Rscript"), c("--vanilla", script),
    stdout = TRUE, stderr = TRUE, env = env
  ))
}

test_that("a model trained in a strategy scope saves, and loads outside and inside it", {
  skip_if_no_python()
  tf <- reticulate::import("tensorflow")
  strategy <- tf$distribute$MirroredStrategy()
  with(strategy$scope(), {
    model <- layer_stack(input_shape = c(5, 5, 5, 1)) %>%
      layer_conv_3d_reparameterization(filters = 2, kernel_size = 2, name = "bayes") |>
      add_layer(keras$layers$Flatten()) |>
      as_keras_model()
    model$compile(optimizer = "adam", loss = "mse")
  })
  model$fit(volumes(4, 5), matrix(0, 4, 4^3 * 2), epochs = 1L, verbose = 0L)
  path <- tempfile(fileext = ".keras")
  with(strategy$scope(), model$save(path))
  outside <- keras$models$load_model(path)
  with(strategy$scope(), inside <- keras$models$load_model(path))
  original <- lapply(model$get_layer("bayes")$weights, function(w) w$numpy())
  for (loaded in list(outside, inside)) {
    restored <- lapply(loaded$get_layer("bayes")$weights, function(w) w$numpy())
    expect_identical(restored, original)
  }
  is_mirrored <- function(w) inherits(w$value, "tensorflow.python.distribute.values.DistributedValues")
  expect_true(all(vapply(inside$get_layer("bayes")$weights, is_mirrored, TRUE)))
  expect_false(any(vapply(outside$get_layer("bayes")$weights, is_mirrored, TRUE)))
  inside$fit(volumes(4, 5), matrix(0, 4, 4^3 * 2), epochs = 1L, verbose = 0L)
  after <- lapply(inside$get_layer("bayes")$weights, function(w) w$numpy())
  expect_false(isTRUE(all.equal(after, original)))
})

test_that("set_random_seed() seeds R and Python, and checks its argument", {
  skip_if_no_python()
  draw <- function() {
    set_random_seed(11)
    layer <- layer_conv_3d_reparameterization(filters = 2, kernel_size = 2)
    list(r = stats::runif(3), py = layer(array(1, c(1, 3, 3, 3, 1)))$numpy())
  }
  expect_identical(draw(), draw())
  for (bad in list(-1, 1.5, NA, "1", c(1, 2), 2^40, NULL)) {
    expect_error(set_random_seed(bad), "`seed` must be a whole number", class = "tfprobr_error")
  }
})

test_that("set_random_seed() gives bit-identical runs in two fresh R sessions", {
  skip_if_no_python()
  script <- c(
    "suppressMessages(library(tfprobr))",
    "set_random_seed(123)",
    "x <- array(runif(16 * 6^3), c(16, 6, 6, 6, 1))",
    "y <- array(runif(16), c(16, 1))",
    "model <- layer_stack(input_shape = c(6, 6, 6, 1)) |>",
    "  layer_conv_3d_reparameterization(filters = 3, kernel_size = 3, activation = 'relu') |>",
    "  add_layer(keras$layers$GlobalAveragePooling3D()) |>",
    "  add_layer(keras$layers$Dense(1L)) |>",
    "  as_keras_model()",
    "model$compile(optimizer = 'adam', loss = 'mse')",
    "outputs <- as.vector(model(x)$numpy())",
    "kl <- model$losses[[1]]$numpy()",
    "losses <- unlist(model$fit(x, y, epochs = 3L, batch_size = 8L, verbose = 0L)$history$loss)",
    "cat('RUN', sprintf('%a', c(outputs, kl, losses)), '\\n')",
    "cat('COUNTS', length(outputs), length(kl), length(losses), '\\n')"
  )
  runs <- lapply(1:2, function(i) {
    output <- rscript_lines(script)
    list(values = grep("^RUN", output, value = TRUE), counts = grep("^COUNTS", output, value = TRUE),
         output = output)
  })
  expect_length(runs[[1]]$values, 1L)
  expect_identical(runs[[1]]$counts, "COUNTS 16 1 3 ")
  expect_identical(runs[[1]]$values, runs[[2]]$values)
})
