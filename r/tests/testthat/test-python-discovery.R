# Which Python tfprobr uses (see "Finding Python" in ?tfprobr::tfprobr), each
# case in a fresh R session. rscript() (helper-python.R) gives every child the
# RETICULATE_PYTHON it is meant to have: NA unsets it.

unset_python <- c(RETICULATE_PYTHON = NA)

# A venv that sees the working venv's packages but cannot import the module
# named in TFPROBR_TEST_HIDE: a Python with TensorFlow or TFP "missing".
broken_python <- function() {
  venv <- file.path(tempfile(), "venv")
  system2(session_python(), c("-m", "venv", "--without-pip", venv))
  site <- Sys.glob(file.path(venv, "lib", "python3*", "site-packages"))
  working_site <- reticulate::py_eval("__import__('sysconfig').get_paths()['purelib']")
  writeLines(c(
    "import os, sys",
    "class Hide:",
    "    def find_spec(self, name, path=None, target=None):",
    "        if name.split('.')[0] == os.environ.get('TFPROBR_TEST_HIDE'):",
    "            raise ModuleNotFoundError(f\"No module named '{name}'\", name=name)",
    "sys.meta_path.insert(0, Hide())"
  ), file.path(site, "tfprobr_test_hide.py"))
  writeLines("import tfprobr_test_hide", file.path(site, "a_hide.pth"))
  writeLines(paste0("import site; site.addsitedir(", deparse(working_site), ")"),
             file.path(site, "b_working_venv.pth"))
  file.path(venv, "bin", "python")
}

# A directory for named virtual environments with nothing in it, so that a
# virtual environment "r-tfprobr" on this machine cannot change the choice.
empty_virtualenv_root <- function() {
  root <- tempfile("virtualenvs-")
  dir.create(root)
  root
}

test_that("library(tfprobr) loads neither reticulate nor Python, and sets no RETICULATE_PYTHON", {
  output <- rscript(c(
    "library(tfprobr)",
    "cat('reticulate loaded:', isNamespaceLoaded('reticulate'), '\\n')",
    "cat('RETICULATE_PYTHON set:', !is.na(Sys.getenv('RETICULATE_PYTHON', NA)), '\\n')",
    "cat('chosen:', tfprobr_python(), '\\n')",
    "cat('reticulate loaded after tfprobr_python():', isNamespaceLoaded('reticulate'), '\\n')",
    "cat('python started:', reticulate::py_available(initialize = FALSE), '\\n')"
  ), env = unset_python)
  expect_match(output, "reticulate loaded: FALSE", fixed = TRUE)
  expect_match(output, "RETICULATE_PYTHON set: FALSE", fixed = TRUE)
  expect_match(output, "reticulate loaded after tfprobr_python(): FALSE", fixed = TRUE)
  expect_match(output, "python started: FALSE", fixed = TRUE)
})

test_that("RETICULATE_PYTHON comes first, then the option tfprobr.python", {
  both <- rscript(
    c("options(tfprobr.python = '/opt/option/python')",
      "library(tfprobr)",
      "cat('chosen:', tfprobr_python(), '\\n')"),
    env = c(RETICULATE_PYTHON = "/opt/variable/python")
  )
  expect_match(both, "chosen: /opt/variable/python", fixed = TRUE)
  option <- rscript(
    c("options(tfprobr.python = '/opt/option/python')",
      "library(tfprobr)",
      "cat('chosen:', tfprobr_python(), '\\n')"),
    env = unset_python
  )
  expect_match(option, "chosen: /opt/option/python", fixed = TRUE)
  variable <- rscript(c("library(tfprobr)", "cat('chosen:', tfprobr_python(), '\\n')"),
                      env = c(RETICULATE_PYTHON = "/opt/variable/python"))
  expect_match(variable, "chosen: /opt/variable/python", fixed = TRUE)
})

