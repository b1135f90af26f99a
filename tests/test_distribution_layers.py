"""The distribution layers (issue "tfprobability's whole Keras layer API"), by table.

One case table (one row per class: the model's layers after the input, ending in a
distribution layer, and the targets) drives every way Keras builds and calls a layer:
a ``Sequential`` without an ``Input`` fitted directly, with an ``Input``, the
functional API, a subclassed model, eager calls queried as the distribution
(``mean()``, ``stddev()``, ``sample()``, ``log_prob()``, ``distribution_of``),
``evaluate``, ``predict``, a ``GradientTape`` loop, ``.keras`` saving without
``custom_objects``, and a mixed precision policy. Then the rules for user fns in
saving, the KL layers' losses, and hostile arguments for every constructor
argument. Data is tiny so the file runs in about a minute and a half on two cores.
"""

import dataclasses
import functools
import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfprobr_bridge import AutoregressiveNetwork
from tfprobr_bridge import AutoregressiveTransform
from tfprobr_bridge import CategoricalMixtureOfOneHotCategorical
from tfprobr_bridge import DenseVariational
from tfprobr_bridge import DistributionLambda
from tfprobr_bridge import IndependentBernoulli
from tfprobr_bridge import IndependentLogistic
from tfprobr_bridge import IndependentNormal
from tfprobr_bridge import IndependentPoisson
from tfprobr_bridge import KLDivergenceAddLoss
from tfprobr_bridge import KLDivergenceRegularizer
from tfprobr_bridge import MixtureLogistic
from tfprobr_bridge import MixtureNormal
from tfprobr_bridge import MixtureSameFamily
from tfprobr_bridge import MultivariateNormalTriL
from tfprobr_bridge import OneHotCategorical
from tfprobr_bridge import UnsavableFnError
from tfprobr_bridge import VariableLayer
from tfprobr_bridge import VariationalGaussianProcess
from tfprobr_bridge import distribution_of
from tfprobr_bridge import negative_log_likelihood

# Hundreds of model builds and fits: make test runs them, make test-fast leaves them out
# (tests/test_factory_other_layers.py and the valid-argument cases stay in the fast lane).
pytestmark = pytest.mark.slow

tfd = tfp.distributions
N = 16  # examples
BATCH = 8
MEAN = tfd.Distribution.mean

# Registered user functions and layers: models that hold them load in safe mode.
_register = keras.saving.register_keras_serializable(package="tfprobr_bridge_test_distribution")


@_register
def normal_from_params(t):
    return tfd.Independent(tfd.Normal(t[..., :2], tf.nn.softplus(t[..., 2:]) + 1e-3), 1)


@_register
def diagonal_normal_at(t):
    return tfd.MultivariateNormalDiag(loc=t, scale_diag=tf.ones_like(t))


@_register
def normal_from_made(t):
    return tfd.Independent(tfd.Normal(t[..., 0], tf.nn.softplus(t[..., 1]) + 1e-3), 1)


@_register
def standard_normal_prior():
    return tfd.MultivariateNormalDiag(loc=tf.zeros(2))


@_register
def posterior_mean_field(kernel_size, bias_size=0, dtype=None):
    n = kernel_size + bias_size
    return keras.Sequential([
        VariableLayer(2 * n, dtype=dtype, initializer=keras.initializers.RandomNormal(seed=1)),
        DistributionLambda(lambda t: tfd.Independent(
            tfd.Normal(loc=t[..., :n], scale=1e-5 + tf.nn.softplus(0.5 + t[..., n:])), 1)),
    ])


@_register
def prior_trainable(kernel_size, bias_size=0, dtype=None):
    n = kernel_size + bias_size
    return keras.Sequential([
        VariableLayer(n, dtype=dtype),
        DistributionLambda(lambda t: tfd.Independent(tfd.Normal(loc=t, scale=1.0), 1)),
    ])


@_register
class KernelProvider(keras.layers.Layer):
    """A Keras layer whose ``kernel`` is a PSD kernel with a trainable amplitude."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._amplitude = self.add_weight(
            name="amplitude", shape=(), initializer=keras.initializers.Constant(0.5))

    def call(self, x):
        return x

    @property
    def kernel(self):
        return tfp.math.psd_kernels.ExponentiatedQuadratic(
            amplitude=tf.nn.softplus(self._amplitude))


def _normal(rng, n, size=2):
    return rng.standard_normal((n, size)).astype("float32")


def _counts(rng, n):
    return rng.poisson(2.0, (n, 2)).astype("float32")


def _binary(rng, n):
    return rng.integers(0, 2, (n, 2)).astype("float32")


def _one_hot(rng, n):
    return np.eye(3, dtype="float32")[rng.integers(0, 3, n)]


@dataclasses.dataclass(frozen=True)
class Case:
    """One class: ``body(convert)`` is the model after its input (``convert`` the head's
    ``convert_to_tensor_fn``); ``event`` the output's shape per example."""

    cls: type
    body: object
    targets: object
    event: tuple
    features: int = 3
    kl_losses: int = 0  # losses each call adds
    batched: bool = True  # the output has the batch axis
    has_mean: bool = True  # the distribution has a mean (a deterministic output)
    deterministic_log_prob: bool = True  # log_prob does not depend on a draw

    @property
    def name(self):
        return self.cls.__name__


