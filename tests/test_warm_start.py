"""to_bayesian: a Bayesian copy of a trained deterministic model (MOPED warm start)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import fixed_tensor_fn
from helpers import volumes

import tfprobr_bridge
from tfprobr_bridge import predict_mc
from tfprobr_bridge import EmpiricalNormalPrior
from tfprobr_bridge import to_bayesian

ESTIMATORS = ("reparameterization", "flipout", "local_reparameterization")
SUFFIX = {
    "reparameterization": "Reparameterization",
    "flipout": "Flipout",
    "local_reparameterization": "LocalReparameterization",
}
FLOOR = 1e-5  # The documented SCALE_FLOOR, written out: the test pins the value.
CONV = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}
POOL = {1: keras.layers.MaxPooling1D, 2: keras.layers.MaxPooling2D, 3: keras.layers.MaxPooling3D}
GLOBAL_POOL = {
    1: keras.layers.GlobalAveragePooling1D,
    2: keras.layers.GlobalAveragePooling2D,
    3: keras.layers.GlobalAveragePooling3D,
}


def _np(value, dtype=None):
    """A tensor or variable as a numpy array (np.asarray warns on Keras variables)."""
    array = value if isinstance(value, np.ndarray) else tf.convert_to_tensor(value).numpy()
    return array if dtype is None else array.astype(dtype)


def _trained(model, rng):
    """Give every weight a value no initializer would (a stand-in for training)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _trained(layer, rng)
            continue
        values = []
        for weight in layer.weights:
            shape = tuple(weight.shape)
            if "variance" in weight.path:
                values.append(rng.uniform(0.5, 1.5, shape).astype("float32"))
            else:
                values.append(rng.normal(0.0, 0.3, shape).astype("float32"))
        if values:
            layer.set_weights(values)
    return model


def _sequential(rank, rng):
    spatial = (4,) * rank
    model = keras.Sequential(
        [
            keras.Input((*spatial, 2)),
            CONV[rank](3, 2, padding="same", activation="relu", name="conv_a"),
            keras.layers.BatchNormalization(name="norm"),
            POOL[rank](2, name="pool"),
            CONV[rank](2, 1, use_bias=False, name="conv_b"),
            GLOBAL_POOL[rank](name="global_pool"),
            keras.layers.Dense(4, activation="tanh", name="hidden"),
            keras.layers.Dense(2, name="out"),
        ],
        name="deterministic",
    )
    return _trained(model, rng), volumes(rng, (3, *spatial, 2))


def _functional(rng):
    block = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(5, activation="relu", name="inner_dense")],
        name="block",
    )
    inputs = keras.Input((6, 6, 1), name="image")
    x = keras.layers.Conv2D(3, 3, strides=2, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    x = keras.layers.AveragePooling2D(2, name="pool")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5, name="dense")(x)
    x = block(x)
    outputs = keras.layers.Dense(1, name="out")(x)
    model = keras.Model(inputs, outputs, name="functional_deterministic")
    return _trained(model, rng), volumes(rng, (4, 6, 6, 1))


def _variational_layers(model):
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += _variational_layers(layer)
        elif hasattr(layer, "kernel_posterior"):
            found.append(layer)
    return found


def _at_posterior_mean(model):
    for layer in _variational_layers(model):
        layer.kernel_posterior_tensor_fn = fixed_tensor_fn
        layer.bias_posterior_tensor_fn = fixed_tensor_fn
    return model


def _moped_scale(kernel, delta):
    return np.maximum(delta * np.abs(_np(kernel, np.float64)), FLOOR)


def _snapshot(model):
    return [(type(layer), layer.name) for layer in model.layers], [
        _np(w) for w in model.weights
    ]


