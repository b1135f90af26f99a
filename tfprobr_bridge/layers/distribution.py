"""TFP's distribution layers on Keras 3: a layer whose output is a distribution.

TFP's ``DistributionLambda`` is a tf_keras ``Lambda`` whose output is the
distribution itself, coerced to a tensor (its sample, or its mean, ...) where
a tensor is needed. Keras 3 layers must return tensors, so here:

the layer returns the tensor ``convert_to_tensor_fn(d)`` (a sample, by
default) with the distribution attached, as TFP attaches it
(``tensor._tfp_distribution``), and with the distribution's methods and
shapes on it (``mean()``, ``stddev()``, ``sample()``, ``log_prob()``,
``event_shape``, ...). It is a tensor to Keras and TensorFlow, so models
compose, train and predict as with any layer; Keras hands that very tensor
to the next layer and to the loss, so a loss written against the
distribution (``-y_pred.log_prob(y)``, R's ``-(rv %>% tfd_log_prob(y))``)
works inside ``fit``; and called eagerly (``model(x)``), the result is
queried as the distribution. ``distribution_of(x)`` gives the distribution
itself. (An operation on the tensor gives a plain tensor. Keras's own in a
loss, a cast to the loss's dtype or a last axis added or dropped, happen
when the output is not float32 or the targets' rank differs by one: then a
lambda loss no longer sees the distribution, ``distribution_of`` and
``negative_log_likelihood`` still do.)

A layer given a distribution (the output of one of these layers) hands its
``make_distribution_fn`` the tensor-coercible distribution in both cases, as
TFP does. Under a mixed precision policy the layers compute in float32, as
Keras advises for a model's last layer. Configs hold the constructor's
arguments; a user's ``make_distribution_fn`` is saved by value with the
rules of this package's fns (refused in Keras's safe mode).
"""

import inspect

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
# TFP's tensor-coercible distribution (the object its tf_keras layers return);
# TFP registers the KL divergences and conversions for it.
from tensorflow_probability.python.layers.internal import distribution_tensor_coercible

from tfprobr_bridge import validation
from tfprobr_bridge.layers import fn_serialization

tfd = tfp.distributions
_register = keras.saving.register_keras_serializable(package="tfprobr_bridge")
_TensorCoercible = distribution_tensor_coercible._TensorCoercible


# What Keras does to a prediction before its loss sees it.
_SAME_VALUES = ("Cast", "Identity", "ExpandDims", "Squeeze")


def distribution_of(value):
    """The distribution ``value`` stands for: itself if it is one, the one a distribution
    layer attached to its output tensor, or None.

    In a graph, a cast or a reshaping by one axis of that tensor stands for it too: a
    Keras loss casts a prediction to its dtype (float32 by default) and adds or drops a
    last axis of 1 to match the targets' rank, which makes a new tensor, without the
    attributes.
    """
    if isinstance(value, _TensorCoercible):
        return value.tensor_distribution
    if isinstance(value, tfd.Distribution):
        return value
    distribution = getattr(value, "_tfp_distribution", None)
    if distribution is None and isinstance(value, tf.Tensor):
        try:
            op = value.op
        except AttributeError:  # an eager tensor has no op
            return None
        while distribution is None and op.type in _SAME_VALUES and op.inputs:
            source = op.inputs[0]
            distribution = getattr(source, "_tfp_distribution", None)
            op = source.op
    return distribution


# What of the distribution its output tensor carries, for a user to query.
_MEMBERS = ("sample", "mean", "mode", "stddev", "variance", "log_prob", "prob", "cdf",
            "log_cdf", "survival_function", "log_survival_function", "quantile", "entropy",
            "covariance", "cross_entropy", "kl_divergence", "event_shape", "batch_shape",
            "event_shape_tensor", "batch_shape_tensor")


# What TFP's layers add to the distributions they make (CategoricalMixtureOfOneHotCategorical's
# ``log_mean``, VariationalGaussianProcess's loss and KL), which TFP's tensor-coercible
# output forwards: the output tensor carries them too, so a loss can call them.
_EXTRAS = ("log_mean", "variational_loss", "surrogate_posterior_kl_divergence_prior")