def _head(layer_class, params, *args, **kwargs):
    return lambda convert=tfd.Distribution.sample: [
        keras.layers.Dense(params), layer_class(*args, convert_to_tensor_fn=convert, **kwargs)]


CASES = [
    Case(DistributionLambda,
         lambda convert=tfd.Distribution.sample: [
             keras.layers.Dense(4), DistributionLambda(normal_from_params, convert)],
         _normal, (2,)),
    Case(IndependentNormal, _head(IndependentNormal, 4, [2]), _normal, (2,)),
    Case(IndependentLogistic, _head(IndependentLogistic, 4, [2]), _normal, (2,)),
    Case(IndependentPoisson, _head(IndependentPoisson, 2, [2]), _counts, (2,)),
    Case(IndependentBernoulli, _head(IndependentBernoulli, 2, [2]), _binary, (2,)),
    Case(MultivariateNormalTriL, _head(MultivariateNormalTriL, 5, 2), _normal, (2,)),
    Case(OneHotCategorical, _head(OneHotCategorical, 3, 3), _one_hot, (3,)),
    Case(MixtureSameFamily,
         lambda convert=tfd.Distribution.sample: [
             keras.layers.Dense(10), MixtureSameFamily(2, IndependentNormal([2]), convert)],
         _normal, (2,)),
    Case(MixtureNormal, _head(MixtureNormal, 10, 2, [2]), _normal, (2,)),
    Case(MixtureLogistic, _head(MixtureLogistic, 10, 2, [2]), _normal, (2,)),
    Case(CategoricalMixtureOfOneHotCategorical,
         _head(CategoricalMixtureOfOneHotCategorical, 8, 3, 2), _one_hot, (3,)),
    Case(KLDivergenceAddLoss,
         lambda convert=tfd.Distribution.sample: [
             keras.layers.Dense(5), MultivariateNormalTriL(2, convert),
             KLDivergenceAddLoss(standard_normal_prior, weight=0.1)],
         _normal, (2,), kl_losses=1, deterministic_log_prob=False),
    Case(VariableLayer,
         lambda convert=tfd.Distribution.sample: [
             VariableLayer(4, initializer=keras.initializers.RandomNormal(seed=2)),
             IndependentNormal([2], convert)],
         _normal, (2,), batched=False),
    Case(DenseVariational,
         lambda convert=tfd.Distribution.sample: [
             DenseVariational(4, posterior_mean_field, prior_trainable, kl_weight=1 / N),
             IndependentNormal([2], convert)],
         _normal, (2,), kl_losses=1, deterministic_log_prob=False),
    Case(AutoregressiveNetwork,
         lambda convert=tfd.Distribution.sample: [
             AutoregressiveNetwork(2, hidden_units=[4], activation="relu"),
             DistributionLambda(normal_from_made, convert)],
         functools.partial(_normal, size=3), (3,)),
    Case(AutoregressiveTransform,
         lambda convert=tfd.Distribution.sample: [
             keras.layers.Dense(2), DistributionLambda(diagonal_normal_at, convert),
             AutoregressiveTransform(AutoregressiveNetwork(2, hidden_units=[4],
                                                           activation="relu"))],
         _normal, (2,), has_mean=False),
    Case(VariationalGaussianProcess,
         lambda convert=tfd.Distribution.sample: [
             keras.layers.Dense(1),
             VariationalGaussianProcess(
                 4, KernelProvider(),
                 inducing_index_points_initializer=keras.initializers.RandomUniform(
                     -1.0, 1.0, seed=3),
                 jitter=1e-4, convert_to_tensor_fn=convert)],
         functools.partial(_normal, size=1), (1,)),
]
IDS = [case.name for case in CASES]


def _data(case, rng):
    x = rng.standard_normal((N, case.features)).astype("float32")
    return x, case.targets(rng, N)


def _output_shape(case, n):
    return (n, *case.event) if case.batched else case.event


def _snapshot(model):
    return [np.array(v.numpy()) for v in model.trainable_variables]


