# tfprobability's other layer functions as a keras3 user drives them:
# keras_model_sequential() pipes without an input shape, compile() with the
# negative log likelihood and fit(); with an input shape; the functional API
# (keras_input()); the layer applied to a tensor (object = tensor); saving
# (save_model() / load_model()) where the layer holds no R function, and
# tfprobr's error, with no file left, where it holds one; and wrong arguments,
# refused with a tfprobr error naming the argument in R's words.
#
# The first two cases are rstudio/tfprobability's tests/testthat/test-layers.R
# cases for layer_variable() and layer_dense_variational(), ported to keras3
# as written (keras_model_sequential(list(...)) ->
# keras_model_sequential(layers = list(...))), with behavioural checks added
# after "# tfprobr:".

negloglik <- function(y, rv) -(rv %>% tfd_log_prob(y))

# --- tfprobability's test-layers.R ------------------------------------------

test_succeeds("layer_variable works", {

  library(keras3)

  x = tf$ones(shape = c(3L, 4L))
  y = tf$ones(3L)

  trainable_normal <- keras_model_sequential(layers = list(
    layer_variable(shape = 2),
    layer_distribution_lambda(
      make_distribution_fn = function (t)
        tfd_independent(
          tfd_normal(loc = t[1], scale = tf$math$softplus(t[2])),
          reinterpreted_batch_ndims = 0
        )
    )
  ))

  negloglik <- function(x, rv_x) -(rv_x %>% tfd_log_prob(x))
  trainable_normal %>% compile(optimizer = 'adam', loss = negloglik)
  trainable_normal %>% fit(x, y, steps_per_epoch = 1, verbose = 0L)

  # tfprobr: the layer's output is its variable (no batch axis), whatever the
  # input; one adam step moved both entries by the learning rate, towards
  # y = 1; trained longer, the normal's mean moves on towards 1.
  variable <- as.array(trainable_normal$layers[[1]]$weights[[1]])
  expect_equal(as.vector(variable), c(0.001, 0.001), tolerance = 1e-3)
  rv <- trainable_normal(x)
  expect_identical(rv$shape$rank, 0L)  # a scalar
  expect_equal(as.numeric(tfd_mean(rv)), variable[[1]], tolerance = 1e-6)
  expect_equal(as.numeric(tfd_stddev(rv)), softplus(variable[[2]]), tolerance = 1e-6)
  history <- trainable_normal %>%
    fit(x, y, epochs = 20, verbose = 0L)
  expect_lt(tail(history$metrics$loss, 1), history$metrics$loss[[1]])
  expect_gt(as.numeric(tfd_mean(trainable_normal(x))), 0.01)
})

test_succeeds("layer_dense_variational works", {

  library(keras3)

  x = tf$ones(shape = c(150L,1L))
  y = tf$ones(150L)

  posterior_mean_field <- function(kernel_size, bias_size = 0, dtype = NULL) {
    n <- kernel_size + bias_size
    c <- log(expm1(1))
    keras_model_sequential(layers = list(
      layer_variable(shape = 2 * n, dtype = dtype),
      layer_distribution_lambda(make_distribution_fn = function(t) {
        tfd_independent(
          tfd_normal(loc = t[1:n], scale = 1e-5 + tf$nn$softplus(c + t[(n+1):(2*n)])),
          reinterpreted_batch_ndims = 1
        )
      })
    ))
  }

  prior_trainable <- function(kernel_size, bias_size = 0, dtype = NULL) {
    n <- kernel_size + bias_size
    keras_model_sequential() %>%
      layer_variable(n, dtype = dtype) %>%
      layer_distribution_lambda(function(t) {
        tfd_independent(
          tfd_normal(loc = t, scale = 1),
          reinterpreted_batch_ndims = 1
        )
      })
  }

  model <- keras_model_sequential(layers = list(
    layer_dense_variational(
      units = 1,
      make_posterior_fn = posterior_mean_field,
      make_prior_fn = prior_trainable
    ),
    layer_distribution_lambda(
      make_distribution_fn = function(x)
        tfd_normal(loc = x, scale = 1)
    )
  ))

  negloglik <- function(x, rv_x) -(rv_x %>% tfd_log_prob(x))
  model %>% compile(optimizer = 'adam', loss = negloglik)
  model %>% fit(x, y, steps_per_epoch = 1, verbose = 0L)

  yhat <- model(x)
  expect_equal((yhat %>% tfd_sample())$get_shape()$as_list(), c(150,1))

  # tfprobr: exactly one KL loss (the one variational layer) per call; the
  # posterior holds 2 * (1 + 1) numbers and the prior 1 + 1; every call draws
  # new weights, so two calls give different means; the weights' posterior
  # means moved with training.
  expect_length(model$losses, 1L)
  dense <- model$layers[[1]]
  expect_identical(sort(vapply(dense$weights, function(w) length(as.array(w)), 1L)), c(2L, 4L))
  means <- replicate(2, as.array(tfd_mean(model(x)))[[1]])
  expect_false(isTRUE(all.equal(means[[1]], means[[2]])))
  expect_identical(dim(as.array(tfd_mean(yhat))), c(150L, 1L))
  expect_identical(dim(as.array(tfd_stddev(yhat))), c(150L, 1L))
  expect_true(all(as.array(tfd_stddev(yhat)) == 1))
})

