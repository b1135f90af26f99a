# The documented defaults, such as `function(d) d %>% tfd_sample()`, are
# evaluated in this namespace: magrittr's pipe is imported, not exported
# (keras3 exports the same pipe; exporting it again would mask keras3's).
#' @importFrom magrittr %>%
NULL

# `tf` in defaults written as rstudio/tfprobability writes them
# (`test_points_fn = tf$convert_to_tensor`): never evaluated (a fn left at its
# default is not passed; Python's default applies), and not imported, since
# importing from tensorflow would load reticulate with library(tfprobr).
utils::globalVariables("tf")
