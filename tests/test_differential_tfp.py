"""Differential tests against TFP's own (tf_keras) variational layers.

A table over every class TFP has (``Convolution{1,2,3}D{Reparameterization,
Flipout}``, ``Dense{Reparameterization,Flipout,LocalReparameterization}``),
each with two geometries, compares our class with TFP's on the same weights
(copied with ``set_weights`` after checking that the variables' names, less
the layer's scope, match in order):

- output shapes (``compute_output_shape`` and the call's);
- the KL losses: how many, and their values;
- outputs with posterior-mean tensor fns (``lambda d: d.mean()``), against
  TFP's and against Keras's deterministic layer with the posterior means as
  its kernel and bias. Reparameterization then uses the kernel's mean; local
  reparameterization the output distribution's mean, ``linear(x, mu)``;
  Flipout the perturbation's mean, 0, so also ``linear(x, mu)``;
- for Flipout and local reparameterization, the moments over many draws
  (Monte Carlo): each output's mean and variance, their pooled variance
  ratio, and the covariance of two copies of one example in one batch,
  agree with TFP's and with the analytic values within 5 standard errors.

TFP draws Flipout's signs with its own seeded ``rademacher``; ours come from
the layer's Keras seed generator. So outputs are compared exactly only where
nothing is drawn, and by their distribution elsewhere. Every draw is seeded
(``tf.random.set_seed`` for TFP's, ``seed=`` for ours): no flakiness.
"""

import collections

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from helpers import assign_by_name
from helpers import fixed_tensor_fn
from hypothesis import HealthCheck
from hypothesis import assume
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import tfprobr_bridge
from tfprobr_bridge import Conv3DReparameterization

tfp_util = tfp.layers.util

# --------------------------------------------------------------------------
# The table: every class TFP has, two geometries each.
# --------------------------------------------------------------------------

Row = collections.namedtuple("Row", "name estimator rank ours theirs kwargs input_shape")

# (suffix, constructor kwargs, input shape) per rank; rank 0 is dense.
GEOMETRIES = {
    0: [
        ("rank2", dict(units=4), (2, 3)),
        ("rank3", dict(units=3), (2, 2, 3)),
    ],
    1: [
        ("channels_last", dict(filters=3, kernel_size=2, strides=2, padding="valid"), (2, 7, 3)),
        (
            "channels_first",
            dict(
                filters=2,
                kernel_size=3,
                padding="same",
                dilation_rate=2,
                data_format="channels_first",
            ),
            (2, 3, 5),
        ),
    ],
    2: [
        (
            "channels_last",
            dict(filters=3, kernel_size=(2, 3), strides=(2, 1), padding="valid"),
            (2, 5, 4, 3),
        ),
        (
            "channels_first",
            dict(
                filters=2,
                kernel_size=2,
                padding="same",
                dilation_rate=2,
                data_format="channels_first",
            ),
            (2, 3, 4, 3),
        ),
    ],
    3: [
        (
            "channels_last",
            dict(filters=2, kernel_size=2, strides=2, padding="valid"),
            (2, 4, 3, 5, 3),
        ),
        (
            "channels_first",
            dict(
                filters=2,
                kernel_size=(2, 1, 2),
                padding="same",
                dilation_rate=(1, 2, 2),
                data_format="channels_first",
            ),
            (2, 3, 2, 3, 3),
        ),
    ],
}


def _table():
    rows = []
    for rank, estimators in (
        (1, ("Reparameterization", "Flipout")),
        (2, ("Reparameterization", "Flipout")),
        (3, ("Reparameterization", "Flipout")),
        (0, ("Reparameterization", "Flipout", "LocalReparameterization")),
    ):
        for estimator in estimators:
            if rank:
                ours = getattr(tfprobr_bridge, f"Conv{rank}D{estimator}")
                theirs = getattr(tfp.layers, f"Convolution{rank}D{estimator}")
            else:
                ours = getattr(tfprobr_bridge, f"Dense{estimator}")
                theirs = getattr(tfp.layers, f"Dense{estimator}")
            for suffix, kwargs, input_shape in GEOMETRIES[rank]:
                rows.append(
                    Row(
                        f"{theirs.__name__}-{suffix}",
                        estimator,
                        rank,
                        ours,
                        theirs,
                        kwargs,
                        input_shape,
                    )
                )
    return rows


TABLE = _table()
STOCHASTIC_TABLE = [row for row in TABLE if row.estimator != "Reparameterization"]
BIAS = ["deterministic_bias", "bayesian_bias"]


