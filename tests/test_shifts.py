"""Scanner shifts (tfprobr_bridge.datasets.simulate_shift): the ROOD-MRI / TorchIO families."""

import numpy as np
import pytest

from tfprobr_bridge.datasets import SHIFT_KINDS
from tfprobr_bridge.datasets import SHIFT_LEVELS
from tfprobr_bridge.datasets import shift_parameter
from tfprobr_bridge.datasets import simulate_shift


def _volume(shape=(24, 28, 20), dtype="float32"):
    """A smooth, brain-like volume: a bright ellipsoid with a darker shell, on a zero background."""
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    radius = np.sqrt(sum(g**2 for g in grids))
    volume = np.where(radius < 0.5, 0.9, np.where(radius < 0.8, 0.55, 0.0))
    texture = 0.05 * np.sin(6 * grids[0]) * np.cos(5 * grids[1]) * (radius < 0.8)
    return (volume + texture).astype(dtype)


def _rmse(a, b):
    return float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


@pytest.mark.parametrize("kind", SHIFT_KINDS)
def test_severity_zero_returns_the_input(kind):
    volume = _volume()
    shifted = simulate_shift(volume, kind, 0)
    np.testing.assert_array_equal(shifted, volume)
    assert shifted.dtype == volume.dtype
    assert shifted is not volume  # a copy: changing it leaves the input alone


@pytest.mark.parametrize("kind", SHIFT_KINDS)
def test_distortion_grows_with_severity(kind):
    volume = _volume()
    errors = [_rmse(simulate_shift(volume, kind, severity, seed=3), volume)
              for severity in range(6)]
    assert errors[0] == 0
    assert all(later > earlier for earlier, later in zip(errors, errors[1:])), errors


