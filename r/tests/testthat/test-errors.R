# Python owns every rule it can see; its message reaches R as it is. R
# checks only what Python cannot see (a missing argument, NA, R environments
# and code, an R closure's arity), in the same words and the same form.
bad_inputs <- list(
  # list(arguments, pattern the R error must match)
  # R's own: missing, NA, environments and code, arity.
  list(list(kernel_size = 3), "^`filters` is required: a positive integer, the number of output channels\\.$"),
  list(list(filters = 2), "^`kernel_size` is required: a positive integer or a vector of 1 or 3 positive integers\\.$"),
  list(list(filters = NA, kernel_size = 3), "^`filters` must be a value without NA \\(R's missing value, which Python cannot receive\\)\\. Received: filters=NA$"),
  list(list(filters = 2, kernel_size = c(3, NA, 3)), "`kernel_size` must be a value without NA .*Received: kernel_size=c\\(3, NA, 3\\)"),
  list(list(filters = 2, kernel_size = 3, trainable = NA), "`trainable` must be a value without NA .*Received: trainable=NA"),
  list(list(filters = 2, kernel_size = 3, activation = new.env()), "`activation` must be a value Python can receive \\(not an R environment or R code\\)\\. Received: activation=<environment>"),
  list(list(filters = 2, kernel_size = 3, strides = ~x), "`strides` must be a value Python can receive .*Received: strides=~x"),
  list(list(filters = 2, kernel_size = 3, kernel_divergence_fn = function(q, p) 1), "^`kernel_divergence_fn` must be a function of 3 arguments \\(q, p, sample\\), as the layer calls it\\. Received: kernel_divergence_fn=function\\(q, p\\)$"),
  list(list(filters = 2, kernel_size = 3, kernel_posterior_tensor_fn = function() 1), "`kernel_posterior_tensor_fn` must be a function of 1 argument \\(distribution\\)"),
  list(list(filters = 2, kernel_size = 3, bias_posterior_fn = function(dtype) 1), "`bias_posterior_fn` must be a function of 5 arguments \\(dtype, shape, name, trainable, add_variable_fn\\)"),
  # Python's: integers, lengths, choices, types. R's whole doubles reach
  # it as integers, so it echoes them as the user wrote them.
  list(list(filters = 0, kernel_size = 3), "^`filters` must be a positive integer\\. Received: filters=0$"),
  list(list(filters = -2, kernel_size = 3), "`filters` must be a positive integer\\. Received: filters=-2$"),
  list(list(filters = 2.5, kernel_size = 3), "`filters` must be a positive integer\\. Received: filters=2\\.5$"),
  list(list(filters = "8", kernel_size = 3), "`filters` must be a positive integer\\. Received: filters=\"8\""),
  list(list(filters = TRUE, kernel_size = 3), "`filters` .*Received: filters=TRUE"),
  list(list(filters = c(2, 3), kernel_size = 3), "`filters` .*Received: filters=c\\(2, 3\\)"),
  list(list(filters = 3e22, kernel_size = 3), "^`filters` must be a positive integer no larger than 2147483647\\. Received: filters=3e\\+22$"),
  list(list(filters = NULL, kernel_size = 3), "^`filters` is required: a positive integer, the number of output channels\\. Received: filters=NULL$"),
  list(list(filters = 2, kernel_size = 3, strides = 2^31), "`strides` .*Received: strides=2147483648"),
  list(list(filters = 2, kernel_size = c(3, 3)), "^`kernel_size` must be a positive integer or a vector of 1 or 3 positive integers, but has length 2\\. Received: kernel_size=c\\(3, 3\\)$"),
  list(list(filters = 2, kernel_size = "3"), "`kernel_size` .*Received: kernel_size=\"3\""),
  list(list(filters = 2, kernel_size = 0), "`kernel_size` .*Received: kernel_size=0"),
  list(list(filters = 2, kernel_size = 3, strides = c(1, -1, 1)), "`strides` .*Received: strides=c\\(1, -1, 1\\)"),
  list(list(filters = 2, kernel_size = 3, dilation_rate = 1.5), "`dilation_rate` .*Received: dilation_rate=1\\.5"),
  list(list(filters = 2, kernel_size = 3, strides = 2, dilation_rate = 2), "`strides` > 1 cannot be combined with `dilation_rate` > 1"),
  list(list(filters = 2, kernel_size = 3, padding = "causal"), "`padding` must be one of \"valid\" or \"same\""),
  list(list(filters = 2, kernel_size = 3, padding = 1), "`padding` must be one of \"valid\" or \"same\"\\. Received: padding=1"),
  list(list(filters = 2, kernel_size = 3, data_format = "NDHWC"), "`data_format` must be one of \"channels_last\" or \"channels_first\"\\. Received: data_format=\"NDHWC\""),
  list(list(filters = 2, kernel_size = 3, activation = "relux"), "`activation` must be the name of a Keras activation"),
  list(list(filters = 2, kernel_size = 3, trainable = "yes"), "^`trainable` must be TRUE or FALSE\\. Received: trainable=\"yes\"$"),
  list(list(filters = 2, kernel_size = 3, kernel_posterior_fn = NULL), "^`kernel_posterior_fn` must be a function \\(a callable\\)\\. Received: kernel_posterior_fn=NULL$"),
  list(list(filters = 2, kernel_size = 3, kernel_posterior_tensor_fn = "sample"), "`kernel_posterior_tensor_fn` must be a function"),
  list(list(filters = 2, kernel_size = 3, kernel_prior_fn = 1), "^`kernel_prior_fn` must be a function \\(a callable\\) or NULL\\. Received: kernel_prior_fn=1$"),
  list(list(filters = 2, kernel_size = 3, kernel_divergence_fn = list()), "`kernel_divergence_fn` must be a function"),
  list(list(filters = 2, kernel_size = 3, bias_posterior_fn = "normal"), "`bias_posterior_fn` must be a function"),
  list(list(filters = 2, kernel_size = 3, bias_posterior_tensor_fn = 0), "`bias_posterior_tensor_fn` must be a function"),
  list(list(filters = 2, kernel_size = 3, bias_prior_fn = TRUE), "`bias_prior_fn` must be a function"),
  list(list(filters = 2, kernel_size = 3, bias_divergence_fn = "kl"), "`bias_divergence_fn` must be a function"),
  list(list(filters = 2, kernel_size = 3, input_shape = c(8, 0, 8, 1)), "^`input_shape` must be a vector of positive integers \\(NULL for an unknown size\\)\\. Received: input_shape=c\\(8, 0, 8, 1\\)$"),
  list(list(filters = 2, kernel_size = 3, name = 3), "`name` must be a string or NULL\\. Received: name=3"),
  list(list(filters = 2, kernel_size = 3, seed = -1), "`seed` must be NULL or an integer from 0 to 2147483647\\. Received: seed=-1"),
  list(list("model", filters = 2, kernel_size = 3), "`object` must be NULL, a LayerStack, a keras.Sequential model.*Received: object=\"model\" of type character$"),
  list(list(5, filters = 2, kernel_size = 3), "`object` must be NULL, .*Received: object=5 of type numeric$"),
  list(list(filters = 2, kernel_size = 3, unknown_argument = 1), "^Unknown argument `unknown_argument`: the arguments are `filters`, `kernel_size`, .*Received: unknown_argument=1$")
)

