# The twelve variational layers. Each is its documentation (see layer_docs.R)
# and one call of create_variational_layer() (see layer_helpers.R) with its
# Python class; the formals are rstudio/tfprobability's.

#' Variational 1-D convolution layer with the reparameterization estimator
#'
#' @eval variational_layer_docs("conv", rank = 1, estimator = "reparameterization")
#' @examples
#' library(keras3)
#' model <- keras_model_sequential(input_shape = c(16, 1)) |>
#'   layer_conv_1d_reparameterization(filters = 4, kernel_size = 3, activation = "relu") |>
#'   layer_global_average_pooling_1d() |>
#'   layer_dense(2)
#' compile(model, optimizer = "adam", loss = "mse")
#' x <- array(runif(8 * 16), c(8, 16, 1))
#' fit(model, x, matrix(0, 8, 2), epochs = 1, verbose = 0)
#' length(model$losses)  # the kernel's KL divergence
#' @export
layer_conv_1d_reparameterization <- function(object,
                                             filters,
                                             kernel_size,
                                             strides = 1,
                                             padding = "valid",
                                             data_format = "channels_last",
                                             dilation_rate = 1,
                                             activation = NULL,
                                             activity_regularizer = NULL,
                                             trainable = TRUE,
                                             kernel_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(),
                                             kernel_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                             kernel_prior_fn = tfp$layers$util$default_multivariate_normal_fn,
                                             kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                             bias_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(is_singular = TRUE),
                                             bias_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                             bias_prior_fn = NULL,
                                             bias_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                             ...) {
  create_variational_layer("Conv1DReparameterization")
}

#' Variational 1-D convolution layer with the Flipout estimator
#'
#' @eval variational_layer_docs("conv", rank = 1, estimator = "flipout")
#' @examples
#' library(keras3)
#' model <- keras_model_sequential(input_shape = c(16, 1)) |>
#'   layer_conv_1d_flipout(filters = 4, kernel_size = 3, activation = "relu", seed = 1) |>
#'   layer_global_average_pooling_1d() |>
#'   layer_dense(2)
#' compile(model, optimizer = "adam", loss = "mse")
#' x <- array(runif(8 * 16), c(8, 16, 1))
#' fit(model, x, matrix(0, 8, 2), epochs = 1, verbose = 0)
#' length(model$losses)  # the kernel's KL divergence
#' @export
layer_conv_1d_flipout <- function(object,
                                  filters,
                                  kernel_size,
                                  strides = 1,
                                  padding = "valid",
                                  data_format = "channels_last",
                                  dilation_rate = 1,
                                  activation = NULL,
                                  activity_regularizer = NULL,
                                  trainable = TRUE,
                                  kernel_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(),
                                  kernel_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                  kernel_prior_fn = tfp$layers$util$default_multivariate_normal_fn,
                                  kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                  bias_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(is_singular = TRUE),
                                  bias_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                  bias_prior_fn = NULL,
                                  bias_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                  ...) {
  create_variational_layer("Conv1DFlipout")
}

#' Variational 1-D convolution layer with the local reparameterization estimator
#'
#' @eval variational_layer_docs("conv", rank = 1, estimator = "local_reparameterization")
#' @examples
#' library(keras3)
#' model <- keras_model_sequential(input_shape = c(16, 1)) |>
#'   layer_conv_1d_local_reparameterization(filters = 4, kernel_size = 3, activation = "relu") |>
#'   layer_global_average_pooling_1d() |>
#'   layer_dense(2)
#' compile(model, optimizer = "adam", loss = "mse")
#' x <- array(runif(8 * 16), c(8, 16, 1))
#' fit(model, x, matrix(0, 8, 2), epochs = 1, verbose = 0)
#' length(model$losses)  # the kernel's KL divergence
#' @export
layer_conv_1d_local_reparameterization <- function(object,
                                                   filters,
                                                   kernel_size,
                                                   strides = 1,
                                                   padding = "valid",
                                                   data_format = "channels_last",
                                                   dilation_rate = 1,
                                                   activation = NULL,
                                                   activity_regularizer = NULL,
                                                   trainable = TRUE,
                                                   kernel_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(),
                                                   kernel_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                                   kernel_prior_fn = tfp$layers$util$default_multivariate_normal_fn,
                                                   kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                                   bias_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(is_singular = TRUE),
                                                   bias_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                                   bias_prior_fn = NULL,
                                                   bias_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                                   ...) {
  create_variational_layer("Conv1DLocalReparameterization")
}