def _attach(value, distribution):
    """``value`` (a tensor) carrying ``distribution`` and its methods and shapes."""
    value._tfp_distribution = distribution
    for name in _MEMBERS + _EXTRAS:
        member = getattr(distribution, name, None)
        if member is not None:
            setattr(value, name, member)
    return value


def _coercible(distribution, value):
    """TFP's tensor-coercible form of ``distribution``, whose tensor is ``value``."""
    coercible = _TensorCoercible(distribution=distribution,
                                 convert_to_tensor_fn=lambda _: value)
    coercible._concrete_value = value
    coercible._shape = value.shape
    return coercible


def _as_input(value):
    """What a ``make_distribution_fn`` gets: a distribution layer's output as a
    tensor-coercible distribution, anything else as it is."""
    distribution = distribution_of(value)
    if distribution is None or isinstance(value, _TensorCoercible):
        return value
    if isinstance(value, tfd.Distribution):
        return value
    return _coercible(distribution, value)


@_register
class ConvertToTensor:
    """A ``convert_to_tensor_fn`` that reads one member of a distribution by name:
    ``sample``, ``mean``, ``mode``, ``stddev``, ``variance``, or a property such as
    ``logits``. Saved by name, so it loads in Keras's safe mode."""

    def __init__(self, name):
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(
                "`convert_to_tensor_fn` given by name must name a method or property of a "
                f'distribution, such as "sample" or "mean". '
                f'{validation.received("convert_to_tensor_fn", name)}'
            )
        self.name = name

    def __call__(self, distribution):
        member = getattr(distribution, self.name, None)
        if member is None:
            raise ValueError(
                f"`convert_to_tensor_fn` names {self.name!r}, which a "
                f"{type(distribution).__name__} distribution does not have (use a method or "
                f'property such as "sample", "mean" or "mode"). '
                f"Received: convert_to_tensor_fn={self.name!r}"
            )
        if isinstance(member, property):  # TFP's layers set class properties on instances
            return member.fget(distribution)
        return member() if callable(member) else member

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(other) is type(self) and other.name == self.name

    def __hash__(self):
        return hash((type(self), self.name))

    def __repr__(self):
        return f"ConvertToTensor({self.name!r})"


_METHODS = ("sample", "mean", "mode", "stddev", "variance")


def as_convert_to_tensor_fn(value, name="convert_to_tensor_fn"):
    """``value`` as a callable ``fn(distribution) -> tensor``: a name, TFP's methods
    (``tfd.Distribution.sample``, ...) and properties (``tfd.Bernoulli.logits``) as a
    ``ConvertToTensor`` that saves by name, any other callable as it is."""
    if isinstance(value, ConvertToTensor):
        return value
    if isinstance(value, str):
        return ConvertToTensor(value)
    if isinstance(value, dict):
        return keras.saving.deserialize_keras_object(value)
    if isinstance(value, property) and value.fget is not None:
        return ConvertToTensor(value.fget.__name__)
    for method in _METHODS:
        if value is getattr(tfd.Distribution, method):
            return ConvertToTensor(method)
    if not callable(value):
        raise TypeError(
            f"`{name}` must be a function of a distribution (such as "
            'tfd.Distribution.sample), a property (tfd.Bernoulli.logits) or a name ("sample", '
            f'"mean", "mode", "stddev", "variance"). {validation.received(name, value)}'
        )
    return value


