"""predict_mc and the serialisable scaled KL."""

import gc
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from helpers import volumes

import tfprobr_bridge
from tfprobr_bridge import Conv3DReparameterization
from tfprobr_bridge import predict_mc
from tfprobr_bridge import scaled_kl_divergence_fn


def _model(**kwargs):
    return keras.Sequential(
        [
            keras.Input((4, 4, 4, 1)),
            Conv3DReparameterization(
                3, 3, padding="same",
                kernel_posterior_fn=tfprobr_bridge.default_mean_field_normal_fn(
                    untransformed_scale_initializer=keras.initializers.Constant(-1.0)
                ),
                **kwargs,
            ),
            keras.layers.Softmax(),
        ]
    )


@pytest.mark.slow  # statistical: many draws
def test_statistics_match_a_plain_loop_within_monte_carlo_error(rng):
    model = _model()
    x = volumes(rng, (5, 4, 4, 4, 1))
    n = 400
    result = predict_mc(model, x, n_samples=n, batch_size=2)
    loop = np.stack([model(x).numpy() for _ in range(n)])
    loop_mean, loop_std = loop.mean(axis=0), loop.std(axis=0)
    assert result["mean"].shape == result["stddev"].shape == loop_mean.shape
    # Two independent estimates of the same mean: their difference has
    # standard error sqrt(2) * std / sqrt(n); allow five of those.
    tolerance = 5 * np.sqrt(2) * loop_std / np.sqrt(n) + 1e-6
    assert np.all(np.abs(result["mean"] - loop_mean) <= tolerance)
    # The std estimates agree to within 25% where the spread is not tiny.
    spread = loop_std > 0.01
    assert spread.mean() > 0.5
    np.testing.assert_allclose(result["stddev"][spread], loop_std[spread], rtol=0.25)


def test_kept_samples_give_the_returned_statistics(rng):
    model = _model()
    x = volumes(rng, (3, 4, 4, 4, 1))
    result = predict_mc(model, x, n_samples=7, batch_size=2, return_samples=True)
    samples = result["samples"]
    assert samples.shape == (7, 3, 4, 4, 4, 3)
    assert not np.allclose(samples[0], samples[1])  # Every draw is new.
    np.testing.assert_allclose(result["mean"], samples.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result["stddev"], samples.std(axis=0), rtol=1e-3, atol=1e-5)


def test_the_traced_function_is_built_once_for_repeated_calls(rng):
    model = _model()
    for batch, n_samples, batch_size in [(5, 3, 2), (2, 10, 4), (7, 1, 7), (1, 30, 1)]:
        predict_mc(model, volumes(rng, (batch, 4, 4, 4, 1)), n_samples=n_samples,
                   batch_size=batch_size)
    traced = model._tfprobr_predict_mc_cache.functions  # noqa: SLF001 -- the cache under test
    assert len(traced) == 1
    assert next(iter(traced.values())).experimental_get_tracing_count() == 1


@pytest.mark.slow  # builds, calls and drops models until the memory settles
def test_a_model_used_with_predict_mc_is_freed_when_dropped(rng):
    """The traced functions close over the model; caching them anywhere but on
    the model would keep every model alive (3 of 3 were, before)."""
    x = volumes(rng, (3, 4, 4, 4, 1))
    references = []
    for _ in range(3):
        model = keras.Sequential([Conv3DReparameterization(2, 3, padding="same"),
                                  keras.layers.Flatten()])
        predict_mc(model, x, n_samples=2)
        references.append(weakref.ref(model))
        del model
    gc.collect()
    assert [reference() for reference in references] == [None, None, None]


def test_a_model_changed_after_a_call_gets_a_new_trace(rng):
    x = volumes(rng, (3, 4, 4, 4, 1))
    model = keras.Sequential([Conv3DReparameterization(2, 3, padding="same"),
                              keras.layers.Flatten()])
    assert predict_mc(model, x, n_samples=2)["mean"].shape == (3, 4**3 * 2)
    model.add(keras.layers.Dense(5))
    assert predict_mc(model, x, n_samples=2)["mean"].shape == (3, 5)
    model.pop()
    assert predict_mc(model, x, n_samples=2)["mean"].shape == (3, 4**3 * 2)
    # The trace reads the variables, not values captured when it was made.
    for variable in model.layers[0].trainable_variables:
        value = -30.0 if "untransformed_scale" in variable.name else 0.0
        variable.assign(np.full(variable.shape, value, "float32"))
    # Scale = softplus(-30) + float32 eps, about 1e-7 per weight.
    np.testing.assert_allclose(predict_mc(model, x, n_samples=2)["mean"], 0.0, atol=1e-4)


