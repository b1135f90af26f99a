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

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfprobr_bridge import validation
from tfprobr_bridge.layers import fn_serialization
from tfprobr_bridge.layers.distribution import distribution_of

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
            b = distribution_of(distribution_b(0.0))
        elif callable(distribution_b) and not isinstance(distribution_b, tfd.Distribution):
            b = distribution_of(distribution_b())
        else:
            b = distribution_of(distribution_b)
        with tf.name_scope("kldivergence_loss"):
            if use_exact_kl:
                kl = tfd.kl_divergence(a, b)
            else:
                points = test_points_fn(distribution_a)
                kl = tf.reduce_mean(a.log_prob(points) - b.log_prob(points),
                                    axis=test_points_reduce_axis)
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
    """

    def __init__(self, distribution_b, use_exact_kl=False, test_points_reduce_axis=(),
                 test_points_fn=tf.convert_to_tensor, weight=None):
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

    def get_config(self):
        return {
            "distribution_b": fn_serialization.serialize_fn(self.distribution_b,
                                                            "distribution_b"),
            "use_exact_kl": self.use_exact_kl,
            "test_points_reduce_axis": self.test_points_reduce_axis,
            "test_points_fn": fn_serialization.serialize_fn(self.test_points_fn,
                                                            "test_points_fn"),
            "weight": self.weight,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("distribution_b", "test_points_fn"):
            config[name] = fn_serialization.deserialize_fn(config[name], name)
        return cls(**config)


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
        super().__init__(**kwargs)
        self._regularizer = regularizer

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
        config = dict(config)
        for name in ("distribution_b", "test_points_fn"):
            config[name] = fn_serialization.deserialize_fn(config[name], name)
        return cls(**config)


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
        shape = tf.get_static_value(shape) if tf.is_tensor(shape) else shape
        array = np.asarray(shape)
        if array.ndim > 1:
            raise ValueError(f"`shape` must be an integer or a vector of them. "
                             f"{validation.received('shape', shape)}")
        self._shape = validation.shape(array.reshape(-1).tolist(), "shape")
        self._variable_dtype = None if dtype is None else tf.as_dtype(dtype).name
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.initializer = keras.initializers.get(initializer)
        self.regularizer = keras.regularizers.get(regularizer)
        self.constraint = keras.constraints.get(constraint)
        self._var = self.add_weight(
            name="constant", shape=self._shape, initializer=self.initializer,
            regularizer=self.regularizer, constraint=self.constraint,
            dtype=self._variable_dtype, trainable=kwargs.get("trainable", True),
        )

    def build(self, input_shape):
        self.built = True

    def call(self, inputs):
        del inputs  # the output does not depend on it
        return self.activation(tf.convert_to_tensor(self._var.value))

    def compute_output_shape(self, input_shape):
        return self._shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "shape": list(self._shape),
            "dtype": self._variable_dtype,
            "activation": keras.activations.serialize(self.activation),
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
        validation.required_callable(make_posterior_fn, "make_posterior_fn")
        validation.required_callable(make_prior_fn, "make_prior_fn")
        super().__init__(activity_regularizer=validation.activity_regularizer(
            activity_regularizer), **kwargs)
        self.units = units
        self.make_posterior_fn = make_posterior_fn
        self.make_prior_fn = make_prior_fn
        self.kl_weight = kl_weight
        self.kl_use_exact = validation.boolean(kl_use_exact, "kl_use_exact")
        self.activation = validation.activation(activation)
        self.use_bias = validation.boolean(use_bias, "use_bias")
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
        with tf.init_scope():
            self._posterior = self._model("make_posterior_fn", last * self.units, bias_size, dtype)
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
            "kl_weight": self.kl_weight,
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