@_register
class DistributionLambda(keras.layers.Layer):
    """A layer whose output is a distribution: ``make_distribution_fn(inputs)``.

    Keras 3's TFP ``DistributionLambda``, with its constructor. Its output is the
    tensor ``convert_to_tensor_fn(d)`` carrying the distribution ``d`` and its
    methods (``mean()``, ``log_prob()``, ``event_shape``, ...); inside ``fit`` it
    reaches the loss as it is (``distribution_of(y_pred)`` gives ``d``).

    Args:
        make_distribution_fn: ``fn(inputs)`` returning a TFP distribution.
        convert_to_tensor_fn: The distribution's tensor: ``tfd.Distribution.sample``
            (default), ``.mean``, ``.mode``, a name of one, a property such as
            ``tfd.Bernoulli.logits``, or any ``fn(distribution)``.
        **kwargs: Keras layer arguments (``name``, ``dtype``, ``input_shape``, ...).

    Example:

    >>> import numpy as np, keras, tensorflow_probability as tfp
    >>> from tfprobr_bridge import DistributionLambda
    >>> layer = DistributionLambda(lambda t: tfp.distributions.Normal(t, 1.0))
    >>> output = layer(np.zeros((2, 3), "float32"))
    >>> output.shape, output.mean().shape, tuple(output.event_shape)
    (TensorShape([2, 3]), TensorShape([2, 3]), ())
    """

    def __init__(self, make_distribution_fn, convert_to_tensor_fn=tfd.Distribution.sample,
                 **kwargs):
        validation.required_callable(make_distribution_fn, "make_distribution_fn")
        converter = as_convert_to_tensor_fn(convert_to_tensor_fn)
        kwargs.pop("function", None)  # TFP's configs (a tf_keras Lambda's) have it
        super().__init__(**keras_kwargs(self, kwargs))
        self.make_distribution_fn = make_distribution_fn
        self.convert_to_tensor_fn = converter
        # A KL activity regularizer's prior, when it is a Keras model, is this layer's, so
        # that it trains with the model (tf_keras tracks it through the regularizer).
        prior_model = getattr(self.activity_regularizer, "prior_model", None)
        if prior_model is not None:
            self._activity_regularizer_prior = prior_model

    def build(self, input_shape):
        # Nothing to make: the layers this one may hold (a KL regularizer's prior model, the
        # layers a make_distribution_fn calls) build when they are first called.
        self.built = True

    def _make_distribution(self, inputs):
        return self.make_distribution_fn(_as_input(inputs))

    def call(self, inputs):
        distribution = self._make_distribution(inputs)
        inner = distribution_of(distribution)
        if inner is None:
            raise TypeError(
                f"Layer `{self.name}`: `make_distribution_fn` must return a TensorFlow "
                f"Probability distribution, but returned {type(distribution).__name__}. "
                "Received: make_distribution_fn="
                f"{fn_serialization.fn_repr(self.make_distribution_fn)}"
            )
        value = tf.convert_to_tensor(self.convert_to_tensor_fn(inner))
        if value is inputs:
            value = tf.identity(value)  # its own tensor: the input is not to carry it
        return _attach(value, inner)

    def get_config(self):
        config = super().get_config()
        config["make_distribution_fn"] = fn_serialization.serialize_fn(
            self.make_distribution_fn, "make_distribution_fn")
        config["convert_to_tensor_fn"] = fn_serialization.serialize_fn(
            self.convert_to_tensor_fn, "convert_to_tensor_fn")
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("make_distribution_fn", "convert_to_tensor_fn"):
            if name in config:
                config[name] = fn_serialization.deserialize_fn(config[name], name)
        return cls(**config)


# Keras's own layer keywords, which every layer here passes on.
_KERAS_KEYWORDS = ("name", "dtype", "trainable", "autocast", "activity_regularizer",
                   "input_shape", "input_dim", "batch_input_shape", "batch_size")


def keras_kwargs(layer, kwargs, distribution_layer=True):
    """``kwargs`` for Keras's ``Layer.__init__``, checked first (so a bad argument leaves no
    half-made layer and no used-up layer name): known names (a misspelling gets a "did
    you mean"), a dtype, a regularizer, a boolean ``trainable``; for a
    ``distribution_layer``, float32 under a mixed precision policy (``full_precision``)."""
    validation.known_arguments(kwargs, [
        *(name for name, p in inspect.signature(type(layer).__init__).parameters.items()
          if name != "self" and p.kind is not p.VAR_KEYWORD),
        *_KERAS_KEYWORDS,
    ])
    kwargs = dict(kwargs)
    if kwargs.get("dtype") is not None:
        validation.dtype_policy(kwargs["dtype"])
    if "activity_regularizer" in kwargs:
        kwargs["activity_regularizer"] = validation.activity_regularizer(
            kwargs["activity_regularizer"])
    if "trainable" in kwargs:
        kwargs["trainable"] = validation.boolean(kwargs["trainable"], "trainable")
    return full_precision(kwargs) if distribution_layer else kwargs


