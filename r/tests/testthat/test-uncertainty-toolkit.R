# The uncertainty toolkit, each function against an independent computation
# in R: calibration by hand and by a plain loop, the AUROC by counting pairs,
# predict_mc()'s entropies from the draws it returns, and to_bayesian()'s
# starting posteriors from the trained weights.

# Random class probabilities: `n` rows of `classes`, each summing to 1.
random_probabilities <- function(n, classes) {
  scores <- matrix(stats::rexp(n * classes), n, classes)^3
  scores / rowSums(scores)
}

# Expected and maximum calibration error by a plain loop over the bins:
# (lower, upper], the first bin from 0 inclusive.
calibration_by_loop <- function(probabilities, labels, n_bins) {
  confidence <- apply(probabilities, 1, max)
  predicted <- apply(probabilities, 1, which.max) - 1L
  edges <- (0:n_bins) / n_bins
  bins <- data.frame(lower = edges[-(n_bins + 1)], upper = edges[-1], confidence = NaN,
                     accuracy = NaN, count = 0L)
  ece <- 0
  mce <- 0
  for (b in seq_len(n_bins)) {
    inside <- confidence > edges[b] & confidence <= edges[b + 1]
    if (b == 1) {
      inside <- inside | confidence == 0
    }
    bins$count[b] <- sum(inside)
    if (any(inside)) {
      bins$confidence[b] <- mean(confidence[inside])
      bins$accuracy[b] <- mean(predicted[inside] == labels[inside])
      gap <- abs(bins$accuracy[b] - bins$confidence[b])
      ece <- ece + gap * sum(inside) / length(confidence)
      mce <- max(mce, gap)
    }
  }
  list(ece = ece, mce = mce, n_bins = as.integer(n_bins), bins = bins)
}

# The AUROC by counting every (wrong, right) pair: a win scores 1, a tie 1/2.
auroc_by_pairs <- function(uncertainty, wrong) {
  u_wrong <- uncertainty[wrong]
  u_right <- uncertainty[!wrong]
  wins <- outer(u_wrong, u_right, ">") + 0.5 * outer(u_wrong, u_right, "==")
  sum(wins) / (length(u_wrong) * length(u_right))
}

entropy_of <- function(p) -sum(ifelse(p > 0, p * log(p), 0))

test_that("calibration matches hand-computed cases", {
  skip_if_no_python()
  probabilities <- rbind(c(0.9, 0.1), c(0.8, 0.2), c(0.3, 0.7), c(0.6, 0.4), c(0.45, 0.55))
  labels <- c(0L, 1L, 1L, 0L, 0L)
  result <- calibration(probabilities, labels, n_bins = 4)
  expect_named(result, c("ece", "mce", "n_bins", "bins"))
  expect_identical(result$n_bins, 4L)
  expect_s3_class(result$bins, "data.frame")
  expect_named(result$bins, c("lower", "upper", "confidence", "accuracy", "count"))
  # Confidences 0.7 0.6 0.55 in (0.5, 0.75], 2 of 3 right; 0.9 0.8 in (0.75, 1], 1 of 2 right.
  expect_identical(result$bins$count, c(0L, 0L, 3L, 2L))
  expect_equal(result$bins$lower, c(0, 0.25, 0.5, 0.75))
  expect_equal(result$bins$upper, c(0.25, 0.5, 0.75, 1))
  expect_equal(result$bins$confidence, c(NaN, NaN, 1.85 / 3, 0.85))
  expect_equal(result$bins$accuracy, c(NaN, NaN, 2 / 3, 1 / 2))
  expect_equal(result$ece, (3 * abs(2 / 3 - 1.85 / 3) + 2 * abs(0.5 - 0.85)) / 5)
  expect_equal(result$mce, 0.35)
  # A confidence on an edge belongs to the bin below it; one prediction stays an array.
  edge <- calibration(matrix(c(0.6, 0.4), 1), 0L, n_bins = 5)
  expect_identical(edge$bins$count, c(0L, 0L, 1L, 0L, 0L))
  expect_equal(edge$ece, 0.4)
  # A perfectly confident, always right model is perfectly calibrated.
  perfect <- calibration(diag(3), 0:2, n_bins = 10)
  expect_equal(c(perfect$ece, perfect$mce), c(0, 0))
  expect_identical(perfect$bins$count, c(rep(0L, 9), 3L))
  # One-hot labels give what class indices give.
  expect_equal(calibration(probabilities, diag(2)[labels + 1, ], n_bins = 4), result)
})

