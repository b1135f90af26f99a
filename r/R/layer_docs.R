# The documentation of the twelve layer_*() functions, written once and
# expanded into each page by roxygen2's `@eval` (as TensorFlow Probability
# shares its argument texts with doc_args and expand_docstring). Each page is
# generated from its kind ("conv" or "dense"), rank and estimator, so the
# rank's axes, shapes and the estimator's description are right by
# construction. Used when the documentation is built, not at run time.

rank_words <- list(
  `1` = list(axes = "length", what = "sequences", shape = "(batch, length, channels)",
             shape_first = "(batch, channels, length)"),
  `2` = list(axes = "height and width", what = "images",
             shape = "(batch, height, width, channels)",
             shape_first = "(batch, channels, height, width)"),
  `3` = list(axes = "depth, height and width", what = "volumes",
             shape = "(batch, depth, height, width, channels)",
             shape_first = "(batch, channels, depth, height, width)")
)

estimator_names <- c(
  reparameterization = "reparameterization",
  flipout = "Flipout",
  local_reparameterization = "local reparameterization"
)

estimator_references <- c(
  reparameterization = paste(
    "Diederik P. Kingma and Max Welling. Auto-Encoding Variational Bayes. In",
    "International Conference on Learning Representations, 2014.",
    "<https://arxiv.org/abs/1312.6114>"
  ),
  flipout = paste(
    "Yeming Wen, Paul Vicol, Jimmy Ba, Dustin Tran and Roger Grosse. Flipout: Efficient",
    "Pseudo-Independent Weight Perturbations on Mini-Batches. In International",
    "Conference on Learning Representations, 2018. <https://arxiv.org/abs/1803.04386>"
  ),
  local_reparameterization = paste(
    "Diederik P. Kingma, Tim Salimans and Max Welling. Variational Dropout and the",
    "Local Reparameterization Trick. In Advances in Neural Information Processing",
    "Systems, 2015. <https://arxiv.org/abs/1506.02557>"
  )
)

# TensorFlow Probability's tf_keras class of the same estimator and rank, or
# NULL where it has none.
tfp_class <- function(kind, rank, estimator) {
  if (kind == "dense") {
    return(c(reparameterization = "DenseReparameterization", flipout = "DenseFlipout",
             local_reparameterization = "DenseLocalReparameterization")[[estimator]])
  }
  if (estimator == "local_reparameterization") {
    return(NULL)
  }
  paste0("Convolution", rank, "D",
         c(reparameterization = "Reparameterization", flipout = "Flipout")[[estimator]])
}

# The roxygen text of one page, without its title and examples (which each
# block states itself).
variational_layer_docs <- function(kind, rank = NA, estimator) {
  words <- if (kind == "conv") rank_words[[as.character(rank)]]
  # What f(inputs; kernel) is, in the formulas.
  f <- if (kind == "conv") "conv" else "matmul"
  c(
    doc_description(kind, rank, estimator, words),
    "@details",
    doc_details(kind, estimator, f),
    "@section Scaling the KL divergence:",
    "Keras adds the layer's losses to the loss of every batch. When training on",
    "minibatches, scale the divergence so that it counts once per epoch: with `n`",
    "training examples, pass `kernel_divergence_fn = scaled_kl_divergence_fn(n)`, which",
    "saves with the model, or the R function",
    "`function(q, p, ignore) tfd_kl_divergence(q, p) / n` (and likewise",
    "`bias_divergence_fn` if the bias has a prior).",
    "",
    "@section Defaults, NULL and saving:",
    "The default functions are the ones shown in the usage. When you leave one at its",
    "default, the layer uses an equivalent built into the Python package (same",
    "mathematics: loc initialised from N(0, 0.1), untransformed scale from N(-3, 0.1),",
    "scale = softplus + machine epsilon, a standard Normal prior, one sample per call,",
    "the analytic KL summed over all weights), which can be saved with the model.",
    "A function you pass, an R function included, is always used as given; a model",
    "holding an R function cannot be saved to a `.keras` file (R functions cannot be",
    "serialised), and saving says so.",
    "",
    "`NULL` switches a part off: `bias_posterior_fn = NULL` for no bias,",
    "`kernel_prior_fn = NULL` or `kernel_divergence_fn = NULL` for no kernel",
    "divergence (likewise for the bias). `kernel_posterior_fn` and",
    "`kernel_posterior_tensor_fn` cannot be `NULL`.",
    "",
    doc_params(kind, rank, estimator, words),
    "@return Depends on `object` (see above): a Keras 3 layer, a layer stack, the",
    "  model (with the layer added), or the output tensor.",
    paste("@references", estimator_references[[estimator]]),
    "@seealso [predict_mc()], [scaled_kl_divergence_fn()], [layer_stack()],",
    "  [tfd_kl_divergence()]",
    "@family variational layers"
  )
}

