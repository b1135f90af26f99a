"""Keras 3's layer test harness (``keras.src.testing.TestCase.run_layer_test``) on
several configurations of ``Conv3DReparameterization``.

PRIVATE API: ``keras.src`` is Keras's private API, used here, in tests only,
because Keras's own layer tests use it; the package never imports it.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl.testing import parameterized  # noqa: E402
from helpers import volumes  # noqa: E402
from keras.src import testing as keras_testing  # noqa: E402
import tfprobr_bridge  # noqa: E402
from tfprobr_bridge import Conv3DReparameterization  # noqa: E402
from upstream import (  # noqa: E402
    channels_last_to_first,
    plain_convolution,
    plain_bias_add,
    posterior_mean,
    run_harness,
)

# --------------------------------------------------------------------------
# Part 3: Keras 3's layer test harness, run_layer_test (Conv3DReparameterization).
# --------------------------------------------------------------------------

# Checks of run_layer_test that cannot apply to a stochastic layer: none run
# by default. The harness never compares the outputs of two calls; its only
# value check is `expected_output`, which compares the output of a layer it
# builds itself with a value given in advance. A layer that samples a new
# kernel per call (from variables initialised at random) has no such value,
# so `expected_output` is left out of the stochastic configurations below;
# it is checked in `test_deterministic_posterior_expected_output`, where the
# kernel is the posterior mean and the initializers are seeded.

HARNESS_CASES = [
    # (name, constructor kwargs, input shape, expected output shape)
    (
        "channels_last_valid",
        dict(filters=2, kernel_size=3, padding="valid", seed=1),
        (2, 5, 5, 5, 2),
        (2, 3, 3, 3, 2),
    ),
    (
        "channels_last_same_strided",
        dict(filters=3, kernel_size=3, strides=2, padding="same", seed=2),
        (2, 5, 6, 7, 1),
        (2, 3, 3, 4, 3),
    ),
    (
        "channels_first_valid_strided",
        dict(
            filters=4,
            kernel_size=(2, 3, 2),
            strides=(2, 1, 2),
            padding="valid",
            data_format="channels_first",
            seed=3,
        ),
        (2, 3, 6, 5, 4),
        (2, 4, 3, 3, 2),
    ),
    (
        "channels_first_same",
        dict(filters=2, kernel_size=2, padding="same", data_format="channels_first", seed=4),
        (2, 1, 4, 4, 4),
        (2, 2, 4, 4, 4),
    ),
    (
        "channels_first_same_dilated",
        dict(
            filters=2,
            kernel_size=2,
            padding="same",
            dilation_rate=2,
            data_format="channels_first",
            seed=5,
        ),
        (2, 2, 4, 5, 6),
        (2, 2, 4, 5, 6),
    ),
    (
        "channels_last_same_strided_activation",
        dict(filters=2, kernel_size=3, strides=(1, 2, 3), padding="SAME",
             activation="relu", seed=6),
        (1, 4, 5, 7, 3),
        (1, 4, 3, 3, 2),
    ),
]


class KerasLayerHarnessTest(keras_testing.TestCase):
    """Keras 3's ``run_layer_test`` on Conv3DReparameterization.

    Checks: config and serialization round trips, build (3 trainable weights
    with the defaults: kernel_posterior_loc, kernel_posterior_untransformed_scale,
    bias_posterior_loc; none non-trainable; one seed generator when ``seed``
    is given), symbolic and eager output shapes, one loss per call (the kernel
    KL: the default bias has no prior), no masking, one compiled training
    step, and a mixed_float16 call (float16 output, float32 weights).
    """

    @parameterized.named_parameters(*HARNESS_CASES)
    def test_run_layer_test(self, init_kwargs, input_shape, output_shape):
        run_harness(
            self,
            init_kwargs,
            trainable=3,
            seed_generators=1,
            losses=1,
            input_shape=input_shape,
            expected_output_shape=output_shape,
        )

    @parameterized.named_parameters(
        ("channels_last", "channels_last"), ("channels_first", "channels_first")
    )
    def test_deterministic_posterior_expected_output(self, data_format):
        """``expected_output`` checked: a kernel that is the posterior mean.

        With seeded loc initializers every layer the harness builds starts
        from the same kernel and bias, and the mean tensor fn removes the
        sampling, so the output is a plain convolution of those values.
        """
        filters, channels = 3, 2
        kernel_seed, bias_seed = 11, 12
        kernel_size = (2, 2, 2)
        rng = np.random.default_rng(3)
        input_data = volumes(rng, (2, 4, 5, 3, channels))
        if data_format == "channels_first":
            input_data = np.transpose(input_data, channels_last_to_first(list(range(5))))
        kernel = keras.initializers.RandomNormal(mean=0.0, stddev=0.1, seed=kernel_seed)(
            kernel_size + (channels, filters), dtype="float32"
        )
        bias = keras.initializers.RandomNormal(mean=0.0, stddev=0.1, seed=bias_seed)(
            (filters,), dtype="float32"
        )
        expected = plain_bias_add(
            plain_convolution(input_data, kernel, data_format, padding="same"),
            bias,
            data_format,
        )
        run_harness(
            self,
            dict(
                filters=filters,
                kernel_size=kernel_size,
                padding="same",
                data_format=data_format,
                kernel_posterior_fn=tfprobr_bridge.default_mean_field_normal_fn(
                    loc_initializer=keras.initializers.RandomNormal(
                        mean=0.0, stddev=0.1, seed=kernel_seed
                    )
                ),
                kernel_posterior_tensor_fn=posterior_mean,
                bias_posterior_fn=tfprobr_bridge.default_mean_field_normal_fn(
                    is_singular=True,
                    loc_initializer=keras.initializers.RandomNormal(
                        mean=0.0, stddev=0.1, seed=bias_seed
                    ),
                ),
            ),
            trainable=3,
            seed_generators=0,
            losses=1,
            input_data=input_data,
            expected_output=expected,
        )
