# tfprobability's test helpers (tests/testthat/helper-utils.R), for the ports of
# its distribution-layer tests. `test_succeeds()` keeps tfprobability's meaning
# (the code runs without error; expectations inside count too) but never
# skips: tfprobr's tests need the Python side, and a missing one is a failure.
test_succeeds <- function(desc, expr) {
  test_that(desc, {
    expect_error(force(expr), NA)
  })
}

tensor_value <- function(tensor) {
  as.array(tensor)
}

# The KL (and other) losses a model or layer added on its last call, as R numbers.
loss_values <- function(object) {
  vapply(object$losses, function(loss) as.numeric(as.array(loss)), numeric(1))
}

# The model's loss on (x, y) before and after `train()`, seeded so that the
# draws are the same in both evaluations.
loss_before_after <- function(model, x, y, train, seed = 1L) {
  evaluate_at <- function() {
    keras3::set_random_seed(seed)
    as.numeric(keras3::evaluate(model, x, y, verbose = 0)[[1]])
  }
  before <- evaluate_at()
  train()
  c(before = before, after = evaluate_at())
}

# log(1 + exp(x)), without overflow for large x.
softplus <- function(x) pmax(x, 0) + log1p(exp(-abs(x)))
