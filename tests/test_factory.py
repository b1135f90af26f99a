"""The R-shaped factory: value coercion and the `object` dispatch table."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from helpers import volumes

import tfprobr_bridge
from tfprobr_bridge import Conv3DReparameterization
from tfprobr_bridge import LayerStack
from tfprobr_bridge import layer_conv_3d_reparameterization as conv


def test_defaults_match_the_spec():
    layer = conv(filters=2, kernel_size=3)
    assert isinstance(layer, Conv3DReparameterization)
    assert layer.strides == (1, 1, 1)
    assert layer.padding == "valid"
    assert layer.data_format == "channels_last"
    assert layer.dilation_rate == (1, 1, 1)
    assert layer.activation is None
    assert layer.activity_regularizer is None
    assert layer.trainable is True
    assert layer.kernel_posterior_fn == tfprobr_bridge.default_mean_field_normal_fn()
    assert layer.kernel_posterior_tensor_fn is tfprobr_bridge.sample
    assert layer.kernel_prior_fn is tfprobr_bridge.default_multivariate_normal_fn
    assert layer.kernel_divergence_fn is tfprobr_bridge.kl_divergence_fn
    assert layer.bias_posterior_fn == tfprobr_bridge.default_mean_field_normal_fn(
        is_singular=True
    )
    assert layer.bias_posterior_tensor_fn is tfprobr_bridge.sample
    assert layer.bias_prior_fn is None
    assert layer.bias_divergence_fn is tfprobr_bridge.kl_divergence_fn


@pytest.mark.parametrize(
    "given, expected",
    [
        (dict(filters=8.0, kernel_size=3.0), dict(filters=8, kernel_size=(3, 3, 3))),
        (dict(filters=np.float64(8), kernel_size=[3.0]), dict(filters=8, kernel_size=(3, 3, 3))),
        (dict(filters=np.int32(8), kernel_size=np.array([1.0, 2.0, 3.0])),
         dict(filters=8, kernel_size=(1, 2, 3))),
        (dict(filters=np.array(8.0), kernel_size=[1, 2, 3], strides=[2.0]),
         dict(filters=8, strides=(2, 2, 2))),
        (dict(filters=2, kernel_size=1, dilation_rate=np.array([2.0, 1.0, 1.0])),
         dict(dilation_rate=(2, 1, 1))),
        (dict(filters=2, kernel_size=1, padding="SAME", data_format="Channels_First"),
         dict(padding="same", data_format="channels_first")),
        (dict(filters=2, kernel_size=1, trainable=np.array([False])), dict(trainable=False)),
        (dict(filters=2, kernel_size=1, activation=None, bias_prior_fn=None),
         dict(activation=None, bias_prior_fn=None)),
    ],
    ids=["floats", "numpy_scalar_and_list1", "array3", "0d_array", "dilation_array",
         "case_insensitive", "r_logical", "null"],
)
def test_accepts_values_as_reticulate_delivers_them(given, expected):
    layer = conv(**given)
    for name, value in expected.items():
        assert getattr(layer, name) == value, name
        assert type(getattr(layer, name)) is type(value), name


def test_layer_keywords_are_honoured():
    layer = conv(filters=2, kernel_size=1, name="bayes", dtype="float64")
    assert layer.name == "bayes"
    assert layer.dtype == "float64"


def test_input_shape_for_a_first_layer_as_tfprobability_users_pass_it():
    model = conv(keras.Sequential(), filters=2, kernel_size=3, input_shape=[8.0, 8.0, 8.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras's advice to prefer Input().
        assert model.output_shape == (None, 6, 6, 6, 2)
    stack = conv(LayerStack(), filters=2, kernel_size=3, input_shape=(8, 8, 8, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert stack.to_model().output_shape == (None, 6, 6, 6, 2)


def test_object_none_returns_the_layer():
    assert isinstance(conv(None, 2, 3), Conv3DReparameterization)


def test_object_stack_returns_a_new_stack():
    stack = LayerStack(input_shape=(6, 6, 6, 1))
    extended = conv(stack, 2, 3)
    assert isinstance(extended, LayerStack)
    assert len(stack) == 0 and len(extended) == 1
    assert isinstance(extended.layers[0], Conv3DReparameterization)


def test_object_sequential_is_the_same_model_with_the_layer_added():
    model = keras.Sequential([keras.Input((6, 6, 6, 1))])
    returned = conv(model, 2, 3)
    assert returned is model
    assert isinstance(model.layers[-1], Conv3DReparameterization)
    assert model.output_shape == (None, 4, 4, 4, 2)


def test_object_symbolic_tensor_returns_the_output_tensor():
    inputs = keras.Input((6, 6, 6, 1))
    outputs = conv(inputs, 2, 3, padding="same")
    assert isinstance(outputs, keras.KerasTensor)
    assert tuple(outputs.shape) == (None, 6, 6, 6, 2)
    model = keras.Model(inputs, outputs)
    model(np.zeros((1, 6, 6, 6, 1), "float32"))
    assert len(model.losses) == 1


@pytest.mark.parametrize("kind", ["numpy", "tensor", "variable"])
def test_object_eager_values_return_the_output(rng, kind):
    x = volumes(rng, (2, 5, 5, 5, 1))
    value = {"numpy": x, "tensor": tf.constant(x), "variable": tf.Variable(x)}[kind]
    outputs = conv(value, 3, 2)
    assert tf.is_tensor(outputs)
    assert tuple(outputs.shape) == (2, 4, 4, 4, 3)


def test_object_legacy_sequential_gets_tfps_class(rng):
    import tf_keras

    model = tf_keras.Sequential([tf_keras.layers.InputLayer(input_shape=(5, 5, 5, 1))])
    returned = conv(model, 3.0, [2.0], padding="SAME", activation="relu")
    assert returned is model
    layer = model.layers[-1]
    assert isinstance(layer, tfp.layers.Convolution3DReparameterization)
    assert layer.kernel_size == (2, 2, 2) and layer.padding == "same"
    model.add(tf_keras.layers.Flatten())
    model.add(tf_keras.layers.Dense(1))
    model.compile(optimizer="adam", loss="mse")
    before = [w.numpy() for w in layer.trainable_weights]
    model.fit(volumes(rng, (8, 5, 5, 5, 1)), volumes(rng, (8, 1)), epochs=1, verbose=0)
    assert len(model.losses) == 1
    assert all(not np.allclose(b, w.numpy()) for b, w in zip(before, layer.trainable_weights))


def test_object_legacy_tensor_gets_tfps_class():
    import tf_keras

    inputs = tf_keras.Input((5, 5, 5, 1))
    outputs = conv(inputs, 2, 3)
    assert tf_keras.backend.is_keras_tensor(outputs)
    assert outputs.shape.as_list() == [None, 3, 3, 3, 2]


def test_legacy_path_rejects_the_same_bad_values():
    import tf_keras

    with pytest.raises(ValueError, match=r"`padding` must be one of"):
        conv(tf_keras.Sequential(), 2, 3, padding="causal")


def test_legacy_functional_model_is_refused():
    import tf_keras

    inputs = tf_keras.Input((4,))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(1)(inputs))
    with pytest.raises(TypeError, match=r"A tf_keras `object` must be a tf_keras Sequential"):
        conv(model, 2, 3)


def test_add_layer_follows_the_same_table(rng):
    dense = keras.layers.Dense(1)
    assert tfprobr_bridge.add_layer(None, dense) is dense
    stack = tfprobr_bridge.add_layer(LayerStack(), keras.layers.Flatten(), input_shape=[3.0, 3.0])
    assert stack.input_shape == (3, 3) and len(stack) == 1
    model = keras.Sequential()
    assert tfprobr_bridge.add_layer(model, keras.layers.Flatten(), input_shape=(3, 3)) is model
    assert model.output_shape == (None, 9)
    outputs = tfprobr_bridge.add_layer(volumes(rng, (2, 3)), keras.layers.Dense(4))
    assert tuple(outputs.shape) == (2, 4)
    with pytest.raises(TypeError, match=r"`layer` must be a Keras 3 layer.*Received: layer='relu'"):
        tfprobr_bridge.add_layer(model, "relu")
    assert len(model.layers) == 1