def serialize_weight(value):
    """A KL weight for a config: a number as it is, a tensor or variable as its value."""
    if value is None or isinstance(value, (int, float)):
        return value
    if validation._is_number(value):
        return float(value)
    return keras.saving.serialize_keras_object(value)


def deserialize_weight(value):
    return keras.saving.deserialize_keras_object(value) if isinstance(value, dict) else value


def keras_object(get, value, name, expected):
    """``get(value)`` (``keras.initializers.get`` and the like), refused in Keras's form."""
    try:
        return get(value)
    except (ValueError, TypeError):
        error_type = ValueError if isinstance(value, (str, dict)) else TypeError
        raise error_type(f"`{name}` must be {expected}. {validation.received(name, value)}"
                         ) from None


def tensorflow_dtype(value, name):
    """A TensorFlow dtype's name, or None."""
    if value is None:
        return None
    if isinstance(value, (bool, int, float, np.bool_, np.number)):
        # tf.as_dtype reads a number as a DataType enum (True is float32): never what is meant.
        raise TypeError(f'`{name}` must be a dtype (such as "float32" or "int32") or None. '
                        f"{validation.received(name, value)}")
    try:
        return tf.as_dtype(value).name
    except TypeError:
        raise TypeError(f'`{name}` must be a dtype (such as "float32" or "int32") or None. '
                        f"{validation.received(name, value)}") from None


def scalar_weight(value, name):
    """None, a real number, or a scalar tensor or variable (a KL weight)."""
    if value is None or validation._is_number(value) or tf.is_tensor(value) or isinstance(
            value, (keras.Variable, tf.Variable)):
        return value
    raise TypeError(f"`{name}` must be a number, a scalar tensor or variable, or None. "
                    f"{validation.received(name, value)}")


def full_precision(kwargs):
    """Layer ``kwargs`` whose dtype, if not given, is the policy's variable dtype under a
    mixed precision policy: a distribution layer ends a model, where Keras advises
    float32, TFP's distributions are not made for float16, and a cast of the output
    (Keras casts inputs to a layer's compute dtype) would lose the distribution."""
    if kwargs.get("dtype") is None:
        policy = keras.config.dtype_policy()
        if policy.compute_dtype != policy.variable_dtype:
            kwargs = dict(kwargs, dtype=policy.variable_dtype)
    return kwargs


def _integer(value, name):
    """A positive integer; a tensor (TFP takes them) must have a value known now."""
    if tf.is_tensor(value):
        static = tf.get_static_value(value)
        value = static if static is not None else value
    return validation.positive_integer(value, name)


def _size(tfp_params_size):
    """TFP's ``params_size`` as a Python integer (Keras's layers take no tensors for sizes)."""

    signature = inspect.signature(tfp_params_size)

    def params_size(*args, **kwargs):
        kwargs.pop("name", None)
        bound = signature.bind(*args, **kwargs)
        for key, value in list(bound.arguments.items()):
            if tf.is_tensor(value) and tf.get_static_value(value) is None:
                continue  # known when the graph runs: TFP's params_size takes it
            if key == "event_shape":
                bound.arguments[key] = _event_shape(value, key)
            elif key in ("event_size", "num_components", "component_params_size"):
                bound.arguments[key] = _integer(value, key)
        args, kwargs = bound.args, bound.kwargs
        value = tf.get_static_value(tfp_params_size(*args, **kwargs))
        return int(value) if value is not None else tfp_params_size(*args, **kwargs)

    params_size.__doc__ = f"The number of parameters the layer takes: TFP's {tfp_params_size.__qualname__}."
    params_size.__signature__ = signature
    return staticmethod(params_size)


def _deserialize_layer(config, name):
    """A layer from its config (as a saved model holds it), or an error naming ``name``."""
    try:
        return keras.layers.deserialize(config)
    except (TypeError, ValueError) as error:
        raise TypeError(f"`{name}` must be a distribution layer or its config: {error} "
                        f"{validation.received(name, config)}") from None