doc_description <- function(kind, rank, estimator, words) {
  name <- estimator_names[[estimator]]
  what <- if (kind == "conv") {
    c(paste0("A ", rank, "-D convolution ([keras3::layer_conv_", rank, "d()]) whose kernel"),
      "and bias are drawn from learned distributions: its variational (Bayesian)",
      paste0("analogue, for ", words$what, " shaped `", words$shape, "` (or `",
             words$shape_first, "` with"),
      paste0("`data_format = \"channels_first\"`), trained with the ", name,
             " estimator (see Details)."))
  } else {
    c("A densely-connected layer ([keras3::layer_dense()]) whose kernel and bias are",
      "drawn from learned distributions: its variational (Bayesian) analogue, for inputs",
      "shaped `(batch, ..., features)` and outputs `(batch, ..., units)`, trained with",
      paste0("the ", name, " estimator (see Details)."))
  }
  upstream <- if (kind == "conv" && estimator == "local_reparameterization") {
    c("", "TensorFlow Probability has the local reparameterization estimator for dense",
      paste0("layers only; `layer_conv_", rank, "d_local_reparameterization()` applies it to a"),
      paste0(rank, "-D convolution, with the arguments of `layer_conv_", rank,
             "d_reparameterization()`."))
  }
  c("@description", what, upstream, "")
}

