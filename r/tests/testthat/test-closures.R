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

  model <- keras_model_sequential(input_shape = c(4, 4, 4, 1)) %>%
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
    layer_flatten() |>
    layer_dense(1)
  # Building the model calls the four distribution fns, and traces the tensor
  # and divergence fns once to check what they return (as tf_keras's symbolic
  # call of the layer did).
  built <- mget(ls(calls), envir = calls)
  expect_setequal(names(built), c("kernel_posterior_fn", "kernel_prior_fn",
                                  "bias_posterior_fn", "bias_prior_fn",
                                  "kernel_posterior_tensor_fn", "bias_posterior_tensor_fn",
                                  "kernel_divergence_fn", "bias_divergence_fn"))
  expect_true(all(unlist(built) == 1L))

  compile(model, optimizer = "adam", loss = "mse")
  before <- variable_values(model$layers[[1]])
  fit(model, volumes(8, 4), matrix(0, 8, 1), epochs = 1, verbose = 0)
  after <- variable_values(model$layers[[1]])
  for (name in c("kernel_posterior_tensor_fn", "bias_posterior_tensor_fn",
                 "kernel_divergence_fn", "bias_divergence_fn")) {
    expect_gte(get0(name, calls, ifnotfound = 0L), 1L, label = name)
  }
  expect_equal(length(model$losses), 2L)
  # Training reached the variables made by the R posterior fns.
  expect_false(isTRUE(all.equal(before[[1]], after[[1]])))
  expect_false(isTRUE(all.equal(before[[2]], after[[2]])))
})

# tfprobr has no tensor methods of its own: the R tensorflow package's
# arithmetic, comparison, dim() and as.array() methods serve its tensors.
test_that("tensor arithmetic works in R (tensorflow's methods), as the spec's divergence example needs", {
  skip_if_no_python()
  q <- tfp$distributions$Normal(loc = 1, scale = 1)
  p <- tfp$distributions$Normal(loc = 0, scale = 1)
  kl <- tfd_kl_divergence(q, p)
  expect_s3_class(kl, "tensorflow.tensor")
  expect_equal(as.numeric(kl / 10), 0.05, tolerance = 1e-6)
  expect_equal(as.numeric(2 * kl + 1), 2, tolerance = 1e-6)
  expect_equal(as.numeric(-kl), -0.5, tolerance = 1e-6)
  expect_true(as.logical(kl > 0.4))
  n <- tf$cast(10, tf$float32)
  expect_equal(as.numeric(kl / n), 0.05, tolerance = 1e-6)
  samples <- q %>% tfd_sample(sample_shape = c(2, 3))
  expect_equal(dim(samples), c(2L, 3L))
  expect_equal(dim(as.array(samples)), c(2L, 3L))
})