# --- The ten distribution layers that read parameters ------------------------

n_examples <- 64L
set.seed(23)
x_data <- matrix(rnorm(n_examples * 3), n_examples, 3)
continuous <- function(columns) {
  matrix(x_data[, 1] + 0.5 * x_data[, 2], n_examples, columns) +
    matrix(rnorm(n_examples * columns, sd = 0.3), n_examples, columns)
}
one_hot <- function(classes) {
  labels <- (x_data[, 1] > 0) + (x_data[, 2] > 0.5) + 1L
  labels <- pmin(labels, classes)
  diag(classes)[labels, , drop = FALSE]
}

# Each layer as a user calls it (`object` is what the pipe gives), how many
# parameters it reads, the targets it is fitted to, the shape of one event,
# and, for a tensor of parameters, the mean it must have.
distribution_layers <- list(
  independent_normal = list(
    layer = function(object) layer_independent_normal(object, event_shape = 2),
    params = params_size_independent_normal(2), expected_params = 4L,
    y = continuous(2), event = 2L,
    mean = function(p) p[, 1:2]
  ),
  independent_logistic = list(
    layer = function(object) layer_independent_logistic(object, event_shape = 2),
    params = params_size_independent_logistic(2), expected_params = 4L,
    y = continuous(2), event = 2L,
    mean = function(p) p[, 1:2]
  ),
  independent_bernoulli = list(
    layer = function(object) layer_independent_bernoulli(object, event_shape = 2),
    params = params_size_independent_bernoulli(2), expected_params = 2L,
    y = 1 * (continuous(2) > 0), event = 2L,
    mean = function(p) plogis(p)
  ),
  independent_poisson = list(
    layer = function(object) layer_independent_poisson(object, event_shape = 1),
    params = params_size_independent_poisson(1), expected_params = 1L,
    y = matrix(rpois(n_examples, exp(0.5 * x_data[, 1])), n_examples, 1), event = 1L,
    mean = function(p) exp(p)
  ),
  multivariate_normal_tri_l = list(
    layer = function(object) layer_multivariate_normal_tri_l(object, event_size = 2),
    params = params_size_multivariate_normal_tri_l(2), expected_params = 5L,
    y = continuous(2), event = 2L,
    mean = function(p) p[, 1:2]
  ),
  one_hot_categorical = list(
    layer = function(object) layer_one_hot_categorical(object, event_size = 3),
    params = params_size_one_hot_categorical(3), expected_params = 3L,
    y = one_hot(3), event = 3L,
    mean = function(p) exp(p) / rowSums(exp(p))
  ),
  categorical_mixture_of_one_hot_categorical = list(
    layer = function(object) {
      layer_categorical_mixture_of_one_hot_categorical(object, event_size = 3, num_components = 2)
    },
    params = params_size_categorical_mixture_of_one_hot_categorical(3, 2), expected_params = 8L,
    y = one_hot(3), event = 3L,
    mean = function(p) {
      weights <- exp(p[, 1:2]) / rowSums(exp(p[, 1:2]))
      softmax <- function(l) exp(l) / rowSums(exp(l))
      weights[, 1] * softmax(p[, 3:5]) + weights[, 2] * softmax(p[, 6:8])
    }
  ),
  mixture_same_family = list(
    layer = function(object) {
      layer_mixture_same_family(object, num_components = 2,
                                component_layer = layer_independent_normal(event_shape = 1))
    },
    params = params_size_mixture_same_family(2, params_size_independent_normal(1)),
    expected_params = 6L, y = continuous(1), event = 1L,
    mean = function(p) {
      weights <- exp(p[, 1:2]) / rowSums(exp(p[, 1:2]))
      matrix(weights[, 1] * p[, 3] + weights[, 2] * p[, 5])
    }
  ),
  mixture_normal = list(
    layer = function(object) layer_mixture_normal(object, num_components = 2, event_shape = 1),
    params = params_size_mixture_normal(2, 1), expected_params = 6L,
    y = continuous(1), event = 1L,
    mean = function(p) {
      weights <- exp(p[, 1:2]) / rowSums(exp(p[, 1:2]))
      matrix(weights[, 1] * p[, 3] + weights[, 2] * p[, 5])
    }
  ),
  mixture_logistic = list(
    layer = function(object) layer_mixture_logistic(object, num_components = 2, event_shape = 1),
    params = params_size_mixture_logistic(2, 1), expected_params = 6L,
    y = continuous(1), event = 1L,
    mean = function(p) {
      weights <- exp(p[, 1:2]) / rowSums(exp(p[, 1:2]))
      matrix(weights[, 1] * p[, 3] + weights[, 2] * p[, 5])
    }
  )
)

