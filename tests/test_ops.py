"""The sampling ops under the estimators: their distribution and their gradient."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from tfprobr_bridge.layers import ops as _ops


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_standard_normal_is_standard_normal(dtype):
    tf.random.set_seed(7)
    draws = _ops.standard_normal(tf.constant([1001, 201]), dtype)
    assert draws.dtype == tf.as_dtype(dtype) and tuple(draws.shape) == (1001, 201)
    values = np.asarray(tf.cast(draws, tf.float64)).ravel()
    # Half precision rounds each draw; the test asks what it can keep.
    ks_bound = 0.01 if dtype in ("float16", "bfloat16") else 0.004
    assert stats.kstest(values, "norm").statistic < ks_bound
    assert abs(values.mean()) < 5 / np.sqrt(values.size)
    assert abs(values.var() - 1) < 5 * np.sqrt(2 / values.size) + (0.01 if "16" in dtype else 0)


def test_standard_normal_pairs_are_independent():
    # Box-Muller makes each draw's partner from the same radius: the radius
    # must not couple them (the squares would correlate).
    tf.random.set_seed(8)
    values = np.asarray(_ops.standard_normal([2_000_000], "float32"), dtype=np.float64)
    first, second = values[:1_000_000], values[1_000_000:]
    bound = 5 / np.sqrt(first.size)
    assert abs(np.corrcoef(first, second)[0, 1]) < bound
    assert abs(np.corrcoef(first**2, second**2)[0, 1]) < bound


@pytest.mark.parametrize("shape", [[0], [1], [7], [3, 5], [2, 0, 4]])
def test_standard_normal_takes_any_size_including_odd_and_empty(shape):
    assert tuple(_ops.standard_normal(shape, "float32").shape) == tuple(shape)


def test_standard_normal_with_a_seed_generator_repeats():
    first = _ops.standard_normal([9], "float32", keras.random.SeedGenerator(3))
    again = _ops.standard_normal([9], "float32", keras.random.SeedGenerator(3))
    other = _ops.standard_normal([9], "float32", keras.random.SeedGenerator(4))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("dtype, floor", [("float32", 1.2e-38), ("float16", 6.2e-5)])
def test_fused_draw_has_the_gradient_of_the_op_by_op_expression(dtype, floor):
    rng = np.random.default_rng(0)
    # Zero windows (variance 0), values below and around the floor, ordinary values.
    variance = np.concatenate(
        [np.zeros(4), [floor / 4, floor, floor * 4], rng.uniform(0.01, 2.0, 25)]
    ).astype(dtype)
    mean = tf.constant(rng.normal(size=variance.shape).astype(dtype))
    variance = tf.constant(variance)
    noise = tf.constant(rng.normal(size=variance.shape).astype(dtype))
    upstream = tf.constant(rng.normal(size=variance.shape).astype(dtype))

    def gradients(draw):
        with tf.GradientTape() as tape:
            tape.watch([mean, variance])
            outputs = draw(mean, variance)
            loss = tf.reduce_sum(outputs * upstream)
        return outputs, tape.gradient(loss, [mean, variance])

    fused_outputs, fused = gradients(
        lambda m, v: _ops.normal_with_scale_gradient(m, v, noise, floor)
    )
    plain_outputs, plain = gradients(lambda m, v: m + tf.sqrt(tf.maximum(v, floor)) * noise)
    tolerance = 1e-6 if dtype == "float32" else 2e-3
    np.testing.assert_allclose(fused_outputs, plain_outputs, rtol=tolerance)
    for ours, theirs in zip(fused, plain):
        assert np.all(np.isfinite(ours))
        np.testing.assert_allclose(ours, theirs, rtol=tolerance)
    # At and below the floor the scale is the floor's: no gradient to the variance.
    assert np.all(np.asarray(fused[1])[:5] == 0)
