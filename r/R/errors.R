# Python errors as R errors.
#
# reticulate turns a Python exception into an R condition classed after the
# exception (`python.builtin.ValueError`, ...); tfprobr keeps those classes,
# adds its own (`tfprobr_value_error`, `tfprobr_error`), attributes the error
# to the user's call, and keeps the message alone (Keras's form: argument,
# expectation, received value), without the exception's module-qualified
# name, terminal escapes or reticulate's pointer to py_last_error().

python_error <- function(error, call, given = list()) {
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
  message <- in_r_words(sub("\n+$", "", gsub("\033\\[[0-9;]*m", "", message)), given)
  base <- tolower(sub("(Error|Exception)$", "", type))
  ours <- c(if (nzchar(base)) paste0("tfprobr_", base, "_error"), "tfprobr_error")
  condition <- if (is.list(error)) unclass(error) else list()
  condition$message <- message
  condition$call <- call
  condition$python_type <- if (nzchar(type)) type else NULL
  structure(class = unique(c(ours, python_classes, "error", "condition")), condition)
}

# Evaluate `expr` (a call into Python); re-raise Python errors as R errors
# attributed to the user's call. `given`: the R values of the call's arguments
# by name; an error that ends by echoing one of them shows it as R writes it.
with_r_errors <- function(expr, call = sys.call(-1), given = list()) {
  tryCatch(expr, error = function(error) {
    if (inherits(error, "tfprobr_error") || inherits(error, "tfprobr_python_missing")) {
      stop(error)
    }
    stop(python_error(error, call, given))
  })
}

# Python echoes the value it received in Python's syntax (`[3, 3]`, `True`,
# `None`); when the message ends with one `Received: name=value` for an
# argument the user gave, show the value as the user wrote it (`c(3, 3)`).
in_r_words <- function(message, given) {
  match <- regmatches(message, regexec("Received: ([A-Za-z_][A-Za-z0-9_]*)=([^=]*)$", message))[[1]]
  if (length(match) == 3L && match[[2]] %in% names(given)) {
    value <- given[[match[[2]]]]
    start <- nchar(message) - nchar(match[[1]])
    message <- paste0(substr(message, 1, start), "Received: ", match[[2]], "=", received(value))
  }
  message
}

# An R error in Keras's form, for what only R can judge (NA, R environments
# and code, an R closure's arity). `type` is the Python exception Python
# would raise for the like, so both kinds of error carry the same R classes.
argument_error <- function(name, expected, value, call = sys.call(-1), type = "value") {
  r_error(paste0("`", name, "` must be ", expected, ". Received: ", name, "=", received(value)),
          call, type)
}

# A required argument that is missing, in the words of Python's create_layer()
# (which says the same, with "Received: name=None", for an explicit NULL).
required_error <- function(name, expected, call = sys.call(-1)) {
  r_error(paste0("`", name, "` is required: ", expected, "."), call, "type")
}

r_error <- function(message, call, type = "value") {
  stop(structure(
    class = c(paste0("tfprobr_", type, "_error"), "tfprobr_error", "error", "condition"),
    list(message = message, call = call)
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