# R's own checks, and the same rule for every layer: one case per function.
family_bad_inputs <- list(
  list("layer_dense_reparameterization", list(), "^`units` is required: a positive integer, the number of output features\\.$"),
  list("layer_dense_flipout", list(units = 2, seed = 1.5), "`seed` must be NULL or an integer .*Received: seed=1\\.5"),
  list("layer_dense_flipout", list(units = 2, seed = NA), "`seed` must be a value without NA"),
  list("layer_dense_local_reparameterization", list(units = 0), "^`units` must be a positive integer\\. Received: units=0$"),
  list("layer_conv_1d_reparameterization", list(filters = 2), "^`kernel_size` is required: a positive integer or a vector of 1 positive integer\\.$"),
  list("layer_conv_1d_flipout", list(filters = 2, kernel_size = c(3, 3)), "`kernel_size` must be a positive integer or a vector of 1 positive integer, but has length 2"),
  list("layer_conv_1d_local_reparameterization", list(kernel_size = 3), "^`filters` is required"),
  list("layer_conv_2d_reparameterization", list(filters = 2), "^`kernel_size` is required: a positive integer or a vector of 1 or 2 positive integers\\.$"),
  list("layer_conv_2d_flipout", list(filters = 2, kernel_size = c(3, 3, 3)), "`kernel_size` must be a positive integer or a vector of 1 or 2 positive integers, but has length 3"),
  list("layer_conv_2d_local_reparameterization", list(filters = 2, kernel_size = 3, kernel_prior_fn = function(x) x), "`kernel_prior_fn` must be a function of 5 arguments"),
  list("layer_conv_3d_reparameterization", list(), "^`filters` is required"),
  list("layer_conv_3d_flipout", list(filters = 2, kernel_size = 3, kernel_posterior_fn = NULL), "`kernel_posterior_fn` must be a function \\(a callable\\)\\. Received: kernel_posterior_fn=NULL"),
  list("layer_conv_3d_local_reparameterization", list(filters = 2, kernel_size = 3, padding = "full"), "`padding` must be one of \"valid\" or \"same\"\\. Received: padding=\"full\"")
)

