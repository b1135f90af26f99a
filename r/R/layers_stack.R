#' A pipe-friendly stack of Keras 3 layers
#'
#' `layer_stack()` starts an immutable stack of layers. Piping it into a
#' variational layer (such as [layer_conv_3d_reparameterization()]) or
#' [add_layer()] returns a new stack with one more layer (the old one is
#' unchanged), and [as_keras_model()] turns it into a Keras 3 `Sequential`
#' model. Both `%>%` and `|>` work.
#'
#' @param input_shape One example's shape, without the batch dimension, such
#'   as `c(16, 16, 16, 1)`; `NA` for an unknown size. `NULL` leaves the model
#'   unbuilt until data arrive.
#' @param ... Keras 3 layers to start the stack with, in order.
#' @param name Name of the model made by [as_keras_model()].
#' @return A layer stack (the Python class `tfprobr_bridge.LayerStack`); it
#'   prints the list of its layers.
#' @seealso [add_layer()], [as_keras_model()]
#' @examples
#' stack <- layer_stack(input_shape = c(8, 8, 8, 1)) |>
#'   layer_conv_3d_reparameterization(filters = 4, kernel_size = 3) |>
#'   add_layer(keras3::layer_global_average_pooling_3d())
#' stack
#' length(stack)
#' @export
layer_stack <- function(input_shape = NULL, ..., name = NULL) {
  call <- sys.call()
  layers <- lapply(list(...), as_python_value, name = "layers", call = call)
  with_r_errors(
    bridge$LayerStack(input_shape = as_shape(input_shape, "input_shape", call),
                      name = as_python_value(name, "name", call), layers = layers),
    call, list(input_shape = input_shape, name = name)
  )
}

#' Add any Keras 3 layer to a stack, a model or a tensor
#'
#' Composes `layer` with `object` the way the variational layers (such as
#' [layer_conv_3d_reparameterization()]) do, so that any Keras 3 layer (such
#' as keras3's `layer_*()` give) can join a stack.
#'
#' @param object `NULL`, a layer stack, a Keras 3 `Sequential` model, or a
#'   tensor or array (see [layer_conv_3d_reparameterization()]).
#' @param layer A Keras 3 layer, such as `keras3::layer_dense(units = 10)`.
#' @return A new stack; the model, with the layer added; or the layer's output
#'   for a tensor. If the layer does not fit a model, the model is unchanged.
#' @examples
#' layer_stack(input_shape = c(4, 4, 4, 1)) |>
#'   add_layer(keras3::layer_flatten()) |>
#'   add_layer(keras3::layer_dense(units = 2))
#' @export
add_layer <- function(object, layer) {
  call <- sys.call()
  given <- list(layer = layer)
  if (!missing(object)) {
    given$object <- object
  }
  object <- if (missing(object)) NULL else as_python_value(object, "object", call, na_ok = TRUE)
  with_r_errors(bridge$add_layer(object, as_python_value(layer, "layer", call)), call, given)
}

#' A Keras 3 model from a layer stack
#'
#' @param object A layer stack from [layer_stack()], or a Keras 3 model (which
#'   is returned as it is).
#' @return A Keras 3 model, ready for keras3's `compile()`, `fit()`,
#'   `predict()` and `save_model()`.
#' @examples
#' model <- layer_stack(input_shape = c(4, 4, 4, 1)) |>
#'   layer_conv_3d_reparameterization(filters = 2, kernel_size = 3) |>
#'   as_keras_model()
#' model$output_shape
#' @export
as_keras_model <- function(object) {
  call <- sys.call()
  if (is_instance(object, bridge$LayerStack)) {
    return(with_r_errors(object$to_model(), call))
  }
  if (is_instance(object, keras3::keras$Model)) {
    return(object)
  }
  argument_error("object", "a layer stack (from layer_stack()) or a Keras 3 model",
                 object, call)
}