def _event_shape(value, name="event_shape"):
    """A vector of positive integers (an integer, a list, or () for a scalar event). A
    tensor (TFP takes them) gives its value; one whose value is known only when the
    model runs is kept as it is (TFP's ``new`` takes it), and the layer cannot be saved."""
    given = value
    if isinstance(value, tf.TensorShape):
        value = value.as_list()
    if tf.is_tensor(value):
        static = tf.get_static_value(value)
        if static is None:
            return value  # known when the layer runs (TFP's ``new`` takes it); not savable
        value = static
    if isinstance(value, np.ndarray) and value.ndim <= 1:
        value = value.reshape(-1).tolist()
    if isinstance(value, (list, tuple)) and len(value) == 0:
        return ()
    if validation._as_integer(value) is not None:
        value = [value]
    if not isinstance(value, (list, tuple)) or any(
            validation._as_integer(item) is None for item in value):
        error_type = TypeError if not isinstance(value, (list, tuple)) else ValueError
        raise error_type(f"`{name}` must be a positive integer, a list of them, or () for a "
                         f"scalar event. {validation.received(name, given)}")
    try:
        return validation.shape(value, name)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a positive integer, a list of them, or () for a "
                         f"scalar event. {validation.received(name, given)}") from None


class _FromParameters(DistributionLambda):
    """A distribution layer made from its parameters by a static ``new`` (TFP's layout),
    whose config is its constructor's arguments (no pickled code)."""

    # The constructor arguments, besides convert_to_tensor_fn, that ``new`` takes.
    _arguments = ()

    def __init__(self, convert_to_tensor_fn=tfd.Distribution.sample, validate_args=False,
                 **kwargs):
        kwargs.pop("make_distribution_fn", None)
        self._validate_args = validation.boolean(validate_args, "validate_args")
        super().__init__(self._new_from_inputs, convert_to_tensor_fn, **kwargs)

    def _new_from_inputs(self, inputs):
        inputs = tf.convert_to_tensor(inputs)
        self._check_width(inputs)
        return self.new(inputs, **self._new_arguments(), validate_args=self._validate_args)

    def _check_width(self, inputs):
        """Refuse an input whose last axis is not ``params_size`` wide (TFP would fail later
        in a reshape, naming neither the layer nor the size)."""
        parameters = inspect.signature(type(self).params_size).parameters
        arguments = self._new_arguments()
        names = [name for name in parameters if name != "name"]
        if not all(name in arguments for name in names) or any(
                tf.is_tensor(arguments[name]) for name in names):
            return
        expected = type(self).params_size(**{name: arguments[name] for name in names})
        width = inputs.shape[-1] if inputs.shape.rank else None
        if width is not None and isinstance(expected, int) and width != expected:
            given = ", ".join(f"{name}={arguments[name]!r}" for name in names)
            raise ValueError(
                f"Layer `{self.name}` reads its distribution's {expected} parameters "
                f"({type(self).__name__}.params_size({given})) from the last axis of its "
                f"input, which has {width}. Received: input_shape={tuple(inputs.shape)}")

    def _new_arguments(self):
        return {name: getattr(self, f"_{name}") for name in self._arguments}

    def get_config(self):
        config = keras.layers.Layer.get_config(self)
        config["convert_to_tensor_fn"] = fn_serialization.serialize_fn(
            self.convert_to_tensor_fn, "convert_to_tensor_fn")
        config["validate_args"] = self._validate_args
        for name in self._arguments:
            value = getattr(self, f"_{name}")
            if tf.is_tensor(value):
                raise ValueError(
                    f"Layer `{self.name}` cannot be saved: its `{name}` is a tensor whose value "
                    f"is known only when the model runs. Received: {name}={value!r}")
            config[name] = list(value) if isinstance(value, tuple) else value
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "convert_to_tensor_fn" in config:
            config["convert_to_tensor_fn"] = fn_serialization.deserialize_fn(
                config["convert_to_tensor_fn"], "convert_to_tensor_fn")
        return cls(**config)


