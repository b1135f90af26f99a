"""Variational convolutions: the rank shim, and one short class per estimator and rank.

``ConvVariational`` holds what convolutions add to the base (filters, window,
strides, padding, layout, dilation; the kernel's shape; the convolution op).
Each public class below is an estimator mixed into it, plus ``rank``.
"""

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


class ConvVariational(VariationalLayer):
    """N-D variational convolution (not for direct use: subclasses fix ``rank``)."""

    kind = "conv"
    rank = None

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format="channels_last",
        dilation_rate=1,
        activation=None,
        activity_regularizer=None,
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
        rank = self.rank
        geometry = {
            "filters": validation.positive_integer(filters, "filters"),
            "kernel_size": validation.positive_integer_tuple(kernel_size, rank, "kernel_size"),
            "strides": validation.positive_integer_tuple(strides, rank, "strides"),
            "padding": validation.padding(padding),
            "data_format": validation.data_format(data_format),
            "dilation_rate": validation.positive_integer_tuple(
                dilation_rate, rank, "dilation_rate"
            ),
        }
        validation.strides_and_dilation(geometry["strides"], geometry["dilation_rate"])
        super().__init__(
            activation=activation,
            activity_regularizer=activity_regularizer,
            seed=seed,
            fns=fns_from(locals()),
            **kwargs,
        )
        for name, value in geometry.items():
            setattr(self, name, value)
        self.input_spec = keras.layers.InputSpec(ndim=rank + 2)
        self._native_channels_first = False
        self._input_channels = None

    @classmethod
    def _signature_defaults(cls):
        # TFP's signatures show the rank's tuples as defaults.
        default = 1 if cls.rank == 1 else (1,) * cls.rank
        return {"strides": default, "dilation_rate": default}

    @property
    def _output_channels(self):
        return self.filters

    def _parameter_shapes_for(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(
                f"Layer `{self.name}` expects inputs of rank {self.rank + 2} "
                f"(batch, {self._spatial_description()}), but the input has rank "
                f"{len(input_shape)}. Received: input_shape={input_shape}"
            )
        axis = ops.channel_axis(self.data_format)
        input_channels = input_shape[axis]
        if input_channels is None:
            raise ValueError(
                f"Layer `{self.name}` needs a known number of input channels "
                f'(axis {axis} with data_format="{self.data_format}"), but it is None. '
                f"Received: input_shape={input_shape}"
            )
        self._output_spatial_shape(input_shape)  # Validates the spatial sizes.
        self._input_channels = int(input_channels)
        self.input_spec = keras.layers.InputSpec(
            ndim=self.rank + 2, axes={axis: self._input_channels}
        )
        self._native_channels_first = ops.native_channels_first()
        return self.kernel_size + (self._input_channels, self.filters), (self.filters,)

    def _linear(self, inputs, kernel):
        return ops.conv(
            inputs,
            kernel,
            self.strides,
            self.padding,
            self.data_format,
            self.dilation_rate,
            self._native_channels_first,
        )

    def _sign_shape(self, inputs, channels):
        # One sign per example and channel, shared by every position: the
        # kernel is shared over positions, so is its perturbation.
        ones = [1] * self.rank
        batch = tf.shape(inputs)[:1]
        if self.data_format == "channels_first":
            return tf.concat([batch, [channels], ones], 0)
        return tf.concat([batch, ones, [channels]], 0)

    def _bias_data_format(self):
        return self.data_format

    def _smaller_hint(self):
        return "Use fewer `filters` or a smaller `kernel_size`."

    def _size_arguments(self):
        return f"filters={self.filters}, kernel_size={self.kernel_size}"

    def _geometry_arguments(self):
        return (
            f"strides={self.strides}, dilation_rate={self.dilation_rate}, "
            f'padding="{self.padding}", kernel_size={self.kernel_size}'
        )

    def _spatial_description(self):
        dims = ", ".join(("depth", "height", "width")[3 - self.rank :])
        return f"channels, {dims}" if self.data_format == "channels_first" else (
            f"{dims}, channels"
        )

    def _output_spatial_shape(self, input_shape):
        spatial = [input_shape[axis] for axis in ops.spatial_axes(self.rank, self.data_format)]
        output = []
        for axis, size in enumerate(spatial):
            length = ops.conv_output_length(
                size,
                self.kernel_size[axis],
                self.padding,
                self.strides[axis],
                self.dilation_rate[axis],
            )
            if length is not None and length < 1:
                dilated = (self.kernel_size[axis] - 1) * self.dilation_rate[axis] + 1
                raise ValueError(
                    f"Layer `{self.name}`: the kernel (size {dilated} along spatial "
                    f"axis {axis}, after dilation) is larger than the input ({size}) "
                    'with padding="valid", so the output would be empty. Use a '
                    'smaller `kernel_size` or `dilation_rate`, padding="same", or a '
                    f"larger input. Received: input_shape={tuple(input_shape)}, "
                    f"kernel_size={self.kernel_size}, "
                    f"dilation_rate={self.dilation_rate}"
                )
            output.append(length)
        return output

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        spatial = self._output_spatial_shape(input_shape)
        if self.data_format == "channels_first":
            return (input_shape[0], self.filters, *spatial)
        return (input_shape[0], *spatial, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
                "dilation_rate": self.dilation_rate,
            }
        )
        return config


# Estimator x rank. TFP's names (Convolution*) are aliases below.


@_register
@docs.conv_layer
class Conv1DReparameterization(Reparameterization, ConvVariational):
    rank = 1


@_register
@docs.conv_layer
class Conv2DReparameterization(Reparameterization, ConvVariational):
    rank = 2


@_register
@docs.conv_layer
class Conv3DReparameterization(Reparameterization, ConvVariational):
    rank = 3


@_register
@docs.conv_layer
class Conv1DFlipout(Flipout, ConvVariational):
    rank = 1


@_register
@docs.conv_layer
class Conv2DFlipout(Flipout, ConvVariational):
    rank = 2


@_register
@docs.conv_layer
class Conv3DFlipout(Flipout, ConvVariational):
    rank = 3


@_register
@docs.conv_layer
class Conv1DLocalReparameterization(LocalReparameterization, ConvVariational):
    rank = 1


@_register
@docs.conv_layer
class Conv2DLocalReparameterization(LocalReparameterization, ConvVariational):
    rank = 2


@_register
@docs.conv_layer
class Conv3DLocalReparameterization(LocalReparameterization, ConvVariational):
    rank = 3


Convolution1DReparameterization = Conv1DReparameterization
Convolution2DReparameterization = Conv2DReparameterization
Convolution3DReparameterization = Conv3DReparameterization
Convolution1DFlipout = Conv1DFlipout
Convolution2DFlipout = Conv2DFlipout
Convolution3DFlipout = Conv3DFlipout
Convolution1DLocalReparameterization = Conv1DLocalReparameterization
Convolution2DLocalReparameterization = Conv2DLocalReparameterization
Convolution3DLocalReparameterization = Conv3DLocalReparameterization
