"""Differential tests against TFP's own (tf_keras) Convolution3DReparameterization."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from helpers import assign_by_name
from helpers import fixed_tensor_fn
from hypothesis import HealthCheck
from hypothesis import assume
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import tfprobr_bridge
from tfprobr_bridge import Conv3DReparameterization

tfp_util = tfp.layers.util


@st.composite
def configurations(draw):
    dilated = draw(st.booleans())
    triple = st.tuples(*[st.integers(1, 3)] * 3)
    config = dict(
        filters=draw(st.integers(1, 4)),
        kernel_size=draw(triple),
        strides=(1, 1, 1) if dilated else draw(triple),
        dilation_rate=draw(st.tuples(*[st.integers(1, 2)] * 3)) if dilated else (1, 1, 1),
        padding=draw(st.sampled_from(["valid", "same"])),
        data_format=draw(st.sampled_from(["channels_last", "channels_first"])),
    )
    spatial = draw(st.tuples(*[st.integers(1, 7)] * 3))
    channels = draw(st.integers(1, 3))
    batch = draw(st.integers(1, 2))
    if config["data_format"] == "channels_last":
        input_shape = (batch, *spatial, channels)
    else:
        input_shape = (batch, channels, *spatial)
    bayesian_bias = draw(st.booleans())
    return config, input_shape, bayesian_bias


def _valid(config, input_shape):
    spatial = input_shape[1:-1] if config["data_format"] == "channels_last" else input_shape[2:]
    if config["padding"] == "same":
        return True
    return all(
        size >= (k - 1) * d + 1
        for size, k, d in zip(spatial, config["kernel_size"], config["dilation_rate"])
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(configurations())
def test_matches_tfp_shapes_outputs_and_kl(case):
    config, input_shape, bayesian_bias = case
    assume(_valid(config, input_shape))
    tfp_bias = {}
    our_bias = {}
    if bayesian_bias:
        tfp_bias = dict(
            bias_posterior_fn=tfp_util.default_mean_field_normal_fn(),
            bias_prior_fn=tfp_util.default_multivariate_normal_fn,
        )
        our_bias = dict(
            bias_posterior_fn=tfprobr_bridge.default_mean_field_normal_fn(),
            bias_prior_fn=tfprobr_bridge.default_multivariate_normal_fn,
        )
    reference = tfp.layers.Convolution3DReparameterization(
        **config,
        kernel_posterior_tensor_fn=fixed_tensor_fn,
        bias_posterior_tensor_fn=fixed_tensor_fn,
        **tfp_bias,
    )
    ours = Conv3DReparameterization(
        **config,
        kernel_posterior_tensor_fn=fixed_tensor_fn,
        bias_posterior_tensor_fn=fixed_tensor_fn,
        **our_bias,
    )
    unknown_batch = (None, *input_shape[1:])
    assert ours.compute_output_shape(input_shape) == tuple(
        reference.compute_output_shape(input_shape).as_list()
    )
    assert ours.compute_output_shape(unknown_batch) == tuple(
        reference.compute_output_shape(unknown_batch).as_list()
    )

    x = np.random.default_rng(0).standard_normal(input_shape).astype("float32")
    reference.build(input_shape)
    ours.build(input_shape)
    # Move TFP's trained-looking state into ours by variable name, as a user would.
    for variable in reference.weights:
        variable.assign(variable + tf.random.normal(variable.shape, stddev=0.3))
    names = assign_by_name(reference.weights, ours.weights)
    assert len(names) == len(ours.weights) == len(reference.weights)

    expected = reference(x)
    actual = ours(x)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    assert len(ours.losses) == len(reference.losses) == (2 if bayesian_bias else 1)
    for our_loss, reference_loss in zip(ours.losses, reference.losses):
        np.testing.assert_allclose(our_loss, reference_loss, rtol=1e-5)


@pytest.mark.parametrize("is_singular", [False, True])
def test_native_posterior_equals_tfp_closure_on_the_same_variables(is_singular):
    reference = Conv3DReparameterization(
        2, 2, kernel_posterior_fn=tfp_util.default_mean_field_normal_fn(is_singular=is_singular)
    )
    ours = Conv3DReparameterization(
        2, 2, kernel_posterior_fn=tfprobr_bridge.default_mean_field_normal_fn(
            is_singular=is_singular
        )
    )
    for layer in (reference, ours):
        layer.build((None, 3, 3, 3, 2))
    assign_by_name(reference.weights, ours.weights)
    for method in ("mean", "stddev") if not is_singular else ("mean",):
        np.testing.assert_allclose(
            getattr(ours.kernel_posterior, method)(),
            getattr(reference.kernel_posterior, method)(),
            rtol=1e-6,
        )
    if not is_singular:
        np.testing.assert_allclose(
            tfp.distributions.kl_divergence(ours.kernel_posterior, ours.kernel_prior),
            tfp.distributions.kl_divergence(reference.kernel_posterior, reference.kernel_prior),
            rtol=1e-6,
        )
