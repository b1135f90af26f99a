"""Variational dense layers: the rank shim, and one short class per estimator."""

import keras
import tensorflow as tf

from tfprobr_bridge.layers import docs
from tfprobr_bridge.layers import ops
from tfprobr_bridge import validation
from tfprobr_bridge.layers.estimators import Flipout
from tfprobr_bridge.layers.estimators import LocalReparameterization
from tfprobr_bridge.layers.estimators import Reparameterization
from tfprobr_bridge.layers.base import DEFAULT_FNS
from tfprobr_bridge.layers.base import VariationalLayer
from tfprobr_bridge.layers.base import fns_from

_register = keras.saving.register_keras_serializable(package="tfprobr_bridge")


class DenseVariational(VariationalLayer):
    """Variational densely-connected layer (not for direct use)."""

    kind = "dense"
    rank = None

    def __init__(
        self,
        units,
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
        seed=None,
        **kwargs,
    ):
        units = validation.positive_integer(units, "units")
        super().__init__(
            activation=activation,
            activity_regularizer=activity_regularizer,
            trainable=validation.boolean(trainable, "trainable"),
            seed=seed,
            fns=fns_from(locals()),
            **kwargs,
        )
        self.units = units
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        self._input_channels = None

    @property
    def _output_channels(self):
        return self.units

    def _parameter_shapes_for(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                f"Layer `{self.name}` expects inputs of rank 2 or more (batch, ..., "
                f"features), but the input has rank {len(input_shape)}. "
                f"Received: input_shape={input_shape}"
            )
        if input_shape[-1] is None:
            raise ValueError(
                f"Layer `{self.name}` needs a known number of input features (the last "
                f"axis), but it is None. Received: input_shape={input_shape}"
            )
        self._input_channels = int(input_shape[-1])
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: self._input_channels})
        return (self._input_channels, self.units), (self.units,)

    def _linear(self, inputs, kernel):
        return ops.dense(inputs, kernel)

    def _sign_shape(self, inputs, channels):
        # One sign per example and feature (TFP's DenseFlipout).
        return tf.concat([tf.shape(inputs)[:-1], [channels]], 0)

    def _smaller_hint(self):
        return "Use fewer `units`."

    def _size_arguments(self):
        return f"units={self.units}"

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 2 or input_shape[-1] is None:
            self._parameter_shapes_for(input_shape)  # raises, naming the problem
        return (*input_shape[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config["units"] = self.units
        return config


@_register
@docs.dense_layer
class DenseReparameterization(Reparameterization, DenseVariational):
    pass


@_register
@docs.dense_layer
class DenseFlipout(Flipout, DenseVariational):
    pass


@_register
@docs.dense_layer
class DenseLocalReparameterization(LocalReparameterization, DenseVariational):
    pass