@_register
class IndependentNormal(_FromParameters):
    """An ``Independent(Normal)`` over ``event_shape``: the first half of the parameters
    are the locations, the second half, through a softplus, the scales (TFP's layout)."""

    _arguments = ("event_shape",)

    def __init__(self, event_shape=(), convert_to_tensor_fn=tfd.Distribution.sample,
                 validate_args=False, **kwargs):
        self._event_shape = _event_shape(event_shape)
        super().__init__(convert_to_tensor_fn, validate_args, **kwargs)

    new = staticmethod(tfp.layers.IndependentNormal.new)
    params_size = _size(tfp.layers.IndependentNormal.params_size)


@_register
class IndependentLogistic(_FromParameters):
    """An ``Independent(Logistic)`` over ``event_shape`` (locations, then scales)."""

    _arguments = ("event_shape",)

    def __init__(self, event_shape=(), convert_to_tensor_fn=tfd.Distribution.sample,
                 validate_args=False, **kwargs):
        self._event_shape = _event_shape(event_shape)
        super().__init__(convert_to_tensor_fn, validate_args, **kwargs)

    new = staticmethod(tfp.layers.IndependentLogistic.new)
    params_size = _size(tfp.layers.IndependentLogistic.params_size)


@_register
class IndependentPoisson(_FromParameters):
    """An ``Independent(Poisson)`` over ``event_shape``; the parameters are log rates."""

    _arguments = ("event_shape",)

    def __init__(self, event_shape=(), convert_to_tensor_fn=tfd.Distribution.sample,
                 validate_args=False, **kwargs):
        self._event_shape = _event_shape(event_shape)
        super().__init__(convert_to_tensor_fn, validate_args, **kwargs)

    new = staticmethod(tfp.layers.IndependentPoisson.new)
    params_size = _size(tfp.layers.IndependentPoisson.params_size)


@_register
class IndependentBernoulli(_FromParameters):
    """An ``Independent(Bernoulli)`` over ``event_shape``; the parameters are logits.
    ``convert_to_tensor_fn=tfd.Bernoulli.logits`` gives the logits as its tensor."""

    _arguments = ("event_shape", "sample_dtype")

    def __init__(self, event_shape=(), convert_to_tensor_fn=tfd.Distribution.sample,
                 sample_dtype=None, validate_args=False, **kwargs):
        self._event_shape = _event_shape(event_shape)
        self._sample_dtype = tensorflow_dtype(sample_dtype, "sample_dtype")
        super().__init__(convert_to_tensor_fn, validate_args, **kwargs)

    def _new_arguments(self):
        return {"event_shape": self._event_shape, "dtype": self._sample_dtype}

    new = staticmethod(tfp.layers.IndependentBernoulli.new)
    params_size = _size(tfp.layers.IndependentBernoulli.params_size)


@_register
class MultivariateNormalTriL(_FromParameters):
    """A ``MultivariateNormalTriL`` of ``event_size``: the locations, then the lower
    triangle of the scale (its diagonal through a softplus, plus 1e-5)."""

    _arguments = ("event_size",)

    def __init__(self, event_size, convert_to_tensor_fn=tfd.Distribution.sample,
                 validate_args=False, **kwargs):
        self._event_size = _integer(event_size, "event_size")
        super().__init__(convert_to_tensor_fn, validate_args, **kwargs)

    new = staticmethod(tfp.layers.MultivariateNormalTriL.new)
    params_size = _size(tfp.layers.MultivariateNormalTriL.params_size)


@_register
class OneHotCategorical(_FromParameters):
    """A ``OneHotCategorical`` over ``event_size`` classes; the parameters are logits."""

    _arguments = ("event_size", "sample_dtype")

    def __init__(self, event_size, convert_to_tensor_fn=tfd.Distribution.sample,
                 sample_dtype=None, validate_args=False, **kwargs):
        self._event_size = _integer(event_size, "event_size")
        self._sample_dtype = tensorflow_dtype(sample_dtype, "sample_dtype")
        super().__init__(convert_to_tensor_fn, validate_args, **kwargs)

    def _new_arguments(self):
        return {"event_size": self._event_size, "dtype": self._sample_dtype}

    new = staticmethod(tfp.layers.OneHotCategorical.new)
    params_size = _size(tfp.layers.OneHotCategorical.params_size)