expect_one_line_error <- function(error, pattern, label) {
  expect_s3_class(error, "tfprobr_error")
  expect_match(conditionMessage(error), pattern, perl = TRUE, label = label)
  expect_false(grepl("Traceback|File \"", conditionMessage(error)))
  expect_false(grepl("\n", conditionMessage(error), fixed = TRUE))
}

test_that("at least 20 bad inputs each give one-line R errors naming the argument", {
  skip_if_no_python()
  expect_gte(length(bad_inputs), 20L)
  for (case in bad_inputs) {
    error <- tryCatch(do.call(layer_conv_3d_reparameterization, case[[1]]),
                      error = identity)
    expect_one_line_error(error, case[[2]], label = case[[2]])
  }
  # The session is still usable.
  layer <- layer_conv_3d_reparameterization(filters = 2, kernel_size = 3)
  expect_equal(layer$filters, 2L)
})

test_that("every layer of the family gives the same errors, from R or from Python", {
  skip_if_no_python()
  expect_setequal(vapply(family_bad_inputs, `[[`, "", 1),
                  setdiff(grep("^layer_(conv_[123]d|dense)_", getNamespaceExports("tfprobr"),
                               value = TRUE), "layer_dense_variational"))
  for (case in family_bad_inputs) {
    error <- tryCatch(do.call(case[[1]], case[[2]]), error = identity)
    expect_one_line_error(error, case[[3]], label = case[[1]])
    expect_identical(error$call[[1]], as.name(case[[1]]))
  }
})

test_that("a missing required argument is a TypeError, in Python's words", {
  skip_if_no_python()
  # Not passed at all, so Python says it is required (and checks misspelt
  # names in `...` first), without a Received: part.
  error <- tryCatch(layer_dense_flipout(), error = identity)
  expect_s3_class(error, "tfprobr_type_error")
  expect_identical(conditionMessage(error),
                   "`units` is required: a positive integer, the number of output features.")
  expect_identical(error$call[[1]], quote(layer_dense_flipout))
})

test_that("R's own errors are classed as Python's would be, and need no Python", {
  # NA is Python's ValueError.
  error <- tryCatch(layer_conv_2d_flipout(filters = 2, kernel_size = NA), error = identity)
  expect_identical(class(error), c("tfprobr_value_error", "tfprobr_error", "error", "condition"))
  expect_identical(error$call[[1]], quote(layer_conv_2d_flipout))
  # `...` must be named (an unnamed value reaches it after every formal).
  positional <- c(list(NULL, 2, NULL, NULL, TRUE), rep(list(NULL), 8), list("x"))
  expect_error(do.call(layer_dense_reparameterization, positional),
               "Arguments in `...` must be named", class = "tfprobr_value_error")
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

test_that("the composition helpers' errors reach R in the same form", {
  skip_if_no_python()
  expect_error(add_layer(layer_stack(), "dense"),
               "^`layer` must be a Keras 3 layer .*Received: layer=\"dense\" of type character$",
               class = "python.builtin.TypeError")
  expect_error(as_keras_model(42), "`object` must be a layer stack")
  expect_error(layer_stack(input_shape = "a"),
               "^`input_shape` must be a vector of positive integers .*Received: input_shape=\"a\"$")
  expect_error(layer_stack(input_shape = c(4, NA, 0)), "Received: input_shape=c\\(4, NA, 0\\)$")
  expect_equal(unlist(layer_stack(input_shape = c(NA, 4))$input_shape), 4L)
  expect_error(layer_stack(name = 1), "^`name` must be a string or NULL")
  expect_error(layer_stack(name = NA), "^`name` must be a value without NA")
  expect_error(tfd_sample(tfp$distributions$Normal(0, 1), sample_shape = -1),
               "^`sample_shape` must be a vector of positive integers \\(empty for one draw\\)\\. Received: sample_shape=-1$")
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
  error <- tryCatch(layer_conv_3d_reparameterization(filters = NA, kernel_size = 3),
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