def table(rows):
    return pytest.mark.parametrize("row", rows, ids=[row.name for row in rows])


def short_name(variable):
    """A variable's name without its layer's scope (TFP's also has ':0')."""
    return variable.name.split("/")[-1].split(":")[0]


def make_pair(row, bias, seed, tensor_fn=None, ours_seed=None):
    """TFP's layer and ours, built, ours holding TFP's (trained-looking) weights.

    TFP's variables get random values (locs ~ N(0, 0.5), untransformed
    scales ~ N(-1, 0.3), so scales near 0.3), which ``set_weights`` copies
    into ours once the names are checked to match in order.
    """
    theirs_kwargs, ours_kwargs = dict(row.kwargs), dict(row.kwargs)
    if bias == "bayesian_bias":
        theirs_kwargs.update(
            bias_posterior_fn=tfp_util.default_mean_field_normal_fn(),
            bias_prior_fn=tfp_util.default_multivariate_normal_fn,
        )
        ours_kwargs.update(
            bias_posterior_fn=tfprobr_bridge.default_mean_field_normal_fn(),
            bias_prior_fn=tfprobr_bridge.default_multivariate_normal_fn,
        )
    if tensor_fn is not None:
        for kwargs in (theirs_kwargs, ours_kwargs):
            kwargs.update(kernel_posterior_tensor_fn=tensor_fn, bias_posterior_tensor_fn=tensor_fn)
    theirs = row.theirs(**theirs_kwargs)
    ours = row.ours(**ours_kwargs, seed=ours_seed)
    theirs.build(row.input_shape)
    ours.build(row.input_shape)

    names = [short_name(v) for v in theirs.weights]
    assert [short_name(v) for v in ours.weights] == names
    rng = np.random.default_rng(seed)

    def trained_looking(name, variable):
        mean, stddev = (-1.0, 0.3) if "untransformed_scale" in name else (0.0, 0.5)
        return rng.normal(mean, stddev, size=tuple(variable.shape)).astype("float32")

    theirs.set_weights([trained_looking(n, v) for n, v in zip(names, theirs.weights)])
    ours.set_weights(theirs.get_weights())
    return theirs, ours


def inputs_for(row, seed=0):
    return np.random.default_rng(seed).standard_normal(row.input_shape).astype("float32")


def posterior_parameters(layer, bias):
    """(kernel mean, kernel variance, bias mean, bias variance) from the weights.

    As TFP's ``default_mean_field_normal_fn`` makes them: scale = eps +
    softplus(untransformed scale), eps float32's machine epsilon.
    """
    weights = {short_name(v): np.asarray(v, dtype="float64") for v in layer.weights}
    eps = np.finfo(np.float32).eps

    def variance(untransformed):
        return (eps + np.logaddexp(0.0, untransformed)) ** 2

    kernel_mean = weights["kernel_posterior_loc"]
    kernel_variance = variance(weights["kernel_posterior_untransformed_scale"])
    bias_mean = weights["bias_posterior_loc"]
    if bias == "bayesian_bias":
        bias_variance = variance(weights["bias_posterior_untransformed_scale"])
    else:
        bias_variance = np.zeros_like(bias_mean)
    return kernel_mean, kernel_variance, bias_mean, bias_variance


def keras_linear(row, x, kernel, bias):
    """The deterministic Keras layer of the row's geometry (Dense or ConvND) on ``x``."""
    kwargs = dict(row.kwargs)
    if row.rank == 0:
        layer = keras.layers.Dense(**kwargs)
    else:
        layer = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}[
            row.rank
        ](**kwargs)
    layer.build(x.shape)
    layer.set_weights([kernel.astype("float32"), bias.astype("float32")])
    return np.asarray(layer(x), dtype="float64")


def channel_shape(row, ndim):
    """Where a per-channel vector broadcasts against outputs of ``ndim`` dimensions."""
    shape = [1] * ndim
    shape[1 if row.kwargs.get("data_format") == "channels_first" else -1] = -1
    return shape


