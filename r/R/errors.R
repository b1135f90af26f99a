# Python errors as R errors.
#
# reticulate turns a Python exception into an R condition classed after the
# exception (`python.builtin.ValueError`, ...); tfprobr keeps those classes,
# adds its own (`tfprobr_value_error`, `tfprobr_error`), attributes the error
# to the user's call, and keeps the message alone (Keras's form: argument,
# expectation, received value), without the exception's module-qualified
# name, terminal escapes or reticulate's pointer to py_last_error().

python_error <- function(error, call) {
  classes <- class(error)
  python_classes <- classes[startsWith(classes, "python.builtin.")]
  type <- if (length(python_classes)) sub("^python\\.builtin\\.", "", python_classes[[1]]) else ""
  message <- conditionMessage(error)
  last <- tryCatch(reticulate::py_last_error(), error = function(e) NULL)
  value <- if (is.null(last)) NULL else last$value
  if (is.character(value) && length(value) == 1L && nzchar(value) &&
      grepl(value, message, fixed = TRUE)) {
    message <- value
    type <- if (nzchar(type)) type else sub("^.*\\.", "", last$type %||% "")
  } else {
    message <- sub("\nRun `reticulate::py_last_error\\(\\)` for details\\.\\s*$", "", message)
    message <- sub("^([A-Za-z_][A-Za-z0-9_]*\\.)*[A-Za-z_][A-Za-z0-9_]*(Error|Exception): ", "",
                   message)
  }
  message <- sub("\n+$", "", gsub("\033\\[[0-9;]*m", "", message))
  base <- tolower(sub("(Error|Exception)$", "", type))
  ours <- c(if (nzchar(base)) paste0("tfprobr_", base, "_error"), "tfprobr_error")
  condition <- if (is.list(error)) unclass(error) else list()
  condition$message <- message
  condition$call <- call
  condition$python_type <- if (nzchar(type)) type else NULL
  structure(class = unique(c(ours, python_classes, "error", "condition")), condition)
}

# Evaluate `expr` (a call into Python); re-raise Python errors as R errors
# attributed to the user's call.
with_r_errors <- function(expr, call = sys.call(-1)) {
  tryCatch(expr, error = function(error) {
    if (inherits(error, "tfprobr_error") || inherits(error, "tfprobr_python_missing")) {
      stop(error)
    }
    stop(python_error(error, call))
  })
}

# An R error in Keras's form, for values R can judge before Python sees them.
argument_error <- function(name, expected, value, call = sys.call(-1)) {
  stop(structure(
    class = c("tfprobr_value_error", "tfprobr_error", "error", "condition"),
    list(
      message = paste0("`", name, "` must be ", expected, ". Received: ",
                       name, "=", received(value)),
      call = call
    )
  ))
}

received <- function(value) {
  if (is.function(value)) {
    arguments <- names(formals(if (is.primitive(value)) args(value) else value))
    return(paste0("function(", paste(arguments, collapse = ", "), ")"))
  }
  if (inherits(value, "python.builtin.object")) {
    return(paste0("<Python ", class(value)[1], ">"))
  }
  if (is.environment(value)) {
    return("<environment>")
  }
  text <- paste(deparse(value, width.cutoff = 60L), collapse = " ")
  if (nchar(text) > 80) paste0(substr(text, 1, 77), "...") else text
}

`%||%` <- function(x, y) if (is.null(x)) y else x
