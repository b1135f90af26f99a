# Python errors as R errors.
#
# reticulate 1.28 surfaces a Python exception as a C++ exception whose message
# starts with the Python type; users of an R API should get an R condition
# with the message alone (Keras's form: argument, expectation, received
# value), classed so that code can catch it.

python_error <- function(error, call) {
  last <- tryCatch(reticulate::py_last_error(), error = function(e) NULL)
  message <- conditionMessage(error)
  type <- "Error"
  if (!is.null(last) && is.character(last$value) && length(last$value) == 1L &&
      nzchar(last$value) && nzchar(last$type %||% "") &&
      grepl(last$value, message, fixed = TRUE)) {
    message <- last$value
    type <- last$type
  } else {
    message <- sub("\n+$", "", sub("^[A-Za-z.]*(Error|Exception): ", "", message))
  }
  structure(
    class = c(
      paste0("tfprobr_", tolower(sub("Error$", "", type)), "_error"),
      "tfprobr_error", "error", "condition"
    ),
    list(message = message, call = call, python_type = type)
  )
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
