"""The whole variational family, by table: 12 classes, every rank and data format.

One case table (class x data format, from ``r_bridge.factory.FAMILY``) drives the
Keras-style checklist, and a second table runs it for the spec's layer in every
geometry its arguments allow: construct, config round trip, symbolic and eager shapes,
one KL per Bayesian part, gradients that reach every variable (also through
all-zero inputs), a training step that moves every posterior variable, and a
``.keras`` round trip. The build paths run every class through the ways Keras
builds a layer. Then the estimators' statistics against their analytic
moments, their errors, seeds, and agreement with TFP's own classes.

Shapes are tiny so the file runs in a few minutes on two cores.
"""

import dataclasses
import inspect
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras
from helpers import fixed_tensor_fn
from helpers import volumes

import tfprobr_bridge
from tfprobr_bridge import Conv3DReparameterization
from tfprobr_bridge import default_mean_field_normal_fn
from tfprobr_bridge import default_multivariate_normal_fn
from tfprobr_bridge.r_bridge.factory import FAMILY

tfd = tfp.distributions

BATCH = 4
CHANNELS = 2
FEATURES = 3  # a dense layer's input features
OUTPUTS = 2  # filters or units
SPATIAL = {1: (6,), 2: (5, 5), 3: (4, 4, 4)}
FORMATS = ("channels_last", "channels_first")
EPSILON = np.finfo(np.float32).eps  # the default posterior's scale floor


@dataclasses.dataclass(frozen=True)
class Member:
    """One row of the family table: R's name, the class, TFP's class name (or None)."""

    r_name: str
    cls: type
    tfp_name: str | None

    @property
    def name(self):
        return self.cls.__name__

    @property
    def rank(self):
        return getattr(self.cls, "rank", None)

    @property
    def is_conv(self):
        return self.rank is not None

    @property
    def estimator(self):
        return self.cls.estimator

    @property
    def factory(self):
        return getattr(tfprobr_bridge, self.r_name)

    def example_shape(self, data_format="channels_last"):
        if not self.is_conv:
            return (FEATURES,)
        spatial = SPATIAL[self.rank]
        if data_format == "channels_first":
            return (CHANNELS, *spatial)
        return (*spatial, CHANNELS)

    def arguments(self, data_format="channels_last", **extra):
        if self.is_conv:
            return dict(filters=OUTPUTS, kernel_size=2, data_format=data_format, **extra)
        return dict(units=OUTPUTS, **extra)

    def layer(self, data_format="channels_last", **extra):
        return self.cls(**self.arguments(data_format, **extra))

    def head(self):
        if self.is_conv:
            return [keras.layers.Flatten(), keras.layers.Dense(1)]
        return [keras.layers.Dense(1)]

    def inputs(self, rng, data_format="channels_last", batch=BATCH):
        return rng.standard_normal((batch, *self.example_shape(data_format))).astype("float32")

    def tfp_reference_name(self):
        """TFP's class with the same variables: its own, or (conv local
        reparameterization, which TFP lacks) its reparameterization conv."""
        return self.tfp_name or f"Convolution{self.rank}DReparameterization"


MEMBERS = [Member(*row) for row in FAMILY]
BY_NAME = {member.name: member for member in MEMBERS}
CASES = [
    pytest.param(member, data_format, id=f"{member.name}-{data_format}" if member.is_conv
                 else member.name)
    for member in MEMBERS
    for data_format in (FORMATS if member.is_conv else FORMATS[:1])
]
EACH_CLASS = [pytest.param(member, id=member.name) for member in MEMBERS]

# The fast lane (make test-fast) runs the tests that fit a model for one class
# per estimator, together covering every rank: the spec's layer and three
# others. make test runs them for all twelve classes.
REPRESENTATIVES = ("Conv3DReparameterization", "Conv2DFlipout",
                   "Conv1DLocalReparameterization", "DenseReparameterization")


def heavy(params):
    """``params`` with every class but the representatives marked slow."""
    return [
        param if param.values[0].name in REPRESENTATIVES
        else pytest.param(*param.values, id=param.id, marks=[*param.marks, pytest.mark.slow])
        for param in params
    ]


def members(*names):
    return [pytest.param(BY_NAME[name], id=name) for name in names]


BAYESIAN_BIAS = dict(
    bias_posterior_fn=tfprobr_bridge.default_mean_field_normal_fn(),
    bias_prior_fn=tfprobr_bridge.default_multivariate_normal_fn,
)


def tfp_warnings(test):
    """TFP's own default fns call tf_keras's deprecated add_variable, and its
    class defaults share one posterior fn, so one unseeded initializer, among
    all its layers; tf_keras warns of both. Neither is ours to fix."""
    test = pytest.mark.filterwarnings(
        "ignore:`layer.add_variable` is deprecated:UserWarning")(test)
    return pytest.mark.filterwarnings(
        "ignore:The initializer RandomNormal is unseeded:UserWarning")(test)


def test_the_table_is_the_whole_family():
    assert len(MEMBERS) == 12 and len(CASES) == 21
    assert {m.estimator for m in MEMBERS} == {
        "reparameterization", "Flipout", "local reparameterization"
    }
    for member in MEMBERS:
        assert member.name in tfprobr_bridge.__all__ and member.r_name in tfprobr_bridge.__all__


# ---------------------------------------------------------------------------
# Shared pieces.


