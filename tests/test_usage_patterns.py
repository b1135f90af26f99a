"""Every way Keras builds and calls a layer, with every kind of fn.

One table drives this file and the R package's test-usage-patterns.R:
r/tests/testthat/fixtures/usage_patterns.csv lists the patterns (rows). Each
row here runs with three kinds of fns: the defaults, custom Python fns, and
TFP's own closures (the defaults of ``tfp.layers.Convolution3DReparameterization``).
Every case goes through fit, predict, evaluate, predict_mc and a save/load round
trip, and asserts behaviour: output shapes, one KL per Bayesian part, the
posterior moved in training (every posterior variable, so gradients reached
them all), and the restored model agrees with the original in distribution.

The patterns that build the layer inside a traced function (no Input, a
subclassed model, a custom tf.function step) are the ones that failed before
build() was lifted out of function graphs.
"""

import csv
import inspect
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfprobr_bridge
from tfprobr_bridge import Conv3DReparameterization

tfd = tfp.distributions

TABLE = (
    pathlib.Path(__file__).resolve().parents[1]
    / "r" / "tests" / "testthat" / "fixtures" / "usage_patterns.csv"
)
PATTERNS = [row["pattern"] for row in csv.DictReader(TABLE.open())]

SHAPE = (6, 6, 6, 1)
OUTPUTS = 3
EXAMPLES = 8
N_SAMPLES = 30


# Custom Python fns, as a user writes them: a posterior with its own variable
# names and a softplus scale, a narrower prior, a sampling tensor fn and a
# scaled KL; the bias gets a posterior and a prior too, so two KL terms.
def custom_posterior_fn(dtype, shape, name, trainable, add_variable_fn):
    loc = add_variable_fn(
        name=f"{name}_mean",
        shape=shape,
        initializer=keras.initializers.RandomNormal(stddev=0.1),
        dtype=dtype,
        trainable=trainable,
    )
    rho = add_variable_fn(
        name=f"{name}_rho",
        shape=shape,
        initializer=keras.initializers.Constant(-4.0),
        dtype=dtype,
        trainable=trainable,
    )
    scale = tfp.util.DeferredTensor(rho, tf.nn.softplus)
    return tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=len(shape))


def custom_prior_fn(dtype, shape, name, trainable, add_variable_fn):
    del name, trainable, add_variable_fn
    normal = tfd.Normal(tf.zeros(shape, dtype), tf.constant(0.5, dtype))
    return tfd.Independent(normal, reinterpreted_batch_ndims=len(shape))


def custom_tensor_fn(distribution):
    return distribution.sample()


def custom_divergence_fn(q, p, sample):
    del sample
    return tfd.kl_divergence(q, p) / EXAMPLES


def _tfp_defaults():
    parameters = inspect.signature(tfp.layers.Convolution3DReparameterization).parameters
    return {
        name: parameters[name].default
        for name in tfprobr_bridge.layers.base.FN_ARGUMENTS  # noqa: SLF001
    }


FNS = {
    "default": ({}, 1),
    "custom_python": (
        {
            "kernel_posterior_fn": custom_posterior_fn,
            "kernel_posterior_tensor_fn": custom_tensor_fn,
            "kernel_prior_fn": custom_prior_fn,
            "kernel_divergence_fn": custom_divergence_fn,
            "bias_posterior_fn": custom_posterior_fn,
            "bias_posterior_tensor_fn": custom_tensor_fn,
            "bias_prior_fn": custom_prior_fn,
            "bias_divergence_fn": custom_divergence_fn,
        },
        2,
    ),
    "tfp_closures": (_tfp_defaults(), 1),
}


def test_the_tfp_closures_are_tfps_own():
    fns, _ = FNS["tfp_closures"]
    assert fns["kernel_posterior_fn"].__module__.startswith("tensorflow_probability")
    assert fns["kernel_prior_fn"] is tfp.layers.util.default_multivariate_normal_fn
    assert fns["bias_prior_fn"] is None


def test_every_pattern_in_the_table_has_a_python_implementation():
    assert set(PATTERNS) == set(BUILDERS), "the table and BUILDERS must list the same patterns"


# ---------------------------------------------------------------------------
# The patterns. Each builder returns a Case: a model that has not been called
# yet, how many Bayesian layer calls it makes, and how it trains first.


