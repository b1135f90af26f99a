"""Warm start: a Bayesian copy of a trained deterministic network (MOPED).

``to_bayesian`` copies a Keras 3 model with each plain ``Conv1D``, ``Conv2D``,
``Conv3D`` and ``Dense`` layer swapped for the family member of the same rank
and the chosen estimator, and starts every posterior at the trained weights
(Krishnan, Subedar and Tickoo, "Specifying weight priors in Bayesian deep
neural networks with empirical Bayes", AAAI 2020). ``EmpiricalNormalPrior`` is
the prior fn behind ``prior="empirical"``: its parameters are non-trainable
variables, so a prior centred on the trained weights travels in the weights
file and loads in Keras's safe mode.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfprobr_bridge.layers import defaults
from tfprobr_bridge.layers import family
from tfprobr_bridge import validation

_PACKAGE = "tfprobr_bridge"

_PRIORS = ("standard", "empirical")

# The smallest scale a posterior (or empirical prior) starts with: delta * |w|
# is 0 for a weight that is exactly 0, and a Normal needs a positive scale.
# 1e-5 is far below any trained weight's delta * |w| worth keeping, and far
# above float32's epsilon, which the scale's parameterisation adds.
SCALE_FLOOR = 1e-5

_CONVERTIBLE = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Dense)
_RANKS = {keras.layers.Conv1D: 1, keras.layers.Conv2D: 2, keras.layers.Conv3D: 3}




def to_bayesian(
    model,
    estimator="reparameterization",
    delta=0.1,
    prior="standard",
    num_examples=None,
    layers=None,
):
    """A Bayesian copy of a trained Keras 3 model, its posteriors started at the trained weights.

    Every plain ``keras.layers.Conv1D``, ``Conv2D``, ``Conv3D`` and ``Dense``
    layer (or, with ``layers``, the ones named) is replaced by the variational
    layer of the same rank and ``estimator`` (``Conv2DFlipout``,
    ``DenseReparameterization``, ...), with the same name, ``filters`` or
    ``units``, ``kernel_size``, ``strides``, ``padding``, ``data_format``,
    ``dilation_rate``, ``activation``, activity regularizer, dtype policy and
    ``trainable`` flag. Every other layer is copied with its weights
    (``keras.models.clone_model``, recursing into nested Sequential and
    functional models). The input model is not changed. A model that was
    compiled gives a copy compiled from the same compile config (a fresh
    optimizer state), as ``clone_model`` does; otherwise compile the copy.

    The posteriors start as MOPED does (Krishnan et al., 2020): each kernel's
    posterior mean is the trained kernel ``w`` and its scale
    ``max(delta * |w|, SCALE_FLOOR)`` (``SCALE_FLOOR`` = 1e-5, so a weight of
    exactly 0 gets a small positive scale). The bias, as in the layers'
    defaults, is a point mass, at the trained bias; a layer without a bias
    gets none. The kernel's prior is:

    - ``"standard"``: the layers' default standard Normal;
    - ``"empirical"`` (empirical Bayes): ``Normal(w, max(delta * |w|,
      SCALE_FLOOR))``, the very distribution the posterior starts at, so the
      KL is 0 at the start and then measures how far training has moved the
      posterior from the trained network. (bayesian-torch's ``MOPED`` helper
      centres its prior on ``w`` too but keeps the prior's constant scale; a
      scale tied to ``|w|`` keeps the prior on the trained network's scale
      rather than pulling every posterior scale towards that constant.) The
      prior is an :class:`EmpiricalNormalPrior`, whose values are non-trainable
      weights saved with the model.

    Which layers are converted: the classes above exactly (a subclass may
    compute something else, so it is copied as it is), except a grouped
    convolution (``groups`` > 1), ``padding="causal"``, a ``Dense`` layer with
    LoRA enabled or quantized, none of which the variational layers can
    reproduce. With ``layers=None`` those are copied unchanged; naming one in
    ``layers`` is an error. Kernel and bias regularizers and constraints are
    not carried over: the KL divergence takes the regularizer's place.

    With the posterior means as weights, the copy computes exactly what the
    deterministic model computes; with sampled weights its predictions
    (e.g. ``predict_mc``'s mean) match it up to Monte Carlo error of order
    ``delta``.

    Args:
        model: A built Keras 3 ``Sequential`` or functional model.
        estimator: ``"reparameterization"``, ``"flipout"`` or
            ``"local_reparameterization"`` (case-insensitive): which family
            member replaces each layer.
        delta: Positive number: each posterior's starting scale relative to
            its trained weight's magnitude.
        prior: ``"standard"`` or ``"empirical"`` (see above).
        num_examples: Required: the number of training examples per epoch
            (every labelled voxel, for segmentation). Each layer's KL
            divergence is divided by it (``scaled_kl_divergence_fn``), so that
            it counts once per epoch. Unscaled, the KL of a whole network is
            added to every batch's loss and outweighs the data: fine-tuning
            then pulls the weights to the prior and undoes the trained
            network. Pass ``num_examples=1`` for the unscaled KL.
        layers: None, to convert every convertible layer, or the names of the
            layers to convert (a string or a list of strings), in the model or
            in the Sequential and functional models nested in it.

    Returns:
        A new Keras model with the same inputs, outputs, layer names and, for
        the layers not converted, the same weights.

    Raises:
        TypeError: ``model`` is not a Keras 3 Sequential or functional model
            (a subclassed model must be rebuilt as a functional one), or an
            argument has the wrong type.
        ValueError: An argument has an invalid value, ``model`` is not built,
            ``layers`` names a layer the model lacks or one that cannot be
            converted, or nothing is left to convert.

    Example:

    >>> import keras, numpy as np
    >>> from tfprobr_bridge import to_bayesian
    >>> deterministic = keras.Sequential([
    ...     keras.Input((6, 6, 1)),
    ...     keras.layers.Conv2D(4, 3, activation="relu", name="features"),
    ...     keras.layers.GlobalAveragePooling2D(),
    ...     keras.layers.Dense(2, name="logits")])
    >>> bayesian = to_bayesian(deterministic, estimator="flipout", delta=0.05,
    ...                        num_examples=1000)
    >>> [type(layer).__name__ for layer in bayesian.layers]
    ['Conv2DFlipout', 'GlobalAveragePooling2D', 'DenseFlipout']
    >>> features = bayesian.get_layer("features")
    >>> bool(np.allclose(features.kernel_posterior.mean(),
    ...                  deterministic.get_layer("features").kernel))
    True
    """
    _check_model(model)
    estimator = _choice(estimator, "estimator", family.ESTIMATORS)
    delta = validation.positive_number(delta, "delta")
    prior = _choice(prior, "prior", _PRIORS)
    if num_examples is None:
        raise TypeError(
            "`num_examples` is required: the number of training examples per epoch, by "
            "which each layer's KL divergence is divided so that it counts once per epoch. "
            "Unscaled, the KL of the whole network is added to every batch's loss, and "
            "fine-tuning undoes the trained network (pass num_examples=1 if that is what "
            "you want). Received: num_examples=None"
        )
    num_examples = validation.positive_number(num_examples, "num_examples")
    selected = _selected_layers(model, _layer_names(layers), layers)

    replaced = []
    copied = []

    def clone_layer(layer):
        if id(layer) in selected:
            clone = _variational_layer(layer, estimator, prior, num_examples)
            replaced.append((layer, clone))
        else:
            clone = layer.__class__.from_config(layer.get_config())
            copied.append((layer, clone))
        return clone

    bayesian = keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
    for layer, clone in copied:
        _copy_weights(layer, clone)
    for layer, clone in replaced:
        _start_at_trained_weights(layer, clone, delta, prior)
    return bayesian


# --- arguments ----------------------------------------------------------------


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a Keras 3 model (keras.Sequential or a functional "
            "keras.Model(inputs, outputs)). "
            f"Received: model={validation.short_repr(model)} of type {type(model).__name__}"
        )
    if not _is_graph_model(model):
        raise TypeError(
            "`model` must be a Sequential or functional Keras 3 model: the layers of a "
            f"subclassed model ({type(model).__name__}) are wired in its call(), which "
            "cannot be copied with other layers in their place. Rebuild it as a "
            "functional model, keras.Model(inputs, outputs), load the trained weights "
            f"into it, and convert that. Received: model={model.name!r} of type "
            f"{type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            "`model` must be built: its layers have no weights to start from yet. "
            "Give it a keras.Input, or call or train it first. "
            f"Received: model={model.name!r} (not built)"
        )


def _is_graph_model(model):
    # Keras exports no name for the functional class; a functional model (and
    # a subclass built with inputs and outputs) has Keras's Functional in its MRO.
    return isinstance(model, keras.Sequential) or any(
        cls.__name__ == "Functional" and cls.__module__.split(".", 1)[0] == "keras"
        for cls in type(model).__mro__
    )


def _choice(value, name, choices):
    expected = ", ".join(f'"{choice}"' for choice in choices[:-1]) + f' or "{choices[-1]}"'
    if not isinstance(value, str):
        raise TypeError(f"`{name}` must be one of {expected}. {validation.received(name, value)}")
    normalized = value.lower()
    if normalized not in choices:
        raise ValueError(
            f"`{name}` must be one of {expected}. {validation.received(name, value)}"
        )
    return normalized


def _layer_names(layers):
    """None, or the tuple of names given (R's character vector arrives as str or list)."""
    if layers is None:
        return None
    if isinstance(layers, str):
        return (layers,)
    items = list(layers) if isinstance(layers, (list, tuple, np.ndarray)) else None
    if items is None or not all(isinstance(item, str) for item in items):
        raise TypeError(
            "`layers` must be None or a list of layer names (strings). "
            f"{validation.received('layers', layers)}"
        )
    return tuple(items)


def _selected_layers(model, names, layers):
    """The ids of the layers to convert; raises if a name is wrong or nothing is left."""
    found = list(_leaf_layers(model))
    if names is None:
        selected = {id(layer) for layer in found if _unsupported(layer) is None}
        if not selected:
            raise ValueError(
                "`model` has no layer to_bayesian can convert (a plain Conv1D, Conv2D, "
                "Conv3D or Dense layer; see to_bayesian's documentation for the ones "
                f"left out). Received: model={model.name!r} with layers "
                f"{[layer.name for layer in found]}"
            )
        return selected
    if not names:
        raise ValueError(
            "`layers` must name at least one layer to convert, or be None to convert "
            f"every one that can be. {validation.received('layers', layers)}"
        )
    by_name = {}
    for layer in found:
        by_name.setdefault(layer.name, []).append(layer)
    convertible = [layer.name for layer in found if _unsupported(layer) is None]
    selected = set()
    nested = {inner.name for inner in _nested_models(model)}
    for name in names:
        if name in nested and name not in by_name:
            raise ValueError(
                f"`layers` names a nested model, {name!r}: name the layers inside it "
                f"instead. Layers to_bayesian can convert: {convertible}. "
                f"{validation.received('layers', layers)}"
            )
        if name not in by_name:
            raise ValueError(
                f"`layers` names a layer the model does not have: {name!r}. Layers "
                f"to_bayesian can convert: {convertible}. "
                f"{validation.received('layers', layers)}"
            )
        for layer in by_name[name]:
            reason = _unsupported(layer)
            if reason is not None:
                raise ValueError(
                    f"`layers` names a layer to_bayesian cannot convert: {name!r} "
                    f"({reason}). Layers it can convert: {convertible}. "
                    f"{validation.received('layers', layers)}"
                )
            selected.add(id(layer))
    return selected


def _leaf_layers(model):
    """The model's layers, inside nested Sequential and functional models too."""
    for layer in model.layers:
        if isinstance(layer, keras.Model) and _is_graph_model(layer):
            yield from _leaf_layers(layer)
        else:
            yield layer


def _nested_models(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model) and _is_graph_model(layer):
            yield layer
            yield from _nested_models(layer)


def _unsupported(layer):
    """Why ``layer`` cannot become a variational layer, or None if it can."""
    kind = type(layer).__name__
    if type(layer) not in _CONVERTIBLE:
        if isinstance(layer, _CONVERTIBLE):
            return (
                f"{kind} subclasses a Keras layer and may compute something else; "
                "only the Keras classes themselves are converted"
            )
        return f"{kind}: only Conv1D, Conv2D, Conv3D and Dense layers have variational versions"
    if not layer.built:
        return f"{kind} is not built, so it has no trained weights"
    if getattr(layer, "groups", 1) != 1:
        return f"a grouped convolution (groups={layer.groups}) has no variational version"
    if getattr(layer, "padding", None) == "causal":
        return 'padding="causal" has no variational version'
    if getattr(layer, "lora_enabled", False):
        return "LoRA is enabled on it"
    if getattr(layer, "quantization_mode", None) is not None:
        return f"it is quantized ({layer.quantization_mode})"
    return None


# --- the copy -----------------------------------------------------------------


def _variational_class(layer, estimator):
    rank = _RANKS.get(type(layer))
    return family.member("dense" if rank is None else "conv", rank, estimator).cls


def _variational_layer(layer, estimator, prior, num_examples):
    """The family member standing in for ``layer``, with its settings and fresh variables."""
    divergence_fn = defaults.scaled_kl_divergence_fn(num_examples)
    arguments = {
        "activation": layer.activation,
        "activity_regularizer": layer.activity_regularizer,
        "kernel_prior_fn": (
            defaults.EmpiricalNormalPrior()
            if prior == "empirical"
            else defaults.default_multivariate_normal_fn
        ),
        "kernel_divergence_fn": divergence_fn,
        "bias_posterior_fn": (
            defaults.default_mean_field_normal_fn(is_singular=True) if layer.use_bias else None
        ),
        "bias_divergence_fn": divergence_fn,
        "name": layer.name,
        "dtype": layer.dtype_policy,
        "trainable": layer.trainable,
    }
    if isinstance(layer, keras.layers.Dense):
        arguments["units"] = layer.units
    else:
        arguments.update(
            filters=layer.filters,
            kernel_size=layer.kernel_size,
            strides=layer.strides,
            padding=layer.padding,
            data_format=layer.data_format,
            dilation_rate=layer.dilation_rate,
        )
    return _variational_class(layer, estimator)(**arguments)


def _start_at_trained_weights(layer, clone, delta, prior):
    """MOPED: posterior (and empirical prior) mean ``w``, scale ``max(delta * |w|, floor)``."""
    variables = {variable.name: variable for variable in clone.weights}
    kernel = _numpy(layer.kernel).astype(np.float64)
    loc = variables["kernel_posterior_loc"]
    dtype = np.dtype(loc.dtype)
    untransformed_scale = _untransformed_scale(delta * np.abs(kernel), dtype)
    parameters = {
        "kernel_posterior_loc": kernel,
        "kernel_posterior_untransformed_scale": untransformed_scale,
    }
    if prior == "empirical":
        parameters["kernel_prior_loc"] = kernel
        parameters["kernel_prior_untransformed_scale"] = untransformed_scale
    if layer.use_bias:
        parameters["bias_posterior_loc"] = _numpy(layer.bias)
    for name, value in parameters.items():
        variable = variables[name]
        variable.assign(np.asarray(value, dtype=np.dtype(variable.dtype)))


def _copy_weights(layer, clone):
    # Variable to variable, as set_weights(get_weights()) would do through numpy.
    for target, source in zip(clone.weights, layer.weights, strict=True):
        target.assign(source.value)


def _untransformed_scale(scale, dtype):
    """The ``untransformed_scale`` with ``eps + softplus(it) = max(scale, floor)`` in ``dtype``."""
    epsilon = float(np.finfo(dtype).eps)
    # A dtype coarser than float32 (float16 variables) has an epsilon near the
    # floor; twice epsilon keeps softplus's argument positive.
    floor = max(SCALE_FLOOR, 2 * epsilon)
    return defaults.softplus_inverse(np.maximum(scale, floor) - epsilon)


def _numpy(variable):
    # Through a tensor: numpy's conversion of a Keras variable warns under NumPy 2.
    return tf.convert_to_tensor(variable).numpy()


