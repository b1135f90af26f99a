#' Train a Keras 3 model from R, safely interruptible
#'
#' Calls the model's `fit()` method after turning R data into NumPy arrays
#' that NumPy owns: R arrays (any numeric or logical array, matrix or vector),
#' lists of them (several inputs or outputs), and named lists (inputs by
#' name). Other values (NumPy arrays, tensors, `tf.data` datasets) pass
#' through unchanged.
#'
#' Why not `model$fit(x, y)` with R arrays? reticulate 1.28 hands R arrays to
#' NumPy without copying them, so NumPy and TensorFlow read R's memory. If an
#' interrupt (Ctrl+C, Esc) lands while TensorFlow is computing, that memory
#' can be left in a state where the next call crashes R. `fit()` copies the
#' data once (in C order, as Keras prefers), so an interrupt stops training
#' with R's usual interrupt condition and the model stays usable: its weights
#' are those of the last completed step and it can be trained further, used
#' for prediction and saved. A Python exception during training (from a
#' callback, say) becomes one R error of class `tfprobr_error`, with the same
#' guarantee.
#'
#' @param object A compiled Keras 3 model.
#' @param x,y Inputs and targets (see above).
#' @param batch_size,epochs Whole numbers (or `NULL` for Keras's default
#'   batch size).
#' @param verbose `"auto"`, `0`, `1` or `2`, as in Keras.
#' @param ... Further arguments to Keras's `Model.fit()`, such as
#'   `callbacks`, `validation_data` (converted like `x` and `y`),
#'   `validation_split` or `shuffle`. `steps_per_epoch`, `validation_steps`,
#'   `validation_batch_size` and `validation_freq` take whole numbers.
#' @return The Keras `History` object, invisibly (`history$history$loss`
#'   holds the per-epoch losses).
#' @examples
#' model <- layer_stack(input_shape = c(4, 4, 4, 1)) |>
#'   layer_conv_3d_reparameterization(filters = 2, kernel_size = 3) |>
#'   add_layer(keras$layers$Flatten()) |>
#'   add_layer(keras$layers$Dense(1L)) |>
#'   as_keras_model()
#' model$compile(optimizer = "adam", loss = "mse")
#' history <- fit(model, array(runif(8 * 64), c(8, 4, 4, 4, 1)), runif(8),
#'                epochs = 2, verbose = 0)
#' unlist(history$history$loss)
#' @export
fit <- function(object, x = NULL, y = NULL, batch_size = NULL, epochs = 1, verbose = "auto",
                ...) {
  call <- sys.call()
  if (!is_python(object) || !reticulate::py_has_attr(object, "fit")) {
    argument_error("object", "a compiled Keras 3 model", object, call)
  }
  arguments <- list(...)
  if (!is.null(arguments$validation_data)) {
    arguments$validation_data <- as_numpy_data(arguments$validation_data, "validation_data", call)
  }
  if (!is.null(arguments$initial_epoch)) {
    arguments$initial_epoch <- as.integer(arguments$initial_epoch)
  }
  # Keras wants Python integers for these; R writes `steps_per_epoch = 1`.
  for (name in intersect(c("steps_per_epoch", "validation_steps", "validation_batch_size",
                           "validation_freq"), names(arguments))) {
    arguments[name] <- list(as_count(arguments[[name]], name, call))
  }
  history <- with_r_errors(do.call(object$fit, c(list(
    x = as_numpy_data(x, "x", call),
    y = as_numpy_data(y, "y", call),
    batch_size = as_count(batch_size, "batch_size", call),
    epochs = as_count(epochs, "epochs", call),
    verbose = as_verbose(verbose)
  ), arguments)), call)
  invisible(history)
}

# R data as NumPy-owned arrays (copied in C order); lists element by element.
as_numpy_data <- function(x, name, call) {
  if (is.null(x) || is_python(x)) {
    return(x)
  }
  if (is.data.frame(x)) {
    x <- as.matrix(x)
  }
  if (is.list(x)) {
    converted <- lapply(x, as_numpy_data, name = name, call = call)
    return(if (is.null(names(x))) reticulate::tuple(converted) else reticulate::dict(converted))
  }
  if (!(is.numeric(x) || is.logical(x)) || is.factor(x)) {
    argument_error(name, "an R array, matrix or vector of numbers, a list of them, or a Python array",
                   x, call)
  }
  numpy <- reticulate::import("numpy", convert = FALSE)
  dtype <- if (is.double(x)) keras$config$floatx() else if (is.integer(x)) "int32" else "bool"
  numpy$array(x, dtype = dtype, order = "C", copy = TRUE)
}
