# Every way a Keras user builds and calls the layer, from R, with two kinds of
# fns: the defaults, and R closures for the four kernel fns. The rows come
# from fixtures/usage_patterns.csv, which the Python tests
# (tests/test_usage_patterns.py) read too; every row marked r = "yes" has an R
# builder below, keyed by its pattern name, and a row without one fails.
#
# Each builder runs its pattern as an R user writes it with keras3 (and the R
# tensorflow package for tf.function, strategies and tf.saved_model; `keras$`
# or a model's own method only where keras3 has no function), then
# check_case() asserts, for that model: training with keras3's fit() moves
# every posterior variable; predict and evaluate give finite numbers of
# the right shape; predict_mc() gives a mean and a standard deviation of the
# right shape, every standard deviation > 0; one eager call adds exactly one
# KL loss per Bayesian layer call, equal to the analytic KL of the layer's own
# distributions (divided by n for the R closure); every R closure ran; and
# saving: with the defaults a .keras round trip restores identical posterior
# variables and a predictive mean that agrees within Monte Carlo error; with R
# closures, saving fails with an R error naming the fn argument. The rows that
# build the layer inside a traced function (no Input, a custom tf.function
# step, predict_mc first, nested, mixed precision, jit, a strategy) are the
# ones that failed with "out of scope" before build() was lifted out of
# function graphs; input_first, eager_call_first, model_build and functional
# build eagerly and are the controls.
#
# R closures cannot run on a MirroredStrategy replica thread (see
# runs_on_replica_threads()): that one case runs in a child R process.

n_examples <- 4L   # examples of 6 x 6 x 6 x 1
n_outputs <- 2L
n_draws <- 200L    # Monte Carlo draws when comparing two predictive means

usage_patterns <- function() {
  utils::read.csv(test_path("fixtures", "usage_patterns.csv"), stringsAsFactors = FALSE,
                  colClasses = "character")
}

# The two kinds of fns. "r_closures" replaces the four kernel fns with R
# functions (the documented defaults, written in R); each counts its calls, so
# the case can check that R code really ran.
make_fns <- function(kind) {
  if (kind == "defaults") {
    return(list())
  }
  calls <- new.env()
  count <- function(name) assign(name, get0(name, calls, ifnotfound = 0L) + 1L, envir = calls)
  n <- n_examples
  fns <- list(
    kernel_posterior_fn = function(dtype, shape, name, trainable, add_variable_fn) {
      count("kernel_posterior_fn")
      posterior <- tfp$layers$util$default_mean_field_normal_fn()
      posterior(dtype, shape, name, trainable, add_variable_fn)
    },
    kernel_posterior_tensor_fn = function(d) {
      count("kernel_posterior_tensor_fn")
      d %>% tfd_sample()
    },
    kernel_prior_fn = function(dtype, shape, name, trainable, add_variable_fn) {
      count("kernel_prior_fn")
      tfp$layers$util$default_multivariate_normal_fn(dtype, shape, name, trainable, add_variable_fn)
    },
    kernel_divergence_fn = function(q, p, ignore) {
      count("kernel_divergence_fn")
      tfd_kl_divergence(q, p) / n
    }
  )
  structure(fns, calls = calls, kl_scale = n)
}

closure_calls <- function(fns) {
  calls <- attr(fns, "calls")
  vapply(names(fns), function(name) get0(name, calls, ifnotfound = 0L), 1L)
}

# The Bayesian layer, composed with `object` as layer_conv_3d_reparameterization()
# does (NULL: the layer itself), with the case's fns.
bayes <- function(object = NULL, fns) {
  do.call(layer_conv_3d_reparameterization,
          c(list(object, filters = 2, kernel_size = 3), fns))
}

