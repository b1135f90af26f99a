# tfprobability's other layer functions on keras3: the distribution layers,
# the KL divergence layers, layer_variable(), layer_dense_variational(), the
# variational Gaussian process and the autoregressive network, with
# rstudio/tfprobability's formals. Each is one call of
# create_variational_layer() (layers_create.R) with its Python class, which
# composes it with `object` as every layer_*() function does.

#' Distribution layers
#'
#' @section What the layer returns:
#' A distribution layer's output is a tensor (by default a sample of the
#' distribution, see `convert_to_tensor_fn`) that carries its distribution. The
#' `tfd_*()` methods take it as the distribution: inside a loss
#' (`loss = function(y, rv) -(rv %>% tfd_log_prob(y))`), and on what an eager call
#' returns (`model(x) %>% tfd_mean()`). Any operation on it gives a plain tensor.
#' @name distribution-layers
#' @keywords internal
NULL

#' A layer whose output is a distribution
#'
#' Keras 3's version of TensorFlow Probability's `DistributionLambda`: the layer
#' calls `make_distribution_fn` on its input and returns the distribution, as a
#' tensor that carries it.
#'
#' @inheritSection distribution-layers What the layer returns
#' @param object What to compose the layer with: missing or `NULL` for the layer
#'   itself, a Keras 3 `Sequential` model (the layer is added), a layer stack
#'   ([layer_stack()]), or a tensor (the layer is applied to it).
#' @param make_distribution_fn A function of the layer's input (a tensor, or the
#'   distribution of a distribution layer before it) that returns a TensorFlow
#'   Probability distribution, such as
#'   `function(x) tfd_normal(loc = x, scale = 1)`.
#' @param convert_to_tensor_fn What of the distribution the layer's output tensor
#'   holds: `tfp$distributions$Distribution$sample` (the default, one draw),
#'   `$mean`, `$mode`, their names (`"mean"`), or a function of the distribution.
#' @param ... Keras layer arguments such as `name`, `dtype` or `input_shape`.
#' @return Depends on `object`: see its description.
#' @examples
#' \dontrun{
#' library(keras3)
#' model <- keras_model_sequential(input_shape = 1) |>
#'   layer_dense(2) |>
#'   layer_distribution_lambda(function(x) {
#'     tfd_normal(loc = x[, 1, drop = FALSE],
#'                scale = 1e-3 + tf$math$softplus(x[, 2, drop = FALSE]))
#'   })
#' }
#' @family distribution layers
#' @export
layer_distribution_lambda <- function(object,
                                      make_distribution_fn,
                                      convert_to_tensor_fn = tfp$distributions$Distribution$sample,
                                      ...) {
  create_variational_layer("DistributionLambda")
}

#' An independent Normal distribution layer
#'
#' Reads its input as the locations and (softplus) scales of
#' `prod(event_shape)` independent Normals: the layer before it must output
#' `params_size_independent_normal(event_shape)` values.
#'
#' @inheritSection distribution-layers What the layer returns
#' @inheritParams layer_distribution_lambda
#' @param event_shape Integer vector, the shape of one event.
#' @param validate_args Whether the distribution checks its arguments.
#' @family distribution layers
#' @export
layer_independent_normal <- function(object,
                                     event_shape,
                                     convert_to_tensor_fn = tfp$distributions$Distribution$sample,
                                     validate_args = FALSE,
                                     ...) {
  create_variational_layer("IndependentNormal")
}

#' An independent Bernoulli distribution layer
#'
#' Reads its input as the logits of `prod(event_shape)` independent Bernoullis.
#'
#' @inheritSection distribution-layers What the layer returns
#' @inheritParams layer_independent_normal
#' @param sample_dtype The dtype of its samples (`NULL`: the layer's dtype).
#' @family distribution layers
#' @export
layer_independent_bernoulli <- function(object,
                                        event_shape,
                                        convert_to_tensor_fn = tfp$distributions$Distribution$sample,
                                        sample_dtype = NULL,
                                        validate_args = FALSE,
                                        ...) {
  create_variational_layer("IndependentBernoulli")
}