for (name in names(distribution_layers)) local({
  spec <- distribution_layers[[name]]
  distribution_layer <- spec$layer
  x <- x_data
  y <- spec$y
  x5 <- x[1:5, ]

  test_that(paste0("layer_", name, "(): pipes, fit, input shape, functional, tensor, saving"), {
    set_random_seed(23)
    expect_identical(spec$params, spec$expected_params)

    # 1. A Sequential model without an input shape, trained directly.
    model <- keras_model_sequential() |>
      layer_dense(units = spec$params) |>
      distribution_layer()
    compile(model, optimizer = optimizer_adam(0.05), loss = negloglik)
    history <- fit(model, x, y, epochs = 6, batch_size = 32, verbose = 0)
    expect_length(history$metrics$loss, 6L)
    expect_lt(tail(history$metrics$loss, 1), history$metrics$loss[[1]])
    rv <- model(x5)
    expect_identical(dim(rv), c(5L, spec$event))
    expect_identical(rv$event_shape$as_list(), spec$event)
    params <- as.array(model$layers[[1]](x5))
    expect_equal(as.array(tfd_mean(rv)), spec$mean(params), tolerance = 1e-4)

    # 2. With an input shape: the output shape is known before any data.
    shaped <- keras_model_sequential(input_shape = 3) |>
      layer_dense(units = spec$params) |>
      distribution_layer()
    expect_identical(shaped$output_shape, list(NULL, spec$event))
    expect_identical(dim(as.array(tfd_mean(shaped(x5)))), c(5L, spec$event))

    # 3. The functional API.
    inputs <- keras_input(shape = 3)
    outputs <- inputs |>
      layer_dense(units = spec$params) |>
      distribution_layer()
    functional <- keras_model(inputs, outputs)
    params <- as.array(functional$layers[[2]](x5))
    expect_equal(as.array(tfd_mean(functional(x5))), spec$mean(params), tolerance = 1e-4)

    # 4. The layer applied to a tensor of parameters (object = tensor).
    p <- matrix(rnorm(5 * spec$params), 5, spec$params)
    applied <- distribution_layer(op_convert_to_tensor(p))
    expect_identical(dim(applied), c(5L, spec$event))
    expect_equal(as.array(tfd_mean(applied)), spec$mean(p), tolerance = 1e-4)

    # 5. Saved and loaded: the same parameters, so the same distribution.
    path <- tempfile(fileext = ".keras")
    on.exit(unlink(path), add = TRUE)
    save_model(shaped, path)
    loaded <- load_model(path)
    expect_identical(class(loaded$layers[[2]])[[1]], class(shaped$layers[[2]])[[1]])
    expect_equal(as.array(tfd_mean(loaded(x5))), as.array(tfd_mean(shaped(x5))),
                 tolerance = 1e-6)
  })
})

# --- layer_distribution_lambda() ---------------------------------------------

test_that("layer_distribution_lambda(): pipes, fit, functional, tensor; R closures refuse to save", {
  set_random_seed(23)
  x <- x_data
  y <- continuous(1)
  normal <- function(t) {
    tfd_normal(loc = t[, 1, drop = FALSE], scale = 1e-3 + tf$math$softplus(t[, 2, drop = FALSE]))
  }
  model <- keras_model_sequential() |>
    layer_dense(units = 2) |>
    layer_distribution_lambda(normal)
  compile(model, optimizer = optimizer_adam(0.05), loss = negloglik)
  history <- fit(model, x, y, epochs = 6, batch_size = 32, verbose = 0)
  expect_lt(tail(history$metrics$loss, 1), history$metrics$loss[[1]])
  params <- as.array(model$layers[[1]](x[1:5, ]))
  rv <- model(x[1:5, ])
  expect_equal(as.array(tfd_mean(rv)), params[, 1, drop = FALSE], tolerance = 1e-5)
  expect_equal(as.array(tfd_stddev(rv)), 1e-3 + softplus(params[, 2, drop = FALSE]),
               tolerance = 1e-4)

  # convert_to_tensor_fn: the tensor is the mean, by name or by TFP's method.
  for (convert in list("mean", tfp$distributions$Distribution$mean)) {
    inputs <- keras_input(shape = 3)
    outputs <- inputs |>
      layer_dense(units = 2) |>
      layer_distribution_lambda(normal, convert_to_tensor_fn = convert)
    functional <- keras_model(inputs, outputs)
    out <- functional(x[1:5, ])
    expect_equal(as.array(out), as.array(tfd_mean(out)))
  }

  # object = tensor; the distribution's methods on what comes back.
  applied <- layer_distribution_lambda(object = op_convert_to_tensor(matrix(c(1, 2, 0, 0), 2)),
                                       make_distribution_fn = normal)
  expect_equal(as.vector(as.array(tfd_mean(applied))), c(1, 2))
  expect_identical(dim(as.array(tfd_sample(applied, 7))), c(7L, 2L, 1L))

  # An R closure cannot be saved: tfprobr's error names it, and no file is left.
  shaped <- keras_model_sequential(input_shape = 3) |>
    layer_dense(units = 2) |>
    layer_distribution_lambda(normal)
  directory <- tempfile("save-")
  dir.create(directory)
  on.exit(unlink(directory, recursive = TRUE), add = TRUE)
  path <- file.path(directory, "closure.keras")
  error <- tryCatch(save_model(shaped, path), error = identity)
  expect_s3_class(error, "tfprobr_error")
  expect_match(conditionMessage(error), "`make_distribution_fn` cannot be saved", fixed = TRUE)
  expect_false(file.exists(path))
  expect_length(list.files(directory), 0L)
})

