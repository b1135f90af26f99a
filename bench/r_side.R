# Costs seen from R: loading tfprobr, constructing a layer, and an epoch of
# keras3's fit().
#
# R hosts Python through reticulate, as an R user's session does, so R and
# Python contenders run interleaved, round by round, in one process; Python-side
# times come from Python's clock (via reticulate), R-side times from R's.
# `library(tfprobr)` is timed in fresh Rscript processes. Results are written by
# bench/harness.py (JSON, Markdown, machine record).
#
#   Rscript bench/r_side.R [rounds] [calls]

args <- commandArgs(trailingOnly = TRUE)
rounds <- if (length(args) >= 1) as.integer(args[[1]]) else 31L
calls <- if (length(args) >= 2) as.integer(args[[2]]) else 200L
examples <- 512L

library_seconds <- function() {
  code <- paste0("started <- proc.time()[['elapsed']]; library(tfprobr); ",
                 "cat(proc.time()[['elapsed']] - started, isNamespaceLoaded('reticulate'))")
  output <- strsplit(system2(file.path(R.home("bin"), "Rscript"), c("-e", shQuote(code)),
                             stdout = TRUE), " ")[[1]]
  stopifnot(output[[2]] == "FALSE")  # library() must not load reticulate
  as.numeric(output[[1]])
}
library_times <- vapply(seq_len(rounds), function(i) library_seconds(), 1)

suppressPackageStartupMessages({library(keras3); library(tfprobr)})
bench_dir <- normalizePath(dirname(sub("--file=", "", grep("--file=", commandArgs(), value = TRUE))))
harness <- reticulate::import_from_path("harness", path = bench_dir)
bridge <- reticulate::import("tfprobr_bridge")
main <- reticulate::py_run_string("
import time
import tfprobr_bridge

def construct(calls):
    started = time.perf_counter()
    for _ in range(calls):
        tfprobr_bridge.layer_conv_3d_reparameterization(
            filters=8, kernel_size=3, padding='same', activation='relu')
    return time.perf_counter() - started

def fit(model, x, y):
    started = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    return time.perf_counter() - started
")

# Run each contender once to warm up, then `rounds` rounds in rotating order.
interleave <- function(contenders) {
  for (contender in contenders) contender()
  times <- lapply(contenders, function(x) numeric())
  for (round in seq_len(rounds)) {
    order <- (seq_along(contenders) + round - 2) %% length(contenders) + 1
    for (i in order) times[[i]] <- c(times[[i]], contenders[[i]]())
  }
  times
}
# The ratio is the median of per-round ratios: contenders of a round run back to
# back, so the machine's drift between rounds cancels out.
row <- function(measure, from, seconds, reference, scale = 1000) {
  list(measure = measure, contender = from, median_ms = median(seconds) * scale,
       min_ms = min(seconds) * scale, max_ms = max(seconds) * scale,
       ratio = if (is.null(reference)) NaN else median(seconds / reference))
}
rows <- list(row("library(tfprobr)", "fresh Rscript", library_times, NULL))

construct_in_r <- function() {
  started <- proc.time()[["elapsed"]]
  for (i in seq_len(calls)) {
    layer_conv_3d_reparameterization(filters = 8, kernel_size = 3, padding = "same",
                                     activation = "relu")
  }
  proc.time()[["elapsed"]] - started
}
construct <- interleave(list(R = construct_in_r, Python = function() main$construct(calls)))
measure <- sprintf("construct a layer (per call, %d calls)", calls)
rows <- c(rows, list(
  row(measure, "R", construct$R / calls, construct$Python / calls),
  row(measure, "Python", construct$Python / calls, construct$Python / calls)
))

set.seed(1)
x_r <- array(runif(examples * 16^3), c(examples, 16, 16, 16, 1))
y_r <- array(rep(0:1, length.out = examples))
x_py <- reticulate::r_to_py(x_r)$astype("float32")
y_py <- reticulate::r_to_py(y_r)
# The benchmark network of bench/models.py (two Bayesian conv blocks), and the
# one-layer network earlier versions of this benchmark used.
build <- function(..., blocks = 2L) {
  model <- keras_model_sequential(input_shape = c(16, 16, 16, 1)) |>
    layer_conv_3d_reparameterization(filters = 8, kernel_size = 3, padding = "same",
                                     activation = "relu", ...) |>
    layer_max_pooling_3d(2)
  if (blocks == 2L) {
    model <- model |>
      layer_conv_3d_reparameterization(filters = 16, kernel_size = 3, padding = "same",
                                       activation = "relu", ...)
  }
  model <- model |>
    layer_global_average_pooling_3d() |>
    layer_dense(2)
  compile(model, optimizer = "adam",
          loss = loss_sparse_categorical_crossentropy(from_logits = TRUE))
  model
}
n <- examples
variants <- list(
  "benchmark network, documented defaults" = build(),
  "benchmark network, R closure as divergence fn" = build(
    kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p) / n
  ),
  "one conv layer, documented defaults" = build(blocks = 1L)
)
# What fit from R might pay that fit from Python does not: converting R's
# arrays (column-major doubles) to NumPy on every call.
conversion <- vapply(seq_len(rounds), function(i) {
  started <- proc.time()[["elapsed"]]
  reticulate::r_to_py(x_r)
  reticulate::r_to_py(y_r)
  proc.time()[["elapsed"]] - started
}, 1)
rows <- c(rows, list(row(sprintf("convert the %d x 16^3 R arrays to NumPy", examples), "R",
                         conversion, NULL)))

for (label in names(variants)) {
  model <- variants[[label]]
  fit_in_r <- function() {
    started <- proc.time()[["elapsed"]]
    fit(model, x_r, y_r, epochs = 1, batch_size = 16, verbose = 0)
    proc.time()[["elapsed"]] - started
  }
  x_as_r_passes_it <- reticulate::r_to_py(x_r)  # float64, column-major, shares R's memory
  # keras3's fit() given NumPy arrays: what fit from R costs beyond converting
  # R's arrays (which keras3 copies into C-ordered float32 arrays every call).
  fit_numpy_in_r <- function() {
    started <- proc.time()[["elapsed"]]
    fit(model, x_py, y_py, epochs = 1, batch_size = 16, verbose = 0)
    proc.time()[["elapsed"]] - started
  }
  fits <- interleave(list(
    R = fit_in_r,
    Python = function() main$fit(model, x_py, y_py),
    python_r_array = function() main$fit(model, x_as_r_passes_it, y_py),
    r_numpy = fit_numpy_in_r
  ))
  measure <- sprintf("one epoch of fit, %d x 16^3, %s", examples, label)
  rows <- c(rows, list(row(measure, "R", fits$R, fits$Python),
                       row(measure, "Python", fits$Python, fits$Python),
                       row(measure, "Python, given R's float64 column-major array",
                           fits$python_r_array, fits$Python),
                       row(measure, "R, keras3's fit() given NumPy arrays", fits$r_numpy,
                           fits$Python)))
}

columns <- list(
  list("measure", "measure", NULL), list("contender", "from", NULL),
  list("median_ms", "median ms", ".2f"), list("min_ms", "min", ".2f"),
  list("max_ms", "max", ".2f"), list("ratio", "vs Python", ".3f")
)
invisible(harness$write(
  "r_side", rows, lapply(columns, reticulate::tuple),
  notes = paste("R hosts Python through reticulate (as in an R session); R and Python",
                "contenders interleaved in one process, each timed by its own clock.",
                "The R fit includes converting the R arrays. library() in fresh Rscript",
                "processes.")
))
