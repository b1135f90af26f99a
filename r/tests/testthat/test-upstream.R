# rstudio/tfprobability's own test of layer_conv_3d_reparameterization
# (tests/testthat/test-layers.R, "layer_conv_3d_reparameterization works"),
# written with today's R API: `keras$...` for Keras 3 (no R keras package),
# `reticulate::import("tensorflow")` for `tf` (no R tensorflow package), and
# tfprobr's pipes and fit(). As upstream, the model has no input shape: Keras
# builds it inside the first traced training step, which is what used to fail.
# (test-fit-save.R has a variant of this test that starts with keras$Input.)
# Each departure from upstream's code is commented where it is made.

test_that("layer_conv_3d_reparameterization works (rstudio/tfprobability's test, no input shape)", {
  skip_if_no_python()
  tf <- reticulate::import("tensorflow")

  # Upstream: tf$ones(shape = c(7, 16, 4, 4, 3)). Its R tensorflow package
  # turns whole doubles in a shape into integers; reticulate alone passes
  # floats, which tf.ones refuses ("Cannot convert [7.0, 16.0, 4.0, 4.0, 3.0]
  # to EagerTensor of dtype int32"). Hence integer literals.
  x <- tf$ones(shape = c(7L, 16L, 4L, 4L, 3L))
  y <- tf$ones(shape = c(7L, 10L))

  # Upstream: n <- dim(y)[1] %>% tf$cast(tf$float32), with dim() for tensors
  # from the R tensorflow package. The shape's first size, cast alike:
  n <- y$shape$as_list()[1] %>% tf$cast(tf$float32)
  expect_equal(n$numpy(), 7)

  kl_div <- function(q, p, unused)
    tfd_kl_divergence(q, p) / n

  # Upstream: keras_model_sequential(list(layer_conv_3d_reparameterization(...),
  # layer_max_pooling_3d(), layer_flatten(), layer_dense_reparameterization(...))).
  # Here the layers are piped into an empty Sequential model, which
  # layer_conv_3d_reparameterization() and add_layer() add them to.
  model <- keras$Sequential() %>%
    layer_conv_3d_reparameterization(
      filters = 64,
      kernel_size = 5,
      padding = "same",
      activation = "relu",
      kernel_divergence_fn = kl_div
    ) %>%
    add_layer(keras$layers$MaxPooling3D()) %>%
    add_layer(keras$layers$Flatten()) %>%
    # Upstream's last layer is layer_dense_reparameterization(units = 10,
    # kernel_divergence_fn = kl_div), a second Bayesian layer with its own KL
    # loss. tfprobr has no layer_dense_reparameterization() yet, so this is a
    # plain Dense layer, and the model has ONE KL loss where upstream has two.
    add_layer(keras$layers$Dense(units = 10L))
  expect_false(model$built)  # no input shape: nothing is built before fit()

  bayesian_loss <- function() {
    function(y_true, y_pred) {
      nll <-
        tf$nn$softmax_cross_entropy_with_logits(labels = y_true, logits = y_pred)
      kl <- tf$reduce_sum(model$losses)
      nll + kl
    }
  }

  # Upstream: model %>% compile(optimizer = 'adam', loss = bayesian_loss(),
  # experimental_run_tf_function = FALSE). Keras 3 has no
  # experimental_run_tf_function, and tfprobr no compile() function.
  model$compile(
    optimizer = "adam",
    loss = bayesian_loss()
  )

  # tfprobr's fit(), with upstream's steps_per_epoch = 1. verbose = 0 keeps
  # the progress bar out of the test log.
  model %>% fit(x, y, steps_per_epoch = 1, verbose = 0)

  yhat <- model(x)
  expect_equal(unlist(yhat$get_shape()$as_list()), c(7, 10))
  # Upstream expects 2: one KL loss per Bayesian layer, and the Dense layer
  # here is not Bayesian (see above).
  expect_equal(length(model$losses), 1)
})
