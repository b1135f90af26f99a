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
        if not hasattr(kernel_provider, "kernel"):
            raise TypeError(
                "`kernel_provider` must have a `kernel` property giving a TFP PSD kernel (such "
                "as a Keras layer holding the kernel's variables). "
                f"{validation.received('kernel_provider', kernel_provider)}")
        self._kernel_provider = kernel_provider
        items = list(event_shape) if isinstance(event_shape, (list, tuple, np.ndarray)) else [
            event_shape]
        self._event_shape = tf.TensorShape([validation.positive_integer(i, "event_shape")
                                            for i in items])
        self._inducing_index_points_initializer = (
            keras.initializers.get(inducing_index_points_initializer)
            if inducing_index_points_initializer is not None else None)
        noise = unconstrained_observation_noise_variance_initializer
        self._noise_initializer = (None if noise is None else keras.initializers.Constant(noise)
                                   if isinstance(noise, (int, float)) else
                                   keras.initializers.get(noise))
        self._scale_initializer = variational_inducing_observations_scale_initializer
        self._mean_fn = mean_fn
        self._jitter = float(jitter)
        kernel = kernel_provider.kernel
        self._feature_ndims = kernel.feature_ndims
        kwargs.pop("make_distribution_fn", None)
        super().__init__(self._new_from_inputs, convert_to_tensor_fn, name=name,
                         dtype=tf.as_dtype(kernel.dtype).name if kernel.dtype else None, **kwargs)

    def build(self, input_shape):
        dtype = self.variable_dtype
        m = self._num_inducing_points
        features = list(input_shape[-self._feature_ndims:])
        points_shape = self._event_shape.as_list() + [m] + features
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