test_that("without either, the virtualenv r-tfprobr, then the venv recorded at install", {
  root <- empty_virtualenv_root()
  on.exit(unlink(root, recursive = TRUE), add = TRUE)
  show <- c("library(tfprobr)",
            "cat('chosen:', tfprobr_python() %||% 'NULL', '\\n')",
            "cat('reticulate loaded:', isNamespaceLoaded('reticulate'), '\\n')")
  show <- c("`%||%` <- function(x, y) if (is.null(x)) y else x", show)
  recorded <- tfprobr:::install_time_venv
  expected <- if (nzchar(recorded) && file.exists(file.path(recorded, "bin", "python"))) {
    file.path(recorded, "bin", "python")
  } else {
    "NULL"  # reticulate's default
  }
  output <- rscript(show, env = c(unset_python, RETICULATE_VIRTUALENV_ROOT = root))
  expect_match(output, paste("chosen:", expected), fixed = TRUE)
  expect_match(output, "reticulate loaded: FALSE", fixed = TRUE)

  # A virtualenv r-tfprobr (as install_tfprobr() makes) comes before the
  # recorded venv. (Only its python's existence counts, so a file will do.)
  python <- file.path(root, "r-tfprobr", "bin", "python")
  dir.create(dirname(python), recursive = TRUE)
  file.create(python)
  output <- rscript(show, env = c(unset_python, RETICULATE_VIRTUALENV_ROOT = root))
  expect_match(output, paste("chosen:", python), fixed = TRUE)
  # ... but not before the option or RETICULATE_PYTHON.
  output <- rscript(c("options(tfprobr.python = '/opt/option/python')", show),
                    env = c(unset_python, RETICULATE_VIRTUALENV_ROOT = root))
  expect_match(output, "chosen: /opt/option/python", fixed = TRUE)
})

test_that("RETICULATE_PYTHON is what reticulate runs, even with an option naming no Python", {
  skip_if_no_python()
  # A venv of its own (the working venv's packages, seen through a .pth
  # file), so that reticulate's running it is RETICULATE_PYTHON's doing.
  python <- broken_python()
  output <- rscript(c(
    "options(tfprobr.python = '/nonexistent/option/python')",
    "library(tfprobr)",
    "layer <- layer_conv_3d_reparameterization(filters = 2, kernel_size = 3)",
    "cat('built:', class(layer)[1], '\\n')",
    "cat('running:', reticulate::py_exe(), '\\n')"
  ), env = c(RETICULATE_PYTHON = python))
  expect_match(output, "built: tfprobr_bridge.layers.conv.Conv3DReparameterization", fixed = TRUE)
  expect_match(output, paste("running:", python), fixed = TRUE)
})

test_that("a chosen Python path that does not exist is an R error naming it, not replaced", {
  cases <- list(
    list(code = "options(tfprobr.python = '/nonexistent/option/bin/python')",
         env = unset_python, path = "/nonexistent/option/bin/python",
         source = "options(tfprobr.python)"),
    list(code = character(), env = c(RETICULATE_PYTHON = "/nonexistent/variable/bin/python"),
         path = "/nonexistent/variable/bin/python", source = "RETICULATE_PYTHON")
  )
  for (case in cases) {
    output <- rscript(c(
      case$code,
      "library(tfprobr)",
      "result <- tryCatch(layer_stack(), error = function(e) e)",
      "cat('class:', class(result), '\\n')",
      "cat('message:', conditionMessage(result), '\\n')",
      "again <- tryCatch(layer_conv_3d_reparameterization(filters = 2, kernel_size = 3),",
      "                  error = function(e) class(e)[1])",
      "cat('again:', again, '\\n')",
      "cat('python started:', reticulate::py_available(initialize = FALSE), '\\n')",
      "cat('session alive:', 1 + 1, '\\n')"
    ), env = case$env)
    expect_match(output, "class: tfprobr_python_missing error condition", fixed = TRUE)
    expect_match(output, paste0("the Python at ", case$path, " (by ", case$source,
                                "), which does not exist"), fixed = TRUE)
    expect_match(output, "again: tfprobr_python_missing", fixed = TRUE)
    expect_match(output, "python started: FALSE", fixed = TRUE)
    expect_match(output, "session alive: 2", fixed = TRUE)
  }
})