def with_zero_regions(x, member, data_format):
    """``x`` with one example all zeros and, for convolutions, the first half
    of the first spatial axis zero (whole windows of zeros: variance 0)."""
    x = x.copy()
    x[0] = 0
    if member.is_conv:
        first_spatial = 2 if data_format == "channels_first" else 1
        index = [slice(None)] * x.ndim
        index[first_spatial] = slice(0, x.shape[first_spatial] // 2)
        x[tuple(index)] = 0
    return x


def assert_kl_terms(losses, expected):
    assert len(losses) == expected, [str(loss) for loss in losses]
    for loss in losses:
        assert tuple(loss.shape) == () and np.isfinite(float(loss)) and float(loss) > 0


def snapshot(layer):
    return {variable.path: variable.numpy().copy() for variable in layer.trainable_variables}


def assert_all_moved(before, layer, expected_count):
    after = snapshot(layer)
    assert set(before) == set(after) and len(after) == expected_count, sorted(after)
    unmoved = [path for path in after if np.array_equal(before[path], after[path])]
    assert not unmoved, f"training did not move {unmoved}"


class FirstStepSnapshot(keras.callbacks.Callback):
    """The layer's posterior before the first step or, when that step builds
    the layer, right after it; later steps must still move every variable."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.values = None

    def _take(self):
        if not self.values:
            self.values = snapshot(self.layer)

    def on_train_batch_begin(self, batch, logs=None):
        self._take()

    def on_train_batch_end(self, batch, logs=None):
        self._take()


def reference_linear(x, kernel, member, data_format="channels_last"):
    """The deterministic layer in numpy (valid padding, stride 1): an
    independent reference for the convolution's layout and arithmetic."""
    x = np.asarray(x, "float64")
    kernel = np.asarray(kernel, "float64")
    if not member.is_conv:
        return x @ kernel
    rank = member.rank
    if data_format == "channels_first":
        x = np.moveaxis(x, 1, -1)
    windows = np.lib.stride_tricks.sliding_window_view(
        x, kernel.shape[:rank], axis=tuple(range(1, rank + 1))
    )  # (batch, *output positions, in, *window)
    window = "abc"[:rank]
    outputs = np.einsum(f"n...i{window},{window}io->n...o", windows, kernel)
    if data_format == "channels_first":
        outputs = np.moveaxis(outputs, -1, 1)
    return outputs


def add_bias(outputs, bias, member, data_format="channels_last"):
    if member.is_conv and data_format == "channels_first":
        return outputs + np.reshape(bias, (1, -1) + (1,) * member.rank)
    return outputs + bias


def weights_by_name(layer):
    return {weight.name: weight for weight in layer.weights}


def fix_posterior(layer, rng, scale_range=(0.2, 1.0)):
    """Set the default posterior to known values; returns (mean, scale, bias)."""
    weights = weights_by_name(layer)
    shape = tuple(weights["kernel_posterior_loc"].shape)
    mean = rng.normal(0, 0.5, shape).astype("float32")
    scale = rng.uniform(*scale_range, shape).astype("float32")
    # scale = eps + softplus(untransformed_scale), inverted.
    untransformed = np.log(np.expm1(scale.astype("float64") - EPSILON)).astype("float32")
    bias = rng.normal(0, 0.5, (OUTPUTS,)).astype("float32")
    weights["kernel_posterior_loc"].assign(mean)
    weights["kernel_posterior_untransformed_scale"].assign(untransformed)
    weights["bias_posterior_loc"].assign(bias)
    actual_scale = tf.convert_to_tensor(layer.kernel_posterior.distribution.scale).numpy()
    np.testing.assert_allclose(actual_scale, scale, rtol=1e-5)
    return mean, scale, bias


# ---------------------------------------------------------------------------
# 1. The checklist, for every class, rank and data format.


@pytest.mark.parametrize("member, data_format", heavy(CASES))
def test_checklist(member, data_format, rng, tmp_path):
    cls = member.cls
    kwargs = member.arguments(data_format, **BAYESIAN_BIAS)
    shape = member.example_shape(data_format)
    x = member.inputs(rng, data_format)

    # Construct; the config round-trips.
    layer = cls(**kwargs)
    config = layer.get_config()
    assert cls.from_config(config).get_config() == config
    assert type(keras.layers.deserialize(keras.layers.serialize(layer))) is cls

    # Registered under the package's name; TFP's name is the same class.
    assert keras.saving.get_registered_name(cls) == f"tfprobr_bridge>{member.name}"
    assert keras.saving.get_registered_object(f"tfprobr_bridge>{member.name}") is cls
    alias = member.name.replace("Conv", "Convolution", 1) if member.is_conv else member.name
    assert getattr(tfprobr_bridge, alias) is cls
    if member.tfp_name is not None:
        assert getattr(tfprobr_bridge, member.tfp_name) is cls

    # Symbolic and eager calls have the shape compute_output_shape says.
    expected = tuple(layer.compute_output_shape((BATCH, *shape)))
    assert tuple(layer.compute_output_shape((None, *shape))) == (None, *expected[1:])
    symbolic = cls(**kwargs)(keras.Input(shape))
    assert tuple(symbolic.shape) == (None, *expected[1:])
    for _ in range(2):  # one KL per Bayesian part after each call, not accumulated
        outputs = layer(x)
        assert tuple(outputs.shape) == expected
        assert np.all(np.isfinite(outputs))
        assert_kl_terms(layer.losses, 2)
    plain = member.layer(data_format)  # default fns: no bias prior, so only the kernel's KL
    plain(x)
    assert_kl_terms(plain.losses, 1)

    # Gradients reach every variable and are finite, also where whole windows
    # of the input are zero (local reparameterization's variance is 0 there).
    for inputs in (x, with_zero_regions(x, member, data_format)):
        with tf.GradientTape() as tape:
            outputs = layer(inputs)
            loss = tf.reduce_sum(tf.square(outputs)) + tf.add_n(layer.losses)
        gradients = tape.gradient(loss, layer.trainable_variables)
        assert len(gradients) == 4
        for variable, gradient in zip(layer.trainable_variables, gradients):
            assert gradient is not None, f"no gradient reached {variable.name}"
            gradient = gradient.numpy()
            assert np.all(np.isfinite(gradient)), f"non-finite gradient for {variable.name}"
            assert np.any(gradient != 0), f"zero gradient for {variable.name}"

    # One training step with fit moves every posterior variable.
    model = keras.Sequential([keras.Input(shape), cls(**kwargs), *member.head()])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    bayes = model.layers[0]
    before = snapshot(bayes)
    y = rng.standard_normal((BATCH, 1)).astype("float32")
    history = model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert_all_moved(before, bayes, 4)

    # .keras round trip without custom_objects: the same variables, the same
    # predictive distribution.
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored.layers[0]) is cls
    assert restored.layers[0].get_config() == bayes.get_config()
    assert [w.name for w in restored.weights] == [w.name for w in model.weights]
    for original, loaded in zip(model.weights, restored.weights):
        np.testing.assert_array_equal(original.numpy(), loaded.numpy())
    restored(x)
    assert_kl_terms(restored.losses, 2)
    n = 40
    original_draws = tfprobr_bridge.predict_mc(model, x, n_samples=n)
    restored_draws = tfprobr_bridge.predict_mc(restored, x, n_samples=n)
    assert np.all(original_draws["stddev"] > 0) and np.all(restored_draws["stddev"] > 0)
    # Two independent means of n draws differ by sqrt(2/n) std; allow 5 of those.
    spread = np.maximum(original_draws["stddev"], restored_draws["stddev"])
    np.testing.assert_array_less(
        np.abs(original_draws["mean"] - restored_draws["mean"]),
        5 * np.sqrt(2 / n) * spread + 1e-5,
    )


