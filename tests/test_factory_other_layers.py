"""create_layer (what R's layer_*() functions call) with the layers beside the variational
family: distribution layers, KL layers, VariableLayer, DenseVariational, the autoregressive
network. Composed as every layer is; tf_keras objects get TFP's own class of the same name."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfprobr_bridge as tb
from tfprobr_bridge import create_layer

tfd = tfp.distributions


def test_no_object_gives_the_layer():
    layer = create_layer(tb.IndependentNormal, None, {"event_shape": 2.0, "name": None})
    assert isinstance(layer, tb.IndependentNormal)


def test_a_sequential_gets_the_layer_and_fits_with_a_distribution_loss():
    model = keras.Sequential()
    model.add(keras.layers.Dense(tb.IndependentNormal.params_size(1)))
    assert create_layer(tb.IndependentNormal, model, {"event_shape": 1}) is model
    x = np.linspace(-1, 1, 64, dtype="float32")[:, None]
    y = 2 * x + 0.1 * np.random.default_rng(0).normal(size=x.shape).astype("float32")
    model.compile("adam", loss=lambda y, rv: -rv.log_prob(y))
    history = model.fit(x, y, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert tb.distribution_of(model(x[:3])).stddev().shape == (3, 1)


def test_a_layer_stack_and_a_tensor():
    stack = create_layer(tb.IndependentNormal, tb.LayerStack(input_shape=(4,)), {"event_shape": 2})
    assert isinstance(stack, tb.LayerStack) and isinstance(stack.layers[-1], tb.IndependentNormal)
    output = create_layer(tb.IndependentNormal, np.zeros((3, 4), "float32"), {"event_shape": 2})
    assert output.shape == (3, 2) and output.mean().shape == (3, 2)


def test_a_missing_required_argument_is_named():
    with pytest.raises(TypeError, match=r"^`event_size` is required\.$"):
        create_layer(tb.MultivariateNormalTriL, None, {})
    with pytest.raises(TypeError, match=r"did you mean `event_size`"):
        create_layer(tb.MultivariateNormalTriL, None, {"evnt_size": 2})


def test_the_regularizer_is_returned_or_applied_never_added_to_a_model():
    prior = tfd.Independent(tfd.Normal(tf.zeros(2), 1.0), 1)
    regularizer = create_layer(tb.KLDivergenceRegularizer, None,
                               {"distribution_b": prior, "use_exact_kl": True})
    assert isinstance(regularizer, tb.KLDivergenceRegularizer)
    output = tb.IndependentNormal(2)(np.zeros((3, 4), "float32"))
    value = create_layer(tb.KLDivergenceRegularizer, output,
                         {"distribution_b": prior, "use_exact_kl": True})
    # TFP sums over the batch (a loss added once per batch, not per example).
    exact = tf.reduce_sum(tfd.kl_divergence(tb.distribution_of(output), prior))
    assert float(value) == pytest.approx(float(regularizer(output)), rel=1e-6)
    assert float(value) == pytest.approx(float(exact), rel=1e-5) and float(value) > 0
    with pytest.raises(TypeError, match="not a layer.*activity_regularizer"):
        create_layer(tb.KLDivergenceRegularizer, keras.Sequential(), {"distribution_b": prior})


@pytest.mark.parametrize("name, arguments, width", [
    ("IndependentNormal", {"event_shape": 2}, 4),
    ("MultivariateNormalTriL", {"event_size": 2}, 5),
    ("OneHotCategorical", {"event_size": 3}, 3),
    ("MixtureNormal", {"num_components": 2, "event_shape": [1]}, 6),
])
def test_a_tf_keras_model_gets_tfps_own_class(name, arguments, width):
    import tf_keras

    model = tf_keras.Sequential([tf_keras.layers.Dense(width, input_shape=(3,))])
    assert create_layer(getattr(tb, name), model, arguments) is model
    assert type(model.layers[-1]) is getattr(tfp.layers, name)
    assert isinstance(model(np.zeros((2, 3), "float32")), tfd.Distribution)


def test_a_tf_keras_model_gets_tfps_autoregressive_network():
    import tf_keras

    model = tf_keras.Sequential([tf_keras.layers.InputLayer(input_shape=(3,))])
    create_layer(tb.AutoregressiveNetwork, model, {"params": 2, "hidden_units": [4]})
    assert type(model.layers[-1]) is tfp.bijectors.AutoregressiveNetwork