@pytest.mark.parametrize("kind", SHIFT_KINDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_outputs_are_finite_with_the_input_shape_and_dtype(kind, dtype):
    volume = _volume(dtype=dtype)
    for severity in (1, 5):
        shifted = simulate_shift(volume, kind, severity, seed=1)
        assert shifted.shape == volume.shape and shifted.dtype == volume.dtype
        assert np.all(np.isfinite(shifted))


@pytest.mark.parametrize("kind", SHIFT_KINDS)
def test_a_standardised_volume_with_negative_values_stays_finite(kind):
    volume = _volume()
    standardised = (volume - volume.mean()) / volume.std()
    shifted = simulate_shift(standardised, kind, 5, seed=2)
    assert np.all(np.isfinite(shifted)) and shifted.shape == standardised.shape


@pytest.mark.parametrize("kind", SHIFT_KINDS)
def test_a_seed_repeats_its_shift(kind):
    volume = _volume()
    first = simulate_shift(volume, kind, 4, seed=11)
    np.testing.assert_array_equal(first, simulate_shift(volume, kind, 4, seed=11))


@pytest.mark.parametrize("kind", ["bias_field", "rician_noise"])
def test_random_kinds_differ_between_seeds(kind):
    volume = _volume()
    assert not np.array_equal(simulate_shift(volume, kind, 3, seed=1),
                              simulate_shift(volume, kind, 3, seed=2))


def test_r_shaped_arguments_are_accepted():
    # From R, 3 arrives as 3.0 and a volume may be float64 or integer.
    volume = _volume()
    np.testing.assert_array_equal(simulate_shift(volume, "blur", 3.0, seed=1.0),
                                  simulate_shift(volume, "blur", 3, seed=1))
    integers = (volume * 100).astype(np.int32)
    shifted = simulate_shift(integers, "blur", 2)
    assert shifted.dtype == np.float32 and shifted.shape == integers.shape


def test_channels_last_volumes_shift_each_channel_alike():
    volume = _volume()
    stacked = np.stack([volume, 2 * volume], axis=-1)
    shifted = simulate_shift(stacked, "anisotropic", 3)
    assert shifted.shape == stacked.shape
    np.testing.assert_allclose(shifted[..., 0], simulate_shift(volume, "anisotropic", 3),
                               rtol=1e-6)


def test_each_kind_distorts_as_described():
    volume = _volume()
    # A bias field multiplies: where the volume is 0 (its minimum) it stays 0.
    biased = simulate_shift(volume, "bias_field", 5, seed=0)
    np.testing.assert_allclose(biased[volume == 0], 0)
    assert np.std(biased[volume > 0.8] / volume[volume > 0.8]) > 0.05
    # Rician noise is a magnitude: never below the background, and biased upward there.
    noisy = simulate_shift(volume, "rician_noise", 5, seed=0)
    assert noisy.min() >= volume.min() and noisy[volume == 0].mean() > 0.01
    # Thick slices along axis 2 leave each line along axes 0 and 1 of a constant-in-z volume alone.
    flat = np.repeat(volume[:, :, 10:11], 20, axis=2)
    np.testing.assert_allclose(simulate_shift(flat, "anisotropic", 5), flat, atol=1e-6)
    thick = simulate_shift(volume, "anisotropic", 5, axis=0)
    assert _rmse(thick, volume) > 0
    # A blur keeps the mean intensity (edges extended) and lowers the peak.
    blurred = simulate_shift(volume, "blur", 5)
    assert blurred.max() < volume.max()
    assert abs(blurred.mean() - volume.mean()) < 0.02
    # Ghosts put signal in the background, a quarter of the field of view away.
    ghosted = simulate_shift(volume, "ghosting", 5)
    assert ghosted[volume == 0].mean() > 0.01


def test_shift_parameter_names_what_severity_sets():
    for kind, (name, levels) in SHIFT_LEVELS.items():
        assert len(levels) == 5 and list(levels) == sorted(levels)
        assert shift_parameter(kind, 5) == (name, levels[-1])
    assert shift_parameter("bias_field", 1) == ("coefficient_magnitude", 0.3)
    assert shift_parameter("bias_field", 5) == ("coefficient_magnitude", 1.5)
    assert shift_parameter("anisotropic", 1)[1] == 2 and shift_parameter("anisotropic", 5)[1] == 6


@pytest.mark.parametrize("arguments, error, message", [
    ({"kind": "motion"}, ValueError, r"`kind` must be one of 'bias_field'.*Received: kind='motion'"),
    ({"kind": 3}, ValueError, r"`kind` must be one of .*Received: kind=3"),
    ({"severity": 6}, ValueError, r"`severity` must be an integer from 0 \(no shift\) to 5\. "
                                  r"Received: severity=6"),
    ({"severity": -1}, ValueError, r"`severity` must be .*Received: severity=-1"),
    ({"severity": 2.5}, ValueError, r"`severity` must be .*Received: severity=2\.5"),
    ({"severity": "high"}, TypeError, r"`severity` must be .*Received: severity='high'"),
    ({"severity": True}, TypeError, r"`severity` must be .*Received: severity=True"),
    ({"seed": -3}, ValueError, r"`seed` must be None or an integer .*Received: seed=-3"),
    ({"seed": "a"}, ValueError, r"`seed` must be .*Received: seed='a'"),
    ({"axis": 3}, ValueError, r"`axis` must be 0, 1, 2 or None\. Received: axis=3"),
    ({"volume": np.zeros((4, 4))}, ValueError, r"`volume` must be 3-D .*shape \(4, 4\)"),
    ({"volume": np.zeros((4, 0, 4))}, ValueError, r"`volume` must be 3-D .*shape \(4, 0, 4\)"),
    ({"volume": np.array([[["a"]]])}, TypeError, r"`volume` must be an array of numbers"),
    ({"volume": np.full((4, 4, 4), np.nan)}, ValueError, r"`volume` must hold finite numbers"),
    ({"volume": np.zeros((4, 4, 4), complex)}, TypeError, r"`volume` must be an array of real"),
])
def test_bad_arguments_are_named(arguments, error, message):
    given = {"volume": _volume(), "kind": "blur", "severity": 2, "seed": 0}
    given.update(arguments)
    with pytest.raises(error, match=message):
        simulate_shift(**given)