# --- KL divergence: the add-loss layer and the regularizer -------------------

test_that("layer_kl_divergence_add_loss(): one KL loss per call, fit, functional, tensor, saving", {
  set_random_seed(23)
  x <- x_data
  y <- continuous(2)
  prior <- tfd_independent(tfd_normal(loc = c(0, 0), scale = 1), reinterpreted_batch_ndims = 1)
  model <- keras_model_sequential() |>
    layer_dense(units = params_size_independent_normal(2)) |>
    layer_independent_normal(event_shape = 2) |>
    layer_kl_divergence_add_loss(prior, use_exact_kl = TRUE, weight = 1 / n_examples)
  compile(model, optimizer = optimizer_adam(0.05), loss = negloglik)
  history <- fit(model, x, y, epochs = 6, batch_size = 32, verbose = 0)
  expect_lt(tail(history$metrics$loss, 1), history$metrics$loss[[1]])
  rv <- model(x[1:5, ])
  expect_length(model$losses, 1L)
  # The exact KL of the batch's distributions, summed, times the weight.
  exact <- sum(as.array(tfd_kl_divergence(rv, prior))) / n_examples
  expect_equal(loss_values(model), exact, tolerance = 1e-5)

  # Functional, and applied to a distribution layer's output (object = tensor).
  inputs <- keras_input(shape = 3)
  outputs <- inputs |>
    layer_dense(units = 4) |>
    layer_independent_normal(event_shape = 2) |>
    layer_kl_divergence_add_loss(distribution_b = prior, use_exact_kl = TRUE)
  functional <- keras_model(inputs, outputs)
  functional(x[1:5, ])
  expect_length(functional$losses, 1L)
  rv <- layer_independent_normal(object = op_convert_to_tensor(matrix(0, 3, 4)), event_shape = 2)
  passed <- layer_kl_divergence_add_loss(object = rv, distribution_b = prior, use_exact_kl = TRUE)
  expect_equal(as.array(tfd_mean(passed)), matrix(0, 3, 2))

  # Saving: the prior, a TFP distribution, is saved as Python code, which
  # Keras loads only outside safe mode.
  shaped <- keras_model_sequential(input_shape = 3) |>
    layer_dense(units = 4) |>
    layer_independent_normal(event_shape = 2) |>
    layer_kl_divergence_add_loss(prior, use_exact_kl = TRUE)
  path <- tempfile(fileext = ".keras")
  on.exit(unlink(path), add = TRUE)
  save_model(shaped, path)
  loaded <- load_model(path, safe_mode = FALSE)
  expect_equal(as.array(tfd_mean(loaded(x[1:5, ]))), as.array(tfd_mean(shaped(x[1:5, ]))),
               tolerance = 1e-6)
  expect_length(loaded$losses, 1L)
  expect_equal(loss_values(loaded), loss_values(shaped), tolerance = 1e-5)
})

test_that("layer_kl_divergence_regularizer(): an activity regularizer of a distribution layer", {
  set_random_seed(23)
  x <- x_data
  y <- continuous(2)
  prior <- tfd_independent(tfd_normal(loc = c(0, 0), scale = 1), reinterpreted_batch_ndims = 1)
  regularizer <- layer_kl_divergence_regularizer(distribution_b = prior, use_exact_kl = TRUE,
                                                 weight = 0.5)
  model <- keras_model_sequential() |>
    layer_dense(units = 4) |>
    layer_independent_normal(event_shape = 2, activity_regularizer = regularizer)
  compile(model, optimizer = optimizer_adam(0.05), loss = negloglik)
  history <- fit(model, x, y, epochs = 6, batch_size = 32, verbose = 0)
  expect_lt(tail(history$metrics$loss, 1), history$metrics$loss[[1]])
  rv <- model(x[1:4, ])
  expect_length(model$losses, 1L)
  # Keras divides an activity regularizer's value by the batch size (as
  # tf_keras did for TFP).
  exact <- 0.5 * sum(as.array(tfd_kl_divergence(rv, prior)))
  expect_equal(loss_values(model), exact / 4, tolerance = 1e-5)
  # Given `object` (a distribution layer's output), it is that KL.
  value <- layer_kl_divergence_regularizer(object = rv, distribution_b = prior,
                                           use_exact_kl = TRUE, weight = 0.5)
  expect_equal(as.numeric(value), exact, tolerance = 1e-5)
  expect_equal(as.numeric(regularizer(rv)), exact, tolerance = 1e-5)
})

# --- layer_variable(), layer_dense_variational() ------------------------------