# --------------------------------------------------------------------------
# The table's comparisons.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("bias", BIAS)
@table(TABLE)
def test_variables_and_output_shapes(row, bias):
    """The same variables (names less the scope, shapes, order) and output shapes."""
    theirs, ours = make_pair(row, bias, seed=1)
    expected_names = [
        "kernel_posterior_loc",
        "kernel_posterior_untransformed_scale",
        "bias_posterior_loc",
    ]
    if bias == "bayesian_bias":
        expected_names.append("bias_posterior_untransformed_scale")
    assert [short_name(v) for v in ours.weights] == expected_names
    assert [tuple(v.shape) for v in ours.weights] == [tuple(v.shape) for v in theirs.weights]
    assert [short_name(v) for v in ours.trainable_weights] == [
        short_name(v) for v in theirs.trainable_weights
    ]
    for ours_weight, theirs_weight in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(ours_weight, theirs_weight)

    unknown_batch = (None, *row.input_shape[1:])
    for shape in (row.input_shape, unknown_batch):
        assert tuple(ours.compute_output_shape(shape)) == tuple(
            theirs.compute_output_shape(shape).as_list()
        )
    x = inputs_for(row)
    expected_shape = tuple(theirs(x).shape)
    assert tuple(ours(x).shape) == expected_shape
    assert tuple(ours.compute_output_shape(row.input_shape)) == expected_shape


@pytest.mark.parametrize("bias", BIAS)
@table(TABLE)
def test_kl_losses(row, bias):
    """As many KL losses (kernel, then bias if it has a prior), of the same values."""
    theirs, ours = make_pair(row, bias, seed=2)
    x = inputs_for(row)
    theirs(x)
    ours(x)
    expected_count = 2 if bias == "bayesian_bias" else 1
    assert len(theirs.losses) == len(ours.losses) == expected_count
    for ours_loss, theirs_loss in zip(ours.losses, theirs.losses):
        assert ours_loss.shape == theirs_loss.shape == ()
        np.testing.assert_allclose(np.asarray(ours_loss), np.asarray(theirs_loss), rtol=1e-5)
    # And the values are the analytic KLs of the posteriors (not, say, swapped).
    np.testing.assert_allclose(
        np.asarray(ours.losses[0]),
        np.asarray(tfp.distributions.kl_divergence(ours.kernel_posterior, ours.kernel_prior)),
        rtol=1e-6,
    )


@pytest.mark.parametrize("bias", BIAS)
@table(TABLE)
def test_posterior_mean_outputs(row, bias):
    """With ``lambda d: d.mean()`` as tensor fns: TFP's outputs, and Keras's layer at the means."""
    theirs, ours = make_pair(row, bias, seed=3, tensor_fn=lambda d: d.mean())
    x = inputs_for(row)
    kernel_mean, _, bias_mean, _ = posterior_parameters(theirs, bias)
    expected = keras_linear(row, x, kernel_mean, bias_mean)
    theirs_outputs = np.asarray(theirs(x))
    ours_outputs = np.asarray(ours(x))
    np.testing.assert_allclose(theirs_outputs, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours_outputs, theirs_outputs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours_outputs, expected, rtol=1e-5, atol=1e-5)
    # Deterministic: a second call repeats.
    np.testing.assert_array_equal(np.asarray(ours(x)), ours_outputs)


# Monte Carlo sizes: CALLS independent calls, each on COPIES copies of the
# row's examples. Flipout draws one perturbation per call (shared by the
# batch), so its moments are estimated per call and their standard errors
# come from the spread over calls, which are independent.
CALLS = 300
COPIES = 8
Z = 5.0
# Per-output variance and covariance estimates are means of quadratic forms of
# one kernel draw per call: positive, skewed, so their t-statistic has a long
# lower tail. A correct layer's worst output over a case passed 5 standard
# errors in 1 of 50 streams swept; such per-output checks use 6, the pooled
# variance ratio (no skew to speak of) keeps 5.
Z_SKEWED = 6.0
SKEWED = ("variance", "covariance")


def draws(layer, x):
    """Outputs of CALLS calls on COPIES copies of ``x``: (CALLS, COPIES, *outputs)."""
    tiled = np.concatenate([x] * COPIES, axis=0)
    call = tf.function(lambda t: layer(t))
    outputs = np.stack([np.asarray(call(tiled), dtype="float64") for _ in range(CALLS)])
    return outputs.reshape((CALLS, COPIES, x.shape[0]) + outputs.shape[2:])


def moments(y, mean, variance):
    """Per-output estimates of the mean, variance and covariance of two copies, with SEs.

    ``y``: (CALLS, COPIES, *outputs); ``mean`` and ``variance``: the analytic
    values. The mean centres the variance and covariance (so each per-call
    estimate is unbiased); ``variance_ratio`` pools every output's variance
    estimate, relative to its analytic value, into one sharper number
    (expected 1). Returns {name: (estimate, standard error)}.
    """
    centred = y - mean
    per_call = {
        "mean": y.mean(axis=1),
        "variance": (centred**2).mean(axis=1),
        # Copies 2i and 2i+1: the same example, in the same call.
        "covariance": (centred[:, 0::2] * centred[:, 1::2]).mean(axis=1),
    }
    per_call["variance_ratio"] = (per_call["variance"] / variance).reshape(CALLS, -1).mean(axis=1)
    return {
        name: (values.mean(axis=0), values.std(axis=0, ddof=1) / np.sqrt(CALLS))
        for name, values in per_call.items()
    }


