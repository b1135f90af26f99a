"""Write r/R/layers.R, the R package's twelve layer wrappers and their pages, from Python.

    python tools/generate_r_layers.py [OUTPUT]   # default: r/R/layers.R

As rstudio/keras3 generates its wrappers from Keras, every fact R shares with
Python is read from the Python package: the family (``family.MEMBERS``: kind,
rank, estimator, class, TFP's class), R's function names
(``factory.r_name``), the rank's axes and shapes, the estimators' names, the
fns' parameters, and every argument's text (``docs.ARGUMENTS``, the table the
Python docstrings are written from), translated to R by ``r_text``.

What only R has lives here, R's side of the bridge: the formals
(rstudio/tfprobability's usage, with R's default expressions), the `object`
and `...` arguments, the pages' R prose and sections, and the examples. Then
run ``Rscript -e 'roxygen2::roxygenise()'`` in r/ to write the Rd files;
tests/test_generated_r.py checks that r/R/layers.R is this script's output.
"""

import os
import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfprobr_bridge.layers import base  # noqa: E402
from tfprobr_bridge.layers import docs  # noqa: E402
from tfprobr_bridge.layers import family  # noqa: E402
from tfprobr_bridge.r_bridge.factory import r_name  # noqa: E402

OUTPUT = ROOT / "r" / "R" / "layers.R"
COMMAND = "python tools/generate_r_layers.py"
WIDTH = 88  # of a roxygen line, "#' " included

# --- Python's words in R ------------------------------------------------------

# The whole translation of a table text to R, rule by rule. Inside a code span
# (`...`): Python's constants become R's, `tfd.X` becomes `tfd$X` and a
# keyword argument gets R's spaces (`f(a=True)` -> `f(a = TRUE)`). In prose,
# None becomes `NULL` (code, as R's pages write it), and a list (R's input is
# a vector) a vector.
_CODE_RULES = (
    (r"\bNone\b", "NULL"),
    (r"\bTrue\b", "TRUE"),
    (r"\bFalse\b", "FALSE"),
    (r"\btfd\.", "tfd$"),
    (r"(?<=\w)=(?=[\w\"'(])", " = "),
)
_PROSE_RULES = (
    (r"\bNone\b", "`NULL`"),
    (r"\bTrue\b", "`TRUE`"),
    (r"\bFalse\b", "`FALSE`"),
    (r"\ba list of\b", "a vector of"),
)
_CODE_SPAN = re.compile(r"(`[^`]*`)")


def _apply(rules, text):
    for pattern, replacement in rules:
        text = re.sub(pattern, replacement, text)
    return text


def r_text(text):
    """A text of Python's table, in R's words (see the rules above)."""
    return "".join(_apply(_CODE_RULES, part) if part.startswith("`") else
                   _apply(_PROSE_RULES, part) for part in _CODE_SPAN.split(text))


def r_argument(member, name):
    """The R page's text of argument ``name`` of ``member``: the Python table's, in R."""
    return r_text(docs.argument_text(member.cls, name))


# --- the formals: rstudio/tfprobability's usage -------------------------------

_REQUIRED = None
_R_FN_DEFAULTS = {
    "kernel_posterior_fn": "tfp$layers$util$default_mean_field_normal_fn()",
    "kernel_posterior_tensor_fn": "function(d) d %>% tfd_sample()",
    "kernel_prior_fn": "tfp$layers$util$default_multivariate_normal_fn",
    "kernel_divergence_fn": "function(q, p, ignore) tfd_kl_divergence(q, p)",
    "bias_posterior_fn": "tfp$layers$util$default_mean_field_normal_fn(is_singular = TRUE)",
    "bias_posterior_tensor_fn": "function(d) d %>% tfd_sample()",
    "bias_prior_fn": "NULL",
    "bias_divergence_fn": "function(q, p, ignore) tfd_kl_divergence(q, p)",
}
_CONV_FORMALS = (
    ("filters", _REQUIRED),
    ("kernel_size", _REQUIRED),
    ("strides", "1"),
    ("padding", '"valid"'),
    ("data_format", '"channels_last"'),
    ("dilation_rate", "1"),
)
_DENSE_FORMALS = (("units", _REQUIRED),)
_COMMON_FORMALS = (
    ("activation", "NULL"),
    ("activity_regularizer", "NULL"),
    ("trainable", "TRUE"),
)