test_that("layer_variable(): pipes, functional, tensor, saving with a built-in distribution layer", {
  # A trainable Normal: the variable's two numbers are its location and scale.
  model <- keras_model_sequential() |>
    layer_variable(shape = 2, initializer = "ones") |>
    layer_independent_normal(event_shape = 1)
  out <- model(matrix(0, 4, 1))
  expect_equal(as.vector(as.array(tfd_mean(out))), 1)
  expect_equal(as.vector(as.array(tfd_stddev(out))), softplus(1), tolerance = 1e-6)

  inputs <- keras_input(shape = 3)
  functional <- keras_model(inputs, inputs |> layer_variable(shape = c(2, 3)))
  expect_identical(dim(as.array(functional(x_data))), c(2L, 3L))
  # object = tensor: the variable, whatever the tensor.
  value <- layer_variable(object = tf$ones(c(5L, 3L)), shape = c(2, 3), initializer = "ones")
  expect_equal(as.array(value), matrix(1, 2, 3))
  layer <- layer_variable(shape = 4, initializer = initializer_constant(7), trainable = FALSE)
  expect_equal(as.vector(as.array(layer(x_data))), rep(7, 4))
  expect_length(layer$trainable_weights, 0L)

  path <- tempfile(fileext = ".keras")
  on.exit(unlink(path), add = TRUE)
  save_model(model, path)
  loaded <- load_model(path)
  restored <- loaded(matrix(0, 4, 1))
  expect_equal(as.array(tfd_mean(restored)), as.array(tfd_mean(out)))
  expect_equal(as.array(tfd_stddev(restored)), as.array(tfd_stddev(out)))
})

posterior_mean_field <- function(kernel_size, bias_size = 0, dtype = NULL) {
  n <- kernel_size + bias_size
  c <- log(expm1(1))
  keras_model_sequential(layers = list(
    layer_variable(shape = 2 * n, dtype = dtype),
    layer_distribution_lambda(make_distribution_fn = function(t) {
      tfd_independent(
        tfd_normal(loc = t[1:n], scale = 1e-5 + tf$nn$softplus(c + t[(n + 1):(2 * n)])),
        reinterpreted_batch_ndims = 1
      )
    })
  ))
}

prior_standard <- function(kernel_size, bias_size = 0, dtype = NULL) {
  n <- kernel_size + bias_size
  keras_model_sequential() |>
    layer_variable(n, dtype = dtype, trainable = FALSE) |>
    layer_distribution_lambda(function(t) {
      tfd_independent(tfd_normal(loc = t, scale = 1), reinterpreted_batch_ndims = 1)
    })
}

test_that("layer_dense_variational(): input shape, functional, tensor, one KL loss; R fns refuse to save", {
  set_random_seed(23)
  x <- x_data
  y <- continuous(1)
  model <- keras_model_sequential(input_shape = 3) |>
    layer_dense_variational(units = 2, make_posterior_fn = posterior_mean_field,
                            make_prior_fn = prior_standard, kl_weight = 1 / n_examples,
                            kl_use_exact = TRUE) |>
    layer_distribution_lambda(function(t) {
      tfd_normal(loc = t[, 1, drop = FALSE], scale = 1e-3 + tf$math$softplus(t[, 2, drop = FALSE]))
    })
  expect_identical(model$output_shape, list(NULL, 1L))
  compile(model, optimizer = optimizer_adam(0.05), loss = negloglik)
  # Each step draws new weights, so the loss is noisy: compare the first and
  # last few epochs.
  history <- fit(model, x, y, epochs = 15, batch_size = 32, verbose = 0)
  expect_lt(mean(tail(history$metrics$loss, 4)), mean(head(history$metrics$loss, 4)))
  # (3 inputs + 1 bias) x 2 units: 8 weights, a location and a scale each.
  dense <- model$layers[[1]]
  expect_identical(sort(vapply(dense$weights, function(w) length(as.array(w)), 1L)), c(8L, 16L))
  means <- replicate(2, as.array(tfd_mean(model(x[1:5, ]))))
  expect_identical(dim(means), c(5L, 1L, 2L))
  expect_false(isTRUE(all.equal(means[, , 1], means[, , 2])))  # a new draw per call
  expect_length(model$losses, 1L)
  # The exact KL of the mean-field posterior from N(0, 1), over 8 weights.
  posterior <- dense$weights[[which(vapply(dense$weights, function(w) length(as.array(w)), 1L) == 16L)]]
  v <- as.vector(as.array(posterior))
  sigma <- 1e-5 + softplus(log(expm1(1)) + v[9:16])
  exact <- sum(log(1 / sigma) + (sigma^2 + v[1:8]^2) / 2 - 0.5) / n_examples
  expect_equal(loss_values(model), exact, tolerance = 1e-4)

  # Functional, and object = tensor.
  inputs <- keras_input(shape = 3)
  outputs <- inputs |>
    layer_dense_variational(units = 4, make_posterior_fn = posterior_mean_field,
                            make_prior_fn = prior_standard, activation = "relu")
  functional <- keras_model(inputs, outputs)
  out <- as.array(functional(x[1:5, ]))
  expect_identical(dim(out), c(5L, 4L))
  expect_true(all(out >= 0))
  applied <- layer_dense_variational(object = op_convert_to_tensor(x[1:5, ]), units = 3,
                                     make_posterior_fn = posterior_mean_field,
                                     make_prior_fn = prior_standard, use_bias = FALSE)
  expect_identical(dim(as.array(applied)), c(5L, 3L))

  # R functions for the posterior and prior cannot be saved: tfprobr's error,
  # and no file left.
  directory <- tempfile("save-")
  dir.create(directory)
  on.exit(unlink(directory, recursive = TRUE), add = TRUE)
  path <- file.path(directory, "dense-variational.keras")
  error <- tryCatch(save_model(model, path), error = identity)
  expect_s3_class(error, "tfprobr_error")
  expect_match(conditionMessage(error), "`make_posterior_fn` cannot be saved", fixed = TRUE)
  expect_length(list.files(directory), 0L)
})