def _assert_started_at(layer, deterministic, delta):
    kernel = _np(deterministic.kernel)
    normal = layer.kernel_posterior.distribution
    np.testing.assert_array_equal(_np(normal.loc), kernel)
    np.testing.assert_allclose(_np(normal.scale), _moped_scale(kernel, delta), rtol=1e-5)
    if deterministic.use_bias:
        np.testing.assert_array_equal(_np(layer.bias_posterior.mean()), _np(deterministic.bias))
    else:
        assert layer.bias_posterior is None and layer.bias_posterior_fn is None


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("rank", (1, 2, 3))
def test_sequential_convolutions_and_dense_start_at_the_trained_weights(rank, estimator, rng):
    deterministic, x = _sequential(rank, rng)
    before = _snapshot(deterministic)
    bayesian = to_bayesian(deterministic, estimator=estimator, delta=0.2, num_examples=1)

    suffix = SUFFIX[estimator]
    assert [type(layer).__name__ for layer in bayesian.layers] == [
        f"Conv{rank}D{suffix}", "BatchNormalization", f"MaxPooling{rank}D",
        f"Conv{rank}D{suffix}", f"GlobalAveragePooling{rank}D", f"Dense{suffix}",
        f"Dense{suffix}",
    ]
    assert [layer.name for layer in bayesian.layers] == [
        layer.name for layer in deterministic.layers
    ]
    conv_a = bayesian.get_layer("conv_a")
    assert (conv_a.filters, conv_a.kernel_size, conv_a.padding) == (3, (2,) * rank, "same")
    assert conv_a.activation is keras.activations.relu
    assert bayesian.get_layer("hidden").activation is keras.activations.tanh
    for name in ("conv_a", "conv_b", "hidden", "out"):
        _assert_started_at(bayesian.get_layer(name), deterministic.get_layer(name), 0.2)
    for weight, trained in zip(bayesian.get_layer("norm").weights,
                               deterministic.get_layer("norm").weights):
        np.testing.assert_array_equal(_np(weight), _np(trained))

    # At the posterior means the copy computes what the deterministic model does.
    expected = deterministic.predict(x, verbose=0)
    np.testing.assert_allclose(
        _at_posterior_mean(bayesian).predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5
    )
    after = _snapshot(deterministic)
    assert before[0] == after[0]
    for old, new in zip(before[1], after[1]):
        np.testing.assert_array_equal(old, new)