test_that("a Python without the modules gives one R error with the install command", {
  skip_if_no_python()
  empty <- file.path(tempfile(), "venv")
  system2(session_python(), c("-m", "venv", "--without-pip", empty))
  expect_true(file.exists(file.path(empty, "bin", "python")))
  output <- rscript(c(
    sprintf("options(tfprobr.python = '%s')", file.path(empty, "bin", "python")),
    "library(tfprobr)",
    "result <- tryCatch(layer_conv_3d_reparameterization(filters = 2, kernel_size = 3),",
    "                   error = function(e) e)",
    "cat('class:', class(result)[1], '\\n')",
    "cat('message:', conditionMessage(result), '\\n')",
    "cat('session alive:', 1 + 1, '\\n')"
  ), env = unset_python)
  expect_match(output, "class: tfprobr_python_missing")
  expect_match(output, "needs the Python module 'tfprobr_bridge'")
  expect_match(output, "make setup", fixed = TRUE)
  expect_match(output, "session alive: 2")
})

test_that("TensorFlow or TFP missing gives one R error naming it and the install command", {
  skip_if_no_python()
  python <- broken_python()
  for (hidden in c("tensorflow", "tensorflow_probability")) {
    output <- rscript(c(
      sprintf("options(tfprobr.python = '%s')", python),
      "library(tfprobr)",
      "result <- tryCatch(layer_conv_3d_reparameterization(filters = 2, kernel_size = 3),",
      "                   error = function(e) e)",
      "cat('class:', class(result)[1], '\\n')",
      "cat('message:', conditionMessage(result), '\\n')",
      "again <- tryCatch(layer_stack(), error = function(e) class(e)[1])",
      "cat('again:', again, '\\n')",
      "cat('session alive:', 1 + 1, '\\n')"
    ), env = c(unset_python, TFPROBR_TEST_HIDE = hidden))
    expect_match(output, "class: tfprobr_python_missing")
    expect_match(output, paste0("needs the Python module '", hidden, "' \\(imported by 'tfprobr_bridge'\\)"))
    expect_match(output, paste0(python, " -m pip install '", tfprobr:::pip_requirement(hidden), "'"),
                 fixed = TRUE)
    expect_no_match(output, "Traceback")
    expect_match(output, "again: tfprobr_python_missing")
    expect_match(output, "session alive: 2")
  }
  # The same Python with nothing hidden works: the failure was the missing
  # module. The option's Python is the one reticulate runs (a venv of its own,
  # so that this is the option's doing), and neither library(tfprobr) nor the
  # first call set RETICULATE_PYTHON.
  output <- rscript(c(
    sprintf("options(tfprobr.python = '%s')", python),
    "library(tfprobr)",
    "cat('RETICULATE_PYTHON set after library():', !is.na(Sys.getenv('RETICULATE_PYTHON', NA)), '\\n')",
    "layer <- layer_conv_3d_reparameterization(filters = 2, kernel_size = 3)",
    "cat('built:', class(layer)[1], '\\n')",
    "cat('running:', reticulate::py_exe(), '\\n')",
    "cat('RETICULATE_PYTHON set after the first call:', !is.na(Sys.getenv('RETICULATE_PYTHON', NA)), '\\n')"
  ), env = unset_python)
  expect_match(output, "built: tfprobr_bridge.layers.conv.Conv3DReparameterization", fixed = TRUE)
  expect_match(output, paste("running:", python), fixed = TRUE)
  expect_match(output, "RETICULATE_PYTHON set after library(): FALSE", fixed = TRUE)
  expect_match(output, "RETICULATE_PYTHON set after the first call: FALSE", fixed = TRUE)
})
