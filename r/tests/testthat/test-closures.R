test_that("R closures are honoured for all eight fn arguments, also inside fit", {
  skip_if_no_python()
  calls <- new.env()
  count <- function(name) assign(name, get0(name, calls, ifnotfound = 0L) + 1L, envir = calls)
  normal <- tfp$distributions$Normal
  independent <- tfp$distributions$Independent

  posterior <- function(role) {
    function(dtype, shape, name, trainable, add_variable_fn) {
      count(role)
      loc <- add_variable_fn(name = paste0(name, "_loc"), shape = shape,
                             initializer = "zeros", dtype = dtype, trainable = trainable)
      independent(normal(loc = loc, scale = 0.1), reinterpreted_batch_ndims = length(shape))
    }
  }
  prior <- function(role) {
    function(dtype, shape, name, trainable, add_variable_fn) {
      count(role)
      zeros <- reticulate::import("tensorflow")$zeros(shape, dtype = dtype)
      independent(normal(loc = zeros, scale = 1), reinterpreted_batch_ndims = length(shape))
    }
  }
  tensor_fn <- function(role) function(d) { count(role); d %>% tfd_sample() }
  divergence <- function(role) function(q, p, ignore) { count(role); tfd_kl_divergence(q, p) / 100 }

  model <- layer_stack(input_shape = c(4, 4, 4, 1)) %>%
    layer_conv_3d_reparameterization(
      filters = 2, kernel_size = 2,
      kernel_posterior_fn = posterior("kernel_posterior_fn"),
      kernel_posterior_tensor_fn = tensor_fn("kernel_posterior_tensor_fn"),
      kernel_prior_fn = prior("kernel_prior_fn"),
      kernel_divergence_fn = divergence("kernel_divergence_fn"),
      bias_posterior_fn = posterior("bias_posterior_fn"),
      bias_posterior_tensor_fn = tensor_fn("bias_posterior_tensor_fn"),
      bias_prior_fn = prior("bias_prior_fn"),
      bias_divergence_fn = divergence("bias_divergence_fn")
    ) |>
    add_layer(keras$layers$Flatten()) |>
    add_layer(keras$layers$Dense(1L)) |>
    as_keras_model()
  built <- mget(ls(calls), envir = calls)
  expect_setequal(names(built), c("kernel_posterior_fn", "kernel_prior_fn",
                                  "bias_posterior_fn", "bias_prior_fn"))

  model$compile(optimizer = "adam", loss = "mse")
  before <- lapply(model$layers[[1]]$weights, function(w) w$numpy())
  model$fit(volumes(8, 4), matrix(0, 8, 1), epochs = 1L, verbose = 0L)
  after <- lapply(model$layers[[1]]$weights, function(w) w$numpy())
  for (name in c("kernel_posterior_tensor_fn", "bias_posterior_tensor_fn",
                 "kernel_divergence_fn", "bias_divergence_fn")) {
    expect_gte(get0(name, calls, ifnotfound = 0L), 1L, label = name)
  }
  expect_equal(length(model$losses), 2L)
  # Training reached the variables made by the R posterior fns.
  expect_false(isTRUE(all.equal(before[[1]], after[[1]])))
  expect_false(isTRUE(all.equal(before[[2]], after[[2]])))
})

test_that("tensor arithmetic works in R, as the spec's divergence example needs", {
  skip_if_no_python()
  q <- tfp$distributions$Normal(loc = 1, scale = 1)
  p <- tfp$distributions$Normal(loc = 0, scale = 1)
  kl <- tfd_kl_divergence(q, p)
  expect_equal((kl / 10)$numpy(), 0.05, tolerance = 1e-6)
  expect_equal((2 * kl + 1)$numpy(), 2, tolerance = 1e-6)
  expect_equal((-kl)$numpy(), -0.5, tolerance = 1e-6)
  expect_true((kl > 0.4)$numpy())
  samples <- q %>% tfd_sample(sample_shape = c(2, 3))
  expect_equal(unlist(samples$shape$as_list()), c(2L, 3L))
})