#' An independent Logistic distribution layer
#'
#' Reads its input as the locations and (softplus) scales of
#' `prod(event_shape)` independent Logistics.
#'
#' @inheritSection distribution-layers What the layer returns
#' @inheritParams layer_independent_normal
#' @family distribution layers
#' @export
layer_independent_logistic <- function(object,
                                       event_shape,
                                       convert_to_tensor_fn = tfp$distributions$Distribution$sample,
                                       validate_args = FALSE,
                                       ...) {
  create_variational_layer("IndependentLogistic")
}

#' An independent Poisson distribution layer
#'
#' Reads its input as the log rates of `prod(event_shape)` independent Poissons.
#'
#' @inheritSection distribution-layers What the layer returns
#' @inheritParams layer_independent_normal
#' @family distribution layers
#' @export
layer_independent_poisson <- function(object,
                                      event_shape,
                                      convert_to_tensor_fn = tfp$distributions$Distribution$sample,
                                      validate_args = FALSE,
                                      ...) {
  create_variational_layer("IndependentPoisson")
}

#' A multivariate Normal distribution layer (lower-triangular scale)
#'
#' Reads its input as the location and the lower-triangular scale of an
#' `event_size`-dimensional Normal: `params_size_multivariate_normal_tri_l(event_size)`
#' values.
#'
#' @inheritSection distribution-layers What the layer returns
#' @inheritParams layer_independent_normal
#' @param event_size Integer, the number of dimensions of one event.
#' @family distribution layers
#' @export
layer_multivariate_normal_tri_l <- function(object,
                                            event_size,
                                            convert_to_tensor_fn = tfp$distributions$Distribution$sample,
                                            validate_args = FALSE,
                                            ...) {
  create_variational_layer("MultivariateNormalTriL")
}

#' A one-hot categorical distribution layer
#'
#' Reads its input as the logits of an `event_size`-class categorical whose
#' events are one-hot vectors.
#'
#' @inheritSection distribution-layers What the layer returns
#' @inheritParams layer_independent_bernoulli
#' @param event_size Integer, the number of classes.
#' @family distribution layers
#' @export
layer_one_hot_categorical <- function(object,
                                      event_size,
                                      convert_to_tensor_fn = tfp$distributions$Distribution$sample,
                                      sample_dtype = NULL,
                                      validate_args = FALSE,
                                      ...) {
  create_variational_layer("OneHotCategorical")
}

#' A mixture of one-hot categorical distributions layer
#'
#' Reads its input as the mixture logits and each component's logits:
#' `params_size_categorical_mixture_of_one_hot_categorical(event_size, num_components)`
#' values.
#'
#' @inheritSection distribution-layers What the layer returns
#' @inheritParams layer_one_hot_categorical
#' @param num_components Integer, the number of components.
#' @family distribution layers
#' @export
layer_categorical_mixture_of_one_hot_categorical <- function(object,
                                                             event_size,
                                                             num_components,
                                                             convert_to_tensor_fn = tfp$distributions$Distribution$sample,
                                                             sample_dtype = NULL,
                                                             validate_args = FALSE,
                                                             ...) {
  create_variational_layer("CategoricalMixtureOfOneHotCategorical")
}

#' A mixture of one family of distributions layer
#'
#' Reads its input as the mixture logits, then each component's parameters, which
#' it hands to `component_layer`: `params_size_mixture_same_family(num_components,
#' component_params_size)` values.
#'
#' @inheritSection distribution-layers What the layer returns
#' @inheritParams layer_independent_normal
#' @param num_components Integer, the number of components.
#' @param component_layer The distribution layer of one component, such as
#'   `layer_independent_normal(event_shape = 1)`.
#' @family distribution layers
#' @export
layer_mixture_same_family <- function(object,
                                      num_components,
                                      component_layer,
                                      convert_to_tensor_fn = tfp$distributions$Distribution$sample,
                                      validate_args = FALSE,
                                      ...) {
  create_variational_layer("MixtureSameFamily")
}

#' A mixture of Normals layer
#'
#' A [layer_mixture_same_family()] of independent Normals:
#' `params_size_mixture_normal(num_components, event_shape)` values.
#'
#' @inheritSection distribution-layers What the layer returns
#' @inheritParams layer_mixture_same_family
#' @param event_shape Integer vector, the shape of one event (`list()`: scalar).
#' @family distribution layers
#' @export
layer_mixture_normal <- function(object,
                                 num_components,
                                 event_shape = list(),
                                 convert_to_tensor_fn = tfp$distributions$Distribution$sample,
                                 validate_args = FALSE,
                                 ...) {
  create_variational_layer("MixtureNormal")
}