#' Variational 2-D convolution layer with the reparameterization estimator
#'
#' @eval variational_layer_docs("conv", rank = 2, estimator = "reparameterization")
#' @examples
#' library(keras3)
#' model <- keras_model_sequential(input_shape = c(8, 8, 1)) |>
#'   layer_conv_2d_reparameterization(filters = 4, kernel_size = 3, activation = "relu") |>
#'   layer_global_average_pooling_2d() |>
#'   layer_dense(2)
#' compile(model, optimizer = "adam", loss = "mse")
#' x <- array(runif(8 * 8 * 8), c(8, 8, 8, 1))
#' fit(model, x, matrix(0, 8, 2), epochs = 1, verbose = 0)
#' length(model$losses)  # the kernel's KL divergence
#' @export
layer_conv_2d_reparameterization <- function(object,
                                             filters,
                                             kernel_size,
                                             strides = 1,
                                             padding = "valid",
                                             data_format = "channels_last",
                                             dilation_rate = 1,
                                             activation = NULL,
                                             activity_regularizer = NULL,
                                             trainable = TRUE,
                                             kernel_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(),
                                             kernel_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                             kernel_prior_fn = tfp$layers$util$default_multivariate_normal_fn,
                                             kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                             bias_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(is_singular = TRUE),
                                             bias_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                             bias_prior_fn = NULL,
                                             bias_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                             ...) {
  create_variational_layer("Conv2DReparameterization")
}

#' Variational 2-D convolution layer with the Flipout estimator
#'
#' @eval variational_layer_docs("conv", rank = 2, estimator = "flipout")
#' @examples
#' library(keras3)
#' model <- keras_model_sequential(input_shape = c(8, 8, 1)) |>
#'   layer_conv_2d_flipout(filters = 4, kernel_size = 3, activation = "relu", seed = 1) |>
#'   layer_global_average_pooling_2d() |>
#'   layer_dense(2)
#' compile(model, optimizer = "adam", loss = "mse")
#' x <- array(runif(8 * 8 * 8), c(8, 8, 8, 1))
#' fit(model, x, matrix(0, 8, 2), epochs = 1, verbose = 0)
#' length(model$losses)  # the kernel's KL divergence
#' @export
layer_conv_2d_flipout <- function(object,
                                  filters,
                                  kernel_size,
                                  strides = 1,
                                  padding = "valid",
                                  data_format = "channels_last",
                                  dilation_rate = 1,
                                  activation = NULL,
                                  activity_regularizer = NULL,
                                  trainable = TRUE,
                                  kernel_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(),
                                  kernel_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                  kernel_prior_fn = tfp$layers$util$default_multivariate_normal_fn,
                                  kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                  bias_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(is_singular = TRUE),
                                  bias_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                  bias_prior_fn = NULL,
                                  bias_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                  ...) {
  create_variational_layer("Conv2DFlipout")
}

#' Variational 2-D convolution layer with the local reparameterization estimator
#'
#' @eval variational_layer_docs("conv", rank = 2, estimator = "local_reparameterization")
#' @examples
#' library(keras3)
#' model <- keras_model_sequential(input_shape = c(8, 8, 1)) |>
#'   layer_conv_2d_local_reparameterization(filters = 4, kernel_size = 3, activation = "relu") |>
#'   layer_global_average_pooling_2d() |>
#'   layer_dense(2)
#' compile(model, optimizer = "adam", loss = "mse")
#' x <- array(runif(8 * 8 * 8), c(8, 8, 8, 1))
#' fit(model, x, matrix(0, 8, 2), epochs = 1, verbose = 0)
#' length(model$losses)  # the kernel's KL divergence
#' @export
layer_conv_2d_local_reparameterization <- function(object,
                                                   filters,
                                                   kernel_size,
                                                   strides = 1,
                                                   padding = "valid",
                                                   data_format = "channels_last",
                                                   dilation_rate = 1,
                                                   activation = NULL,
                                                   activity_regularizer = NULL,
                                                   trainable = TRUE,
                                                   kernel_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(),
                                                   kernel_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                                   kernel_prior_fn = tfp$layers$util$default_multivariate_normal_fn,
                                                   kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                                   bias_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(is_singular = TRUE),
                                                   bias_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                                   bias_prior_fn = NULL,
                                                   bias_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                                   ...) {
  create_variational_layer("Conv2DLocalReparameterization")
}