# --- layer_variational_gaussian_process() ------------------------------------

test_that("layer_variational_gaussian_process(): input shape, functional, tensor, training", {
  set_random_seed(23)
  ExponentiatedQuadraticProvider <- Layer(
    "ExponentiatedQuadraticProvider",
    initialize = function(...) {
      super$initialize(...)
      self$amplitude <- self$add_weight(shape = shape(), initializer = initializer_constant(0),
                                        name = "amplitude")
      self$length_scale <- self$add_weight(shape = shape(), initializer = initializer_constant(0),
                                           name = "length_scale")
    },
    call = function(x, ...) x,
    kernel = active_property(function() {
      tfp$math$psd_kernels$ExponentiatedQuadratic(
        amplitude = tf$nn$softplus(self$amplitude),
        length_scale = tf$nn$softplus(self$length_scale)
      )
    })
  )
  x <- matrix(seq(-2, 2, length.out = 48))
  y <- sin(2 * x)
  model <- keras_model_sequential(input_shape = 1) |>
    layer_variational_gaussian_process(num_inducing_points = 6,
                                       kernel_provider = ExponentiatedQuadraticProvider(),
                                       inducing_index_points_initializer =
                                         initializer_random_uniform(-2, 2))
  loss <- function(y, rv) rv$variational_loss(y, kl_weight = 16 / 48)
  compile(model, optimizer = optimizer_adam(0.05), loss = loss)
  history <- fit(model, x, y, epochs = 4, batch_size = 16, verbose = 0)
  expect_lt(tail(history$metrics$loss, 1), history$metrics$loss[[1]])
  # The process at 5 index points: an event of 5 points x 1 output.
  rv <- model(x[1:5, , drop = FALSE])
  expect_identical(rv$event_shape$as_list(), c(5L, 1L))
  expect_identical(dim(as.array(tfd_mean(rv))), c(5L, 1L))
  expect_identical(dim(as.array(tfd_sample(rv, 3))), c(3L, 5L, 1L))
  # The kernel provider's weights train with the model's.
  expect_length(model$trainable_weights, 5L + 2L)

  inputs <- keras_input(shape = 1)
  functional <- keras_model(inputs, inputs |>
    layer_variational_gaussian_process(num_inducing_points = 4,
                                       kernel_provider = ExponentiatedQuadraticProvider(),
                                       event_shape = 2))
  rv <- functional(x[1:3, , drop = FALSE])
  expect_identical(rv$event_shape$as_list(), c(3L, 2L))
  applied <- layer_variational_gaussian_process(object = op_convert_to_tensor(x[1:3, , drop = FALSE]),
                                                num_inducing_points = 4,
                                                kernel_provider = ExponentiatedQuadraticProvider())
  expect_identical(dim(as.array(tfd_mean(applied))), c(3L, 1L))
})

# --- layer_autoregressive(), layer_autoregressive_transform() ----------------

test_that("layer_autoregressive(): masked outputs, tensor, pipes, functional, saving", {
  set_random_seed(23)
  x <- x_data
  # The layer, called on data: output i depends only on inputs before i.
  made <- layer_autoregressive(params = 2, hidden_units = c(8, 8), activation = "relu")
  out <- as.array(made(x))
  expect_identical(dim(out), c(n_examples, 3L, 2L))
  last_changed <- x
  last_changed[, 3] <- rnorm(n_examples)
  expect_equal(as.array(made(last_changed)), out, tolerance = 1e-6)  # input 3 feeds no output
  first_changed <- x
  first_changed[, 1] <- rnorm(n_examples)
  again <- as.array(made(first_changed))
  expect_equal(again[, 1, ], out[, 1, ], tolerance = 1e-6)
  expect_false(isTRUE(all.equal(again[, 2:3, ], out[, 2:3, ])))  # input 1 feeds outputs 2, 3
  expect_equal(apply(out[, 1, ], 2, stats::sd), c(0, 0), tolerance = 1e-6)  # output 1: no input
  applied <- layer_autoregressive(object = op_convert_to_tensor(x), params = 3,
                                  input_order = "right-to-left")
  expect_identical(dim(as.array(applied)), c(n_examples, 3L, 3L))

  # In models: without an input shape, with one, and functional.
  unshaped <- keras_model_sequential() |>
    layer_autoregressive(params = 2, hidden_units = c(8, 8), activation = "relu")
  expect_identical(dim(as.array(unshaped(x))), c(n_examples, 3L, 2L))
  shaped <- keras_model_sequential(input_shape = 3) |>
    layer_autoregressive(params = 1, event_shape = 3, hidden_units = 5)
  expect_identical(shaped$output_shape, list(NULL, 3L, 1L))
  inputs <- keras_input(shape = 3)
  functional <- keras_model(inputs, inputs |> layer_autoregressive(params = 2, hidden_units = 4))
  expect_identical(dim(as.array(functional(x))), c(n_examples, 3L, 2L))

  path <- tempfile(fileext = ".keras")
  on.exit(unlink(path), add = TRUE)
  save_model(shaped, path)
  expect_equal(as.array(load_model(path)(x)), as.array(shaped(x)), tolerance = 1e-6)
})

