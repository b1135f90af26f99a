"""TFP's other probabilistic Keras layers on Keras 3: KL penalties, a trainable variable,
and ``DenseVariational`` (whose posterior and prior are Keras models of distributions).

- ``KLDivergenceRegularizer``: an activity regularizer ``KL(d || distribution_b)``
  for a distribution layer's output; ``KLDivergenceAddLoss`` adds the same as a
  loss and passes its input on.
- ``VariableLayer``: outputs a trainable variable, whatever its input.
- ``DenseVariational``: a dense layer whose kernel and bias are drawn from a
  posterior that ``make_posterior_fn`` builds as a Keras model (usually a
  ``VariableLayer`` then a ``DistributionLambda``), with the KL divergence from
  ``make_prior_fn``'s prior added as a loss.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfprobr_bridge import validation
from tfprobr_bridge.layers import fn_serialization
from tfprobr_bridge.layers.distribution import deserialize_weight
from tfprobr_bridge.layers.distribution import distribution_of
from tfprobr_bridge.layers.distribution import keras_kwargs
from tfprobr_bridge.layers.distribution import keras_object
from tfprobr_bridge.layers.distribution import scalar_weight
from tfprobr_bridge.layers.distribution import serialize_weight
from tfprobr_bridge.layers.distribution import tensorflow_dtype

tfd = tfp.distributions
_register = keras.saving.register_keras_serializable(package="tfprobr_bridge")


def _reduce_axis(value, name="test_points_reduce_axis"):
    if value is None:
        return None
    items = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    axes = []
    for item in items:
        integer = validation._as_integer(item)
        if integer is None:
            raise TypeError(
                f"`{name}` must be None (every axis), or an axis or axes (integers). "
                f"{validation.received(name, value)}"
            )
        axes.append(integer)
    return tuple(axes)


def _check_axes(axes, ratio):
    """Refuse axes the log ratio at the test points does not have (TensorFlow's message
    would name neither the argument nor the layer)."""
    rank = ratio.shape.rank
    if axes is None or rank is None:
        return
    for axis in (axes if isinstance(axes, (list, tuple)) else [axes]):
        if not -rank <= int(axis) < rank:
            raise ValueError(
                f"`test_points_reduce_axis` names axes of the log ratio at the test points, "
                f"which has {rank} (shape {tuple(ratio.shape)}). "
                f"{validation.received('test_points_reduce_axis', axes)}")


def make_kl_divergence_fn(distribution_b, use_exact_kl=False, test_points_reduce_axis=(),
                          test_points_fn=tf.convert_to_tensor, weight=None):
    """TFP's KL penalty: ``fn(distribution_a)``, the KL divergence ``KL(a || b)`` summed
    to a scalar: exact, or estimated at ``test_points_fn(a)`` (by default the tensor the
    layer passed on: the same draw) as ``mean(log a(z) - log b(z))`` over
    ``test_points_reduce_axis`` (None: every axis); times ``weight`` if given."""

    def kl_divergence(distribution_a):
        a = distribution_of(distribution_a)
        if a is None:
            raise TypeError(
                "A KL divergence penalty needs a distribution: the output of a distribution "
                "layer (such as MultivariateNormalTriL). Received: a value of type "
                f"{type(distribution_a).__name__}"
            )
        if isinstance(distribution_b, keras.Model):
            b = distribution_of(distribution_b(tf.zeros([])))  # a dummy input (TFP's 0.)
        elif callable(distribution_b) and not isinstance(distribution_b, tfd.Distribution):
            b = distribution_of(distribution_b())
        else:
            b = distribution_of(distribution_b)
        if b is None:
            raise TypeError(
                "`distribution_b` must be a distribution, a Keras model whose output is one, "
                "or a function of no arguments that returns one. Received: distribution_b="
                f"{validation.short_repr(distribution_b)}, which gave no distribution")
        with tf.name_scope("kldivergence_loss"):
            if use_exact_kl:
                kl = tfd.kl_divergence(a, b)
            else:
                points = test_points_fn(distribution_a)
                ratio = a.log_prob(points) - b.log_prob(points)
                _check_axes(test_points_reduce_axis, ratio)
                kl = tf.reduce_mean(ratio, axis=test_points_reduce_axis)
            if weight is not None:
                kl = tf.cast(weight, kl.dtype) * kl
            return tf.reduce_sum(kl, name="batch_total_kl_divergence")

    return kl_divergence


@_register
class KLDivergenceRegularizer(keras.regularizers.Regularizer):
    """An activity regularizer: the KL divergence from ``distribution_b`` of the
    distribution a distribution layer output (TFP's class, on Keras 3).

    Args:
        distribution_b: The distribution to compare with (the prior), or a function
            or Keras model that returns it.
        use_exact_kl: The analytic KL (True), or a Monte Carlo estimate (False).
        test_points_reduce_axis: The axes the estimate averages over (default ():
            none); None for every axis.
        test_points_fn: ``fn(distribution)`` giving the points of the estimate; by
            default the layer's own tensor.
        weight: A factor on the divergence (such as 1 / examples per epoch).

    A Keras model given as ``distribution_b`` trains with the model: the layer given
    the regularizer (or ``KLDivergenceAddLoss``) holds it. A distribution's own
    ``tf.Variable``s do not (Keras 3 trains only the variables of its layers; a
    warning says so). Saved, a distribution is its class and parameters' values
    (it loads in safe mode), a function follows the rules of this package's fns.
    """

    def __init__(self, distribution_b, use_exact_kl=False, test_points_reduce_axis=(),
                 test_points_fn=tf.convert_to_tensor, weight=None):
        _check_distribution_b(distribution_b)
        weight = scalar_weight(weight, "weight")
        self.distribution_b = distribution_b
        self.use_exact_kl = validation.boolean(use_exact_kl, "use_exact_kl")
        self.test_points_reduce_axis = _reduce_axis(test_points_reduce_axis)
        self.test_points_fn = validation.required_callable(test_points_fn, "test_points_fn")
        self.weight = weight
        self._kl_divergence_fn = make_kl_divergence_fn(
            distribution_b, self.use_exact_kl, self.test_points_reduce_axis,
            test_points_fn, weight)

    def __call__(self, distribution_a):
        return self._kl_divergence_fn(distribution_a)

    @property
    def prior_model(self):
        """``distribution_b`` if it is a Keras model (or layer), else None: the layer
        given this regularizer holds it, so that its variables train with the model."""
        return self.distribution_b if isinstance(self.distribution_b, keras.layers.Layer) else None

    def get_config(self):
        if self.prior_model is not None:
            distribution_b = keras.saving.serialize_keras_object(self.distribution_b)
        elif isinstance(self.distribution_b, tfd.Distribution):
            distribution_b = _serialize_distribution(self.distribution_b)
        else:
            distribution_b = fn_serialization.serialize_fn(self.distribution_b, "distribution_b")
        return {
            "distribution_b": distribution_b,
            "use_exact_kl": self.use_exact_kl,
            "test_points_reduce_axis": self.test_points_reduce_axis,
            # TFP's default (the layer's own tensor) is saved as None, so it loads anywhere.
            "test_points_fn": None if self.test_points_fn is tf.convert_to_tensor else
            fn_serialization.serialize_fn(self.test_points_fn, "test_points_fn"),
            "weight": serialize_weight(self.weight),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**_deserialize_kl_config(config))


def _deserialize_kl_config(config):
    config = dict(config)
    distribution_b = config["distribution_b"]
    if isinstance(distribution_b, dict) and distribution_b.get("class_name") == _DISTRIBUTION:
        config["distribution_b"] = _deserialize_distribution(distribution_b)
    else:
        config["distribution_b"] = fn_serialization.deserialize_fn(distribution_b,
                                                                   "distribution_b")
    test_points_fn = config.get("test_points_fn")
    config["test_points_fn"] = (tf.convert_to_tensor if test_points_fn is None else
                                fn_serialization.deserialize_fn(test_points_fn, "test_points_fn"))
    config["weight"] = deserialize_weight(config.get("weight"))
    return config


# A TFP distribution given as a prior is saved as its class and parameters: values, not
# code, so it loads in safe mode.
_DISTRIBUTION = "__tfprobr_tfp_distribution__"


def _serialize_distribution(distribution):
    """``distribution`` as its public TFP class and parameters (variables as their values);
    ``UnsavableFnError`` if a parameter is not a value (a bijector, a function)."""

    def encode(value):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, tfd.Distribution):
            name = type(value).__name__.lstrip("_")
            if not isinstance(value, getattr(tfd, name, ())):
                raise TypeError(name)
            return {"class_name": _DISTRIBUTION, "config": {
                "class": name,
                "parameters": {k: encode(v) for k, v in value.parameters.items()}}}
        if isinstance(value, tf.DType):
            return {"dtype": value.name}
        if isinstance(value, (list, tuple)):
            return [encode(item) for item in value]
        if tf.is_tensor(value) or isinstance(value, (np.ndarray, np.generic, tf.Variable,
                                                     tfp.util.DeferredTensor)):
            array = np.asarray(tf.convert_to_tensor(value))
            return {"value": array.tolist(), "dtype": array.dtype.name}
        raise TypeError(type(value).__name__)

    try:
        return encode(distribution)
    except TypeError as error:
        raise fn_serialization.UnsavableFnError(
            f"`distribution_b` cannot be saved: {distribution!r} has a parameter that is not a "
            f"value ({error}). Pass a function that returns it (registered with "
            "keras.saving.register_keras_serializable), or a Keras model whose output is it."
        ) from None


def _deserialize_distribution(config):
    def decode(value):
        if isinstance(value, list):
            return [decode(item) for item in value]
        if not isinstance(value, dict):
            return value
        if value.get("class_name") == _DISTRIBUTION:
            parameters = {k: decode(v) for k, v in value["config"]["parameters"].items()}
            return getattr(tfd, value["config"]["class"])(**parameters)
        if set(value) == {"dtype"}:
            return tf.as_dtype(value["dtype"])
        return tf.constant(value["value"], dtype=value["dtype"])

    return decode(config)


def _check_distribution_b(distribution_b):
    """Warn that a prior's own TensorFlow variables will not train: tf_keras tracked them,
    Keras 3 trains only the ``keras.Variable``s of a model's layers."""
    if isinstance(distribution_b, tf.Module) and not isinstance(distribution_b,
                                                                keras.layers.Layer):
        variables = distribution_b.trainable_variables
        if variables:
            names = ", ".join(v.name for v in variables)
            warnings.warn(
                f"`distribution_b` holds trainable TensorFlow variables ({names}), which Keras 3 "
                "does not train (a Keras 3 model trains only the keras.Variables of its layers; "
                "TFP's tf_keras layers tracked these). For a trainable prior, pass a Keras model "
                "whose output is the distribution, such as keras.Sequential([VariableLayer(...), "
                "DistributionLambda(...)]).",
                UserWarning, stacklevel=3)
    elif not (callable(distribution_b) or isinstance(distribution_b, tfd.Distribution)):
        raise TypeError(
            "`distribution_b` must be a TFP distribution, a Keras model whose output is one, or "
            f"a function returning one. {validation.received('distribution_b', distribution_b)}"
        )


@_register
class KLDivergenceAddLoss(keras.layers.Layer):
    """Adds ``KL(input || distribution_b)`` to the losses and passes its input on.

    The arguments are ``KLDivergenceRegularizer``'s, but ``test_points_reduce_axis``
    defaults to None (every axis), as TFP's layer does.
    """

    def __init__(self, distribution_b, use_exact_kl=False, test_points_reduce_axis=None,
                 test_points_fn=tf.convert_to_tensor, weight=None, **kwargs):
        regularizer = KLDivergenceRegularizer(
            distribution_b, use_exact_kl=use_exact_kl,
            test_points_reduce_axis=test_points_reduce_axis,
            test_points_fn=test_points_fn, weight=weight)
        super().__init__(**keras_kwargs(self, kwargs))
        self._regularizer = regularizer
        if regularizer.prior_model is not None:  # its variables are this layer's
            self._prior_model = regularizer.prior_model

    def build(self, input_shape):
        self.built = True

    def call(self, distribution_a):
        self.add_loss(self._regularizer(distribution_a))
        return distribution_a

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, inputs.dtype)

    def get_config(self):
        config = super().get_config()
        regularizer = self._regularizer.get_config()
        config.update(regularizer)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**_deserialize_kl_config(config))


