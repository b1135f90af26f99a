"""One R-shaped factory for every layer of the family: ``create_layer``.

It takes arguments as an R user writes them (and as reticulate delivers them:
``2.0`` for 2, lists or 1-d arrays for vectors, None for NULL), builds the
layer, and composes it with ``object`` the way R keras's ``layer_*`` functions
do. Keras 3 objects get this package's layer; legacy ``tf_keras`` objects get
TFP's own class of the same estimator and rank, where TFP has one.

Each ``layer_*`` function is ``create_layer`` with a class: a row of the table
at the end of this file.
"""

import inspect
import warnings

import keras
import numpy as np
import tensorflow as tf

from tfprobr_bridge.layers import family
from tfprobr_bridge import validation
from tfprobr_bridge.r_bridge.stack import LayerStack

_ACCEPTED_OBJECTS = (
    "None, a LayerStack, a keras.Sequential model, a Keras 3 symbolic tensor, "
    "a tf.Tensor or a numpy array (or a tf_keras Sequential model or tensor)"
)

# What a Keras 3 layer takes beside its class's own arguments (and `seed`,
# which every member of the family takes).
_LAYER_KEYWORDS = ("name", "dtype", "trainable", "autocast", "input_shape", "input_dim", "seed",
                   "activity_regularizer")

# What a required argument is, for the error when it is missing.
_REQUIRED = {
    "filters": lambda rank: "a positive integer, the number of output channels",
    "units": lambda rank: "a positive integer, the number of output features",
    "kernel_size": validation.positive_integer_tuple_expected,
}


def create_layer(cls, object, arguments):  # noqa: A002 -- the R API's name.
    """Make a ``cls`` layer from R-shaped ``arguments`` and compose it with ``object``.

    What comes back depends on ``object``:

    ================================  ===========================================
    ``object``                        result
    ================================  ===========================================
    None                              the layer
    ``LayerStack``                    a new stack with the layer appended
    ``keras.Sequential``              the same model, with the layer added
    Keras 3 symbolic tensor,          ``layer(object)``
    ``tf.Tensor``, numpy array
    ``tf_keras`` Sequential or        the same, with TFP's own class of the
    tensor (legacy)                   same estimator and rank
    ================================  ===========================================

    Args:
        cls: A class of the family (``Conv2DFlipout``, ``DenseReparameterization``, ...).
        object: What to compose the layer with; see the table.
        arguments: The layer's arguments by name, as a dict. Integers may be
            integral floats; tuples may be lists or arrays. Keras layer
            keywords (``name``, ``dtype``, ``input_shape``) that are None are
            dropped, as R's NULL means "not given".

    Raises:
        TypeError: ``object`` is none of the accepted kinds, a required
            argument is missing, or an argument has the wrong type.
        ValueError: An argument has the right type but an invalid value.
    """
    arguments = dict(arguments)
    parameters = inspect.signature(cls).parameters
    validation.known_arguments(arguments, [
        *(name for name, p in parameters.items() if p.kind is not p.VAR_KEYWORD), *_LAYER_KEYWORDS
    ])
    for name, parameter in parameters.items():
        if parameter.default is parameter.empty and parameter.kind is not parameter.VAR_KEYWORD:
            if arguments.get(name) is None:
                given = f" Received: {name}=None" if name in arguments else ""
                if name not in _REQUIRED:
                    raise TypeError(f"`{name}` is required.{given}")
                expected = _REQUIRED[name](getattr(cls, "rank", None))
                raise TypeError(f"`{name}` is required: {expected}.{given}")
    keywords = {key: arguments.pop(key) for key in list(arguments) if key not in parameters}
    if "trainable" in keywords or "trainable" in arguments:
        value = keywords.pop("trainable", arguments.pop("trainable", True))
        arguments["trainable"] = validation.boolean(value, "trainable")
    arguments.update(_layer_keywords(keywords))
    input_shape = arguments.pop("input_shape", None)

    if not (isinstance(cls, type) and issubclass(cls, keras.layers.Layer)):
        return _apply(cls, object, arguments)
    if _is_legacy(object):
        return _compose_legacy(cls, object, arguments, input_shape)
    if not (object is None or _is_keras3_target(object)):
        raise TypeError(
            f"`object` must be {_ACCEPTED_OBJECTS}. "
            f"Received: object={validation.short_repr(object)} of type {type(object).__name__}"
        )
    if object is None and input_shape is not None:
        with warnings.catch_warnings():
            # Keras advises Input() over input_shape=, but a first layer made on
            # its own (R: missing object) has nowhere else to carry the shape.
            warnings.filterwarnings("ignore", message="Do not pass an `input_shape`")
            return cls(**arguments, input_shape=input_shape)
    layer = cls(**arguments)
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
            f"Received: layer={validation.short_repr(layer)} of type {type(layer).__name__}"
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
        f"Received: object={validation.short_repr(object)} of type {type(object).__name__}"
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
        keywords["input_shape"] = validation.shape(keywords["input_shape"], "input_shape")
    if "name" in keywords and keywords["name"] is not None and not isinstance(
        keywords["name"], str
    ):
        raise TypeError(
            "`name` must be a string or None. "
            f"{validation.received('name', keywords['name'])}"
        )
    return {key: value for key, value in keywords.items() if value is not None}


