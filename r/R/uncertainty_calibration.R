# Judging uncertainty against the labels: calibration, the reliability
# diagram, error detection. Each function is a thin wrapper of the
# Python function of the same name in tfprobr_bridge, which validates its
# arguments and computes; R refuses only what Python cannot see (NA, R
# environments and code) and turns the results into R values.
#
# Labels are 0-based class indices, as keras3 takes them for
# loss = "sparse_categorical_crossentropy": 0 for the first class.

# An R array for Python. An R vector without dimensions becomes a 1-D array,
# so that one prediction stays an array (reticulate turns a length-1 vector
# into a Python scalar).
as_python_array <- function(x, name, call = sys.call(-1)) {
  x <- as_python_value(x, name, call)
  if (is.atomic(x) && !is.null(x) && is.null(dim(x)) && length(x)) {
    x <- array(x)
  }
  x
}

# Class labels: a factor's levels, in order, are the classes (the first level
# is class 0, as keras3's sparse losses count); anything else as an array.
as_labels <- function(x, name, call = sys.call(-1)) {
  if (is.factor(x)) {
    shape <- dim(x)
    x <- as.integer(x) - 1L
    dim(x) <- shape
  }
  as_python_array(x, name, call)
}

# A 1-D array as a plain vector (what R users compare with), other arrays as
# they are.
drop_one_dimension <- function(x) {
  if (length(dim(x)) == 1L) {
    dim(x) <- NULL
  }
  x
}

#' Calibration: expected and maximum calibration error, and the reliability table
#'
#' Do the predicted probabilities match how often the model is right? Each
#' prediction's confidence is its highest class probability, and its
#' prediction that class (the first, on ties). Confidences are binned into
#' `n_bins` equal-width bins over \[0, 1\]; a bin holds the confidences in
#' `(lower, upper]` (the first bin also holds 0), as in Guo et al., "On
#' calibration of modern neural networks" (ICML 2017). In each bin the mean
#' confidence is set against the accuracy: the expected calibration error
#' (ECE) is their gap averaged over the bins, weighted by how many predictions
#' each holds, and the maximum calibration error (MCE) the largest gap over
#' the bins that hold any.
#'
#' @param probabilities Class probabilities, an array whose last axis holds 2
#'   or more classes: a matrix of predictions x classes, or, for a
#'   segmentation, an array `c(n, depth, height, width, classes)` (every voxel
#'   is a prediction), such as `predict_mc()`'s `mean`. Finite, in \[0, 1\].
#' @param labels The true classes: a factor (its levels, in order, are the
#'   classes, the first level the first column of `probabilities`), or
#'   integers counted from 0, as keras3 takes them for
#'   `loss = "sparse_categorical_crossentropy"` (0 for the first class, not 1
#'   as R counts), shaped like `probabilities` without its last axis (a vector
#'   for a matrix of predictions), or one-hot, shaped like `probabilities`.
#' @param n_bins Number of equal-width confidence bins.
#' @return A list: `ece` and `mce` (numbers), `n_bins`, and `bins`, a data
#'   frame with one row per bin: `lower` and `upper` (its edges), `confidence`
#'   (the mean confidence) and `accuracy` (both `NaN` for an empty bin), and
#'   `count` (predictions in the bin). [plot_reliability_diagram()] draws it.
#' @seealso [plot_reliability_diagram()], [predict_mc()].
#' @examples
#' probabilities <- rbind(c(0.9, 0.1), c(0.8, 0.2), c(0.3, 0.7), c(0.6, 0.4), c(0.45, 0.55))
#' labels <- c(0L, 1L, 1L, 0L, 0L)  # 0-based classes
#' result <- calibration(probabilities, labels, n_bins = 4)
#' # Confidences 0.7 0.6 0.55 in (0.5, 0.75], 2 of 3 right;
#' # 0.9 0.8 in (0.75, 1], 1 of 2 right:
#' result$bins
#' result$ece  # (3 * |2/3 - 0.6167| + 2 * |1/2 - 0.85|) / 5 = (3 * 0.05 + 2 * 0.35) / 5
#' result$mce
#' @export
calibration <- function(probabilities, labels, n_bins = 15) {
  calibration_of(probabilities, labels, n_bins, sys.call())
}

