"""Keras 3's own ``Conv3D`` expectations, from ``keras/src/layers/convolutional/conv_test.py``.

Its basic, correctness and invalid-argument cases, minus ``groups`` (the
variational layers have no such argument), run on the variational layer made
deterministic.

PRIVATE API: ``keras.src`` is Keras's private API, used here, in tests only,
because Keras's own layer tests use it; the package never imports it.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl.testing import parameterized  # noqa: E402
from helpers import volumes  # noqa: E402
from numpy.lib.stride_tricks import as_strided  # noqa: E402
from keras.src import testing as keras_testing  # noqa: E402
import tfprobr_bridge  # noqa: E402
from tfprobr_bridge import Conv3DReparameterization  # noqa: E402
from upstream import (  # noqa: E402
    plain_convolution,
    plain_bias_add,
    posterior_mean,
    run_harness,
)

# --------------------------------------------------------------------------
# Part 4: Keras 3's Conv3D tests (keras/src/layers/convolutional/conv_test.py).
# --------------------------------------------------------------------------

# Keras's numpy reference convolution, copied from conv_test.py (Apache-2.0)
# because that module cannot be imported under this repo's --strict-markers
# (it marks tests `requires_trainable_backend`). Reduced to one group.


def _same_padding(input_size, kernel_size, stride):
    if input_size % stride == 0:
        padding = max(kernel_size - stride, 0)
    else:
        padding = max(kernel_size - (input_size % stride), 0)
    return padding // 2, padding - padding // 2


def np_conv3d(x, kernel_weights, bias_weights, strides, padding, data_format, dilation_rate):
    if data_format == "channels_first":
        x = x.transpose((0, 2, 3, 4, 1))
    if isinstance(strides, (tuple, list)):
        h_stride, w_stride, d_stride = strides
    else:
        h_stride = w_stride = d_stride = strides
    if isinstance(dilation_rate, (tuple, list)):
        h_dilation, w_dilation, d_dilation = dilation_rate
    else:
        h_dilation = w_dilation = d_dilation = dilation_rate

    h_kernel, w_kernel, d_kernel, ch_in, ch_out = kernel_weights.shape

    if h_dilation > 1 or w_dilation > 1 or d_dilation > 1:
        new_h_kernel = h_kernel + (h_dilation - 1) * (h_kernel - 1)
        new_w_kernel = w_kernel + (w_dilation - 1) * (w_kernel - 1)
        new_d_kernel = d_kernel + (d_dilation - 1) * (d_kernel - 1)
        new_kernel_weights = np.zeros(
            (new_h_kernel, new_w_kernel, new_d_kernel, ch_in, ch_out),
            dtype=kernel_weights.dtype,
        )
        new_kernel_weights[::h_dilation, ::w_dilation, ::d_dilation] = kernel_weights
        kernel_weights = new_kernel_weights
        h_kernel, w_kernel, d_kernel = kernel_weights.shape[:3]

    if padding == "same":
        n_batch, h_x, w_x, d_x, _ = x.shape
        npad = [(0, 0)] * x.ndim
        npad[1] = _same_padding(h_x, h_kernel, h_stride)
        npad[2] = _same_padding(w_x, w_kernel, w_stride)
        npad[3] = _same_padding(d_x, d_kernel, d_stride)
        x = np.pad(x, pad_width=npad, mode="constant", constant_values=0)

    n_batch, h_x, w_x, d_x, _ = x.shape
    h_out = int((h_x - h_kernel) / h_stride) + 1
    w_out = int((w_x - w_kernel) / w_stride) + 1
    d_out = int((d_x - d_kernel) / d_stride) + 1

    x = np.ascontiguousarray(x)
    stride_shape = (n_batch, h_out, w_out, d_out, h_kernel, w_kernel, d_kernel, ch_in)
    element_strides = (
        x.strides[0],
        h_stride * x.strides[1],
        w_stride * x.strides[2],
        d_stride * x.strides[3],
        x.strides[1],
        x.strides[2],
        x.strides[3],
        x.strides[4],
    )
    inner_dim = h_kernel * w_kernel * d_kernel * ch_in
    x_strided = as_strided(x, shape=stride_shape, strides=element_strides).reshape(
        -1, inner_dim
    )
    out = x_strided @ kernel_weights.reshape(-1, ch_out) + bias_weights
    out = out.reshape(n_batch, h_out, w_out, d_out, ch_out)
    if data_format == "channels_first":
        out = out.transpose((0, 4, 1, 2, 3))
    return out


# ConvBasicTest.test_conv3d_basic's table. Keras's rows 2 and 3 use groups=2;
# our layer has no `groups`, so they run with one group (a full convolution).
# The output shape does not depend on groups, so the expected shapes are
# Keras's own.
KERAS_CONV3D_BASIC = [
    (
        "valid",
        dict(filters=5, kernel_size=2, strides=1, padding="valid",
             data_format="channels_last", dilation_rate=1),
        (3, 5, 5, 5, 4),
        (3, 4, 4, 4, 5),
    ),
    (
        "same_dilated",
        dict(filters=6, kernel_size=2, strides=1, padding="same",
             data_format="channels_last", dilation_rate=(2, 2, 2)),
        (3, 4, 4, 4, 4),
        (3, 4, 4, 4, 6),
    ),
    (
        "valid_strided",
        dict(filters=6, kernel_size=(2, 2, 3), strides=(2, 1, 2), padding="valid",
             data_format="channels_last", dilation_rate=(1, 1, 1)),
        (3, 5, 5, 5, 4),
        (3, 2, 4, 2, 6),
    ),
]

# ConvCorrectnessTest.test_conv3d's table, groups dropped as above.
KERAS_CONV3D_CORRECTNESS = [
    ("valid", dict(filters=5, kernel_size=2, strides=1, padding="valid",
                   data_format="channels_last", dilation_rate=1)),
    ("same_dilated_222", dict(filters=6, kernel_size=2, strides=1, padding="same",
                              data_format="channels_last", dilation_rate=(2, 2, 2))),
    ("same_dilated_234", dict(filters=6, kernel_size=2, strides=1, padding="same",
                              data_format="channels_last", dilation_rate=(2, 3, 4))),
    ("valid_strided", dict(filters=6, kernel_size=(2, 2, 3), strides=(2, 1, 2),
                           padding="valid", data_format="channels_last",
                           dilation_rate=(1, 1, 1))),
    ("valid_strided_channels_first", dict(filters=6, kernel_size=(2, 2, 3),
                                          strides=(2, 1, 2), padding="valid",
                                          data_format="channels_first",
                                          dilation_rate=(1, 1, 1))),
]

# Two ways to make the kernel deterministic, so the layer is a plain Conv3D.
DETERMINISTIC_POSTERIORS = [
    # The default mean-field Normal posterior, used through its mean.
    ("posterior_mean", dict(kernel_posterior_tensor_fn=posterior_mean)),
    # A point-mass posterior. TFP has no KL(Deterministic || Normal), so no prior.
    (
        "deterministic_posterior",
        dict(
            kernel_posterior_fn=tfprobr_bridge.default_mean_field_normal_fn(is_singular=True),
            kernel_prior_fn=None,
        ),
    ),
]


def _product(cases, variants):
    return [
        (f"{name}_{variant}", kwargs, variant_kwargs)
        for name, kwargs in cases
        for variant, variant_kwargs in variants
    ]


class KerasConv3DTest(keras_testing.TestCase):
    """Keras 3's Conv3D expectations, on Conv3DReparameterization."""

    @parameterized.named_parameters(*KERAS_CONV3D_BASIC)
    def test_conv3d_basic(self, init_kwargs, input_shape, output_shape):
        """Port of ``ConvBasicTest.test_conv3d_basic`` (groups dropped).

        Keras expects 2 trainable weights (kernel, bias) and no loss; a
        Bayesian layer has 3 (kernel loc and scale, bias loc) and adds the
        kernel KL. No seed: the harness compares no values across calls.
        """
        run_harness(
            self,
            init_kwargs,
            trainable=3,
            seed_generators=0,
            losses=1,
            input_shape=input_shape,
            expected_output_shape=output_shape,
        )

    @parameterized.named_parameters(*KERAS_CONV3D_BASIC)
    def test_conv3d_basic_shapes_with_unknown_sizes(self, init_kwargs, input_shape, output_shape):
        """The same table, symbolically with unknown batch and spatial sizes.

        compute_output_shape and a functional model agree with Keras's shapes
        (spatial sizes None when unknown, as Keras's Conv3D gives).
        """
        layer = Conv3DReparameterization(**init_kwargs)
        self.assertEqual(layer.compute_output_shape(input_shape), output_shape)
        symbolic = keras.Input(shape=(None, None, None, input_shape[-1]))
        out = Conv3DReparameterization(**init_kwargs)(symbolic)
        self.assertEqual(tuple(out.shape), (None, None, None, None, output_shape[-1]))
        reference = keras.layers.Conv3D(**init_kwargs)(symbolic)
        self.assertEqual(tuple(out.shape), tuple(reference.shape))
        self.assertEqual(
            layer.compute_output_shape(input_shape),
            keras.layers.Conv3D(**init_kwargs).compute_output_shape(input_shape),
        )

    @parameterized.named_parameters(*_product(KERAS_CONV3D_CORRECTNESS, DETERMINISTIC_POSTERIORS))
    def test_conv3d(self, init_kwargs, posterior_kwargs):
        """Port of ``ConvCorrectnessTest.test_conv3d`` (groups dropped).

        Keras assigns random values to ``kernel`` and ``bias`` and compares with
        a reference convolution. Here the kernel is deterministic (see
        DETERMINISTIC_POSTERIORS) and the values go to its ``loc`` variables;
        the references are TensorFlow's convolution and Keras's numpy one.
        """
        layer = Conv3DReparameterization(**init_kwargs, **posterior_kwargs)
        rng = np.random.default_rng(1)
        # Keras's input shape, for both data formats (channels_first reads it
        # as 8 channels of 8x8x4 volumes, as Keras's test does).
        inputs = rng.normal(size=[2, 8, 8, 8, 4]).astype("float32")
        layer.build(input_shape=inputs.shape)

        weights = {w.name: w for w in layer.weights}
        kernel_shape = weights["kernel_posterior_loc"].shape
        kernel_weights = rng.normal(size=kernel_shape).astype("float32")
        bias_weights = rng.normal(size=(init_kwargs["filters"],)).astype("float32")
        weights["kernel_posterior_loc"].assign(kernel_weights)
        weights["bias_posterior_loc"].assign(bias_weights)

        outputs = layer(inputs)
        expected = plain_bias_add(
            plain_convolution(
                inputs,
                kernel_weights,
                init_kwargs["data_format"],
                padding=init_kwargs["padding"],
                strides=init_kwargs["strides"],
                dilations=init_kwargs["dilation_rate"],
            ),
            bias_weights,
            init_kwargs["data_format"],
        )
        self.assertAllClose(outputs, expected, rtol=1e-5, atol=1e-5)
        # Keras's own numpy reference, with its tolerance.
        expected_np = np_conv3d(
            inputs,
            kernel_weights,
            bias_weights,
            strides=init_kwargs["strides"],
            padding=init_kwargs["padding"],
            data_format=init_kwargs["data_format"],
            dilation_rate=init_kwargs["dilation_rate"],
        )
        self.assertAllClose(outputs, expected_np, rtol=1e-3, atol=1e-4)
        # Deterministic: a second call gives the same output.
        self.assertAllClose(layer(inputs), outputs, rtol=0, atol=0)

    def test_conv_symbolic_invalid_configuration(self):
        """Port of ``test_conv_symbolic_invalid_configuration`` (its Conv3D row).

        A dilated kernel (2 dilated by 10: 11) larger than the input (10)
        with valid padding: a ValueError on the symbolic call.
        """
        inputs = keras.layers.Input(shape=(10, 10, 10, 3))
        layer = Conv3DReparameterization(
            filters=1, kernel_size=(2, 2, 2), dilation_rate=(10, 10, 10)
        )
        with self.assertRaises(ValueError):
            layer(inputs)

    def test_conv_raises_exception_on_zero_dims(self):
        """3-D version of ``test_conv_raises_exception_on_zero_dims`` (a Conv2D test).

        Keras accepts any exception type; ours is a ValueError.
        """
        x = np.random.default_rng(0).random((3, 4, 4, 4, 4)).astype("float32")
        layer = Conv3DReparameterization(6, [5, 5, 5], 1, "valid")
        with self.assertRaises(ValueError):
            layer(x)

    def test_bad_init_args(self):
        """Port of ``test_bad_init_args`` (its non-``groups`` parts, in 3-D).

        Keras's exact messages are Keras's; this layer raises the same error
        type naming the same argument.
        """
        # `filters` is not positive.
        with self.assertRaisesRegex(ValueError, "`filters`.*Received: filters=0"):
            Conv3DReparameterization(filters=0, kernel_size=1)
        # `kernel_size` has 0.
        with self.assertRaisesRegex(ValueError, r"`kernel_size`.*\(1, 0, 1\)"):
            Conv3DReparameterization(filters=2, kernel_size=(1, 0, 1))
        # `strides` has 0.
        with self.assertRaisesRegex(ValueError, r"`strides`.*\(1, 0, 1\)"):
            Conv3DReparameterization(filters=2, kernel_size=(2, 2, 2), strides=(1, 0, 1))
        # `dilation_rate > 1` while `strides > 1`.
        with self.assertRaisesRegex(ValueError, "`strides`.*`dilation_rate`"):
            Conv3DReparameterization(
                filters=2, kernel_size=(2, 2, 2), strides=2, dilation_rate=(2, 1, 1)
            )
