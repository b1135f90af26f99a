# tfprobr sits beside keras3, tensorflow and reticulate: it exports nothing
# they export, so attaching it, first or last, masks none of their functions
# (fit(), set_random_seed(), %>%, ...) and none of them masks one of its own.

stack_packages <- c("keras3", "tensorflow", "reticulate")

# In a fresh R session, attaches `packages` in that order and prints, for each
# attached package, the names conflicts(detail = TRUE) reports for it.
attach_and_report <- function(packages) {
  output <- rscript(c(
    sprintf("suppressPackageStartupMessages(library(%s))", packages),
    "conflicting <- conflicts(detail = TRUE)",
    sprintf("for (package in %s) {", deparse1(paste0("package:", packages))),
    "  cat('CONFLICTS', package, ':', sort(conflicting[[package]]), '\\n')",
    "}",
    "cat('SEARCH', grep('^package:(tfprobr|keras3|tensorflow|reticulate)$', search(), value = TRUE), '\\n')",
    "for (name in c('fit', 'compile', 'set_random_seed', '%>%', 'load_model')) {",
    "  from <- Filter(function(p) name %in% getNamespaceExports(p) &&",
    "                   identical(get(name), getExportedValue(p, name)),",
    "                 c('keras3', 'tensorflow', 'tfprobr'))",
    "  cat('FOUND', name, 'as', from, '\\n')",
    "}"
  ), env = c(RETICULATE_PYTHON = NA))  # nothing here starts Python
  lines <- strsplit(output, "\n")[[1]]
  conflicts <- list()
  for (line in grep("^CONFLICTS ", lines, value = TRUE)) {
    words <- strsplit(trimws(line), " +")[[1]]
    conflicts[[words[2]]] <- words[-(1:3)]
  }
  list(output = output, lines = lines, conflicts = conflicts)
}

test_that("tfprobr's exports are none of keras3's, tensorflow's or reticulate's", {
  exports <- getNamespaceExports("tfprobr")
  for (package in stack_packages) {
    expect_identical(intersect(exports, getNamespaceExports(package)), character(),
                     label = paste("tfprobr exports also exported by", package))
  }
  # What tfprobr used to export and now leaves to keras3 and tensorflow.
  expect_identical(intersect(exports, c("fit", "keras", "set_random_seed", "%>%")), character())
  methods <- unclass(getNamespaceInfo("tfprobr", "S3methods"))
  expect_false("Ops" %in% methods[, 1])  # tensor arithmetic is tensorflow's
})

test_that("attaching tfprobr first or last masks nothing of keras3, tensorflow or reticulate", {
  exports <- getNamespaceExports("tfprobr")
  orders <- list(
    tfprobr_first = c("tfprobr", stack_packages),
    tfprobr_last = c(stack_packages, "tfprobr")
  )
  for (order in names(orders)) {
    packages <- orders[[order]]
    report <- attach_and_report(packages)
    expect_match(report$output, paste("SEARCH", paste0("package:", rev(packages), collapse = " ")),
                 fixed = TRUE, label = order)
    expect_identical(names(report$conflicts), paste0("package:", packages), label = order)
    # tfprobr is in no conflict, and none of its exports is masked or masks.
    expect_identical(report$conflicts[["package:tfprobr"]], character(), label = order)
    masked <- unique(unlist(report$conflicts[paste0("package:", stack_packages)]))
    expect_gt(length(masked), 0L)  # the three do mask each other (shape, %as%, ...)
    expect_identical(intersect(masked, exports), character(), label = order)
    # The functions tfprobr no longer exports come from keras3 (or tensorflow,
    # whichever was attached later, for set_random_seed) in either order.
    for (name in c("fit", "compile", "load_model", "%>%")) {
      expect_match(report$output, paste("FOUND", name, "as keras3"), fixed = TRUE, label = order)
    }
    expect_match(report$output, "FOUND set_random_seed as (keras3|tensorflow)", label = order)
    expect_no_match(report$output, "FOUND [^\n]*tfprobr", label = order)
  }
})

test_that("loading tfprobr and using its distribution layers never sets TF_USE_LEGACY_KERAS", {
  # rstudio/tfprobability's .onLoad sets it, which breaks a keras3 session.
  output <- rscript(c(
    "suppressPackageStartupMessages({library(keras3); library(tfprobr)})",
    "cat('BEFORE', Sys.getenv('TF_USE_LEGACY_KERAS', 'unset'), '\\n')",
    "model <- keras_model_sequential(input_shape = 2) |> layer_dense(2) |>",
    "  layer_independent_normal(event_shape = 1)",
    "cat('CLASS', class(model$layers[[2]])[1], '\\n')",
    "cat('AFTER', Sys.getenv('TF_USE_LEGACY_KERAS', 'unset'), '\\n')",
    "cat('KERAS', reticulate::import('keras')$`__version__`, '\\n')"
  ), env = c(TF_USE_LEGACY_KERAS = NA))
  expect_equal(attr(output, "status"), 0L, info = output)
  expect_match(output, "BEFORE unset", fixed = TRUE)
  expect_match(output, "AFTER unset", fixed = TRUE)
  expect_match(output, "CLASS tfprobr_bridge.layers.distribution.IndependentNormal", fixed = TRUE)
  expect_match(output, "KERAS 3.", fixed = TRUE)
})