test_that("calibration agrees with a plain R loop on random data, in any shape", {
  skip_if_no_python()
  set.seed(13)
  probabilities <- random_probabilities(500, 3)
  labels <- sample(0:2, 500, replace = TRUE)
  for (n_bins in c(1, 7, 15)) {
    expect_equal(calibration(probabilities, labels, n_bins = n_bins),
                 calibration_by_loop(probabilities, labels, n_bins), tolerance = 1e-12)
  }
  # A segmentation's array (batch, x, y, z, classes) is every voxel a prediction.
  voxels <- array(random_probabilities(2 * 3 * 4 * 5, 3), c(2, 3, 4, 5, 3))
  truth <- array(sample(0:2, 2 * 3 * 4 * 5, replace = TRUE), c(2, 3, 4, 5))
  expect_equal(calibration(voxels, truth, n_bins = 5),
               calibration_by_loop(matrix(voxels, ncol = 3), as.vector(truth), 5),
               tolerance = 1e-12)
})

test_that("calibration refuses NA in R and what Python refuses in Python's words", {
  skip_if_no_python()
  probabilities <- rbind(c(0.9, 0.1), c(0.3, 0.7))
  expect_error(calibration(probabilities, c(0L, NA)),
               "^`labels` must be a value without NA .*Received: labels=c\\(0L, NA\\)$",
               class = "tfprobr_value_error")
  expect_error(calibration(probabilities, c(0L, 2L)),
               "^`labels` must be class indices from 0 to 1\\. Received: labels with a value of 2$",
               class = "tfprobr_value_error")
  expect_error(calibration(probabilities, c(0L, 1L), n_bins = 0),
               "^`n_bins` must be a positive integer\\. Received: n_bins=0$")
  expect_error(calibration(probabilities, c(0L, 1L), n_bins = c(2, 3)),
               "Received: n_bins=c\\(2, 3\\)$")
  expect_error(calibration(probabilities * 2, c(0L, 1L)),
               "`probabilities` must be finite and in \\[0, 1\\]")
  expect_error(calibration(c(0.9, 0.1), 0L), "`probabilities` must have a last axis of 2 or more")
})

test_that("plot_reliability_diagram draws with base graphics and returns the calibration", {
  skip_if_no_python()
  path <- tempfile(fileext = ".png")
  grDevices::png(path)
  on.exit(unlink(path))
  probabilities <- rbind(c(0.9, 0.1), c(0.8, 0.2), c(0.3, 0.7), c(0.4, 0.6))
  labels <- c(0L, 1L, 1L, 1L)
  drawn <- withVisible(plot_reliability_diagram(probabilities, labels, n_bins = 5,
                                                label = "model", main = "reliability"))
  expect_false(drawn$visible)
  expect_equal(drawn$value, calibration(probabilities, labels, n_bins = 5))
  # The list calibration() returned is drawn as it is, on the same plot too.
  again <- plot_reliability_diagram(drawn$value, label = "again", col = "red", add = TRUE,
                                    legend = NULL)
  expect_identical(again, drawn$value)
  grDevices::dev.off()
  expect_gt(file.size(path), 1000)
  expect_error(plot_reliability_diagram(probabilities),
               "^`labels` must be given with probabilities in `x`")
  expect_error(plot_reliability_diagram(drawn$value, labels),
               "^`labels` must be NULL when `x` is the list calibration\\(\\) returned")
  expect_error(plot_reliability_diagram(list(ece = 0.1)),
               "^`x` given as a list must be the one calibration\\(\\) returned")
  expect_error(plot_reliability_diagram(probabilities, labels, n_bins = -1),
               "^`n_bins` must be a positive integer\\. Received: n_bins=-1$")
})