#' A mixture of Logistics layer
#'
#' A [layer_mixture_same_family()] of independent Logistics:
#' `params_size_mixture_logistic(num_components, event_shape)` values.
#'
#' @inheritSection distribution-layers What the layer returns
#' @inheritParams layer_mixture_normal
#' @family distribution layers
#' @export
layer_mixture_logistic <- function(object,
                                   num_components,
                                   event_shape = list(),
                                   convert_to_tensor_fn = tfp$distributions$Distribution$sample,
                                   validate_args = FALSE,
                                   ...) {
  create_variational_layer("MixtureLogistic")
}

#' A layer that adds the KL divergence of its input distribution to the losses
#'
#' Passes its input (the output of a distribution layer) through unchanged and adds
#' `weight * KL(input || distribution_b)` to the model's losses, exact or estimated
#' at `test_points_fn(input)`.
#'
#' @inheritParams layer_distribution_lambda
#' @param distribution_b The distribution to measure against (a prior), such as
#'   `tfd_independent(tfd_normal(loc = rep(0, 2), scale = 1), 1)`.
#' @param use_exact_kl Whether to use the analytic KL divergence (`TRUE`) or a
#'   Monte Carlo estimate at the test points (`FALSE`).
#' @param test_points_reduce_axis The axes over which the test points' log ratios
#'   are averaged: `NULL` for all of them, `list()` for none.
#' @param test_points_fn A function of the input distribution giving the points
#'   where the KL is estimated (default: its tensor).
#' @param weight A multiplier of the KL, such as `1 / n_train` (`NULL`: 1).
#' @family distribution layers
#' @export
layer_kl_divergence_add_loss <- function(object,
                                         distribution_b,
                                         use_exact_kl = FALSE,
                                         test_points_reduce_axis = NULL,
                                         test_points_fn = tf$convert_to_tensor,
                                         weight = NULL,
                                         ...) {
  create_variational_layer("KLDivergenceAddLoss")
}

#' A regularizer penalising the KL divergence of a layer's output distribution
#'
#' Not a layer but an activity regularizer: pass it as
#' `activity_regularizer =` of a distribution layer, which then adds
#' `weight * KL(output || distribution_b)` to the model's losses. Given an
#' `object` (a distribution layer's output), it returns that KL for it.
#'
#' @inheritParams layer_kl_divergence_add_loss
#' @family distribution layers
#' @export
layer_kl_divergence_regularizer <- function(object,
                                            distribution_b,
                                            use_exact_kl = FALSE,
                                            test_points_reduce_axis = NULL,
                                            test_points_fn = tf$convert_to_tensor,
                                            weight = NULL,
                                            ...) {
  create_variational_layer("KLDivergenceRegularizer")
}

#' A layer that outputs a trainable variable, whatever its input
#'
#' Ignores its input's values and returns one trainable variable (through
#' `activation`, if given): the parameters of the posterior or prior of
#' [layer_dense_variational()].
#'
#' @inheritParams layer_distribution_lambda
#' @param shape Integer vector, the variable's shape.
#' @param dtype The variable's dtype (`NULL`: Keras's float type).
#' @param activation An activation applied to the variable.
#' @param initializer The variable's initializer (`"zeros"`).
#' @param regularizer A regularizer of the variable.
#' @param constraint A constraint on the variable.
#' @family distribution layers
#' @export
layer_variable <- function(object,
                           shape,
                           dtype = NULL,
                           activation = NULL,
                           initializer = "zeros",
                           regularizer = NULL,
                           constraint = NULL,
                           ...) {
  create_variational_layer("VariableLayer")
}