def _is_legacy(value):
    return type(value).__module__.split(".", 1)[0] == "tf_keras"


def _compose_legacy(cls, object, arguments, input_shape):  # noqa: A002
    """``object`` (tf_keras) composed with TFP's own class of ``cls``."""
    import tf_keras

    if not (isinstance(object, tf_keras.Sequential) or _is_legacy_tensor(object)):
        raise TypeError(
            "A tf_keras `object` must be a tf_keras Sequential model or a tf_keras "
            f"symbolic tensor. Received: object={validation.short_repr(object)} of type "
            f"{type(object).__name__}"
        )
    if cls in _TFP_CLASSES:
        tfp_class, tfp_arguments = _family_counterpart(cls, object, arguments)
    else:
        tfp_class, tfp_arguments = _tfp_class(cls), dict(arguments)
        if tfp_class is None:
            raise TypeError(
                f"TFP has no tf_keras counterpart of {cls.__name__}. Use a Keras 3 model.")
    if input_shape is not None:
        tfp_arguments["input_shape"] = input_shape
    layer = tfp_class(**tfp_arguments)
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


def _family_counterpart(cls, object, arguments):  # noqa: A002
    """TFP's class of a family member's estimator and rank, and its arguments."""
    import tensorflow_probability as tfp

    tfp_name = _TFP_CLASSES.get(cls)
    if tfp_name is None:
        raise TypeError(
            f"TFP has no tf_keras counterpart of {cls.__name__} (its local "
            "reparameterization exists for dense layers only), so a tf_keras `object` "
            "cannot hold one. Use a Keras 3 model, or the Flipout or reparameterization "
            f"layer. Received: object={validation.short_repr(object)} of type {type(object).__name__}"
        )
    tfp_class = getattr(tfp.layers, tfp_name)
    # Validate with this package's rules first, so both paths reject the same
    # input with the same message, then hand TFP the normalised values.
    checked = cls(**arguments)
    tfp_parameters = inspect.signature(tfp_class).parameters
    tfp_arguments = {}
    for key, value in arguments.items():
        if key in tfp_parameters and key not in ("activity_regularizer", "trainable"):
            value = getattr(checked, key)
        elif key == "seed":
            if value is None:
                continue
            raise TypeError(
                f"`seed` cannot be given to TFP's {tfp_name}, which a tf_keras `object` "
                "gets: TFP's layers take a seed only for Flipout. Leave `seed` unset, or "
                f"use a Keras 3 model. Received: seed={value!r}"
            )
        tfp_arguments[key] = value
    return tfp_class, tfp_arguments


def _apply(cls, object, arguments):  # noqa: A002
    """A ``cls`` that is not a layer (a regularizer): itself, or its value for ``object``."""
    made = cls(**arguments)
    if object is None:
        return made
    if _is_tensor_like(object) and not isinstance(object, keras.KerasTensor):
        return made(object)
    raise TypeError(
        f"A {cls.__name__} is not a layer: pass it as a layer's `activity_regularizer`, or "
        "give `object` a tensor (the output of a distribution layer) to compute it for. "
        f"Received: object={validation.short_repr(object)} of type {type(object).__name__}"
    )