# The layers after the Bayesian one. "max" is upstream's MaxPooling3D and
# Flatten; "average" (GlobalAveragePooling3D) is used elsewhere, because
# TensorFlow has no CPU kernel for MaxPool3D in float16, and because Flatten
# fixes the batch size in a tf.saved_model signature of a model that fit()
# built (the first batch's size; Keras's own Conv3D does the same).
head_layers <- function(pooling = "average", output_dtype = NULL) {
  pool <- switch(pooling,
                 max = list(layer_max_pooling_3d(), layer_flatten()),
                 average = list(layer_global_average_pooling_3d()))
  c(pool, list(layer_dense(units = n_outputs, dtype = output_dtype)))
}

# A Sequential model without an input shape: Keras builds it on its first call.
sequential <- function(fns, ...) {
  keras_model_sequential(layers = c(list(bayes(fns = fns)), head_layers(...)))
}

compile_model <- function(model, ...) {
  compile(model, optimizer = optimizer_adam(0.01), loss = "mse", ...)
}

example_data <- function(two_inputs = FALSE) {
  x <- volumes(n_examples, 6)
  y <- matrix(stats::runif(n_examples * n_outputs), n_examples, n_outputs)
  if (two_inputs) {
    x <- list(x, x[rev(seq_len(n_examples)), , , , , drop = FALSE])
  }
  list(x = x, y = y)
}

new_case <- function(model, fns, data, ...) {
  utils::modifyList(list(model = model, fns = fns, x = data$x, y = data$y, before = NULL,
                         kl_calls = 1L, strategy = NULL, policy = "float32",
                         saved_model = FALSE), list(...))
}

bayesian_layers <- function(model) {
  found <- list()
  for (layer in model$layers) {
    if (inherits(layer, "tfprobr_bridge.layers.conv.Conv3DReparameterization")) {
      found <- c(found, list(layer))
    } else if (reticulate::py_has_attr(layer, "layers")) {
      found <- c(found, bayesian_layers(layer))
    }
  }
  found
}

# The Bayesian layers' weights (keras3's get_weights()), named by variable name.
posterior_values <- function(model) {
  values <- list()
  for (layer in bayesian_layers(model)) {
    names <- vapply(layer$weights, function(w) w$name, "")
    values[names] <- get_weights(layer)
  }
  values
}

all_built <- function(model) {
  all(vapply(bayesian_layers(model), function(layer) layer$built, TRUE))
}

# Monte Carlo agreement of two predictive means, each over `draws` draws: their
# difference has standard deviation sqrt((sd1^2 + sd2^2) / draws). Five of
# those per element (4 x 2 elements: a false alarm has probability < 1e-5).
expect_same_predictive_mean <- function(mean1, sd1, mean2, sd2, draws) {
  standard_error <- sqrt((sd1^2 + sd2^2) / draws)
  excess <- abs(mean1 - mean2) - (5 * standard_error + 1e-6)
  expect_true(all(excess <= 0),
              label = sprintf("max |mean difference| - 5 standard errors = %.3g", max(excess)))
}