#' Dense variational layer: a dense layer whose weights have a learned posterior
#'
#' The kernel and bias are one vector of `kernel_size + bias_size` weights, drawn
#' from the distribution `make_posterior_fn` makes, and a KL divergence to
#' `make_prior_fn`'s distribution (times `kl_weight`) is added to the losses.
#'
#' @inheritParams layer_distribution_lambda
#' @param units Integer, the number of output features.
#' @param make_posterior_fn A function of `(kernel_size, bias_size, dtype)` that
#'   returns a model (such as a [keras3::keras_model_sequential()] of
#'   [layer_variable()] and [layer_distribution_lambda()]) whose output is the
#'   posterior over the weights.
#' @param make_prior_fn The same for the prior.
#' @param kl_weight A multiplier of the KL divergence, such as `1 / n_train`.
#' @param kl_use_exact Whether to use the analytic KL (`TRUE`) or a one-sample
#'   estimate (`FALSE`).
#' @param activation Activation function: a name such as `"relu"`, a function, or
#'   `NULL` for none.
#' @param use_bias Whether the layer has a bias.
#' @family distribution layers
#' @export
layer_dense_variational <- function(object,
                                    units,
                                    make_posterior_fn,
                                    make_prior_fn,
                                    kl_weight = NULL,
                                    kl_use_exact = FALSE,
                                    activation = NULL,
                                    use_bias = TRUE,
                                    ...) {
  create_variational_layer("DenseVariational")
}

#' A variational Gaussian process layer
#'
#' Outputs a variational Gaussian process over its input (the index points), with
#' `num_inducing_points` learned inducing points and the kernel
#' `kernel_provider$kernel` gives. Its loss is the process's variational loss:
#' see TensorFlow Probability's `VariationalGaussianProcess`.
#'
#' @inheritSection distribution-layers What the layer returns
#' @inheritParams layer_distribution_lambda
#' @param num_inducing_points Integer, the number of inducing points.
#' @param kernel_provider A layer (or object) whose `kernel` property is a
#'   positive-semidefinite kernel (`tfp$math$psd_kernels`).
#' @param event_shape Integer vector, the shape of the process's output per index
#'   point (`1`).
#' @param inducing_index_points_initializer The inducing points' initializer.
#' @param unconstrained_observation_noise_variance_initializer The initializer of
#'   the observation noise's variance before a softplus (`NULL`: a constant -10,
#'   as rstudio/tfprobability).
#' @param mean_fn A function of the index points giving the prior mean (`NULL`:
#'   a learned constant).
#' @param jitter A small number added to the kernel's diagonal.
#' @param name The layer's name.
#' @family distribution layers
#' @export
layer_variational_gaussian_process <- function(object,
                                               num_inducing_points,
                                               kernel_provider,
                                               event_shape = 1,
                                               inducing_index_points_initializer = NULL,
                                               unconstrained_observation_noise_variance_initializer = NULL,
                                               mean_fn = NULL,
                                               jitter = 1e-06,
                                               name = NULL) {
  if (is.null(unconstrained_observation_noise_variance_initializer)) {
    unconstrained_observation_noise_variance_initializer <- keras3::initializer_constant(-10)
  }
  create_variational_layer("VariationalGaussianProcess")
}

#' A masked autoregressive network (MADE)
#'
#' A dense network whose output for event dimension `i` depends only on the
#' input's dimensions before `i` (Germain et al., 2015): the shift and log scale
#' of [layer_autoregressive_transform()] or a masked autoregressive flow.
#'
#' @inheritParams layer_distribution_lambda
#' @param params Integer, the number of parameters per event dimension.
#' @param event_shape Integer vector, the shape of one event (`NULL`: from the
#'   first input).
#' @param hidden_units Integer vector, the widths of the hidden layers.
#' @param input_order The order of the input's dimensions: `"left-to-right"`,
#'   `"right-to-left"`, `"random"`, or an integer vector.
#' @param hidden_degrees How the hidden units' degrees are set: `"equal"` or
#'   `"random"`.
#' @param activation The hidden layers' activation.
#' @param use_bias Whether the dense layers have biases.
#' @param kernel_initializer The kernels' initializer.
#' @param validate_args Whether the arguments are checked.
#' @family distribution layers
#' @export
layer_autoregressive <- function(object,
                                 params,
                                 event_shape = NULL,
                                 hidden_units = NULL,
                                 input_order = "left-to-right",
                                 hidden_degrees = "equal",
                                 activation = NULL,
                                 use_bias = TRUE,
                                 kernel_initializer = "glorot_uniform",
                                 validate_args = FALSE,
                                 ...) {
  if (is.null(hidden_units)) {
    hidden_units <- list()
  }
  create_variational_layer("AutoregressiveNetwork")
}

