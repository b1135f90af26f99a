# Small coercion helpers: R values in, values Python reads as intended out.
# Each passes NULL and Python objects through untouched (Python validates
# those) and raises an R error, in Keras's form, for what R can judge itself.

is_python <- function(x) inherits(x, "python.builtin.object")

# Whole numbers that fit R's (and TensorFlow's) 32-bit integers.
is_whole <- function(x) {
  is.numeric(x) && !anyNA(x) && all(is.finite(x)) && all(x == round(x)) &&
    all(abs(x) <= .Machine$integer.max)
}

as_count <- function(x, name, call = sys.call(-1)) {
  if (is.null(x) || is_python(x)) {
    return(x)
  }
  if (length(x) != 1L || !is_whole(x) || x < 1) {
    argument_error(name, "a positive whole number", x, call)
  }
  as.integer(x)
}

# 1 or `rank` positive whole numbers: an R scalar or vector (or list).
as_sizes <- function(x, name, rank = 3L, call = sys.call(-1)) {
  if (is.null(x) || is_python(x)) {
    return(x)
  }
  if (is.list(x) && all(vapply(x, function(item) is.numeric(item) && length(item) == 1L, TRUE))) {
    x <- unlist(x)
  }
  expected <- paste0("a positive whole number or a vector of 1 or ", rank,
                     " positive whole numbers")
  if (!length(x) %in% c(1L, rank) || !is_whole(x) || any(x < 1)) {
    argument_error(name, expected, x, call)
  }
  if (length(x) == 1L) as.integer(x) else reticulate::tuple(as.list(as.integer(x)))
}

as_flag <- function(x, name, call = sys.call(-1)) {
  if (!is.logical(x) || length(x) != 1L || is.na(x)) {
    argument_error(name, "TRUE or FALSE", x, call)
  }
  x
}

as_choice <- function(x, name, choices, call = sys.call(-1)) {
  if (is_python(x)) {
    return(x)
  }
  if (!is.character(x) || length(x) != 1L || is.na(x)) {
    argument_error(name, paste0("one of ", paste0('"', choices, '"', collapse = " or ")), x, call)
  }
  x
}

as_fn <- function(x, name, null_ok = TRUE, call = sys.call(-1)) {
  if (is.null(x)) {
    if (!null_ok) {
      argument_error(name, "a function (an R function or a Python callable)", x, call)
    }
    return(x)
  }
  if (is.function(x) || (is_python(x) && reticulate::py_has_attr(x, "__call__"))) {
    return(x)
  }
  expected <- if (null_ok) {
    "a function (an R function or a Python callable) or NULL"
  } else {
    "a function (an R function or a Python callable)"
  }
  argument_error(name, expected, x, call)
}

# One example's shape: whole numbers, NA for an unknown size.
as_shape <- function(x, name, call = sys.call(-1)) {
  if (is.null(x) || is_python(x)) {
    return(x)
  }
  if (is.list(x)) {
    x <- vapply(x, function(item) if (is.null(item)) NA_real_ else as.numeric(item), 1)
  }
  known <- x[!is.na(x)]
  if (!is.numeric(x) || length(x) < 1L || !is_whole(known) || any(known < 1)) {
    argument_error(name, "a vector of positive whole numbers (NA for an unknown size)",
                   x, call)
  }
  reticulate::tuple(lapply(x, function(size) if (is.na(size)) NULL else as.integer(size)))
}