def test_functional_model_with_a_nested_sequential(rng):
    deterministic, x = _functional(rng)
    bayesian = to_bayesian(deterministic, estimator="flipout", delta=0.1, num_examples=1)
    assert bayesian is not deterministic and bayesian.name == deterministic.name
    assert type(bayesian.get_layer("conv")) is tfprobr_bridge.Conv2DFlipout
    assert bayesian.get_layer("conv").strides == (2, 2)
    block = bayesian.get_layer("block")
    assert block is not deterministic.get_layer("block")
    assert type(block.get_layer("inner_dense")) is tfprobr_bridge.DenseFlipout
    _assert_started_at(
        block.get_layer("inner_dense"),
        deterministic.get_layer("block").get_layer("inner_dense"),
        0.1,
    )
    assert type(deterministic.get_layer("block").get_layer("inner_dense")) is keras.layers.Dense
    np.testing.assert_allclose(
        _at_posterior_mean(bayesian).predict(x, verbose=0),
        deterministic.predict(x, verbose=0),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_sampled_predictions_are_close_to_the_deterministic_ones(estimator, rng):
    deterministic, x = _functional(rng)
    bayesian = to_bayesian(deterministic, estimator=estimator, delta=1e-3, num_examples=1)
    result = predict_mc(bayesian, x, n_samples=10)
    expected = deterministic.predict(x, verbose=0)
    assert np.all(result["stddev"] > 0)  # Still Bayesian: the draws differ...
    # ...by about delta of the output's size.
    np.testing.assert_allclose(result["mean"], expected, atol=0.01 * np.abs(expected).max())


def test_zero_weights_get_the_floor_scale(rng):
    deterministic, _ = _functional(rng)
    dense = deterministic.get_layer("dense")
    kernel = _np(dense.kernel)
    kernel[0] = 0.0
    dense.kernel.assign(kernel)
    posterior = to_bayesian(deterministic, delta=0.5, num_examples=1).get_layer("dense").kernel_posterior
    scale = _np(posterior.distribution.scale)
    np.testing.assert_allclose(scale[0], FLOOR, rtol=1e-4)
    np.testing.assert_allclose(scale[1:], 0.5 * np.abs(kernel[1:]), rtol=1e-5)


def test_layers_restricts_the_conversion(rng):
    deterministic, x = _functional(rng)
    deterministic.get_layer("out").trainable = False
    bayesian = to_bayesian(deterministic, layers=["inner_dense", "out"], num_examples=1)
    assert type(bayesian.get_layer("conv")) is keras.layers.Conv2D
    assert type(bayesian.get_layer("dense")) is keras.layers.Dense
    np.testing.assert_array_equal(
        _np(bayesian.get_layer("conv").kernel), _np(deterministic.get_layer("conv").kernel)
    )
    out = bayesian.get_layer("out")
    assert type(out) is tfprobr_bridge.DenseReparameterization
    assert not out.trainable and not out.trainable_weights
    inner = bayesian.get_layer("block").get_layer("inner_dense")
    assert type(inner) is tfprobr_bridge.DenseReparameterization
    # One name as a string (an R character vector of length 1).
    assert type(to_bayesian(deterministic, layers="conv", num_examples=1).get_layer("conv")) is (
        tfprobr_bridge.Conv2DReparameterization
    )


class _ScaledDense(keras.layers.Dense):
    def call(self, inputs):
        return 2.0 * super().call(inputs)


def _awkward_model():
    inputs = keras.Input((8, 4))
    x = keras.layers.Conv1D(4, 3, groups=2, name="grouped")(inputs)
    x = keras.layers.Conv1D(4, 2, padding="causal", name="causal")(x)
    x = keras.layers.Conv1D(2, 2, name="plain")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = _ScaledDense(1, name="scaled")(x)
    return keras.Model(inputs, outputs)


def test_layers_without_a_variational_version_are_copied_unchanged():
    deterministic = _awkward_model()
    bayesian = to_bayesian(deterministic, num_examples=1)
    kinds = {layer.name: type(layer) for layer in bayesian.layers}
    assert kinds["grouped"] is kinds["causal"] is keras.layers.Conv1D
    assert kinds["scaled"] is _ScaledDense
    assert kinds["plain"] is tfprobr_bridge.Conv1DReparameterization
    np.testing.assert_array_equal(
        _np(bayesian.get_layer("grouped").kernel), _np(deterministic.get_layer("grouped").kernel)
    )


@pytest.mark.parametrize(
    "name, reason",
    [
        ("grouped", r"'grouped' \(a grouped convolution \(groups=2\)"),
        ("causal", r"'causal' \(padding=\"causal\""),
        ("scaled", r"'scaled' \(_ScaledDense subclasses a Keras layer"),
        ("flatten", r"'flatten' \(Flatten: only Conv1D, Conv2D, Conv3D and Dense"),
    ],
)
def test_naming_a_layer_that_cannot_be_converted_is_an_error(name, reason):
    deterministic = _awkward_model()
    with pytest.raises(ValueError, match=r"`layers` names a layer to_bayesian cannot convert: "
                       + reason):
        to_bayesian(deterministic, layers=[name], num_examples=1)


def test_kl_at_the_start_is_the_analytic_one(rng):
    deterministic, x = _functional(rng)
    delta, examples = 0.2, 50.0
    standard = to_bayesian(deterministic, delta=delta, num_examples=examples)
    empirical = to_bayesian(deterministic, delta=delta, prior="empirical", num_examples=1)
    standard(x)
    empirical(x)

    kernel = _np(deterministic.get_layer("dense").kernel, np.float64)
    scale = _moped_scale(kernel, delta)
    kl_standard = np.sum(-np.log(scale) + (scale**2 + kernel**2) / 2 - 0.5)
    np.testing.assert_allclose(
        float(standard.get_layer("dense").losses[0]), kl_standard / examples, rtol=1e-4
    )
    # The empirical prior is the posterior's starting point: KL 0 in every layer...
    for layer in _variational_layers(empirical):
        assert len(layer.losses) == 1
        assert abs(float(layer.losses[0])) < 1e-3
    # ...and once the posterior mean moves by d, the KL is sum(d^2 / (2 scale^2)).
    dense = empirical.get_layer("dense")
    shift = rng.normal(0, 0.01, kernel.shape)
    dense.kernel_posterior.distribution.loc.assign((kernel + shift).astype("float32"))
    expected = np.sum(shift**2 / (2 * scale**2))
    np.testing.assert_allclose(
        float(tfprobr_bridge.kl_divergence_fn(dense.kernel_posterior, dense.kernel_prior, None)),
        expected,
        rtol=1e-3,
    )


def test_empirical_prior_is_centred_on_the_trained_weights_and_not_trained(rng):
    deterministic, x = _functional(rng)
    bayesian = to_bayesian(deterministic, delta=0.3, prior="empirical", num_examples=1)
    for layer in _variational_layers(bayesian):
        assert layer.kernel_prior_fn == EmpiricalNormalPrior()
        trained = _np(
            (deterministic.get_layer("block") if layer.name == "inner_dense"
             else deterministic).get_layer(layer.name).kernel
        )
        np.testing.assert_array_equal(_np(layer.kernel_prior.mean()), trained)
        np.testing.assert_allclose(
            _np(layer.kernel_prior.distribution.scale), _moped_scale(trained, 0.3),
            rtol=1e-5,
        )
        prior_names = {"kernel_prior_loc", "kernel_prior_untransformed_scale"}
        assert prior_names == {w.name for w in layer.non_trainable_weights}
        assert not prior_names & {w.name for w in layer.trainable_weights}
        assert layer.bias_prior is None  # A point-mass bias has no finite KL.
    bayesian.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    prior_before = _np(bayesian.get_layer("dense").kernel_prior.mean())
    bayesian.fit(x, np.ones((4, 1)), epochs=3, verbose=0)
    prior_after = _np(bayesian.get_layer("dense").kernel_prior.mean())
    np.testing.assert_array_equal(prior_after, prior_before)


def test_round_trip_keeps_classes_weights_and_the_empirical_prior(tmp_path, rng):
    deterministic, x = _functional(rng)
    bayesian = to_bayesian(
        deterministic, estimator="local_reparameterization", prior="empirical", num_examples=4
    )
    path = tmp_path / "warm.keras"
    bayesian.save(path)
    loaded = keras.models.load_model(path)  # Safe mode, no custom_objects.
    assert [(type(a), a.name) for a in loaded.layers] == [
        (type(b), b.name) for b in bayesian.layers
    ]
    # (A nested model's variables may lose its name from their paths on loading.)
    assert [w.path.split("/")[-2:] for w in loaded.weights] == [
        w.path.split("/")[-2:] for w in bayesian.weights
    ]
    for restored, original in zip(loaded.weights, bayesian.weights):
        np.testing.assert_array_equal(_np(restored), _np(original))
    dense = loaded.get_layer("dense")
    assert dense.kernel_prior_fn == EmpiricalNormalPrior()
    assert dense.kernel_divergence_fn == tfprobr_bridge.scaled_kl_divergence_fn(4)
    np.testing.assert_array_equal(
        _np(dense.kernel_prior.mean()), _np(deterministic.get_layer("dense").kernel)
    )
    np.testing.assert_allclose(
        _at_posterior_mean(loaded).predict(x, verbose=0),
        deterministic.predict(x, verbose=0),
        rtol=1e-4,
        atol=1e-5,
    )


def test_the_copy_trains_and_its_loss_decreases(rng):
    deterministic, x = _sequential(1, rng)
    deterministic.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    bayesian = to_bayesian(deterministic, estimator="flipout", num_examples=24)
    assert bayesian.compiled  # A compiled model gives a compiled copy (clone_model's rule).
    inputs = volumes(rng, (24, 4, 2))
    targets = volumes(rng, (24, 2))
    history = bayesian.fit(inputs, targets, epochs=25, batch_size=8, verbose=0)
    losses = history.history["loss"]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    assert np.all(np.isfinite(losses))


def test_a_model_built_by_training_without_an_input_is_converted(rng):
    deterministic = keras.Sequential([keras.layers.Dense(3), keras.layers.Dense(1)])
    deterministic.compile(optimizer="sgd", loss="mse")
    deterministic.fit(volumes(rng, (4, 5)), volumes(rng, (4, 1)), verbose=0)
    bayesian = to_bayesian(deterministic, num_examples=1)
    assert bayesian.built
    assert all(type(layer) is tfprobr_bridge.DenseReparameterization for layer in bayesian.layers)


def test_empirical_normal_prior_serialises_and_starts_standard():
    prior = EmpiricalNormalPrior()
    config = keras.saving.serialize_keras_object(prior)
    assert config["registered_name"] == "tfprobr_bridge>EmpiricalNormalPrior"
    assert keras.saving.deserialize_keras_object(config) == prior
    layer = tfprobr_bridge.DenseFlipout(2, kernel_prior_fn=prior)
    layer.build((None, 3))
    normal = layer.kernel_prior.distribution
    np.testing.assert_array_equal(_np(normal.loc), np.zeros((3, 2)))
    np.testing.assert_allclose(_np(normal.scale), np.ones((3, 2)), rtol=1e-6)


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, inputs):
        return self.dense(inputs)


