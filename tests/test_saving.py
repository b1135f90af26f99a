"""Saving to .keras and loading back."""

import keras
import numpy as np
import pytest
import tensorflow_probability as tfp
from helpers import volumes

import tfprobr_bridge
from tfprobr_bridge import Conv3DReparameterization


def _model(**layer_kwargs):
    return keras.Sequential(
        [
            keras.Input((5, 5, 5, 1)),
            Conv3DReparameterization(3, 2, activation="relu", name="bayes", **layer_kwargs),
            keras.layers.GlobalAveragePooling3D(),
            keras.layers.Dense(2),
        ]
    )


def _train(model, rng):
    model.compile(optimizer="adam", loss="mse")
    model.fit(volumes(rng, (8, 5, 5, 5, 1)), volumes(rng, (8, 2)), epochs=1, verbose=0)


def test_defaults_round_trip_without_custom_objects(tmp_path, rng):
    model = _model(
        bias_posterior_fn=tfprobr_bridge.default_mean_field_normal_fn(),
        bias_prior_fn=tfprobr_bridge.default_multivariate_normal_fn,
    )
    _train(model, rng)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # Safe mode, no custom_objects.

    original, restored = model.get_layer("bayes"), loaded.get_layer("bayes")
    assert type(restored) is Conv3DReparameterization
    assert [w.name for w in restored.weights] == [w.name for w in original.weights]
    for a, b in zip(original.weights, restored.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert restored.get_config() == original.get_config()
    assert isinstance(restored.kernel_posterior_fn, tfprobr_bridge.MeanFieldNormal)
    assert restored.kernel_prior_fn is tfprobr_bridge.default_multivariate_normal_fn

    x = volumes(rng, (4, 5, 5, 5, 1))
    loaded(x)
    model(x)
    assert len(loaded.losses) == 2
    # The analytic KL does not depend on the draw, so it must match exactly.
    np.testing.assert_allclose(
        [float(v) for v in loaded.losses], [float(v) for v in model.losses], rtol=1e-6
    )
    # The restored posterior reads the restored variables.
    np.testing.assert_allclose(
        restored.kernel_posterior.mean(), original.kernel_posterior.mean()
    )
    # And it keeps learning after loading.
    before = restored.weights[0].numpy()
    _train(loaded, rng)
    assert not np.allclose(before, restored.weights[0].numpy())


def kl_over_100(q, p, sample):
    return tfp.distributions.kl_divergence(q, p) / 100.0


@pytest.mark.parametrize(
    "fn",
    [
        lambda q, p, _: tfp.distributions.kl_divergence(q, p) / 100.0,
        kl_over_100,
        (lambda n: lambda q, p, _: tfp.distributions.kl_divergence(q, p) / n)(100.0),
    ],
    ids=["lambda", "module_function", "closure"],
)
def test_user_fns_save_and_need_safe_mode_off(tmp_path, rng, fn):
    model = _model(kernel_divergence_fn=fn)
    path = tmp_path / "model.keras"
    model.save(path)
    with pytest.raises(ValueError, match=r"`kernel_divergence_fn` was saved as Python bytecode.*safe_mode=False"):
        keras.models.load_model(path)
    loaded = keras.models.load_model(path, safe_mode=False)
    x = volumes(rng, (2, 5, 5, 5, 1))
    loaded(x)
    restored = loaded.get_layer("bayes")
    expected = tfp.distributions.kl_divergence(restored.kernel_posterior, restored.kernel_prior) / 100
    np.testing.assert_allclose(float(loaded.losses[0]), float(expected), rtol=1e-6)


def test_tfp_closures_save_and_load_with_safe_mode_off(tmp_path, rng):
    util = tfp.layers.util
    model = _model(kernel_posterior_fn=util.default_mean_field_normal_fn())
    _train(model, rng)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=False)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_unpicklable_fn_fails_loudly_at_save(tmp_path):
    class Unpicklable:
        def __call__(self, q, p, sample):
            return tfp.distributions.kl_divergence(q, p)

        def __reduce__(self):
            raise TypeError("this callable wraps a foreign object")

    model = _model(kernel_divergence_fn=Unpicklable())
    with pytest.raises(TypeError, match=r"`kernel_divergence_fn` cannot be saved"):
        model.save(tmp_path / "model.keras")


def test_unbuilt_layer_config_round_trip():
    layer = Conv3DReparameterization(
        4, (1, 2, 3), strides=2, padding="same", data_format="channels_first", name="x"
    )
    config = layer.get_config()
    assert config["kernel_size"] == (1, 2, 3)
    assert config["strides"] == (2, 2, 2)
    serialized = keras.saving.serialize_keras_object(layer)
    clone = keras.saving.deserialize_keras_object(serialized)
    assert type(clone) is Conv3DReparameterization
    assert clone.get_config() == config


def test_mean_field_normal_options_round_trip_and_apply(rng):
    fn = tfprobr_bridge.default_mean_field_normal_fn(
        loc_initializer=keras.initializers.Constant(0.25),
        untransformed_scale_initializer=keras.initializers.Constant(-5.0),
        loc_regularizer=keras.regularizers.L2(0.5),
        untransformed_scale_constraint=keras.constraints.NonNeg(),
    )
    clone = tfprobr_bridge.MeanFieldNormal.from_config(fn.get_config())
    assert clone == fn and clone is not fn
    layer = Conv3DReparameterization(2, 1, kernel_posterior_fn=clone)
    layer(volumes(rng, (1, 2, 2, 2, 1)))
    np.testing.assert_allclose(layer.weights[0].numpy(), 0.25)
    np.testing.assert_allclose(layer.weights[1].numpy(), -5.0)
    assert layer.weights[1].constraint is not None
    # The KL first, then the L2 penalty on loc: 0.5 * sum(0.25**2) over 2 weights.
    assert len(layer.losses) == 2
    np.testing.assert_allclose(float(layer.losses[1]), 0.5 * 2 * 0.25**2, rtol=1e-6)