class Case:
    def __init__(self, model, bayesian_calls=1, two_inputs=False):
        self.model = model
        self.bayesian_calls = bayesian_calls
        self.two_inputs = two_inputs
        self.first = "fit"  # or "predict", "evaluate", "call", "predict_mc", "custom"
        self.compile_kwargs = {}
        self.strategy = None
        self.tf_saved_model = False


def bayes(fns, **kwargs):
    return Conv3DReparameterization(2, 3, padding="same", name=kwargs.pop("name", None),
                                    **fns, **kwargs)


def head():
    return [keras.layers.GlobalAveragePooling3D(), keras.layers.Dense(OUTPUTS)]


def sequential(fns):
    return keras.Sequential([bayes(fns), *head()])


@keras.saving.register_keras_serializable(package="tfprobr_tests")
class Subclassed(keras.Model):
    """A subclassed model holding the layer, serialisable as Keras asks."""

    def __init__(self, bayes_layer, **kwargs):
        super().__init__(**kwargs)
        self.bayes = bayes_layer
        self.pool, self.dense = head()

    def call(self, inputs):
        return self.dense(self.pool(self.bayes(inputs)))

    def get_config(self):
        config = super().get_config()
        config["bayes_layer"] = keras.saving.serialize_keras_object(self.bayes)
        return config

    @classmethod
    def from_config(cls, config):
        config["bayes_layer"] = keras.saving.deserialize_keras_object(config["bayes_layer"])
        return cls(**config)


def _first(action):
    def builder(fns):
        case = Case(sequential(fns))
        case.first = action
        return case

    return builder


def _subclassed(fns):
    return Case(Subclassed(bayes(fns)))


def _custom_train_step(fns):
    case = Case(sequential(fns))
    case.first = "custom"
    return case


def _input_first(fns):
    return Case(keras.Sequential([keras.Input(SHAPE), bayes(fns), *head()]))


def _model_build(fns):
    case = Case(sequential(fns))
    case.model.build((None, *SHAPE))
    return case


def _functional(fns):
    inputs = keras.Input(SHAPE)
    outputs = inputs
    for layer in (bayes(fns), *head()):
        outputs = layer(outputs)
    return Case(keras.Model(inputs, outputs))


def _nested(fns):
    inner = keras.Sequential([bayes(fns), keras.layers.GlobalAveragePooling3D()])
    return Case(keras.Sequential([inner, keras.layers.Dense(OUTPUTS)]))


def _shared_layer(fns):
    shared = bayes(fns)
    first, second = keras.Input(SHAPE), keras.Input(SHAPE)
    pool = keras.layers.GlobalAveragePooling3D()
    merged = keras.layers.Concatenate()([pool(shared(first)), pool(shared(second))])
    return Case(keras.Model([first, second], keras.layers.Dense(OUTPUTS)(merged)),
                bayesian_calls=2, two_inputs=True)


def _mirrored(fns):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = sequential(fns)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    case = Case(model)
    case.strategy = strategy
    return case


def _jit(fns):
    case = Case(sequential(fns))
    case.compile_kwargs = {"jit_compile": True}
    return case


def _saved_model(fns):
    case = Case(sequential(fns))
    case.tf_saved_model = True
    return case


BUILDERS = {
    "sequential_fit_first": _first("fit"),
    "sequential_predict_first": _first("predict"),
    "sequential_evaluate_first": _first("evaluate"),
    "subclassed_model": _subclassed,
    "custom_train_step": _custom_train_step,
    "predict_mc_unbuilt": _first("predict_mc"),
    "input_first": _input_first,
    "eager_call_first": _first("call"),
    "model_build": _model_build,
    "functional": _functional,
    "nested": _nested,
    "shared_layer": _shared_layer,
    "mirrored_deferred": _mirrored,
    "mixed_float16": _first("fit"),
    "mixed_bfloat16": _first("fit"),
    "jit_compile": _jit,
    "saved_model": _saved_model,
}


# ---------------------------------------------------------------------------
# The checks every case goes through.


@pytest.fixture
def policy(request):
    pattern = request.node.callspec.params["pattern"]
    name = pattern if pattern.startswith("mixed_") else "float32"
    keras.config.set_dtype_policy(name)
    yield name
    keras.config.set_dtype_policy("float32")