def _tfp_class(cls):
    """TFP's tf_keras class of ``cls``'s name (None where TFP has none)."""
    import tensorflow_probability as tfp

    for namespace in (tfp.layers, tfp.bijectors):
        found = getattr(namespace, cls.__name__, None)
        if found is not None:
            return found
    return None


def _is_legacy_tensor(value):
    import tf_keras

    try:
        return tf_keras.backend.is_keras_tensor(value)
    except ValueError:  # It raises, rather than answer False, for non-tensors.
        return False


def _r_shaped(cls, name):
    """``create_layer`` with ``cls``, under R's name and with R's argument order.

    The signature is the class's with ``object`` first and, for convolutions,
    ``trainable`` after ``activity_regularizer``, as in rstudio/tfprobability.
    Only the arguments a caller gives are passed on; the class supplies the
    rest of the defaults.
    """
    parameters = [inspect.Parameter("object", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    default=None)]
    for parameter in inspect.signature(cls).parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            break
        if parameter.default is parameter.empty:
            parameter = parameter.replace(default=None)
        parameters.append(parameter)
        if parameter.name == "activity_regularizer" and "trainable" not in inspect.signature(
            cls
        ).parameters:
            parameters.append(
                inspect.Parameter("trainable", parameter.POSITIONAL_OR_KEYWORD, default=True)
            )
    parameters.append(inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD))
    signature = inspect.Signature(parameters)

    def factory(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        arguments = dict(bound.arguments)
        object = arguments.pop("object", None)  # noqa: A001
        arguments.update(arguments.pop("kwargs", {}))
        return create_layer(cls, object, arguments)

    factory.__name__ = factory.__qualname__ = name
    factory.__module__ = "tfprobr_bridge"
    factory.__signature__ = signature
    factory.__doc__ = (
        f"A :class:`{cls.__name__}` layer, composed with ``object``: R's ``{name}()``.\n\n"
        f"Same arguments, order and defaults as the R function; see :class:`{cls.__name__}`\n"
        "for them and :func:`create_layer` for what ``object`` gives back."
    )
    return factory


def r_name(member):
    """R's name of a member of the family: ``layer_conv_3d_flipout``, ``layer_dense_reparameterization``."""
    rank = f"_{member.rank}d" if member.kind == "conv" else ""
    return f"layer_{member.kind}{rank}_{member.estimator}"


# R's name, our class, TFP's tf_keras class name (None where TFP has none).
FAMILY = tuple((r_name(m), m.cls, m.tfp_name) for m in family.MEMBERS)
_TFP_CLASSES = {cls: tfp_name for _, cls, tfp_name in FAMILY}

_FACTORIES = {name: _r_shaped(cls, name) for name, cls, _ in FAMILY}
layer_conv_1d_reparameterization = _FACTORIES["layer_conv_1d_reparameterization"]
layer_conv_2d_reparameterization = _FACTORIES["layer_conv_2d_reparameterization"]
layer_conv_3d_reparameterization = _FACTORIES["layer_conv_3d_reparameterization"]
layer_conv_1d_flipout = _FACTORIES["layer_conv_1d_flipout"]
layer_conv_2d_flipout = _FACTORIES["layer_conv_2d_flipout"]
layer_conv_3d_flipout = _FACTORIES["layer_conv_3d_flipout"]
layer_conv_1d_local_reparameterization = _FACTORIES["layer_conv_1d_local_reparameterization"]
layer_conv_2d_local_reparameterization = _FACTORIES["layer_conv_2d_local_reparameterization"]
layer_conv_3d_local_reparameterization = _FACTORIES["layer_conv_3d_local_reparameterization"]
layer_dense_reparameterization = _FACTORIES["layer_dense_reparameterization"]
layer_dense_flipout = _FACTORIES["layer_dense_flipout"]
layer_dense_local_reparameterization = _FACTORIES["layer_dense_local_reparameterization"]