def formals(member):
    """(name, R default expression or None) of ``member``'s wrapper, in upstream's order."""
    assert tuple(_R_FN_DEFAULTS) == base.FN_ARGUMENTS, "the fns changed: update _R_FN_DEFAULTS"
    own = _CONV_FORMALS if member.kind == "conv" else _DENSE_FORMALS
    # Upstream's layer_dense_flipout alone has `seed`; the others take it in `...`.
    seed = (("seed", "NULL"),) if (member.kind, member.estimator) == ("dense", "flipout") else ()
    return (("object", _REQUIRED), *own, *_COMMON_FORMALS, *_R_FN_DEFAULTS.items(), *seed,
            ("...", _REQUIRED))


# --- the pages' R text --------------------------------------------------------

_REFERENCES = {
    "reparameterization": "Diederik P. Kingma and Max Welling. Auto-Encoding Variational "
    "Bayes. In International Conference on Learning Representations, 2014. "
    "<https://arxiv.org/abs/1312.6114>",
    "flipout": "Yeming Wen, Paul Vicol, Jimmy Ba, Dustin Tran and Roger Grosse. Flipout: "
    "Efficient Pseudo-Independent Weight Perturbations on Mini-Batches. In International "
    "Conference on Learning Representations, 2018. <https://arxiv.org/abs/1803.04386>",
    "local_reparameterization": "Diederik P. Kingma, Tim Salimans and Max Welling. "
    "Variational Dropout and the Local Reparameterization Trick. In Advances in Neural "
    "Information Processing Systems, 2015. <https://arxiv.org/abs/1506.02557>",
}


def _title(member):
    what = f"{member.rank}-D convolution" if member.kind == "conv" else "dense"
    return f"Variational {what} layer with the {member.cls.estimator} estimator"


def _description(member, words):
    name = member.cls.estimator
    if member.kind == "conv":
        rank = member.rank
        paragraphs = [
            f"A {rank}-D convolution ([keras3::layer_conv_{rank}d()]) whose kernel and bias "
            "are drawn from learned distributions: its variational (Bayesian) analogue, for "
            f"{words['what']} shaped `{words['shape']}` (or `{words['shape_first']}` with "
            f'`data_format = "channels_first"`), trained with the {name} estimator (see '
            "Details)."
        ]
        if member.tfp_name is None:
            paragraphs.append(
                "TensorFlow Probability has the local reparameterization estimator for dense "
                f"layers only; `{r_name(member)}()` applies it to a {rank}-D convolution, with "
                f"the arguments of `layer_conv_{rank}d_reparameterization()`."
            )
        return paragraphs
    return [
        "A densely-connected layer ([keras3::layer_dense()]) whose kernel and bias are drawn "
        "from learned distributions: its variational (Bayesian) analogue, for inputs shaped "
        "`(batch, ..., features)` and outputs `(batch, ..., units)`, trained with the "
        f"{name} estimator (see Details)."
    ]


