#' tfprobr: Bayesian 3-D convolution from TensorFlow Probability on Keras 3
#'
#' `layer_conv_3d_reparameterization()` with the documented tfprobability API,
#' working on TensorFlow 2.21, Keras 3 and TensorFlow Probability 0.25, plus
#' [layer_stack()], [add_layer()] and [as_keras_model()] to compose layers
#' with `%>%` or `|>`.
#'
#' @section Finding Python:
#' `library(tfprobr)` does not start Python; the first call that needs it
#' does. The Python used is, in order:
#' 1. the option `tfprobr.python` (a path to a Python executable), if set;
#' 2. the environment variable `RETICULATE_PYTHON`, if set;
#' 3. the virtual environment recorded when the package was installed: `make`
#'    in the tfprobr_bridge repository installs the package with
#'    `TFPROBR_VENV` set to the repository's `.venv`, whose `bin/python` is
#'    used;
#' 4. otherwise reticulate's own choice.
#'
#' That Python needs the Python package `tfprobr_bridge` (which brings
#' TensorFlow, TensorFlow Probability, Keras 3 and tf-keras). If it is
#' missing, the first call fails with an R error naming what is missing and
#' the command that installs it. [tfprobr_python()] says which Python was chosen.
#'
#' @keywords internal
"_PACKAGE"

#' TensorFlow Probability and Keras 3 Python modules
#'
#' `tfp` is the Python module `tensorflow_probability` and `keras` is Keras 3,
#' found and loaded (with reticulate) on first use, so that the documented
#' defaults such as `tfp$layers$util$default_mean_field_normal_fn()` evaluate
#' and Keras 3 layers such as `keras$layers$GlobalAveragePooling3D()` are at
#' hand.
#'
#' @format Python modules, loaded on first use.
#' @examples
#' pooling <- keras$layers$GlobalAveragePooling3D()
#' class(pooling)[1]
#' tfp$distributions$Normal(loc = 0, scale = 1)
#' @name python-modules
NULL

#' @rdname python-modules
#' @export
tfp <- NULL

#' @rdname python-modules
#' @export
keras <- NULL

bridge <- NULL

# Captured when the package is installed (lazy loading evaluates this at
# build time), so an installed package remembers the venv it was built for.
install_time_venv <- Sys.getenv("TFPROBR_VENV", "")

#' Which Python tfprobr uses
#'
#' Applies the rule in [tfprobr-package] ("Finding Python") without starting
#' Python.
#'
#' @return The path of the Python executable tfprobr asks reticulate for, or
#'   `NULL` when it leaves the choice to reticulate.
#' @examples
#' tfprobr_python()
#' @export
tfprobr_python <- function() {
  python_choice()$python
}

# The Python the rule picks, and which step of the rule picked it.
python_choice <- function() {
  option <- getOption("tfprobr.python")
  if (!is.null(option)) {
    return(list(python = path.expand(option), source = "options(tfprobr.python)"))
  }
  variable <- Sys.getenv("RETICULATE_PYTHON", "")
  if (nzchar(variable) && !identical(variable, .globals$set_by_tfprobr)) {
    return(list(python = path.expand(variable), source = "RETICULATE_PYTHON"))
  }
  if (nzchar(install_time_venv)) {
    python <- file.path(install_time_venv, "bin", "python")
    if (file.exists(python)) {
      return(list(python = python, source = "the venv recorded at installation"))
    }
  }
  list(python = NULL, source = "reticulate's default")
}

.globals <- new.env(parent = emptyenv())
.globals$modules <- list()

# pip's names for the modules tfprobr imports, with the versions pyproject.toml
# allows, to print an install command.
pip_packages <- c(
  tensorflow = "tensorflow>=2.18,<2.22",
  tensorflow_probability = "tensorflow-probability>=0.25,<0.26",
  tf_keras = "tf-keras>=2.18,<2.22",
  keras = "keras>=3.8"
)