doc_details <- function(kind, estimator, f) {
  calculation <- if (kind == "conv") "a convolution" else "a matrix product"
  estimator_text <- switch(
    estimator,
    reparameterization = c(
      "It uses the reparameterization estimator (Kingma and Welling, 2014): one kernel",
      "is drawn from the posterior per call and shared by every example of the batch.",
      "It works with any kernel posterior, and the kernel divergence function receives",
      "the drawn kernel as its third argument."
    ),
    flipout = c(
      "It uses the Flipout estimator (Wen et al., 2018), which gives each example of a",
      "batch its own pseudo-independent kernel. With the kernel posterior",
      "`Normal(mu, sigma)`, one perturbation `delta ~ Normal(0, sigma)` is drawn per",
      "call and decorrelated across the batch by random signs (+1 or -1) drawn per",
      "example, `s_in` on the input channels and `s_out` on the output channels",
      if (kind == "conv") "(shared over a convolution's positions):" else "",
      paste0("`outputs = ", f, "(x, mu) + ", f, "(x * s_in, delta) * s_out`. Every example"),
      "sees a kernel distributed as the posterior, but the gradient's variance falls",
      "with the batch size, for about twice the computation of the reparameterization",
      "estimator. It needs an independent Normal kernel posterior (the default); the",
      "kernel divergence function receives `NULL` as its third argument. An integer",
      "`seed` gives the signs and draws a random stream of their own, so they repeat run",
      if (kind == "dense") "after run." else "after run (pass it in `...`)."
    ),
    local_reparameterization = c(
      "It uses the local reparameterization estimator (Kingma, Salimans and Welling,",
      "2015): instead of drawing the kernel, it draws the outputs. With the kernel",
      "posterior `Normal(mu, sigma)` over independent weights, each output is Normal",
      paste0("with mean `", f, "(x, mu)` and variance `", f, "(x^2, sigma^2)`; the layer"),
      "draws it from that distribution (with `kernel_posterior_tensor_fn`), independently",
      if (kind == "conv") {
        c("per example and per output element. Each output element has exactly its",
          "distribution under the posterior; neighbouring outputs, which share weights and",
          "would be correlated under one drawn kernel, are drawn independently.")
      } else {
        "per example and per output, which for a dense layer is exact."
      },
      "The gradient's variance falls with the batch size. It needs an independent Normal",
      "kernel posterior (the default); the kernel divergence function receives `NULL` as",
      "its third argument."
    )
  )
  c(
    "By default, the layer implements a stochastic forward pass via sampling from the",
    "kernel and bias posteriors,",
    "`outputs = f(inputs; kernel, bias), kernel, bias ~ posterior`,",
    paste0("where f denotes the layer's calculation (", calculation, ", then the bias and the"),
    "activation).",
    "",
    estimator_text,
    "",
    "The arguments permit separate specification of the surrogate posterior",
    "(`q(W|x)`), prior (`p(W)`), and divergence for both the kernel and bias",
    "distributions.",
    "",
    "On every call, the layer adds losses (accessible via the `losses` property)",
    "representing the divergences of kernel and/or bias surrogate posteriors and their",
    "respective priors: first the kernel's, then the bias's, each only when its",
    "posterior, prior and divergence function are all present. The posterior and prior",
    "distributions are available after the layer is built as `layer$kernel_posterior`,",
    "`layer$kernel_prior`, `layer$bias_posterior` and `layer$bias_prior`.",
    ""
  )
}

