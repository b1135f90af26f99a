"""Every invalid argument fails early, in Keras's form, naming the argument."""

import math

import keras
import numpy as np
import pytest

import tfprobr_bridge
from tfprobr_bridge import Conv3DReparameterization
from tfprobr_bridge import layer_conv_3d_reparameterization

VALID = dict(filters=2, kernel_size=3)

CONSTRUCTION_ERRORS = [
    # (id, overrides, error type, pinned message)
    ("filters_fraction", dict(filters=2.5), ValueError,
     r"`filters` must be a positive integer\. Received: filters=2\.5"),
    ("filters_zero", dict(filters=0), ValueError,
     r"`filters` must be a positive integer\. Received: filters=0"),
    ("filters_negative", dict(filters=-3), ValueError,
     r"`filters` must be a positive integer\. Received: filters=-3"),
    ("filters_nan", dict(filters=math.nan), ValueError,
     r"`filters` must be a positive integer\. Received: filters=nan"),
    ("filters_inf", dict(filters=math.inf), ValueError,
     r"`filters` must be a positive integer\. Received: filters=inf"),
    ("filters_bool", dict(filters=True), TypeError,
     r"`filters` must be a positive integer\. Received: filters=True"),
    ("filters_string", dict(filters="8"), TypeError,
     r"`filters` must be a positive integer\. Received: filters='8'"),
    ("filters_none", dict(filters=None), TypeError,
     r"`filters` .*positive integer.*Received: filters=None"),
    ("kernel_size_length_2", dict(kernel_size=(3, 3)), ValueError,
     r"`kernel_size` must be a positive integer or a list of 1 or 3 positive "
     r"integers, but has length 2\. Received: kernel_size=\(3, 3\)"),
    ("kernel_size_length_4", dict(kernel_size=[1, 2, 3, 4]), ValueError,
     r"`kernel_size` .* has length 4\. Received: kernel_size=\[1, 2, 3, 4\]"),
    ("kernel_size_empty", dict(kernel_size=[]), ValueError,
     r"`kernel_size` .* has length 0"),
    ("kernel_size_zero", dict(kernel_size=0), ValueError,
     r"`kernel_size` must be a positive integer or a list of 1 or 3 positive "
     r"integers\. Received: kernel_size=0"),
    ("kernel_size_negative_item", dict(kernel_size=(3, -1, 3)), ValueError,
     r"`kernel_size` .*Received: kernel_size=\(3, -1, 3\)"),
    ("kernel_size_fraction", dict(kernel_size=2.5), ValueError,
     r"`kernel_size` .*Received: kernel_size=2\.5"),
    ("kernel_size_string", dict(kernel_size="3"), TypeError,
     r"`kernel_size` .*Received: kernel_size='3'"),
    ("strides_zero", dict(strides=0), ValueError, r"`strides` .*Received: strides=0"),
    ("strides_negative", dict(strides=(1, 1, -2)), ValueError,
     r"`strides` .*Received: strides=\(1, 1, -2\)"),
    ("strides_length_2", dict(strides=[1, 2]), ValueError,
     r"`strides` .*has length 2"),
    ("dilation_zero", dict(dilation_rate=0), ValueError,
     r"`dilation_rate` .*Received: dilation_rate=0"),
    ("dilation_negative", dict(dilation_rate=-1), ValueError,
     r"`dilation_rate` .*Received: dilation_rate=-1"),
    ("dilation_length_2", dict(dilation_rate=(2, 2)), ValueError,
     r"`dilation_rate` .*has length 2"),
    ("strides_with_dilation", dict(strides=2, dilation_rate=(1, 2, 1)), ValueError,
     r"`strides` > 1 cannot be combined with `dilation_rate` > 1.*"
     r"Received: strides=\(2, 2, 2\), dilation_rate=\(1, 2, 1\)"),
    ("padding_causal", dict(padding="causal"), ValueError,
     r'`padding` must be one of "valid" or "same" \("causal" padding is not offered '
     r"by the variational layers\)\. Received: padding='causal'"),
    ("padding_unknown", dict(padding="full"), ValueError,
     r"`padding` must be one of \"valid\" or \"same\"\. Received: padding='full'"),
    ("padding_number", dict(padding=1), TypeError, r"`padding` .*Received: padding=1"),
    ("data_format_unknown", dict(data_format="NDHWC"), ValueError,
     r"`data_format` must be one of \"channels_last\" or \"channels_first\"\. "
     r"Received: data_format='NDHWC'"),
    ("data_format_none", dict(data_format=None), TypeError,
     r"`data_format` .*Received: data_format=None"),
    ("activation_unknown", dict(activation="relux"), ValueError,
     r"`activation` must be the name of a Keras activation .*Received: activation='relux'"),
    ("activation_number", dict(activation=3), TypeError,
     r"`activation` must be an activation name, a callable or None\. Received: activation=3"),
    ("kernel_posterior_fn_none", dict(kernel_posterior_fn=None), TypeError,
     r"`kernel_posterior_fn` must be a function \(a callable\)\. "
     r"Received: kernel_posterior_fn=None"),
    ("kernel_posterior_tensor_fn_string", dict(kernel_posterior_tensor_fn="sample"),
     TypeError, r"`kernel_posterior_tensor_fn` must be a function"),
    ("kernel_prior_fn_number", dict(kernel_prior_fn=1.0), TypeError,
     r"`kernel_prior_fn` must be a function \(a callable\) or None\. "
     r"Received: kernel_prior_fn=1\.0"),
    ("kernel_divergence_fn_list", dict(kernel_divergence_fn=[]), TypeError,
     r"`kernel_divergence_fn` must be a function \(a callable\) or None"),
    ("bias_posterior_fn_string", dict(bias_posterior_fn="normal"), TypeError,
     r"`bias_posterior_fn` must be a function"),
    ("bias_posterior_tensor_fn_number", dict(bias_posterior_tensor_fn=0), TypeError,
     r"`bias_posterior_tensor_fn` must be a function"),
    ("bias_prior_fn_string", dict(bias_prior_fn="normal"), TypeError,
     r"`bias_prior_fn` must be a function"),
    ("bias_divergence_fn_dict", dict(bias_divergence_fn={}), TypeError,
     r"`bias_divergence_fn` must be a function"),
]


