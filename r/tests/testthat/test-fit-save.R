test_that("fit from R trains every posterior variable", {
  skip_if_no_python()
  n <- 16
  model <- layer_stack(input_shape = c(6, 6, 6, 1)) %>%
    layer_conv_3d_reparameterization(filters = 4, kernel_size = 3, activation = "relu") |>
    add_layer(keras$layers$GlobalAveragePooling3D()) |>
    add_layer(keras$layers$Dense(1L)) |>
    as_keras_model()
  model$compile(optimizer = keras$optimizers$Adam(0.01), loss = "mse")
  bayes <- model$layers[[1]]
  before <- lapply(bayes$weights, function(w) w$numpy())
  history <- model$fit(volumes(n), matrix(1, n, 1), epochs = 3L, batch_size = 8L, verbose = 0L)
  after <- lapply(bayes$weights, function(w) w$numpy())
  expect_length(before, 3L)
  for (i in seq_along(before)) {
    expect_false(isTRUE(all.equal(before[[i]], after[[i]])), label = bayes$weights[[i]]$name)
  }
  expect_true(all(is.finite(unlist(history$history$loss))))
})

test_that("a model with the default fns saves and loads from R", {
  skip_if_no_python()
  model <- flat_model()
  train_flat_model(model)
  path <- tempfile(fileext = ".keras")
  model$save(path)
  loaded <- keras$models$load_model(path)
  original <- model$get_layer("bayes")$weights
  restored <- loaded$get_layer("bayes")$weights
  expect_length(restored, 3L)
  for (i in seq_along(original)) {
    expect_identical(restored[[i]]$numpy(), original[[i]]$numpy())
  }
  loaded(volumes(1, 5))
  expect_equal(length(loaded$losses), 1L)
})

test_that("saving a model that holds an R closure fails with an R error naming the fn", {
  skip_if_no_python()
  model <- layer_stack(input_shape = c(4, 4, 4, 1)) %>%
    layer_conv_3d_reparameterization(
      filters = 2, kernel_size = 2,
      kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p) / 10
    ) |>
    as_keras_model()
  path <- tempfile(fileext = ".keras")
  expect_error(model$save(path), "kernel_divergence_fn")
})

test_that("rstudio/tfprobability's own conv_3d test passes on Keras 3", {
  skip_if_no_python()
  tf <- reticulate::import("tensorflow")
  x <- tf$ones(shape = c(7L, 16L, 4L, 4L, 3L))
  y <- tf$ones(shape = c(7L, 10L))
  n <- tf$cast(7L, tf$float32)
  kl_div <- function(q, p, unused) tfd_kl_divergence(q, p) / n
  model <- keras$Sequential(list(keras$Input(shape = c(16L, 4L, 4L, 3L)))) %>%
    layer_conv_3d_reparameterization(
      filters = 64, kernel_size = 5, padding = "same", activation = "relu",
      kernel_divergence_fn = kl_div
    ) %>%
    add_layer(keras$layers$MaxPooling3D()) %>%
    add_layer(keras$layers$Flatten()) %>%
    add_layer(keras$layers$Dense(units = 10L))
  model$compile(optimizer = "adam", loss = "mse")
  model$fit(x, y, steps_per_epoch = 1L, verbose = 0L)
  yhat <- model(x)
  expect_equal(unlist(yhat$shape$as_list()), c(7L, 10L))
  expect_equal(length(model$losses), 1L)
})