test_that("error_detection_auroc equals the pairwise count, ties one half", {
  skip_if_no_python()
  expect_equal(error_detection_auroc(c(0.1, 0.4, 0.35, 0.8), c(FALSE, FALSE, TRUE, TRUE)), 0.75)
  set.seed(7)
  for (n in c(2, 11, 300)) {
    uncertainty <- round(stats::runif(n), 1)  # many ties
    wrong <- c(TRUE, FALSE, stats::runif(n - 2) < 0.3)
    expect_equal(error_detection_auroc(uncertainty, wrong), auroc_by_pairs(uncertainty, wrong),
                 tolerance = 1e-12)
  }
  # Any shape, and 0/1 for the wrong ones; a perfect and a reversed ranking.
  uncertainty <- matrix(stats::runif(40), 4)
  wrong <- matrix(as.numeric(uncertainty > 0.6), 4)
  expect_equal(error_detection_auroc(uncertainty, wrong), 1)
  expect_equal(error_detection_auroc(-uncertainty, wrong), 0)
  expect_equal(error_detection_auroc(matrix(1, 4, 10), wrong), 0.5)
  expect_error(error_detection_auroc(c(0.1, 0.2), c(FALSE, FALSE)),
               "`wrong` must hold both wrong \\(TRUE|True\\) and right")
  expect_error(error_detection_auroc(c(0.1, 0.2), c(TRUE, NA)), "^`wrong` must be a value without NA")
  expect_error(error_detection_auroc(c(0.1, 0.2, 0.3), c(TRUE, FALSE)), "`wrong` must have the shape of `uncertainty`")
})

test_that("wrong_predictions marks where the most probable class is not the label", {
  skip_if_no_python()
  expect_identical(wrong_predictions(rbind(c(0.9, 0.1), c(0.3, 0.7)), c(0L, 0L)), c(FALSE, TRUE))
  set.seed(3)
  probabilities <- array(random_probabilities(2 * 4 * 5, 3), c(2, 4, 5, 3))
  labels <- array(sample(0:2, 40, replace = TRUE), c(2, 4, 5))
  wrong <- wrong_predictions(probabilities, labels)
  expect_identical(dim(wrong), c(2L, 4L, 5L))
  predicted <- max.col(matrix(probabilities, ncol = 3), ties.method = "first") - 1L
  expect_identical(as.vector(wrong), predicted != as.vector(labels))
  expect_error(wrong_predictions(rbind(c(0.9, 0.1)), 1:2), "`labels` must be shaped like `probabilities`")
})