def data(case, rng, examples=EXAMPLES):
    x = rng.standard_normal((examples, *SHAPE)).astype("float32")
    y = rng.standard_normal((examples, OUTPUTS)).astype("float32")
    if case.two_inputs:
        return [x, x[::-1].copy()], y
    return x, y


def bayesian_layers(model):
    return [
        layer for layer in model._flatten_layers()  # noqa: SLF001 -- nested layers too
        if isinstance(layer, Conv3DReparameterization)
    ]


def posterior_variables(model):
    return {
        variable.path: variable
        for layer in bayesian_layers(model)
        for variable in layer.trainable_variables
    }


class Snapshot(keras.callbacks.Callback):
    """The posterior's values before the first training step, or, when the
    first step is what builds the layer, right after it (later steps must
    still move every variable)."""

    def __init__(self):
        super().__init__()
        self.values = None

    def _take(self):
        if not self.values:
            self.values = {p: v.numpy().copy() for p, v in posterior_variables(self.model).items()}

    def on_train_batch_begin(self, batch, logs=None):
        self._take()

    def on_train_batch_end(self, batch, logs=None):
        self._take()


def compile_model(case):
    if not case.model.compiled:
        case.model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse",
                           **case.compile_kwargs)


def custom_training(case, x, y, steps=3):
    """A training step in a tf.function that calls the (unbuilt) model first."""
    model, optimizer = case.model, keras.optimizers.Adam(0.01)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            outputs = model(x, training=True)
            loss = tf.reduce_mean(tf.square(tf.cast(outputs, y.dtype) - y)) + tf.add_n(
                model.losses
            )
        variables = model.trainable_variables
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return gradients

    gradients = step(tf.constant(x), tf.constant(y))
    for variable, gradient in zip(model.trainable_variables, gradients):
        if variable.path in posterior_variables(model):
            assert gradient is not None and float(tf.reduce_sum(tf.abs(gradient))) > 0, (
                f"no gradient reached {variable.path}"
            )
    before = {p: v.numpy().copy() for p, v in posterior_variables(model).items()}
    for _ in range(steps - 1):
        step(tf.constant(x), tf.constant(y))
    return before


def assert_kl_terms(case, expected_per_call):
    losses = case.model.losses
    assert len(losses) == expected_per_call * case.bayesian_calls, [str(v) for v in losses]
    for value in losses:
        assert tuple(value.shape) == () and np.isfinite(float(value)) and float(value) > 0


def monte_carlo_mean(call, x, n=N_SAMPLES):
    draws = np.stack([np.asarray(call(x), dtype="float64") for _ in range(n)])
    return draws.mean(axis=0), draws.std(axis=0)


