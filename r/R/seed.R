#' Make a session's random numbers repeatable
#'
#' Seeds R's random number generator (`set.seed()`) and, through Keras's
#' `keras.utils.set_random_seed()`, Python's, NumPy's, TensorFlow's and
#' Keras's. After `set_random_seed(s)`, a script that builds a model with
#' [layer_conv_3d_reparameterization()], calls it and trains it gives
#' bit-identical outputs, KL values and losses each time it runs in a fresh R
#' session on the same machine and versions (`make test` checks this in two
#' fresh R processes). It is the R equivalent of the Python
#' `keras.utils.set_random_seed(s)` (and has the name and meaning of
#' `keras3::set_random_seed()`).
#'
#' To make one layer's kernel draws repeatable on their own, whatever else the
#' session draws, give that layer a seed:
#' `layer_conv_3d_reparameterization(..., seed = 1)` (the seed is saved with
#' the model's configuration).
#'
#' @param seed A whole number from 0 to 2147483647.
#' @return `seed`, invisibly.
#' @examples
#' set_random_seed(42)
#' layer <- layer_conv_3d_reparameterization(filters = 2, kernel_size = 3)
#' first <- as.array(layer(array(1, c(1, 4, 4, 4, 1)))$numpy())
#' set_random_seed(42)
#' layer <- layer_conv_3d_reparameterization(filters = 2, kernel_size = 3)
#' identical(first, as.array(layer(array(1, c(1, 4, 4, 4, 1)))$numpy()))
#' @export
set_random_seed <- function(seed) {
  call <- sys.call()
  if (length(seed) != 1L || !is_whole(seed) || seed < 0) {
    argument_error("seed", "a whole number from 0 to 2147483647", seed, call)
  }
  seed <- as.integer(seed)
  with_r_errors(keras$utils$set_random_seed(seed), call)
  set.seed(seed)
  invisible(seed)
}
