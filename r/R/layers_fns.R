# Divergence functions that save with a model (an R closure cannot).

#' A KL divergence function scaled to count once per epoch, that can be saved
#'
#' Returns the divergence function `function(q, p, ignore)
#' tfd_kl_divergence(q, p) / num_examples`, as a Python object that is saved
#' with the model (an R closure cannot be) and loads with
#' keras3's `load_model()` in Keras's safe mode.
#'
#' Keras adds a layer's losses to the mean loss of every batch, so the KL
#' divergence, which belongs to the whole training set, must be divided by the
#' number of examples the loss averages over in one epoch. For segmentation,
#' where the loss averages over voxels, that is the number of labelled voxels.
#'
#' @param num_examples Positive number: training examples per epoch.
#' @return A divergence function for `kernel_divergence_fn` or
#'   `bias_divergence_fn` of the variational layers (such as
#'   [layer_conv_3d_reparameterization()]).
#' @examples
#' layer <- layer_conv_3d_reparameterization(
#'   filters = 2, kernel_size = 3,
#'   kernel_divergence_fn = scaled_kl_divergence_fn(1000)
#' )
#' layer$kernel_divergence_fn
#' @export
scaled_kl_divergence_fn <- function(num_examples) {
  call <- sys.call()
  with_r_errors(
    bridge$scaled_kl_divergence_fn(as_python_value(num_examples, "num_examples", call)),
    call
  )
}