def _small():
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        ({"estimator": "bayes"}, ValueError, r'`estimator` must be one of "reparameterization", '
         r'"flipout" or "local_reparameterization"\. Received: estimator=\'bayes\''),
        ({"estimator": 1}, TypeError, r"`estimator` must be one of .* Received: estimator=1"),
        ({"delta": 0}, ValueError, r"`delta` must be a positive number\. Received: delta=0"),
        ({"delta": "0.1"}, TypeError,
         r"`delta` must be a positive number\. Received: delta='0.1'"),
        ({"prior": "flat"}, ValueError,
         r'`prior` must be one of "standard" or "empirical"\. Received: prior=\'flat\''),
        ({"num_examples": -3}, ValueError, r"`num_examples` must be a positive number\. "
         r"Received: num_examples=-3"),
        # Unscaled, the whole network's KL joins every batch's loss: required.
        ({"num_examples": None}, TypeError, r"`num_examples` is required: the number of training "
         r"examples per epoch.*Received: num_examples=None"),
        ({"layers": 3}, TypeError, r"`layers` must be None or a list of layer names \(strings\)\. "
         r"Received: layers=3"),
        ({"layers": []}, ValueError, r"`layers` must name at least one layer"),
        ({"layers": ["e"]}, ValueError, r"`layers` names a layer the model does not have: 'e'\. "
         r"Layers to_bayesian can convert: \['d'\]\. Received: layers=\['e'\]"),
    ],
)
def test_bad_arguments_are_refused_in_keras_form(arguments, error, match):
    with pytest.raises(error, match=match):
        to_bayesian(_small(), **{"num_examples": 1, **arguments})


