# The one helper behind the layer_*() functions, as keras3's
# create_layer() is behind its wrappers: a wrapper names its Python class and
# calls create_variational_layer(), which reads the wrapper's own frame
# (formals, missing() state, values and `...`), converts, and hands the
# arguments to the Python package's create_layer(), which validates them and
# composes the layer with `object`.

create_variational_layer <- function(class_name) {
  frame <- parent.frame()
  call <- sys.call(sys.parent())
  wrapper <- sys.function(sys.parent())
  is_missing <- function(name) eval(substitute(missing(x), list(x = as.name(name))), frame)
  value_of <- function(name) get(name, envir = frame, inherits = FALSE)

  args <- list()
  for (name in setdiff(names(formals(wrapper)), c("object", "..."))) {
    if (identical(formals(wrapper)[[name]], quote(expr = )) && is_missing(name)) {
      # A required argument left out is not passed: Python says it is
      # required, and what it takes (after any misspelt name in `...`).
      next
    } else if (endsWith(name, "_fn")) {
      # A fn left at its documented default is not passed: the Python
      # package's equivalent (same mathematics) is used, which saves with the
      # model and runs no R code per trace. A fn given, NULL included (a part
      # switched off), is used as given.
      if (!is_missing(name)) {
        args[name] <- list(as_fn(value_of(name), name, call))
      }
    } else {
      args[name] <- list(as_integer(as_python_value(value_of(name), name, call)))
    }
  }
  keywords <- if ("..." %in% names(formals(wrapper))) eval(quote(list(...)), frame) else list()
  given <- c(mget(names(args), envir = frame), keywords)
  args <- c(args, layer_keywords(keywords, call))

  object <- if (is_missing("object")) NULL else value_of("object")
  given$object <- object
  object <- as_python_value(object, "object", call, na_ok = !is.null(dim(object)))
  with_r_errors(
    # py_call on the attribute: `bridge$create_layer` would wrap the Python
    # function as an R function (reading its signature) on every call.
    reticulate::py_call(reticulate::py_get_attr(bridge, "create_layer"),
                        reticulate::py_get_attr(bridge, class_name), object, args),
    call, given
  )
}

# The layer's further keywords (`name`, `dtype`, `input_shape`, `seed`, ...),
# as Python reads them.
layer_keywords <- function(keywords, call) {
  if (length(keywords) && (is.null(names(keywords)) || any(!nzchar(names(keywords))))) {
    r_error("Arguments in `...` must be named (such as name = \"conv\").", call)
  }
  for (name in names(keywords)) {
    keywords[name] <- list(if (name == "input_shape") {
      as_shape(keywords[[name]], name, call)
    } else {
      as_integer(as_python_value(keywords[[name]], name, call))
    })
  }
  keywords
}