def _mixture(params, num_components, component, validate_args=False):
    """TFP's MixtureSameFamily layout: the mixture's logits, then each component's
    parameters, contiguously; the components made by ``component`` (a function of a
    tensor of parameters, or a distribution layer)."""
    params = tf.convert_to_tensor(params)
    num_components = tf.convert_to_tensor(num_components, dtype_hint=tf.int32)
    if isinstance(component, DistributionLambda):
        component = component._make_distribution
    # Each component's size, known before the model runs if the sizes are (Keras's symbolic
    # shapes then keep the event's size), else -1.
    k, p = tf.get_static_value(num_components), params.shape[-1]
    size = (p - int(k)) // int(k) if k is not None and p is not None and int(k) > 0 else -1
    shape = tf.concat([tf.shape(params)[:-1], [num_components, size]], axis=0)
    components = distribution_of(component(tf.reshape(params[..., num_components:], shape)))
    mixture = tfd.Categorical(logits=params[..., :num_components])
    return tfd.MixtureSameFamily(mixture, components, validate_args=False)


@_register
class MixtureSameFamily(_FromParameters):
    """A ``MixtureSameFamily`` of ``num_components`` components made by ``component_layer``
    (another distribution layer, such as ``IndependentNormal``)."""

    _arguments = ("num_components",)

    def __init__(self, num_components, component_layer,
                 convert_to_tensor_fn=tfd.Distribution.sample, validate_args=False, **kwargs):
        self._num_components = _integer(num_components, "num_components")
        if isinstance(component_layer, dict):
            component_layer = _deserialize_layer(component_layer, "component_layer")
        if not isinstance(component_layer, DistributionLambda):
            raise TypeError(
                "`component_layer` must be a distribution layer (such as IndependentNormal), "
                f"whose output is each component. {validation.received('component_layer', component_layer)}"
            )
        self.component_layer = component_layer
        super().__init__(convert_to_tensor_fn, validate_args, **kwargs)

    def build(self, input_shape):
        # The component layer makes distributions only; it has no weights to build.
        self.component_layer.built = True
        self.built = True

    def _new_from_inputs(self, inputs):
        return self.new(inputs, self._num_components, self.component_layer, self._validate_args)

    @staticmethod
    def new(params, num_components, component_layer, validate_args=False, name=None):
        """TFP's ``new``: the mixture whose parameters are ``params`` (the mixture's
        logits, then each component's parameters for ``component_layer``, a distribution
        layer or a function of parameters returning a distribution)."""
        return _mixture(params, num_components, component_layer, validate_args)

    params_size = _size(tfp.layers.MixtureSameFamily.params_size)

    def get_config(self):
        config = super().get_config()
        config["component_layer"] = keras.layers.serialize(self.component_layer)
        return config


@_register
class MixtureNormal(_FromParameters):
    """A mixture of ``num_components`` ``IndependentNormal`` over ``event_shape``."""

    _arguments = ("num_components", "event_shape")
    _component = IndependentNormal

    def __init__(self, num_components, event_shape=(),
                 convert_to_tensor_fn=tfd.Distribution.sample, validate_args=False, **kwargs):
        self._num_components = _integer(num_components, "num_components")
        self._event_shape = _event_shape(event_shape)
        super().__init__(convert_to_tensor_fn, validate_args, **kwargs)

    def _new_from_inputs(self, inputs):
        inputs = tf.convert_to_tensor(inputs)
        self._check_width(inputs)
        return self.new(inputs, self._num_components, self._event_shape, self._validate_args)

    @classmethod
    def new(cls, params, num_components, event_shape=(), validate_args=False, name=None):
        """TFP's ``new``: the mixture of ``num_components`` components over
        ``event_shape`` whose parameters are ``params``."""
        component = cls._component

        def components(component_params):
            return component.new(component_params, event_shape, validate_args=validate_args)

        return _mixture(params, num_components, components, validate_args)

    @classmethod
    def params_size(cls, num_components, event_shape=(), name=None):
        return MixtureSameFamily.params_size(
            num_components, cls._component.params_size(event_shape))


