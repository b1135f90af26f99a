library(testthat)
library(keras3)
library(tensorflow)
library(tfprobr)

test_check("tfprobr")
