# Warm start: a Bayesian copy of a trained deterministic model (MOPED).

#' A Bayesian copy of a trained keras3 model, its posteriors started at the trained weights
#'
#' Warm start (MOPED; Krishnan, Subedar and Tickoo, "Specifying weight priors
#' in Bayesian deep neural networks with empirical Bayes", AAAI 2020): every
#' plain Keras `Conv1D`, `Conv2D`, `Conv3D` and `Dense` layer (keras3's
#' [keras3::layer_conv_1d()] to [keras3::layer_conv_3d()] and
#' [keras3::layer_dense()]), or with `layers` the ones named, is replaced by
#' the variational layer of the same rank and `estimator` (such as
#' [layer_conv_3d_reparameterization()] or [layer_dense_flipout()]), with the
#' same name, `filters` or `units`, `kernel_size`, `strides`, `padding`,
#' `data_format`, `dilation_rate`, `activation`, activity regularizer, dtype
#' policy and `trainable` flag. Every other layer is copied with its weights,
#' inside nested sequential and functional models too. `model` is not
#' changed. A compiled model gives a copy compiled the same way (with a fresh
#' optimizer state); otherwise compile the copy.
#'
#' Each kernel's posterior mean starts at the trained kernel `w` and its scale
#' at `max(delta * abs(w), 1e-5)`; the bias, a point mass as in the layers'
#' defaults, starts at the trained bias. The kernel's prior is
#' * `"standard"`: the layers' default standard Normal;
#' * `"empirical"` (empirical Bayes): `Normal(w, max(delta * abs(w), 1e-5))`,
#'   the distribution the posterior starts at, so the KL divergence is 0 at
#'   the start and then measures how far training moves the posterior from
#'   the trained network. Its values are non-trainable weights, saved with the
#'   model.
#'
#' Grouped convolutions, `padding = "causal"` and quantized or LoRA-enabled
#' dense layers have no variational version: they are copied unchanged (and
#' naming one in `layers` is an error). Kernel and bias regularizers and
#' constraints are not carried over: the KL divergence takes their place.
#' With the posterior means as weights the copy computes what `model`
#' computes; with sampled weights, its predictions (such as [predict_mc()]'s
#' mean) match up to Monte Carlo error of order `delta`.
#'
#' @param model A built keras3 model: sequential ([keras3::keras_model_sequential()]
#'   with an input shape) or functional ([keras3::keras_model()]).
#' @param estimator `"reparameterization"`, `"flipout"` or
#'   `"local_reparameterization"`: which variational layers replace the
#'   deterministic ones.
#' @param delta Positive number: each posterior's starting scale relative to
#'   its trained weight's magnitude.
#' @param prior `"standard"` or `"empirical"` (see Details).
#' @param num_examples Required: the number of training examples per epoch
#'   (every labelled voxel, for segmentation). Each layer's KL divergence is
#'   divided by it ([scaled_kl_divergence_fn()]), so that it counts once per
#'   epoch. Unscaled, the KL of a whole network is added to every batch's loss
#'   and outweighs the data: fine-tuning then pulls the weights to the prior
#'   and undoes the trained network. `num_examples = 1` keeps the KL unscaled.
#' @param layers `NULL` to convert every layer that can be, or a character
#'   vector of the names of the layers to convert.
#' @return A new keras3 model with the same inputs, outputs and layer names;
#'   it trains with `fit()`, predicts with [predict_mc()], and saves and loads
#'   with keras3's `save_model()` and `load_model()`.
#' @seealso [predict_mc()], [scaled_kl_divergence_fn()].
#' @examples
#' library(keras3)
#' deterministic <- keras_model_sequential(input_shape = c(6, 6, 1)) |>
#'   layer_conv_2d(filters = 4, kernel_size = 3, activation = "relu", name = "features") |>
#'   layer_global_average_pooling_2d() |>
#'   layer_dense(units = 2, name = "logits")
#' bayesian <- to_bayesian(deterministic, estimator = "flipout", delta = 0.05,
#'                         num_examples = 1000)
#' vapply(bayesian$layers, function(layer) class(layer)[1], "")
#' # The posterior means are the trained weights:
#' features <- get_layer(bayesian, "features")
#' all.equal(as.array(features$kernel_posterior$mean()),
#'           get_weights(get_layer(deterministic, "features"))[[1]])
#' @export
to_bayesian <- function(model, estimator = "reparameterization", delta = 0.1,
                        prior = "standard", num_examples, layers = NULL) {
  call <- sys.call()
  if (missing(num_examples)) {
    num_examples <- NULL  # Python says it is required, and why.
  }
  given <- list(estimator = estimator, delta = delta, prior = prior,
                num_examples = num_examples, layers = layers)
  with_r_errors(bridge$to_bayesian(
    as_python_value(model, "model", call),
    estimator = as_python_value(estimator, "estimator", call),
    delta = as_python_value(delta, "delta", call),
    prior = as_python_value(prior, "prior", call),
    num_examples = as_integer(as_python_value(num_examples, "num_examples", call)),
    layers = as_python_value(layers, "layers", call)
  ), call, given)
}
