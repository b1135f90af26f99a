#' Arithmetic and comparison on TensorFlow tensors
#'
#' So that divergence and tensor functions written in R, such as
#' `function(q, p, ignore) tfd_kl_divergence(q, p) / n`, work, tensors support
#' R's arithmetic (`+ - * / ^ %% %/%`) and comparison operators, with tensors
#' or R numbers on either side. The result is a tensor.
#'
#' @param e1,e2 Tensors or R numbers.
#' @return A tensor.
#' @examples
#' q <- tfp$distributions$Normal(loc = 1, scale = 1)
#' p <- tfp$distributions$Normal(loc = 0, scale = 1)
#' tfd_kl_divergence(q, p) / 10
#' @name tensor-ops
#' @export
Ops.tensorflow.python.types.core.Tensor <- function(e1, e2) {
  operator <- reticulate::import("operator")
  binary <- c(`+` = "add", `-` = "sub", `*` = "mul", `/` = "truediv", `^` = "pow",
              `%%` = "mod", `%/%` = "floordiv", `==` = "eq", `!=` = "ne",
              `<` = "lt", `<=` = "le", `>` = "gt", `>=` = "ge", `&` = "and_",
              `|` = "or_")
  if (missing(e2)) {
    unary <- c(`-` = "neg", `+` = "pos", `!` = "invert")
    return(with_r_errors(operator[[unary[[.Generic]]]](e1), sys.call()))
  }
  with_r_errors(operator[[binary[[.Generic]]]](e1, e2), sys.call())
}
