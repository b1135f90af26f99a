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
  model <- keras_model_sequential(input_shape = c(2, 8, 8, 1))
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

test_that("a Python error keeps reticulate's classes and gains tfprobr's", {
  skip_if_no_python()
  # "causal" is a string, so R passes it on and the Python layer refuses it.
  error <- tryCatch(
    layer_conv_3d_reparameterization(filters = 2, kernel_size = 3, padding = "causal"),
    error = identity
  )
  expect_s3_class(error, "tfprobr_value_error")
  expect_s3_class(error, "tfprobr_error")
  expect_s3_class(error, "python.builtin.ValueError")
  expect_s3_class(error, "python.builtin.Exception")
  expect_s3_class(error, "error")
  expect_identical(class(error)[1:2], c("tfprobr_value_error", "tfprobr_error"))
  expect_identical(tail(class(error), 2), c("error", "condition"))
  expect_identical(grep("^tfprobr__", class(error), value = TRUE), character())
  expect_identical(grep("^python\\.builtin\\.", class(error), value = TRUE)[1],
                   "python.builtin.ValueError")
  message <- conditionMessage(error)
  expect_true(startsWith(message, "`padding` must be"), label = message)
  expect_no_match(message, "ValueError|py_last_error|\033\\[")
  expect_identical(error$call[[1]], quote(layer_conv_3d_reparameterization))
  # Either class catches it, as R users and reticulate users write handlers.
  expect_identical(
    tryCatch(layer_conv_3d_reparameterization(filters = 2, kernel_size = 3, padding = "causal"),
             python.builtin.ValueError = function(e) "caught as python.builtin.ValueError"),
    "caught as python.builtin.ValueError"
  )
  expect_error(layer_conv_3d_reparameterization(filters = 2, kernel_size = 3, padding = "causal"),
               "^`padding` must be", class = "tfprobr_value_error")
  # An error R raises itself (before Python) has no Python class, and no empty one.
  error <- tryCatch(layer_conv_3d_reparameterization(filters = 0, kernel_size = 3),
                    error = identity)
  expect_identical(class(error), c("tfprobr_value_error", "tfprobr_error", "error", "condition"))
})

test_that("every tfprobr error class names an exception type", {
  skip_if_no_python()
  # Errors of other Python types: a TypeError (an argument the layer does not
  # take) and an error from a bad object to compose with.
  for (case in bad_inputs) {
    error <- tryCatch(do.call(layer_conv_3d_reparameterization, case[[1]]), error = identity)
    expect_identical(grep("^tfprobr__|^tfprobr_error_error$", class(error), value = TRUE),
                     character())
    python <- grep("^python\\.builtin\\.[A-Za-z]+(Error|Exception)$", class(error), value = TRUE)
    if (length(python)) {
      type <- tolower(sub("(Error|Exception)$", "", sub("^python\\.builtin\\.", "", python[1])))
      expect_identical(class(error)[1], paste0("tfprobr_", type, "_error"))
    }
  }
})
