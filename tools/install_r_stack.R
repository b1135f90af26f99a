# Installs R's TensorFlow stack (reticulate, tensorflow, keras3) unless the
# versions given are already there. From the local CRAN-like repository in
# the first argument when it exists (CRAN cannot be reached on the project's
# machines), else from the user's CRAN. Usage:
#   Rscript tools/install_r_stack.R <local repository> reticulate=1.42 tensorflow=2.16 keras3=1.5
arguments <- commandArgs(trailingOnly = TRUE)
local <- arguments[[1]]
pairs <- strsplit(arguments[-1], "=", fixed = TRUE)
need <- setNames(vapply(pairs, `[[`, "", 2L), vapply(pairs, `[[`, "", 1L))
have <- function() {
  vapply(names(need), function(package) {
    tryCatch(packageVersion(package) >= need[[package]], error = function(e) FALSE)
  }, TRUE)
}
missing <- names(need)[!have()]
if (length(missing)) {
  repos <- if (file.exists(file.path(local, "src", "contrib", "PACKAGES"))) {
    paste0("file://", normalizePath(local))
  } else {
    getOption("repos")
  }
  message("Installing ", paste(missing, collapse = ", "), " from ", paste(repos, collapse = ", "))
  install.packages(missing, repos = repos, quiet = TRUE)
  if (!all(have())) {
    stop("could not install ", paste(names(need)[!have()], collapse = ", "), call. = FALSE)
  }
}