@pytest.mark.slow
@pytest.mark.parametrize("fns", sorted(FNS))
@pytest.mark.parametrize("pattern", PATTERNS)
def test_usage_pattern(pattern, fns, policy, rng, tmp_path):
    layer_fns, kl_per_call = FNS[fns]
    case = BUILDERS[pattern](layer_fns)
    model = case.model
    x, y = data(case, rng)
    before = None
    snapshot = Snapshot()

    # The first thing the user does with the model, before anything built it.
    if case.first == "predict":
        assert model.predict(x, verbose=0).shape == (EXAMPLES, OUTPUTS)
    elif case.first == "evaluate":
        compile_model(case)
        assert np.isfinite(model.evaluate(x, y, verbose=0))
    elif case.first == "call":
        assert tuple(model(x).shape) == (EXAMPLES, OUTPUTS)
    elif case.first == "predict_mc":
        result = tfprobr_bridge.predict_mc(model, x, n_samples=5)
        assert result["mean"].shape == result["stddev"].shape == (EXAMPLES, OUTPUTS)
    elif case.first == "custom":
        before = custom_training(case, x, y)

    # Training: Keras's fit (the custom-step row trained above).
    if case.first != "custom":
        compile_model(case)
        history = model.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[snapshot])
        assert np.all(np.isfinite(history.history["loss"]))
        before = snapshot.values
    after = {p: v.numpy() for p, v in posterior_variables(model).items()}
    assert set(before) == set(after) and len(after) >= 2
    unmoved = [p for p in after if np.array_equal(before[p], after[p])]
    assert not unmoved, f"training did not move {unmoved}"

    layer = bayesian_layers(model)[0]
    expected_dtype = "float32" if policy == "float32" else policy.split("_")[1]
    assert layer.compute_dtype == expected_dtype
    assert all(v.dtype == "float32" for v in layer.weights)

    # predict, evaluate, predict_mc on the trained model.
    predictions = model.predict(x, verbose=0)
    assert predictions.shape == (EXAMPLES, OUTPUTS) and np.all(np.isfinite(predictions))
    compile_model(case)
    assert np.isfinite(model.evaluate(x, y, verbose=0))
    result = tfprobr_bridge.predict_mc(model, x, n_samples=N_SAMPLES)
    assert result["mean"].shape == result["stddev"].shape == (EXAMPLES, OUTPUTS)
    assert np.all(result["stddev"] > 0), "every prediction should vary between draws"
    model(x)
    assert_kl_terms(case, kl_per_call)

    # Save and load back; the restored model must agree in distribution.
    if case.tf_saved_model:
        path = str(tmp_path / "saved_model")
        tf.saved_model.save(model, path)
        restored = tf.saved_model.load(path)

        def restored_call(inputs):
            return restored.signatures["serving_default"](tf.constant(inputs))["output_0"]
    else:
        path = tmp_path / "model.keras"
        if case.strategy is not None:
            with case.strategy.scope():
                model.save(path)
        else:
            model.save(path)
        # A user fn that is not a registered Keras object is stored by value;
        # loading it runs stored code, which Keras's safe mode refuses.
        safe = fns == "default"
        restored = keras.models.load_model(path, safe_mode=safe)
        saved = posterior_variables(model)
        loaded = posterior_variables(restored)
        assert sorted(p.split("/")[-1] for p in saved) == sorted(
            p.split("/")[-1] for p in loaded
        )
        for a, b in zip(
            sorted(saved.values(), key=lambda v: v.path),
            sorted(loaded.values(), key=lambda v: v.path),
        ):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        restored(x)
        assert len(restored.losses) == kl_per_call * case.bayesian_calls

        def restored_call(inputs):
            return restored(inputs)

    original_mean = result["mean"].astype("float64")
    restored_mean, restored_std = monte_carlo_mean(restored_call, x)
    # Two independent Monte Carlo means over N draws each: their difference
    # has standard deviation sqrt(2/N) * std. Allow 5 of those (plus rounding
    # in half precision).
    atol = 5 * np.sqrt(2 / N_SAMPLES) * np.maximum(result["stddev"], restored_std)
    atol += 0.02 if policy != "float32" else 1e-5
    np.testing.assert_array_less(np.abs(original_mean - restored_mean), atol)
    np.testing.assert_allclose(restored_std.mean(), result["stddev"].mean(), rtol=0.5)


def test_fns_called_again_after_a_symbolic_build_must_ask_for_the_same_variables(rng):
    """Keras builds a subclassed model in a stateless scope first; the fns are
    then called again on the real variables. A fn that asks for other
    variables the second time gets a clear error, not a silent mismatch."""
    calls = []

    def changing_posterior_fn(dtype, shape, name, trainable, add_variable_fn):
        calls.append(name)
        loc = add_variable_fn(name=f"{name}_loc_{len(calls)}", shape=shape,
                              initializer="zeros", dtype=dtype, trainable=trainable)
        return tfd.Independent(tfd.Deterministic(loc), reinterpreted_batch_ndims=len(shape))

    model = Subclassed(bayes({"kernel_posterior_fn": changing_posterior_fn}))
    model.compile(optimizer="adam", loss="mse")
    x, y = data(Case(model), rng)
    with pytest.raises(RuntimeError, match=r"asked for a different variable \('kernel_posterior_loc_2'"):
        model.fit(x, y, epochs=1, verbose=0)


def test_a_symbolic_build_calls_each_fn_once_more_and_no_more(rng):
    calls = []

    def counting_prior_fn(dtype, shape, name, trainable, add_variable_fn):
        calls.append(name)
        return tfprobr_bridge.default_multivariate_normal_fn(dtype, shape, name, trainable,
                                                             add_variable_fn)

    model = Subclassed(bayes({"kernel_prior_fn": counting_prior_fn}))
    model.compile(optimizer="adam", loss="mse")
    x, y = data(Case(model), rng)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    model.predict(x, verbose=0)
    assert calls == ["kernel_prior", "kernel_prior"]
    # Built directly (an eager call), the fns run once.
    calls.clear()
    sequential({"kernel_prior_fn": counting_prior_fn})(x)
    assert calls == ["kernel_prior"]
