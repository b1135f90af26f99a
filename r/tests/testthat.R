library(testthat)
library(tfprobr)

test_check("tfprobr")
