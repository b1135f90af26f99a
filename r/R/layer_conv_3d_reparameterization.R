#' 3-D convolution layer whose kernel and bias are drawn from distributions
#'
#' This layer creates a convolution kernel that is convolved (actually
#' cross-correlated) with the layer input to produce a tensor of outputs. It
#' may also include a bias addition and activation function on the outputs.
#' It assumes the kernel and/or bias are drawn from distributions.
#'
#' This is the variational (Bayesian) analogue of a 3-D convolution
#' ([keras3::layer_conv_3d()]), for inputs shaped
#' `(batch, depth, height, width, channels)` (or channels first). By default,
#' the layer implements a stochastic forward pass via sampling from the kernel
#' and bias posteriors,
#' `outputs = f(inputs; kernel, bias), kernel, bias ~ posterior`,
#' where f denotes the layer's calculation. It uses the reparameterization
#' estimator (Kingma and Welling, 2014): one kernel is drawn per call and
#' shared by the whole batch.
#'
#' The arguments permit separate specification of the surrogate posterior
#' (`q(W|x)`), prior (`p(W)`), and divergence for both the kernel and bias
#' distributions.
#'
#' Upon being built, this layer adds losses (accessible via the `losses`
#' property) representing the divergences of kernel and/or bias surrogate
#' posteriors and their respective priors: first the kernel's, then the
#' bias's, each only when its posterior, prior and divergence function are all
#' present. The posterior and prior distributions are available after the layer
#' is built as `layer$kernel_posterior`, `layer$kernel_prior`,
#' `layer$bias_posterior` and `layer$bias_prior`.
#'
#' @section Scaling the KL divergence:
#' Keras adds the layer's losses to the loss of every batch. When training on
#' minibatches, scale the divergence so that it counts once per epoch: with
#' `n` training examples, pass
#' `kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p) / n`
#' (and likewise `bias_divergence_fn` if the bias has a prior).
#'
#' @section Defaults and saving:
#' The default functions are the ones shown in the usage. When you leave one
#' at its default, the layer uses an equivalent built into the Python package
#' (same mathematics: loc initialised from N(0, 0.1), untransformed scale from
#' N(-3, 0.1), scale = softplus + machine epsilon, a standard Normal prior,
#' one sample per call, the analytic KL summed over all weights), which can be
#' saved with the model. A function you pass, an R function included, is
#' always used as given; a model holding an R function cannot be saved to a
#' `.keras` file (R functions cannot be serialised), and saving says so.
#'
#' @param object What to compose the layer with:
#'   * missing or `NULL`: the layer itself is returned;
#'   * a layer stack from [layer_stack()]: a new stack with the layer appended;
#'   * a Keras 3 `Sequential` model (such as [keras3::keras_model_sequential()]
#'     gives): the layer is added to the model, which is returned (as keras3's
#'     `layer_*()` functions do);
#'   * a Keras 3 symbolic tensor (from [keras3::keras_input()]), a TensorFlow
#'     tensor or an R array: the layer is applied to it and the output is
#'     returned;
#'   * a legacy `tf_keras` Sequential model or tensor: the same, with TFP's
#'     own `Convolution3DReparameterization` (a Keras 2 layer).
#' @param filters Integer, the dimensionality of the output space (i.e. the
#'   number of filters in the convolution).
#' @param kernel_size An integer or a vector of 3 integers, specifying the
#'   depth, height and width of the 3D convolution window. A single integer
#'   is used for all three.
#' @param strides An integer or a vector of 3 integers, specifying the strides
#'   of the convolution along depth, height and width. Specifying any stride
#'   value != 1 is incompatible with specifying any `dilation_rate` value != 1.
#' @param padding One of `"valid"` or `"same"` (case-insensitive).
#' @param data_format A string, one of `"channels_last"` (default) or
#'   `"channels_first"`. The ordering of the dimensions in the inputs.
#'   `channels_last` corresponds to inputs with shape
#'   `(batch, depth, height, width, channels)` while `channels_first`
#'   corresponds to inputs with shape `(batch, channels, depth, height, width)`.
#' @param dilation_rate An integer or a vector of 3 integers, specifying the
#'   dilation rate to use for dilated convolution. Currently, specifying any
#'   `dilation_rate` value != 1 is incompatible with specifying any `strides`
#'   value != 1.
#' @param activation Activation function: a name such as `"relu"`, a function,
#'   or `NULL` to maintain a linear activation.
#' @param activity_regularizer Regularizer function for the output.
#' @param trainable Whether the layer weights will be updated during training.
#' @param kernel_posterior_fn Function which creates a `tfd$Distribution`
#'   instance representing the surrogate posterior of the kernel parameter,
#'   called as `fn(dtype, shape, name, trainable, add_variable_fn)`.
#'   Default value: `default_mean_field_normal_fn()`.
#' @param kernel_posterior_tensor_fn Function which takes a `tfd$Distribution`
#'   instance and returns a representative value. Default value:
#'   `function(d) d %>% tfd_sample()`.
#' @param kernel_prior_fn Function which creates a `tfd$Distribution` instance,
#'   called like `kernel_posterior_fn`. Default value: a standard Normal over
#'   every kernel weight (`default_multivariate_normal_fn`). `NULL` for no
#'   prior (and no kernel divergence).
#' @param kernel_divergence_fn Function which takes the surrogate posterior
#'   distribution, prior distribution and random variate sample(s) from the
#'   surrogate posterior and computes or approximates the KL divergence. The
#'   distributions are `tfd$Distribution`-like instances and the sample is a
#'   Tensor (the very kernel used in the call).
#' @param bias_posterior_fn Function which creates a `tfd$Distribution`
#'   instance representing the surrogate posterior of the bias parameter.
#'   Default value: `default_mean_field_normal_fn(is_singular = TRUE)` (which
#'   creates an instance of `tfd_deterministic`). `NULL` for no bias.
#' @param bias_posterior_tensor_fn Function which takes a `tfd$Distribution`
#'   instance and returns a representative value. Default value:
#'   `function(d) d %>% tfd_sample()`.
#' @param bias_prior_fn Function which creates a `tfd` instance, called like
#'   `bias_posterior_fn`. Default value: `NULL` (no prior, no variational
#'   inference).
#' @param bias_divergence_fn Function which takes the surrogate posterior
#'   distribution, prior distribution and random variate sample(s) from the
#'   surrogate posterior and computes or approximates the KL divergence.
#' @param ... Additional keyword arguments passed to the Keras 3 layer
#'   constructed by this function, such as `name`, `dtype`, or `input_shape`
#'   (one example's shape, for the first layer of a model or stack).
#'
#' @return Depends on `object` (see above): a Keras 3 layer, a layer stack, the
#'   model, or the output tensor.
#'
#' @references Diederik Kingma and Max Welling. Auto-Encoding Variational
#'   Bayes. In International Conference on Learning Representations, 2014.
#'   <https://arxiv.org/abs/1312.6114>
#' @seealso [predict_mc()], [scaled_kl_divergence_fn()], [layer_stack()],
#'   [tfd_kl_divergence()]
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
  call <- sys.call()
  if (missing(filters)) {
    argument_error("filters", "supplied (a positive whole number)", NULL, call)
  }
  if (missing(kernel_size)) {
    argument_error("kernel_size", "supplied (1 or 3 positive whole numbers)", NULL, call)
  }
  args <- list(
    filters = as_count(filters, "filters", call),
    kernel_size = as_sizes(kernel_size, "kernel_size", call = call),
    strides = as_sizes(strides, "strides", call = call),
    padding = as_choice(padding, "padding", c("valid", "same"), call),
    data_format = as_choice(data_format, "data_format",
                            c("channels_last", "channels_first"), call),
    dilation_rate = as_sizes(dilation_rate, "dilation_rate", call = call),
    activation = as_python_value(activation, "activation", call),
    activity_regularizer = as_python_value(activity_regularizer, "activity_regularizer", call),
    trainable = as_flag(trainable, "trainable", call)
  )
  # A fn left at its documented default is replaced by the Python package's
  # serialisable equivalent (same mathematics): no R callback per trace, and
  # the model can be saved. A fn the user passes is always used as given.
  supplied <- c(
    kernel_posterior_fn = !missing(kernel_posterior_fn),
    kernel_posterior_tensor_fn = !missing(kernel_posterior_tensor_fn),
    kernel_prior_fn = !missing(kernel_prior_fn),
    kernel_divergence_fn = !missing(kernel_divergence_fn),
    bias_posterior_fn = !missing(bias_posterior_fn),
    bias_posterior_tensor_fn = !missing(bias_posterior_tensor_fn),
    bias_prior_fn = !missing(bias_prior_fn),
    bias_divergence_fn = !missing(bias_divergence_fn)
  )
  required <- c("kernel_posterior_fn", "kernel_posterior_tensor_fn")
  for (name in names(supplied)[supplied]) {
    value <- get(name, inherits = FALSE)
    # list(NULL) keeps an explicit NULL, which switches that part off.
    args[name] <- list(as_fn(value, name, null_ok = !name %in% required, call))
  }
  args <- c(args, layer_keywords(list(...), call))
  if (!missing(object) && !is.null(object)) {
    args <- c(list(as_python_value(object, "object", call)), args)
  }
  with_r_errors(do.call(bridge$layer_conv_3d_reparameterization, args), call)
}

layer_keywords <- function(keywords, call) {
  if (length(keywords) && (is.null(names(keywords)) || any(!nzchar(names(keywords))))) {
    stop(structure(
      class = c("tfprobr_value_error", "tfprobr_error", "error", "condition"),
      list(message = "Arguments in `...` must be named (such as name = \"conv\").",
           call = call)
    ))
  }
  if (!is.null(keywords$input_shape)) {
    keywords$input_shape <- as_shape(keywords$input_shape, "input_shape", call)
  }
  for (name in names(keywords)) {
    keywords[name] <- list(as_python_value(keywords[[name]], name, call))
  }
  keywords
}