calibration_of <- function(probabilities, labels, n_bins, call,
                           probabilities_name = "probabilities") {
  result <- with_r_errors(bridge$calibration(
    as_python_array(probabilities, probabilities_name, call),
    as_labels(labels, "labels", call),
    n_bins = as_integer(as_python_value(n_bins, "n_bins", call))
  ), call, list(n_bins = n_bins))
  bins <- result$bins
  list(
    ece = result$ece,
    mce = result$mce,
    n_bins = as.integer(result$n_bins),
    bins = data.frame(
      lower = as.vector(bins$lower),
      upper = as.vector(bins$upper),
      confidence = as.vector(bins$confidence),
      accuracy = as.vector(bins$accuracy),
      count = as.integer(bins$count)
    )
  )
}

bin_columns <- c("lower", "upper", "confidence", "accuracy", "count")

is_calibration_result <- function(x) {
  is.list(x) && !is.data.frame(x) && !is_python(x) && !is.null(names(x))
}

#' Reliability diagram: accuracy per confidence bin against the diagonal
#'
#' Draws, with base R graphics, one bar per non-empty confidence bin of
#' [calibration()], as high as the accuracy in that bin, and the diagonal of
#' perfect calibration; the legend gives the expected calibration error. A
#' calibrated model's bars reach the diagonal; bars below it mean
#' overconfidence, above it underconfidence.
#'
#' @param x Class probabilities, as `probabilities` of [calibration()] (its
#'   error messages name them `probabilities`), or the list [calibration()]
#'   returned (then leave `labels` out; the list's bins are drawn and
#'   `n_bins` is not used).
#' @param labels The true classes, 0-based, as for [calibration()].
#' @param n_bins Number of equal-width confidence bins.
#' @param ... Named graphical parameters for the new plot, such as `main`,
#'   `xlab`, `ylab` or `cex.axis` (not used with `add = TRUE`).
#' @param label The legend's name for the bars (such as `"Bayesian"`);
#'   `NULL` for "accuracy".
#' @param col The bars' fill colour.
#' @param add `TRUE` to draw the bars on the current plot (to compare models
#'   on one diagram) rather than start a new one with the diagonal.
#' @param legend Where the legend goes (a keyword of [graphics::legend()],
#'   such as `"topleft"`), or `NULL` for none.
#' @return The calibration (the list [calibration()] returns), invisibly.
#' @seealso [calibration()].
#' @examples
#' probabilities <- rbind(c(0.9, 0.1), c(0.8, 0.2), c(0.3, 0.7), c(0.4, 0.6))
#' result <- plot_reliability_diagram(probabilities, c(0L, 1L, 1L, 1L), n_bins = 5,
#'                                    label = "model")
#' result$bins[result$bins$count > 0, ]  # the three bars drawn
#'
#' # Two models on one diagram:
#' other <- calibration(rbind(c(0.6, 0.4), c(0.7, 0.3), c(0.2, 0.8), c(0.1, 0.9)),
#'                      c(0L, 1L, 1L, 1L), n_bins = 5)
#' plot_reliability_diagram(result, label = "first", main = "Two models")
#' plot_reliability_diagram(other, label = "second", col = "#B2222280", add = TRUE,
#'                          legend = "bottomright")
#' @export
plot_reliability_diagram <- function(x, labels = NULL, n_bins = 15, ..., label = NULL,
                                     col = "#4682B499", add = FALSE, legend = "topleft") {
  call <- sys.call()
  if (is_calibration_result(x)) {
    if (!all(c("ece", "bins") %in% names(x)) || !is.data.frame(x$bins) ||
        !all(bin_columns %in% names(x$bins))) {
      r_error(paste0(
        "`x` given as a list must be the one calibration() returned, with `ece` and `bins` ",
        "(lower, upper, confidence, accuracy, count). Received: x with names ",
        received(names(x))
      ), call)
    }
    if (!is.null(labels)) {
      r_error(paste0(
        "`labels` must be NULL when `x` is the list calibration() returned: the list ",
        "already holds them. Received: labels=", received(labels)
      ), call)
    }
    result <- x
  } else {
    if (is.null(labels)) {
      r_error(paste0(
        "`labels` must be given with probabilities in `x` (or pass the list calibration() ",
        "returned as `x`). Received: labels=NULL"
      ), call)
    }
    result <- calibration_of(x, labels, n_bins, call)
  }
  if (!is.null(label) && !(is.character(label) && length(label) == 1L && !is.na(label))) {
    argument_error("label", "a string or NULL", label, call, type = "type")
  }
  bins <- result$bins
  filled <- bins$count > 0
  if (!isTRUE(add)) {
    settings <- list(xlab = "confidence (highest class probability)", ylab = "accuracy",
                     xlim = c(0, 1), ylim = c(0, 1), xaxs = "i", yaxs = "i", main = "")
    given <- list(...)
    settings[names(given)] <- given
    do.call(plot, c(list(x = NULL, type = "n"), settings))
  }
  graphics::rect(bins$lower[filled], 0, bins$upper[filled], bins$accuracy[filled],
                 col = col, border = "black")
  if (!isTRUE(add)) {
    graphics::abline(0, 1, lty = 2, col = "grey40")
  }
  if (!is.null(legend)) {
    entry <- sprintf("%s (ECE = %.3f)", label %||% "accuracy", result$ece)
    if (isTRUE(add)) {
      graphics::legend(legend, legend = entry, fill = col, bty = "n")
    } else {
      graphics::legend(legend, legend = c(entry, "perfect calibration"), fill = c(col, NA),
                       border = c("black", NA), lty = c(NA, 2), col = c(NA, "grey40"),
                       bty = "n")
    }
  }
  invisible(result)
}