def test_a_model_with_two_inputs_takes_a_list_or_a_dict(rng):
    shared = Conv3DReparameterization(2, 3, padding="same")
    first, second = keras.Input((4, 4, 4, 1), name="first"), keras.Input((4, 4, 4, 1), name="second")
    pool = keras.layers.GlobalAveragePooling3D()
    outputs = keras.layers.Concatenate()([pool(shared(first)), pool(shared(second))])
    model = keras.Model([first, second], outputs)
    a, b = volumes(rng, (5, 4, 4, 4, 1)), volumes(rng, (5, 4, 4, 4, 1))
    as_list = predict_mc(model, [a, b], n_samples=4, batch_size=2)
    assert as_list["mean"].shape == as_list["stddev"].shape == (5, 4)
    as_dict = predict_mc(model, {"first": a, "second": b}, n_samples=4)
    assert as_dict["mean"].shape == (5, 4)
    with pytest.raises(ValueError, match="same number of examples"):
        predict_mc(model, [a, b[:3]], n_samples=2)


def test_deterministic_model_has_zero_spread(rng):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    result = predict_mc(model, volumes(rng, (4, 3)), n_samples=5)
    np.testing.assert_allclose(result["stddev"], 0.0, atol=1e-6)


def test_deterministic_classifier_has_no_mutual_information(rng):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Softmax()])
    x = volumes(rng, (6, 3))
    result = predict_mc(model, x, n_samples=5, batch_size=4, classifier=True)
    probabilities = model(x).numpy().astype(np.float64)
    entropy = -np.sum(probabilities * np.log(probabilities), axis=-1)
    np.testing.assert_allclose(result["predictive_entropy"], entropy, rtol=1e-5)
    np.testing.assert_allclose(result["expected_entropy"], entropy, rtol=1e-5)
    np.testing.assert_allclose(result["mutual_information"], 0.0, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(n_samples=0), ValueError, r"`n_samples` must be a positive integer\. Received: n_samples=0"),
        (dict(n_samples=2.5), ValueError, r"`n_samples` .*Received: n_samples=2\.5"),
        (dict(batch_size="8"), TypeError, r"`batch_size` must be a positive integer"),
        (dict(return_samples="yes"), TypeError, r"`return_samples` must be True or False"),
        (dict(classifier="yes"), TypeError, r"`classifier` must be True or False"),
        (dict(from_logits=True), ValueError, r"`from_logits=True` needs `classifier=True`"),
    ],
)
def test_bad_arguments(rng, kwargs, error, message):
    with pytest.raises(error, match=message):
        predict_mc(_model(), volumes(rng, (1, 4, 4, 4, 1)), **kwargs)


def test_bad_model_and_inputs():
    with pytest.raises(TypeError, match=r"`model` must be a Keras model or layer"):
        predict_mc("model", np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"`x` must have a leading batch axis"):
        predict_mc(_model(), np.zeros((0, 4, 4, 4, 1), "float32"))


def test_scaled_kl_equals_the_kl_divided_by_n(rng):
    layer = Conv3DReparameterization(2, 2)
    layer.build((None, 3, 3, 3, 1))
    full = tfp.distributions.kl_divergence(layer.kernel_posterior, layer.kernel_prior)
    scaled = scaled_kl_divergence_fn(1000)(layer.kernel_posterior, layer.kernel_prior, None)
    np.testing.assert_allclose(float(scaled), float(full) / 1000, rtol=1e-6)
    assert scaled.dtype == tf.float32
    assert scaled_kl_divergence_fn(1000) == scaled_kl_divergence_fn(1000.0)
    assert repr(scaled_kl_divergence_fn(1000)) == "scaled_kl_divergence_fn(num_examples=1000)"


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-5, ValueError), (float("nan"), ValueError),
                                        ("10", TypeError), (True, TypeError)])
def test_scaled_kl_rejects_bad_counts(bad, error):
    with pytest.raises(error, match=r"`num_examples` must be a positive number"):
        scaled_kl_divergence_fn(bad)


def test_a_model_with_the_scaled_kl_round_trips_in_safe_mode(tmp_path, rng):
    model = _model(kernel_divergence_fn=scaled_kl_divergence_fn(250))
    model.compile(optimizer="adam", loss="mse")
    x = volumes(rng, (4, 4, 4, 4, 1))
    model.fit(x, np.full((4, 4, 4, 4, 3), 1 / 3, "float32"), epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # Safe mode: no pickled code involved.
    restored_fn = loaded.layers[0].kernel_divergence_fn
    assert restored_fn == scaled_kl_divergence_fn(250)
    loaded(x)
    model(x)
    np.testing.assert_allclose(float(loaded.losses[0]), float(model.losses[0]), rtol=1e-6)
    # The same posterior and the same keyed draws: the same predictions.
    before = predict_mc(model, x, n_samples=200, seed=5)["mean"]
    after = predict_mc(loaded, x, n_samples=200, seed=5)["mean"]
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-7)
