bad_inputs <- list(
  # list(arguments, pattern the R error must match)
  list(list(filters = 0, kernel_size = 3), "`filters` must be a positive whole number. Received: filters=0"),
  list(list(filters = -2, kernel_size = 3), "`filters` .*Received: filters=-2"),
  list(list(filters = 2.5, kernel_size = 3), "`filters` .*Received: filters=2.5"),
  list(list(filters = NA, kernel_size = 3), "`filters` .*Received: filters=NA"),
  list(list(filters = "8", kernel_size = 3), "`filters` .*Received: filters=\"8\""),
  list(list(filters = TRUE, kernel_size = 3), "`filters` .*Received: filters=TRUE"),
  list(list(filters = c(2, 3), kernel_size = 3), "`filters` .*Received: filters=c\\(2, 3\\)"),
  list(list(filters = 3e22, kernel_size = 3), "`filters` must be a positive whole number. Received: filters=3e\\+22"),
  list(list(filters = 2, kernel_size = 3, strides = 2^31), "`strides` .*Received: strides=2147483648"),
  list(list(filters = 2), "`kernel_size` must be supplied"),
  list(list(kernel_size = 3), "`filters` must be supplied"),
  list(list(filters = 2, kernel_size = c(3, 3)), "`kernel_size` must be a positive whole number or a vector of 1 or 3 positive whole numbers. Received: kernel_size=c\\(3, 3\\)"),
  list(list(filters = 2, kernel_size = c(3, NA, 3)), "`kernel_size` .*Received: kernel_size=c\\(3, NA, 3\\)"),
  list(list(filters = 2, kernel_size = "3"), "`kernel_size` .*Received: kernel_size=\"3\""),
  list(list(filters = 2, kernel_size = 0), "`kernel_size` .*Received: kernel_size=0"),
  list(list(filters = 2, kernel_size = 3, strides = c(1, -1, 1)), "`strides` .*Received: strides=c\\(1, -1, 1\\)"),
  list(list(filters = 2, kernel_size = 3, dilation_rate = 1.5), "`dilation_rate` .*Received: dilation_rate=1.5"),
  list(list(filters = 2, kernel_size = 3, strides = 2, dilation_rate = 2), "`strides` > 1 cannot be combined with `dilation_rate` > 1"),
  list(list(filters = 2, kernel_size = 3, padding = "causal"), "`padding` must be one of \"valid\" or \"same\" \\(\"causal\" padding exists only for 1-D convolutions\\)"),
  list(list(filters = 2, kernel_size = 3, padding = 1), "`padding` must be one of \"valid\" or \"same\". Received: padding=1"),
  list(list(filters = 2, kernel_size = 3, data_format = "NDHWC"), "`data_format` must be one of \"channels_last\" or \"channels_first\". Received: data_format='NDHWC'"),
  list(list(filters = 2, kernel_size = 3, activation = "relux"), "`activation` must be the name of a Keras activation"),
  list(list(filters = 2, kernel_size = 3, trainable = "yes"), "`trainable` must be TRUE or FALSE. Received: trainable=\"yes\""),
  list(list(filters = 2, kernel_size = 3, trainable = NA), "`trainable` must be TRUE or FALSE. Received: trainable=NA"),
  list(list(filters = 2, kernel_size = 3, kernel_posterior_fn = NULL), "`kernel_posterior_fn` must be a function \\(an R function or a Python callable\\). Received: kernel_posterior_fn=NULL"),
  list(list(filters = 2, kernel_size = 3, kernel_posterior_tensor_fn = "sample"), "`kernel_posterior_tensor_fn` must be a function"),
  list(list(filters = 2, kernel_size = 3, kernel_prior_fn = 1), "`kernel_prior_fn` must be a function \\(an R function or a Python callable\\) or NULL. Received: kernel_prior_fn=1"),
  list(list(filters = 2, kernel_size = 3, kernel_divergence_fn = list()), "`kernel_divergence_fn` must be a function"),
  list(list(filters = 2, kernel_size = 3, bias_posterior_fn = "normal"), "`bias_posterior_fn` must be a function"),
  list(list(filters = 2, kernel_size = 3, bias_posterior_tensor_fn = 0), "`bias_posterior_tensor_fn` must be a function"),
  list(list(filters = 2, kernel_size = 3, bias_prior_fn = TRUE), "`bias_prior_fn` must be a function"),
  list(list(filters = 2, kernel_size = 3, bias_divergence_fn = "kl"), "`bias_divergence_fn` must be a function"),
  list(list(filters = 2, kernel_size = 3, input_shape = c(8, 0, 8, 1)), "`input_shape` must be a vector of positive whole numbers \\(NA for an unknown size\\). Received: input_shape=c\\(8, 0, 8, 1\\)"),
  list(list(filters = 2, kernel_size = 3, name = 3), "`name` must be a string or None. Received: name=3"),
  list(list("model", filters = 2, kernel_size = 3), "`object` must be None, a LayerStack, a keras.Sequential model.*Received: object='model' of type str"),
  list(list(5, filters = 2, kernel_size = 3), "`object` must be None, .*Received: object=5.0 of type float"),
  list(list(filters = 2, kernel_size = 3, unknown_argument = 1), "Unrecognized keyword arguments .*unknown_argument")
)

test_that("at least 20 bad inputs each give one-line R errors naming the argument", {
  skip_if_no_python()
  expect_gte(length(bad_inputs), 20L)
  for (case in bad_inputs) {
    error <- tryCatch(do.call(layer_conv_3d_reparameterization, case[[1]]),
                      error = identity)
    expect_s3_class(error, "tfprobr_error")
    expect_match(conditionMessage(error), case[[2]], perl = TRUE)
    expect_false(grepl("Traceback|File \"", conditionMessage(error)))
    expect_false(grepl("\n", conditionMessage(error), fixed = TRUE))
  }
  # The session is still usable.
  layer <- layer_conv_3d_reparameterization(filters = 2, kernel_size = 3)
  expect_equal(layer$filters, 2L)
})

test_that("build-time errors reach R in the same form and leave the model unchanged", {
  skip_if_no_python()
  model <- keras$Sequential(list(keras$Input(shape = c(2L, 8L, 8L, 1L))))
  error <- tryCatch(model %>% layer_conv_3d_reparameterization(filters = 2, kernel_size = 3),
                    error = identity)
  expect_s3_class(error, "tfprobr_value_error")
  expect_match(conditionMessage(error), "larger than the input \\(2\\) with padding=\"valid\"")
  expect_equal(length(model$layers), 0L)
  error <- tryCatch(array(0, c(1, 4, 4, 1)) %>%
                      layer_conv_3d_reparameterization(filters = 2, kernel_size = 1),
                    error = identity)
  expect_s3_class(error, "tfprobr_value_error")
  expect_match(conditionMessage(error), "expected ndim=5, found ndim=4")
})

test_that("the composition helpers check their arguments in R", {
  skip_if_no_python()
  expect_error(add_layer(layer_stack(), "dense"), "`layer` must be a Keras 3 layer")
  expect_error(as_keras_model(42), "`object` must be a layer stack")
  expect_error(layer_stack(input_shape = "a"), "`input_shape` must be a vector")
  expect_error(layer_stack(name = 1), "`name` must be a string or NULL")
  expect_error(tfd_sample(tfp$distributions$Normal(0, 1), sample_shape = -1),
               "`sample_shape` must be")
})
