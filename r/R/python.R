# Which Python tfprobr uses, what it says when that Python lacks a module, and
# install_tfprobr(), which makes one that has them. See "Finding Python" in
# ?tfprobr::tfprobr (package.R).

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

# The pip requirement that installs a Python module tfprobr imports
# (`tensorflow_probability` -> "tensorflow-probability>=0.25,<0.26"), read
# from the shipped wheel's metadata: pyproject.toml is its one source.
pip_requirement <- function(module) {
  wheel <- python_package_source()
  if (is.null(wheel)) {
    return(NULL)
  }
  metadata <- grep("^[^/]+\\.dist-info/METADATA$", utils::unzip(wheel, list = TRUE)$Name,
                   value = TRUE)
  connection <- unz(wheel, metadata[[1]])
  on.exit(close(connection))
  lines <- readLines(connection, warn = FALSE)
  requirements <- sub("^Requires-Dist: ", "", grep("^Requires-Dist: ", lines, value = TRUE))
  requirements <- requirements[!grepl(";", requirements, fixed = TRUE)]  # extras
  names <- tolower(gsub("[-_.]+", "-", sub("^([A-Za-z0-9_.-]+).*$", "\\1", requirements)))
  wanted <- tolower(gsub("_", "-", module, fixed = TRUE))
  if (wanted %in% names) requirements[[match(wanted, names)]] else NULL
}

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
    } else if (!is.null(pip_requirement(missing))) {
      paste0("Install it with `", python, " -m pip install '", pip_requirement(missing), "'`, ",
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
  # The extra brings nibabel and scipy for segment_nifti().
  reticulate::virtualenv_install(envname, packages = c(paste0(source, "[nifti]"), extra_packages), ...)
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