test_that("layer_autoregressive_transform(): a masked autoregressive flow trains by fit()", {
  set_random_seed(23)
  # object = tensor: the flow of a distribution layer's output, whose log
  # density at the base's mode is the base's (the network starts at zero shift
  # and log scale only by chance, so compare shapes and finiteness).
  base <- layer_distribution_lambda(
    object = op_convert_to_tensor(matrix(0, 3, 2)),
    make_distribution_fn = function(t) tfd_multivariate_normal_diag(loc = t, scale_diag = c(1, 1))
  )
  flow <- layer_autoregressive_transform(object = base,
                                         made = layer_autoregressive(params = 2, hidden_units = 4))
  density <- as.array(tfd_log_prob(flow, matrix(0, 3, 2)))
  expect_identical(dim(density), 3L)
  expect_true(all(is.finite(density)))
  expect_identical(dim(as.array(tfd_sample(flow, 4))), c(4L, 3L, 2L))

  # TensorFlow Probability's example: a model of no input whose output is a
  # standard normal in 2-D, transformed by a MADE-driven flow to the data.
  n <- 256L
  x2 <- rnorm(n) * 2
  x1 <- rnorm(n) + x2 * x2 / 4
  data <- cbind(x1, x2)
  model <- keras_model_sequential(input_shape = 0) |>
    layer_distribution_lambda(function(t) {
      tfd_multivariate_normal_diag(loc = tf$pad(t, list(list(0L, 0L), list(0L, 2L))),
                                   scale_diag = c(1, 1))
    }) |>
    layer_autoregressive_transform(
      made = layer_autoregressive(params = 2, hidden_units = 10, activation = "relu")
    )
  compile(model, optimizer = optimizer_adam(0.01), loss = negloglik)
  history <- fit(model, matrix(0, n, 0), data, batch_size = 32, epochs = 4, verbose = 0)
  expect_lt(tail(history$metrics$loss, 1), history$metrics$loss[[1]])
  rv <- model(matrix(0, 5, 0))
  expect_identical(rv$event_shape$as_list(), 2L)
  expect_identical(dim(as.array(tfd_sample(rv))), c(5L, 2L))
  expect_length(model$trainable_weights, 4L)  # the MADE's two masked dense layers
})

# --- Wrong arguments: tfprobr's errors, naming the argument in R's words -----

expect_tfprobr_error <- function(expr, pattern, class = "tfprobr_error") {
  error <- tryCatch({
    force(expr)
    NULL
  }, error = identity)
  expect_s3_class(error, class)
  if (!is.null(error)) {
    expect_match(conditionMessage(error), pattern, fixed = TRUE)
    expect_no_match(conditionMessage(error), "py_last_error|Traceback|\033")
  }
  invisible(error)
}