def _assert_all_moved(before, model):
    after = model.trainable_variables
    assert len(before) == len(after) > 0
    for old, variable in zip(before, after):
        assert not np.allclose(old, variable.numpy()), variable.path


def _compile(model, loss=None, **kwargs):
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=loss or (lambda y, rv: -rv.log_prob(y)), **kwargs)


def _assert_distribution_output(case, out, y):
    """An eager output: a tensor of the expected shape carrying its distribution and
    the distribution's methods."""
    distribution = distribution_of(out)
    assert isinstance(distribution, tfd.Distribution)
    assert isinstance(out, tf.Tensor)
    n = y.shape[0]
    assert tuple(out.shape) == _output_shape(case, n)
    assert tuple(distribution.batch_shape) + tuple(distribution.event_shape) == tuple(out.shape)
    assert tuple(out.sample(3).shape) == (3, *out.shape)
    log_prob = out.log_prob(y)
    assert tuple(log_prob.shape) == tuple(distribution.batch_shape) or (
        not case.batched and tuple(log_prob.shape) == (n,))
    assert np.all(np.isfinite(log_prob))
    for method in ("mean", "stddev"):
        try:
            expected = getattr(distribution, method)()
        except NotImplementedError:
            with pytest.raises(NotImplementedError):
                getattr(out, method)()
            continue
        np.testing.assert_array_equal(getattr(out, method)(), expected)
        assert tuple(expected.shape) == tuple(out.shape)
    assert tuple(out.event_shape) == tuple(distribution.event_shape)
    return distribution


# --------------------------------------------------------------------------
# Every way Keras builds and calls a layer
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sequential_without_input_fits_evaluates_predicts_and_is_queried(case, rng):
    x, y = _data(case, rng)
    model = keras.Sequential(case.body())
    assert not model.built
    _compile(model)
    history = model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)
    assert model.built and np.isfinite(history.history["loss"][0])
    before = _snapshot(model)
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)
    _assert_all_moved(before, model)  # DenseVariational's posterior included

    evaluated = model.evaluate(x, y, batch_size=N, verbose=0)
    out = model(x)
    if case.deterministic_log_prob:
        np.testing.assert_allclose(evaluated, -np.mean(out.log_prob(y)), rtol=1e-4)
    else:
        assert np.isfinite(evaluated)
    if case.batched:  # predict concatenates per-batch outputs along the batch axis
        predicted = model.predict(x, batch_size=BATCH, verbose=0)
        assert predicted.shape == _output_shape(case, N) and np.all(np.isfinite(predicted))
    _assert_distribution_output(case, out, y)
    assert len(model.losses) == case.kl_losses