# The checks every case goes through, after its builder ran its pattern.
check_case <- function(case) {
  model <- case$model
  x <- case$x
  y <- case$y
  fns <- case$fns
  closures <- length(fns) > 0

  # Training with keras3's fit(), unless the builder trained already. For a
  # model that fit() itself builds, the first values exist after the first
  # step: compare those with the values after the last (five steps later).
  before <- case$before
  if (is.null(before)) {
    if (all_built(model)) {
      before <- posterior_values(model)
    }
    first_step <- callback_lambda(on_train_batch_end = function(batch, logs) {
      if (is.null(before)) before <<- posterior_values(model)
    })
    if (!model$compiled) compile_model(model)
    history <- fit(model, x, y, epochs = 3, batch_size = 2, verbose = 0,
                   callbacks = list(first_step))
    losses <- history$metrics$loss
    expect_length(losses, 3L)
    expect_true(all(is.finite(losses)))
  }
  after <- posterior_values(model)
  expect_gte(length(after), 3L)  # kernel loc and scale, bias loc
  expect_identical(names(after), names(before))
  unmoved <- names(after)[vapply(names(after), function(name) identical(before[[name]], after[[name]]), TRUE)]
  expect_identical(unmoved, character(), label = "posterior variables training did not move")

  layer <- bayesian_layers(model)[[1]]
  expect_equal(layer$compute_dtype, sub("^mixed_", "", case$policy))
  expect_true(all(vapply(layer$weights, function(w) w$dtype == "float32", TRUE)))

  # predict, evaluate and predict_mc on the trained model.
  predictions <- predict(model, x, verbose = 0)
  expect_equal(dim(predictions), c(n_examples, n_outputs))
  expect_true(all(is.finite(predictions)))
  if (!model$compiled) compile_model(model)
  evaluation <- evaluate(model, x, y, verbose = 0)
  expect_named(evaluation, "loss")
  expect_true(is.finite(evaluation$loss))
  mc <- predict_mc(model, x, n_samples = n_draws)
  expect_equal(dim(mc$mean), c(n_examples, n_outputs))
  expect_equal(dim(mc$stddev), c(n_examples, n_outputs))
  expect_true(all(mc$stddev > 0), label = "every prediction varies between draws")

  # One eager call: exactly one KL term per Bayesian layer call, the analytic
  # KL of the layer's own distributions (the R closure divides it by n).
  outputs <- model(x)
  expect_equal(dim(outputs), c(n_examples, n_outputs))
  losses <- model$losses
  expect_length(losses, case$kl_calls)
  kl <- as.numeric(tfd_kl_divergence(layer$kernel_posterior, layer$kernel_prior)) /
    (attr(fns, "kl_scale") %||% 1)
  for (loss in losses) {
    expect_equal(as.numeric(loss), kl, tolerance = 1e-5)
  }
  expect_gt(kl, 0)
  if (closures) {
    called <- closure_calls(fns)
    expect_true(all(called >= 1L), label = paste("R closures called:", toString(called)))
  }

  if (case$saved_model) {
    check_tf_saved_model(case, mc)
  }
  check_keras_save(case, mc)
  invisible(case)
}

save_case <- function(case, path) {
  if (is.null(case$strategy)) {
    save_model(case$model, path)
  } else {
    with(case$strategy$scope(), save_model(case$model, path))
  }
}

check_keras_save <- function(case, mc) {
  path <- tempfile(fileext = ".keras")
  on.exit(unlink(path), add = TRUE)
  if (length(case$fns)) {
    # The documented behaviour: R functions cannot be serialised, and saving
    # says which argument holds one (the first R closure, in argument order).
    expect_error(save_case(case, path), "`kernel_posterior_fn` cannot be saved", fixed = TRUE)
    return(invisible())
  }
  save_case(case, path)
  loaded <- load_model(path)
  saved <- posterior_values(case$model)
  restored <- posterior_values(loaded)
  expect_identical(restored, saved)
  loaded(case$x)
  expect_length(loaded$losses, case$kl_calls)
  restored_mc <- predict_mc(loaded, case$x, n_samples = n_draws)
  expect_same_predictive_mean(mc$mean, mc$stddev, restored_mc$mean, restored_mc$stddev, n_draws)
}

# TF serving: tf$saved_model$save exports traced graphs (no fns are stored), so
# it works with R closures too, and the served graph never calls back into R.
check_tf_saved_model <- function(case, mc) {
  directory <- tempfile()
  on.exit(unlink(directory, recursive = TRUE), add = TRUE)
  tf$saved_model$save(case$model, directory)
  served <- tf$saved_model$load(directory)
  serve <- served$signatures[["serving_default"]]
  calls <- if (length(case$fns)) closure_calls(case$fns)
  input <- as_tensor(case$x, dtype = "float32")
  draws <- vapply(seq_len(n_draws), function(i) as.array(serve(input)[["output_0"]]),
                  matrix(0, n_examples, n_outputs))
  expect_true(all(is.finite(draws)))
  # Still Bayesian: every output varies between calls.
  served_sd <- apply(draws, 1:2, stats::sd) * sqrt((n_draws - 1) / n_draws)
  expect_true(all(served_sd > 0))
  expect_same_predictive_mean(mc$mean, mc$stddev, apply(draws, 1:2, mean), served_sd, n_draws)
  # The served graph reads the trained posterior variables.
  captured <- list()
  for (variable in serve$variables) {
    captured[[sub(":0$", "", basename(variable$name))]] <- as.array(variable)
  }
  values <- posterior_values(case$model)
  expect_identical(captured[names(values)], values)
  if (length(case$fns)) {
    expect_identical(closure_calls(case$fns), calls)
  }
}