test_that("wrong types and misspelt arguments: tfprobr errors that name the argument", {
  expect_tfprobr_error(layer_multivariate_normal_tri_l(event_size = "a"),
                       '`event_size` must be a positive integer. Received: event_size="a"',
                       "tfprobr_type_error")
  expect_tfprobr_error(layer_one_hot_categorical(event_size = c(2, 3)),
                       "Received: event_size=c(2, 3)")
  expect_tfprobr_error(layer_independent_normal(event_shape = -1),
                       "Received: event_shape=-1", "tfprobr_value_error")
  error <- expect_tfprobr_error(layer_independent_normal(event_shape = -1), "`event_shape` must be")
  # R has no (): a scalar event's shape is list() in R.
  expect_no_match(conditionMessage(error), "(?<![a-z])\\(\\)", perl = TRUE)
  expect_match(conditionMessage(error), "list() for a scalar event", fixed = TRUE)
  expect_tfprobr_error(layer_kl_divergence_add_loss(distribution_b = tfd_normal(0, 1), weight = "a"),
                       '`weight` must be a number')
  expect_tfprobr_error(layer_independent_normal(event_shape = TRUE), "Received: event_shape=TRUE")
  expect_tfprobr_error(layer_independent_normal(event_shape = c(2, NA)),
                       "Received: event_shape=c(2, NA)")
  expect_tfprobr_error(layer_independent_normal(evnt_shape = 1),
                       "Unknown argument `evnt_shape`: did you mean `event_shape`?",
                       "tfprobr_type_error")
  expect_tfprobr_error(layer_independent_normal(event_shape = 2, validate_args = "yes"),
                       '`validate_args` must be TRUE or FALSE. Received: validate_args="yes"')
  expect_tfprobr_error(layer_mixture_normal(num_components = 0),
                       "`num_components` must be a positive integer. Received: num_components=0")
  expect_tfprobr_error(layer_mixture_same_family(num_components = 2, component_layer = "normal"),
                       '`component_layer` must be a distribution layer')
  expect_tfprobr_error(layer_mixture_same_family(num_components = 2), "`component_layer` is required")
  expect_tfprobr_error(layer_distribution_lambda(make_distribution_fn = 3),
                       "`make_distribution_fn` must be a function")
  expect_tfprobr_error(layer_distribution_lambda(make_distribution_fn = function() 1),
                       "`make_distribution_fn` must be a function of 1 argument")
  expect_tfprobr_error(layer_kl_divergence_add_loss(distribution_b = 1),
                       "`distribution_b` must be a TFP distribution")
  expect_tfprobr_error(layer_kl_divergence_add_loss(distribution_b = tfd_normal(0, 1),
                                                    use_exact_kl = NULL),
                       "Received: use_exact_kl=NULL")
  expect_tfprobr_error(layer_kl_divergence_regularizer(distribution_b = tfd_normal(0, 1),
                                                       test_points_reduce_axis = "a"),
                       "`test_points_reduce_axis` must be NULL (every axis)")
  expect_tfprobr_error(layer_variable(shape = -2), "Received: shape=-2")
  expect_tfprobr_error(layer_dense_variational(units = 2, make_posterior_fn = NULL,
                                               make_prior_fn = NULL),
                       "`make_posterior_fn` is required. Received: make_posterior_fn=NULL")
  expect_tfprobr_error(layer_dense_variational(units = 2, make_posterior_fn = posterior_mean_field,
                                               make_prior_fn = prior_standard, kl_use_exact = "no"),
                       '`kl_use_exact` must be TRUE or FALSE. Received: kl_use_exact="no"')
  expect_tfprobr_error(layer_variational_gaussian_process(num_inducing_points = 3,
                                                          kernel_provider = 3),
                       "`kernel_provider` must have a `kernel` property")
  expect_tfprobr_error(layer_autoregressive(params = -1), "Received: params=-1")
  expect_tfprobr_error(layer_autoregressive_transform(made = 3), "`made` must be an AutoregressiveNetwork")
  expect_tfprobr_error(layer_independent_normal(event_shape = 2, input_shape = "a"),
                       '`input_shape` must be a vector of positive integers')
})

test_that("params_size_*() refuse what is not a size, naming the argument", {
  expect_identical(params_size_mixture_normal(5, 1), 15L)
  expect_identical(params_size_mixture_same_family(5, params_size_independent_normal(1)), 15L)
  expect_identical(params_size_independent_normal(c(2, 3)), 12L)
  expect_tfprobr_error(params_size_mixture_normal(5, "a"), "`event_shape`")
  expect_tfprobr_error(params_size_independent_normal(NULL), "`event_size`")
})

test_that("sample_dtype is a dtype: TRUE and unknown names are refused, naming it", {
  expect_identical(layer_independent_bernoulli(object = op_convert_to_tensor(matrix(0, 2, 2)),
                                               event_shape = 2, sample_dtype = "int32")$dtype$name,
                   "int32")
  expect_tfprobr_error(layer_independent_bernoulli(event_shape = 2, sample_dtype = TRUE),
                       "`sample_dtype`")
  expect_tfprobr_error(layer_one_hot_categorical(event_size = 2, sample_dtype = "nonesuch"),
                       "`sample_dtype`")
})

test_that("event_shape = NULL is refused when the layer is made, naming it", {
  expect_tfprobr_error(layer_independent_normal(event_shape = NULL), "`event_shape`")
})

test_that("a distribution of scalar events reaches the loss when y is a one-column matrix", {
  # loc = t[, 1]: one scalar Normal per example; y, as R users hold it, an n x 1
  # matrix. Keras's loss wrapper expands the prediction to y's rank, which must
  # keep the distribution (TFP's tf_keras losses got the distribution itself).
  model <- keras_model_sequential(input_shape = 1) |>
    layer_dense(units = 1) |>
    layer_distribution_lambda(function(t) tfd_normal(loc = t[, 1], scale = 1))
  compile(model, optimizer = "adam", loss = negloglik)
  history <- tryCatch(fit(model, matrix(1:8), matrix(1:8), verbose = 0), error = identity)
  expect_false(inherits(history, "error"), info = if (inherits(history, "error")) conditionMessage(history))
  if (!inherits(history, "error")) {
    expect_true(all(is.finite(history$metrics$loss)))
  }
})
