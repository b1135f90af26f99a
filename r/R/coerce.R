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

# Keras's `verbose`: "auto" or a number (0, 1, 2), which Python wants as an int.
as_verbose <- function(x) {
  if (is.numeric(x)) as.integer(x) else x
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

# What the layer passes each fn argument (TFP's protocol), by argument name.
fn_parameters <- function(name) {
  if (grepl("tensor_fn$", name)) {
    "d"
  } else if (grepl("divergence_fn$", name)) {
    c("q", "p", "ignore")
  } else {
    c("dtype", "shape", "name", "trainable", "add_variable_fn")
  }
}

# Can the R function `f` be called with `n` positional arguments?
takes_arguments <- function(f, n) {
  arguments <- formals(if (is.primitive(f)) args(f) else f)
  if ("..." %in% names(arguments)) {
    return(TRUE)
  }
  required <- sum(vapply(arguments, function(a) identical(a, quote(expr = )), TRUE))
  required <= n && length(arguments) >= n
}

as_fn <- function(x, name, null_ok = TRUE, call = sys.call(-1)) {
  if (is.null(x)) {
    if (!null_ok) {
      argument_error(name, "a function (an R function or a Python callable)", x, call)
    }
    return(x)
  }
  if (is_python(x) && reticulate::py_has_attr(x, "__call__")) {
    return(x)  # A Python callable (reticulate gives them class "function" too).
  }
  if (is.function(x)) {
    parameters <- fn_parameters(name)
    if (!takes_arguments(x, length(parameters))) {
      argument_error(
        name,
        paste0("a function of ", length(parameters), " argument",
               if (length(parameters) > 1) "s", " (", paste(parameters, collapse = ", "),
               "), as the layer calls it"),
        x, call
      )
    }
    # R runs only on the main thread; off it (a tf.distribute replica), the
    # wrapper raises an error naming the argument instead of letting R abort.
    return(reticulate::py_get_attr(bridge, "_main_thread")$main_thread_fn(x, name))
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
  expected <- "a vector of positive whole numbers (NA for an unknown size)"
  if (is.list(x)) {
    sizes <- vapply(x, function(item) is.null(item) || (is.numeric(item) && length(item) == 1L), TRUE)
    if (!all(sizes)) {
      argument_error(name, expected, x, call)
    }
    x <- vapply(x, function(item) if (is.null(item)) NA_real_ else as.numeric(item), 1)
  }
  if (!is.numeric(x)) {
    argument_error(name, expected, x, call)
  }
  known <- x[!is.na(x)]
  if (length(x) < 1L || !is_whole(known) || any(known < 1)) {
    argument_error(name, expected, x, call)
  }
  reticulate::tuple(lapply(x, function(size) if (is.na(size)) NULL else as.integer(size)))
}

# Values Python cannot receive: R environments (other than Python objects),
# unevaluated R code and external pointers. reticulate's own error for them
# names no argument.
as_python_value <- function(x, name, call = sys.call(-1)) {
  if (is_python(x)) {
    return(x)
  }
  if (is.environment(x) || is.language(x) || typeof(x) %in% c("externalptr", "S4", "promise")) {
    argument_error(name, "a value Python can receive (not an R environment or R code)", x, call)
  }
  x
}