# The builders, one per row of the table. Each runs the pattern as a user
# writes it and returns check_case()'s result.
first_action <- function(action, pooling = "average") {
  force(action)
  force(pooling)
  function(fns) {
    data <- example_data()
    model <- sequential(fns, pooling = pooling)
    if (action == "predict") {
      predictions <- predict(model, data$x, verbose = 0)
      expect_equal(dim(predictions), c(n_examples, n_outputs))
      expect_true(all(is.finite(predictions)))
    } else if (action == "evaluate") {
      compile_model(model)
      expect_true(is.finite(evaluate(model, data$x, data$y, verbose = 0)$loss))
    } else if (action == "call") {
      outputs <- model(data$x)
      expect_equal(dim(outputs), c(n_examples, n_outputs))
      expect_length(model$losses, 1L)
    } else if (action == "predict_mc") {
      mc <- predict_mc(model, data$x, n_samples = 5)
      expect_equal(dim(mc$mean), c(n_examples, n_outputs))
      expect_equal(dim(mc$stddev), c(n_examples, n_outputs))
      expect_true(all(mc$stddev > 0))
    }
    check_case(new_case(model, fns, data))
  }
}

mixed_precision <- function(policy) {
  force(policy)
  function(fns) {
    config_set_dtype_policy(policy)
    on.exit(config_set_dtype_policy("float32"), add = TRUE)
    # As Keras's mixed precision guide advises: outputs in float32.
    model <- sequential(fns, output_dtype = "float32")
    compile_model(model)
    check_case(new_case(model, fns, example_data(), policy = policy))
  }
}

# A subclassed model, as keras3 makes one: the Bayesian layer and the head
# are attributes, call() chains them. Its config holds the Bayesian layer's
# (as Keras asks of a model whose constructor takes arguments), so saving
# serialises the layer's fns; registered, so that load_model() knows the class.
subclassed_model_class <- function() {
  if (is.null(.subclassed$class)) {
    .subclassed$class <- register_keras_serializable(new_model_class(
      "TfprobrSubclassed",
      initialize = function(bayes_layer, ...) {
        super$initialize(...)
        if (!inherits(bayes_layer, "keras.src.layers.layer.Layer")) {
          bayes_layer <- deserialize_keras_object(bayes_layer)  # from_config()
        }
        self$bayes <- bayes_layer
        head <- head_layers()
        self$pool <- head[[1]]
        self$dense <- head[[2]]
      },
      call = function(inputs) {
        inputs |> self$bayes() |> self$pool() |> self$dense()
      },
      get_config = function() {
        config <- super$get_config()
        config$bayes_layer <- serialize_keras_object(self$bayes)
        config
      }
    ), package = "tfprobr_tests")
  }
  .subclassed$class
}
.subclassed <- new.env()

