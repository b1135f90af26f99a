"""predict_volume: whole-volume Monte Carlo inference by overlapping windows."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfprobr_bridge import Conv3DReparameterization
from tfprobr_bridge import predict_volume
from tfprobr_bridge.layers.seeding import monte_carlo_sample
from tfprobr_bridge.uncertainty import volume as volume_module

# Hundreds of windowed Monte Carlo runs over volumes: make test runs them, make test-fast
# leaves them out.
pytestmark = pytest.mark.slow


def _identity(channels=1):
    return keras.Sequential([keras.Input((None, None, None, channels)), keras.layers.Identity()])


def _pointwise(classes=3, seed=None, softmax=True):
    """A Bayesian 1x1x1 convolution: each voxel's output depends on that voxel alone, and
    draw i is one kernel everywhere (draws are keyed by (seed, i))."""
    layers = [keras.Input((None, None, None, 1)),
              Conv3DReparameterization(classes, 1, seed=seed)]
    return keras.Sequential(layers + ([keras.layers.Softmax()] if softmax else []))


SHAPES = [(13, 7, 20), (4, 5, 6), (3, 2, 9), (1, 1, 1), (17, 16, 15)]
PATCHES = [(4, 5, 6), (6, 6, 6), (1, 3, 2)]
OVERLAPS = [0, 0.25, 0.5, 0.9, (0, 0.5, 0.75)]


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
@pytest.mark.parametrize("overlap", OVERLAPS, ids=str)
@pytest.mark.parametrize("patch", PATCHES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_an_identity_network_returns_the_volume(shape, patch, overlap, blend, rng):
    volume = rng.normal(size=shape).astype("float32")
    result = predict_volume(_identity(), volume, patch_size=patch, overlap=overlap, blend=blend,
                            n_samples=1, verbose=0, classifier=False)
    assert result["mean"].shape == (*shape, 1)
    np.testing.assert_allclose(result["mean"][..., 0], volume, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result["std"], 0)


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
@pytest.mark.parametrize("overlap", OVERLAPS, ids=str)
@pytest.mark.parametrize("patch", PATCHES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_blending_weights_sum_to_one_and_cover_every_voxel(shape, patch, overlap, blend):
    padded_shape = tuple(max(size, window) for size, window in zip(shape, patch))
    starts = volume_module._window_starts(padded_shape, patch, volume_module._overlap(overlap))
    weights = volume_module._blend_weights(patch, blend)
    total = volume_module._total_weight(padded_shape, starts, patch, weights)
    assert np.all(total > 0)  # every voxel is covered
    shares = np.zeros(padded_shape)
    for corner in itertools.product(*starts):
        region = volume_module._slices(corner, patch)
        shares[region] += weights / total[region]
    np.testing.assert_allclose(shares, 1, rtol=1e-5)  # float32 sums of up to ~100 windows


def test_the_gaussian_has_sigma_an_eighth_of_the_window():
    weights = volume_module._blend_weights((16, 16, 16), "gaussian").astype(np.float64)
    profile = weights[:, 7, 7]  # through the centre along the first axis
    x = np.arange(16) - 7.5
    sigma = 16 / 8
    expected = np.exp(-(x**2 - 0.5**2) / (2 * sigma**2))  # relative to the central voxels
    above_floor = profile > 10 * volume_module.WEIGHT_FLOOR
    np.testing.assert_allclose(profile[above_floor] / profile[7], expected[above_floor], rtol=1e-5)
    assert weights.max() == 1 and weights.min() == pytest.approx(volume_module.WEIGHT_FLOOR)


def test_translation_moves_the_outputs_with_the_volume(rng):
    model = _pointwise()
    volume = rng.normal(size=(14, 12, 10)).astype("float32")
    shifted = np.roll(volume, 3, axis=0)
    first = predict_volume(model, volume, patch_size=(6, 5, 4), n_samples=5, seed=2, verbose=0)
    second = predict_volume(model, shifted, patch_size=(6, 5, 4), n_samples=5, seed=2, verbose=0)
    for key in ("probabilities", "std", "mutual_information", "predictive_entropy"):
        np.testing.assert_allclose(np.roll(first[key], 3, axis=0), second[key], rtol=1e-4,
                                   atol=1e-6, err_msg=key)


def _draws(model, volume, n_samples, seed):
    x = volume[np.newaxis, ..., np.newaxis].astype("float32")
    draws = []
    for index in range(n_samples):
        with monte_carlo_sample(tf.constant(seed, tf.int64), tf.constant(index)):
            draws.append(np.asarray(model(x, training=False))[0])
    return np.stack(draws).astype(np.float64)


def _entropy(p):
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), axis=-1)


@pytest.mark.parametrize("patch, blend", [((5, 6, 7), "gaussian"), ((3, 4, 5), "constant"),
                                          ((3, 4, 5), "gaussian")])
def test_the_maps_equal_numpy_from_the_stored_draws(patch, blend, rng):
    """A pointwise model: every window gives a voxel the same draws, so the blended maps
    are the draws' own statistics, computed here in NumPy from the draws themselves."""
    model = _pointwise()
    volume = rng.normal(size=(5, 6, 7)).astype("float32") * 3
    result = predict_volume(model, volume, patch_size=patch, blend=blend, n_samples=12, seed=4,
                            verbose=0)
    draws = _draws(model, volume, 12, seed=4)
    mean = draws.mean(axis=0)
    predictive = _entropy(mean)
    expected = _entropy(draws).mean(axis=0)
    np.testing.assert_allclose(result["probabilities"], mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result["std"], draws.std(axis=0), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(result["predictive_entropy"], predictive, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result["expected_entropy"], expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result["mutual_information"], np.maximum(predictive - expected, 0),
                               atol=2e-5)
    np.testing.assert_array_equal(result["labels"], mean.argmax(-1))
    # Each draw's class volumes: its probabilities summed over the voxels.
    np.testing.assert_allclose(result["draw_volumes"], draws.sum(axis=(1, 2, 3)), rtol=1e-4)


def test_a_regression_model_gives_mean_and_std(rng):
    model = _pointwise(classes=1, softmax=False)
    volume = rng.normal(size=(6, 7, 8)).astype("float32")
    result = predict_volume(model, volume, patch_size=4, n_samples=8, seed=1, verbose=0)
    draws = _draws(model, volume, 8, seed=1)
    assert set(result) == {"mean", "std", "windows", "seconds"}
    np.testing.assert_allclose(result["mean"], draws.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result["std"], draws.std(0), rtol=1e-3, atol=1e-5)


def test_logits_and_a_channel_axis(rng):
    model = _pointwise(softmax=False)
    volume = rng.normal(size=(6, 6, 6, 1)).astype("float32")
    result = predict_volume(model, volume, patch_size=4, n_samples=4, seed=1, verbose=0,
                            from_logits=True)
    np.testing.assert_allclose(result["probabilities"].sum(-1), 1, rtol=1e-5)
    assert np.all(result["mutual_information"] >= 0)


def test_the_patch_size_comes_from_the_model_and_seeds_repeat(rng):
    model = keras.Sequential([keras.Input((6, 6, 6, 1)),
                              Conv3DReparameterization(2, 3, padding="same"),
                              keras.layers.Softmax()])
    volume = rng.normal(size=(9, 8, 7)).astype("float32")
    first = predict_volume(model, volume, n_samples=3, seed=9, verbose=0)
    again = predict_volume(model, volume, n_samples=3, seed=9, verbose=0)
    np.testing.assert_array_equal(first["probabilities"], again["probabilities"])
    other = predict_volume(model, volume, n_samples=3, seed=10, verbose=0)
    assert not np.array_equal(first["probabilities"], other["probabilities"])


def test_a_deterministic_model_is_refused_unless_one_pass_is_asked_for(rng):
    volume = rng.normal(size=(5, 5, 5)).astype("float32")
    deterministic = keras.Sequential([keras.Input((None, None, None, 1)),
                                      keras.layers.Conv3D(2, 1), keras.layers.Softmax()])
    with pytest.raises(ValueError, match=r"draws are all the same: it is deterministic.*"
                       r"n_samples=1 for a single pass"):
        predict_volume(deterministic, volume, patch_size=4, n_samples=5, verbose=0)
    # Dropout is off at inference: the same.
    dropout = keras.Sequential([keras.Input((None, None, None, 1)), keras.layers.Conv3D(2, 1),
                                keras.layers.Dropout(0.5), keras.layers.Softmax()])
    with pytest.raises(ValueError, match=r"draws are all the same"):
        predict_volume(dropout, volume, patch_size=4, n_samples=5, verbose=0)
    single = predict_volume(deterministic, volume, patch_size=4, n_samples=1, verbose=0)
    np.testing.assert_array_equal(single["std"], 0)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"volume": np.ones((4, 4))}, ValueError, r"`volume` must be 3-D .* Received: volume of shape \(4, 4\)"),
    ({"volume": np.full((4, 4, 4), np.nan)}, ValueError, r"64 NaN or infinite voxels"),
    ({"volume": np.ones((4, 4, 4, 2))}, ValueError, r"`volume` has 2 channel\(s\), but the model takes 1"),
    ({"volume": np.array([["a"]])}, TypeError, r"`volume` must be an array of numbers"),
    ({"overlap": 1.0}, ValueError, r"`overlap` must be a number in \[0, 1\)"),
    ({"overlap": (0.5, 0.5)}, ValueError, r"`overlap` must be a number in \[0, 1\)"),
    ({"blend": "median"}, ValueError, r'`blend` must be "gaussian" or "constant"'),
    ({"patch_size": (4, 4)}, ValueError, r"`patch_size` must be a positive integer or a list of 1 or 3"),
    ({"n_samples": 0}, ValueError, r"`n_samples` must be a positive integer"),
    ({"verbose": "loud"}, ValueError, r"`verbose` must be"),
])
def test_bad_arguments_are_named(kwargs, error, message):
    model = keras.Sequential([keras.Input((4, 4, 4, 1)), Conv3DReparameterization(2, 1)])
    arguments = {"model": model, "volume": np.ones((5, 5, 5)), "n_samples": 2, "verbose": 0}
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        predict_volume(**arguments)


def test_a_model_without_a_fixed_input_needs_a_patch_size():
    with pytest.raises(ValueError, match=r"`patch_size` is required"):
        predict_volume(_pointwise(), np.ones((4, 4, 4)), n_samples=2, verbose=0)