@pytest.mark.parametrize(
    "overrides, error, message",
    [case[1:] for case in CONSTRUCTION_ERRORS],
    ids=[case[0] for case in CONSTRUCTION_ERRORS],
)
@pytest.mark.parametrize("make", ["class", "factory"])
def test_construction_errors(make, overrides, error, message):
    arguments = {**VALID, **overrides}
    constructor = Conv3DReparameterization if make == "class" else layer_conv_3d_reparameterization
    with pytest.raises(error, match=message):
        constructor(**arguments)


def test_factory_specific_errors():
    # Left out, a required argument is named; given as None, the None is echoed.
    with pytest.raises(TypeError, match=r"^`filters` is required: a positive integer, the number "
                       r"of output channels\.$"):
        layer_conv_3d_reparameterization(kernel_size=3)
    with pytest.raises(TypeError, match=r"`filters` is required: a positive integer.*Received: filters=None"):
        layer_conv_3d_reparameterization(filters=None, kernel_size=3)
    with pytest.raises(TypeError, match=r"`kernel_size` is required.*Received: kernel_size=None"):
        layer_conv_3d_reparameterization(filters=3, kernel_size=None)
    with pytest.raises(TypeError, match=r"`trainable` must be True or False\. Received: trainable='yes'"):
        layer_conv_3d_reparameterization(**VALID, trainable="yes")
    with pytest.raises(ValueError, match=r"`input_shape` must be a list of positive integers.*Received: input_shape=\[4, 0, 4, 1\]"):
        layer_conv_3d_reparameterization(**VALID, input_shape=[4, 0, 4, 1])
    with pytest.raises(TypeError, match=r"`name` must be a string or None\. Received: name=3"):
        layer_conv_3d_reparameterization(**VALID, name=3)
    with pytest.raises(TypeError, match=r"`object` must be None, a LayerStack, a keras\.Sequential model.*Received: object='model' of type str"):
        layer_conv_3d_reparameterization("model", **VALID)
    inputs = keras.Input((4, 4, 4, 1))
    functional = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    with pytest.raises(TypeError, match=r"`object` must be .*of type Functional"):
        layer_conv_3d_reparameterization(functional, **VALID)


