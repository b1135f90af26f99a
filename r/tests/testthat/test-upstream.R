# rstudio/tfprobability's own test of layer_conv_3d_reparameterization
# (tests/testthat/test-layers.R, "layer_conv_3d_reparameterization works"),
# as close to verbatim as R's current stack allows: keras3 for keras, the R
# tensorflow package for `tf`, dim() and tensor arithmetic. As upstream, the
# model has no input shape: Keras builds it inside the first traced training
# step. Each departure from upstream's code is commented where it is made.

test_that("layer_conv_3d_reparameterization works", {
  skip_if_no_python()  # upstream: skip_if_tf_below("2.0")

  library(keras3)  # upstream: library(keras)

  # Upstream: tf$ones(shape = c(7, 16, 4, 4, 3)). TensorFlow >= 2.16 refuses
  # doubles in a shape ("Cannot convert [7.0, 16.0, 4.0, 4.0, 3.0] to
  # EagerTensor of dtype int32"), and the R tensorflow package passes R's
  # doubles on as they are; hence integer literals.
  x = tf$ones(shape = c(7L, 16L, 4L, 4L, 3L))
  y = tf$ones(shape = c(7L, 10L))

  n <- dim(y)[1] %>% tf$cast(tf$float32)
  expect_equal(as.numeric(n), 7)  # not upstream: the size the KL is divided by

  kl_div <- function(q, p, unused)
    tfd_kl_divergence(q, p) / n

  # Upstream: keras_model_sequential(list(...)). keras3 wants the layers as
  # the named argument `layers` (a list as the first argument is an error:
  # "`layers` must be passed in as a named argument").
  model <- keras_model_sequential(
    layers = list(
      layer_conv_3d_reparameterization(
        filters = 64,
        kernel_size = 5,
        padding = "same",
        activation = "relu",
        kernel_divergence_fn = kl_div
      ),
      layer_max_pooling_3d(),
      layer_flatten(),
      # Upstream: layer_dense_reparameterization(units = 10,
      # kernel_divergence_fn = kl_div), a second Bayesian layer with its own
      # KL loss. tfprobr has no layer_dense_reparameterization() yet, so this
      # is keras3's plain dense layer, and the model has ONE KL loss where
      # upstream has two.
      layer_dense(units = 10)
    )
  )
  expect_false(model$built)  # not upstream: no input shape, nothing built before fit()

  bayesian_loss <- function() {
    function(y_true, y_pred) {
      nll <-
        tf$nn$softmax_cross_entropy_with_logits(labels = y_true, logits = y_pred)
      kl <- tf$reduce_sum(model$losses)
      nll + kl
    }
  }

  # Upstream also passes experimental_run_tf_function = FALSE, an argument
  # Keras 3 no longer has.
  model %>% compile(
    optimizer = 'adam',
    loss = bayesian_loss()
  )
  model %>% fit(x, y, steps_per_epoch = 1)

  yhat <- model(x)
  # Upstream: expect_equal(yhat$get_shape()$as_list(), c(7, 10)). as_list()
  # gives an R list, which testthat's third edition does not equate with a
  # numeric vector; tensorflow's dim() method gives the shape as one.
  expect_equal(dim(yhat), c(7, 10))
  # Upstream expects 2: one KL loss per Bayesian layer, and the dense layer
  # here is not Bayesian (see above).
  expect_equal(length(model$losses), 1)
})