def assert_within(name, estimate, error, expected, expected_error=0.0, z=Z):
    """|estimate - expected| within ``z`` standard errors (plus float32 rounding)."""
    bound = z * np.sqrt(error**2 + expected_error**2) + 1e-5 * (1.0 + np.abs(expected))
    deviation = np.abs(estimate - expected)
    assert np.all(deviation <= bound), (
        f"{name}: worst deviation {np.max(deviation / bound) * z:.1f} standard errors; "
        f"estimate {estimate.ravel()[np.argmax(deviation / bound)]:.5g}, expected "
        f"{np.ravel(expected)[np.argmax(deviation / bound)]:.5g}"
    )


@pytest.mark.slow  # statistical: thousands of draws per row
@pytest.mark.parametrize("bias", BIAS)
@table(STOCHASTIC_TABLE)
def test_monte_carlo_moments(row, bias):
    """Flipout and local reparameterization: the distribution of each output.

    For both estimators each output is Normal with mean ``linear(x, mu) +
    mu_bias`` and variance ``linear(x**2, sigma**2) + sigma_bias**2`` (Flipout's
    signs square away). Two copies of one example in one batch covary only
    through the bias, drawn once per call: covariance ``sigma_bias**2`` (0 for
    the default point-mass bias). That zero is what Flipout's per-example
    signs and local reparameterization's per-output noise are for; a layer
    sharing its perturbation across the batch would give ``variance``.
    Ours and TFP's must each match these within 5 standard errors, and match
    each other.
    """
    # Each case draws its own streams (a stream shared by every case would
    # make their errors alike).
    case = STOCHASTIC_TABLE.index(row) * len(BIAS) + BIAS.index(bias)
    theirs, ours = make_pair(row, bias, seed=4, ours_seed=100 + case)
    x = inputs_for(row, seed=6)
    kernel_mean, kernel_variance, bias_mean, bias_variance = posterior_parameters(theirs, bias)
    mean = keras_linear(row, x, kernel_mean, bias_mean)
    per_channel_bias_variance = np.reshape(bias_variance, channel_shape(row, mean.ndim))
    variance = (
        keras_linear(row, x**2, kernel_variance, np.zeros_like(bias_variance))
        + per_channel_bias_variance
    )
    covariance = np.broadcast_to(per_channel_bias_variance, mean.shape)
    expected = {
        "mean": mean,
        "variance": variance,
        "covariance": covariance,
        "variance_ratio": np.float64(1.0),
    }

    tf.random.set_seed(200 + case)
    theirs_moments = moments(draws(theirs, x), mean, variance)
    ours_moments = moments(draws(ours, x), mean, variance)
    for name, value in expected.items():
        ours_estimate, ours_error = ours_moments[name]
        theirs_estimate, theirs_error = theirs_moments[name]
        z = Z_SKEWED if name in SKEWED else Z
        assert_within(f"ours, {name} vs analytic", ours_estimate, ours_error, value, z=z)
        assert_within(f"TFP's, {name} vs analytic", theirs_estimate, theirs_error, value, z=z)
        assert_within(
            f"ours vs TFP's, {name}", ours_estimate, ours_error, theirs_estimate, theirs_error, z=z
        )
    # The test has power: one standard error is under 12% of each output's
    # variance, and under 4% for the pooled ratio.
    assert np.all(ours_moments["variance"][1] < 0.12 * variance)
    assert ours_moments["variance_ratio"][1] < 0.04


# --------------------------------------------------------------------------
# Conv3DReparameterization against TFP's, over random geometries.
# --------------------------------------------------------------------------


@st.composite
def configurations(draw):
    dilated = draw(st.booleans())
    triple = st.tuples(*[st.integers(1, 3)] * 3)
    config = dict(
        filters=draw(st.integers(1, 4)),
        kernel_size=draw(triple),
        strides=(1, 1, 1) if dilated else draw(triple),
        dilation_rate=draw(st.tuples(*[st.integers(1, 2)] * 3)) if dilated else (1, 1, 1),
        padding=draw(st.sampled_from(["valid", "same"])),
        data_format=draw(st.sampled_from(["channels_last", "channels_first"])),
    )
    spatial = draw(st.tuples(*[st.integers(1, 7)] * 3))
    channels = draw(st.integers(1, 3))
    batch = draw(st.integers(1, 2))
    if config["data_format"] == "channels_last":
        input_shape = (batch, *spatial, channels)
    else:
        input_shape = (batch, channels, *spatial)
    bayesian_bias = draw(st.booleans())
    return config, input_shape, bayesian_bias


