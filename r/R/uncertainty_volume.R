#' Monte Carlo inference over a whole 3-D volume by overlapping windows
#'
#' Cuts a volume of any shape into windows of the model's input size that
#' overlap, runs `n_samples` stochastic passes of each batch of windows (every
#' draw of sample `i` keyed by `(seed, i)`, so sample `i` is one network over
#' the whole volume) and blends what the windows say with Gaussian weights
#' (sigma = window / 8 per axis, as nnU-Net) or constant ones. The uncertainty
#' maps are derived after blending, from blended accumulators; memory is the
#' accumulators (voxels x classes) plus one batch of windows, whatever
#' `n_samples` is, and no draw of the volume is kept.
#'
#' @param model A keras3 model taking windows `c(batch, depth, height, width,
#'   channels)` and giving per-voxel outputs of the same spatial size: class
#'   probabilities (or logits, with `from_logits = TRUE`) or regression values.
#' @param volume A 3-D array `c(depth, height, width)`, or a 4-D one with
#'   channels last.
#' @param patch_size The windows' size, one integer or three; `NULL` for the
#'   model's input size.
#' @param overlap The fraction of a window its neighbour overlaps, in \[0, 1),
#'   one number or three.
#' @param blend `"gaussian"` or `"constant"`.
#' @param n_samples Stochastic passes per window. A model whose draws do not
#'   differ (a deterministic network) is refused for more than 1.
#' @param batch_size Windows per traced call.
#' @param seed `NULL`, or an integer that fixes every draw.
#' @param verbose As in keras3: `"auto"` draws a progress bar with the time left
#'   in an interactive session and writes one line when done otherwise (none
#'   under testthat); `0`, `1` or `2`.
#' @param classifier `NULL` to decide from the outputs, `TRUE` for class
#'   probabilities (or logits), `FALSE` for regression values.
#' @param from_logits The outputs are logits: each draw goes through a softmax.
#' @return A list of arrays shaped like the volume: for a classifier
#'   `probabilities` and `std` (classes last), `labels` (integers, the most
#'   probable class counted from 0), `predictive_entropy`, `expected_entropy`
#'   and `mutual_information` (nats), and `draw_volumes` (each draw's expected
#'   number of voxels of each class, draws by classes); for a regression,
#'   `mean` and `std`. Also `windows` and `seconds`.
#' @seealso [segment_nifti()] for NIfTI files in and out, [predict_mc()].
#' @examples
#' library(keras3)
#' model <- keras_model_sequential(input_shape = c(8, 8, 8, 1)) |>
#'   layer_conv_3d_reparameterization(filters = 3, kernel_size = 3, padding = "same") |>
#'   layer_activation_softmax()
#' result <- predict_volume(model, array(runif(11 * 9 * 10), c(11, 9, 10)),
#'                          n_samples = 4, seed = 1)
#' dim(result$probabilities)
#' table(result$labels)
#' @export
predict_volume <- function(model, volume, patch_size = NULL, overlap = 0.5, blend = "gaussian",
                           n_samples = 30, batch_size = 4, seed = NULL, verbose = "auto",
                           classifier = NULL, from_logits = FALSE) {
  call <- sys.call()
  given <- list(patch_size = patch_size, overlap = overlap, blend = blend,
                n_samples = n_samples, batch_size = batch_size, seed = seed,
                classifier = classifier, from_logits = from_logits)
  result <- with_r_errors(bridge$predict_volume(
    as_python_value(model, "model", call),
    as_python_value(volume, "volume", call, na_ok = TRUE),
    patch_size = as_integer(as_python_value(patch_size, "patch_size", call)),
    overlap = as_python_value(overlap, "overlap", call),
    blend = as_python_value(blend, "blend", call),
    n_samples = as_integer(as_python_value(n_samples, "n_samples", call)),
    batch_size = as_integer(as_python_value(batch_size, "batch_size", call)),
    seed = as_integer(as_python_value(seed, "seed", call)),
    verbose = as_verbose(verbose, call),
    classifier = as_python_value(classifier, "classifier", call),
    from_logits = as_python_value(from_logits, "from_logits", call)
  ), call, given)
  result$windows <- as.integer(result$windows)
  result
}

