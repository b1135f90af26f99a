"""TFP's callable protocol, checked with fixed distributions (as TFP's own tests do)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from helpers import volumes

import tfprobr_bridge
from tfprobr_bridge import Conv3DReparameterization
from tfprobr_bridge import default_mean_field_normal_fn

tfd = tfp.distributions


class Recorder:
    """Posterior/prior fns whose distributions sample a fixed tensor, with call logs."""

    def __init__(self, rng, kernel_shape, filters):
        self.kernel = rng.standard_normal(kernel_shape).astype("float32")
        self.bias = rng.standard_normal((filters,)).astype("float32")
        self.fn_calls = []
        self.divergence_calls = []
        self.tensor_calls = []

    def make_fn(self, value):
        def fn(dtype, shape, name, trainable, add_variable_fn):
            self.fn_calls.append((dtype, tuple(shape), name, trainable, add_variable_fn))
            return tfd.Deterministic(loc=tf.constant(value))

        return fn

    def tensor_fn(self, distribution):
        sample = distribution.sample()
        self.tensor_calls.append(sample)
        return sample

    def divergence_fn(self, result):
        def fn(q, p, sample):
            self.divergence_calls.append((q, p, sample))
            return tf.constant(result)

        return fn


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_fixed_distributions_give_the_exact_convolution(rng, data_format):
    filters, channels = 3, 2
    recorder = Recorder(rng, (2, 2, 2, channels, filters), filters)
    layer = Conv3DReparameterization(
        filters,
        kernel_size=2,
        padding="same",
        data_format=data_format,
        kernel_posterior_fn=recorder.make_fn(recorder.kernel),
        kernel_posterior_tensor_fn=recorder.tensor_fn,
        kernel_prior_fn=recorder.make_fn(np.zeros_like(recorder.kernel)),
        kernel_divergence_fn=recorder.divergence_fn(1.5),
        bias_posterior_fn=recorder.make_fn(recorder.bias),
        bias_posterior_tensor_fn=recorder.tensor_fn,
        bias_prior_fn=recorder.make_fn(np.zeros_like(recorder.bias)),
        bias_divergence_fn=recorder.divergence_fn(2.5),
    )
    shape = (2, 4, 5, 6, channels) if data_format == "channels_last" else (2, channels, 4, 5, 6)
    x = volumes(rng, shape)
    outputs = layer(x)

    channels_last = x if data_format == "channels_last" else np.transpose(x, (0, 2, 3, 4, 1))
    expected = tf.nn.conv3d(channels_last, recorder.kernel, [1] * 5, "SAME") + recorder.bias
    if data_format == "channels_first":
        expected = tf.transpose(expected, (0, 4, 1, 2, 3))
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)

    # fn(dtype, shape, name, trainable, add_variable_fn), in TFP's order.
    assert [call[1:4] for call in recorder.fn_calls] == [
        ((2, 2, 2, channels, filters), "kernel_posterior", True),
        ((2, 2, 2, channels, filters), "kernel_prior", True),
        ((filters,), "bias_posterior", True),
        ((filters,), "bias_prior", True),
    ]
    assert all(call[0] == tf.float32 for call in recorder.fn_calls)
    assert all(callable(call[4]) for call in recorder.fn_calls)

    # Losses are exactly the divergence fns' results, kernel first.
    assert [float(loss) for loss in layer.losses] == [1.5, 2.5]
    # The divergence fns get (posterior, prior, the very tensor the tensor fn returned).
    (kq, kp, ksample), (bq, bp, bsample) = recorder.divergence_calls
    assert kq is layer.kernel_posterior and kp is layer.kernel_prior
    assert bq is layer.bias_posterior and bp is layer.bias_prior
    assert ksample is recorder.tensor_calls[0]
    assert bsample is recorder.tensor_calls[1]


def test_divergence_skipped_when_fn_posterior_or_prior_is_none(rng):
    x = volumes(rng, (1, 3, 3, 3, 1))
    no_kernel_fn = Conv3DReparameterization(2, 1, kernel_divergence_fn=None)
    no_kernel_fn(x)
    assert no_kernel_fn.losses == []
    no_prior = Conv3DReparameterization(2, 1, kernel_prior_fn=None)
    no_prior(x)
    assert no_prior.losses == []
    no_bias = Conv3DReparameterization(
        2, 1, bias_posterior_fn=None, bias_prior_fn=lambda *args: None
    )
    no_bias(x)
    assert len(no_bias.losses) == 1  # The kernel's only.


def test_tfp_closures_are_accepted_and_learn(rng):
    util = tfp.layers.util
    layer = Conv3DReparameterization(
        2,
        2,
        kernel_posterior_fn=util.default_mean_field_normal_fn(),
        kernel_prior_fn=util.default_multivariate_normal_fn,
        bias_posterior_fn=util.default_mean_field_normal_fn(is_singular=True),
    )
    x = volumes(rng, (2, 3, 3, 3, 1))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) ** 2) + tf.add_n(layer.losses)
    gradients = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None for g in gradients)


def test_gradients_reach_every_posterior_variable(rng):
    layer = Conv3DReparameterization(
        2,
        2,
        bias_posterior_fn=default_mean_field_normal_fn(),
    )
    x = volumes(rng, (2, 3, 3, 3, 1))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) ** 2) + tf.add_n(layer.losses)
    gradients = tape.gradient(loss, layer.trainable_weights)
    assert len(gradients) == 4
    assert all(g is not None and np.any(g.numpy() != 0) for g in gradients)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_fit_changes_every_posterior_variable_and_lowers_the_loss(rng, data_format):
    shape = (6, 6, 6, 1) if data_format == "channels_last" else (1, 6, 6, 6)
    model = keras.Sequential(
        [
            keras.Input(shape),
            Conv3DReparameterization(
                4, 3, activation="relu", data_format=data_format,
                kernel_divergence_fn=lambda q, p, _: tfd.kl_divergence(q, p) / 1000.0,
            ),
            keras.layers.GlobalAveragePooling3D(data_format=data_format),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    x = volumes(rng, (32, *shape))
    y = x.mean(axis=(1, 2, 3, 4))[:, None] * 10
    before = [w.numpy() for w in model.layers[0].weights]
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    after = [w.numpy() for w in model.layers[0].weights]
    changed = [not np.allclose(b, a) for b, a in zip(before, after)]
    assert changed == [True, True, True]
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_divergences_enter_the_training_objective(rng):
    kernel = rng.standard_normal((1, 1, 1, 1, 1)).astype("float32")

    def fixed(value):
        def fn(dtype, shape, name, trainable, add_variable_fn):
            return tfd.Deterministic(loc=tf.constant(value))

        return fn

    model = keras.Sequential(
        [
            keras.Input((2, 2, 2, 1)),
            Conv3DReparameterization(
                1,
                1,
                kernel_posterior_fn=fixed(kernel),
                kernel_prior_fn=fixed(kernel),
                kernel_divergence_fn=lambda q, p, sample: tf.constant(5.0),
                bias_posterior_fn=None,
            ),
            keras.layers.Flatten(),
        ]
    )
    model.compile(loss="mse")
    x = volumes(rng, (4, 2, 2, 2, 1))
    y = np.zeros((4, 8), "float32")
    data_loss = float(np.mean((x.reshape(4, 8) * kernel.item()) ** 2))
    assert model.evaluate(x, y, verbose=0) == pytest.approx(data_loss + 5.0, rel=1e-5)


@pytest.mark.slow  # statistical: many draws
def test_default_sample_draws_the_same_distribution_as_tfp(rng):
    loc = tf.constant(rng.standard_normal((4, 5)).astype("float32"))
    scale = tf.constant(rng.uniform(0.5, 2.0, (4, 5)).astype("float32"))
    normal = tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=2)
    draws = np.stack([tfprobr_bridge.sample(normal).numpy() for _ in range(4000)])
    assert draws.shape == (4000, 4, 5)
    # Mean and std per element within Monte Carlo error of TFP's distribution.
    np.testing.assert_allclose(draws.mean(0), loc, atol=5 * scale.numpy().max() / np.sqrt(4000))
    np.testing.assert_allclose(draws.std(0), scale, rtol=0.1)
    point = tfd.Independent(tfd.Deterministic(loc), reinterpreted_batch_ndims=2)
    np.testing.assert_array_equal(tfprobr_bridge.sample(point), loc)
    # Anything else goes to TFP's own sample().
    other = tfd.Independent(tfd.Laplace(loc, scale), reinterpreted_batch_ndims=2)
    assert tfprobr_bridge.sample(other).shape == (4, 5)
    variable = tf.Variable(loc)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(tfprobr_bridge.sample(tfd.Independent(tfd.Normal(variable, scale), 2)))
    np.testing.assert_allclose(tape.gradient(total, variable), 1.0)