@_register
class VariableLayer(keras.layers.Layer):
    """A layer whose output is a trainable variable of ``shape``, whatever its input.

    TFP's ``VariableLayer``: the output has no batch axis.

    Args:
        shape: The variable's shape: an integer, or a list of them.
        dtype: Its dtype (default the float type).
        activation: Applied to the variable on the way out.
        initializer, regularizer, constraint: Keras's, for the variable.
    """

    def __init__(self, shape, dtype=None, activation=None, initializer="zeros", regularizer=None,
                 constraint=None, **kwargs):
        given = shape
        if tf.is_tensor(shape):
            shape = tf.get_static_value(shape)
            if shape is None:
                raise ValueError("`shape` must be known statically (TFP's rule). "
                                 f"{validation.received('shape', given)}")
        if isinstance(shape, np.ndarray):
            if shape.ndim > 1:
                raise ValueError("`shape` must be scalar or vector: an integer or a list of "
                                 f"them. {validation.received('shape', given)}")
            shape = shape.reshape(-1).tolist()
        if validation._as_integer(shape) is not None:
            shape = [shape]
        if not isinstance(shape, (list, tuple)) or any(item is None for item in shape):
            raise TypeError("`shape` must be an integer or a list of them. "
                            f"{validation.received('shape', given)}")
        shape = validation.shape(shape, "shape")
        variable_dtype = tensorflow_dtype(dtype, "dtype")
        activation = validation.activation(activation)
        initializer = keras_object(keras.initializers.get, initializer, "initializer",
                                   'a Keras initializer, its name (such as "zeros") or a callable')
        regularizer = keras_object(keras.regularizers.get, regularizer, "regularizer",
                                   'a Keras regularizer, its name (such as "l2"), a callable or '
                                   "None")
        constraint = keras_object(keras.constraints.get, constraint, "constraint",
                                  'a Keras constraint, its name (such as "non_neg"), a callable '
                                  "or None")
        kwargs = keras_kwargs(self, kwargs, distribution_layer=False)
        self._shape = shape
        self._variable_dtype = variable_dtype
        super().__init__(**kwargs)
        self.activation = activation
        self.initializer = initializer
        self.regularizer = regularizer
        self.constraint = constraint
        try:
            self._var = self.add_weight(
                name="constant", shape=self._shape, initializer=self.initializer,
                regularizer=self.regularizer, constraint=self.constraint,
                dtype=self._variable_dtype, trainable=kwargs.get("trainable", True),
            )
        except (TypeError, ValueError) as error:
            raise type(error)(
                f"`initializer` could not make the variable of shape {self._shape}: {error} "
                f"{validation.received('initializer', initializer)}") from None

    def build(self, input_shape):
        self.built = True

    def call(self, inputs):
        del inputs  # the output does not depend on it
        value = tf.convert_to_tensor(self._var.value)
        return value if self.activation is None else self.activation(value)

    def compute_output_shape(self, input_shape):
        return self._shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "shape": list(self._shape),
            "dtype": self._variable_dtype,
            "activation": keras.activations.serialize(self.activation)
            if self.activation is not None else None,
            "initializer": keras.initializers.serialize(self.initializer),
            "regularizer": keras.regularizers.serialize(self.regularizer)
            if self.regularizer is not None else None,
            "constraint": keras.constraints.serialize(self.constraint)
            if self.constraint is not None else None,
        })
        return config