#' Variational 3-D convolution layer with the reparameterization estimator
#'
#' @eval variational_layer_docs("conv", rank = 3, estimator = "reparameterization")
#' @examples
#' library(keras3)
#' n <- 100  # training examples per epoch: the KL is counted once per epoch
#' model <- keras_model_sequential(input_shape = c(8, 8, 8, 1)) |>
#'   layer_conv_3d_reparameterization(
#'     filters = 4, kernel_size = 3, activation = "relu",
#'     kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p) / n
#'   ) |>
#'   layer_global_average_pooling_3d() |>
#'   layer_dense(2)
#' compile(model, optimizer = "adam", loss = "mse")
#' x <- array(runif(4 * 8 * 8 * 8), c(4, 8, 8, 8, 1))
#' fit(model, x, matrix(0, 4, 2), epochs = 1, verbose = 0)
#' length(model$losses)
#' @export
layer_conv_3d_reparameterization <- function(object,
                                             filters,
                                             kernel_size,
                                             strides = 1,
                                             padding = "valid",
                                             data_format = "channels_last",
                                             dilation_rate = 1,
                                             activation = NULL,
                                             activity_regularizer = NULL,
                                             trainable = TRUE,
                                             kernel_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(),
                                             kernel_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                             kernel_prior_fn = tfp$layers$util$default_multivariate_normal_fn,
                                             kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                             bias_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(is_singular = TRUE),
                                             bias_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                             bias_prior_fn = NULL,
                                             bias_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                             ...) {
  create_variational_layer("Conv3DReparameterization")
}

#' Variational 3-D convolution layer with the Flipout estimator
#'
#' @eval variational_layer_docs("conv", rank = 3, estimator = "flipout")
#' @examples
#' library(keras3)
#' model <- keras_model_sequential(input_shape = c(8, 8, 8, 1)) |>
#'   layer_conv_3d_flipout(filters = 4, kernel_size = 3, activation = "relu", seed = 1) |>
#'   layer_global_average_pooling_3d() |>
#'   layer_dense(2)
#' compile(model, optimizer = "adam", loss = "mse")
#' x <- array(runif(8 * 8 * 8 * 8), c(8, 8, 8, 8, 1))
#' fit(model, x, matrix(0, 8, 2), epochs = 1, verbose = 0)
#' length(model$losses)  # the kernel's KL divergence
#' @export
layer_conv_3d_flipout <- function(object,
                                  filters,
                                  kernel_size,
                                  strides = 1,
                                  padding = "valid",
                                  data_format = "channels_last",
                                  dilation_rate = 1,
                                  activation = NULL,
                                  activity_regularizer = NULL,
                                  trainable = TRUE,
                                  kernel_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(),
                                  kernel_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                  kernel_prior_fn = tfp$layers$util$default_multivariate_normal_fn,
                                  kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                  bias_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(is_singular = TRUE),
                                  bias_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                  bias_prior_fn = NULL,
                                  bias_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                  ...) {
  create_variational_layer("Conv3DFlipout")
}

#' Variational 3-D convolution layer with the local reparameterization estimator
#'
#' @eval variational_layer_docs("conv", rank = 3, estimator = "local_reparameterization")
#' @examples
#' library(keras3)
#' model <- keras_model_sequential(input_shape = c(8, 8, 8, 1)) |>
#'   layer_conv_3d_local_reparameterization(filters = 4, kernel_size = 3, activation = "relu") |>
#'   layer_global_average_pooling_3d() |>
#'   layer_dense(2)
#' compile(model, optimizer = "adam", loss = "mse")
#' x <- array(runif(8 * 8 * 8 * 8), c(8, 8, 8, 8, 1))
#' fit(model, x, matrix(0, 8, 2), epochs = 1, verbose = 0)
#' length(model$losses)  # the kernel's KL divergence
#' @export
layer_conv_3d_local_reparameterization <- function(object,
                                                   filters,
                                                   kernel_size,
                                                   strides = 1,
                                                   padding = "valid",
                                                   data_format = "channels_last",
                                                   dilation_rate = 1,
                                                   activation = NULL,
                                                   activity_regularizer = NULL,
                                                   trainable = TRUE,
                                                   kernel_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(),
                                                   kernel_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                                   kernel_prior_fn = tfp$layers$util$default_multivariate_normal_fn,
                                                   kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                                   bias_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(is_singular = TRUE),
                                                   bias_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                                   bias_prior_fn = NULL,
                                                   bias_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                                   ...) {
  create_variational_layer("Conv3DLocalReparameterization")
}