test_that("predict_mc's classifier summaries equal R's computation from the draws", {
  skip_if_no_python()
  set_random_seed(1)
  dense <- keras_model_sequential(input_shape = 4) |>
    layer_dense_reparameterization(units = 8, activation = "relu") |>
    layer_dense_reparameterization(units = 3, activation = "softmax")
  x <- matrix(stats::rnorm(40), 10)
  result <- predict_mc(dense, x, n_samples = 25, batch_size = 4, return_samples = TRUE,
                       verbose = 0, classifier = TRUE)
  expect_named(result, c("mean", "stddev", "samples", "predictive_entropy", "expected_entropy",
                         "mutual_information"), ignore.order = TRUE)
  draws <- result$samples  # draws x examples x classes
  expect_equal(dim(draws), c(25L, 10L, 3L))
  mean <- apply(draws, 2:3, mean)
  expect_equal(result$mean, mean, tolerance = 1e-5)
  expect_equal(result$stddev, apply(draws, 2:3, function(d) sqrt(mean((d - mean(d))^2))),
               tolerance = 1e-4)
  predictive <- apply(mean, 1, entropy_of)
  expected <- apply(apply(draws, 1:2, entropy_of), 2, mean)
  expect_equal(result$predictive_entropy, predictive, tolerance = 1e-5)
  expect_equal(result$expected_entropy, expected, tolerance = 1e-5)
  # A difference of float32 entropies near 1: compared to their round-off, absolutely.
  expect_lt(max(abs(result$mutual_information - pmax(predictive - expected, 0))), 1e-5)
  expect_true(all(result$mutual_information >= 0))
  expect_true(all(result$mutual_information <= result$predictive_entropy + 1e-7))

  # Logits of a 3-D segmenter: each draw becomes probabilities; one value per voxel.
  segmenter <- keras_model_sequential(input_shape = c(4, 4, 4, 1)) |>
    layer_conv_3d_flipout(filters = 3, kernel_size = 3, padding = "same")
  voxels <- predict_mc(segmenter, volumes(2, 4), n_samples = 6, return_samples = TRUE,
                       classifier = TRUE, from_logits = TRUE)
  expect_equal(dim(voxels$mutual_information), c(2L, 4L, 4L, 4L))
  expect_equal(apply(voxels$samples, 1:5, sum), array(1, c(6, 2, 4, 4, 4)), tolerance = 1e-5)
  expect_equal(voxels$predictive_entropy, apply(voxels$mean, 1:4, entropy_of), tolerance = 1e-5)
  expect_equal(voxels$expected_entropy,
               apply(apply(voxels$samples, 1:5, entropy_of), 2:5, mean), tolerance = 1e-5)

  # Without classifier = TRUE, no entropies; logits need a classifier; a regression is refused.
  expect_named(predict_mc(dense, x, n_samples = 2), c("mean", "stddev"), ignore.order = TRUE)
  expect_error(predict_mc(dense, x, n_samples = 2, from_logits = TRUE),
               "^`from_logits = TRUE` needs `classifier = TRUE`")
  regression <- keras_model_sequential(input_shape = 4) |> layer_dense_reparameterization(units = 1)
  expect_error(predict_mc(regression, x, n_samples = 2, classifier = TRUE),
               "`classifier = TRUE` needs model outputs whose last axis holds 2 or more classes")
  expect_error(predict_mc(dense, x, classifier = NA), "^`classifier` must be a value without NA")
})

# A small trained deterministic network: a convolution, a batch normalization
# (weights that are not a kernel), pooling and a dense head, 0-based labels.
trained_deterministic <- function() {
  model <- keras_model_sequential(input_shape = c(6, 6, 1), name = "deterministic") |>
    layer_conv_2d(filters = 4, kernel_size = 3, activation = "relu", name = "features") |>
    layer_batch_normalization(name = "normalize") |>
    layer_global_average_pooling_2d(name = "pool") |>
    layer_dense(units = 3, activation = "softmax", name = "head")
  compile(model, optimizer = optimizer_adam(0.05), loss = "sparse_categorical_crossentropy")
  x <- array(stats::runif(32 * 36), c(32, 6, 6, 1))
  y <- sample(0:2, 32, replace = TRUE)
  fit(model, x, y, epochs = 2, batch_size = 8, verbose = 0)
  list(model = model, x = x, y = y)
}

test_that("to_bayesian starts every posterior at the trained weights (MOPED)", {
  skip_if_no_python()
  set_random_seed(5)
  trained <- trained_deterministic()
  deterministic <- trained$model
  before <- get_weights(deterministic)
  bayesian <- to_bayesian(deterministic, delta = 0.1, num_examples = 1)
  expect_identical(get_weights(deterministic), before)  # the input is not changed
  expect_identical(vapply(bayesian$layers, function(layer) layer$name, ""),
                   c("features", "normalize", "pool", "head"))
  expect_identical(vapply(bayesian$layers, function(layer) class(layer)[1], ""),
                   c("tfprobr_bridge.layers.conv.Conv2DReparameterization",
                     "keras.src.layers.normalization.batch_normalization.BatchNormalization",
                     "keras.src.layers.pooling.global_average_pooling2d.GlobalAveragePooling2D",
                     "tfprobr_bridge.layers.dense.DenseReparameterization"))
  for (name in c("features", "head")) {
    trained_weights <- get_weights(get_layer(deterministic, name))  # kernel, bias
    layer <- get_layer(bayesian, name)
    posterior <- get_weights(layer)  # kernel loc, kernel untransformed scale, bias loc
    paths <- vapply(layer$weights, function(w) w$path, "")
    expect_identical(sub(".*/", "", paths), c("kernel_posterior_loc",
                                              "kernel_posterior_untransformed_scale",
                                              "bias_posterior_loc"))
    expect_equal(posterior[[1]], trained_weights[[1]])
    expect_equal(posterior[[3]], as.array(trained_weights[[2]]))
    expect_equal(as.array(layer$kernel_posterior$stddev()),
                 pmax(0.1 * abs(trained_weights[[1]]), 1e-5), tolerance = 1e-5)
  }
  # The batch normalization's weights (moving statistics too) carry over.
  expect_identical(get_weights(get_layer(bayesian, "normalize")),
                   get_weights(get_layer(deterministic, "normalize")))
  # With tiny scales the copy predicts what the trained network predicts.
  close <- to_bayesian(deterministic, delta = 1e-4, num_examples = 1)
  expect_equal(predict_mc(close, trained$x, n_samples = 3)$mean,
               predict(deterministic, trained$x, verbose = 0), tolerance = 1e-3)
})

