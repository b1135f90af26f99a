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
itself. (An operation on the tensor, a cast included, gives a plain tensor.)

A layer given a distribution (the output of one of these layers) hands its
``make_distribution_fn`` the tensor-coercible distribution in both cases, as
TFP does. Configs hold the constructor's arguments; a user's
``make_distribution_fn`` is saved by value with the rules of this package's
fns (refused in Keras's safe mode).
"""

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


def distribution_of(value):
    """The distribution ``value`` stands for: itself if it is one, the one a distribution
    layer attached to its output tensor, or None."""
    if isinstance(value, _TensorCoercible):
        return value.tensor_distribution
    if isinstance(value, tfd.Distribution):
        return value
    return getattr(value, "_tfp_distribution", None)


# What of the distribution its output tensor carries, for a user to query.
_MEMBERS = ("sample", "mean", "mode", "stddev", "variance", "log_prob", "prob", "cdf",
            "log_cdf", "survival_function", "log_survival_function", "quantile", "entropy",
            "covariance", "cross_entropy", "kl_divergence", "event_shape", "batch_shape",
            "event_shape_tensor", "batch_shape_tensor")


def _attach(value, distribution):
    """``value`` (a tensor) carrying ``distribution`` and its methods and shapes."""
    value._tfp_distribution = distribution
    for name in _MEMBERS:
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
                f'distribution, such as "sample" or "mean". {validation.received("name", name)}'
            )
        self.name = name

    def __call__(self, distribution):
        member = getattr(distribution, self.name)
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
        kwargs.pop("function", None)
        super().__init__(**kwargs)
        self.make_distribution_fn = make_distribution_fn
        self.convert_to_tensor_fn = converter

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


def _size(tfp_params_size):
    """TFP's ``params_size`` as a Python integer (Keras's layers take no tensors for sizes)."""

    def params_size(*args, **kwargs):
        kwargs.pop("name", None)
        value = tf.get_static_value(tfp_params_size(*args, **kwargs))
        return int(value) if value is not None else tfp_params_size(*args, **kwargs)

    params_size.__doc__ = f"The number of parameters the layer takes: TFP's {tfp_params_size.__qualname__}."
    return staticmethod(params_size)


def _event_shape(value, name="event_shape"):
    """A vector of positive integers (an integer, a list, or () for a scalar event)."""
    if isinstance(value, tf.TensorShape):
        value = value.as_list()
    items = np.asarray(value).reshape(-1).tolist() if not isinstance(value, (list, tuple)) \
        else list(value)
    if items == []:
        return ()
    return validation.shape(items, name)


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
        return self.new(tf.convert_to_tensor(inputs), **self._new_arguments(),
                        validate_args=self._validate_args)

    def _new_arguments(self):
        return {name: getattr(self, f"_{name}") for name in self._arguments}

    def get_config(self):
        config = keras.layers.Layer.get_config(self)
        config["convert_to_tensor_fn"] = fn_serialization.serialize_fn(
            self.convert_to_tensor_fn, "convert_to_tensor_fn")
        config["validate_args"] = self._validate_args
        for name in self._arguments:
            value = getattr(self, f"_{name}")
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
        self._sample_dtype = None if sample_dtype is None else tf.as_dtype(sample_dtype).name
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
        self._event_size = validation.positive_integer(event_size, "event_size")
        super().__init__(convert_to_tensor_fn, validate_args, **kwargs)

    new = staticmethod(tfp.layers.MultivariateNormalTriL.new)
    params_size = _size(tfp.layers.MultivariateNormalTriL.params_size)


@_register
class OneHotCategorical(_FromParameters):
    """A ``OneHotCategorical`` over ``event_size`` classes; the parameters are logits."""

    _arguments = ("event_size", "sample_dtype")

    def __init__(self, event_size, convert_to_tensor_fn=tfd.Distribution.sample,
                 sample_dtype=None, validate_args=False, **kwargs):
        self._event_size = validation.positive_integer(event_size, "event_size")
        self._sample_dtype = None if sample_dtype is None else tf.as_dtype(sample_dtype).name
        super().__init__(convert_to_tensor_fn, validate_args, **kwargs)

    def _new_arguments(self):
        return {"event_size": self._event_size, "dtype": self._sample_dtype}

    new = staticmethod(tfp.layers.OneHotCategorical.new)
    params_size = _size(tfp.layers.OneHotCategorical.params_size)


def _mixture(params, num_components, component, validate_args=False):
    """TFP's MixtureSameFamily layout: the mixture's logits, then each component's
    parameters, contiguously; the components made by ``component`` (a function of a
    tensor of parameters)."""
    params = tf.convert_to_tensor(params)
    shape = tf.concat([tf.shape(params)[:-1], [num_components, -1]], axis=0)
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
        self._num_components = validation.positive_integer(num_components, "num_components")
        if isinstance(component_layer, dict):
            component_layer = keras.layers.deserialize(component_layer)
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
        return _mixture(inputs, self._num_components,
                        self.component_layer._make_distribution, self._validate_args)

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
        self._num_components = validation.positive_integer(num_components, "num_components")
        self._event_shape = _event_shape(event_shape)
        super().__init__(convert_to_tensor_fn, validate_args, **kwargs)

    def _new_from_inputs(self, inputs):
        component = self._component

        def components(params):
            return component.new(params, self._event_shape, validate_args=self._validate_args)

        return _mixture(inputs, self._num_components, components, self._validate_args)

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
        self._event_size = validation.positive_integer(event_size, "event_size")
        self._num_components = validation.positive_integer(num_components, "num_components")
        self._sample_dtype = None if sample_dtype is None else tf.as_dtype(sample_dtype).name
        super().__init__(convert_to_tensor_fn, validate_args, **kwargs)

    def _new_from_inputs(self, inputs):
        params = tf.convert_to_tensor(inputs)

        def components(component_params):
            return tfd.OneHotCategorical(logits=component_params, dtype=params.dtype)

        distribution = _mixture(params, self._num_components, components)
        distribution._mean = _all_one_hot(tfd.Distribution.prob, distribution)
        distribution.log_mean = _all_one_hot(tfd.Distribution.log_prob, distribution)
        return distribution

    params_size = _size(tfp.layers.CategoricalMixtureOfOneHotCategorical.params_size)


def _all_one_hot(fn, distribution):
    """``fn`` (prob or log_prob) of every one-hot outcome, classes last (TFP's)."""

    def evaluate(*args, **kwargs):
        size = int(distribution.event_shape[-1])
        batch = distribution.batch_shape
        x = tf.reshape(tf.eye(size, dtype=distribution.dtype),
                       [size] + [1] * batch.rank + [size])
        values = fn(distribution, x)
        perm = list(range(1, batch.rank + 1)) + [0]
        return tf.transpose(values, perm)

    return evaluate


@keras.saving.register_keras_serializable(package="tfprobr_bridge")
def negative_log_likelihood(y_true, y_pred):
    """A loss: ``-log p(y_true)`` under the distribution a distribution layer output.

    Saved with a compiled model by name, so it loads in Keras's safe mode (a
    lambda would not). ``y_pred`` must come from a distribution layer.
    """
    distribution = distribution_of(y_pred)
    if distribution is None:
        raise TypeError(
            "negative_log_likelihood needs the output of a distribution layer (such as "
            "IndependentNormal or DistributionLambda) as its prediction. Received: y_pred of "
            f"type {type(y_pred).__name__}"
        )
    return -distribution.log_prob(tf.cast(y_true, distribution.dtype))
