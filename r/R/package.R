#' tfprobr: TensorFlow Probability's variational layers on Keras 3
#'
#' The variational (Bayesian) dense and convolution layers of tfprobability,
#' with its documented API, working on TensorFlow 2.21, Keras 3 and TensorFlow
#' Probability 0.25: [layer_dense_reparameterization()],
#' [layer_dense_flipout()], [layer_dense_local_reparameterization()],
#' `layer_conv_1d_*()`, `layer_conv_2d_*()` and `layer_conv_3d_*()` with the
#' same three estimators (such as [layer_conv_2d_flipout()]), plus
#' [layer_stack()], [add_layer()] and [as_keras_model()] to compose layers
#' with `|>` (or keras3's `%>%`), beside keras3's own layers and models.
#'
#' @section Finding Python:
#' `library(tfprobr)` starts neither Python nor reticulate, and never sets
#' `RETICULATE_PYTHON`. When reticulate loads (with keras3, or at tfprobr's
#' first call), tfprobr declares its Python requirement with
#' [reticulate::py_require()] and states its choice of Python, which is, in
#' order:
#' 1. the environment variable `RETICULATE_PYTHON`, if set (reticulate's own
#'    rule; offline, point it at a Python that has `tfprobr_bridge`);
#' 2. the option `tfprobr.python` (a path to a Python executable), if set;
#' 3. the virtual environment `r-tfprobr` made by [install_tfprobr()], if it
#'    exists;
#' 4. the virtual environment recorded when the package was installed: `make`
#'    in the tfprobr_bridge repository installs the package with
#'    `TFPROBR_VENV` set to the repository's `.venv`;
#' 5. otherwise reticulate's own choice (with the declared requirement, an
#'    ephemeral environment that reticulate makes).
#'
#' That Python needs the Python package `tfprobr_bridge` (which brings
#' TensorFlow, TensorFlow Probability, Keras 3 and tf-keras). If it is
#' missing, the first call fails with an R error naming what is missing and
#' the command that installs it. [tfprobr_python()] says which Python was
#' chosen. When Python's `keras` module is loaded (by keras3, say),
#' `tfprobr_bridge` is imported too, so that a saved model holding this
#' package's layers loads with keras3's `load_model()` in a fresh session.
#'
#' @keywords internal
"_PACKAGE"

#' The TensorFlow Probability Python module
#'
#' `tfp` is the Python module `tensorflow_probability`, found and loaded
#' (with reticulate) on first use, so that the documented defaults such as
#' `tfp$layers$util$default_mean_field_normal_fn()` evaluate.
#'
#' @format A Python module, loaded on first use.
#' @examples
#' tfp$distributions$Normal(loc = 0, scale = 1)
#' @name tfp
#' @export
tfp <- NULL

bridge <- NULL

.globals <- new.env(parent = emptyenv())
.globals$modules <- list()

.onLoad <- function(libname, pkgname) {
  if (!nzchar(Sys.getenv("TF_CPP_MIN_LOG_LEVEL"))) {
    Sys.setenv(TF_CPP_MIN_LOG_LEVEL = "2")
  }
  if (!nzchar(Sys.getenv("KERAS_BACKEND"))) {
    Sys.setenv(KERAS_BACKEND = "tensorflow")
  }
  # `tfp` and `bridge` resolve on first use: library(tfprobr) starts neither
  # reticulate nor Python.
  namespace <- topenv()
  for (name in names(python_modules)) {
    rm(list = name, envir = namespace)
    makeActiveBinding(name, local({
      binding <- name
      function() python_module(binding)
    }), namespace)
  }
  # Python is chosen when reticulate loads, whoever loads it (keras3 too).
  if (isNamespaceLoaded("reticulate")) {
    on_reticulate_load()
  } else {
    setHook(packageEvent("reticulate", "onLoad"), function(...) on_reticulate_load())
  }
  # A saved model holding tfprobr's layers names classes that tfprobr_bridge
  # registers with Keras: import it whenever reticulate loads keras.
  setHook("reticulate::keras::load", import_bridge_with_keras)
  if (isNamespaceLoaded("reticulate") && reticulate::py_available(initialize = FALSE) &&
      "keras" %in% names(reticulate::import("sys")$modules)) {
    import_bridge_with_keras()
  }
}

on_reticulate_load <- function() {
  source <- python_package_source()
  if (!is.null(source)) {
    reticulate::py_require(source)
  }
  # tfprobr_bridge's own exceptions reach R through keras3 too (save_model()
  # meeting an R function): they get tfprobr's condition classes there.
  reticulate::register_class_filter(tfprobr_class_filter)
  choose_python()
}

import_bridge_with_keras <- function(...) {
  try(python_module("bridge")$`__name__`, silent = TRUE)
  invisible()
}

python_modules <- c(
  bridge = "tfprobr_bridge",
  tfp = "tensorflow_probability"
)

python_module <- function(name) {
  module <- .globals$modules[[name]]
  if (is.null(module)) {
    # tfprobr builds on keras3 and tensorflow: their methods (tensor
    # arithmetic for R divergence fns, fit() and predict() for models) apply
    # from the first call on, even with only library(tfprobr) attached. They
    # load before Python starts, as they declare their Python needs then.
    # (Reading their delay-loaded module bindings loads the namespaces and
    # does not start Python.)
    invisible(tensorflow::tf)
    invisible(keras3::keras)
    choose_python()
    choice <- python_choice()
    if (!is.null(choice$python) && !file.exists(choice$python)) {
      # Reported, not silently replaced by another Python.
      python_missing_error(python_modules[[name]])(simpleError("no such file"))
    }
    # A failed import is forgotten, so that every later use reports it the
    # same way (reticulate runs `on_error` only once per module proxy).
    # Once Python runs, reticulate imports at once instead of delaying.
    report <- python_missing_error(python_modules[[name]])
    module <- tryCatch(reticulate::import(
      python_modules[[name]],
      delay_load = list(
        priority = if (name == "bridge") 20 else 0,
        environment = "r-tfprobr",
        on_error = function(error) {
          .globals$modules[[name]] <- NULL
          report(error)
        }
      )
    ), error = report)
    .globals$modules[[name]] <- module
  }
  module
}