GEOMETRY = [
    # (id, constructor kwargs, input shape with batch, expected output shape,
    #  trainable weights, losses per call): the spec's layer, Conv3DReparameterization,
    #  in the geometries its arguments allow.
    ("defaults", dict(filters=3, kernel_size=2), (2, 5, 6, 7, 2), (2, 4, 5, 6, 3), 3, 1),
    (
        "same_strided_relu",
        dict(filters=4, kernel_size=3, strides=2, padding="same", activation="relu"),
        (2, 7, 8, 9, 1),
        (2, 4, 4, 5, 4),
        3,
        1,
    ),
    (
        "channels_first",
        dict(filters=2, kernel_size=(1, 2, 3), data_format="channels_first"),
        (3, 2, 4, 5, 6),
        (3, 2, 4, 4, 4),
        3,
        1,
    ),
    (
        "channels_first_strided_same",
        dict(filters=2, kernel_size=3, strides=(1, 2, 3), padding="SAME",
             data_format="channels_first"),
        (1, 3, 5, 6, 7),
        (1, 2, 5, 3, 3),
        3,
        1,
    ),
    (
        "dilated",
        dict(filters=2, kernel_size=2, dilation_rate=(1, 2, 3)),
        (2, 5, 6, 7, 1),
        (2, 4, 4, 4, 2),
        3,
        1,
    ),
    (
        "bayesian_bias",
        dict(
            filters=2,
            kernel_size=1,
            bias_posterior_fn=default_mean_field_normal_fn(),
            bias_prior_fn=default_multivariate_normal_fn,
        ),
        (2, 3, 3, 3, 1),
        (2, 3, 3, 3, 2),
        4,
        2,
    ),
    (
        "no_bias_no_prior",
        dict(filters=2, kernel_size=1, bias_posterior_fn=None, kernel_prior_fn=None),
        (2, 3, 3, 3, 1),
        (2, 3, 3, 3, 2),
        2,
        0,
    ),
]



