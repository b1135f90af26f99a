"""One documentation of the family's arguments, shared by every class (TFP's ``doc_args``).

``conv_layer`` and ``dense_layer`` write a public class's docstring from its
estimator, its rank and the argument texts below, so an argument is described
once however many classes take it.
"""

import inspect
import textwrap

_RANK_AXES = {1: "width", 2: "height and width", 3: "depth, height and width"}
_RANK_SHAPES = {1: "(batch, width, channels)", 2: "(batch, height, width, channels)",
                3: "(batch, depth, height, width, channels)"}
_RANK_SHAPES_FIRST = {1: "(batch, channels, width)", 2: "(batch, channels, height, width)",
                      3: "(batch, channels, depth, height, width)"}
_WHAT = {1: "sequences", 2: "images", 3: "volumes"}

ARGUMENTS = {
    "filters": "Integer, the number of output channels.",
    "units": "Integer, the number of output features.",
    "kernel_size": "An integer or a list of 1 or {rank} integers: the {axes} of the "
    "convolution window.",
    "strides": "An integer or a list of 1 or {rank} integers. Strides > 1 cannot be "
    "combined with `dilation_rate` > 1.",
    "padding": '`"valid"` or `"same"` (case-insensitive).',
    "data_format": '`"channels_last"` (inputs `{shape}`) or `"channels_first"` '
    "(`{shape_first}`).",
    "dilation_rate": "An integer or a list of 1 or {rank} integers.",
    "activation": "Activation name or callable; None for linear.",
    "activity_regularizer": "Regularizer applied to the output.",
    "trainable": "Whether the posterior's variables are trained.",
    "kernel_posterior_fn": "`fn(dtype, shape, name, trainable, add_variable_fn)` returning "
    "the kernel's surrogate posterior. Default: a mean-field Normal "
    "(`default_mean_field_normal_fn()`).",
    "kernel_posterior_tensor_fn": "`fn(distribution)` returning a tensor drawn from it "
    "(the kernel, or, for Flipout and local reparameterization, the perturbation or the "
    "outputs). Default: one sample.",
    "kernel_prior_fn": "Like `kernel_posterior_fn`, for the prior; None for no prior (and "
    "no kernel divergence). Default: a standard Normal over every weight.",
    "kernel_divergence_fn": "`fn(posterior, prior, sample)` returning a scalar added to "
    "the layer's losses on every call; None for none. `sample` is the drawn kernel "
    "(None for Flipout and local reparameterization). Default: the analytic KL.",
    "bias_posterior_fn": "Like `kernel_posterior_fn` for the bias; None for no bias. "
    "Default: a point mass (`default_mean_field_normal_fn(is_singular=True)`).",
    "bias_posterior_tensor_fn": "Like `kernel_posterior_tensor_fn`, for the bias.",
    "bias_prior_fn": "Like `kernel_prior_fn`, for the bias. Default None: no prior.",
    "bias_divergence_fn": "Like `kernel_divergence_fn`, for the bias (its sample is the "
    "drawn bias).",
    "seed": "An integer that gives the layer its own random stream, so its draws (and "
    "Flipout's signs) repeat run after run; None to use the global seed. Part of the "
    "config; the stream restarts when a saved model is loaded.",
    "**kwargs": "Keras layer arguments (`name`, `dtype`, `trainable`, `input_shape`, ...).",
}

_ESTIMATOR_TEXT = {
    "reparameterization": "the reparameterization estimator (Kingma and Welling, 2014)",
    "Flipout": "the Flipout estimator (Wen et al., 2018)",
    "local reparameterization": "the local reparameterization estimator (Kingma, "
    "Salimans and Welling, 2015)",
}

_TFP_NOTE = {
    "reparameterization": "the constructor, variable names and protocol of TFP's `{tfp}`",
    "Flipout": "the constructor, variable names and protocol of TFP's `{tfp}`",
    "local reparameterization": "TFP's constructor, variable names and protocol{dense_only}",
}


def _arguments_section(cls, **fields):
    lines = ["Args:"]
    for parameter in inspect.signature(cls).parameters.values():
        key = "**kwargs" if parameter.kind is parameter.VAR_KEYWORD else parameter.name
        text = ARGUMENTS[key].format(**fields)
        wrapped = textwrap.wrap(f"{key}: {text}", width=76, subsequent_indent="        ")
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
    fields = {
        "rank": rank,
        "axes": _RANK_AXES[rank],
        "shape": _RANK_SHAPES[rank],
        "shape_first": _RANK_SHAPES_FIRST[rank],
    }
    tfp = _TFP_NOTE[cls.estimator].format(
        tfp=_tfp_name(cls), dense_only=" (TFP has it for dense layers only)"
    )
    zeros = ", ".join(["8"] * rank)
    out = ", ".join(["8"] * rank)
    cls.__doc__ = "\n\n".join(
        [
            f"{rank}-D convolution (over {_WHAT[rank]}) whose kernel and bias are drawn "
            f"from learned distributions, with {_ESTIMATOR_TEXT[cls.estimator]}.",
            f"A Keras 3 layer with {tfp}; `{_tfp_name(cls)}` is an alias. On every call "
            "it adds the divergences between posteriors and priors to `layer.losses` "
            "(kernel first, then bias). When training on minibatches, scale the divergence "
            "so it counts once per epoch, e.g. `kernel_divergence_fn="
            "scaled_kl_divergence_fn(n)` for `n` training examples.",
            _estimator_paragraph(cls),
            _arguments_section(cls, **fields),
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
            f'>>> y = layer(np.zeros((2, {zeros}, 1), "float32"))\n'
            ">>> tuple(y.shape), len(layer.losses)\n"
            f"((2, {out}, 4), 1)",
        ]
    )
    return cls


def dense_layer(cls):
    tfp = _TFP_NOTE[cls.estimator].format(tfp=cls.__name__, dense_only="")
    cls.__doc__ = "\n\n".join(
        [
            "Densely-connected layer whose kernel and bias are drawn from learned "
            f"distributions, with {_ESTIMATOR_TEXT[cls.estimator]}.",
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