#' Segment NIfTI scans with a Bayesian model, with uncertainty maps in each scan's own space
#'
#' Reads each scan (`.nii` or `.nii.gz`, through the Python package nibabel: no
#' R NIfTI package is needed), brings it to what the model was trained on (the
#' orientation, voxel spacing and intensity normalisation stored in its
#' `.keras` file by [save_segmenter()]), runs [predict_volume()], brings the
#' results back to the scan's own grid (probabilities by linear
#' interpolation, labels by nearest neighbour) and writes, per scan, the
#' labels, the probabilities (4-D), their standard deviation, the predictive
#' and expected entropies and the mutual information as `.nii.gz` files with
#' the scan's affine and header, and a JSON summary: each class's volume in mL
#' with a Monte Carlo interval (the 2.5th to 97.5th percentile of the draws'
#' volumes), the mean uncertainty inside each class, the number of draws, the
#' time and the versions. Each file is written through a temporary file and a
#' rename, so an interrupt leaves no half-written output. A scan that fails
#' is reported by name and the others go on.
#'
#' @param model A `.keras` file (saved with [save_segmenter()]) or a keras3 model.
#' @param paths NIfTI files, folders of them, or both (a character vector).
#' @param output_dir The folder the outputs go to (made if missing).
#' @param overwrite `TRUE` to replace outputs that exist; otherwise a scan whose
#'   outputs exist is reported and skipped.
#' @param preprocessing A list from [segmenter_preprocessing()] that overrides
#'   the one in the model's file.
#' @inheritParams predict_volume
#' @return A list with one element per scan: `input`, `status` (`"done"` or
#'   `"failed"`), `outputs` (the files written, by map) and `summary` (the
#'   JSON summary as a list), or `error`.
#' @examples
#' \dontrun{
#' results <- segment_nifti("segmenter.keras", "scans/", "segmentations/", n_samples = 30)
#' results[[1]]$summary$classes
#' }
#' @export
segment_nifti <- function(model, paths, output_dir, n_samples = 30, patch_size = NULL,
                          overlap = 0.5, blend = "gaussian", batch_size = 4, seed = NULL,
                          verbose = "auto", overwrite = FALSE, preprocessing = NULL,
                          from_logits = FALSE) {
  call <- sys.call()
  given <- list(n_samples = n_samples, patch_size = patch_size, overlap = overlap, blend = blend,
                batch_size = batch_size, seed = seed, overwrite = overwrite)
  paths <- as_python_value(paths, "paths", call)
  if (is.character(paths)) {
    paths <- as.list(path.expand(paths))
  }
  with_r_errors(bridge$segment_nifti(
    if (is.character(model)) path.expand(model) else as_python_value(model, "model", call),
    paths,
    path.expand(as_python_value(output_dir, "output_dir", call)),
    n_samples = as_integer(as_python_value(n_samples, "n_samples", call)),
    patch_size = as_integer(as_python_value(patch_size, "patch_size", call)),
    overlap = as_python_value(overlap, "overlap", call),
    blend = as_python_value(blend, "blend", call),
    batch_size = as_integer(as_python_value(batch_size, "batch_size", call)),
    seed = as_integer(as_python_value(seed, "seed", call)),
    verbose = as_verbose(verbose, call),
    overwrite = as_python_value(overwrite, "overwrite", call),
    preprocessing = as_python_value(preprocessing, "preprocessing", call),
    from_logits = as_python_value(from_logits, "from_logits", call)
  ), call, given)
}

#' The preprocessing a segmentation model was trained with
#'
#' What [segment_nifti()] does to a scan before the model sees it, kept with
#' the model by [save_segmenter()] as a small JSON document a person can read.
#'
#' @param voxel_spacing The spacing in mm the model was trained at, one number
#'   or three; `NULL` keeps each scan's own spacing.
#' @param orientation Three axis codes the model's arrays were in (`"RAS"`: the
#'   first axis runs left to right, the second posterior to anterior, the
#'   third inferior to superior); `NULL` keeps each scan's.
#' @param normalization `"none"`, `"minmax"` (to 0..1), `"zscore"` (over the
#'   voxels that are not 0) or `"percentile"` (clipped to `percentiles`, then
#'   to 0..1).
#' @param class_names The classes' names, in the order of the model's outputs.
#' @param percentiles The lower and upper percentiles for `"percentile"`.
#' @return The preprocessing, as a list.
#' @export
segmenter_preprocessing <- function(voxel_spacing = NULL, orientation = "RAS",
                                    normalization = "none", class_names = NULL,
                                    percentiles = c(0.5, 99.5)) {
  call <- sys.call()
  with_r_errors(bridge$preprocessing(
    as_python_value(voxel_spacing, "voxel_spacing", call),
    as_python_value(orientation, "orientation", call),
    as_python_value(normalization, "normalization", call),
    if (is.null(class_names)) NULL else as.list(as_python_value(class_names, "class_names", call)),
    as.list(as_python_value(percentiles, "percentiles", call))
  ), call, list(voxel_spacing = voxel_spacing, orientation = orientation,
                normalization = normalization, class_names = class_names))
}

#' Save a segmentation model with the preprocessing it was trained with
#'
#' Saves `model` to the `.keras` file `path` (as keras3's `save_model()`) and
#' adds its preprocessing (see [segmenter_preprocessing()]) to the same file,
#' where [segment_nifti()] and the `tfprobr-segment` command read it and
#' `load_model()` ignores it.
#'
#' @param model A keras3 model.
#' @param path A `.keras` file path.
#' @inheritParams segmenter_preprocessing
#' @return The preprocessing, invisibly.
#' @export
save_segmenter <- function(model, path, voxel_spacing = NULL, orientation = "RAS",
                           normalization = "none", class_names = NULL,
                           percentiles = c(0.5, 99.5)) {
  call <- sys.call()
  invisible(with_r_errors(bridge$save_segmenter(
    as_python_value(model, "model", call),
    path.expand(as_python_value(path, "path", call)),
    as_python_value(voxel_spacing, "voxel_spacing", call),
    as_python_value(orientation, "orientation", call),
    as_python_value(normalization, "normalization", call),
    if (is.null(class_names)) NULL else as.list(as_python_value(class_names, "class_names", call)),
    as.list(as_python_value(percentiles, "percentiles", call))
  ), call, list(voxel_spacing = voxel_spacing, normalization = normalization)))
}
