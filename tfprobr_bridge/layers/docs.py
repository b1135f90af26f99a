"""One documentation of the family's arguments, for every class and for R (TFP's ``doc_args``).

``conv_layer`` and ``dense_layer`` write a public class's docstring from its
estimator, its rank and the argument texts below, so an argument is described
once however many classes take it. The R package's pages are generated from
the same table (``tools/generate_r_layers.py`` translates each text to R:
None -> ``NULL``, True -> ``TRUE``, "a list of" -> "a vector of", ...), so the
texts are written in Python's words but for both languages: a default is
described by what it is, not by its Python or R expression.
"""

import inspect
import textwrap

from tfprobr_bridge import validation
from tfprobr_bridge.layers.base import FN_PARAMETERS

_RANK_AXES = {1: "width", 2: "height and width", 3: "depth, height and width"}
_RANK_SHAPES = {1: "(batch, width, channels)", 2: "(batch, height, width, channels)",
                3: "(batch, depth, height, width, channels)"}
_RANK_SHAPES_FIRST = {1: "(batch, channels, width)", 2: "(batch, channels, height, width)",
                      3: "(batch, channels, depth, height, width)"}
_WHAT = {1: "sequences", 2: "images", 3: "volumes"}

# The texts, as rstudio/tfprobability words them (after TFP's), with the
# class's fields (see `fields`) in braces: {rank}, {axes}, {shape},
# {shape_first}, {integers} and {all_same} for convolutions; {call} for a fn
# (how the layer calls it); {draws}, {sample} and {seed_draws} for the
# estimator; {max_integer}.
ARGUMENTS = {
    "filters": "Integer, the dimensionality of the output space (i.e. the number of "
    "filters in the convolution).",
    "units": "Integer, the dimensionality of the output space (the number of output "
    "features).",
    "kernel_size": "{integers}, specifying the {axes} of the {rank}-D convolution "
    "window.{all_same}",
    "strides": "{integers}, specifying the strides of the convolution along the {axes}. "
    "Specifying any stride value != 1 is incompatible with specifying any "
    "`dilation_rate` value != 1.",
    "padding": 'One of `"valid"` or `"same"` (case-insensitive).',
    "data_format": 'A string, one of `"channels_last"` (default) or `"channels_first"`. '
    "The ordering of the dimensions in the inputs. `channels_last` corresponds to "
    "inputs with shape `{shape}` while `channels_first` corresponds to inputs with "
    "shape `{shape_first}`.",
    "dilation_rate": "{integers}, specifying the dilation rate to use for dilated "
    "convolution. Currently, specifying any `dilation_rate` value != 1 is incompatible "
    "with specifying any `strides` value != 1.",
    "activation": 'Activation function: a name such as `"relu"`, a function, or None to '
    "maintain a linear activation.",
    "activity_regularizer": "Regularizer function for the output.",
    "trainable": "Whether the layer weights will be updated during training.",
    "kernel_posterior_fn": "Function which creates a `tfd.Distribution` instance "
    "representing the surrogate posterior of the kernel parameter, called as `{call}`. "
    "Default value: `default_mean_field_normal_fn()`, a mean-field Normal. Cannot be None.",
    "kernel_posterior_tensor_fn": "Function which takes a `tfd.Distribution` instance and "
    "returns a representative value (with this estimator, {draws}). Default value: one "
    "sample of the distribution. Cannot be None.",
    "kernel_prior_fn": "Function which creates a `tfd.Distribution` instance, called like "
    "`kernel_posterior_fn`. Default value: a standard Normal over every kernel weight "
    "(`default_multivariate_normal_fn`). None for no prior (and no kernel divergence).",
    "kernel_divergence_fn": "Function which takes the surrogate posterior distribution, "
    "prior distribution and random variate sample(s) from the surrogate posterior and "
    "computes or approximates the KL divergence, called as `{call}`. The distributions "
    "are `tfd.Distribution`-like instances and the sample is a Tensor ({sample}). "
    "Default value: the analytic KL divergence. None for no kernel divergence.",
    "bias_posterior_fn": "Function which creates a `tfd.Distribution` instance "
    "representing the surrogate posterior of the bias parameter, called like "
    "`kernel_posterior_fn`. Default value: `default_mean_field_normal_fn(is_singular=True)` "
    "(which creates a point mass, a `tfd.Deterministic`). None for no bias.",
    "bias_posterior_tensor_fn": "Function which takes a `tfd.Distribution` instance and "
    "returns a representative value (the bias). Default value: one sample of the "
    "distribution.",
    "bias_prior_fn": "Function which creates a `tfd.Distribution` instance, called like "
    "`bias_posterior_fn`. Default value: None (no prior, no variational inference).",
    "bias_divergence_fn": "Function which takes the surrogate posterior distribution, "
    "prior distribution and random variate sample(s) from the surrogate posterior and "
    "computes or approximates the KL divergence, called as `{call}` (the sample is the "
    "drawn bias). Default value: the analytic KL divergence. None for no bias divergence.",
    "seed": "An integer from 0 to {max_integer} that gives {seed_draws} a random stream "
    "of their own, so they repeat run after run; None to draw from the global seed (see "
    "`set_random_seed()`). Part of the layer's config; the stream restarts when a saved "
    "model is loaded.",
    "**kwargs": "Keras layer arguments (`name`, `dtype`, `trainable`, `input_shape`, ...).",
}