def _estimator_paragraph(member, words):
    conv = member.kind == "conv"
    f = "conv" if conv else "matmul"  # f(inputs; kernel) in the formulas
    uses = f"It uses {words['estimator_text']}"
    if member.estimator == "reparameterization":
        return (
            f"{uses}: one kernel is drawn from the posterior per call and shared by every "
            "example of the batch. It works with any kernel posterior, and the kernel "
            "divergence function receives the drawn kernel as its third argument."
        )
    if member.estimator == "flipout":
        return (
            f"{uses}, which gives each example of a batch its own pseudo-independent kernel. "
            "With the kernel posterior `Normal(mu, sigma)`, one perturbation "
            "`delta ~ Normal(0, sigma)` is drawn per call and decorrelated across the batch "
            "by random signs (+1 or -1) drawn per example, `s_in` on the input channels and "
            "`s_out` on the output channels"
            + (" (shared over a convolution's positions):" if conv else "")
            + f" `outputs = {f}(x, mu) + {f}(x * s_in, delta) * s_out`. Every example sees a "
            "kernel distributed as the posterior, but the gradient's variance falls with the "
            "batch size, for about twice the computation of the reparameterization "
            "estimator. It needs an independent Normal kernel posterior (the default); the "
            "kernel divergence function receives `NULL` as its third argument. An integer "
            "`seed` gives the signs and draws a random stream of their own, so they repeat "
            "run after run" + ("." if not conv else " (pass it in `...`).")
        )
    per = (
        "per example and per output element. Each output element has exactly its "
        "distribution under the posterior; neighbouring outputs, which share weights and "
        "would be correlated under one drawn kernel, are drawn independently."
        if conv else "per example and per output, which for a dense layer is exact."
    )
    return (
        f"{uses}: instead of drawing the kernel, it draws the outputs. With the kernel "
        "posterior `Normal(mu, sigma)` over independent weights, each output is Normal "
        f"with mean `{f}(x, mu)` and variance `{f}(x^2, sigma^2)`; the layer draws it from "
        f"that distribution (with `kernel_posterior_tensor_fn`), independently {per} The "
        "gradient's variance falls with the batch size. It needs an independent Normal "
        "kernel posterior (the default); the kernel divergence function receives `NULL` as "
        "its third argument."
    )


def _details(member, words):
    calculation = "a convolution" if member.kind == "conv" else "a matrix product"
    return [
        "By default, the layer implements a stochastic forward pass via sampling from the "
        "kernel and bias posteriors, `outputs = f(inputs; kernel, bias), kernel, bias ~ "
        f"posterior`, where f denotes the layer's calculation ({calculation}, then the bias "
        "and the activation).",
        _estimator_paragraph(member, words),
        "The arguments permit separate specification of the surrogate posterior "
        "(`q(W|x)`), prior (`p(W)`), and divergence for both the kernel and bias "
        "distributions.",
        "On every call, the layer adds losses (accessible via the `losses` property) "
        "representing the divergences of kernel and/or bias surrogate posteriors and their "
        "respective priors: first the kernel's, then the bias's, each only when its "
        "posterior, prior and divergence function are all present. The posterior and prior "
        "distributions are available after the layer is built as `layer$kernel_posterior`, "
        "`layer$kernel_prior`, `layer$bias_posterior` and `layer$bias_prior`.",
    ]


_SECTIONS = (
    ("Scaling the KL divergence", [
        "Keras adds the layer's losses to the loss of every batch. When training on "
        "minibatches, scale the divergence so that it counts once per epoch: with `n` "
        "training examples, pass `kernel_divergence_fn = scaled_kl_divergence_fn(n)`, which "
        "saves with the model, or the R function "
        "`function(q, p, ignore) tfd_kl_divergence(q, p) / n` (and likewise "
        "`bias_divergence_fn` if the bias has a prior).",
    ]),
    ("Defaults, NULL and saving", [
        "The default functions are the ones shown in the usage. When you leave one at its "
        "default, the layer uses an equivalent built into the Python package (same "
        "mathematics: loc initialised from N(0, 0.1), untransformed scale from N(-3, 0.1), "
        "scale = softplus + machine epsilon, a standard Normal prior, one sample per call, "
        "the analytic KL summed over all weights), which can be saved with the model. A "
        "function you pass, an R function included, is always used as given; a model "
        "holding an R function cannot be saved to a `.keras` file (R functions cannot be "
        "serialised), and saving says so.",
        "`NULL` switches a part off: `bias_posterior_fn = NULL` for no bias, "
        "`kernel_prior_fn = NULL` or `kernel_divergence_fn = NULL` for no kernel divergence "
        "(likewise for the bias). `kernel_posterior_fn` and `kernel_posterior_tensor_fn` "
        "cannot be `NULL`.",
    ]),
)


