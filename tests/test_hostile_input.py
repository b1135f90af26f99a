"""Hostile and odd input: nothing but ValueError/TypeError escapes; odd batches work."""

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import tfprobr_bridge
from tfprobr_bridge import Conv3DReparameterization

ARGUMENTS = [
    "filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
    "activation", "activity_regularizer", "trainable", "kernel_posterior_fn",
    "kernel_posterior_tensor_fn", "kernel_prior_fn", "kernel_divergence_fn",
    "bias_posterior_fn", "bias_posterior_tensor_fn", "bias_prior_fn", "bias_divergence_fn",
    "name", "dtype", "input_shape",
]
ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.lists(st.integers(-3, 5), max_size=5), st.tuples(st.floats(), st.floats()),
    st.just(lambda: 1), st.just(lambda a, b, c, d, e, f, g: 1), st.builds(object),
    st.just(np.array([[1, 2], [3, 4]])), st.dictionaries(st.text(max_size=3), st.integers()),
    st.just(np.float32("nan")), st.just(keras.layers.Dense(1)),
)


def _outcome(argument, value):
    """"accepted" (the layer was built and called) or "refused" (ValueError/TypeError naming it)."""
    arguments = {"filters": 2, "kernel_size": 2, argument: value}
    try:
        layer = tfprobr_bridge.layer_conv_3d_reparameterization(**arguments)
    except (ValueError, TypeError) as error:
        # Refused at construction: the message names the argument and echoes the value.
        assert f"`{argument}`" in str(error) or f"{argument}=" in str(error), str(error)
        return "refused"
    try:
        layer(np.ones((1, 3, 3, 3, 1), "float32"))
    except (ValueError, TypeError) as error:
        assert str(error)  # A fn that fails when called: its own error, but only these types.
        return "refused"
    return "accepted"


def test_any_value_for_any_argument_works_or_raises_value_or_type_error():
    outcomes = {"accepted": 0, "refused": 0}

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(ARGUMENTS), ANY_VALUE)
    def check(argument, value):
        outcomes[_outcome(argument, value)] += 1

    check()
    # The property exercised both paths (counted here, so no other test's order matters).
    assert outcomes["accepted"] > 10 and outcomes["refused"] > 10, outcomes


@pytest.mark.parametrize("data_format, shape", [("channels_last", (0, 3, 4, 5, 1)),
                                                ("channels_first", (0, 1, 3, 4, 5))])
def test_an_empty_batch_gives_an_empty_output(data_format, shape):
    layer = Conv3DReparameterization(2, 2, strides=(1, 2, 1), data_format=data_format)
    outputs = layer(np.zeros(shape, "float32"))
    expected = (0, 2, 2, 4, 2) if data_format == "channels_last" else (0, 2, 2, 2, 4)
    assert tuple(outputs.shape) == expected
    assert len(layer.losses) == 1 and np.isfinite(float(layer.losses[0]))


def test_nan_and_inf_inputs_propagate_without_crashing():
    x = np.ones((1, 4, 4, 4, 1), "float32")
    x[0, 0, 0, 0, 0] = np.nan
    x[0, 3, 3, 3, 0] = np.inf
    outputs = Conv3DReparameterization(2, 2)(x).numpy()
    assert np.isnan(outputs[0, 0, 0, 0]).all()
    assert np.isfinite(outputs[0, 1, 1, 1]).all()  # Away from both, values stay finite.


def test_wrong_channel_count_after_build_names_the_shapes():
    layer = Conv3DReparameterization(2, 2)
    layer(np.ones((1, 3, 3, 3, 1), "float32"))
    with pytest.raises(ValueError, match=r"expected axis -1 of input shape to have value 1.*\(1, 3, 3, 3, 2\)"):
        layer(np.ones((1, 3, 3, 3, 2), "float32"))


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_a_huge_stride_acts_as_a_stride_of_the_input_size(padding, data_format):
    # TF's CPU Conv3D aborted the process on strides near 2**29 (found by the
    # property test); beyond the input's size a stride changes nothing.
    x = np.random.default_rng(0).random((2, 5, 6, 7, 1), "float32")
    if data_format == "channels_first":
        x = np.moveaxis(x, -1, 1)
    mean = {"kernel_posterior_tensor_fn": lambda d: d.mean(),
            "bias_posterior_tensor_fn": lambda d: d.mean()}
    huge = Conv3DReparameterization(2, 2, strides=531840307, padding=padding,
                                    data_format=data_format, **mean)
    exact = Conv3DReparameterization(2, 2, strides=(5, 6, 7), padding=padding,
                                     data_format=data_format, **mean)
    outputs = huge(x)
    exact(x)
    exact.set_weights(huge.get_weights())
    np.testing.assert_array_equal(outputs.numpy(), exact(x).numpy())
    assert tuple(outputs.shape) == tuple(huge.compute_output_shape(x.shape))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_a_stride_beyond_the_input_gives_the_correct_values(data_format):
    # TF 2.21's CPU Conv3D (and Conv2D), strided beyond the input's extent
    # with "same" padding, returns zeros or uninitialised memory for some
    # positions; TFP's layers pass that on (found by the differential test).
    # Width 1, kernel width 2, stride 2: "same" pads one zero after, so each
    # output is x * 1 + 0 * 10 = x.
    x = np.arange(1, 5, dtype="float32").reshape(2, 1, 2, 1, 1)
    layer = Conv3DReparameterization(
        1, (1, 1, 2), strides=(1, 1, 2), padding="same", data_format=data_format,
        kernel_posterior_tensor_fn=lambda d: d.mean(),
        bias_posterior_tensor_fn=lambda d: d.mean(),
    )
    if data_format == "channels_first":
        x = np.moveaxis(x, -1, 1)
    layer.build(x.shape)
    layer.kernel_posterior.distribution.loc.assign(np.reshape([1.0, 10.0], (1, 1, 2, 1, 1)))
    layer.bias_posterior.distribution.loc.assign([0.0])
    np.testing.assert_array_equal(layer(x).numpy(), x)


def test_convolution_errors_at_call_are_value_errors_naming_the_arguments():
    layer = Conv3DReparameterization(2, 2, dilation_rate=531840307, padding="same")
    with pytest.raises(ValueError, match=r"rejected an input of shape \(2, 5, 6, 7, 1\).*dilation_rate="):
        layer(np.ones((2, 5, 6, 7, 1), "float32"))
