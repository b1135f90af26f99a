# The vignette vignettes/layer-dense-variational.Rmd (tfprobability's
# layer_dense_variational.Rmd on keras3), rendered short (params quick = TRUE:
# 100 epochs instead of 1000, 20 draws instead of 100) in this R session, and
# its uncertainty bands checked: the aleatoric model's predicted standard
# deviation follows the noise put into the data, the epistemic model's draws
# differ, and the model with both does both.

# The vignette lives in the project's vignettes/, outside the R package: it is
# found by walking up from this test directory (r/tests/testthat, or R CMD
# check's copy under build/r-check/), or from TFPROBR_SOURCE_DIR or the
# project of TFPROBR_VENV.
vignette_source <- function() {
  relative <- file.path("vignettes", "layer-dense-variational.Rmd")
  starts <- c(Sys.getenv("TFPROBR_SOURCE_DIR"), dirname(Sys.getenv("TFPROBR_VENV")),
              normalizePath(test_path("."), mustWork = FALSE), getwd())
  candidates <- character()
  for (start in starts[nzchar(starts) & starts != "."]) {
    directory <- start
    repeat {
      candidates <- c(candidates, file.path(directory, relative))
      parent <- dirname(directory)
      if (identical(parent, directory)) break
      directory <- parent
    }
  }
  found <- candidates[file.exists(candidates)]
  if (!length(found)) {
    stop("vignettes/layer-dense-variational.Rmd not found above ", getwd(),
         " (set TFPROBR_SOURCE_DIR to the project's root).")
  }
  normalizePath(found[[1]])
}

test_that("the layer_dense_variational vignette renders, quick, with its uncertainty bands", {
  directory <- tempfile("vignette-")
  dir.create(directory)
  on.exit(unlink(directory, recursive = TRUE), add = TRUE)
  rendered <- new.env(parent = globalenv())
  started <- Sys.time()
  html <- rmarkdown::render(vignette_source(), output_dir = directory,
                            intermediates_dir = directory, params = list(quick = TRUE),
                            envir = rendered, quiet = TRUE)
  seconds <- as.numeric(difftime(Sys.time(), started, units = "secs"))
  expect_lt(seconds, 90)

  # The page: self-contained, with its four figures.
  page <- paste(readLines(html, warn = FALSE), collapse = "\n")
  images <- gregexpr("data:image/png;base64", page, fixed = TRUE)[[1]]
  expect_gte(sum(images > 0), 4L)
  expect_false(grepl("## Error", page, fixed = TRUE))

  expect_true(rendered$quick)
  expect_identical(rendered$epochs, 100L)
  bands <- rendered$bands
  # Aleatoric: the predicted spread tracks the true noise (which grows with x).
  expect_gt(bands$aleatoric_sd_correlation, 0.5)
  expect_true(all(rendered$aleatoric_sd > 0))
  expect_lt(tail(rendered$aleatoric_history$metrics$loss, 1),
            rendered$aleatoric_history$metrics$loss[[1]])
  # Epistemic: every draw of the weights is a different line.
  means <- rendered$epistemic_means
  expect_identical(dim(means), c(150L, 20L))
  expect_gt(bands$epistemic_spread, 0.05)
  expect_false(any(duplicated(t(round(means, 6)))))
  expect_lt(tail(rendered$epistemic_history$metrics$loss, 1),
            rendered$epistemic_history$metrics$loss[[1]])
  # Both: the lines differ, and their spread follows the noise too.
  expect_identical(dim(rendered$means), c(150L, 20L))
  expect_identical(dim(rendered$sds), c(150L, 20L))
  expect_gt(bands$both_spread, 0.05)
  expect_true(all(rendered$sds > 0))
  expect_gt(bands$both_sd_correlation, 0.5)
  expect_lt(tail(rendered$history$metrics$loss, 1), rendered$history$metrics$loss[[1]])
  # One KL loss per variational layer call.
  expect_length(rendered$model$losses, 1L)
  expect_length(rendered$epistemic$losses, 1L)
})