class Subclassed(keras.Model):
    def __init__(self, layers, **kwargs):
        super().__init__(**kwargs)
        self.body = layers

    def call(self, inputs):
        return functools.reduce(lambda x, layer: layer(x), self.body, inputs)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_input_functional_and_subclassed_models(case, rng):
    x, y = _data(case, rng)

    # A Sequential with an Input: built at once; symbolic and eager outputs agree in shape.
    sequential = keras.Sequential([keras.Input((case.features,)), *case.body()])
    symbolic = tuple(sequential.outputs[0].shape)
    assert symbolic == (_output_shape(case, None) if case.batched else case.event)
    _assert_distribution_output(case, sequential(x), y)

    # Functional: the output trains; its losses are the call's.
    inputs = keras.Input((case.features,))
    outputs = functools.reduce(lambda t, layer: layer(t), case.body(), inputs)
    functional = keras.Model(inputs, outputs)
    assert tuple(functional.output.shape) == symbolic
    _compile(functional)
    before = _snapshot(functional)
    history = functional.fit(x, y, epochs=1, batch_size=N, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    _assert_all_moved(before, functional)
    _assert_distribution_output(case, functional(x), y)
    assert len(functional.losses) == case.kl_losses

    # Subclassed, built by its first call in fit (eager: graphs are traced above).
    subclassed = Subclassed(case.body())
    _compile(subclassed, run_eagerly=True)
    history = subclassed.fit(x, y, epochs=1, batch_size=N, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    _assert_distribution_output(case, subclassed(x), y)
    assert len(subclassed.losses) == case.kl_losses


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradient_tape_loop(case, rng):
    x, y = _data(case, rng)
    model = keras.Sequential([keras.Input((case.features,)), *case.body()])
    optimizer = keras.optimizers.Adam(0.01)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = -tf.reduce_mean(out.log_prob(y))  # the distribution, inside a graph
            losses = model.losses
            if losses:
                loss += tf.add_n(losses)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss, len(losses), [g is not None for g in gradients]

    before = _snapshot(model)
    loss, losses, has_gradient = step(x, y)
    assert np.isfinite(loss) and losses == case.kl_losses and all(has_gradient)
    _assert_all_moved(before, model)


def _eager_step(model, x, y):
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(model(x, training=True).log_prob(y)) + sum(model.losses)
    variables = model.trainable_variables
    model.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_saved_and_loaded_without_custom_objects(case, rng, tmp_path):
    """Registered fns and this package's layers load in safe mode; the loaded model computes
    the same distribution, and with ``convert_to_tensor_fn=mean`` the same outputs."""
    x, y = _data(case, rng)
    convert = MEAN if case.has_mean else tfd.Distribution.sample
    model = keras.Sequential([keras.Input((case.features,)), *case.body(convert)])
    _compile(model, loss=negative_log_likelihood)
    _eager_step(model, x, y)  # values other than the initial ones
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # safe mode, no custom_objects

    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert [v.name for v in loaded.weights] == [v.name for v in model.weights]
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(model.layers, loaded.layers):  # as JSON (tuples are lists there)
        assert json.loads(json.dumps(a.get_config())) == json.loads(json.dumps(b.get_config()))
    if case.deterministic_log_prob:
        np.testing.assert_array_equal(model(x).log_prob(y), loaded(x).log_prob(y))
    if case.has_mean and case.cls is not DenseVariational:  # its kernel is a draw
        np.testing.assert_array_equal(model(x), loaded(x))
    # It trains on after loading.
    before = _snapshot(loaded)
    _eager_step(loaded, x, y)
    _assert_all_moved(before, loaded)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_trains_under_a_mixed_precision_policy(case, rng):
    """A distribution layer ends a model: under a mixed policy it computes in float32 (as
    Keras advises for a model's last layer), so a lambda loss gets its distribution."""
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = keras.Sequential(case.body())
    finally:
        keras.config.set_dtype_policy("float32")
    x, y = _data(case, rng)
    _compile(model, run_eagerly=True)  # dtypes are the same in graphs; tracing is slow
    history = model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    head = model.layers[-1]
    assert head.compute_dtype == "float32"
    out = model(x)
    assert out.dtype == "float32" and distribution_of(out).dtype == tf.float32
    first = model.layers[0]
    if isinstance(first, keras.layers.Dense):
        assert first.compute_dtype == "float16"  # the rest of the model keeps the policy


# --------------------------------------------------------------------------
# Outputs in graphs: what Keras hands a loss
# --------------------------------------------------------------------------


def test_float64_model_with_negative_log_likelihood(rng):
    """A Keras loss casts a float64 prediction to float32 (a new tensor); the package's loss
    finds the distribution through the cast, in float64."""
    x = rng.standard_normal((N, 3))
    y = rng.standard_normal((N, 2))
    model = keras.Sequential([keras.layers.Dense(4, dtype="float64"),
                              IndependentNormal([2], dtype="float64")])
    _compile(model, loss=negative_log_likelihood)
    history = model.fit(x, y, epochs=2, batch_size=N, verbose=0)
    expected = -np.mean(model(x).log_prob(y))
    assert distribution_of(model(x)).dtype == tf.float64
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), expected, rtol=1e-5)
    assert history.history["loss"][1] < history.history["loss"][0]


def test_column_targets_for_a_scalar_event(rng):
    """``(n, 1)`` targets for a scalar event: Keras expands the ``(n,)`` prediction (a new
    tensor); ``negative_log_likelihood`` finds the distribution and scores each example
    once (not ``n`` by ``n``)."""
    x = rng.standard_normal((N, 3)).astype("float32")
    y = rng.standard_normal((N, 1)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), IndependentNormal()])
    _compile(model, loss=negative_log_likelihood)
    model.fit(x, y, epochs=1, batch_size=N, verbose=0)
    expected = -np.mean(model(x).log_prob(y[:, 0]))
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), expected, rtol=1e-5)


def test_distribution_of_other_values():
    normal = tfd.Normal(0.0, 1.0)
    assert distribution_of(normal) is normal
    assert distribution_of(tf.constant(1.0)) is None
    assert distribution_of(np.ones(2)) is None
    with pytest.raises(TypeError, match="needs the output of a distribution layer"):
        negative_log_likelihood(np.ones(2), tf.constant([1.0, 2.0]))


def test_bernoulli_logits_as_the_tensor_and_saved_by_name(tmp_path):
    layer = IndependentBernoulli([2], tfd.Bernoulli.logits)
    params = tf.constant([[0.5, -1.0]])
    np.testing.assert_array_equal(layer(params), params)
    model = keras.Sequential([keras.Input((2,)), layer])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded(params), params)
    assert loaded.layers[-1].get_config()["convert_to_tensor_fn"] == \
        model.layers[-1].get_config()["convert_to_tensor_fn"]