_ESTIMATOR_TEXT = {
    "reparameterization": "the reparameterization estimator (Kingma and Welling, 2014)",
    "flipout": "the Flipout estimator (Wen et al., 2018)",
    "local_reparameterization": "the local reparameterization estimator (Kingma, "
    "Salimans and Welling, 2015)",
}

# What `kernel_posterior_tensor_fn` draws with each estimator.
_DRAWS = {
    "reparameterization": "the kernel, drawn from the posterior",
    "flipout": "a perturbation of the kernel, drawn from a zero-mean Normal with the "
    "posterior's scale",
    "local_reparameterization": "the layer's outputs, drawn from their Normal distribution",
}


def fields(cls):
    """The words ``cls``'s documentation is written with, by name: the table's fields.

    Its estimator's (``estimator_text``, ``draws``, ``sample``, ``seed_draws``),
    and for a convolution its rank's (``rank``, ``axes``, ``shape``,
    ``shape_first``, ``what``, ``integers``, ``all_same``). The R pages'
    generator reads them too.
    """
    estimator = cls.estimator_id
    words = {
        "estimator_text": _ESTIMATOR_TEXT[estimator],
        "draws": _DRAWS[estimator],
        "sample": "the very kernel used in the call" if cls._draws_kernel
        else "None with this estimator",
        "seed_draws": "the layer's sign flips and draws" if estimator == "flipout"
        else "the layer's draws",
        "max_integer": validation.MAX_INTEGER,
    }
    if cls.kind == "conv":
        rank = cls.rank
        words.update(
            rank=rank,
            axes=_RANK_AXES[rank],
            shape=_RANK_SHAPES[rank],
            shape_first=_RANK_SHAPES_FIRST[rank],
            what=_WHAT[rank],
            integers="An integer" if rank == 1 else f"An integer or a list of {rank} integers",
            all_same="" if rank == 1 else " A single integer is used for all of them.",
        )
    return words


def argument_text(cls, name):
    """The table's text of argument ``name`` for ``cls``, its fields filled (Python's words)."""
    call = f"fn({', '.join(FN_PARAMETERS[name])})" if name in FN_PARAMETERS else None
    return ARGUMENTS[name].format(call=call, **fields(cls))


def _tfp_note(cls, dense_only=""):
    """What the class shares with TFP: its own class where TFP has one."""
    if cls.estimator_id == "local_reparameterization":
        return f"TFP's constructor, variable names and protocol{dense_only}"
    return f"the constructor, variable names and protocol of TFP's `{_tfp_name(cls)}`"


