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
  variable <- Sys.getenv("RETICULATE_PYTHON", "")
  if (nzchar(variable)) {
    return(list(python = path.expand(variable), source = "RETICULATE_PYTHON"))
  }
  option <- getOption("tfprobr.python")
  if (!is.null(option)) {
    return(list(python = path.expand(option), source = "options(tfprobr.python)"))
  }
  python <- file.path(virtualenv_root(), "r-tfprobr", "bin", "python")
  if (file.exists(python)) {
    return(list(python = python, source = "the virtual environment r-tfprobr"))
  }
  if (nzchar(install_time_venv)) {
    python <- file.path(install_time_venv, "bin", "python")
    if (file.exists(python)) {
      return(list(python = python, source = "the venv recorded at installation"))
    }
  }
  list(python = NULL, source = "reticulate's default")
}

# Where reticulate keeps named virtual environments (its rule, read without
# loading reticulate).
virtualenv_root <- function() {
  root <- Sys.getenv("RETICULATE_VIRTUALENV_ROOT", Sys.getenv("WORKON_HOME", ""))
  if (nzchar(root)) path.expand(root) else path.expand("~/.virtualenvs")
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
    restart <- restart_advice()
    install <- if (!is.null(restart)) {
      restart
    } else if (missing %in% names(pip_packages)) {
      paste0("Install it with `", python, " -m pip install '", pip_packages[[missing]], "'`, ",
             "or run `make setup` in the tfprobr_bridge repository")
    } else {
      paste0("Run `tfprobr::install_tfprobr()` (a virtual environment r-tfprobr), ",
             "`make setup` in the tfprobr_bridge repository, or `", python,
             " -m pip install '", python_package_source() %||% "tfprobr_bridge", "'`")
    }
    if (!is.null(restart)) {
      stop(structure(
        class = c("tfprobr_python_missing", "error", "condition"),
        list(message = paste(problem, restart), call = NULL)
      ))
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

# The Python package to install: the wheel that ships inside the R package
# (inst/python, built from tfprobr_bridge/ by `make r-wheel` and committed).
python_package_source <- function() {
  shipped <- system.file("python", package = "tfprobr")
  wheels <- if (nzchar(shipped)) Sys.glob(file.path(shipped, "tfprobr_bridge-*.whl")) else character()
  if (length(wheels)) wheels[[length(wheels)]] else NULL
}

# When this session's Python started before the Python tfprobr now chooses
# existed (install_tfprobr() ran after a failed first call), only a restart
# helps: a running R session cannot change its Python.
restart_advice <- function() {
  if (!reticulate::py_available(initialize = FALSE)) {
    return(NULL)
  }
  choice <- python_choice()
  running <- reticulate::py_exe()
  if (is.null(choice$python) || !file.exists(choice$python) ||
      same_python(choice$python, running)) {
    return(NULL)
  }
  paste0("This R session already runs the Python at ", running, ", not ", choice$python,
         " (", choice$source, "), which tfprobr now chooses, and a running R session cannot ",
         "change its Python. Restart R (in RStudio: Session > Restart R) and call tfprobr again.")
}

# Two Pythons are the same when they live in the same folder: a virtual
# environment's python is a link to its base Python, so the links are not
# followed.
same_python <- function(a, b) {
  identical(normalizePath(dirname(a), mustWork = FALSE),
            normalizePath(dirname(b), mustWork = FALSE))
}

choose_python <- function() {
  if (isTRUE(.globals$python_chosen)) {
    return(invisible())
  }
  .globals$python_chosen <- TRUE
  choice <- python_choice()
  # RETICULATE_PYTHON is reticulate's to apply; the others are asked for with
  # use_python(), for this session only. A path that does not exist is not
  # replaced: the first call says so instead of silently using another Python.
  if (!is.null(choice$python) && choice$source != "RETICULATE_PYTHON" &&
      file.exists(choice$python) && !reticulate::py_available(initialize = FALSE)) {
    reticulate::use_python(choice$python, required = TRUE)
  }
  invisible()
}

#' Install the Python side of tfprobr
#'
#' Makes a Python virtual environment (by default `r-tfprobr`, which tfprobr
#' then uses; see "Finding Python" in [tfprobr-package]) with the Python
#' package `tfprobr_bridge` and what it needs (TensorFlow, TensorFlow
#' Probability, Keras 3, tf-keras), as `keras3::install_keras()` does for
#' Keras. The Python package ships inside the R package (as a wheel), so
#' nothing is needed from outside but the Python package index for its
#' dependencies (or a local mirror pip knows).
#'
#' Python cannot be changed in a running R session: if Python has already
#' started (a call to tfprobr or keras3 did it), `install_tfprobr()` installs
#' and then warns that R must be restarted before tfprobr can use the new
#' environment.
#'
#' @param envname The name of the virtual environment, or a path.
#' @param ... Passed on to [reticulate::virtualenv_install()], such as
#'   `pip_options = "--no-index"`.
#' @param extra_packages Further Python packages to install.
#' @param python_version The Python versions allowed.
#' @param new_env If `TRUE`, an existing environment of that name is removed
#'   first.
#' @return The path of the environment's Python, invisibly.
#' @examples
#' \dontrun{
#' install_tfprobr()
#' }
#' @export
install_tfprobr <- function(envname = "r-tfprobr", ..., extra_packages = NULL,
                            python_version = ">=3.10",
                            new_env = identical(envname, "r-tfprobr")) {
  call <- sys.call()
  if (!is.character(envname) || length(envname) != 1L || is.na(envname) || !nzchar(envname)) {
    argument_error("envname", "the name or path of a virtual environment", envname, call)
  }
  source <- python_package_source()
  if (is.null(source)) {
    stop(structure(
      class = c("tfprobr_python_missing", "error", "condition"),
      list(message = paste0("This installation of tfprobr has no copy of the Python package ",
                            "tfprobr_bridge to install (a wheel in ",
                            file.path(system.file(package = "tfprobr"), "python"), "). ",
                            "Reinstall tfprobr from its repository's r/ folder."), call = call)
    ))
  }
  running <- if (reticulate::py_available(initialize = FALSE)) reticulate::py_exe()
  target <- reticulate::virtualenv_python(envname)
  if (!is.null(running) && isTRUE(new_env) && same_python(running, target)) {
    stop(structure(
      class = c("tfprobr_error", "error", "condition"),
      list(message = paste0("This R session runs the Python of `envname` (", running, "), so ",
                            "it cannot be removed and made again (new_env = TRUE). Restart R, ",
                            "then call install_tfprobr() before anything starts Python."),
           call = call)
    ))
  }
  if (isTRUE(new_env) && reticulate::virtualenv_exists(envname)) {
    reticulate::virtualenv_remove(envname, confirm = FALSE)
  }
  reticulate::virtualenv_create(envname, version = python_version, packages = NULL)
  reticulate::virtualenv_install(envname, packages = c(source, extra_packages), ...)
  python <- reticulate::virtualenv_python(envname)
  if (!is.null(running)) {
    warning(structure(
      class = c("tfprobr_restart_needed", "warning", "condition"),
      list(message = paste0("tfprobr_bridge is installed in ", python, ", but this R session ",
                            "already runs the Python at ", running, ", and a running R session ",
                            "cannot change its Python. Restart R (in RStudio: Session > Restart R) ",
                            "to use it."), call = NULL)
    ))
  }
  invisible(python)
}