test_that("to_bayesian's copy trains, saves and loads; the empirical prior and layers = ", {
  skip_if_no_python()
  set_random_seed(6)
  trained <- trained_deterministic()
  bayesian <- to_bayesian(trained$model, estimator = "flipout", delta = 0.05,
                          prior = "empirical", num_examples = 32)
  head <- get_layer(bayesian, "head")
  w <- get_weights(get_layer(trained$model, "head"))[[1]]
  expect_equal(as.array(head$kernel_prior$mean()), w)
  expect_equal(as.array(head$kernel_prior$stddev()), pmax(0.05 * abs(w), 1e-5), tolerance = 1e-5)
  invisible(bayesian(trained$x[1:2, , , , drop = FALSE]))
  kl <- vapply(bayesian$losses, as.array, 1)
  expect_length(kl, 2)
  expect_equal(kl, c(0, 0), tolerance = 1e-5)  # prior = starting posterior: no KL at the start

  compile(bayesian, optimizer = "adam", loss = "sparse_categorical_crossentropy",
          metrics = "accuracy")
  history <- fit(bayesian, trained$x, trained$y, epochs = 2, batch_size = 8, verbose = 0)
  expect_true(all(is.finite(history$metrics$loss)))
  path <- tempfile(fileext = ".keras")
  on.exit(unlink(path))
  save_model(bayesian, path)
  loaded <- load_model(path)
  expect_identical(get_weights(loaded), get_weights(bayesian))
  expect_identical(class(get_layer(loaded, "head"))[1], "tfprobr_bridge.layers.dense.DenseFlipout")
  expect_equal(dim(predict_mc(loaded, trained$x, n_samples = 2, classifier = TRUE)$mean),
               c(32L, 3L))

  # Only the layers named; the others keep their class and weights.
  partial <- to_bayesian(trained$model, layers = "head", num_examples = 32)
  expect_identical(class(get_layer(partial, "features"))[1],
                   "keras.src.layers.convolutional.conv2d.Conv2D")
  expect_identical(get_weights(get_layer(partial, "features")),
                   get_weights(get_layer(trained$model, "features")))
  expect_identical(class(get_layer(partial, "head"))[1],
                   "tfprobr_bridge.layers.dense.DenseReparameterization")

  expect_error(to_bayesian(trained$model, delta = NA, num_examples = 32),
               "^`delta` must be a value without NA")
  expect_error(to_bayesian(trained$model, delta = 0, num_examples = 32),
               "^`delta` must be a positive number\\. Received: delta=0$")
  expect_error(to_bayesian(trained$model, prior = "flat", num_examples = 32),
               "^`prior` must be one of \"standard\" or \"empirical\"\\. Received: prior=\"flat\"$")
  expect_error(to_bayesian(trained$model, num_examples = 32, layers = c("head", "pool")),
               "`layers` names a layer to_bayesian cannot convert: 'pool'.*Received: layers=c\\(\"head\", \"pool\"\\)$")
  expect_error(to_bayesian("model"), "^`model` must be a Keras 3 model")
})
