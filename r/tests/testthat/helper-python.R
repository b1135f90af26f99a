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

# The values of a layer's (or model's) variables, as R arrays.
variable_values <- function(object) lapply(object$weights, as.array)

# A compiled model: a Bayesian convolution named "bayes" on 5^3 volumes, then
# a flatten layer; `train_flat_model()` fits it for one epoch.
flat_model <- function() {
  model <- keras_model_sequential(input_shape = c(5, 5, 5, 1)) |>
    layer_conv_3d_reparameterization(filters = 2, kernel_size = 2, name = "bayes") |>
    layer_flatten()
  compile(model, optimizer = "adam", loss = "mse")
  model
}

train_flat_model <- function(model) {
  fit(model, volumes(4, 5), matrix(0, 4, 4^3 * 2), epochs = 1, verbose = 0)
}

# The Python this test session runs (child R sessions are given it explicitly).
session_python <- function() reticulate::py_config()$python

# Runs `code` in a fresh R session (Rscript --vanilla) and returns what it
# printed (stdout and stderr), without TensorFlow's start-up log lines, with
# the exit status as attribute "status".
#
# `env` is a named character vector of environment variables for the child;
# NA unsets one. A child never inherits this session's RETICULATE_PYTHON by
# accident: unless `env` names RETICULATE_PYTHON, the child gets the Python
# this session runs.
rscript <- function(code, env = character()) {
  if (!"RETICULATE_PYTHON" %in% names(env)) {
    env <- c(env, RETICULATE_PYTHON = session_python())
  }
  script <- tempfile(fileext = ".R")
  writeLines(code, script)
  on.exit(unlink(script), add = TRUE)
  unset <- names(env)[is.na(env)]
  set <- env[!is.na(env)]
  args <- c(as.vector(rbind(rep("-u", length(unset)), unset)),
            if (length(set)) paste0(names(set), "=", set),
            file.path(R.home("bin"), "Rscript"), "--vanilla", script)
  output <- suppressWarnings(system2("env", shQuote(args), stdout = TRUE, stderr = TRUE))
  status <- attr(output, "status") %||% 0L
  output <- grep("^(I0000|E0000|W0000|WARNING: All log messages)", output,
                 value = TRUE, invert = TRUE)
  structure(paste(output, collapse = "\n"), status = status)
}
