# Tests need the Python side. Outside CI a missing Python skips; in CI
# (CI=true) it is a failure, since a skip there would hide a broken set-up.
skip_if_no_python <- function() {
  if (reticulate::py_module_available("tfprobr_bridge")) {
    return(invisible(TRUE))
  }
  if (tolower(Sys.getenv("CI")) %in% c("true", "1", "yes")) {
    stop("CI=true: the Python module tfprobr_bridge is not available to ",
         "reticulate (", tfprobr_python() %||% "reticulate's default", ").")
  }
  testthat::skip("the Python module tfprobr_bridge is not available")
}

`%||%` <- function(x, y) if (is.null(x)) y else x

volumes <- function(batch, size = 6, channels = 1) {
  array(stats::runif(batch * size^3 * channels), c(batch, size, size, size, channels))
}

bridge_module <- function() reticulate::import("tfprobr_bridge")

py_class <- function(x) class(x)[1]

# A compiled model: a Bayesian convolution named "bayes" on 5^3 volumes, then
# Flatten; `train_flat_model()` fits it for one epoch.
flat_model <- function() {
  model <- layer_stack(input_shape = c(5, 5, 5, 1)) %>%
    layer_conv_3d_reparameterization(filters = 2, kernel_size = 2, name = "bayes") |>
    add_layer(keras$layers$Flatten()) |>
    as_keras_model()
  model$compile(optimizer = "adam", loss = "mse")
  model
}

train_flat_model <- function(model) {
  model$fit(volumes(4, 5), matrix(0, 4, 4^3 * 2), epochs = 1L, verbose = 0L)
}
