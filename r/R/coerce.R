# Small coercion helpers: R values in, values Python reads as intended out.
#
# Python validates every argument it receives, and its message (Keras's form:
# "`name` must be ... Received: name=value") reaches the user through
# with_r_errors(). These helpers convert, pass NULL and Python objects
# through, and refuse only what Python cannot see: R's NA (reticulate turns it
# into True, nan or "NA"), R environments, unevaluated R code and external
# pointers, and the arity of an R closure.

is_python <- function(x) inherits(x, "python.builtin.object")

# Whether `x` is a Python object of class `cls` (a Python class), by Python's
# isinstance: never by reticulate's class strings, which name module paths.
is_instance <- function(x, cls) {
  is_python(x) && isTRUE(reticulate::import_builtins()$isinstance(x, cls))
}

# Whole doubles as R integers, so that Python receives 2 rather than 2.0 (and
# says "Received: filters=2" when it refuses one). Anything else, 2.5 or a
# size too large for an R integer included, goes to Python as it is.
as_integer <- function(x) {
  if (is.double(x) && is.null(attributes(x)) && length(x) && all(is.finite(x)) &&
      all(x == trunc(x)) && all(abs(x) <= .Machine$integer.max)) {
    storage.mode(x) <- "integer"
  }
  x
}

# R's NA, anywhere in an atomic vector or a list. NaN is a number Python sees
# as it is, and judges.
has_na <- function(x) {
  if (is_python(x)) {
    return(FALSE)
  }
  if (is.list(x)) {
    return(any(vapply(x, has_na, TRUE)))
  }
  if (!is.atomic(x) || !length(x)) {
    return(FALSE)
  }
  na <- is.na(x)
  if (is.double(x) || is.complex(x)) {
    na <- na & !is.nan(x)
  }
  any(na)
}

# R environments (other than Python objects), unevaluated R code and external
# pointers, anywhere in a list: reticulate's own error for them names no
# argument.
is_r_only <- function(x) {
  if (is_python(x)) {
    return(FALSE)
  }
  if (is.list(x)) {
    return(any(vapply(x, is_r_only, TRUE)))
  }
  is.environment(x) || is.language(x) || typeof(x) %in% c("externalptr", "S4", "promise")
}

# A value for Python, refused here only for what Python cannot see. `na_ok`
# lets data through (an R array of inputs may hold NA, as NaN).
as_python_value <- function(x, name, call = sys.call(-1), na_ok = FALSE) {
  if (is.null(x) || is_python(x)) {
    return(x)
  }
  if (is_r_only(x)) {
    argument_error(name, "a value Python can receive (not an R environment or R code)", x,
                   call, type = "type")
  }
  if (!na_ok && has_na(x)) {
    argument_error(name, "a value without NA (R's missing value, which Python cannot receive)",
                   x, call)
  }
  x
}

# A fn argument. An R function's formals (which Python cannot read through
# reticulate) are handed to Python, which knows what the layer passes each fn
# and refuses one that cannot take it; it is then wrapped to run on R's
# thread only. Anything else (a Python callable, NULL, a value that is no
# function) goes to Python, which decides.
as_fn <- function(x, name, call = sys.call(-1)) {
  if (!is.function(x) || is_python(x)) {
    return(as_integer(as_python_value(x, name, call)))
  }
  formals <- formals(if (is.primitive(x)) args(x) else x)
  dots <- "..." %in% names(formals)
  required <- sum(vapply(formals, function(a) identical(a, quote(expr = )), TRUE))
  with_r_errors(
    r_bridge("facts")$check_r_function(name, required, length(formals), dots, received(x)),
    call, stats::setNames(list(x), name)
  )
  # An error inside the user's function names the argument it was given as
  # (reticulate would report only the function's own words, such as "object
  # 'tf' not found", against the call that built the layer).
  fn <- x
  named <- function(...) {
    withCallingHandlers(fn(...), error = function(error) {
      stop(structure(
        class = c("tfprobr_fn_error", "tfprobr_error", "error", "condition"),
        list(message = paste0("`", name, "` (an R function) failed: ", conditionMessage(error)),
             call = conditionCall(error))
      ))
    })
  }
  # R runs only on the main thread; off it (a tf.distribute replica), the
  # wrapper raises an error naming the argument instead of letting R abort.
  r_bridge("main_thread")$main_thread_fn(named, name)
}

# A module of the Python package's R bridge (tfprobr_bridge.r_bridge.*).
r_bridge <- function(module) {
  invisible(bridge)  # tfprobr_bridge first: it reports a missing Python or module
  reticulate::import(paste0("tfprobr_bridge.r_bridge.", module))
}

# One example's shape, for Python (which judges it): NA, R's unknown size,
# becomes None.
as_shape <- function(x, name, call = sys.call(-1)) {
  if (is.null(x) || is_python(x)) {
    return(x)
  }
  if (is.numeric(x) && is.null(dim(x))) {
    x <- as.list(x)
  }
  if (is.list(x)) {
    x <- lapply(x, function(size) {
      unknown <- is.atomic(size) && length(size) == 1L && is.na(size) &&
        !(is.double(size) && is.nan(size))
      if (unknown) NULL else as_integer(size)
    })
  }
  as_python_value(x, name, call)
}


# `verbose` as keras3 reads it: "auto" is one line when done under knitr,
# nothing under testthat, and otherwise Python's choice (a progress bar where a
# person watches, which reticulate tells Python of; one line otherwise).
as_verbose <- function(x, call = sys.call(-1)) {
  if (identical(x, "auto")) {
    if (isTRUE(getOption("knitr.in.progress"))) {
      return(2L)
    }
    if (identical(Sys.getenv("TESTTHAT"), "true")) {
      return(0L)
    }
    return(x)
  }
  as_integer(as_python_value(x, "verbose", call))
}
