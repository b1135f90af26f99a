#' Monte Carlo prediction: predictive mean and spread, and for a classifier its entropies
#'
#' Every call of a model with Bayesian layers draws new weights, so repeated
#' predictions differ; their spread is the model's uncertainty. `predict_mc()`
#' runs `n_samples` stochastic forward passes per batch inside one traced
#' TensorFlow function (traced once per model and input shape, then reused)
#' and returns the per-element mean and standard deviation, accumulated as the
#' draws come (memory does not grow with `n_samples` unless the draws are
#' kept).
#'
#' For a classifier (`classifier = TRUE`: the outputs are class probabilities
#' over their last axis) the same loop also splits the uncertainty of each
#' prediction, in nats:
#' * `predictive_entropy`: the entropy of the mean probabilities, the total
#'   uncertainty;
#' * `expected_entropy`: the mean over the draws of each draw's entropy, the
#'   part the data holds (aleatoric);
#' * `mutual_information`: their difference, the part the weights hold
#'   (epistemic; BALD's score), clipped at 0 against round-off.
#'
#' They cost one entropy per draw, summed in the loop: no draw is stored for
#' them.
#'
#' Reruns give the same numbers: every draw of sample `i` is keyed by
#' `(seed, i)`. With `seed = NULL` the key comes from TensorFlow's random
#' state, which keras3's `set_random_seed()` fixes.
#'
#' @param model A Keras 3 model (or layer).
#' @param x Inputs, as for keras3's `predict()`: an R array or a tensor, batch
#'   first; a list of them for a model with several inputs; or a batched
#'   TensorFlow dataset (its batches are used, and labels in it are ignored).
#' @param n_samples Number of stochastic forward passes.
#' @param batch_size Examples per traced call (`NULL`: 32); not for a dataset.
#' @param return_samples Also return every draw (`n_samples` times the memory).
#' @param verbose As in keras3: `"auto"` draws a progress bar with the time
#'   left in an interactive session and writes one line when done otherwise
#'   (none under testthat); `0` for nothing, `1` for the bar, `2` for the one
#'   line.
#' @param classifier `TRUE` when the outputs are class probabilities (or
#'   logits, with `from_logits = TRUE`) over their last axis, of size 2 or
#'   more: add the entropy summaries.
#' @param from_logits With `classifier = TRUE`, the outputs are logits: each
#'   draw goes through a softmax first, and `mean`, `stddev` and `samples` are
#'   of the probabilities. Without it, outputs that are not probabilities
#'   (outside \[0, 1\], or not summing to 1) are an error.
#' @param seed `NULL`, or an integer that fixes every draw.
#' @return A list with arrays `mean` and `stddev` (population standard
#'   deviation over the draws), shaped like one prediction, and `samples`
#'   (draws first) when `return_samples = TRUE`. With `classifier = TRUE`,
#'   also `predictive_entropy`, `expected_entropy` and `mutual_information`,
#'   shaped like one prediction without its class axis (a vector when that
#'   leaves only the batch axis, as for a dense classifier).
#' @seealso [calibration()], [error_detection_auroc()] and
#'   [wrong_predictions()] to judge the mean and the uncertainty against the
#'   labels.
#' @examples
#' library(keras3)
#' model <- keras_model_sequential(input_shape = c(4, 4, 4, 1)) |>
#'   layer_conv_3d_reparameterization(filters = 2, kernel_size = 3, padding = "same")
#' result <- predict_mc(model, array(1, c(3, 4, 4, 4, 1)), n_samples = 10)
#' dim(result$mean)
#' range(result$stddev)
#'
#' # A segmentation network with 3 classes, its logits summarised per voxel:
#' segmenter <- keras_model_sequential(input_shape = c(4, 4, 4, 1)) |>
#'   layer_conv_3d_reparameterization(filters = 3, kernel_size = 3, padding = "same")
#' result <- predict_mc(segmenter, array(1, c(2, 4, 4, 4, 1)), n_samples = 5,
#'                      classifier = TRUE, from_logits = TRUE)
#' dim(result$mutual_information)
#' all(result$mutual_information <= result$predictive_entropy)
#' @export
predict_mc <- function(model, x, n_samples = 30, batch_size = NULL, return_samples = FALSE,
                       verbose = "auto", classifier = FALSE, from_logits = FALSE, seed = NULL) {
  call <- sys.call()
  given <- list(n_samples = n_samples, batch_size = batch_size, return_samples = return_samples,
                verbose = verbose, classifier = classifier, from_logits = from_logits,
                seed = seed)
  result <- with_r_errors(bridge$predict_mc(
    as_python_value(model, "model", call),
    as_python_value(x, "x", call, na_ok = TRUE),
    n_samples = as_integer(as_python_value(n_samples, "n_samples", call)),
    batch_size = as_integer(as_python_value(batch_size, "batch_size", call)),
    return_samples = as_python_value(return_samples, "return_samples", call),
    verbose = as_verbose(verbose, call),
    classifier = as_python_value(classifier, "classifier", call),
    from_logits = as_python_value(from_logits, "from_logits", call),
    seed = as_integer(as_python_value(seed, "seed", call))
  ), call, given)
  for (name in intersect(c("predictive_entropy", "expected_entropy", "mutual_information"),
                         names(result))) {
    result[[name]] <- drop_one_dimension(result[[name]])
  }
  result
}
