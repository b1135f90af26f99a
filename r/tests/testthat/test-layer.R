test_that("missing or NULL object gives the layer, with the spec's defaults", {
  skip_if_no_python()
  layer <- layer_conv_3d_reparameterization(filters = 4, kernel_size = 3)
  expect_true(inherits(layer, "tfprobr_bridge.layers.conv.Conv3DReparameterization"))
  expect_equal(layer$filters, 4L)
  expect_equal(unlist(layer$kernel_size), c(3L, 3L, 3L))
  expect_equal(unlist(layer$strides), c(1L, 1L, 1L))
  expect_equal(layer$padding, "valid")
  expect_equal(layer$data_format, "channels_last")
  expect_true(layer$trainable)
  bridge <- bridge_module()
  # Defaults left alone become the serialisable Python equivalents.
  expect_true(reticulate::import_builtins()$isinstance(
    layer$kernel_posterior_fn, bridge$MeanFieldNormal))
  expect_null(layer$bias_prior_fn)

  null_layer <- layer_conv_3d_reparameterization(NULL, filters = 2, kernel_size = c(1, 2, 3))
  expect_equal(unlist(null_layer$kernel_size), 1:3)
})

test_that("a stack gives a new stack, with %>% and |>", {
  skip_if_no_python()
  empty <- layer_stack(input_shape = c(6, 6, 6, 1))
  one <- empty %>% layer_conv_3d_reparameterization(filters = 2, kernel_size = 3)
  two <- one |> layer_conv_3d_reparameterization(filters = 3, kernel_size = 1, padding = "SAME")
  expect_equal(length(empty), 0L)
  expect_equal(length(one), 1L)
  expect_equal(length(two), 2L)
  model <- as_keras_model(two)
  expect_equal(unlist(model$output_shape), c(4L, 4L, 4L, 3L))
  printed <- paste(capture.output(print(two)), collapse = "\n")
  expect_match(printed, "LayerStack(input_shape=(6, 6, 6, 1), name=None) with 2 layer(s):", fixed = TRUE)
  expect_match(printed, "1: Conv3DReparameterization '.*' \\(filters=3, kernel_size=\\(1, 1, 1\\)")
})

test_that("a Sequential model gets the layer added and is returned", {
  skip_if_no_python()
  model <- keras_model_sequential(input_shape = c(6, 6, 6, 1))
  returned <- model %>% layer_conv_3d_reparameterization(filters = 2, kernel_size = 3)
  expect_identical(reticulate::py_id(returned), reticulate::py_id(model))
  expect_equal(length(model$layers), 1L)
  expect_equal(unlist(model$output_shape), c(4L, 4L, 4L, 2L))
  # keras3's layers continue the pipe on the same model.
  model |> layer_global_average_pooling_3d() |> layer_dense(3)
  expect_equal(length(model$layers), 3L)
  expect_equal(dim(predict(model, volumes(2), verbose = 0)), c(2L, 3L))
})

test_that("a tensor, symbolic or eager, or an R array gives the output", {
  skip_if_no_python()
  inputs <- keras_input(shape = c(6, 6, 6, 1))
  outputs <- inputs %>% layer_conv_3d_reparameterization(filters = 2, kernel_size = 3)
  expect_true(inherits(outputs, "keras.src.backend.common.keras_tensor.KerasTensor"))
  expect_equal(unlist(outputs$shape), c(4L, 4L, 4L, 2L))
  model <- keras_model(inputs, outputs |> layer_global_average_pooling_3d())
  expect_equal(dim(predict(model, volumes(2), verbose = 0)), c(2L, 2L))

  from_array <- volumes(2) %>% layer_conv_3d_reparameterization(filters = 3, kernel_size = 3)
  expect_equal(dim(from_array), c(2L, 4L, 4L, 4L, 3L))
  tensor <- tf$ones(c(1L, 5L, 5L, 5L, 2L))
  from_tensor <- layer_conv_3d_reparameterization(tensor, filters = 1, kernel_size = 2)
  expect_equal(dim(from_tensor), c(1L, 4L, 4L, 4L, 1L))
})

test_that("input_shape in ... starts a model, as tfprobability users pass it", {
  skip_if_no_python()
  model <- keras_model_sequential() %>%
    layer_conv_3d_reparameterization(filters = 2, kernel_size = 3, input_shape = c(8, 8, 8, 1))
  expect_equal(unlist(model$output_shape), c(6L, 6L, 6L, 2L))
  named <- layer_conv_3d_reparameterization(filters = 2, kernel_size = 3, name = "bayes")
  expect_equal(named$name, "bayes")
})

test_that("the legacy path gives TFP's own class to tf_keras objects", {
  skip_if_no_python()
  tf_keras <- reticulate::import("tf_keras")
  model <- tf_keras$Sequential(list(tf_keras$layers$InputLayer(input_shape = c(5L, 5L, 5L, 1L))))
  model %>% layer_conv_3d_reparameterization(filters = 2, kernel_size = 2)
  expect_true(inherits(model$layers[[1]],
                       "tensorflow_probability.python.layers.conv_variational.Conv3DReparameterization"))
  inputs <- tf_keras$Input(shape = c(5L, 5L, 5L, 1L))
  outputs <- layer_conv_3d_reparameterization(inputs, filters = 2, kernel_size = 2)
  expect_equal(outputs$shape$as_list()[-1], list(4L, 4L, 4L, 2L))
})

test_that("the spec's default expressions evaluate and run as written", {
  skip_if_no_python()
  defaults <- formals(layer_conv_3d_reparameterization)
  env <- asNamespace("tfprobr")
  posterior_fn <- eval(defaults$kernel_posterior_fn, env)
  prior_fn <- eval(defaults$kernel_prior_fn, env)
  bias_fn <- eval(defaults$bias_posterior_fn, env)
  tensor_fn <- eval(defaults$kernel_posterior_tensor_fn, env)
  divergence_fn <- eval(defaults$kernel_divergence_fn, env)
  layer <- layer_conv_3d_reparameterization(
    filters = 2, kernel_size = 2,
    kernel_posterior_fn = posterior_fn, kernel_prior_fn = prior_fn,
    bias_posterior_fn = bias_fn, kernel_posterior_tensor_fn = tensor_fn,
    bias_posterior_tensor_fn = tensor_fn, kernel_divergence_fn = divergence_fn
  )
  out <- layer(volumes(1, 3))
  expect_equal(dim(out), c(1L, 2L, 2L, 2L, 2L))
  expect_equal(length(layer$losses), 1L)
  expect_gt(as.numeric(layer$losses[[1]]), 0)
})