@_register
class MixtureLogistic(MixtureNormal):
    """A mixture of ``num_components`` ``IndependentLogistic`` over ``event_shape``."""

    _component = IndependentLogistic


@_register
class CategoricalMixtureOfOneHotCategorical(_FromParameters):
    """A mixture of ``num_components`` ``OneHotCategorical`` over ``event_size`` classes;
    its ``mean()`` is each one-hot outcome's probability (TFP's)."""

    _arguments = ("event_size", "num_components", "sample_dtype")

    def __init__(self, event_size, num_components, convert_to_tensor_fn=tfd.Distribution.sample,
                 sample_dtype=None, validate_args=False, **kwargs):
        self._event_size = _integer(event_size, "event_size")
        self._num_components = _integer(num_components, "num_components")
        self._sample_dtype = tensorflow_dtype(sample_dtype, "sample_dtype")
        super().__init__(convert_to_tensor_fn, validate_args, **kwargs)

    def _new_from_inputs(self, inputs):
        inputs = tf.convert_to_tensor(inputs)
        self._check_width(inputs)
        return self.new(inputs, self._event_size, self._num_components,
                        validate_args=self._validate_args)

    @staticmethod
    def new(params, event_size, num_components, dtype=None, validate_args=False, name=None):
        """TFP's ``new``: the mixture whose parameters are ``params``; its ``mean()`` and
        ``log_mean()`` are each one-hot outcome's probability (``dtype`` is unused, as in
        TFP: samples have the parameters' dtype)."""
        params = tf.convert_to_tensor(params)

        def components(component_params):
            return tfd.OneHotCategorical(logits=component_params, dtype=params.dtype)

        distribution = _mixture(params, num_components, components)
        distribution._mean = _all_one_hot(tfd.Distribution.prob, distribution)
        distribution.log_mean = _all_one_hot(tfd.Distribution.log_prob, distribution)
        return distribution

    params_size = _size(tfp.layers.CategoricalMixtureOfOneHotCategorical.params_size)


def _all_one_hot(fn, distribution):
    """``fn`` (prob or log_prob) of every one-hot outcome, classes last (TFP's; shapes
    may be known only when it runs)."""

    def evaluate(*args, **kwargs):
        size = distribution.event_shape_tensor()[-1]
        batch_ndims = tf.size(distribution.batch_shape_tensor())
        x = tf.reshape(tf.eye(size, dtype=distribution.dtype),
                       tf.pad(tf.ones(batch_ndims, tf.int32), [[1, 1]], constant_values=size))
        perm = tf.pad(tf.range(1, batch_ndims + 1), [[0, 1]])
        return tf.transpose(fn(distribution, x), perm)

    return evaluate


@keras.saving.register_keras_serializable(package="tfprobr_bridge")
def negative_log_likelihood(y_true, y_pred):
    """A loss: ``-log p(y_true)`` under the distribution a distribution layer output.

    Saved with a compiled model by name, so it loads in Keras's safe mode (a
    lambda would not). ``y_pred`` must come from a distribution layer; it may be
    Keras's cast of it (a float64 or float16 model). Targets with a last axis of 1
    for a scalar event lose that axis (``-log_prob`` of ``(n, 1)`` targets under a
    batch of ``n`` would otherwise broadcast to ``(n, n)``).
    """
    distribution = distribution_of(y_pred)
    if distribution is None:
        raise TypeError(
            "negative_log_likelihood needs the output of a distribution layer (such as "
            "IndependentNormal or DistributionLambda) as its prediction. Received: y_pred of "
            f"type {type(y_pred).__name__}"
        )
    y_true = tf.cast(y_true, distribution.dtype)
    # Targets with a last axis of 1 for a distribution without it (a scalar event), as Keras
    # users shape them: without the axis, rather than broadcast to a batch by batch matrix.
    rank = distribution.batch_shape.rank
    if rank is not None and distribution.event_shape.rank is not None:
        rank += distribution.event_shape.rank
        if y_true.shape.rank == rank + 1 and y_true.shape[-1] == 1:
            y_true = tf.squeeze(y_true, axis=-1)
    return -distribution.log_prob(y_true)
