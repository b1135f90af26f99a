rscript <- function(code, env = character()) {
  script <- tempfile(fileext = ".R")
  writeLines(code, script)
  output <- suppressWarnings(system2(
    file.path(R.home("bin"), "Rscript"), c("--vanilla", script),
    stdout = TRUE, stderr = TRUE, env = env
  ))
  paste(output, collapse = "\n")
}

test_that("library(tfprobr) loads neither Python nor reticulate", {
  output <- rscript(c(
    "library(tfprobr)",
    "cat('reticulate loaded:', isNamespaceLoaded('reticulate'), '\\n')",
    "cat('python started:', reticulate::py_available(initialize = FALSE), '\\n')"
  ))
  expect_match(output, "reticulate loaded: FALSE")
  expect_match(output, "python started: FALSE")
})

test_that("the option, then RETICULATE_PYTHON, choose the Python", {
  output <- rscript(
    c("options(tfprobr.python = '/opt/option/python')",
      "library(tfprobr)",
      "cat('chosen:', tfprobr_python(), '\\n')"),
    env = "RETICULATE_PYTHON=/opt/variable/python"
  )
  expect_match(output, "chosen: /opt/option/python")
  output <- rscript(c("library(tfprobr)", "cat('chosen:', tfprobr_python(), '\\n')"),
                    env = "RETICULATE_PYTHON=/opt/variable/python")
  expect_match(output, "chosen: /opt/variable/python")
})

test_that("a Python without the modules gives one R error with the install command", {
  skip_if_no_python()
  empty <- file.path(tempfile(), "venv")
  python <- reticulate::py_config()$python
  system2(python, c("-m", "venv", "--without-pip", empty))
  expect_true(file.exists(file.path(empty, "bin", "python")))
  output <- rscript(c(
    sprintf("options(tfprobr.python = '%s')", file.path(empty, "bin", "python")),
    "library(tfprobr)",
    "result <- tryCatch(layer_conv_3d_reparameterization(filters = 2, kernel_size = 3),",
    "                   error = function(e) e)",
    "cat('class:', class(result)[1], '\\n')",
    "cat('message:', conditionMessage(result), '\\n')",
    "cat('session alive:', 1 + 1, '\\n')"
  ))
  expect_match(output, "class: tfprobr_python_missing")
  expect_match(output, "needs the Python module 'tfprobr_bridge'")
  expect_match(output, "make setup", fixed = TRUE)
  expect_match(output, "session alive: 2")
})

test_that("a Python path that does not exist is reported, not replaced", {
  output <- rscript(c(
    "options(tfprobr.python = '/nonexistent/bin/python')",
    "library(tfprobr)",
    "result <- tryCatch(layer_stack(), error = function(e) e)",
    "cat('message:', conditionMessage(result), '\\n')",
    "cat('session alive:', 1 + 1, '\\n')"
  ))
  expect_match(output, "/nonexistent/bin/python")
  expect_match(output, "session alive: 2")
})

# A venv that sees the working venv's packages but cannot import the module
# named in TFPROBR_TEST_HIDE: a Python with TensorFlow or TFP "missing".
broken_python <- function() {
  venv <- file.path(tempfile(), "venv")
  python <- reticulate::py_config()$python
  system2(python, c("-m", "venv", "--without-pip", venv))
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
    ), env = paste0("TFPROBR_TEST_HIDE=", hidden))
    expect_match(output, "class: tfprobr_python_missing")
    expect_match(output, paste0("needs the Python module '", hidden, "' \\(imported by 'tfprobr_bridge'\\)"))
    expect_match(output, paste0(python, " -m pip install '", tfprobr:::pip_packages[[hidden]], "'"),
                 fixed = TRUE)
    expect_no_match(output, "Traceback")
    expect_match(output, "again: tfprobr_python_missing")
    expect_match(output, "session alive: 2")
  }
  # The same Python with nothing hidden works: the failure was the missing module.
  output <- rscript(c(
    sprintf("options(tfprobr.python = '%s')", python),
    "library(tfprobr)",
    "layer <- layer_conv_3d_reparameterization(filters = 2, kernel_size = 3)",
    "cat('built:', class(layer)[1], '\\n')"
  ))
  expect_match(output, "built: tfprobr_bridge._conv3d.Conv3DReparameterization")
})