def test_convert_to_tensor_fn_naming_a_missing_member():
    layer = IndependentNormal([2], convert_to_tensor_fn="nonsense")
    with pytest.raises(ValueError, match=r"`convert_to_tensor_fn` names 'nonsense'.*Received: "
                                         r"convert_to_tensor_fn='nonsense'"):
        layer(tf.zeros((1, 4)))


# --------------------------------------------------------------------------
# User fns in saving (the package's rule: saved by value, loaded only outside safe mode)
# --------------------------------------------------------------------------


def _unsafe_and_safe(model, path, argument, x):
    model.save(path)
    with pytest.raises(ValueError, match=rf"`{argument}` was saved as Python bytecode.*"
                                         r"safe_mode=False"):
        keras.models.load_model(path)
    loaded = keras.models.load_model(path, safe_mode=False)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    if not isinstance(model.layers[0], DenseVariational):  # its kernel is a draw
        np.testing.assert_array_equal(distribution_of(model(x)).mean(),
                                      distribution_of(loaded(x)).mean())
    return loaded


USER_FN_CASES = {
    "make_distribution_fn": lambda: [
        keras.layers.Dense(2), DistributionLambda(lambda t: tfd.Normal(t, 1.0))],
    "convert_to_tensor_fn": lambda: [
        keras.layers.Dense(4), IndependentNormal([2], lambda d: d.mean() + 0.0)],
    "distribution_b": lambda: [
        keras.layers.Dense(5), MultivariateNormalTriL(2),
        KLDivergenceAddLoss(lambda: tfd.MultivariateNormalDiag(loc=tf.zeros(2)))],
    "test_points_fn": lambda: [
        keras.layers.Dense(5), MultivariateNormalTriL(2),
        KLDivergenceAddLoss(standard_normal_prior, test_points_fn=lambda d: d.mean())],
    "make_posterior_fn": lambda: [
        DenseVariational(2, lambda k, b, dtype: posterior_mean_field(k, b, dtype),
                         prior_trainable),
        IndependentNormal([1], MEAN)],
    "mean_fn": lambda: [
        keras.layers.Dense(1),
        VariationalGaussianProcess(3, KernelProvider(), mean_fn=lambda x: tf.zeros([1]),
                                   jitter=1e-4)],
}


@pytest.mark.parametrize("argument", list(USER_FN_CASES))
def test_user_fns_save_and_need_safe_mode_off(argument, tmp_path, rng):
    model = keras.Sequential([keras.Input((3,)), *USER_FN_CASES[argument]()])
    x = rng.standard_normal((4, 3)).astype("float32")
    model(x)
    loaded = _unsafe_and_safe(model, tmp_path / "m.keras", argument, x)
    assert type(loaded.layers[-1]) is type(model.layers[-1])


def test_prior_distribution_is_saved_as_values_and_loads_in_safe_mode(tmp_path, rng):
    prior = tfd.Independent(tfd.Normal(loc=[0.5, -0.5], scale=tf.constant([1.0, 2.0])), 1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), IndependentNormal([2]),
                              KLDivergenceAddLoss(prior, use_exact_kl=True, weight=0.25)])
    x = rng.standard_normal((4, 3)).astype("float32")
    model(x)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")  # safe mode
    restored = loaded.layers[-1]._regularizer.distribution_b
    assert type(restored) is type(prior)
    np.testing.assert_array_equal(restored.distribution.scale, [1.0, 2.0])
    loaded(x)
    np.testing.assert_allclose(float(loaded.losses[0]), float(model.losses[0]), rtol=1e-6)


def test_prior_distribution_with_a_bijector_fails_loudly_at_save(tmp_path):
    prior = tfd.TransformedDistribution(tfd.Normal(0.0, 1.0), tfp.bijectors.Exp())
    model = keras.Sequential([keras.Input((4,)), DistributionLambda(normal_from_params),
                              KLDivergenceAddLoss(prior)])
    with pytest.raises(UnsavableFnError, match=r"`distribution_b` cannot be saved.*register"):
        model.save(tmp_path / "m.keras")


def test_unpicklable_fn_fails_loudly_at_save(tmp_path):
    class Unpicklable:
        def __call__(self, t):
            return tfd.Normal(t, 1.0)

        def __reduce__(self):
            raise TypeError("this callable wraps a foreign object")

    model = keras.Sequential([keras.Input((2,)), DistributionLambda(Unpicklable())])
    with pytest.raises(UnsavableFnError, match=r"`make_distribution_fn` cannot be saved"):
        model.save(tmp_path / "m.keras")