def _valid(config, input_shape):
    spatial = input_shape[1:-1] if config["data_format"] == "channels_last" else input_shape[2:]
    if config["padding"] == "same":
        return True
    return all(
        size >= (k - 1) * d + 1
        for size, k, d in zip(spatial, config["kernel_size"], config["dilation_rate"])
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(configurations())
def test_matches_tfp_shapes_outputs_and_kl(case):
    config, input_shape, bayesian_bias = case
    assume(_valid(config, input_shape))
    tfp_bias = {}
    our_bias = {}
    if bayesian_bias:
        tfp_bias = dict(
            bias_posterior_fn=tfp_util.default_mean_field_normal_fn(),
            bias_prior_fn=tfp_util.default_multivariate_normal_fn,
        )
        our_bias = dict(
            bias_posterior_fn=tfprobr_bridge.default_mean_field_normal_fn(),
            bias_prior_fn=tfprobr_bridge.default_multivariate_normal_fn,
        )
    # Where a stride exceeds the input's extent, TF 2.21's CPU Conv3D returns
    # uninitialised values (test_hostile_input has the hand-worked case) and
    # TFP's layer passes them on; the stride clamped to the extent gives the
    # same output shape and the correct values, so TFP is asked that.
    spatial = input_shape[1:-1] if config["data_format"] == "channels_last" else input_shape[2:]
    reference_strides = tuple(min(s, n) for s, n in zip(config["strides"], spatial))
    reference = tfp.layers.Convolution3DReparameterization(
        **dict(config, strides=reference_strides),
        kernel_posterior_tensor_fn=fixed_tensor_fn,
        bias_posterior_tensor_fn=fixed_tensor_fn,
        **tfp_bias,
    )
    ours = Conv3DReparameterization(
        **config,
        kernel_posterior_tensor_fn=fixed_tensor_fn,
        bias_posterior_tensor_fn=fixed_tensor_fn,
        **our_bias,
    )
    unknown_batch = (None, *input_shape[1:])
    assert ours.compute_output_shape(input_shape) == tuple(
        reference.compute_output_shape(input_shape).as_list()
    )
    assert ours.compute_output_shape(unknown_batch) == tuple(
        reference.compute_output_shape(unknown_batch).as_list()
    )

    x = np.random.default_rng(0).standard_normal(input_shape).astype("float32")
    reference.build(input_shape)
    ours.build(input_shape)
    # Move TFP's trained-looking state into ours by variable name, as a user would.
    for variable in reference.weights:
        variable.assign(variable + tf.random.normal(variable.shape, stddev=0.3))
    names = assign_by_name(reference.weights, ours.weights)
    assert len(names) == len(ours.weights) == len(reference.weights)

    expected = reference(x)
    actual = ours(x)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    assert len(ours.losses) == len(reference.losses) == (2 if bayesian_bias else 1)
    for our_loss, reference_loss in zip(ours.losses, reference.losses):
        np.testing.assert_allclose(our_loss, reference_loss, rtol=1e-5)


@pytest.mark.parametrize("is_singular", [False, True])
def test_native_posterior_equals_tfp_closure_on_the_same_variables(is_singular):
    reference = Conv3DReparameterization(
        2, 2, kernel_posterior_fn=tfp_util.default_mean_field_normal_fn(is_singular=is_singular)
    )
    ours = Conv3DReparameterization(
        2, 2, kernel_posterior_fn=tfprobr_bridge.default_mean_field_normal_fn(
            is_singular=is_singular
        )
    )
    for layer in (reference, ours):
        layer.build((None, 3, 3, 3, 2))
    assign_by_name(reference.weights, ours.weights)
    for method in ("mean", "stddev") if not is_singular else ("mean",):
        np.testing.assert_allclose(
            getattr(ours.kernel_posterior, method)(),
            getattr(reference.kernel_posterior, method)(),
            rtol=1e-6,
        )
    if not is_singular:
        np.testing.assert_allclose(
            tfp.distributions.kl_divergence(ours.kernel_posterior, ours.kernel_prior),
            tfp.distributions.kl_divergence(reference.kernel_posterior, reference.kernel_prior),
            rtol=1e-6,
        )