#' Error detection: how well an uncertainty flags the wrong predictions (AUROC)
#'
#' The area under the ROC curve for "this prediction is wrong", scored by an
#' uncertainty: the probability that a wrong prediction has a higher score
#' than a right one, ties counting one half. 1 means the uncertainty ranks
#' every error above every correct prediction; 0.5 that it tells them apart no
#' better than chance. Computed in Python from the Mann-Whitney U statistic
#' with average ranks for ties, in `O(n log n)` time.
#'
#' @param uncertainty Scores, higher for less certain predictions (such as
#'   `predict_mc()`'s `mutual_information` or `predictive_entropy`, or a
#'   standard deviation): a numeric vector or array of any shape, finite.
#' @param wrong Logicals shaped like `uncertainty` (or 0/1): `TRUE` where the
#'   prediction was wrong, as [wrong_predictions()] gives them. It must hold
#'   both wrong and right predictions.
#' @return The AUROC, a number in \[0, 1\].
#' @seealso [wrong_predictions()], [predict_mc()].
#' @examples
#' uncertainty <- c(0.1, 0.4, 0.35, 0.8)
#' wrong <- c(FALSE, FALSE, TRUE, TRUE)
#' error_detection_auroc(uncertainty, wrong)  # 3 of the 4 (wrong, right) pairs ranked right
#' @export
error_detection_auroc <- function(uncertainty, wrong) {
  call <- sys.call()
  with_r_errors(bridge$error_detection_auroc(
    as_python_array(uncertainty, "uncertainty", call),
    as_python_array(wrong, "wrong", call)
  ), call)
}

#' Which predictions are wrong
#'
#' Where the most probable class is not the true one.
#'
#' @param probabilities Class probabilities, an array whose last axis holds
#'   the classes, in \[0, 1\] (as for [calibration()]).
#' @param labels The true classes, as for [calibration()]: a factor (level
#'   order is class order), integers counted from 0 (as keras3 takes them for
#'   `loss = "sparse_categorical_crossentropy"`) shaped like `probabilities`
#'   without its last axis, or one-hot, shaped like `probabilities`.
#' @return A logical array shaped like `probabilities` without its last axis
#'   (a vector for a matrix of predictions): `TRUE` where the prediction, the
#'   class of highest probability (the first, on ties), is not the label.
#' @seealso [error_detection_auroc()].
#' @examples
#' wrong_predictions(rbind(c(0.9, 0.1), c(0.3, 0.7)), c(0L, 0L))
#' @export
wrong_predictions <- function(probabilities, labels) {
  call <- sys.call()
  drop_one_dimension(with_r_errors(bridge$wrong_predictions(
    as_python_array(probabilities, "probabilities", call),
    as_labels(labels, "labels", call)
  ), call))
}