def test_kl_regularizer_with_a_prior_model_saves_and_its_prior_trains(tmp_path, rng):
    prior = keras.Sequential([VariableLayer(2),
                              DistributionLambda(lambda t: tfd.MultivariateNormalDiag(t))])
    head = MultivariateNormalTriL(2, activity_regularizer=KLDivergenceRegularizer(
        prior, weight=0.5))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5), head])
    assert len(model.trainable_variables) == 3  # the prior's variable is the model's
    x, y = rng.standard_normal((N, 3)).astype("float32"), _normal(rng, N)
    _compile(model)
    before = _snapshot(model)
    model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0)
    _assert_all_moved(before, model)
    model(x)
    assert len(model.losses) == 1
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=False)  # the lambda
    np.testing.assert_array_equal(loaded.layers[-1]._activity_regularizer_prior.weights[0],
                                  prior.weights[0])


# --------------------------------------------------------------------------
# The KL layers: exactly one loss per call, of the right value
# --------------------------------------------------------------------------


def _mvn_params():
    loc, scale_tril = [-1.0, 1.0], [[1.1, 0.0], [0.2, 1.3]]
    x = tf.concat([loc, tfp.bijectors.FillScaleTriL().inverse(scale_tril)], 0)[tf.newaxis]
    prior = tfd.MultivariateNormalDiag(loc=tf.zeros(2))
    return x, tfd.kl_divergence(tfd.MultivariateNormalTriL(loc, scale_tril), prior)


@pytest.mark.parametrize("kind", ["add_loss", "regularizer"])
def test_kl_layers_add_one_loss_per_call(kind):
    x, exact = _mvn_params()
    if kind == "add_loss":
        layers = [MultivariateNormalTriL(2),
                  KLDivergenceAddLoss(standard_normal_prior, use_exact_kl=True, weight=2.0)]
    else:
        layers = [MultivariateNormalTriL(2, activity_regularizer=KLDivergenceRegularizer(
            standard_normal_prior, use_exact_kl=True, weight=2.0))]
    model = keras.Sequential([keras.Input((5,)), *layers])
    for _ in range(3):
        model(x)
        assert len(model.losses) == 1
    # The regularizer's loss is divided by the batch size by Keras (as tf_keras did): 1.
    np.testing.assert_allclose(float(model.losses[0]), 2.0 * float(exact), rtol=1e-5)


def test_kl_add_loss_monte_carlo_is_at_the_layer_draw():
    """TFP's estimate: at the very tensor the layer passed on (its draw)."""
    x, _ = _mvn_params()
    layer = KLDivergenceAddLoss(standard_normal_prior)
    out = MultivariateNormalTriL(2)(x)
    assert layer(out) is out
    d = distribution_of(out)
    expected = tf.reduce_mean(d.log_prob(out) - standard_normal_prior().log_prob(out))
    np.testing.assert_allclose(float(layer.losses[0]), float(expected), rtol=1e-6)


def test_dense_variational_one_loss_per_call_and_its_value(rng):
    layer = DenseVariational(2, posterior_mean_field, prior_trainable, kl_weight=0.5,
                             kl_use_exact=True)
    x = rng.standard_normal((3, 4)).astype("float32")
    for _ in range(2):
        assert tuple(layer(x).shape) == (3, 2)
        assert len(layer.losses) == 1
    q = distribution_of(layer._posterior(x))
    r = distribution_of(layer._prior(x))
    np.testing.assert_allclose(float(layer.losses[0]), 0.5 * float(tfd.kl_divergence(q, r)),
                               rtol=1e-5)
    names = sorted(v.path for v in layer.variables)
    assert any("/posterior/" in n for n in names) and any("/prior/" in n for n in names)


def test_kl_add_loss_warns_that_raw_tensorflow_variables_do_not_train():
    with pytest.warns(UserWarning, match=r"`distribution_b` holds trainable TensorFlow "
                                         r"variables.*keras.Sequential\(\[VariableLayer"):
        KLDivergenceAddLoss(tfd.Normal(tf.Variable(0.0), 1.0))


# --------------------------------------------------------------------------
# Hostile arguments: a clear error naming the argument, and no half-made layer
# --------------------------------------------------------------------------


def _made():
    return AutoregressiveNetwork(2)