@pytest.mark.parametrize(
    "kwargs, input_shape, output_shape, n_weights, n_losses",
    [case[1:] for case in GEOMETRY],
    ids=[case[0] for case in GEOMETRY],
)
def test_checklist_of_the_spec_layer_in_every_geometry(rng, kwargs, input_shape, output_shape,
                                                       n_weights, n_losses):
    """The checklist above, for Conv3DReparameterization's strides, padding, layouts,
    dilation and parts switched on and off: shapes, weight and loss counts, a step."""
    layer = Conv3DReparameterization(**kwargs)
    config = layer.get_config()
    assert Conv3DReparameterization.from_config(config).get_config() == config
    assert layer.compute_output_shape(input_shape) == output_shape
    assert layer.compute_output_shape((None, *input_shape[1:])) == (None, *output_shape[1:])
    x = volumes(rng, input_shape)
    for _ in range(2):  # losses are replaced, not accumulated, by each call
        assert tuple(layer(x).shape) == output_shape
        assert len(layer.losses) == n_losses
        assert all(loss.shape == () for loss in layer.losses)
    assert len(layer.trainable_weights) == n_weights and not layer.non_trainable_weights
    symbolic = Conv3DReparameterization(**kwargs)(keras.Input(shape=input_shape[1:]))
    assert tuple(symbolic.shape) == (None, *output_shape[1:])
    model = keras.Sequential([keras.Input(input_shape[1:]), Conv3DReparameterization(**kwargs),
                              keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    before = snapshot(model.layers[0])
    history = model.fit(x, np.ones((input_shape[0], 1), "float32"), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert_all_moved(before, model.layers[0], n_weights)


def test_one_kernel_sample_is_shared_by_the_batch(rng):
    layer = Conv3DReparameterization(filters=2, kernel_size=2)
    example = volumes(rng, (1, 4, 4, 4, 1))
    outputs = layer(np.concatenate([example, example], axis=0))
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_each_call_draws_a_new_kernel(rng):
    layer = Conv3DReparameterization(filters=2, kernel_size=2)
    x = volumes(rng, (1, 4, 4, 4, 1))
    assert not np.allclose(layer(x), layer(x))


def test_variables_carry_tfp_names():
    layer = Conv3DReparameterization(filters=2, kernel_size=2)
    layer.build((None, 4, 4, 4, 3))
    assert [w.name for w in layer.weights] == [
        "kernel_posterior_loc",
        "kernel_posterior_untransformed_scale",
        "bias_posterior_loc",
    ]
    assert layer.weights[0].shape == (2, 2, 2, 3, 2)
    assert layer.weights[2].shape == (2,)


def test_distribution_properties():
    layer = Conv3DReparameterization(filters=2, kernel_size=2)
    assert layer.kernel_posterior is None  # Not built yet.
    layer.build((None, 4, 4, 4, 3))
    assert layer.kernel_posterior.event_shape == (2, 2, 2, 3, 2)
    assert layer.kernel_prior.event_shape == (2, 2, 2, 3, 2)
    assert layer.bias_posterior.event_shape == (2,)
    assert layer.bias_prior is None
    # The posterior reads the layer's variable, not a snapshot of it.
    layer.weights[0].assign(np.full((2, 2, 2, 3, 2), 0.5, "float32"))
    np.testing.assert_allclose(layer.kernel_posterior.mean(), 0.5)


def test_default_initialisers_match_tfp():
    layer = Conv3DReparameterization(filters=16, kernel_size=5)
    layer.build((None, 8, 8, 8, 8))
    loc, untransformed_scale, bias = (w.numpy() for w in layer.weights)
    assert abs(loc.mean()) < 0.01 and abs(loc.std() - 0.1) < 0.01
    assert abs(untransformed_scale.mean() + 3) < 0.01
    assert abs(untransformed_scale.std() - 0.1) < 0.01
    assert abs(bias.mean()) < 0.1
    scale = layer.kernel_posterior.distribution.scale
    expected = np.finfo(np.float32).eps + np.log1p(np.exp(untransformed_scale))
    np.testing.assert_allclose(tf.convert_to_tensor(scale), expected, rtol=1e-6)


def test_two_layers_with_the_default_fn_start_differently():
    first = Conv3DReparameterization(filters=2, kernel_size=2)
    second = Conv3DReparameterization(filters=2, kernel_size=2)
    for layer in (first, second):
        layer.build((None, 4, 4, 4, 1))
    assert not np.allclose(first.weights[0], second.weights[0])
    assert not np.allclose(first.weights[0], first.weights[1] + 3)


def test_trainable_false_freezes_every_variable(rng):
    layer = Conv3DReparameterization(filters=2, kernel_size=2, trainable=False)
    layer(volumes(rng, (1, 3, 3, 3, 1)))
    assert layer.trainable_weights == []
    assert len(layer.non_trainable_weights) == 3


def test_float64_layer(rng):
    layer = Conv3DReparameterization(filters=2, kernel_size=2, dtype="float64")
    y = layer(volumes(rng, (1, 3, 3, 3, 1), "float64"))
    assert y.dtype == tf.float64
    assert layer.kernel_posterior.dtype == tf.float64
    assert layer.losses[0].dtype == tf.float64


def test_activity_regularizer_adds_a_loss_after_the_divergence(rng):
    layer = Conv3DReparameterization(filters=2, kernel_size=2, activity_regularizer="l2")
    layer(volumes(rng, (1, 3, 3, 3, 1)))
    assert len(layer.losses) == 2
    assert layer.get_config()["activity_regularizer"] is not None


# ---------------------------------------------------------------------------
# 2. The build paths: every class, every way Keras builds and calls a layer.


class Holder(keras.Model):
    """A subclassed model holding the layer (Keras builds it symbolically first)."""

    def __init__(self, bayes, head, **kwargs):
        super().__init__(**kwargs)
        self.bayes = bayes
        self.head = head

    def call(self, inputs):
        outputs = self.bayes(inputs)
        for layer in self.head:
            outputs = layer(outputs)
        return outputs


def _sequential_no_input(member, bayes):
    return keras.Sequential([bayes, *member.head()])


def _functional(member, bayes):
    inputs = keras.Input(member.example_shape())
    outputs = bayes(inputs)
    for layer in member.head():
        outputs = layer(outputs)
    return keras.Model(inputs, outputs)


def _subclassed(member, bayes):
    return Holder(bayes, member.head())


def _nested(member, bayes):
    inner = keras.Sequential([bayes, *member.head()[:-1]])
    return keras.Sequential([inner, keras.layers.Dense(1)])


FITTED_PATTERNS = {
    "sequential_no_input": _sequential_no_input,
    "functional": _functional,
    "subclassed": _subclassed,
    "nested": _nested,
}
# Sequential with an Input is the checklist's model. A nested model builds its
# inner Sequential as a Sequential without an Input does: one class per estimator.
FITTED_CASES = [
    pytest.param(member, pattern, id=f"{member.name}-{pattern}")
    for member in MEMBERS
    for pattern in FITTED_PATTERNS
    if pattern != "nested" or member.name.startswith("Conv2D")
]


@pytest.mark.parametrize("member, pattern", heavy(FITTED_CASES))
def test_fit_through_each_build_path(member, pattern, rng):
    bayes = member.layer(**BAYESIAN_BIAS)
    model = FITTED_PATTERNS[pattern](member, bayes)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x = member.inputs(rng, batch=2 * BATCH)
    y = rng.standard_normal((2 * BATCH, 1)).astype("float32")
    first_step = FirstStepSnapshot(bayes)
    history = model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0, callbacks=[first_step])
    assert np.all(np.isfinite(history.history["loss"]))
    assert_all_moved(first_step.values, bayes, 4)
    assert tuple(model(x).shape) == (2 * BATCH, 1)
    assert_kl_terms(model.losses, 2)


@pytest.mark.parametrize("member", heavy(EACH_CLASS))
def test_predict_on_an_unbuilt_model_then_fit(member, rng):
    x = member.inputs(rng)
    bayes = member.layer()
    model = keras.Sequential([bayes, *member.head()])
    predictions = model.predict(x, verbose=0)  # builds the layer inside predict's trace
    assert predictions.shape == (BATCH, 1) and np.all(np.isfinite(predictions))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    before = snapshot(bayes)
    model.fit(x, rng.standard_normal((BATCH, 1)).astype("float32"), verbose=0)
    assert_all_moved(before, bayes, 3)
    unbuilt = keras.Sequential([member.layer(), *member.head()])
    result = tfprobr_bridge.predict_mc(unbuilt, x, n_samples=5)
    assert result["mean"].shape == (BATCH, 1)
    assert np.all(result["stddev"] > 0)


@pytest.mark.parametrize("member", heavy(EACH_CLASS))
def test_called_eagerly_then_in_a_tf_function(member, rng):
    layer = member.layer(**BAYESIAN_BIAS)
    x = tf.constant(member.inputs(rng))
    eager = layer(x)

    @tf.function
    def draw_with_gradients(inputs):
        with tf.GradientTape() as tape:
            outputs = layer(inputs)
            loss = tf.reduce_sum(tf.square(outputs)) + tf.add_n(layer.losses)
        return outputs, tape.gradient(loss, layer.trainable_variables)

    first, gradients = draw_with_gradients(x)
    second, _ = draw_with_gradients(x)
    assert first.shape == eager.shape
    # Each run of the traced function draws anew (no draw baked in as a constant).
    assert not np.allclose(first, second)
    for variable, gradient in zip(layer.trainable_variables, gradients):
        assert gradient is not None and np.all(np.isfinite(gradient)), variable.name


@pytest.mark.parametrize("member", heavy(EACH_CLASS))
def test_first_called_inside_a_custom_training_step(member, rng):
    layer = member.layer(**BAYESIAN_BIAS)
    model = keras.Sequential([layer, *member.head()])
    optimizer = keras.optimizers.Adam(0.01)
    x = tf.constant(member.inputs(rng))
    y = tf.constant(rng.standard_normal((BATCH, 1)).astype("float32"))

    @tf.function
    def step(inputs, targets):
        with tf.GradientTape() as tape:
            outputs = model(inputs, training=True)
            loss = tf.reduce_mean(tf.square(outputs - targets)) + tf.add_n(model.losses)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    assert np.isfinite(step(x, y))  # builds the layer inside the trace
    before = snapshot(layer)
    assert np.isfinite(step(x, y))
    assert_all_moved(before, layer, 4)
    model(x)
    assert_kl_terms(model.losses, 2)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("member", heavy(EACH_CLASS))
def test_trains_under_a_mixed_precision_policy(member, policy, rng):
    # Each estimator computes in half precision with float32 variables: the
    # draws (made in float32, then cast), the variance floor of local
    # reparameterization (float16's smallest normal) and its fused gradient.
    keras.config.set_dtype_policy(policy)
    try:
        bayes = member.layer(**BAYESIAN_BIAS)
        model = keras.Sequential([bayes, *member.head()[:-1], keras.layers.Dense(1, dtype="float32")])
    finally:
        keras.config.set_dtype_policy("float32")
    assert bayes.compute_dtype == policy.split("_")[1] and bayes.variable_dtype == "float32"
    x = with_zero_regions(member.inputs(rng, batch=2 * BATCH), member, "channels_last")
    y = rng.standard_normal((2 * BATCH, 1)).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model(x[:1])
    before = snapshot(bayes)
    history = model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert_all_moved(before, bayes, 4)
    assert bayes(x).dtype == policy.split("_")[1]
    assert_kl_terms(model.losses, 2)


MIRRORED_SCRIPT = """
import json
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
import tfprobr_bridge as tb
from tfprobr_bridge.r_bridge.factory import FAMILY

SHAPES = {None: (3,), 1: (6, 2), 2: (5, 5, 2), 3: (4, 4, 4, 2)}


class FirstStep(keras.callbacks.Callback):
    # The posterior after the step that built it; the second step must move it.
    values = None

    def on_train_batch_end(self, batch, logs=None):
        if self.values is None:
            self.values = [v.numpy().copy() for v in self.model.layers[0].trainable_variables]

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
results = {}
for _, cls, _ in FAMILY:
    if cls.__name__ not in sys.argv[1:]:
        continue
    keras.utils.set_random_seed(1)
    rank = getattr(cls, "rank", None)
    size = {"filters": 2, "kernel_size": 2} if rank else {"units": 2}
    with strategy.scope():
        bayes = cls(**size, bias_posterior_fn=tb.default_mean_field_normal_fn(),
                    bias_prior_fn=tb.default_multivariate_normal_fn)
        head = [keras.layers.Flatten(), keras.layers.Dense(1)] if rank else [keras.layers.Dense(1)]
        # No Input: fit builds the layer under the strategy.
        model = keras.Sequential([bayes, *head])
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, *SHAPES[rank])).astype("float32")
    y = rng.standard_normal((8, 1)).astype("float32")
    first_step = FirstStep()
    loss = model.fit(x, y, epochs=1, batch_size=4, verbose=0,
                     callbacks=[first_step]).history["loss"]  # builds, then trains
    before, after = first_step.values, [v.numpy() for v in bayes.trainable_variables]
    results[cls.__name__] = {
        "finite": bool(np.all(np.isfinite(loss))),
        "variables": len(after),
        "mirrored": all(isinstance(v.value, tf.distribute.DistributedValues)
                        for v in bayes.trainable_variables),
        "unmoved": [v.name for v, b, a in zip(bayes.trainable_variables, before, after)
                    if np.array_equal(b, a)],
        "shape": list(model.predict(x, verbose=0).shape),
    }
print("RESULT", json.dumps(results))
"""


# Every estimator and every rank, within the time a test may take.
MIRRORED_CLASSES = [
    "Conv1DReparameterization", "Conv2DFlipout", "Conv3DLocalReparameterization",
    "DenseReparameterization", "DenseFlipout", "DenseLocalReparameterization",
]


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_estimators_fit_under_mirrored_strategy_on_two_cpus():
    # Logical devices must be set before TensorFlow starts: a fresh process,
    # as in test_distributed.py.
    run = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, *MIRRORED_CLASSES],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(line for line in run.stdout.splitlines() if line.startswith("RESULT "))
    results = json.loads(line[len("RESULT "):])
    assert sorted(results) == sorted(MIRRORED_CLASSES)
    for name, result in results.items():
        assert result == {"finite": True, "variables": 4, "mirrored": True, "unmoved": [],
                          "shape": [8, 1]}, name


# ---------------------------------------------------------------------------
# 3. Statistics: Flipout and local reparameterization against their analytic
# moments, with a fixed posterior.

STATISTICS_CASES = [
    pytest.param(BY_NAME[name], data_format, id=f"{name}-{data_format}")
    for name, data_format in (
        ("DenseFlipout", "channels_last"),
        ("DenseLocalReparameterization", "channels_last"),
        ("Conv1DFlipout", "channels_last"),
        ("Conv1DLocalReparameterization", "channels_last"),
        ("Conv2DFlipout", "channels_first"),
        ("Conv2DLocalReparameterization", "channels_first"),
    )
]


def draws(layer, batch, calls):
    """``calls`` outputs of the layer on ``batch``, stacked (float64)."""
    call = tf.function(lambda inputs: layer(inputs))
    batch = tf.constant(batch)
    return np.stack([call(batch).numpy() for _ in range(calls)]).astype("float64")


def assert_within_standard_errors(per_call, expected, sigmas=5):
    """``per_call`` holds one statistic per (independent) call; its mean must
    be within ``sigmas`` standard errors of ``expected``. Examples within one
    Flipout call share the perturbation, so the error is estimated from the
    calls, which are independent, not from the examples."""
    estimate = per_call.mean(axis=0)
    standard_error = per_call.std(axis=0, ddof=1) / np.sqrt(len(per_call))
    assert np.all(standard_error > 0)
    excess = np.abs(estimate - expected) / standard_error
    assert np.all(excess <= sigmas), f"{excess.max():.1f} standard errors off"
    return estimate


@pytest.mark.parametrize("member, data_format", STATISTICS_CASES)
def test_outputs_have_the_analytic_mean_and_variance(member, data_format, rng):
    layer = member.layer(data_format, seed=11)
    x = member.inputs(rng, data_format)
    layer.build(x.shape)
    mean, scale, bias = fix_posterior(layer, rng)
    expected_mean = add_bias(reference_linear(x, mean, member, data_format), bias, member,
                             data_format)
    expected_variance = reference_linear(x**2, scale**2, member, data_format)

    repeats, calls = 4, 1000  # 4000 draws of every output
    outputs = draws(layer, np.concatenate([x] * repeats), calls)
    outputs = outputs.reshape(calls, repeats, *expected_mean.shape)
    per_call_mean = outputs.mean(axis=1)
    per_call_variance = ((outputs - expected_mean) ** 2).mean(axis=1)
    assert_within_standard_errors(per_call_mean, expected_mean)
    assert_within_standard_errors(per_call_variance, expected_variance)
    # And precise enough for that to mean something: 5 standard errors are at
    # most a quarter of the variance.
    standard_error = per_call_variance.std(axis=0, ddof=1) / np.sqrt(calls)
    assert np.all(standard_error < 0.05 * expected_variance)


CORRELATION_CASES = members(
    "DenseReparameterization", "DenseFlipout", "DenseLocalReparameterization",
    "Conv1DReparameterization", "Conv1DFlipout", "Conv1DLocalReparameterization",
)


@pytest.mark.parametrize("member", CORRELATION_CASES)
def test_examples_in_a_batch_are_correlated_only_through_a_shared_kernel(member, rng):
    """Reparameterization draws one kernel per call, so two identical examples
    get identical outputs (correlation 1); Flipout's per-example signs make
    them uncorrelated, and local reparameterization draws them independently."""
    layer = member.layer(seed=5)
    example = member.inputs(rng, batch=1)
    layer.build(example.shape)
    mean, scale, bias = fix_posterior(layer, rng)
    expected_mean = add_bias(reference_linear(example, mean, member), bias, member)[0]
    expected_variance = reference_linear(example**2, scale**2, member)[0]

    pairs, calls = 20, 150
    outputs = draws(layer, np.concatenate([example] * 2 * pairs), calls)
    standardized = (outputs - expected_mean) / np.sqrt(expected_variance)
    first, second = standardized[:, 0::2], standardized[:, 1::2]
    per_call_correlation = (first * second).mean(axis=1)
    if member.estimator == "reparameterization":
        np.testing.assert_array_equal(outputs[:, 0::2], outputs[:, 1::2])
        assert_within_standard_errors(per_call_correlation, 1.0)
    else:
        correlation = assert_within_standard_errors(per_call_correlation, 0.0)
        assert np.all(np.abs(correlation) < 0.1)
        # Yet every example varies as much as under reparameterization.
        assert_within_standard_errors((first**2).mean(axis=1), 1.0)


# ---------------------------------------------------------------------------
# 4. Errors.


def laplace_posterior_fn(dtype, shape, name, trainable, add_variable_fn):
    loc = add_variable_fn(name=f"{name}_loc", shape=shape, initializer="zeros", dtype=dtype,
                          trainable=trainable)
    laplace = tfd.Laplace(loc=loc, scale=tf.ones(shape, dtype))
    return tfd.Independent(laplace, reinterpreted_batch_ndims=len(shape))


NON_NORMAL_POSTERIORS = {
    "Laplace": laplace_posterior_fn,
    "Deterministic": tfprobr_bridge.default_mean_field_normal_fn(is_singular=True),
}
NORMAL_ONLY = [member for member in EACH_CLASS
               if member.values[0].estimator != "reparameterization"]


@pytest.mark.parametrize("posterior", sorted(NON_NORMAL_POSTERIORS))
@pytest.mark.parametrize("member", NORMAL_ONLY)
def test_flipout_and_local_reparameterization_need_an_independent_normal(member, posterior,
                                                                          rng):
    layer = member.layer(kernel_posterior_fn=NON_NORMAL_POSTERIORS[posterior])
    message = (
        rf"{member.name} \({member.estimator}\) needs `kernel_posterior_fn` to return an "
        rf"Independent Normal(.|\n)*Received: kernel_posterior_fn returned "
        rf"Independent\({posterior}\)"
    )
    with pytest.raises(TypeError, match=message):
        layer(member.inputs(rng))
    # Reparameterization takes any posterior.
    reparameterization = BY_NAME[member.name.replace(
        "Flipout" if member.estimator == "Flipout" else "LocalReparameterization",
        "Reparameterization")]
    outputs = reparameterization.layer(  # no prior: TFP has no KL from a Laplace to a Normal
        kernel_posterior_fn=NON_NORMAL_POSTERIORS[posterior], kernel_prior_fn=None
    )(member.inputs(rng))
    assert np.all(np.isfinite(outputs))


@pytest.mark.parametrize("member", EACH_CLASS)
def test_factories_require_the_size_argument(member):
    if member.is_conv:
        with pytest.raises(TypeError, match=r"^`filters` is required: a positive integer"):
            member.factory(kernel_size=2)
        sizes = "1 positive integer" if member.rank == 1 else f"1 or {member.rank} positive"
        with pytest.raises(TypeError, match=rf"^`kernel_size` is required: .*list of {sizes}"):
            member.factory(filters=2)
    else:
        with pytest.raises(TypeError, match=r"^`units` is required: a positive integer"):
            member.factory()
    assert type(member.factory(**member.arguments())) is member.cls


@tfp_warnings
@pytest.mark.parametrize("kind", ["sequential", "tensor"])
@pytest.mark.parametrize("member", heavy(EACH_CLASS))
def test_tf_keras_objects_get_tfps_class_of_the_same_estimator_and_rank(member, kind, rng):
    shape = member.example_shape()
    target = tf_keras.Sequential() if kind == "sequential" else tf_keras.Input(shape)
    extra = {"input_shape": list(shape)} if kind == "sequential" else {}
    if member.tfp_name is None:
        message = (rf"^TFP has no tf_keras counterpart of {member.name} \(its local "
                   r"reparameterization exists for dense layers only\)")
        with pytest.raises(TypeError, match=message):
            member.factory(target, **member.arguments(), **extra)
        if kind == "sequential":
            assert target.layers == []  # left as it was
        return
    result = member.factory(target, **member.arguments(), **extra)
    if kind == "sequential":
        assert result is target
        model = target
    else:
        assert tf_keras.backend.is_keras_tensor(result)
        model = tf_keras.Model(target, result)
    layer = model.layers[-1]
    assert type(layer) is getattr(tfp.layers, member.tfp_name)
    outputs = model(tf.constant(member.inputs(rng)))
    assert tuple(outputs.shape) == tuple(member.layer().compute_output_shape((BATCH, *shape)))


# ---------------------------------------------------------------------------
# 5. Seeds.


@pytest.mark.parametrize("member", EACH_CLASS)
def test_a_seed_repeats_the_draws_of_a_fresh_layer(member, rng):
    x = member.inputs(rng)
    first = member.layer(seed=3)
    first.build(x.shape)
    second = member.layer(seed=3)
    second.build(x.shape)
    second.set_weights(first.get_weights())
    outputs = first(x)
    keras.utils.set_random_seed(99)  # the layer's own stream, not the global one
    np.testing.assert_array_equal(second(x), outputs)
    assert not np.allclose(first(x), outputs)  # the stream moves on

    unseeded = member.layer()
    unseeded.build(x.shape)
    unseeded.set_weights(first.get_weights())
    assert not np.allclose(unseeded(x), unseeded(x))


# ---------------------------------------------------------------------------
# 6. TFP's names, signatures, variables and weights.

TFP_CLASSES = [member for member in EACH_CLASS if member.values[0].tfp_name is not None]


@pytest.mark.parametrize("member", TFP_CLASSES)
def test_signature_is_tfps(member):
    ours = inspect.signature(member.cls).parameters
    theirs = inspect.signature(getattr(tfp.layers, member.tfp_name)).parameters
    assert list(ours) == list(theirs)
    for name, parameter in theirs.items():
        if not callable(parameter.default):  # TFP's fn defaults are unsaveable closures
            assert ours[name].default == parameter.default, name


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_conv_local_reparameterization_signature_is_the_reparameterization_ones(rank):
    local = inspect.signature(BY_NAME[f"Conv{rank}DLocalReparameterization"].cls)
    reparameterization = inspect.signature(BY_NAME[f"Conv{rank}DReparameterization"].cls)
    assert list(local.parameters) == list(reparameterization.parameters)
    assert [p.default for p in local.parameters.values() if not callable(p.default)] == [
        p.default for p in reparameterization.parameters.values() if not callable(p.default)
    ]


def tfp_layer(member, **kwargs):
    return getattr(tfp.layers, member.tfp_reference_name())(**member.arguments(), **kwargs)


def short_name(variable):
    return variable.name.split("/")[-1].split(":")[0]


def bayesian_bias_tfp():
    # A fresh closure per layer: TFP's shares its initializer objects.
    return dict(
        bias_posterior_fn=tfp.layers.util.default_mean_field_normal_fn(),
        bias_prior_fn=tfp.layers.util.default_multivariate_normal_fn,
    )


MEAN_TENSOR_FNS = dict(kernel_posterior_tensor_fn=fixed_tensor_fn,
                       bias_posterior_tensor_fn=fixed_tensor_fn)


@tfp_warnings
@pytest.mark.parametrize("member", EACH_CLASS)
def test_tfp_weights_transfer_and_give_the_same_outputs_and_kl(member, rng):
    """With posterior-mean tensor fns every estimator is the deterministic
    layer at the posterior mean: ours, given TFP's weights, must agree with
    TFP's own (for conv local reparameterization, TFP's reparameterization
    conv, which has the same variables)."""
    shape = (BATCH, *member.example_shape())
    x = tf.constant(member.inputs(rng))
    reference = tfp_layer(member, **MEAN_TENSOR_FNS, **bayesian_bias_tfp())
    reference.build(shape)
    initial = [v.numpy().copy() for v in reference.weights]
    for _ in range(3):  # trained by TFP
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(reference(x))) + tf.add_n(reference.losses)
        for variable, gradient in zip(reference.weights, tape.gradient(loss, reference.weights)):
            variable.assign_sub(0.1 * gradient)
    assert not any(np.array_equal(a, b.numpy()) for a, b in zip(initial, reference.weights))
    ours = member.layer(**MEAN_TENSOR_FNS, **BAYESIAN_BIAS)
    ours.build(shape)
    assert [w.name for w in ours.weights] == [short_name(v) for v in reference.weights] == [
        "kernel_posterior_loc", "kernel_posterior_untransformed_scale",
        "bias_posterior_loc", "bias_posterior_untransformed_scale",
    ]
    ours.set_weights(reference.get_weights())
    expected = reference(x)
    weights = weights_by_name(ours)
    deterministic = add_bias(
        reference_linear(x, weights["kernel_posterior_loc"].numpy(), member),
        weights["bias_posterior_loc"].numpy(), member,
    )
    # TFP's training makes outputs of several hundred. A float32 sum of such
    # terms is exact to about 1e-7 of their size, and the order of summation
    # follows TensorFlow's thread count: one thread moved an output of 0.229 by
    # 2e-5. So the absolute tolerance scales with the outputs.
    atol = max(1e-5, 1e-6 * float(np.abs(deterministic).max()))
    np.testing.assert_allclose(ours(x), expected, rtol=1e-5, atol=atol)
    np.testing.assert_allclose(expected, deterministic, rtol=1e-5, atol=atol)
    assert len(ours.losses) == len(reference.losses) == 2
    for our_loss, reference_loss in zip(ours.losses, reference.losses):
        np.testing.assert_allclose(our_loss, reference_loss, rtol=1e-5)