python_missing_error <- function(module) {
  force(module)
  function(error) {
    choice <- python_choice()
    detail <- sub("\n.*", "", sub("^[A-Za-z]*Error: ", "", conditionMessage(error)))
    if (!is.null(choice$python) && !file.exists(choice$python)) {
      python <- "python3"
      problem <- paste0("tfprobr is set to use the Python at ", choice$python, " (by ",
                        choice$source, "), which does not exist.")
      missing <- module
    } else {
      config <- tryCatch(reticulate::py_config(), error = function(e) NULL)
      python <- if (is.null(config)) "python3" else config$python
      # The module that is really missing may be one tfprobr_bridge imports.
      missing <- sub("^No module named '([^'.]+).*$", "\\1", detail)
      if (identical(missing, detail)) {
        missing <- module
      }
      problem <- if (identical(missing, module)) {
        paste0("tfprobr needs the Python module '", module, "', but it could not be imported ",
               "from ", python, " (", detail, ").")
      } else {
        paste0("tfprobr needs the Python module '", missing, "' (imported by '", module,
               "'), which is not installed for ", python, ".")
      }
    }
    install <- if (missing %in% names(pip_packages)) {
      paste0("Install it with `", python, " -m pip install '", pip_packages[[missing]], "'`, ",
             "or run `make setup` in the tfprobr_bridge repository")
    } else {
      paste0("Run `make setup` in the tfprobr_bridge repository, or `", python,
             " -m pip install '<tfprobr_bridge repository>[r]'`")
    }
    stop(structure(
      class = c("tfprobr_python_missing", "error", "condition"),
      list(
        message = paste0(
          problem, " ", install, ", or choose a Python that has it with ",
          "options(tfprobr.python = \"/path/to/python\")."
        ),
        call = NULL
      )
    ))
  }
}

.onLoad <- function(libname, pkgname) {
  if (!nzchar(Sys.getenv("TF_CPP_MIN_LOG_LEVEL"))) {
    Sys.setenv(TF_CPP_MIN_LOG_LEVEL = "2")
  }
  if (!nzchar(Sys.getenv("KERAS_BACKEND"))) {
    Sys.setenv(KERAS_BACKEND = "tensorflow")
  }
  choose_python()
  # `tfp`, `keras` and `bridge` resolve on first use: loading reticulate alone
  # takes most of a second, and library(tfprobr) should not pay for it.
  namespace <- topenv()
  for (name in names(python_modules)) {
    rm(list = name, envir = namespace)
    makeActiveBinding(name, local({
      binding <- name
      function() python_module(binding)
    }), namespace)
  }
}

python_modules <- c(
  bridge = "tfprobr_bridge",
  tfp = "tensorflow_probability",
  keras = "keras"
)

python_module <- function(name) {
  module <- .globals$modules[[name]]
  if (is.null(module)) {
    choose_python()
    # A failed import is forgotten, so that every later use reports it the
    # same way (reticulate runs `on_error` only once per module proxy).
    # Once Python runs, reticulate imports at once instead of delaying.
    report <- python_missing_error(python_modules[[name]])
    module <- tryCatch(reticulate::import(
      python_modules[[name]],
      delay_load = list(
        priority = if (name == "bridge") 10 else 0,
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

choose_python <- function() {
  if (isTRUE(.globals$python_chosen)) {
    return(invisible())
  }
  .globals$python_chosen <- TRUE
  python <- tfprobr_python()
  # Asking reticulate would load it; if it is not loaded, Python has not started.
  started <- isNamespaceLoaded("reticulate") && reticulate::py_available(initialize = FALSE)
  if (!is.null(python) && !started) {
    # reticulate 1.28 ranks use_python() below its Poetry and Pipenv project
    # detection (a pyproject.toml in the working directory is enough), but
    # RETICULATE_PYTHON above both. A path that does not exist is kept, so
    # that the first call says so instead of silently using another Python.
    if (!identical(Sys.getenv("RETICULATE_PYTHON"), python)) {
      Sys.setenv(RETICULATE_PYTHON = python)
      .globals$set_by_tfprobr <- python
    }
  }
}
