#' Draw samples from a distribution
#'
#' @param distribution A TensorFlow Probability distribution.
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
#' @param distribution,other TensorFlow Probability distributions.
#' @param name Name prefixed to the operations created.
#' @return A tensor with the divergence (one value per batch member).
#' @examples
#' q <- tfp$distributions$Normal(loc = 1, scale = 1)
#' p <- tfp$distributions$Normal(loc = 0, scale = 1)
#' tfd_kl_divergence(q, p)  # 0.5
#' @export
tfd_kl_divergence <- function(distribution, other, name = "kl_divergence") {
  with_r_errors(distribution$kl_divergence(other, name = name), sys.call())
}