builders <- list(
  sequential_fit_first = first_action("fit", pooling = "max"),

  subclassed_model = function(fns) {
    model <- subclassed_model_class()(bayes_layer = bayes(fns = fns))
    expect_false(model$built)  # fit() builds it, in Keras's symbolic pass first
    compile_model(model)
    check_case(new_case(model, fns, example_data()))
  },
  sequential_predict_first = first_action("predict"),
  sequential_evaluate_first = first_action("evaluate"),

  custom_train_step = function(fns) {
    data <- example_data()
    model <- sequential(fns)
    optimizer <- optimizer_adam(0.01)
    traces <- 0L
    # An R function traced by tf.function (the R tensorflow package's
    # tf_function()): the unbuilt model is built inside the trace, by its
    # first call.
    step <- tf_function(function(x, y) {
      traces <<- traces + 1L
      with(tf$GradientTape() %as% tape, {
        outputs <- model(x, training = TRUE)
        loss <- tf$reduce_mean((outputs - y)^2) + tf$add_n(model$losses)
      })
      variables <- model$trainable_variables
      gradients <- tape$gradient(loss, variables)
      optimizer$apply(gradients, variables)
      loss
    })
    x <- as_tensor(data$x, dtype = "float32")
    y <- as_tensor(data$y, dtype = "float32")
    losses <- as.numeric(step(x, y))
    expect_true(model$built)
    before <- posterior_values(model)
    traced <- traces
    for (i in 1:4) losses <- c(losses, as.numeric(step(x, y)))
    expect_true(all(is.finite(losses)))
    expect_identical(traces, traced)  # one graph, reused for every step
    check_case(new_case(model, fns, data, before = before))
  },

  predict_mc_unbuilt = first_action("predict_mc"),

  input_first = function(fns) {
    model <- keras_model_sequential(input_shape = c(6, 6, 6, 1),
                                    layers = c(list(bayes(fns = fns)), head_layers()))
    expect_true(model$built)
    compile_model(model)
    check_case(new_case(model, fns, example_data()))
  },

  eager_call_first = first_action("call"),

  model_build = function(fns) {
    model <- sequential(fns)
    model$build(list(NULL, 6L, 6L, 6L, 1L))  # keras3 has no build() function
    expect_true(model$built)
    expect_equal(unlist(model$output_shape), n_outputs)
    compile_model(model)
    check_case(new_case(model, fns, example_data()))
  },

  functional = function(fns) {
    inputs <- keras_input(shape = c(6, 6, 6, 1))
    outputs <- inputs %>%
      bayes(fns = fns) %>%
      layer_global_average_pooling_3d() %>%
      layer_dense(n_outputs)
    model <- keras_model(inputs, outputs)
    compile_model(model)
    check_case(new_case(model, fns, example_data()))
  },

  nested = function(fns) {
    inner <- keras_model_sequential(layers = list(bayes(fns = fns),
                                                  layer_global_average_pooling_3d()))
    model <- keras_model_sequential(layers = list(inner, layer_dense(units = n_outputs)))
    compile_model(model)
    check_case(new_case(model, fns, example_data()))
  },

  shared_layer = function(fns) {
    shared <- bayes(fns = fns)
    first <- keras_input(shape = c(6, 6, 6, 1))
    second <- keras_input(shape = c(6, 6, 6, 1))
    pool <- layer_global_average_pooling_3d()
    outputs <- layer_concatenate(list(pool(shared(first)), pool(shared(second)))) |>
      layer_dense(n_outputs)
    model <- keras_model(list(first, second), outputs)
    compile_model(model)
    check_case(new_case(model, fns, example_data(two_inputs = TRUE), kl_calls = 2L))
  },

  mirrored_deferred = function(fns) {
    strategy <- tf$distribute$MirroredStrategy(list("/cpu:0"))
    with(strategy$scope(), {
      model <- sequential(fns)
      compile_model(model)
    })
    check_case(new_case(model, fns, example_data(), strategy = strategy))
  },

  mixed_float16 = mixed_precision("mixed_float16"),
  mixed_bfloat16 = mixed_precision("mixed_bfloat16"),

  jit_compile = function(fns) {
    model <- sequential(fns)
    compile_model(model, jit_compile = TRUE)
    case <- check_case(new_case(model, fns, example_data()))
    expect_true(model$jit_compile)
    case
  },

  saved_model = function(fns) {
    model <- sequential(fns)
    compile_model(model)
    check_case(new_case(model, fns, example_data(), saved_model = TRUE))
  }
)

run_case <- function(pattern, kind) {
  keras3::set_random_seed(20261130)
  builders[[pattern]](make_fns(kind))
}