#' A masked autoregressive flow of its input distribution
#'
#' Transforms the distribution before it (such as a standard Normal from
#' [layer_distribution_lambda()]) by the masked autoregressive bijector whose shift
#' and log scale `made` computes.
#'
#' @inheritSection distribution-layers What the layer returns
#' @inheritParams layer_distribution_lambda
#' @param made A [layer_autoregressive()] with `params = 2`.
#' @family distribution layers
#' @export
layer_autoregressive_transform <- function(object, made, ...) {
  create_variational_layer("AutoregressiveTransform")
}

# The params_size_*() functions: how many values the layer before a
# distribution layer must output. Python's static methods take the sizes
# positionally, in the R functions' order.
params_size <- function(class_name, ..., python_names = c()) {
  call <- sys.call(-1)
  given <- list(...)
  method <- reticulate::py_get_attr(reticulate::py_get_attr(bridge, class_name), "params_size")
  # Python's messages name Python's parameter: say the R function's name for it.
  tryCatch(
    with_r_errors({
      args <- Map(function(value, name) as_integer(as_python_value(value, name, call)),
                  given, names(given))
      as.integer(reticulate::py_to_r(do.call(reticulate::py_call, c(list(method), unname(args)))))
    }, call, given),
    tfprobr_error = function(error) {
      # unclass(): `$<-` on a condition that is also a Python object would set a Python
      # attribute, not the R message.
      fields <- unclass(error)
      for (python in names(python_names)) {
        fields$message <- gsub(python, python_names[[python]], fields$message, fixed = TRUE)
      }
      stop(structure(fields, class = class(error)))
    }
  )
}

#' The number of values a distribution layer reads
#'
#' What the layer before a distribution layer must output, such as
#' `layer_dense(units = params_size_independent_normal(event_size))`.
#'
#' @param event_size Integer, the number of dimensions of one event (for the
#'   independent layers, an integer vector: the event's shape).
#' @param num_components Integer, the number of mixture components.
#' @param component_params_size Integer, the number of parameters of one component,
#'   such as `params_size_independent_normal(1)`.
#' @param event_shape Integer vector, the shape of one event.
#' @return An integer.
#' @examples
#' \dontrun{
#' params_size_independent_normal(3)                                # 6
#' params_size_mixture_normal(5, 1)                                 # 15
#' params_size_mixture_same_family(5, params_size_independent_normal(1))  # 15
#' }
#' @name params_size
NULL

#' @rdname params_size
#' @export
params_size_independent_normal <- function(event_size) {
  params_size("IndependentNormal", event_shape = event_size, python_names = c(event_shape = "event_size"))
}

#' @rdname params_size
#' @export
params_size_independent_logistic <- function(event_size) {
  params_size("IndependentLogistic", event_shape = event_size, python_names = c(event_shape = "event_size"))
}

#' @rdname params_size
#' @export
params_size_independent_bernoulli <- function(event_size) {
  params_size("IndependentBernoulli", event_shape = event_size, python_names = c(event_shape = "event_size"))
}

#' @rdname params_size
#' @export
params_size_independent_poisson <- function(event_size) {
  params_size("IndependentPoisson", event_shape = event_size, python_names = c(event_shape = "event_size"))
}

#' @rdname params_size
#' @export
params_size_multivariate_normal_tri_l <- function(event_size) {
  params_size("MultivariateNormalTriL", event_size = event_size)
}

#' @rdname params_size
#' @export
params_size_one_hot_categorical <- function(event_size) {
  params_size("OneHotCategorical", event_size = event_size)
}

#' @rdname params_size
#' @export
params_size_categorical_mixture_of_one_hot_categorical <- function(event_size, num_components) {
  params_size("CategoricalMixtureOfOneHotCategorical",
              event_size = event_size, num_components = num_components)
}

#' @rdname params_size
#' @export
params_size_mixture_same_family <- function(num_components, component_params_size) {
  params_size("MixtureSameFamily",
              num_components = num_components, component_params_size = component_params_size)
}

#' @rdname params_size
#' @export
params_size_mixture_normal <- function(num_components, event_shape) {
  params_size("MixtureNormal", num_components = num_components, event_shape = event_shape)
}

#' @rdname params_size
#' @export
params_size_mixture_logistic <- function(num_components, event_shape) {
  params_size("MixtureLogistic", num_components = num_components, event_shape = event_shape)
}