def _arguments_section(cls):
    lines = ["Args:"]
    for parameter in inspect.signature(cls).parameters.values():
        key = "**kwargs" if parameter.kind is parameter.VAR_KEYWORD else parameter.name
        text = argument_text(cls, key)
        wrapped = textwrap.wrap(f"{key}: {text}", width=76, subsequent_indent="    ")
        lines.extend("    " + line for line in wrapped)
    return "\n".join(lines)


def _estimator_paragraph(cls):
    for base in cls.__mro__:
        if "estimator" in vars(base) and base.__doc__:
            return inspect.cleandoc(base.__doc__)
    return ""


def _tfp_name(cls):
    return cls.__name__.replace("Conv", "Convolution", 1) if cls.__name__.startswith(
        "Conv") else cls.__name__


def conv_layer(cls):
    rank = cls.rank
    tfp = _tfp_note(cls, dense_only=" (TFP has it for dense layers only)")
    # The example's spatial sizes: "same" padding keeps them.
    sizes = ", ".join(["8"] * rank)
    cls.__doc__ = "\n\n".join(
        [
            f"{rank}-D convolution (over {_WHAT[rank]}) whose kernel and bias are drawn "
            f"from learned distributions, with {_ESTIMATOR_TEXT[cls.estimator_id]}.",
            f"A Keras 3 layer with {tfp}; `{_tfp_name(cls)}` is an alias. On every call "
            "it adds the divergences between posteriors and priors to `layer.losses` "
            "(kernel first, then bias). When training on minibatches, scale the divergence "
            "so it counts once per epoch, e.g. `kernel_divergence_fn="
            "scaled_kl_divergence_fn(n)` for `n` training examples.",
            _estimator_paragraph(cls),
            _arguments_section(cls),
            "Input shape:\n    "
            f"{rank + 2}-D tensor `{_RANK_SHAPES[rank]}` for channels_last, "
            f"`{_RANK_SHAPES_FIRST[rank]}` for channels_first.",
            "Output shape:\n    "
            f"{rank + 2}-D tensor with `filters` channels and spatial sizes given by the "
            "padding, strides and dilation.",
            "Raises:\n    ValueError, TypeError: at construction, for any invalid argument; "
            "at build, for inputs of the wrong rank, with an unknown channel dimension, or "
            'smaller than the kernel with `"valid"` padding.',
            "Example:\n\n"
            ">>> import numpy as np\n"
            f">>> from tfprobr_bridge import {cls.__name__}\n"
            f'>>> layer = {cls.__name__}(4, kernel_size=3, padding="same")\n'
            f'>>> y = layer(np.zeros((2, {sizes}, 1), "float32"))\n'
            ">>> tuple(y.shape), len(layer.losses)\n"
            f"((2, {sizes}, 4), 1)",
        ]
    )
    return cls


def dense_layer(cls):
    tfp = _tfp_note(cls)
    cls.__doc__ = "\n\n".join(
        [
            "Densely-connected layer whose kernel and bias are drawn from learned "
            f"distributions, with {_ESTIMATOR_TEXT[cls.estimator_id]}.",
            f"A Keras 3 layer with {tfp}. On every call it adds the divergences between "
            "posteriors and priors to `layer.losses` (kernel first, then bias).",
            _estimator_paragraph(cls),
            _arguments_section(cls),
            "Input shape:\n    N-D tensor `(batch, ..., features)`, N >= 2.",
            "Output shape:\n    N-D tensor `(batch, ..., units)`.",
            "Example:\n\n"
            ">>> import numpy as np\n"
            f">>> from tfprobr_bridge import {cls.__name__}\n"
            f">>> layer = {cls.__name__}(3)\n"
            '>>> y = layer(np.zeros((2, 5), "float32"))\n'
            ">>> tuple(y.shape), len(layer.losses)\n"
            "((2, 3), 1)",
        ]
    )
    return cls