REQUIRED = {
    DistributionLambda: lambda: dict(make_distribution_fn=normal_from_params),
    IndependentNormal: dict,
    IndependentLogistic: dict,
    IndependentPoisson: dict,
    IndependentBernoulli: dict,
    MultivariateNormalTriL: lambda: dict(event_size=2),
    OneHotCategorical: lambda: dict(event_size=2),
    MixtureSameFamily: lambda: dict(num_components=2, component_layer=IndependentNormal()),
    MixtureNormal: lambda: dict(num_components=2),
    MixtureLogistic: lambda: dict(num_components=2),
    CategoricalMixtureOfOneHotCategorical: lambda: dict(event_size=2, num_components=2),
    KLDivergenceAddLoss: lambda: dict(distribution_b=standard_normal_prior),
    VariableLayer: lambda: dict(shape=2),
    DenseVariational: lambda: dict(units=2, make_posterior_fn=posterior_mean_field,
                                   make_prior_fn=prior_trainable),
    AutoregressiveNetwork: lambda: dict(params=2),
    AutoregressiveTransform: lambda: dict(made=_made()),
    VariationalGaussianProcess: lambda: dict(num_inducing_points=3,
                                             kernel_provider=KernelProvider()),
}

_COMMON = [("name_typo_dtyp", "float32", TypeError), ("dtype", "floof", ValueError),
           ("trainable", "yes", TypeError)]
_DISTRIBUTION = [("convert_to_tensor_fn", 3, TypeError),
                 ("convert_to_tensor_fn", "not a name", ValueError),
                 ("activity_regularizer", 3, TypeError)]
_PARAMETERS = [("validate_args", "no", TypeError)]
_EVENT_SHAPE = [("event_shape", "abc", TypeError), ("event_shape", [2, -1], ValueError),
                ("event_shape", 2.5, TypeError), ("event_shape", [[1, 2]], ValueError)]
_EVENT_SIZE = [("event_size", -1, ValueError), ("event_size", "2", TypeError),
               ("event_size", 2.5, ValueError)]
_COMPONENTS = [("num_components", 0, ValueError), ("num_components", "3", TypeError)]
_SAMPLE_DTYPE = [("sample_dtype", "floof", TypeError)]
_INITIALIZER = "nonsense_initializer"

HOSTILE = {
    DistributionLambda: _COMMON + _DISTRIBUTION + [("make_distribution_fn", 3, TypeError),
                                                   ("make_distribution_fn", None, TypeError)],
    IndependentNormal: _COMMON + _DISTRIBUTION + _PARAMETERS + _EVENT_SHAPE,
    IndependentLogistic: _COMMON + _DISTRIBUTION + _PARAMETERS + _EVENT_SHAPE,
    IndependentPoisson: _COMMON + _DISTRIBUTION + _PARAMETERS + _EVENT_SHAPE,
    IndependentBernoulli: _COMMON + _DISTRIBUTION + _PARAMETERS + _EVENT_SHAPE + _SAMPLE_DTYPE,
    MultivariateNormalTriL: _COMMON + _DISTRIBUTION + _PARAMETERS + _EVENT_SIZE,
    OneHotCategorical: _COMMON + _DISTRIBUTION + _PARAMETERS + _EVENT_SIZE + _SAMPLE_DTYPE,
    MixtureSameFamily: _COMMON + _DISTRIBUTION + _PARAMETERS + _COMPONENTS + [
        ("component_layer", keras.layers.Dense(2), TypeError),
        ("component_layer", "normal", TypeError)],
    MixtureNormal: _COMMON + _DISTRIBUTION + _PARAMETERS + _COMPONENTS + _EVENT_SHAPE,
    MixtureLogistic: _COMMON + _DISTRIBUTION + _PARAMETERS + _COMPONENTS + _EVENT_SHAPE,
    CategoricalMixtureOfOneHotCategorical: (_COMMON + _DISTRIBUTION + _PARAMETERS + _EVENT_SIZE
                                            + _COMPONENTS + _SAMPLE_DTYPE),
    KLDivergenceAddLoss: _COMMON + [
        ("distribution_b", 3, TypeError), ("use_exact_kl", "yes", TypeError),
        ("test_points_reduce_axis", "a", TypeError), ("test_points_fn", 3, TypeError),
        ("weight", "heavy", TypeError)],
    VariableLayer: [("name_typo_dtyp", "float32", TypeError), ("trainable", "yes", TypeError),
                    ("shape", -1, ValueError), ("shape", "a", TypeError),
                    ("shape", np.ones((2, 2)), ValueError), ("dtype", "floof", TypeError),
                    ("activation", "nonsense", ValueError), ("activation", 3, TypeError),
                    ("initializer", _INITIALIZER, ValueError), ("initializer", 3, TypeError),
                    ("regularizer", "nonsense", ValueError), ("constraint", "nonsense",
                                                              ValueError)],
    DenseVariational: _COMMON + [
        ("units", 0, ValueError), ("units", "4", TypeError), ("make_posterior_fn", 3, TypeError),
        ("make_posterior_fn", lambda kernel_size: None, TypeError),
        ("make_prior_fn", None, TypeError), ("kl_weight", "x", TypeError),
        ("kl_use_exact", 1, TypeError), ("activation", "nonsense", ValueError),
        ("use_bias", "yes", TypeError), ("activity_regularizer", 3, TypeError)],
    AutoregressiveNetwork: _COMMON + [
        ("params", 0, ValueError), ("event_shape", [2, 3], ValueError),
        ("conditional", "yes", TypeError), ("conditional_event_shape", [4], ValueError),
        ("conditional_input_layers", "some_layers", ValueError),
        ("hidden_units", [0], ValueError), ("hidden_units", "a", TypeError),
        ("input_order", "up", ValueError), ("input_order", 5, TypeError),
        ("hidden_degrees", "x", ValueError), ("activation", 3, TypeError),
        ("use_bias", "y", TypeError), ("kernel_initializer", _INITIALIZER, ValueError),
        ("bias_initializer", 3, TypeError), ("kernel_regularizer", "nonsense", ValueError),
        ("bias_regularizer", 3, TypeError), ("kernel_constraint", "nonsense", ValueError),
        ("bias_constraint", 3, TypeError), ("validate_args", "n", TypeError)],
    AutoregressiveTransform: _COMMON + [("made", 3, TypeError),
                                        ("made", AutoregressiveNetwork(params=3), ValueError)],
    VariationalGaussianProcess: [
        ("num_inducing_points", 0, ValueError), ("kernel_provider", 3, TypeError),
        ("kernel_provider", keras.layers.Dense(1), TypeError),
        ("event_shape", [0], ValueError), ("event_shape", "a", TypeError),
        ("inducing_index_points_initializer", _INITIALIZER, ValueError),
        ("unconstrained_observation_noise_variance_initializer", _INITIALIZER, ValueError),
        ("variational_inducing_observations_scale_initializer", 3, TypeError),
        ("mean_fn", 3, TypeError), ("jitter", -1.0, ValueError), ("jitter", "small", TypeError),
        ("convert_to_tensor_fn", 3, TypeError), ("trainable", "yes", TypeError)],
}
HOSTILE_CASES = [(cls, argument, value, error)
                 for cls, rows in HOSTILE.items() for argument, value, error in rows]