#' Variational dense layer with the reparameterization estimator
#'
#' @eval variational_layer_docs("dense", estimator = "reparameterization")
#' @examples
#' library(keras3)
#' n <- 64  # training examples: the KL is counted once per epoch
#' model <- keras_model_sequential(input_shape = 4) |>
#'   layer_dense_reparameterization(units = 8, activation = "relu",
#'     kernel_divergence_fn = scaled_kl_divergence_fn(n)) |>
#'   layer_dense_reparameterization(units = 1, kernel_divergence_fn = scaled_kl_divergence_fn(n))
#' compile(model, optimizer = "adam", loss = "mse")
#' x <- matrix(runif(n * 4), n, 4)
#' fit(model, x, rowSums(x), epochs = 1, batch_size = 16, verbose = 0)
#' length(model$losses)  # one KL divergence per layer
#' @export
layer_dense_reparameterization <- function(object,
                                           units,
                                           activation = NULL,
                                           activity_regularizer = NULL,
                                           trainable = TRUE,
                                           kernel_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(),
                                           kernel_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                           kernel_prior_fn = tfp$layers$util$default_multivariate_normal_fn,
                                           kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                           bias_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(is_singular = TRUE),
                                           bias_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                           bias_prior_fn = NULL,
                                           bias_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                           ...) {
  create_variational_layer("DenseReparameterization")
}

#' Variational dense layer with the Flipout estimator
#'
#' @eval variational_layer_docs("dense", estimator = "flipout")
#' @examples
#' library(keras3)
#' n <- 64  # training examples: the KL is counted once per epoch
#' model <- keras_model_sequential(input_shape = 4) |>
#'   layer_dense_flipout(units = 8, activation = "relu",
#'     kernel_divergence_fn = scaled_kl_divergence_fn(n), seed = 1) |>
#'   layer_dense_flipout(units = 1, kernel_divergence_fn = scaled_kl_divergence_fn(n))
#' compile(model, optimizer = "adam", loss = "mse")
#' x <- matrix(runif(n * 4), n, 4)
#' fit(model, x, rowSums(x), epochs = 1, batch_size = 16, verbose = 0)
#' length(model$losses)  # one KL divergence per layer
#' @export
layer_dense_flipout <- function(object,
                                units,
                                activation = NULL,
                                activity_regularizer = NULL,
                                trainable = TRUE,
                                kernel_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(),
                                kernel_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                kernel_prior_fn = tfp$layers$util$default_multivariate_normal_fn,
                                kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                bias_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(is_singular = TRUE),
                                bias_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                bias_prior_fn = NULL,
                                bias_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                seed = NULL,
                                ...) {
  create_variational_layer("DenseFlipout")
}

#' Variational dense layer with the local reparameterization estimator
#'
#' @eval variational_layer_docs("dense", estimator = "local_reparameterization")
#' @examples
#' library(keras3)
#' n <- 64  # training examples: the KL is counted once per epoch
#' model <- keras_model_sequential(input_shape = 4) |>
#'   layer_dense_local_reparameterization(units = 8, activation = "relu",
#'     kernel_divergence_fn = scaled_kl_divergence_fn(n)) |>
#'   layer_dense_local_reparameterization(units = 1, kernel_divergence_fn = scaled_kl_divergence_fn(n))
#' compile(model, optimizer = "adam", loss = "mse")
#' x <- matrix(runif(n * 4), n, 4)
#' fit(model, x, rowSums(x), epochs = 1, batch_size = 16, verbose = 0)
#' length(model$losses)  # one KL divergence per layer
#' @export
layer_dense_local_reparameterization <- function(object,
                                                 units,
                                                 activation = NULL,
                                                 activity_regularizer = NULL,
                                                 trainable = TRUE,
                                                 kernel_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(),
                                                 kernel_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                                 kernel_prior_fn = tfp$layers$util$default_multivariate_normal_fn,
                                                 kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                                 bias_posterior_fn = tfp$layers$util$default_mean_field_normal_fn(is_singular = TRUE),
                                                 bias_posterior_tensor_fn = function(d) d %>% tfd_sample(),
                                                 bias_prior_fn = NULL,
                                                 bias_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p),
                                                 ...) {
  create_variational_layer("DenseLocalReparameterization")
}
