# Installs the R packages r/DESCRIPTION asks for (Depends, Imports, Suggests)
# that are missing or older than it asks, with what they need. Debian's
# packages (the Makefile's DEBIAN_PACKAGES) come first, so what is left is R's
# TensorFlow stack: reticulate, tensorflow and keras3, CRAN's current releases.
# They come from the local CRAN-like repository in the first argument when it
# exists (CRAN cannot be reached on the project's machines), else from the
# user's CRAN. Usage:
#   Rscript tools/install_r_stack.R <local repository> <path to DESCRIPTION>
arguments <- commandArgs(trailingOnly = TRUE)
local <- arguments[[1]]
description <- read.dcf(arguments[[2]], fields = c("Depends", "Imports", "Suggests"))
items <- trimws(unlist(strsplit(description[!is.na(description)], ",")))
items <- items[nzchar(items)]
need <- setNames(
  ifelse(grepl(">=", items, fixed = TRUE), sub(".*>=\\s*([^)[:space:]]+).*", "\\1", items), "0"),
  sub("^([A-Za-z0-9.]+).*$", "\\1", items)
)
base <- rownames(installed.packages(priority = "base"))
need <- need[!names(need) %in% c("R", base)]
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
    stop("could not install ", paste(names(need)[!have()], collapse = ", "),
         " (see the messages above; `python3 tools/install_closure.py` names what is missing)",
         call. = FALSE)
  }
}