def _suffix(layer):
    match = re.search(r"_(\d+)$", layer.name)
    return int(match.group(1)) if match else 0


@pytest.mark.parametrize(
    "cls,argument,value,error", HOSTILE_CASES,
    # No memory address in an id: every pytest-xdist worker must collect the same names.
    ids=[re.sub(r" at 0x[0-9a-f]+", "", f"{cls.__name__}-{argument}-{value!r}")[:70]
         for cls, argument, value, _ in HOSTILE_CASES])
def test_hostile_argument_is_refused_by_name_before_any_state(cls, argument, value, error):
    first = cls(**REQUIRED[cls]())
    arguments = {**REQUIRED[cls](), argument: value}
    with pytest.raises(error) as raised:
        cls(**arguments)
    message = str(raised.value)
    assert f"`{argument}`" in message and f"Received: {argument}=" in message, message
    # Refused before Keras's constructor ran: the next layer takes the next name.
    assert _suffix(cls(**REQUIRED[cls]())) == _suffix(first) + 1


@pytest.mark.parametrize("argument,value,error", HOSTILE[KLDivergenceAddLoss][3:])
def test_hostile_regularizer_argument(argument, value, error):
    with pytest.raises(error, match=rf"`{argument}`.*Received: {argument}="):
        KLDivergenceRegularizer(**{"distribution_b": standard_normal_prior, argument: value})


def test_unknown_argument_suggests_the_close_one():
    with pytest.raises(TypeError, match=r"Unknown argument `evnt_shape`: did you mean "
                                        r"`event_shape`\?"):
        IndependentNormal(evnt_shape=[2])


def test_conditional_network_needs_its_input():
    made = AutoregressiveNetwork(2, event_shape=3, conditional=True, conditional_event_shape=2)
    with pytest.raises(ValueError, match=r"`conditional_input` must be passed.*Received: "
                                         r"conditional_input=None"):
        made(tf.zeros((1, 3)))
    assert tuple(made(tf.zeros((4, 3)), conditional_input=tf.zeros((4, 2))).shape) == (4, 3, 2)


def test_input_order_not_a_permutation_of_the_event():
    with pytest.raises(ValueError, match=r"`input_order` must be a permutation of 1..3\. "
                                         r"Received: input_order=\[1, 1, 2\]"):
        AutoregressiveNetwork(2, event_shape=3, input_order=[1, 1, 2])
    made = AutoregressiveNetwork(2, input_order=[2, 1])
    with pytest.raises(ValueError, match=r"`input_order` must be a permutation of 1..3"):
        made(tf.zeros((1, 3)))