@tfp_warnings
@pytest.mark.parametrize("member, data_format", [
    case for case in CASES if case.values[0].estimator != "reparameterization"
])
def test_zero_scale_posterior_gives_the_deterministic_layer(member, data_format, rng):
    """Sampling as usual, but from a posterior of (nearly) zero scale: Flipout
    and local reparameterization give the deterministic layer, and so does TFP's
    layer with the same weights."""
    shape = (BATCH, *member.example_shape(data_format))
    ours = member.layer(data_format)
    ours.build(shape)
    weights = weights_by_name(ours)
    weights["kernel_posterior_untransformed_scale"].assign(
        np.full(weights["kernel_posterior_untransformed_scale"].shape, -100.0, "float32"))
    x = member.inputs(rng, data_format)
    deterministic = add_bias(
        reference_linear(x, weights["kernel_posterior_loc"].numpy(), member, data_format),
        weights["bias_posterior_loc"].numpy(), member, data_format,
    )
    for _ in range(2):
        np.testing.assert_allclose(ours(x), deterministic, rtol=1e-5, atol=1e-5)
    if member.tfp_name is not None and data_format == "channels_last":
        reference = tfp_layer(member)
        reference.build(shape)
        assert [short_name(v) for v in reference.weights] == [w.name for w in ours.weights] == [
            "kernel_posterior_loc", "kernel_posterior_untransformed_scale", "bias_posterior_loc"
        ]
        reference.set_weights(ours.get_weights())
        np.testing.assert_allclose(reference(tf.constant(x)), deterministic, rtol=1e-5,
                                   atol=1e-5)


@pytest.mark.parametrize("name", ["layer_conv_2d_reparameterization",
                                  "layer_dense_local_reparameterization"])
def test_a_seed_for_a_tfp_class_without_one_is_refused_by_name(name):
    factory = getattr(tfprobr_bridge, name)
    shape = [5, 5, 2] if "conv" in name else [4]
    arguments = dict(filters=2, kernel_size=2) if "conv" in name else dict(units=2)
    model = tf_keras.Sequential()
    with pytest.raises(TypeError, match=r"^`seed` cannot be given to TFP's .*Received: seed=1$"):
        factory(model, input_shape=shape, seed=1, **arguments)
    assert len(model.layers) == 0
    flipout = tfprobr_bridge.layer_conv_2d_flipout(
        tf_keras.Sequential(), filters=2, kernel_size=2, input_shape=[5, 5, 2], seed=1
    )
    assert flipout.layers[0].seed == 1
