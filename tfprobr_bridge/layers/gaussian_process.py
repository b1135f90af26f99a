"""TFP's variational Gaussian process layer, on Keras 3.

Its output is a distribution over functions at the layer's inputs: a
variational Gaussian process (Titsias, 2009; Hensman et al., 2013) with
``num_inducing_points`` trainable inducing points, whose covariance comes from
``kernel_provider.kernel`` (a Keras layer whose ``kernel`` property is a TFP
positive semi-definite kernel, so that its parameters train with the model).
Train with the distribution's ``variational_loss(y, kl_weight)`` as the loss.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfprobr_bridge import validation
from tfprobr_bridge.layers import fn_serialization
from tfprobr_bridge.layers.distribution import DistributionLambda
from tfprobr_bridge.layers.distribution import keras_object

tfb = tfp.bijectors
tfd = tfp.distributions
_register = keras.saving.register_keras_serializable(package="tfprobr_bridge")


@_register
class VariationalGaussianProcess(DistributionLambda):
    """A variational Gaussian process over the inputs (TFP's signature and parameters).

    Args:
        num_inducing_points: How many inducing points.
        kernel_provider: A Keras layer with a ``kernel`` property (a TFP PSD kernel).
        event_shape: The process's event shape (independent processes), default (1,).
        inducing_index_points_initializer: Keras initializer of the inducing points.
        unconstrained_observation_noise_variance_initializer: Keras initializer of the
            noise variance before a softplus; None for no noise variable.
        variational_inducing_observations_scale_initializer: Keras initializer of the
            variational scale (default 1e-5 times the identity).
        mean_fn: The prior mean function; None for a trainable constant.
        jitter: Added to the diagonal of covariances.
        convert_to_tensor_fn: As for ``DistributionLambda``.
    """

    def __init__(self, num_inducing_points, kernel_provider, event_shape=(1,),
                 inducing_index_points_initializer=None,
                 unconstrained_observation_noise_variance_initializer=-10.0,
                 variational_inducing_observations_scale_initializer=None, mean_fn=None,
                 jitter=1e-6, convert_to_tensor_fn=tfd.Distribution.sample, name=None, **kwargs):
        self._num_inducing_points = validation.positive_integer(num_inducing_points,
                                                                "num_inducing_points")
        try:
            kernel = kernel_provider.kernel
        except AttributeError:
            raise TypeError(
                "`kernel_provider` must have a `kernel` property giving a TFP PSD kernel (such "
                "as a Keras layer holding the kernel's variables). "
                f"{validation.received('kernel_provider', kernel_provider)}") from None
        except Exception as error:  # a provider whose kernel needs its weights built, ...
            raise TypeError(
                "`kernel_provider.kernel` must give a TFP PSD kernel when the layer is made, "
                f"but raised {type(error).__name__}: {error}. "
                f"{validation.received('kernel_provider', kernel_provider)}") from None
        if not isinstance(kernel, tfp.math.psd_kernels.PositiveSemidefiniteKernel):
            raise TypeError(
                "`kernel_provider.kernel` must be a TFP PSD kernel (such as "
                "tfp.math.psd_kernels.ExponentiatedQuadratic), but is "
                f"{type(kernel).__name__}. "
                f"{validation.received('kernel_provider', kernel_provider)}")
        if isinstance(event_shape, tf.TensorShape):
            event_shape = event_shape.as_list()
        items = (list(event_shape) if isinstance(event_shape, (list, tuple, np.ndarray))
                 else [event_shape])
        if any(validation._as_integer(i) is None or validation._as_integer(i) < 1
               for i in items):
            error_type = ValueError if all(validation._is_number(i) for i in items) else TypeError
            raise error_type("`event_shape` must be a positive integer or a list of them. "
                             f"{validation.received('event_shape', event_shape)}")
        event_shape = tf.TensorShape([validation._as_integer(i) for i in items])
        initializer = "a Keras initializer, its name, a callable or None"
        points_initializer = (
            keras_object(keras.initializers.get, inducing_index_points_initializer,
                         "inducing_index_points_initializer", initializer)
            if inducing_index_points_initializer is not None else None)
        noise = unconstrained_observation_noise_variance_initializer
        noise_initializer = (
            None if noise is None else keras.initializers.Constant(float(noise))
            if validation._is_number(noise) else
            keras_object(keras.initializers.get, noise,
                         "unconstrained_observation_noise_variance_initializer",
                         "a number, " + initializer))
        scale_initializer = variational_inducing_observations_scale_initializer
        if scale_initializer is not None:
            scale_initializer = keras_object(
                keras.initializers.get, scale_initializer,
                "variational_inducing_observations_scale_initializer", initializer)
        validation.optional_callable(mean_fn, "mean_fn")
        if not validation._is_number(jitter) or not np.isfinite(jitter) or jitter < 0:
            error_type = ValueError if validation._is_number(jitter) else TypeError
            raise error_type("`jitter` must be a non-negative number. "
                             f"{validation.received('jitter', jitter)}")
        self._kernel_provider = kernel_provider
        self._event_shape = event_shape
        self._inducing_index_points_initializer = points_initializer
        self._noise_initializer = noise_initializer
        self._scale_initializer = scale_initializer
        self._mean_fn = mean_fn
        self._jitter = float(jitter)
        self._feature_ndims = kernel.feature_ndims
        kwargs.pop("make_distribution_fn", None)
        kernel_dtype = tf.as_dtype(kernel.dtype).name if kernel.dtype else None
        given_dtype = kwargs.pop("dtype", None)
        if given_dtype is not None and not (isinstance(given_dtype, str)
                                            and given_dtype == kernel_dtype):
            raise ValueError(
                "`dtype` of a VariationalGaussianProcess is its kernel's "
                f"({kernel_dtype}): leave it unset. {validation.received('dtype', given_dtype)}")
        super().__init__(self._new_from_inputs, convert_to_tensor_fn, name=name,
                         dtype=kernel_dtype, **kwargs)

    def build(self, input_shape):
        dtype = self.variable_dtype
        m = self._num_inducing_points
        features = list(input_shape[-self._feature_ndims:])
        points_shape = self._event_shape.as_list() + [m] + features
        # The largest variable, the inducing observations' scale: event_shape x m x m.
        if int(np.prod(self._event_shape.as_list(), dtype=np.float64)) * m * m > 2**31 - 1:
            raise ValueError(
                f"Layer `{self.name}`: `event_shape` x `num_inducing_points`^2 must be at most "
                "2^31 - 1 (TensorFlow indexes a variable with 32-bit integers). Received: "
                f"event_shape={tuple(self._event_shape.as_list())}, num_inducing_points={m}")
        if self._mean_fn is None:
            self._mean = self.add_weight(name="mean", shape=(1,), initializer="zeros",
                                         dtype=dtype)
        self._noise = None
        if self._noise_initializer is not None:
            self._noise = self.add_weight(name="observation_noise_variance", shape=(),
                                          initializer=self._noise_initializer, dtype=dtype)
        self._inducing_index_points = self.add_weight(
            name="inducing_index_points", shape=points_shape,
            initializer=self._inducing_index_points_initializer or "glorot_uniform", dtype=dtype)
        self._loc = self.add_weight(
            name="variational_inducing_observations_loc",
            shape=self._event_shape.as_list() + [m], initializer="zeros", dtype=dtype)
        scale_initializer = self._scale_initializer
        if scale_initializer is None:
            value = 1e-5 * np.ones(self._event_shape.as_list() + [1, 1]) * np.eye(m)
            scale_initializer = keras.initializers.Constant(value.astype(dtype))
        self._scale = self.add_weight(
            name="variational_inducing_observations_scale",
            shape=self._event_shape.as_list() + [m, m], initializer=scale_initializer, dtype=dtype)
        self.built = True

    def _new_from_inputs(self, inputs):
        mean_fn = self._mean_fn
        if mean_fn is None:
            mean = self._mean.value

            def mean_fn(x):
                return mean
        else:
            mean_fn = _checked_mean_fn(mean_fn, self._feature_ndims)
        noise = (None if self._noise is None else
                 tfp.util.DeferredTensor(self._noise.value, tf.nn.softplus))
        return self.new(tf.convert_to_tensor(inputs), self._kernel_provider, self._event_shape,
                        self._inducing_index_points.value, mean_fn, self._loc.value,
                        self._scale.value, noise, self._jitter)

    @staticmethod
    def new(x, kernel_provider, event_shape, inducing_index_points, mean_fn,
            variational_inducing_observations_loc, variational_inducing_observations_scale,
            observation_noise_variance, jitter=1e-6, name=None):
        """TFP's ``new``: the process at ``x``, its event ``[points, *event_shape]``."""
        vgp = tfd.VariationalGaussianProcess(
            kernel=kernel_provider.kernel, index_points=x,
            inducing_index_points=inducing_index_points,
            variational_inducing_observations_loc=variational_inducing_observations_loc,
            variational_inducing_observations_scale=variational_inducing_observations_scale,
            mean_fn=mean_fn, observation_noise_variance=observation_noise_variance,
            jitter=jitter)
        independent = tfd.Independent(vgp, reinterpreted_batch_ndims=1)
        transpose = tfb.Transpose(rightmost_transposed_ndims=2)
        distribution = tfd.TransformedDistribution(independent, bijector=transpose)

        def variational_loss(observations, kl_weight=1.0):
            return vgp.variational_loss(transpose.forward(observations), kl_weight=kl_weight)

        distribution.variational_loss = variational_loss
        distribution.surrogate_posterior_kl_divergence_prior = (
            vgp.surrogate_posterior_kl_divergence_prior)
        return distribution

    def get_config(self):
        config = keras.layers.Layer.get_config(self)
        config.pop("dtype", None)  # the kernel's
        config.update({
            "num_inducing_points": self._num_inducing_points,
            "kernel_provider": keras.saving.serialize_keras_object(self._kernel_provider),
            "event_shape": self._event_shape.as_list(),
            "inducing_index_points_initializer": keras.initializers.serialize(
                self._inducing_index_points_initializer)
            if self._inducing_index_points_initializer is not None else None,
            "unconstrained_observation_noise_variance_initializer": keras.initializers.serialize(
                self._noise_initializer) if self._noise_initializer is not None else None,
            "variational_inducing_observations_scale_initializer":
                keras.initializers.serialize(self._scale_initializer)
                if self._scale_initializer is not None else None,
            "mean_fn": fn_serialization.serialize_fn(self._mean_fn, "mean_fn"),
            "jitter": self._jitter,
            "convert_to_tensor_fn": fn_serialization.serialize_fn(self.convert_to_tensor_fn,
                                                                  "convert_to_tensor_fn"),
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["kernel_provider"] = keras.saving.deserialize_keras_object(config["kernel_provider"])
        for name in ("mean_fn", "convert_to_tensor_fn"):
            config[name] = fn_serialization.deserialize_fn(config[name], name)
        return cls(**config)


def _checked_mean_fn(fn, feature_ndims):
    """``fn`` whose value must be a mean per index point (TensorFlow's broadcasting error
    would name neither the argument nor the layer)."""

    def mean_fn(x):
        value = tf.convert_to_tensor(fn(x), dtype=x.dtype)
        points = x.shape[:-feature_ndims] if feature_ndims else x.shape
        try:
            broadcast = tf.broadcast_static_shape(value.shape, points)
        except ValueError:
            broadcast = None
        if broadcast is None or broadcast.rank != points.rank:
            raise ValueError(
                "`mean_fn` must return the prior mean at each index point: a shape "
                f"broadcastable to {tuple(points)} for index points of shape {tuple(x.shape)}, "
                f"but it returned shape {tuple(value.shape)}. "
                f"Received: mean_fn={fn_serialization.fn_repr(fn)}")
        return value

    return mean_fn

