# install_tfprobr() makes a virtual environment with the Python package that
# ships inside the R package, as a wheel. pip_options = "--no-deps" installs
# that package alone (no TensorFlow: nothing heavy comes from the network).

shipped_wheel <- function() {
  Sys.glob(file.path(system.file("python", package = "tfprobr"), "tfprobr_bridge-*.whl"))
}

test_that("the installed package ships exactly one wheel of tfprobr_bridge", {
  wheel <- shipped_wheel()
  expect_length(wheel, 1L)
  listed <- utils::unzip(wheel, list = TRUE)$Name
  expect_true("tfprobr_bridge/__init__.py" %in% listed)
  expect_true(any(grepl("\\.dist-info/licenses/LICENSE$", listed)))
})

test_that("install_tfprobr() makes a virtualenv holding the shipped tfprobr_bridge", {
  wheel <- shipped_wheel()
  envname <- file.path(tempfile("install-tfprobr-"), "venv")
  on.exit(unlink(dirname(envname), recursive = TRUE), add = TRUE)
  # In a fresh session (whose output, pip's included, is captured here).
  output <- rscript(c(
    "library(tfprobr)",
    sprintf("python <- install_tfprobr(envname = %s, pip_options = '--no-deps')", deparse(envname)),
    "cat('returned:', python, '\\n')",
    "cat('python started:', reticulate::py_available(initialize = FALSE), '\\n')",
    "cat('INSTALLED\\n')"
  ), env = c(RETICULATE_PYTHON = NA))
  expect(grepl("INSTALLED", output, fixed = TRUE),
         paste0("install_tfprobr() failed. The child printed:\n", output))
  expect_match(output, "python started: FALSE", fixed = TRUE)
  expect_no_match(output, "Restart R", fixed = TRUE)  # Python had not started: nothing to restart
  python <- file.path(envname, "bin", "python")
  expect_true(file.exists(python))
  expect_match(output, paste("returned:", python), fixed = TRUE)  # the environment's Python
  site <- Sys.glob(file.path(envname, "lib", "python3*", "site-packages"))
  expect_length(site, 1L)
  installed <- file.path(site, "tfprobr_bridge", "__init__.py")
  expect_true(file.exists(installed))
  # The copy the R package ships, not another one.
  unpacked <- tempfile("wheel-")
  on.exit(unlink(unpacked, recursive = TRUE), add = TRUE)
  utils::unzip(wheel, files = "tfprobr_bridge/__init__.py", exdir = unpacked)
  expect_identical(readLines(installed),
                   readLines(file.path(unpacked, "tfprobr_bridge", "__init__.py")))
  # Installed without its dependencies, as asked.
  expect_false(dir.exists(file.path(site, "tensorflow")))
})

test_that("a bad envname is an R error naming `envname`", {
  for (bad in list(1, NA_character_, "", c("a", "b"), NULL, TRUE)) {
    error <- tryCatch(install_tfprobr(envname = bad), error = identity)
    expect_s3_class(error, "tfprobr_error")
    expect_match(conditionMessage(error),
                 "^`envname` must be the name or path of a virtual environment\\. Received: envname=")
  }
})
