# The data the study and the examples use.

#' A real brain MRI: the MNI ICBM152 template with grey/white/other labels
#'
#' Loads the T1-weighted MNI ICBM152 (2009a symmetric) template and its grey-
#' and white-matter probability maps, which ship inside the Python package
#' nilearn (no download), averages them over blocks of `downsample` voxels per
#' axis, and labels each voxel with its most probable tissue.
#'
#' @param downsample Block size in voxels per axis (the template has 1 mm
#'   voxels; `3` gives a 65 x 77 x 63 grid of 3 mm voxels).
#' @return A list: `t1` (array scaled to 0..1), `labels` (integer array: 0
#'   other, 1 grey matter, 2 white matter), `grey` and `white` (probability
#'   arrays), `voxel_mm` and `tissues` (the label names). Axes run left to
#'   right, posterior to anterior, inferior to superior.
#' @examples
#' mri <- load_mni152_tissue(downsample = 4)
#' dim(mri$t1)
#' table(mri$labels)
#' @export
load_mni152_tissue <- function(downsample = 3) {
  call <- sys.call()
  with_r_errors(
    bridge$load_mni152_tissue(
      downsample = as_integer(as_python_value(downsample, "downsample", call))
    ),
    call
  )
}
