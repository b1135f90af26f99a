"""Keras-style layer checklist, driven by one table of configurations."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import volumes

from tfprobr_bridge import Conv3DReparameterization
from tfprobr_bridge import default_mean_field_normal_fn
from tfprobr_bridge import default_multivariate_normal_fn

CASES = [
    # (id, constructor kwargs, input shape with batch, expected output shape,
    #  trainable weights, losses per call)
    ("defaults", dict(filters=3, kernel_size=2), (2, 5, 6, 7, 2), (2, 4, 5, 6, 3), 3, 1),
    (
        "same_strided_relu",
        dict(filters=4, kernel_size=3, strides=2, padding="same", activation="relu"),
        (2, 7, 8, 9, 1),
        (2, 4, 4, 5, 4),
        3,
        1,
    ),
    (
        "channels_first",
        dict(filters=2, kernel_size=(1, 2, 3), data_format="channels_first"),
        (3, 2, 4, 5, 6),
        (3, 2, 4, 4, 4),
        3,
        1,
    ),
    (
        "channels_first_strided_same",
        dict(filters=2, kernel_size=3, strides=(1, 2, 3), padding="SAME",
             data_format="channels_first"),
        (1, 3, 5, 6, 7),
        (1, 2, 5, 3, 3),
        3,
        1,
    ),
    (
        "dilated",
        dict(filters=2, kernel_size=2, dilation_rate=(1, 2, 3)),
        (2, 5, 6, 7, 1),
        (2, 4, 4, 4, 2),
        3,
        1,
    ),
    (
        "bayesian_bias",
        dict(
            filters=2,
            kernel_size=1,
            bias_posterior_fn=default_mean_field_normal_fn(),
            bias_prior_fn=default_multivariate_normal_fn,
        ),
        (2, 3, 3, 3, 1),
        (2, 3, 3, 3, 2),
        4,
        2,
    ),
    (
        "no_bias_no_prior",
        dict(filters=2, kernel_size=1, bias_posterior_fn=None, kernel_prior_fn=None),
        (2, 3, 3, 3, 1),
        (2, 3, 3, 3, 2),
        2,
        0,
    ),
]


@pytest.mark.parametrize(
    "kwargs, input_shape, output_shape, n_weights, n_losses",
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_layer_checklist(rng, kwargs, input_shape, output_shape, n_weights, n_losses):
    # Construct; config round-trip before build.
    layer = Conv3DReparameterization(**kwargs)
    config = layer.get_config()
    clone = Conv3DReparameterization.from_config(config)
    assert clone.get_config() == config

    # compute_output_shape agrees with the actual output.
    assert layer.compute_output_shape(input_shape) == output_shape
    assert layer.compute_output_shape((None, *input_shape[1:])) == (None, *output_shape[1:])

    # Eager call.
    x = volumes(rng, input_shape)
    y = layer(x)
    assert tuple(y.shape) == output_shape
    assert len(layer.trainable_weights) == n_weights
    assert len(layer.non_trainable_weights) == 0
    assert len(layer.losses) == n_losses
    assert all(loss.shape == () for loss in layer.losses)

    # Symbolic call.
    symbolic_input = keras.Input(shape=input_shape[1:], batch_size=None)
    symbolic_output = Conv3DReparameterization(**kwargs)(symbolic_input)
    assert tuple(symbolic_output.shape) == (None, *output_shape[1:])

    # Losses are replaced, not accumulated, by each call.
    layer(x)
    assert len(layer.losses) == n_losses

    # One training step of a model changes every trainable weight.
    model = keras.Sequential(
        [keras.Input(input_shape[1:]), Conv3DReparameterization(**kwargs),
         keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    before = [w.numpy() for w in model.layers[0].trainable_weights]
    history = model.fit(x, np.ones((input_shape[0], 1), "float32"), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [w.numpy() for w in model.layers[0].trainable_weights]
    assert all(not np.array_equal(b, a) for b, a in zip(before, after))


def test_one_kernel_sample_is_shared_by_the_batch(rng):
    layer = Conv3DReparameterization(filters=2, kernel_size=2)
    example = volumes(rng, (1, 4, 4, 4, 1))
    outputs = layer(np.concatenate([example, example], axis=0))
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_each_call_draws_a_new_kernel(rng):
    layer = Conv3DReparameterization(filters=2, kernel_size=2)
    x = volumes(rng, (1, 4, 4, 4, 1))
    assert not np.allclose(layer(x), layer(x))


def test_variables_carry_tfp_names():
    layer = Conv3DReparameterization(filters=2, kernel_size=2)
    layer.build((None, 4, 4, 4, 3))
    assert [w.name for w in layer.weights] == [
        "kernel_posterior_loc",
        "kernel_posterior_untransformed_scale",
        "bias_posterior_loc",
    ]
    assert layer.weights[0].shape == (2, 2, 2, 3, 2)
    assert layer.weights[2].shape == (2,)


def test_distribution_properties():
    layer = Conv3DReparameterization(filters=2, kernel_size=2)
    assert layer.kernel_posterior is None  # Not built yet.
    layer.build((None, 4, 4, 4, 3))
    assert layer.kernel_posterior.event_shape == (2, 2, 2, 3, 2)
    assert layer.kernel_prior.event_shape == (2, 2, 2, 3, 2)
    assert layer.bias_posterior.event_shape == (2,)
    assert layer.bias_prior is None
    # The posterior reads the layer's variable, not a snapshot of it.
    layer.weights[0].assign(np.full((2, 2, 2, 3, 2), 0.5, "float32"))
    np.testing.assert_allclose(layer.kernel_posterior.mean(), 0.5)


def test_default_initialisers_match_tfp():
    layer = Conv3DReparameterization(filters=16, kernel_size=5)
    layer.build((None, 8, 8, 8, 8))
    loc, untransformed_scale, bias = (w.numpy() for w in layer.weights)
    assert abs(loc.mean()) < 0.01 and abs(loc.std() - 0.1) < 0.01
    assert abs(untransformed_scale.mean() + 3) < 0.01
    assert abs(untransformed_scale.std() - 0.1) < 0.01
    assert abs(bias.mean()) < 0.1
    scale = layer.kernel_posterior.distribution.scale
    expected = np.finfo(np.float32).eps + np.log1p(np.exp(untransformed_scale))
    np.testing.assert_allclose(tf.convert_to_tensor(scale), expected, rtol=1e-6)


def test_two_layers_with_the_default_fn_start_differently():
    first = Conv3DReparameterization(filters=2, kernel_size=2)
    second = Conv3DReparameterization(filters=2, kernel_size=2)
    for layer in (first, second):
        layer.build((None, 4, 4, 4, 1))
    assert not np.allclose(first.weights[0], second.weights[0])
    assert not np.allclose(first.weights[0], first.weights[1] + 3)


def test_trainable_false_freezes_every_variable(rng):
    layer = Conv3DReparameterization(filters=2, kernel_size=2, trainable=False)
    layer(volumes(rng, (1, 3, 3, 3, 1)))
    assert layer.trainable_weights == []
    assert len(layer.non_trainable_weights) == 3


def test_float64_layer(rng):
    layer = Conv3DReparameterization(filters=2, kernel_size=2, dtype="float64")
    y = layer(volumes(rng, (1, 3, 3, 3, 1), "float64"))
    assert y.dtype == tf.float64
    assert layer.kernel_posterior.dtype == tf.float64
    assert layer.losses[0].dtype == tf.float64


def test_activity_regularizer_adds_a_loss_after_the_divergence(rng):
    layer = Conv3DReparameterization(filters=2, kernel_size=2, activity_regularizer="l2")
    layer(volumes(rng, (1, 3, 3, 3, 1)))
    assert len(layer.losses) == 2
    assert layer.get_config()["activity_regularizer"] is not None
