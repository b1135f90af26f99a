"""The three gradient estimators: how a layer turns inputs and its posterior into outputs.

Each overrides ``_apply_variational_kernel`` (TFP's hook) and nothing else;
the rank shim supplies ``_linear`` (a convolution or a matrix product) and
``_sign_shape``. Mixed in front of a rank shim, an estimator makes a layer.
"""

import tensorflow as tf

from tfprobr_bridge.layers import defaults
from tfprobr_bridge.layers import ops
from tfprobr_bridge.layers import seeding
from tfprobr_bridge.layers.defaults import tfd


class Reparameterization:
    """One kernel drawn per call and shared by the batch (Kingma and Welling, 2014).

    ``outputs = linear(inputs, kernel)``, ``kernel ~ posterior``. Works with any
    posterior; the divergence fn receives the drawn kernel.
    """

    estimator = "reparameterization"
    estimator_id = "reparameterization"
    _draws_kernel = True

    def _apply_variational_kernel(self, inputs):
        kernel = self._draw("kernel_posterior_tensor_fn", self.kernel_posterior,
                            self._parameter_shapes[1], "the kernel")
        self._record(kernel_tensor=kernel)
        return self._linear(inputs, tf.cast(kernel, inputs.dtype))


class Flipout:
    """Pseudo-independent weight perturbations per example (Wen et al., 2018).

    With the posterior ``Normal(mean, scale)``, one perturbation ``delta ~
    Normal(0, scale)`` is drawn per call and decorrelated across the batch by
    random signs ``s_in`` on the input channels and ``s_out`` on the output
    channels, drawn per example (and shared over a convolution's positions):
    ``outputs = linear(x, mean) + linear(x * s_in, delta) * s_out``. Each
    example sees a kernel distributed as the posterior, but the gradient's
    variance falls with the batch size. Needs an Independent Normal posterior;
    the divergence fn receives None as its sample (as in TFP).
    """

    estimator = "Flipout"
    estimator_id = "flipout"
    _takes_tfp_seed = True

    def _apply_variational_kernel(self, inputs):
        mean, scale = self._kernel_mean_and_scale()
        perturbation_distribution = tfd.Normal(loc=tf.zeros_like(mean), scale=scale)
        perturbation = self._draw("kernel_posterior_tensor_fn", perturbation_distribution,
                                  self._parameter_shapes[1], "a perturbation of the kernel")
        self._record(affine=perturbation_distribution, affine_tensor=perturbation)
        dtype = inputs.dtype
        seed = seeding.current_sampling_seed()
        sign_input = ops.rademacher(self._sign_shape(inputs, self._input_channels), dtype, seed)
        sign_output = ops.rademacher(self._sign_shape(inputs, self._output_channels), dtype, seed)
        outputs = self._linear(inputs, tf.cast(mean, dtype))
        perturbed = self._linear(inputs * sign_input, tf.cast(perturbation, dtype))
        return outputs + perturbed * sign_output


class LocalReparameterization:
    """Noise drawn per output element instead of per weight (Kingma, Salimans and Welling, 2015).

    With the posterior ``Normal(mean, scale)`` over independent weights, each
    output is Normal with mean ``linear(x, mean)`` and variance
    ``linear(x**2, scale**2)``; the layer draws the outputs from that
    distribution directly (with ``kernel_posterior_tensor_fn``). For dense
    layers this is exact; for convolutions it is exact per output element,
    while neighbouring outputs, which share weights, are drawn independently.
    Needs an Independent Normal posterior; the divergence fn receives None as
    its sample (as in TFP).
    """

    estimator = "local reparameterization"
    estimator_id = "local_reparameterization"

    def _apply_variational_kernel(self, inputs):
        mean, scale = self._kernel_mean_and_scale()
        dtype = inputs.dtype
        mean = tf.cast(mean, dtype)
        variance_kernel = tf.cast(tf.square(scale), dtype)
        output_mean = self._linear(inputs, mean)
        output_variance = self._linear(tf.square(inputs), variance_kernel)
        # Where every input in a window is zero (padding, background) the
        # variance is 0 and sqrt's gradient infinite; the floor keeps it finite.
        floor = _variance_floor(dtype)
        output_scale = tf.sqrt(tf.maximum(output_variance, floor))
        affine = tfd.Normal(loc=output_mean, scale=output_scale)
        if self.kernel_posterior_tensor_fn is defaults.sample:
            # The default draw, with the draw and its gradient fused (the hot path).
            noise = ops.standard_normal(
                tf.shape(output_mean), dtype, seeding.current_sampling_seed()
            )
            outputs = ops.normal_with_scale_gradient(output_mean, output_variance, noise, floor)
        else:
            outputs = self._draw("kernel_posterior_tensor_fn", affine, output_mean.shape,
                                 "the layer's outputs")
        self._record(affine=affine, affine_tensor=outputs)
        return tf.cast(outputs, dtype)


def _variance_floor(dtype):
    """The smallest positive normal number of ``dtype`` (bfloat16 has float32's range)."""
    return 6.2e-5 if dtype == tf.float16 else 1.2e-38