def _object_param(member):
    if member.tfp_name is None:
        legacy = ("a legacy `tf_keras` Sequential model or tensor: an error, as TensorFlow "
                  "Probability has no `tf_keras` layer with this estimator for convolutions.")
    else:
        legacy = ("a legacy `tf_keras` Sequential model or tensor: the same, with TFP's own "
                  f"`{member.tfp_name}` (a Keras 2 layer).")
    items = [
        "missing or `NULL`: the layer itself is returned;",
        "a layer stack from [layer_stack()]: a new stack with the layer appended;",
        "a Keras 3 `Sequential` model (such as [keras3::keras_model_sequential()] gives): the "
        "layer is added to the model, which is returned (as keras3's `layer_*()` functions "
        "do);",
        "a Keras 3 symbolic tensor (from [keras3::keras_input()]), a TensorFlow tensor or an "
        "R array: the layer is applied to it and the output is returned;",
        legacy,
    ]
    lines = _wrap("@param object What to compose the layer with:")
    for item in items:
        lines += _wrap(f"* {item}", indent="  ", subsequent="    ")
    return lines


def _dots_param(member, names):
    text = ("Additional keyword arguments passed to the Keras 3 layer constructed by this "
            "function, such as `name`, `dtype` or `input_shape` (one example's shape, `NA` for "
            "an unknown size, for the first layer of a model or stack)")
    if "seed" in names:
        return text + "."
    # `seed` is the Python class's argument, documented by the table.
    seed = r_argument(member, "seed")
    return f"{text}, and `seed`: {seed[0].lower()}{seed[1:]}"


_SEEALSO = ("[predict_mc()], [scaled_kl_divergence_fn()], [layer_stack()], "
            "[tfd_kl_divergence()]")
_RETURN = ("Depends on `object` (see above): a Keras 3 layer, a layer stack, the model (with "
           "the layer added), or the output tensor.")


# --- the examples -------------------------------------------------------------

def _examples(member):
    name = r_name(member)
    seed = ", seed = 1" if member.estimator == "flipout" else ""
    if member.kind == "dense":
        return [
            "library(keras3)",
            "n <- 64  # training examples: the KL is counted once per epoch",
            "model <- keras_model_sequential(input_shape = 4) |>",
            f"  {name}(units = 8, activation = \"relu\",",
            f"    kernel_divergence_fn = scaled_kl_divergence_fn(n){seed}) |>",
            f"  {name}(units = 1, kernel_divergence_fn = scaled_kl_divergence_fn(n))",
            'compile(model, optimizer = "adam", loss = "mse")',
            "x <- matrix(runif(n * 4), n, 4)",
            "fit(model, x, rowSums(x), epochs = 1, batch_size = 16, verbose = 0)",
            "length(model$losses)  # one KL divergence per layer",
        ]
    rank = member.rank
    spatial = ["16"] if rank == 1 else ["8"] * rank
    input_shape = ", ".join([*spatial, "1"])
    pooling = f"  layer_global_average_pooling_{rank}d() |>"
    if (rank, member.estimator) == (3, "reparameterization"):
        # This page shows the KL scaling with an R function.
        return [
            "library(keras3)",
            "n <- 100  # training examples per epoch: the KL is counted once per epoch",
            f"model <- keras_model_sequential(input_shape = c({input_shape})) |>",
            f"  {name}(",
            '    filters = 4, kernel_size = 3, activation = "relu",',
            "    kernel_divergence_fn = function(q, p, ignore) tfd_kl_divergence(q, p) / n",
            "  ) |>",
            pooling,
            "  layer_dense(2)",
            'compile(model, optimizer = "adam", loss = "mse")',
            "x <- array(runif(4 * 8 * 8 * 8), c(4, 8, 8, 8, 1))",
            "fit(model, x, matrix(0, 4, 2), epochs = 1, verbose = 0)",
            "length(model$losses)",
        ]
    return [
        "library(keras3)",
        f"model <- keras_model_sequential(input_shape = c({input_shape})) |>",
        f'  {name}(filters = 4, kernel_size = 3, activation = "relu"{seed}) |>',
        pooling,
        "  layer_dense(2)",
        'compile(model, optimizer = "adam", loss = "mse")',
        f"x <- array(runif({' * '.join(['8', *spatial])}), c({', '.join(['8', input_shape])}))",
        "fit(model, x, matrix(0, 8, 2), epochs = 1, verbose = 0)",
        "length(model$losses)  # the kernel's KL divergence",
    ]