@_register
class DenseVariational(keras.layers.Layer):
    """A dense layer whose kernel and bias are drawn from a posterior that is a Keras model.

    TFP's ``DenseVariational`` (``dense_variational_v2``) on Keras 3.
    ``make_posterior_fn(kernel_size, bias_size, dtype)`` and ``make_prior_fn`` (the
    same arguments) each return a Keras model whose output is a distribution over
    ``kernel_size + bias_size`` numbers (usually a ``VariableLayer`` and a
    ``DistributionLambda``); the layer draws from the posterior, splits the draw
    into kernel and bias, and adds ``kl_weight * KL(posterior || prior)`` (exact,
    or at the draw) to its losses on every call.

    Args:
        units: Output features.
        make_posterior_fn, make_prior_fn: As above.
        kl_weight: A factor on the divergence (such as 1 / examples per epoch).
        kl_use_exact: The analytic KL (True) or its estimate at the draw (False).
        activation, use_bias, activity_regularizer: As Keras's ``Dense``.
    """

    def __init__(self, units, make_posterior_fn, make_prior_fn, kl_weight=None,
                 kl_use_exact=False, activation=None, use_bias=True, activity_regularizer=None,
                 **kwargs):
        if "input_shape" not in kwargs and "input_dim" in kwargs:
            kwargs["input_shape"] = (kwargs.pop("input_dim"),)
        units = validation.positive_integer(units, "units")
        validation.callable_taking(validation.required_callable(
            make_posterior_fn, "make_posterior_fn"), "make_posterior_fn",
            ("kernel_size", "bias_size", "dtype"))
        validation.callable_taking(validation.required_callable(
            make_prior_fn, "make_prior_fn"), "make_prior_fn", ("kernel_size", "bias_size", "dtype"))
        kl_weight = scalar_weight(kl_weight, "kl_weight")
        kl_use_exact = validation.boolean(kl_use_exact, "kl_use_exact")
        activation = validation.activation(activation)
        use_bias = validation.boolean(use_bias, "use_bias")
        kwargs = keras_kwargs(self, dict(kwargs, activity_regularizer=activity_regularizer),
                              distribution_layer=False)
        super().__init__(**kwargs)
        self.units = units
        self.make_posterior_fn = make_posterior_fn
        self.make_prior_fn = make_prior_fn
        self.kl_weight = kl_weight
        self.kl_use_exact = kl_use_exact
        self.activation = activation
        self.use_bias = use_bias
        self._kl_divergence_fn = _kl_penalty(self.kl_use_exact, kl_weight)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape):
        last = input_shape[-1]
        if last is None:
            raise ValueError(
                f"Layer `{self.name}`: the last axis of the inputs to DenseVariational must be "
                f"known. Received: input_shape={tuple(input_shape)}"
            )
        dtype = tf.as_dtype(self.dtype or keras.config.floatx())
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: last})
        bias_size = self.units if self.use_bias else 0
        # TFP builds them under name scopes "posterior" and "prior": the variables' paths say
        # which is which.
        with tf.init_scope():
            with keras.name_scope("posterior"):
                self._posterior = self._model("make_posterior_fn", last * self.units, bias_size,
                                              dtype)
            with keras.name_scope("prior"):
                self._prior = self._model("make_prior_fn", last * self.units, bias_size, dtype)
        self._previous_units = int(last)
        self.built = True

    def _model(self, name, kernel_size, bias_size, dtype):
        model = getattr(self, name)(kernel_size, bias_size, dtype)
        if not isinstance(model, keras.layers.Layer):
            raise TypeError(
                f"`{name}` must return a Keras model (or layer) whose output is a "
                f"distribution, such as keras.Sequential([VariableLayer(...), "
                f"DistributionLambda(...)]). Received: {name} returned "
                f"{type(model).__name__}"
            )
        if not model.built:
            model.build((None, 1))
        return model

    def call(self, inputs):
        dtype = tf.as_dtype(self.compute_dtype)
        inputs = tf.cast(inputs, dtype)
        posterior_output = self._posterior(inputs)
        prior_output = self._prior(inputs)
        posterior = distribution_of(posterior_output)
        if posterior is None or distribution_of(prior_output) is None:
            raise TypeError(
                f"Layer `{self.name}`: the models of `make_posterior_fn` and `make_prior_fn` "
                "must output distributions (end them with a distribution layer)."
            )
        self.add_loss(self._kl_divergence_fn(posterior_output, prior_output))
        weights = tf.cast(tf.convert_to_tensor(posterior_output), dtype)
        previous = self._previous_units
        if self.use_bias:
            kernel, bias = tf.split(weights, [previous * self.units, self.units], axis=-1)
        else:
            kernel, bias = weights, None
        kernel = tf.reshape(kernel, tf.concat([tf.shape(kernel)[:-1],
                                               [previous, self.units]], axis=0))
        outputs = tf.matmul(inputs, kernel)
        if bias is not None:
            outputs = tf.nn.bias_add(outputs, bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units,
            "make_posterior_fn": fn_serialization.serialize_fn(self.make_posterior_fn,
                                                               "make_posterior_fn"),
            "make_prior_fn": fn_serialization.serialize_fn(self.make_prior_fn, "make_prior_fn"),
            "kl_weight": serialize_weight(self.kl_weight),
            "kl_use_exact": self.kl_use_exact,
            "activation": keras.activations.serialize(self.activation)
            if self.activation is not None else None,
            "use_bias": self.use_bias,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("make_posterior_fn", "make_prior_fn"):
            config[name] = fn_serialization.deserialize_fn(config[name], name)
        config["kl_weight"] = deserialize_weight(config.get("kl_weight"))
        return cls(**config)


def _kl_penalty(use_exact_kl, weight):
    """DenseVariational's penalty: ``KL(q || r)``, exact or at q's draw, times ``weight``."""

    def penalty(posterior_output, prior_output):
        q, r = distribution_of(posterior_output), distribution_of(prior_output)
        if use_exact_kl:
            kl = tfd.kl_divergence(q, r)
        else:
            points = tf.convert_to_tensor(posterior_output)
            kl = q.log_prob(points) - r.log_prob(points)
        if weight is not None:
            kl = tf.cast(weight, kl.dtype) * kl
        return tf.reduce_sum(kl)

    return penalty