BUILD_ERRORS = [
    ("rank_4", dict(), (None, 8, 8, 1), r"expects inputs of rank 5 .*input has rank 4\. Received: input_shape=\(None, 8, 8, 1\)"),
    ("rank_6", dict(), (None, 4, 4, 4, 4, 1), r"expects inputs of rank 5 .*rank 6"),
    ("unknown_channels_last", dict(), (None, 8, 8, 8, None), r"needs a known number of input channels \(axis -1 with data_format=\"channels_last\"\), but it is None\. Received: input_shape=\(None, 8, 8, 8, None\)"),
    ("unknown_channels_first", dict(data_format="channels_first"), (None, None, 8, 8, 8), r"axis 1 with data_format=\"channels_first\""),
    ("kernel_too_large", dict(kernel_size=(3, 5, 3)), (None, 8, 4, 8, 1), r"the kernel \(size 5 along spatial axis 1, after dilation\) is larger than the input \(4\) with padding=\"valid\".*Received: input_shape=\(None, 8, 4, 8, 1\), kernel_size=\(3, 5, 3\)"),
    ("dilated_kernel_too_large", dict(kernel_size=3, dilation_rate=3), (None, 6, 8, 8, 1), r"size 7 along spatial axis 0, after dilation"),
]


@pytest.mark.parametrize(
    "overrides, input_shape, message",
    [case[1:] for case in BUILD_ERRORS],
    ids=[case[0] for case in BUILD_ERRORS],
)
def test_build_errors(overrides, input_shape, message):
    layer = Conv3DReparameterization(**{**VALID, **overrides})
    with pytest.raises(ValueError, match=message):
        layer.build(input_shape)
    assert layer.weights == []  # Nothing half-built.


def test_kernel_too_large_is_caught_when_added_to_a_model_and_leaves_it_unchanged():
    model = keras.Sequential([keras.Input((2, 8, 8, 1))])
    with pytest.raises(ValueError, match=r"larger than the input \(2\)"):
        layer_conv_3d_reparameterization(model, filters=2, kernel_size=3)
    assert model.layers == []
    layer_conv_3d_reparameterization(model, filters=2, kernel_size=(1, 3, 3))
    assert len(model.layers) == 1


def test_wrong_rank_in_a_call_names_the_layer():
    layer = Conv3DReparameterization(**VALID, name="bayes")
    with pytest.raises(ValueError, match=r"bayes.*ndim=5.*ndim=4"):
        layer(np.zeros((1, 4, 4, 1), "float32"))


def _name_number(layer):
    suffix = layer.name.rsplit("_", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


def test_failed_construction_uses_up_no_layer_name():
    first = Conv3DReparameterization(2, 1)
    for bad in (dict(filters=0), dict(padding="causal"), dict(kernel_prior_fn=1)):
        with pytest.raises((ValueError, TypeError)):
            Conv3DReparameterization(**{**VALID, **bad})
    second = Conv3DReparameterization(2, 1)
    assert _name_number(second) == _name_number(first) + 1


def test_mean_field_normal_rejects_bad_arguments():
    with pytest.raises(TypeError, match=r"`is_singular` must be True or False\. Received: is_singular='yes'"):
        tfprobr_bridge.default_mean_field_normal_fn(is_singular="yes")
    with pytest.raises(ValueError, match=r"initializer"):
        tfprobr_bridge.default_mean_field_normal_fn(loc_initializer="no_such_initializer")


def test_sizes_beyond_tensorflows_int32_are_refused_early():
    with pytest.raises(ValueError, match=r"`strides` must be a positive integer.*Received: strides=3e\+22"):
        Conv3DReparameterization(2, 2, strides=3e22)
    with pytest.raises(ValueError, match=r"`filters` must be a positive integer no larger than 2147483647"):
        Conv3DReparameterization(2**31, 2)
    layer = Conv3DReparameterization(2**30, 3)
    with pytest.raises(ValueError, match=r"has 57982058496 weights, more than TensorFlow can index"):
        layer.build((None, 4, 4, 4, 2))
    assert layer.weights == []
