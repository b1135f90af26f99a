"""Hostile input for the distribution layers, the KL layers, VariableLayer, DenseVariational,
the Gaussian process and the autoregressive network: any value for any argument is either
accepted (and the layer then runs, or fails with a ValueError/TypeError) or refused at
construction with a ValueError/TypeError that names the argument. The same property the
variational family passes (test_hostile_input.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import tfprobr_bridge as tb

tfd = tfp.distributions

ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.lists(st.integers(-3, 5), max_size=5), st.tuples(st.floats(), st.floats()),
    st.just(lambda: 1), st.just(lambda a, b, c, d, e, f, g: 1), st.builds(object),
    st.just(np.array([[1, 2], [3, 4]])), st.dictionaries(st.text(max_size=3), st.integers()),
    st.just(np.float32("nan")), st.just(keras.layers.Dense(1)),
)


def _posterior(kernel_size, bias_size=0, dtype=None):
    n = kernel_size + bias_size
    return keras.Sequential([
        tb.VariableLayer(2 * n, dtype=dtype),
        tb.DistributionLambda(lambda t: tfd.Independent(
            tfd.Normal(loc=t[..., :n], scale=1e-5 + tf.nn.softplus(t[..., n:])), 1)),
    ])


def _prior(kernel_size, bias_size=0, dtype=None):
    n = kernel_size + bias_size
    return keras.Sequential([
        tb.VariableLayer(n, dtype=dtype),
        tb.DistributionLambda(lambda t: tfd.Independent(tfd.Normal(loc=t, scale=1.0), 1)),
    ])


class _Kernel(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.amplitude = self.add_weight(shape=(), initializer="ones", name="amplitude")

    def call(self, x):
        return x

    @property
    def kernel(self):
        return tfp.math.psd_kernels.ExponentiatedQuadratic(amplitude=self.amplitude.value)


def _normal_output(width=2):
    return tb.IndependentNormal(width)(np.zeros((2, 2 * width), "float32"))


# class, valid arguments, the input it is called on (a function: some are made fresh).
CASES = {
    "DistributionLambda": ({"make_distribution_fn": lambda t: tfd.Normal(t, 1.0)},
                           lambda: np.zeros((2, 3), "float32")),
    "IndependentNormal": ({"event_shape": 2}, lambda: np.zeros((2, 4), "float32")),
    "IndependentLogistic": ({"event_shape": 2}, lambda: np.zeros((2, 4), "float32")),
    "IndependentBernoulli": ({"event_shape": 2}, lambda: np.zeros((2, 2), "float32")),
    "IndependentPoisson": ({"event_shape": 2}, lambda: np.zeros((2, 2), "float32")),
    "MultivariateNormalTriL": ({"event_size": 2}, lambda: np.zeros((2, 5), "float32")),
    "OneHotCategorical": ({"event_size": 3}, lambda: np.zeros((2, 3), "float32")),
    "CategoricalMixtureOfOneHotCategorical": ({"event_size": 2, "num_components": 2},
                                              lambda: np.zeros((2, 6), "float32")),
    "MixtureSameFamily": ({"num_components": 2, "component_layer": tb.IndependentNormal(1)},
                          lambda: np.zeros((2, 6), "float32")),
    "MixtureNormal": ({"num_components": 2, "event_shape": 1}, lambda: np.zeros((2, 6), "float32")),
    "MixtureLogistic": ({"num_components": 2, "event_shape": 1},
                        lambda: np.zeros((2, 6), "float32")),
    "KLDivergenceAddLoss": ({"distribution_b": tfd.Independent(tfd.Normal(tf.zeros(2), 1.0), 1)},
                            _normal_output),
    "KLDivergenceRegularizer": (
        {"distribution_b": tfd.Independent(tfd.Normal(tf.zeros(2), 1.0), 1)}, _normal_output),
    "VariableLayer": ({"shape": 3}, lambda: np.zeros((2, 1), "float32")),
    "DenseVariational": ({"units": 2, "make_posterior_fn": _posterior, "make_prior_fn": _prior},
                         lambda: np.zeros((2, 3), "float32")),
    "VariationalGaussianProcess": ({"num_inducing_points": 3, "kernel_provider": _Kernel()},
                                   lambda: np.zeros((2, 1), "float32")),
    "AutoregressiveNetwork": ({"params": 2, "event_shape": 3}, lambda: np.zeros((2, 3), "float32")),
    "AutoregressiveTransform": (
        {"made": tb.AutoregressiveNetwork(params=2, hidden_units=[4])},
        lambda: tb.DistributionLambda(
            lambda t: tfd.MultivariateNormalDiag(loc=tf.zeros_like(t)))(np.zeros((2, 3), "float32"))),
}
_LAYER_KEYWORDS = ("name", "dtype", "trainable")


def _arguments(name):
    import inspect

    cls = getattr(tb, name)
    parameters = [p for p, v in inspect.signature(cls).parameters.items()
                  if v.kind is not v.VAR_KEYWORD]
    if issubclass(cls, keras.layers.Layer):
        parameters += [k for k in _LAYER_KEYWORDS if k not in parameters]
    return parameters


PAIRS = [(name, argument) for name in CASES for argument in _arguments(name)]
seen = {"accepted": set(), "refused": set()}


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(PAIRS), ANY_VALUE)
def _any_value_for_any_argument(pair, value):
    name, argument = pair
    arguments, make_input = CASES[name]
    arguments = {**arguments, argument: value}
    cls = getattr(tb, name)
    try:
        layer = cls(**arguments)
    except (ValueError, TypeError) as error:
        assert f"`{argument}`" in str(error) or f"{argument}=" in str(error), (name, str(error))
        seen["refused"].add(name)
        return
    try:
        output = layer(make_input())
        if isinstance(layer, keras.layers.Layer):
            tf.convert_to_tensor(output)
    except (ValueError, TypeError) as error:
        assert str(error)
        seen["refused"].add(name)
        return
    seen["accepted"].add(name)


@pytest.mark.slow
def test_any_value_for_any_argument_works_or_raises_value_or_type_error():
    _any_value_for_any_argument()
    # And the property saw both outcomes, for every class.
    # (test_the_valid_arguments_run shows every class accepts its valid arguments.)
    assert len(seen["accepted"]) >= len(CASES) - 5, set(CASES) - seen["accepted"]
    assert len(seen["refused"]) >= len(CASES) - 2, set(CASES) - seen["refused"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_valid_arguments_run(name):
    arguments, make_input = CASES[name]
    layer = getattr(tb, name)(**arguments)
    output = layer(make_input())
    assert np.all(np.isfinite(np.asarray(tf.convert_to_tensor(output))))