# --- writing ------------------------------------------------------------------

# What must not start a wrapped line of markdown: it would start a tag, a list,
# a heading or a quote.
_UNSAFE_START = re.compile(r"^(@|[-*+] |#|>|\d+[.)] )")


def _wrap(text, indent="", subsequent=None):
    """``text`` as roxygen lines, never breaking inside a code span."""
    subsequent = indent if subsequent is None else subsequent
    # A code span's spaces are not break points.
    protected = _CODE_SPAN.sub(lambda m: m.group(0).replace(" ", "\0"), text)
    lines = textwrap.wrap(protected, width=WIDTH - 3, initial_indent=indent,
                          subsequent_indent=subsequent, break_long_words=False,
                          break_on_hyphens=False)
    for line in lines[1:]:
        if _UNSAFE_START.match(line.strip()):
            raise ValueError(f"a wrapped line would start markdown: {line.strip()!r}")
    if "%" in _CODE_SPAN.sub("", text):
        raise ValueError(f"`%` outside code would start an Rd comment: {text!r}")
    return [line.replace("\0", " ") for line in lines]


def _paragraphs(paragraphs):
    lines = []
    for paragraph in paragraphs:
        if lines:
            lines.append("")
        lines += _wrap(paragraph)
    return lines


def page(member):
    """The roxygen block and the function of ``member``'s wrapper, as lines."""
    words = docs.fields(member.cls)
    names = [name for name, _ in formals(member)]
    lines = [_title(member), "", "@description", *_paragraphs(_description(member, words)),
             "", "@details", *_paragraphs(_details(member, words))]
    for title, paragraphs in _SECTIONS:
        lines += ["", f"@section {title}:", *_paragraphs(paragraphs)]
    lines.append("")
    lines += _object_param(member)
    for name in names:
        if name not in ("object", "..."):
            lines += _wrap(f"@param {name} {r_argument(member, name)}", subsequent="  ")
    lines += _wrap(f"@param ... {_dots_param(member, names)}", subsequent="  ")
    lines += _wrap(f"@return {_RETURN}", subsequent="  ")
    lines += _wrap(f"@references {_REFERENCES[member.estimator]}", subsequent="  ")
    lines += _wrap(f"@seealso {_SEEALSO}", subsequent="  ")
    lines += ["@family variational layers", "@examples", *_examples(member), "@export"]
    block = [f"#' {line}".rstrip() for line in lines]

    name = r_name(member)
    opening = f"{name} <- function("
    arguments = [name if default is None else f"{name} = {default}"
                 for name, default in formals(member)]
    function = [opening + arguments[0] + ","]
    function += [" " * len(opening) + argument + "," for argument in arguments[1:-1]]
    function += [" " * len(opening) + arguments[-1] + ") {",
                 f'  create_variational_layer("{member.cls.__name__}")', "}"]
    return block + function


_HEADER = f"""\
# Generated by tools/generate_r_layers.py from the Python package's tables: do
# not edit by hand. Edit the generator (R's formals, prose and examples) or
# tfprobr_bridge/layers/docs.py (the argument texts), then run
#   {COMMAND}
# and `Rscript -e 'roxygen2::roxygenise()'` in r/.
#
# The twelve variational layers. Each is its documentation and one call of
# create_variational_layer() (see layers_create.R) with its Python class; the
# formals are rstudio/tfprobability's.
"""


def _order(member):
    """The file's order: convolutions by rank, then dense; estimators as family.ESTIMATORS."""
    return (member.kind != "conv", member.rank or 0, family.ESTIMATORS.index(member.estimator))


def render():
    """The text of r/R/layers.R."""
    pages = ["\n".join(page(member)) + "\n" for member in sorted(family.MEMBERS, key=_order)]
    return _HEADER + "\n" + "\n".join(pages)


def main(argv):
    output = Path(argv[1]) if len(argv) > 1 else OUTPUT
    output.write_text(render())
    print(f"wrote {output}")


if __name__ == "__main__":
    main(sys.argv)