def test_naming_a_nested_model_asks_for_its_layers(rng):
    deterministic, _ = _functional(rng)
    with pytest.raises(ValueError, match=r"`layers` names a nested model, 'block': name the "
                       r"layers inside it instead\. Layers to_bayesian can convert: \['conv', "
                       r"'dense', 'inner_dense', 'out'\]"):
        to_bayesian(deterministic, layers=["block"], num_examples=1)


def test_models_that_cannot_be_converted_are_refused():
    with pytest.raises(TypeError, match=r"subclassed model \(_Subclassed\).*Rebuild it as a "
                       r"functional model"):
        model = _Subclassed()
        model(np.ones((1, 3), "float32"))
        to_bayesian(model, num_examples=1)
    with pytest.raises(TypeError, match=r"`model` must be a Keras 3 model .* Received: "
                       r"model=<Dense name=d.* of type Dense"):
        to_bayesian(_small().get_layer("d"), num_examples=1)
    with pytest.raises(ValueError, match=r"`model` must be built.*Received: model='unbuilt'"):
        to_bayesian(keras.Sequential([keras.layers.Dense(2)], name="unbuilt"))
    no_weights = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.MaxPooling2D()],
                                  name="pooling_only")
    with pytest.raises(ValueError, match=r"`model` has no layer to_bayesian can convert.*"
                       r"Received: model='pooling_only'"):
        to_bayesian(no_weights, num_examples=1)


def test_mixed_precision_policy_is_kept(rng):
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, dtype="mixed_float16", name="half")(inputs)
    deterministic = keras.Model(inputs, outputs)
    layer = to_bayesian(deterministic, delta=0.1, num_examples=1).get_layer("half")
    assert layer.dtype_policy.name == "mixed_float16"
    assert layer.kernel_posterior.distribution.loc.dtype == tf.float32
    _assert_started_at(layer, deterministic.get_layer("half"), 0.1)
