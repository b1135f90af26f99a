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
  condition$message_in_r_words <- TRUE
  condition$call <- call
  condition$python_type <- if (nzchar(type)) type else NULL
  structure(class = unique(c(ours, python_classes, "error", "condition")), condition)
}

# The R classes of a Python exception of tfprobr_bridge's own (such as
# UnsavableFnError), which reaches R by way of keras3 as well as through
# tfprobr's functions: reticulate passes every exception's class names
# through this filter, which adds tfprobr's classes in front.
tfprobr_class_filter <- function(classes) {
  if (!any(startsWith(classes, "tfprobr_bridge.")) ||
      !"python.builtin.BaseException" %in% classes) {
    return(classes)
  }
  python <- classes[startsWith(classes, "python.builtin.") & endsWith(classes, "Error")]
  type <- if (length(python)) tolower(sub("Error$", "", sub("^python\\.builtin\\.", "", python[[1]])))
  unique(c(if (length(type)) paste0("tfprobr_", type, "_error"), "tfprobr_error", classes))
}

#' @export
conditionMessage.tfprobr_error <- function(c) {
  if (!inherits(c, "python.builtin.object") || isTRUE(unclass(c)[["message_in_r_words"]])) {
    return(NextMethod())
  }
  # A Python exception that came to R without passing through tfprobr's
  # functions: its own message, without the type or reticulate's pointer.
  text <- tryCatch(reticulate::py_to_r(reticulate::py_get_attr(c, "args"))[[1]],
                   error = function(e) NULL)
  if (is.character(text) && length(text) == 1L) r_words(text) else NextMethod()
}

# Evaluate `expr` (a call into Python); re-raise Python errors as R errors
# attributed to the user's call. `given`: the R values of the call's arguments
# by name; an error that ends by echoing one of them shows it as R writes it.
with_r_errors <- function(expr, call = sys.call(-1), given = list()) {
  tryCatch(expr, error = function(error) {
    made_in_r <- inherits(error, "tfprobr_error") && !inherits(error, "python.builtin.object")
    if (made_in_r || inherits(error, "tfprobr_python_missing")) {
      stop(error)
    }
    stop(python_error(error, call, given))
  })
}

# Python echoes the value it received in Python's syntax (`[3, 3]`, `True`,
# `None`); when the message ends with one `Received: name=value` for an
# argument the user gave, show the value as the user wrote it (`c(3, 3)`),
# and its type, if the message names one, as R names it. The rest of the
# message is put in R's words too (see r_words()).
in_r_words <- function(message, given = list()) {
  match <- regmatches(message, regexec("Received: ([A-Za-z_][A-Za-z0-9_]*)=([^=]*)$", message))[[1]]
  if (length(match) == 3L && match[[2]] %in% names(given)) {
    value <- given[[match[[2]]]]
    start <- nchar(message) - nchar(match[[1]])
    typed <- if (grepl(" of type [A-Za-z_.]+$", match[[3]])) paste(" of type", r_type(value)) else ""
    return(paste0(r_words(substr(message, 1, start)), "Received: ", match[[2]], "=",
                  received(value), typed))
  }
  r_words(message)
}

# Python's words for values and types, as an R user knows them.
r_words <- function(message) {
  replacements <- c(
    "`([A-Za-z_][A-Za-z0-9_.]*)=True`" = "`\\1 = TRUE`",
    "`([A-Za-z_][A-Za-z0-9_.]*)=False`" = "`\\1 = FALSE`",
    "`([A-Za-z_][A-Za-z0-9_.]*)=None`" = "`\\1 = NULL`",
    "\\bNone\\b" = "NULL", "\\bTrue\\b" = "TRUE", "\\bFalse\\b" = "FALSE",
    "of type NoneType\\b" = "of type NULL", "of type float\\b" = "of type numeric",
    "of type int\\b" = "of type integer", "of type str\\b" = "of type character",
    "of type bool\\b" = "of type logical", "of type (dict|list|tuple)\\b" = "of type list",
    # Python's list of numbers is an R vector.
    "\\ba list of ((?:1 or )?\\d+ )?(positive )?(integers?|numbers?)\\b" = "a vector of \\1\\2\\3",
    "\\ba list of them\\b" = "a vector of them",
    # Python's empty tuple, a scalar event's shape, is R's list().
    "\\(\\) for a scalar\\b" = "list() for a scalar"
  )
  for (pattern in names(replacements)) {
    message <- gsub(pattern, replacements[[pattern]], message, perl = TRUE)
  }
  message
}

# The type of an R value, in the words R users read in R's own messages.
r_type <- function(value) {
  if (is.null(value)) "NULL" else if (is.function(value)) "function" else class(value)[1]
}

# An R error in Keras's form, for what only R can judge (NA, R environments
# and code, an R closure's arity). `type` is the Python exception Python
# would raise for the like, so both kinds of error carry the same R classes.
argument_error <- function(name, expected, value, call = sys.call(-1), type = "value") {
  r_error(paste0("`", name, "` must be ", expected, ". Received: ", name, "=", received(value)),
          call, type)
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