# MirroredStrategy runs the replica function (where Keras traces the model, so
# where the layer calls its fns) on a thread of its own, one per device, even
# for one device, while the main thread waits for it. R can run only on the
# main thread: reticulate 1.28 calls an R function from that thread anyway,
# which aborts the R process ("terminate called after throwing an instance of
# 'Rcpp::LongjumpException'"), and reticulate::py_main_thread_func() deadlocks
# (the main thread it would hand the call to is blocked waiting for the
# replica), and handing the call over with merge_call would hide it from the
# replica's gradient tape. So tfprobr wraps every R fn: off the main thread it
# raises an error naming the argument (with reticulate 1.46 and keras3's fit(),
# that error is what the child below reports). Such cases run in a child R
# process, so that a regression that aborts R cannot take the test run down
# with it.
runs_on_replica_threads <- function(pattern, kind) {
  kind == "r_closures" && pattern == "mirrored_deferred"
}

run_case_in_child <- function(pattern, kind) {
  rscript(c(
    "suppressMessages({library(testthat); library(keras3); library(tensorflow); library(tfprobr)})",
    "env <- new.env()",
    sprintf("sys.source(%s, env)", deparse(normalizePath(test_path("helper-python.R")))),
    "env$test_that <- function(desc, code) invisible(NULL)",
    sprintf("env$test_path <- function(...) file.path(%s, ...)", deparse(normalizePath(test_path()))),
    sprintf("sys.source(%s, env)", deparse(normalizePath(test_path("test-usage-patterns.R")))),
    sprintf("outcome <- tryCatch({env$run_case(%s, %s); 'CASE PASSED'},", deparse(pattern), deparse(kind)),
    "  error = function(e) paste('CASE ERROR:', conditionMessage(e)))",
    "cat(outcome, '\\nSESSION ALIVE\\n')"
  ))
}

fn_kinds <- c(defaults = "the default fns", r_closures = "R closures for the kernel fns")
patterns_table <- usage_patterns()

test_that("every row of usage_patterns.csv has an R builder or a reason why not", {
  # No Python needed: this keeps the table and the builders in step.
  patterns <- patterns_table
  expect_named(patterns, c("pattern", "r", "description"))
  expect_false(anyDuplicated(patterns$pattern) > 0)
  yes <- patterns$pattern[patterns$r == "yes"]
  expect_identical(setdiff(yes, names(builders)), character(),
                   label = "rows marked r = yes without an R builder")
  expect_identical(setdiff(names(builders), yes), character(),
                   label = "R builders for rows not marked r = yes")
  others <- patterns$r[patterns$r != "yes"]
  expect_true(all(grepl("^no: .+", others)), label = "rows not run from R give a reason")
})

for (row in seq_len(nrow(patterns_table))) {
  pattern <- patterns_table$pattern[row]
  if (patterns_table$r[row] != "yes") next
  for (kind in names(fn_kinds)) {
    test_that(sprintf("%s from R, %s: %s", pattern, fn_kinds[[kind]],
                      patterns_table$description[row]), {
      # A row without a builder fails here, with or without Python.
      expect_true(pattern %in% names(builders), label = paste(pattern, "has an R builder"))
      if (!pattern %in% names(builders)) {
        return()
      }
      skip_if_no_python()
      if (runs_on_replica_threads(pattern, kind)) {
        # What R users need: R survives, and the case passes or fails with an
        # R error naming an R closure's argument (see runs_on_replica_threads()).
        output <- run_case_in_child(pattern, kind)
        survived <- grepl("SESSION ALIVE", output, fixed = TRUE)
        explained <- grepl(
          "CASE PASSED|CASE ERROR:.*`kernel_(posterior|posterior_tensor|prior|divergence)_fn` is an R function",
          output
        )
        expect(survived && explained, paste0(
          "R closures under a MirroredStrategy must train, or fail with an R error naming ",
          "the fn argument, and never abort R. The child R process printed:\n", output
        ))
        return()
      }
      run_case(pattern, kind)
      expect_equal(config_dtype_policy()$name, "float32")
    })
  }
}