doc_params <- function(kind, rank, estimator, words) {
  legacy <- tfp_class(kind, rank, estimator)
  legacy <- if (is.null(legacy)) {
    c("  * a legacy `tf_keras` Sequential model or tensor: an error, as TensorFlow",
      "    Probability has no `tf_keras` layer with this estimator for convolutions.")
  } else {
    c("  * a legacy `tf_keras` Sequential model or tensor: the same, with TFP's own",
      paste0("    `", legacy, "` (a Keras 2 layer)."))
  }
  sample <- if (estimator == "reparameterization") {
    "the very kernel used in the call"
  } else {
    "`NULL` with this estimator"
  }
  c(
    "@param object What to compose the layer with:",
    "  * missing or `NULL`: the layer itself is returned;",
    "  * a layer stack from [layer_stack()]: a new stack with the layer appended;",
    "  * a Keras 3 `Sequential` model (such as [keras3::keras_model_sequential()]",
    "    gives): the layer is added to the model, which is returned (as keras3's",
    "    `layer_*()` functions do);",
    "  * a Keras 3 symbolic tensor (from [keras3::keras_input()]), a TensorFlow",
    "    tensor or an R array: the layer is applied to it and the output is returned;",
    legacy,
    if (kind == "conv") doc_conv_params(rank, words) else doc_dense_params(),
    "@param activation Activation function: a name such as `\"relu\"`, a function, or",
    "  `NULL` to maintain a linear activation.",
    "@param activity_regularizer Regularizer function for the output.",
    "@param trainable Whether the layer weights will be updated during training.",
    "@param kernel_posterior_fn Function which creates a `tfd$Distribution` instance",
    "  representing the surrogate posterior of the kernel parameter, called as",
    "  `fn(dtype, shape, name, trainable, add_variable_fn)`. Default value:",
    "  `default_mean_field_normal_fn()`. Cannot be `NULL`.",
    "@param kernel_posterior_tensor_fn Function which takes a `tfd$Distribution`",
    "  instance and returns a representative value. Default value:",
    "  `function(d) d %>% tfd_sample()`. Cannot be `NULL`.",
    "@param kernel_prior_fn Function which creates a `tfd$Distribution` instance,",
    "  called like `kernel_posterior_fn`. Default value: a standard Normal over every",
    "  kernel weight (`default_multivariate_normal_fn`). `NULL` for no prior (and no",
    "  kernel divergence).",
    "@param kernel_divergence_fn Function which takes the surrogate posterior",
    "  distribution, prior distribution and random variate sample(s) from the surrogate",
    "  posterior and computes or approximates the KL divergence. The distributions are",
    paste0("  `tfd$Distribution`-like instances and the sample is a Tensor (", sample, ")."),
    "  `NULL` for no kernel divergence.",
    "@param bias_posterior_fn Function which creates a `tfd$Distribution` instance",
    "  representing the surrogate posterior of the bias parameter. Default value:",
    "  `default_mean_field_normal_fn(is_singular = TRUE)` (which creates an instance of",
    "  `tfd_deterministic`). `NULL` for no bias.",
    "@param bias_posterior_tensor_fn Function which takes a `tfd$Distribution` instance",
    "  and returns a representative value. Default value:",
    "  `function(d) d %>% tfd_sample()`.",
    "@param bias_prior_fn Function which creates a `tfd` instance, called like",
    "  `bias_posterior_fn`. Default value: `NULL` (no prior, no variational inference).",
    "@param bias_divergence_fn Function which takes the surrogate posterior",
    "  distribution, prior distribution and random variate sample(s) from the surrogate",
    "  posterior and computes or approximates the KL divergence (the sample is the",
    "  drawn bias). `NULL` for no bias divergence.",
    if (kind == "dense" && estimator == "flipout") {
      c("@param seed An integer from 0 to 2147483647 that gives the layer's sign flips and",
        "  draws a random stream of their own, so they repeat run after run; `NULL` to",
        "  draw from the global seed (see [keras3::set_random_seed()]). Part of the",
        "  layer's config.")
    },
    "@param ... Additional keyword arguments passed to the Keras 3 layer constructed",
    if (kind == "dense" && estimator == "flipout") {
      c("  by this function, such as `name`, `dtype` or `input_shape` (one example's",
        "  shape, `NA` for an unknown size, for the first layer of a model or stack).")
    } else {
      c("  by this function, such as `name`, `dtype`, `input_shape` (one example's shape,",
        "  `NA` for an unknown size, for the first layer of a model or stack) or `seed`",
        "  (an integer that gives the layer's draws a random stream of their own, so they",
        "  repeat run after run).")
    }
  )
}

doc_conv_params <- function(rank, words) {
  vector <- if (rank == 1) "An integer" else paste("An integer or a vector of", rank, "integers")
  c(
    "@param filters Integer, the dimensionality of the output space (i.e. the number",
    "  of filters in the convolution).",
    paste0("@param kernel_size ", vector, ", specifying the ", words$axes, " of the ",
           rank, "-D"),
    paste0("  convolution window.", if (rank > 1) " A single integer is used for all of them."),
    paste0("@param strides ", vector, ", specifying the strides of the convolution along"),
    paste0("  ", words$axes, ". Specifying any stride value != 1 is incompatible with"),
    "  specifying any `dilation_rate` value != 1.",
    "@param padding One of `\"valid\"` or `\"same\"` (case-insensitive).",
    "@param data_format A string, one of `\"channels_last\"` (default) or",
    "  `\"channels_first\"`. The ordering of the dimensions in the inputs.",
    paste0("  `channels_last` corresponds to inputs with shape `", words$shape, "`"),
    paste0("  while `channels_first` corresponds to inputs with shape `", words$shape_first, "`."),
    paste0("@param dilation_rate ", vector, ", specifying the dilation rate to use for"),
    "  dilated convolution. Currently, specifying any `dilation_rate` value != 1 is",
    "  incompatible with specifying any `strides` value != 1."
  )
}

doc_dense_params <- function() {
  c("@param units Integer, the dimensionality of the output space (the number of output",
    "  features).")
}
