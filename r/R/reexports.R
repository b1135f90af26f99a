#' Pipe
#'
#' Re-exported from magrittr: `lhs %>% rhs` calls `rhs` with `lhs` as its first argument. R's native `|>` works as well.
#'
#' @name %>%
#' @rdname pipe
#' @keywords internal
#' @importFrom magrittr %>%
#' @usage lhs \%>\% rhs
#' @param lhs A value or the magrittr placeholder.
#' @param rhs A function call using the magrittr semantics.
#' @return The result of calling `rhs(lhs)`.
#' @export
NULL
