# TensorFlow Probability's distributions from R: the tfd_*() methods, written
# here, and the constructors, generated from TFP's signatures
# (distributions_generated.R). The methods take a distribution or what a
# distribution layer returned (a tensor carrying its distribution: model(x),
# or y_pred inside a loss); Python resolves which.

# The constructor helper: the calling tfd_*() function's arguments, as given
# (missing ones left to Python), whole numbers as integers where the class
# counts or indexes, NULL dropped where Python's default is no None.
new_distribution <- function(class_name, integers = character(), python_defaults = character()) {
  frame <- parent.frame()
  call <- sys.call(sys.parent())
  wrapper <- sys.function(sys.parent())
  args <- list()
  given <- list()
  for (name in setdiff(names(formals(wrapper)), "...")) {
    missing <- eval(substitute(missing(x), list(x = as.name(name))), frame)
    if (missing && identical(formals(wrapper)[[name]], quote(expr = ))) {
      next
    }
    value <- get(name, envir = frame, inherits = FALSE)
    if (is.null(value) && name %in% python_defaults) {
      next
    }
    given[name] <- list(value)
    value <- as_python_value(value, name, call, na_ok = TRUE)
    args[name] <- list(if (name %in% integers) as_integer(value) else value)
  }
  dots <- if ("..." %in% names(formals(wrapper))) eval(quote(list(...)), frame) else list()
  if (length(dots)) {
    args <- c(args, dots)
  }
  with_r_errors(r_bridge("distributions")$new(class_name, args), call, given)
}

tfd_method <- function(method_name, distribution, ..., call = sys.call(-1)) {
  with_r_errors(
    r_bridge("distributions")$method(method_name, distribution, ...),
    call
  )
}

#' Draw samples from a distribution
#'
#' @param distribution A TensorFlow Probability distribution, or the output of a
#'   distribution layer (such as [layer_independent_normal()]): `model(x)`, or
#'   the prediction a loss gets.
#' @param sample_shape The shape of the samples: `list()` (the default) for a
#'   single draw, or a vector of positive integers.
#' @param ... Further arguments to the distribution's `sample()` method, such
#'   as `seed`.
#' @return A tensor of samples, of shape `c(sample_shape, batch_shape,
#'   event_shape)`.
#' @examples
#' d <- tfp$distributions$Normal(loc = 0, scale = 1)
#' tfd_sample(d, sample_shape = 3)
#' @export
tfd_sample <- function(distribution, sample_shape = list(), ...) {
  call <- sys.call()
  given <- list(sample_shape = sample_shape)
  sample_shape <- as_integer(as_python_value(sample_shape, "sample_shape", call))
  if (is.numeric(sample_shape) && length(sample_shape) == 1L) {
    sample_shape <- list(sample_shape)  # one size is a vector of one, not a scalar
  }
  with_r_errors(
    r_bridge("distributions")$sample(distribution, sample_shape = sample_shape, ...),
    call, given
  )
}

#' Kullback-Leibler divergence between two distributions
#'
#' Computes `KL(distribution || other)`, analytically where TensorFlow
#' Probability knows it. For the default posteriors and priors of the
#' variational layers (such as [layer_dense_flipout()]) it is the sum over
#' every weight.
#'
#' @param distribution,other TensorFlow Probability distributions (or outputs
#'   of distribution layers).
#' @param name Name prefixed to the operations created.
#' @return A tensor with the divergence (one value per batch member).
#' @examples
#' q <- tfp$distributions$Normal(loc = 1, scale = 1)
#' p <- tfp$distributions$Normal(loc = 0, scale = 1)
#' tfd_kl_divergence(q, p)  # 0.5
#' @export
tfd_kl_divergence <- function(distribution, other, name = "kl_divergence") {
  tfd_method("kl_divergence", distribution, other, name = name)
}

#' The methods of a distribution
#'
#' Each is the distribution's method of the same name: `tfd_log_prob(d, x)` is
#' `d$log_prob(x)`. `distribution` may also be what a distribution layer
#' returned: `model(x)` for a model ending in one, or the prediction a loss
#' gets, as in `loss = function(y, rv) -(rv %>% tfd_log_prob(y))`.
#'
#' @param distribution A TensorFlow Probability distribution, or the output of a
#'   distribution layer.
#' @param value Where to evaluate (`tfd_quantile()`: the probabilities).
#' @param other Another distribution.
#' @param name Name prefixed to the operations created.
#' @param ... Further arguments to the method.
#' @return A tensor.
#' @examples
#' d <- tfd_normal(loc = c(0, 1), scale = 2)
#' tfd_mean(d)
#' tfd_stddev(d)
#' tfd_log_prob(d, c(0, 0))
#' @name tfd_methods
NULL

#' @rdname tfd_methods
#' @export
tfd_log_prob <- function(distribution, value, ...) tfd_method("log_prob", distribution, value, ...)

#' @rdname tfd_methods
#' @export
tfd_prob <- function(distribution, value, ...) tfd_method("prob", distribution, value, ...)

#' @rdname tfd_methods
#' @export
tfd_log_cdf <- function(distribution, value, ...) tfd_method("log_cdf", distribution, value, ...)

#' @rdname tfd_methods
#' @export
tfd_cdf <- function(distribution, value, ...) tfd_method("cdf", distribution, value, ...)

#' @rdname tfd_methods
#' @export
tfd_log_survival_function <- function(distribution, value, ...) {
  tfd_method("log_survival_function", distribution, value, ...)
}

#' @rdname tfd_methods
#' @export
tfd_survival_function <- function(distribution, value, ...) {
  tfd_method("survival_function", distribution, value, ...)
}

#' @rdname tfd_methods
#' @export
tfd_entropy <- function(distribution, ...) tfd_method("entropy", distribution, ...)

#' @rdname tfd_methods
#' @export
tfd_mean <- function(distribution, ...) tfd_method("mean", distribution, ...)

#' @rdname tfd_methods
#' @export
tfd_quantile <- function(distribution, value, ...) tfd_method("quantile", distribution, value, ...)

#' @rdname tfd_methods
#' @export
tfd_variance <- function(distribution, ...) tfd_method("variance", distribution, ...)

#' @rdname tfd_methods
#' @export
tfd_stddev <- function(distribution, ...) tfd_method("stddev", distribution, ...)

#' @rdname tfd_methods
#' @export
tfd_covariance <- function(distribution, ...) tfd_method("covariance", distribution, ...)

#' @rdname tfd_methods
#' @export
tfd_mode <- function(distribution, ...) tfd_method("mode", distribution, ...)

#' @rdname tfd_methods
#' @export
tfd_cross_entropy <- function(distribution, other, name = "cross_entropy") {
  tfd_method("cross_entropy", distribution, other, name = name)
}
