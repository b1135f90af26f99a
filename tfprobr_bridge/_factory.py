"""The R-shaped factory ``layer_conv_3d_reparameterization``.

It takes arguments as an R user writes them (and as reticulate delivers them:
``2.0`` for 2, lists or 1-d arrays for vectors, None for NULL), builds the
layer, and composes it with ``object`` the way R keras's ``layer_*`` functions
do. Keras 3 objects get this package's layer; legacy ``tf_keras`` objects get
TFP's own ``Convolution3DReparameterization``, which is what they can hold.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf

from tfprobr_bridge import _base_conv
from tfprobr_bridge import _validation
from tfprobr_bridge._base_conv import DEFAULT_FNS
from tfprobr_bridge._conv3d import Conv3DReparameterization
from tfprobr_bridge._stack import LayerStack

_ACCEPTED_OBJECTS = (
    "None, a LayerStack, a keras.Sequential model, a Keras 3 symbolic tensor, "
    "a tf.Tensor or a numpy array (or a tf_keras Sequential model or tensor)"
)


def layer_conv_3d_reparameterization(
    object=None,  # noqa: A002 -- the R API's name; R users pipe into it.
    filters=None,
    kernel_size=None,
    strides=1,
    padding="valid",
    data_format="channels_last",
    dilation_rate=1,
    activation=None,
    activity_regularizer=None,
    trainable=True,
    kernel_posterior_fn=DEFAULT_FNS["kernel_posterior_fn"],
    kernel_posterior_tensor_fn=DEFAULT_FNS["kernel_posterior_tensor_fn"],
    kernel_prior_fn=DEFAULT_FNS["kernel_prior_fn"],
    kernel_divergence_fn=DEFAULT_FNS["kernel_divergence_fn"],
    bias_posterior_fn=DEFAULT_FNS["bias_posterior_fn"],
    bias_posterior_tensor_fn=DEFAULT_FNS["bias_posterior_tensor_fn"],
    bias_prior_fn=DEFAULT_FNS["bias_prior_fn"],
    bias_divergence_fn=DEFAULT_FNS["bias_divergence_fn"],
    **kwargs,
):
    """A Bayesian 3-D convolution layer, composed with ``object``.

    The Python side of R's ``layer_conv_3d_reparameterization()``: same
    arguments, order and defaults. What comes back depends on ``object``:

    ================================  ===========================================
    ``object``                        result
    ================================  ===========================================
    None                              the layer
    ``LayerStack``                    a new stack with the layer appended
    ``keras.Sequential``              the same model, with the layer added
    Keras 3 symbolic tensor,          ``layer(object)``
    ``tf.Tensor``, numpy array
    ``tf_keras`` Sequential or        the same, with TFP's own
    tensor (legacy)                   ``Convolution3DReparameterization``
    ================================  ===========================================

    Args:
        object: What to compose the layer with; see the table.
        filters, kernel_size, strides, padding, data_format, dilation_rate,
        activation, activity_regularizer, and the eight ``*_fn`` arguments: as
            for :class:`Conv3DReparameterization`. Integers may be integral
            floats; tuples may be lists or arrays of length 1 or 3.
        trainable: Whether the layer's variables are updated in training.
        **kwargs: Further Keras layer arguments: ``name``, ``dtype``, and
            ``input_shape`` for a first layer.

    Returns:
        A layer, a ``LayerStack``, a model or a tensor, as the table says.

    Raises:
        TypeError: ``object`` is none of the accepted kinds, or an argument
            has the wrong type.
        ValueError: An argument has the right type but an invalid value.
    """
    if filters is None:
        raise TypeError(
            "`filters` is required: a positive integer, the number of output "
            "channels. Received: filters=None"
        )
    if kernel_size is None:
        raise TypeError(
            "`kernel_size` is required: a positive integer or a list of 1 or 3 "
            "positive integers. Received: kernel_size=None"
        )
    arguments = dict(
        filters=filters,
        kernel_size=kernel_size,
        strides=strides,
        padding=padding,
        data_format=data_format,
        dilation_rate=dilation_rate,
        activation=activation,
        activity_regularizer=activity_regularizer,
        trainable=_validation.boolean(trainable, "trainable"),
        kernel_posterior_fn=kernel_posterior_fn,
        kernel_posterior_tensor_fn=kernel_posterior_tensor_fn,
        kernel_prior_fn=kernel_prior_fn,
        kernel_divergence_fn=kernel_divergence_fn,
        bias_posterior_fn=bias_posterior_fn,
        bias_posterior_tensor_fn=bias_posterior_tensor_fn,
        bias_prior_fn=bias_prior_fn,
        bias_divergence_fn=bias_divergence_fn,
        **_layer_keywords(kwargs),
    )
    input_shape = arguments.pop("input_shape", None)

    if _is_legacy(object):
        return _compose_legacy(object, arguments)
    if not (object is None or _is_keras3_target(object)):
        raise TypeError(
            f"`object` must be {_ACCEPTED_OBJECTS}. "
            f"Received: object={_short_repr(object)} of type {type(object).__name__}"
        )
    if object is None and input_shape is not None:
        with warnings.catch_warnings():
            # Keras advises Input() over input_shape=, but a first layer made on
            # its own (R: missing object) has nowhere else to carry the shape.
            warnings.filterwarnings("ignore", message="Do not pass an `input_shape`")
            return Conv3DReparameterization(**arguments, input_shape=input_shape)
    layer = Conv3DReparameterization(**arguments)
    return add_layer(object, layer, input_shape=input_shape)


def add_layer(object, layer, input_shape=None):  # noqa: A002 -- the factory's name.
    """Add any Keras 3 ``layer`` to ``object`` by the factory's table.

    ``object`` None gives the layer back; a ``LayerStack`` gives a new stack; a
    ``keras.Sequential`` gets the layer added and is returned; a tensor or
    array gives ``layer(object)``. ``input_shape`` (one example's shape) starts
    an empty stack or model, as ``input_shape=`` on a first layer does in R
    keras; it is ignored after. If the layer does not fit a model, the model
    is left as it was.
    """
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(
            "`layer` must be a Keras 3 layer (keras.layers.Layer). "
            f"Received: layer={_short_repr(layer)} of type {type(layer).__name__}"
        )
    if object is None:
        return layer
    if isinstance(object, LayerStack):
        if input_shape is not None and object.input_shape is None and not len(object):
            object = LayerStack(input_shape, object.name)
        return object | layer
    if isinstance(object, keras.Sequential):
        _add_or_restore(object, layer, input_shape)
        return object
    if _is_tensor_like(object):
        return layer(object)
    raise TypeError(
        f"`object` must be {_ACCEPTED_OBJECTS}. "
        f"Received: object={_short_repr(object)} of type {type(object).__name__}"
    )


def _add_or_restore(model, layer, input_shape=None):
    # Keras appends before it rebuilds, so a layer that does not fit the
    # model's input would otherwise stay behind in it.
    before = list(model.layers)
    added_input = False
    try:
        if input_shape is not None and not before and not _has_input(model):
            model.add(keras.Input(shape=input_shape))
            added_input = True
        model.add(layer)
    except Exception:
        while len(model.layers) > len(before):
            model.pop()
        if added_input:
            model.pop()
        raise


def _has_input(model):
    try:
        model.inputs
    except (AttributeError, ValueError):
        return False
    return bool(model.inputs)


def _is_keras3_target(value):
    return isinstance(value, (LayerStack, keras.Sequential)) or _is_tensor_like(value)


def _is_tensor_like(value):
    return isinstance(value, (keras.KerasTensor, np.ndarray)) or tf.is_tensor(value)


def _layer_keywords(kwargs):
    keywords = dict(kwargs)
    if keywords.get("input_shape") is not None:
        keywords["input_shape"] = _validation.shape(keywords["input_shape"], "input_shape")
    if "name" in keywords and keywords["name"] is not None and not isinstance(
        keywords["name"], str
    ):
        raise TypeError(
            "`name` must be a string or None. "
            f"{_validation.received('name', keywords['name'])}"
        )
    return {key: value for key, value in keywords.items() if value is not None}


def _is_legacy(value):
    return type(value).__module__.split(".", 1)[0] == "tf_keras"


def _compose_legacy(object, arguments):  # noqa: A002
    import tensorflow_probability as tfp
    import tf_keras

    if not (isinstance(object, tf_keras.Sequential) or _is_legacy_tensor(object)):
        raise TypeError(
            "A tf_keras `object` must be a tf_keras Sequential model or a tf_keras "
            f"symbolic tensor. Received: object={_short_repr(object)} of type "
            f"{type(object).__name__}"
        )
    # Validate with this package's rules first, so both paths reject the same
    # input with the same message, then hand TFP the normalised values.
    layer_keywords = {
        key: arguments[key]
        for key in arguments
        if key not in _base_conv.FN_ARGUMENTS and key not in _CONV_ARGUMENTS
    }
    conv_arguments = {
        key: arguments[key] for key in arguments if key not in layer_keywords
    }
    normalized = _base_conv.normalize_arguments(3, **conv_arguments)
    layer = tfp.layers.Convolution3DReparameterization(**normalized, **layer_keywords)
    if isinstance(object, tf_keras.Sequential):
        count = len(object.layers)
        try:
            object.add(layer)
        except Exception:
            if len(object.layers) > count:
                object.pop()
            raise
        return object
    return layer(object)


def _is_legacy_tensor(value):
    import tf_keras

    try:
        return tf_keras.backend.is_keras_tensor(value)
    except ValueError:  # It raises, rather than answer False, for non-tensors.
        return False


_CONV_ARGUMENTS = (
    "filters",
    "kernel_size",
    "strides",
    "padding",
    "data_format",
    "dilation_rate",
    "activation",
)


def _short_repr(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
