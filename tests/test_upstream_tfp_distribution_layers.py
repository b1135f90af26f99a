"""TensorFlow Probability's ``tensorflow_probability/python/layers/distribution_layer_test.py``, ported.

Every test class and case, on this package's Keras 3 layers (TFP's test
classes are kept as pytest classes of the same names). What Keras 3 and TF2
force on every case, on top of ``upstream.py``'s common rules:

- Regimes. Upstream runs each class with ``@test_graph_and_eager_modes``
  (TF1 graph and eager) and, for the parameter tests, in a "static shape" and
  a "dynamic shape" class (``tf1.placeholder_with_default`` with or without a
  shape, which only differs in graph mode). TF2 has no TF1 graph: the
  parameter cases run eagerly and inside a ``tf.function`` whose input
  signature has the known shape (static) or no shape at all (dynamic: the
  real counterpart of a shapeless placeholder). The training cases run
  eagerly (``fit`` traces its own functions).
- Distributions as values. TFP's tf_keras layers return a tensor-coercible
  distribution; these Keras 3 layers return the tensor ``convert_to_tensor_fn(d)``
  with ``d`` attached (its methods too). Upstream's ``x.tensor_distribution``
  is ``distribution_of(x)`` here; ``_unwrap_tensor_coercible`` follows both.
- Layer constructors take Python values (their configs are JSON), so where
  upstream passes a placeholder as a layer's ``event_shape`` or
  ``num_components``, the layer gets the Python value and the placeholder's
  role (a shapeless input) is kept by the dynamic-shape input.
- ``params_size`` returns a Python ``int`` (Keras layers take sizes as Python
  integers, and so does R); upstream's ``assertDTypeEqual(p, np.int32)`` is
  checked as "an integer that concatenates with int32 shapes".
- Saving. Upstream's ``save_format='h5'`` is tf_keras-only; the ``.keras``
  format is used. A user's lambda or closure is saved by value and, as Keras
  does for its own ``Lambda``, loads only with ``safe_mode=False``; the
  safe-mode refusal is asserted too.
- Variable tracking. tf_keras tracks every ``tf.Variable`` (and ``tf.Module``)
  reachable from a layer's attributes, regularizers included; Keras 3 tracks
  only ``keras.Variable``s owned by layers. Counts that relied on raw
  ``tf.Variable``s are adapted in the case's own docstring.
- ``tfkl.InputLayer(input_shape=...)`` is ``keras.Input(shape=...)`` and
  ``Dense(..., input_shape=...)`` gets a ``keras.Input`` first (Keras 3
  deprecates the argument); ``tf_keras.optimizers.legacy.Adam`` is Keras 3's
  ``Adam``; ``self.evaluate([v.initializer ...])`` (graph mode) has no
  counterpart and is dropped.
"""

import functools
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from tensorflow_probability.python.distributions import mixture_same_family  # noqa: E402

import tfprobr_bridge  # noqa: E402
from tfprobr_bridge import distribution_of  # noqa: E402

# Hundreds of model builds and fits: make test runs them, make test-fast leaves them out
# (tests/test_factory_other_layers.py and the valid-argument cases stay in the fast lane).
pytestmark = pytest.mark.slow

tfd = tfp.distributions
tfb = tfp.bijectors
tfk = keras
tfkl = keras.layers
distribution_layer = tfprobr_bridge  # upstream's module name for the layers
variable_input = tfprobr_bridge

REGIMES = ["eager", "tf_function"]


def _logit_avg_expit(t):
    """Computes `logit(mean(expit(t)))` in a numerically stable manner."""
    log_avg_prob = tf.reduce_logsumexp(-tf.nn.softplus(-t), axis=0) - tf.math.log(
        tf.cast(tf.shape(t)[0], t.dtype)
    )
    return log_avg_prob - tf.math.log1p(-tf.exp(log_avg_prob))


def _vec_pad(x, value=0):
    """Prepends a column of zeros to a matrix."""
    paddings = tf.concat([tf.zeros([tf.rank(x) - 1, 2], dtype=tf.int32), [[1, 0]]], axis=0)
    return tf.pad(x, paddings=paddings, constant_values=value)


def _unwrap_tensor_coercible(dist):
    """Upstream's helper; a layer's output tensor unwraps to the distribution it carries."""
    inner_dist = getattr(dist, "tensor_distribution", None)
    if inner_dist is None:
        inner_dist = distribution_of(dist) if not isinstance(dist, tfd.Distribution) else dist
    if inner_dist is dist or inner_dist is None:
        return dist
    return _unwrap_tensor_coercible(inner_dist)


def _get_adam_optimizer(learning_rate):
    return keras.optimizers.Adam(learning_rate=learning_rate)


def _evaluate(fn, arrays, regime, static=True, rank_known=False):
    """``fn(*arrays)`` eagerly, or in a ``tf.function`` whose inputs have their static
    shapes (``static``) or none (the dynamic-shape classes); numpy results.

    ``rank_known``: the dynamic inputs have unknown sizes but a known rank. Keras 3
    layers refuse inputs of unknown rank (``Layer.__call__`` reads the shape as a list),
    which tf_keras took; so the layer cases feed it a shapeless ``batch_shape`` only
    through the sizes, and the parameters ``t`` have unknown sizes of known rank."""
    tensors = [tf.convert_to_tensor(a) for a in arrays]
    if regime == "tf_function":
        def spec(t):
            if static:
                return tf.TensorSpec(t.shape, t.dtype)
            if rank_known:
                return tf.TensorSpec([None] * t.shape.rank, t.dtype)
            return tf.TensorSpec(None, t.dtype)

        signature = [spec(t) for t in tensors]
        fn = tf.function(fn, input_signature=signature)
    return tf.nest.map_structure(lambda v: np.asarray(v), fn(*tensors))


def assert_all_close(a, b, rtol=1e-6, atol=1e-6):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(b, a, rtol=rtol, atol=atol)


def assert_all_equal(a, b):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def assert_python_integer(p, expected):
    """Upstream's ``assertDTypeEqual(p, np.int32)`` (see the module docstring)."""
    assert isinstance(p, int) and not isinstance(p, bool) and p == expected, p
    assert tf.concat([tf.constant([2], tf.int32), [p]], 0).dtype == tf.int32


class _LossOfDtype(keras.losses.Loss):
    """Upstream's loss function, for a model whose outputs are not float32.

    Keras 3 casts a prediction to its loss's dtype (float32 unless the loss says
    otherwise; tf_keras did not), and a cast is a new tensor, without the distribution
    the layer attached; so a float64 model's loss says it computes in float64."""

    def __init__(self, fn, dtype):
        super().__init__(dtype=dtype)
        self.fn = fn

    def call(self, y_true, y_pred):
        if len(y_true.shape) == len(y_pred.shape) - 1:  # as Keras's own wrapper does
            y_true = tf.expand_dims(y_true, -1)
        return self.fn(y_true, y_pred)


def _xs(shape, train=1000, test=100):
    """Upstream's data: ``train_size=10000``, ``test_size=1000``. The end-to-end cases
    assert types and counts, which the size does not change; a tenth keeps them fast."""
    x = (np.random.rand(train, *shape) > 0.75).astype(np.float32)
    x_test = (np.random.rand(test, *shape) > 0.75).astype(np.float32)
    return x, x_test


# --------------------------------------------------------------------------
# EndToEndTest
# --------------------------------------------------------------------------


@pytest.mark.slow
class TestEndToEnd:
    """Port of ``EndToEndTest``: the three Keras APIs, a VAE of two chained models."""

    encoded_size = 2
    input_shape = [2, 2, 1]

    def _assert_bernoulli_output(self, yhat):
        # Upstream: yhat.tensor_distribution is Independent(Bernoulli).
        d = distribution_of(yhat)
        assert isinstance(d, tfd.Independent)
        assert isinstance(d.distribution, tfd.Bernoulli)
        assert tuple(yhat.shape) == (100, 2, 2, 1)

    def test_keras_sequential_api(self):
        """Upstream's count ``4 + 1 + 1``: the two Dense layers, the prior model's
        VariableLayer (through the KL activity regularizer) and beta, a raw
        ``tf.Variable`` that tf_keras tracks through the regularizer. Keras 3 tracks
        only ``keras.Variable``s of layers, so beta does not count (``4 + 1``; it still
        weighs the KL, and a callback may still assign it); the prior model is
        tracked by the layer given the regularizer, and trains."""
        x, x_test = _xs(self.input_shape)
        prior_model = tfk.Sequential([
            variable_input.VariableLayer(shape=[self.encoded_size]),
            distribution_layer.DistributionLambda(
                lambda t: tfd.Independent(tfd.Normal(loc=t, scale=1),
                                          reinterpreted_batch_ndims=1)),
        ])

        beta = tf.Variable(0.9, name="beta")  # "beta" as in beta-VAE.

        encoder_model = tfk.Sequential([
            tfkl.Input(shape=self.input_shape),
            tfkl.Flatten(),
            tfkl.Dense(distribution_layer.MultivariateNormalTriL.params_size(self.encoded_size)),
            distribution_layer.MultivariateNormalTriL(
                self.encoded_size,
                activity_regularizer=distribution_layer.KLDivergenceRegularizer(
                    prior_model, weight=beta)),
        ])

        decoder_model = tfk.Sequential([
            tfkl.Input(shape=[self.encoded_size]),
            tfkl.Dense(distribution_layer.IndependentBernoulli.params_size(self.input_shape)),
            distribution_layer.IndependentBernoulli(self.input_shape, tfd.Bernoulli.logits),
        ])

        vae_model = tfk.Model(inputs=encoder_model.inputs,
                              outputs=decoder_model(encoder_model.outputs[0]))

        assert len(vae_model.trainable_weights) == 4 + 1

        def accuracy(x, rv_x):
            rv_x = getattr(rv_x, "_tfp_distribution", rv_x)
            return tf.reduce_mean(tf.cast(tf.equal(x, rv_x.mode()), x.dtype),
                                  axis=tf.range(-rv_x.event_shape.ndims, 0))

        optimizer = _get_adam_optimizer(learning_rate=0.5)
        vae_model.compile(optimizer=optimizer, loss=lambda x, rv_x: -rv_x.log_prob(x),
                          metrics=[accuracy])
        prior_before = prior_model.layers[0].weights[0].numpy().copy()
        history = vae_model.fit(x, x, batch_size=25, epochs=1, verbose=0,
                                validation_data=(x_test, x_test), shuffle=True)
        yhat = vae_model(tf.convert_to_tensor(x_test))
        self._assert_bernoulli_output(yhat)
        # Added: the metric saw the distribution, and the tracked prior trained.
        assert 0.0 <= history.history["accuracy"][0] <= 1.0
        assert not np.allclose(prior_before, prior_model.layers[0].weights[0].numpy())

    def test_keras_functional_api(self):
        """As written, but Keras 3 layers track only ``keras.Variable``s and cannot train
        raw TensorFlow variables: upstream's ``(2 + 2) + (2 + 2) + (1 + 1) + 0`` counts
        the prior's ``tf.Variable`` loc and ``TransformedVariable`` scale (tracked by
        tf_keras through ``KLDivergenceAddLoss``), which are not the model's here, and
        ``KLDivergenceAddLoss`` says so when it is made. (A trainable prior in Keras 3
        is a Keras model: ``test_keras_sequential_api``.)"""
        x, x_test = _xs(self.input_shape)
        beta = tf.Variable(0.9, trainable=False, name="beta")  # 0 vars since not trainable.

        with pytest.warns(UserWarning, match=r"`distribution_b` holds trainable TensorFlow "
                                             r"variables.*Keras 3 does not train"):
            add_loss = distribution_layer.KLDivergenceAddLoss(
                tfd.Independent(
                    tfd.Normal(
                        loc=tf.Variable([0.0, 0.0]),  # 1 var upstream
                        scale=tfp.util.TransformedVariable(1.0, bijector=tfb.Exp())),  # 1
                    reinterpreted_batch_ndims=1),
                weight=beta)
        encoder_model = [
            tfkl.Flatten(),
            tfkl.Dense(10, activation="relu"),  # 2 vars
            tfkl.Dense(distribution_layer.MultivariateNormalTriL.params_size(  # 2 vars
                self.encoded_size)),
            distribution_layer.MultivariateNormalTriL(self.encoded_size),
            add_loss,
        ]

        decoder_model = [
            tfkl.Dense(10, activation="relu"),  # 2 vars
            tfkl.Dense(distribution_layer.IndependentBernoulli.params_size(  # 2 vars
                self.input_shape)),
            distribution_layer.IndependentBernoulli(self.input_shape, tfd.Bernoulli.logits),
        ]

        images = tfkl.Input(shape=self.input_shape)
        encoded = functools.reduce(lambda x, f: f(x), encoder_model, images)
        decoded = functools.reduce(lambda x, f: f(x), decoder_model, encoded)

        vae_model = tfk.Model(inputs=images, outputs=decoded)
        vae_model.compile(optimizer="adam", loss=lambda x, rv_x: -rv_x.log_prob(x), metrics=[])
        assert len(vae_model.trainable_weights) == (2 + 2) + (2 + 2) + 0
        vae_model.fit(x, x, batch_size=25, epochs=1, verbose=0,
                      validation_data=(x_test, x_test), shuffle=True)
        yhat = vae_model(tf.convert_to_tensor(x_test))
        self._assert_bernoulli_output(yhat)

    def test_keras_model_api(self):
        """Subclassed ``keras.Model``s, as written."""
        x, x_test = _xs(self.input_shape)

        class Encoder(tfk.Model):
            """Encoder."""

            def __init__(self, input_shape, encoded_size, train_size):
                super().__init__()
                self._sub_layers = [
                    tfkl.Flatten(),
                    tfkl.Dense(10, activation="relu"),
                    tfkl.Dense(distribution_layer.MultivariateNormalTriL.params_size(
                        encoded_size)),
                    distribution_layer.MultivariateNormalTriL(encoded_size),
                    distribution_layer.KLDivergenceAddLoss(
                        tfd.Independent(tfd.Normal(loc=tf.zeros(encoded_size), scale=1),
                                        reinterpreted_batch_ndims=1),
                        weight=0.9),  # "beta" as in beta-VAE.
                ]

            def call(self, inputs):
                return functools.reduce(lambda x, f: f(x), self._sub_layers, inputs)

        class Decoder(tfk.Model):
            """Decoder."""

            def __init__(self, output_shape):
                super().__init__()
                self._sub_layers = [
                    tfkl.Dense(10, activation="relu"),
                    tfkl.Dense(distribution_layer.IndependentBernoulli.params_size(
                        output_shape)),
                    distribution_layer.IndependentBernoulli(output_shape, tfd.Bernoulli.logits),
                ]

            def call(self, inputs):
                return functools.reduce(lambda x, f: f(x), self._sub_layers, inputs)

        encoder = Encoder(self.input_shape, self.encoded_size, 10000)
        decoder = Decoder(self.input_shape)

        images = tfkl.Input(shape=self.input_shape)
        encoded = encoder(images)
        decoded = decoder(encoded)

        vae_model = tfk.Model(inputs=images, outputs=decoded)
        vae_model.compile(optimizer="adam", loss=lambda x, rv_x: -rv_x.log_prob(x), metrics=[])
        vae_model.fit(x, x, batch_size=25, epochs=1, verbose=0,
                      validation_data=(x_test, x_test))
        yhat = vae_model(tf.convert_to_tensor(x_test))
        self._assert_bernoulli_output(yhat)

    def test_keras_sequential_api_multiple_draws(self):
        """As written; upstream's counts include the prior's ``tf.Variable`` loc (``+ 1``),
        which Keras 3 neither tracks nor trains (see ``test_keras_functional_api``)."""
        x, x_test = _xs(self.input_shape)
        num_draws = 2

        with pytest.warns(UserWarning, match="Keras 3 does not train"):
            add_loss = distribution_layer.KLDivergenceAddLoss(
                tfd.MultivariateNormalDiag(loc=tf.Variable(tf.zeros([self.encoded_size]))),
                weight=0.9)  # "beta" as in beta-VAE.
        encoder_model = tfk.Sequential([
            tfkl.Input(shape=self.input_shape),
            tfkl.Flatten(),
            tfkl.Dense(10, activation="relu"),
            tfkl.Dense(distribution_layer.MultivariateNormalTriL.params_size(self.encoded_size)),
            distribution_layer.MultivariateNormalTriL(
                self.encoded_size, lambda s: s.sample(num_draws, seed=42)),
            add_loss,
        ])

        decoder_model = tfk.Sequential([
            tfkl.Input(shape=[None, self.encoded_size]),
            tfkl.Dense(10, activation="relu"),
            tfkl.Dense(distribution_layer.IndependentBernoulli.params_size(self.input_shape)),
            tfkl.Lambda(_logit_avg_expit),  # Same as averaging the Bernoullis.
            distribution_layer.IndependentBernoulli(self.input_shape, tfd.Bernoulli.logits),
        ])

        vae_model = tfk.Model(inputs=encoder_model.inputs,
                              outputs=decoder_model(encoder_model.outputs[0]))
        vae_model.compile(optimizer="adam", loss=lambda x, rv_x: -rv_x.log_prob(x), metrics=[])
        assert len(encoder_model.trainable_variables) == (2 + 2)
        assert len(decoder_model.trainable_variables) == 2 + 2
        assert len(vae_model.trainable_variables) == (2 + 2) + (2 + 2)
        vae_model.fit(x, x, batch_size=25, epochs=1, verbose=0,
                      steps_per_epoch=1,  # Usually `n // batch_size`.
                      validation_data=(x_test, x_test))
        yhat = vae_model(tf.convert_to_tensor(x_test))
        self._assert_bernoulli_output(yhat)
        # Added: the encoder's output carries the sample dimension.
        assert tuple(encoder_model(x_test[:3]).shape) == (num_draws, 3, self.encoded_size)


class TestSideVariables:
    """Port of ``EndToEndTest.test_side_variable_is_auto_tracked``.

    Upstream: a ``TransformedVariable`` scale closed over by the
    ``make_distribution_fn`` and a prior with a ``tf.Variable`` loc in a
    ``KLDivergenceRegularizer`` are tracked (tf_keras records the variables of
    the distribution last built and tracks ``tf.Module`` regularizers), 4 in all.
    Keras 3 tracks only ``keras.Variable``s owned by layers and cannot train raw
    TensorFlow variables. So: the same model as written has the Dense layer's 2;
    and the Keras 3 way (the side variable owned by a layer the distribution
    layer holds, the prior a Keras model given to the regularizer) gives 4, with
    both side variables among them by identity.
    """

    def test_side_variable_is_auto_tracked_as_written(self):
        s = tfp.util.TransformedVariable(1.0, tfb.Softplus())
        prior = tfd.Normal(tf.Variable(0.0), 1.0)
        with pytest.warns(UserWarning, match="Keras 3 does not train"):
            regularizer = distribution_layer.KLDivergenceRegularizer(prior)
        linear_regression = tfk.Sequential([
            tfkl.Dense(1),
            distribution_layer.DistributionLambda(lambda t: tfd.Normal(t, s),
                                                  activity_regularizer=regularizer),
        ])
        linear_regression.build((1, 3))
        assert len(linear_regression.trainable_variables) == 2
        ids = [id(x) for x in linear_regression.trainable_variables]
        assert id(s.pretransformed_input) not in ids and id(prior.loc) not in ids

    def test_side_variable_is_tracked_the_keras3_way(self):
        scale_layer = variable_input.VariableLayer(shape=[], initializer="ones")
        prior_model = tfk.Sequential([
            variable_input.VariableLayer(shape=[]),
            distribution_layer.DistributionLambda(lambda t: tfd.Normal(t, 1.0)),
        ])
        norm = distribution_layer.DistributionLambda(
            lambda t: tfd.Normal(t, tf.nn.softplus(scale_layer(t))),
            activity_regularizer=distribution_layer.KLDivergenceRegularizer(prior_model))
        norm._scale_net = scale_layer
        linear_regression = tfk.Sequential([tfkl.Dense(1), norm])
        linear_regression.build((1, 3))
        assert len(linear_regression.trainable_variables) == 4
        ids = [id(x) for x in linear_regression.trainable_variables]
        assert id(scale_layer.weights[0]) in ids
        assert id(prior_model.layers[0].weights[0]) in ids


# --------------------------------------------------------------------------
# DistributionLambdaSerializationTest
# --------------------------------------------------------------------------


class TestDistributionLambdaSerialization:
    """Port of ``DistributionLambdaSerializationTest`` (``.keras``, not h5)."""

    def assertSerializable(self, model, tmp_path, batch_size=1, pickled=True):
        """Assert that a model can be saved/loaded via Keras Model.save/load_model.

        A pickled ``make_distribution_fn`` loads with ``safe_mode=False`` only (Keras's rule
        for its own Lambda); the refusal in safe mode is asserted first."""
        batch_shape = [batch_size]
        input_shape = batch_shape + list(model.inputs[0].shape[1:])
        dtype = model.inputs[0].dtype

        path = str(tmp_path / "model.keras")
        model.save(path)
        if pickled:
            with pytest.raises(ValueError, match=r"`make_distribution_fn` was saved as Python "
                                                 r"bytecode.*safe_mode=False"):
                tfk.models.load_model(path)
        model_copy = tfk.models.load_model(path, safe_mode=not pickled)

        x = np.random.uniform(-3.0, 3.0, input_shape).astype(dtype)

        model_x_mean = model(x).mean().numpy()
        assert_all_equal(model_x_mean, model_copy(x).mean())

        output_shape = model_x_mean.shape
        y = np.random.uniform(0.0, 1.0, output_shape).astype(dtype)

        assert_all_equal(model(x).log_prob(y), model_copy(x).log_prob(y))

    def test_serialization(self, tmp_path):
        model = tfk.Sequential([
            tfkl.Input(shape=(5,)),
            tfkl.Dense(2),
            distribution_layer.DistributionLambda(lambda t: tfd.Normal(
                loc=t[..., 0:1], scale=tf.exp(t[..., 1:2]))),
        ])
        self.assertSerializable(model, tmp_path)

    @staticmethod
    def _make_distribution(t):
        return distribution_layer.MixtureSameFamily.new(
            t, 3, distribution_layer.IndependentNormal([2]))

    def test_serialization_static_method(self, tmp_path):
        model = tfk.Sequential([
            tfkl.Input(shape=(5,)),
            tfkl.Dense(15),
            distribution_layer.DistributionLambda(
                lambda t: TestDistributionLambdaSerialization._make_distribution(t)),
        ])
        model.compile(optimizer="adam", loss="mse")
        self.assertSerializable(model, tmp_path, batch_size=3)

    def test_serialization_closure_over_lambdas_tensors_and_numpy_array(self, tmp_path):
        num_components = np.array(3)
        one = tf.convert_to_tensor(1)
        mk_ind_norm = lambda event_shape: distribution_layer.IndependentNormal(  # noqa: E731
            event_shape + one)

        def make_distribution(t):
            return distribution_layer.MixtureSameFamily.new(t, num_components, mk_ind_norm(1))

        model = tfk.Sequential([
            tfkl.Input(shape=(5,)),
            tfkl.Dense(15),
            distribution_layer.DistributionLambda(make_distribution),
        ])
        self.assertSerializable(model, tmp_path, batch_size=4)


# --------------------------------------------------------------------------
# DistributionLambdaVariableCreation
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_variable_creation():
    """Port of ``DistributionLambdaVariableCreation.test_variable_creation``. Upstream
    asserts only that it runs; added: the sub-models' 4 variables are the model's and train."""
    conv1 = tfkl.Conv2D(filters=1, kernel_size=[1, 3])
    conv2 = tfkl.Conv2D(filters=1, kernel_size=[2, 1])
    pad1 = tfkl.ZeroPadding2D(padding=((0, 0), (1, 1)))
    pad2 = tfkl.ZeroPadding2D(padding=((1, 0), (0, 0)))

    loc = tfk.Sequential([conv1, pad1])
    scale = tfk.Sequential([conv2, pad2])

    x = tfkl.Input(shape=(3, 3, 1))

    norm = distribution_layer.DistributionLambda(
        lambda x: tfd.Normal(loc=loc(x), scale=tf.exp(scale(x))))
    norm._loc_net = loc
    norm._scale_net = scale

    model = tfk.Model(x, norm(x))
    model.compile(optimizer="adam", loss=lambda x, rv_x: -rv_x.log_prob(x), metrics=[])

    x_train = np.random.rand(1000, 3, 3, 1).astype(np.float32)
    x_test = np.random.rand(100, 3, 3, 1).astype(np.float32)
    assert len(model.trainable_variables) == 4
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.fit(x_train, x_train, batch_size=25, epochs=5, steps_per_epoch=10, verbose=0,
              validation_data=(x_test, x_test))
    assert all(not np.allclose(b, v.numpy()) for b, v in zip(before, model.trainable_variables))


# --------------------------------------------------------------------------
# KLDivergenceAddLossTest
# --------------------------------------------------------------------------


class TestKLDivergenceAddLoss:
    """Port of ``KLDivergenceAddLossTest``. Keras 3 clears a layer's losses at each
    call, so after two calls there is one loss (upstream's eager branch)."""

    event_size = 2
    loc = [-1.0, 1.0]
    scale_tril = [[1.1, 0.0], [0.2, 1.3]]

    def _x(self):
        # Insert a leading dimension to the input, such that the Keras
        # batch-shape in `model.fit` is the same for `x` and `y`.
        return tf.concat([self.loc, tfb.FillScaleTriL().inverse(self.scale_tril)],
                         axis=0)[tf.newaxis]

    def _fit(self, model, x):
        event_size = self.event_size
        model.compile(optimizer="adam",
                      loss=lambda x, dist: -dist.log_prob(x[0, :, :event_size]), metrics=[])
        history = model.fit(x=x,
                            # Append a dimension to `y` to account for sample-shape.
                            y=x[tf.newaxis],
                            batch_size=25, epochs=1, verbose=0,
                            steps_per_epoch=1)  # Usually `n // batch_size`.
        assert np.isfinite(history.history["loss"][0])

    def test_approx_kl(self):
        prior = tfd.MultivariateNormalDiag(loc=tf.zeros(self.event_size))
        model = tfk.Sequential([
            distribution_layer.MultivariateNormalTriL(
                self.event_size, lambda s: s.sample(int(1e3), seed=42)),
            distribution_layer.KLDivergenceAddLoss(prior, test_points_reduce_axis=0),
        ])
        actual_kl = tfd.kl_divergence(tfd.MultivariateNormalTriL(self.loc, self.scale_tril),
                                      prior)
        x = self._x()

        y = model(x)
        assert len(model.losses) == 1
        y = model(x)
        # In eager mode, multiple calls won't append new losses.
        assert len(model.losses) == 1

        d = distribution_of(y)
        assert_all_close([self.loc], d.loc, atol=0.0, rtol=1e-5)
        assert_all_close([self.scale_tril], d.scale.to_dense(), atol=0.0, rtol=1e-5)
        assert abs(float(actual_kl) - float(model.losses[0])) <= 0.15
        self._fit(model, x)

    def test_use_exact_kl(self):
        prior = tfd.MultivariateNormalDiag(loc=tf.zeros(self.event_size))
        # Use a small number of samples because we want to verify that
        # we calculated the exact KL divergence and not the one from sampling.
        model = tfk.Sequential([
            distribution_layer.MultivariateNormalTriL(
                self.event_size, lambda s: s.sample(3, seed=42)),
            distribution_layer.KLDivergenceAddLoss(prior, use_exact_kl=True),
        ])
        actual_kl = tfd.kl_divergence(tfd.MultivariateNormalTriL(self.loc, self.scale_tril),
                                      prior)
        x = self._x()

        y = model(x)
        assert len(model.losses) == 1
        y = model(x)
        assert len(model.losses) == 1

        d = distribution_of(y)
        assert_all_close([self.loc], d.loc, atol=0.0, rtol=1e-5)
        assert_all_close([self.scale_tril], d.scale.to_dense(), atol=0.0, rtol=1e-5)
        assert abs(float(actual_kl) - float(model.losses[0])) <= 1e-5
        self._fit(model, x)


# --------------------------------------------------------------------------
# MultivariateNormalTriLTest
# --------------------------------------------------------------------------


class TestMultivariateNormalTriL:
    """Port of ``MultivariateNormalTriLTest``."""

    def _check_distribution(self, t, x):
        assert isinstance(x, tfd.MultivariateNormalTriL)
        t_back = tf.concat([x.loc, tfb.FillScaleTriL().inverse(x.scale.to_dense())], axis=-1)
        assert_all_close(t, t_back, atol=1e-6, rtol=1e-5)

    @pytest.mark.parametrize("regime", REGIMES)
    def test_new(self, regime):
        d = 4
        p = distribution_layer.MultivariateNormalTriL.params_size(d)
        t = tfd.Normal(0, 1).sample([2, 3, p], seed=42)

        def run(t):
            x = distribution_layer.MultivariateNormalTriL.new(t, d, validate_args=True)
            assert isinstance(x, tfd.MultivariateNormalTriL)
            return t, tf.concat([x.loc, tfb.FillScaleTriL().inverse(x.scale.to_dense())], -1)

        assert_all_close(*_evaluate(run, [t], regime), atol=1e-6, rtol=1e-5)

    @pytest.mark.parametrize("regime", REGIMES)
    def test_layer(self, regime):
        d = 4
        p = distribution_layer.MultivariateNormalTriL.params_size(d)
        layer = distribution_layer.MultivariateNormalTriL(d, tfd.Distribution.mean)
        t = tfd.Normal(0, 1).sample([2, 3, p], seed=42)

        def run(t):
            x = distribution_of(layer(t))
            assert isinstance(x, tfd.MultivariateNormalTriL)
            return t, tf.concat([x.loc, tfb.FillScaleTriL().inverse(x.scale.to_dense())], -1)

        assert_all_close(*_evaluate(run, [t], regime), atol=1e-6, rtol=1e-5)

    def test_doc_string(self):
        # Load data.
        n = int(1e3)
        scale_tril = np.array([[1.6180, 0.0], [-2.7183, 3.1416]]).astype(np.float32)
        scale_noise = 0.01
        x = tfd.Normal(loc=0, scale=1).sample([n, 2]).numpy()
        eps = tfd.Normal(loc=0, scale=scale_noise).sample([n, 2])
        y = (tf.matmul(x, scale_tril) + eps).numpy()
        d = y.shape[-1]

        # To save testing time, let's encode the answer (i.e., _cheat_).
        true_kernel = np.pad(scale_tril, [[0, 0], [0, 3]], "constant")
        true_bias = np.array([0, 0, np.log(scale_noise), 0, np.log(scale_noise)])

        model = tfk.Sequential([
            tfkl.Dense(distribution_layer.MultivariateNormalTriL.params_size(d),
                       kernel_initializer=lambda s, **_: true_kernel,
                       bias_initializer=lambda s, **_: true_bias),
            distribution_layer.MultivariateNormalTriL(d),
        ])

        model.compile(optimizer="adam", loss=lambda y, model: -model.log_prob(y), metrics=[])
        batch_size = 100
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0,  # One ping only.
                  steps_per_epoch=n // batch_size)
        assert_all_close(true_kernel, model.get_weights()[0], atol=1e-2, rtol=1e-3)
        assert_all_close(true_bias, model.get_weights()[1], atol=1e-2, rtol=1e-3)


# --------------------------------------------------------------------------
# OneHotCategoricalTest
# --------------------------------------------------------------------------


def _one_hot_data(n, seed=None):
    scale_noise = 0.01
    x = tfd.Normal(loc=0, scale=1).sample([n, 2]).numpy()
    eps = tfd.Normal(loc=0, scale=scale_noise).sample([n, 1])
    y = tfd.OneHotCategorical(
        logits=_vec_pad(0.3142 + 1.6180 * x[..., :1] - 2.7183 * x[..., 1:] + eps),
        dtype=tf.float32).sample().numpy()
    return x, y


class TestOneHotCategorical:
    """Port of ``OneHotCategoricalTest``."""

    @staticmethod
    def _check(t, x):
        assert isinstance(x, tfd.OneHotCategorical)
        return t, x.logits_parameter(), x.probs_parameter(), x.mean()

    def _assert(self, t_, x_logits_, x_probs_, mean_):
        assert_all_close(t_, x_logits_, atol=1e-6, rtol=1e-5)
        assert_all_close(x_probs_, mean_, atol=1e-6, rtol=1e-5)

    @pytest.mark.parametrize("regime", REGIMES)
    def test_new(self, regime):
        d = 4
        p = distribution_layer.OneHotCategorical.params_size(d)
        t = tfd.Normal(0, 1).sample([2, 3, p], seed=42)
        self._assert(*_evaluate(lambda t: self._check(
            t, distribution_layer.OneHotCategorical.new(t, d, validate_args=True)), [t], regime))

    @pytest.mark.parametrize("regime", REGIMES)
    def test_layer(self, regime):
        d = 4
        p = distribution_layer.OneHotCategorical.params_size(d)
        layer = distribution_layer.OneHotCategorical(d, validate_args=True)
        t = tfd.Normal(0, 1).sample([2, 3, p], seed=42)
        self._assert(*_evaluate(lambda t: self._check(t, distribution_of(layer(t))),
                                [t], regime))

    @pytest.mark.slow
    def test_doc_string(self):
        n = int(1e4)
        x, y = _one_hot_data(n)
        d = y.shape[-1]

        model = tfk.Sequential([
            tfkl.Dense(distribution_layer.OneHotCategorical.params_size(d) - 1),
            tfkl.Lambda(_vec_pad),
            distribution_layer.OneHotCategorical(d),
        ])

        model.compile(optimizer=_get_adam_optimizer(learning_rate=0.5),
                      loss=lambda y, model: -model.log_prob(y), metrics=[])
        batch_size = 100
        history = model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0,
                            steps_per_epoch=n // batch_size, shuffle=True)
        # Upstream asserts that it runs; added: a finite loss and one-hot samples.
        assert np.isfinite(history.history["loss"][0])
        sample = model(x[:5]).numpy()
        assert_all_equal(sample.sum(-1), np.ones(5))


# --------------------------------------------------------------------------
# CategoricalMixtureOfOneHotCategoricalTest
# --------------------------------------------------------------------------


class TestCategoricalMixtureOfOneHotCategorical:
    """Port of ``CategoricalMixtureOfOneHotCategoricalTest``."""

    def _check_distribution(self, t, x, regime):
        x = _unwrap_tensor_coercible(x)
        assert isinstance(x, mixture_same_family._MixtureSameFamily)
        assert isinstance(_unwrap_tensor_coercible(x.mixture_distribution), tfd.Categorical)
        assert isinstance(_unwrap_tensor_coercible(x.components_distribution),
                          tfd.OneHotCategorical)
        t_back = tf.concat([
            x.mixture_distribution.logits,
            tf.reshape(x.components_distribution.logits, shape=[2, 3, -1]),
        ], axis=-1)
        return t, t_back, x.mean(), x.log_mean(), x.sample(int(10e3), seed=42)

    def _assert(self, t_, t_back_, x_mean_, x_log_mean_, samples_):
        assert_all_close(t_, t_back_, atol=1e-6, rtol=1e-5)
        assert_all_close(x_mean_, np.exp(x_log_mean_), atol=1e-6, rtol=1e-5)
        # assertAllMeansClose(samples_, x_mean_, axis=0, atol=1e-3, rtol=0.1)
        assert_all_close(x_mean_, samples_.mean(axis=0), atol=1e-3, rtol=0.1)

    @pytest.mark.parametrize("regime", REGIMES)
    def test_new(self, regime):
        k = 2  # num components
        d = 4  # event size
        p = distribution_layer.CategoricalMixtureOfOneHotCategorical.params_size(d, k)
        t = tfd.Normal(0, 1).sample([2, 3, p], seed=42)
        self._assert(*_evaluate(lambda t: self._check_distribution(
            t, distribution_layer.CategoricalMixtureOfOneHotCategorical.new(
                t, d, k, validate_args=True), regime), [t], regime))

    @pytest.mark.parametrize("regime", REGIMES)
    def test_layer(self, regime):
        k = 2  # num components
        d = 4  # event size
        p = distribution_layer.CategoricalMixtureOfOneHotCategorical.params_size(d, k)
        layer = distribution_layer.CategoricalMixtureOfOneHotCategorical(d, k, validate_args=True)
        t = tfd.Normal(0, 1).sample([2, 3, p], seed=42)
        self._assert(*_evaluate(lambda t: self._check_distribution(t, layer(t), regime),
                                [t], regime))

    def test_layer_output_carries_log_mean(self):
        """Upstream's ``x.log_mean()`` on the layer's output (a tensor-coercible there)."""
        layer = distribution_layer.CategoricalMixtureOfOneHotCategorical(4, 2)
        x = layer(tfd.Normal(0, 1).sample([2, 3, 10], seed=42))
        assert_all_close(x.mean(), np.exp(x.log_mean()), atol=1e-6, rtol=1e-5)

    def test_doc_string(self):
        n = int(1e3)
        x, y = _one_hot_data(n)
        d = y.shape[-1]

        k = 2
        p = distribution_layer.CategoricalMixtureOfOneHotCategorical.params_size(d, k)
        model = tfk.Sequential([
            tfkl.Dense(p),
            distribution_layer.CategoricalMixtureOfOneHotCategorical(d, k),
        ])

        model.compile(optimizer=_get_adam_optimizer(learning_rate=0.5),
                      loss=lambda y, model: -model.log_prob(y), metrics=[])
        batch_size = 100
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0,
                  steps_per_epoch=1,  # Usually `n // batch_size`.
                  shuffle=True)

        yhat = model(x)
        assert isinstance(_unwrap_tensor_coercible(yhat), mixture_same_family._MixtureSameFamily)
        assert isinstance(_unwrap_tensor_coercible(distribution_of(yhat).mixture_distribution),
                          tfd.Categorical)
        assert isinstance(_unwrap_tensor_coercible(
            distribution_of(yhat).components_distribution), tfd.OneHotCategorical)


# --------------------------------------------------------------------------
# _IndependentLayerTest and its subclasses
# --------------------------------------------------------------------------


def _independent_params(layer_class, distribution, batch_shape):
    """Each subclass's ``_distribution_to_params``."""
    shape = tf.concat([batch_shape, [-1]], axis=-1)
    if layer_class is distribution_layer.IndependentBernoulli:
        return tf.reshape(distribution.logits, shape)
    if layer_class is distribution_layer.IndependentPoisson:
        return tf.reshape(distribution.log_rate, shape)
    return tf.concat([
        tf.reshape(distribution.loc, shape),
        tfp.math.softplus_inverse(tf.reshape(distribution.scale, shape)),
    ], -1)


# (layer class, tfd class, dtype, use_static_shape): upstream's concrete classes.
INDEPENDENT_CASES = [
    ("IndependentBernoulliTestDynamicShape", "IndependentBernoulli", tfd.Bernoulli,
     np.float64, False),
    ("IndependentBernoulliTestStaticShape", "IndependentBernoulli", tfd.Bernoulli,
     np.float32, True),
    ("IndependentLogisticTestDynamicShape", "IndependentLogistic", tfd.Logistic,
     np.float32, False),
    ("IndependentLogisticTestStaticShape", "IndependentLogistic", tfd.Logistic,
     np.float64, True),
    ("IndependentNormalTestDynamicShape", "IndependentNormal", tfd.Normal, np.float32, False),
    ("IndependentNormalTestStaticShape", "IndependentNormal", tfd.Normal, np.float64, True),
    ("IndependentPoissonTestDynamicShape", "IndependentPoisson", tfd.Poisson,
     np.float32, False),
    ("IndependentPoissonTestStaticShape", "IndependentPoisson", tfd.Poisson, np.float64, True),
]
INDEPENDENT_IDS = [case[0] for case in INDEPENDENT_CASES]


class TestIndependentLayer:
    """Port of ``_IndependentLayerTest``, for each of upstream's concrete classes."""

    def _check_distribution(self, layer_class, dist_class, dtype, t, x, batch_shape):
        assert isinstance(x, tfd.Independent)
        assert isinstance(x.distribution, dist_class)
        assert x.dtype == dtype
        return t, _independent_params(layer_class, x.distribution, batch_shape)

    def _assert(self, dtype, t_, t_back_):
        assert_all_close(t_, t_back_, atol=1e-6, rtol=1e-5)
        assert t_back_.dtype == dtype

    @pytest.mark.parametrize("regime", REGIMES)
    @pytest.mark.parametrize("case", INDEPENDENT_CASES, ids=INDEPENDENT_IDS)
    def test_new(self, case, regime):
        _, name, dist_class, dtype, static = case
        layer_class = getattr(distribution_layer, name)
        batch_shape = np.array([2], np.int32)
        event_shape = np.array([2, 1, 2], np.int32)
        low, high = np.array(-3.0, dtype), np.array(3.0, dtype)

        def run(batch_shape, event_shape, low, high):
            p = layer_class.params_size(event_shape)
            t = tfd.Uniform(low, high).sample(tf.concat([batch_shape, [p]], 0), seed=42)
            x = layer_class.new(t, event_shape, validate_args=True)
            return self._check_distribution(layer_class, dist_class, dtype, t, x, batch_shape)

        self._assert(dtype, *_evaluate(run, [batch_shape, event_shape, low, high], regime,
                                       static))

    @pytest.mark.parametrize("regime", REGIMES)
    @pytest.mark.parametrize("case", INDEPENDENT_CASES, ids=INDEPENDENT_IDS)
    def test_layer(self, case, regime):
        _, name, dist_class, dtype, static = case
        layer_class = getattr(distribution_layer, name)
        batch_shape = np.array([5, 5], np.int32)
        p = layer_class.params_size()
        assert_python_integer(p, 2 if name in ("IndependentLogistic", "IndependentNormal") else 1)
        layer = layer_class(validate_args=True, dtype=dtype)

        t = tfd.Uniform(np.array(-3.0, dtype), np.array(3.0, dtype)).sample(
            tf.concat([batch_shape, [p]], 0), seed=42)

        def run(t, batch_shape):
            x = distribution_of(layer(t))
            return self._check_distribution(layer_class, dist_class, dtype, t, x, batch_shape)

        self._assert(dtype, *_evaluate(run, [t, batch_shape], regime, static, rank_known=True))

    @pytest.mark.parametrize("case", INDEPENDENT_CASES, ids=INDEPENDENT_IDS)
    def test_serialization(self, case, tmp_path):
        """``.keras`` and safe mode: these layers' configs hold no code."""
        _, name, _, dtype, _ = case
        layer_class = getattr(distribution_layer, name)
        event_shape = []
        params_size = layer_class.params_size(event_shape)
        batch_shape = [4, 1]

        x = tfd.Uniform(np.array(-3.0, dtype), np.array(3.0, dtype)).sample(
            batch_shape + [params_size], seed=42).numpy()

        model = tfk.Sequential([
            tfkl.Input(shape=batch_shape[1:] + [params_size], dtype=dtype),
            tfkl.Dense(params_size, dtype=dtype),
            layer_class(event_shape, validate_args=True, dtype=dtype),
        ])

        path = str(tmp_path / "model.keras")
        model.save(path)
        model_copy = tfk.models.load_model(path)

        assert_all_equal(model(x).mean(), model_copy(x).mean())
        assert model(x).mean().dtype.as_numpy_dtype == dtype

        ones = np.ones([7] + batch_shape + event_shape, dtype=dtype)
        assert_all_equal(model(x).log_prob(ones), model_copy(x).log_prob(ones))


@pytest.mark.slow
def test_independent_bernoulli_doc_string():
    """Port of ``IndependentBernoulliTestStaticShape.test_doc_string`` (100 epochs, as written)."""
    n = int(1e4)
    scale_tril = np.array([[1.6180, 0.0], [-2.7183, 3.1416]]).astype(np.float32)
    scale_noise = 0.01
    x = tfd.Normal(loc=0, scale=1).sample([n, 2]).numpy()
    eps = tfd.Normal(loc=0, scale=scale_noise).sample([n, 2])
    y = tfd.Bernoulli(logits=tf.reshape(tf.matmul(x, scale_tril) + eps,
                                        shape=[n, 1, 2, 1])).sample().numpy().astype(np.float32)
    event_shape = y.shape[1:]

    model = tfk.Sequential([
        tfkl.Dense(distribution_layer.IndependentBernoulli.params_size(event_shape)),
        distribution_layer.IndependentBernoulli(event_shape),
    ])

    model.compile(optimizer=_get_adam_optimizer(learning_rate=0.5),
                  loss=lambda y, model: -model.log_prob(y))
    batch_size = 10000
    model.fit(x, y, batch_size=batch_size, epochs=100, verbose=0, shuffle=True)
    assert_all_close(scale_tril, model.get_weights()[0], atol=0.15, rtol=0.15)
    assert_all_close([0.0, 0.0], model.get_weights()[1], atol=0.15, rtol=0.15)


@pytest.mark.parametrize("name", ["IndependentLogistic", "IndependentNormal"])
def test_independent_doc_string(name):
    """Port of ``Independent{Logistic,Normal}TestStaticShape.test_doc_string`` (float64)."""
    dtype = np.float64
    layer_class = getattr(distribution_layer, name)
    input_shape = [28, 28, 1]
    encoded_shape = 2
    encoder = tfk.Sequential([
        tfkl.Input(shape=input_shape, dtype=dtype),
        tfkl.Flatten(dtype=dtype),
        tfkl.Dense(10, activation="relu", dtype=dtype),
        tfkl.Dense(layer_class.params_size(encoded_shape), dtype=dtype),
        layer_class(encoded_shape, dtype=dtype),
        tfkl.Lambda(lambda x: x + 0.0,  # To force conversion to tensor.
                    dtype=dtype),
    ])

    # Test that we can run the model and get a sample.
    x = np.random.randn(*([1] + input_shape)).astype(dtype)
    assert encoder.predict_on_batch(x).shape == (1, 2)

    out = encoder(tf.convert_to_tensor(x))
    assert tuple(out.shape) == (1, 2)
    assert np.asarray(out).shape == (1, 2)
    assert out.dtype == dtype


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("dtype,static", [(np.float32, False), (np.float64, True)],
                         ids=["IndependentNormalTestDynamicShape",
                              "IndependentNormalTestStaticShape"])
def test_keras_sequential_with_unknown_input_size(dtype, static, regime):
    """Port of ``_IndependentNormalTest.test_keras_sequential_with_unknown_input_size``.

    ``encoded_shape`` is a tensor as upstream; the layer reads its value (Keras 3
    configs hold Python values), and the unknown sizes come from the input of the
    ``tf.function`` (upstream: ``[1, None, None]`` in graph mode with a static shape)."""
    input_shape = [28, 28, 1]
    encoded_shape = tf.constant([2], tf.int32)
    params_size = distribution_layer.IndependentNormal.params_size(encoded_shape)
    assert_python_integer(params_size, 4)

    def reshape(x):
        return tf.reshape(x, tf.concat([tf.shape(x)[:-1], [-1, params_size]], 0))

    encoder = tfk.Sequential([
        tfkl.Input(shape=input_shape, dtype=dtype),
        tfkl.Flatten(dtype=dtype),
        tfkl.Dense(12, activation="relu", dtype=dtype),
        tfkl.Lambda(reshape, dtype=dtype),
        distribution_layer.IndependentNormal(encoded_shape, dtype=dtype),
        tfkl.Lambda(lambda x: x + 0.0,  # To force conversion to tensor.
                    dtype=dtype),
    ])

    x = np.random.randn(*([1] + input_shape)).astype(dtype)
    assert encoder.predict_on_batch(x).shape == (1, 3, 2)

    if regime == "eager":
        out = encoder(tf.convert_to_tensor(x))
        assert tuple(out.shape) == (1, 3, 2)
    else:
        shape = [None] * 4 if not static else [1] + input_shape
        out = tf.function(encoder, input_signature=[tf.TensorSpec(shape, dtype)])(x)
    assert np.asarray(out).shape == (1, 3, 2)
    assert out.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64], ids=["IndependentPoissonTestStaticShape"])
def test_independent_poisson_doc_string(dtype):
    """Port of ``IndependentPoissonTestStaticShape.test_doc_string``; the float64 loss says its
    dtype (see ``_LossOfDtype``). Upstream asserts that it runs; added: a finite loss."""
    n = 2000
    d = 4
    x = tfd.Uniform(low=np.array(1.0, dtype), high=10.0).sample([n, d], seed=42).numpy()
    w = np.array([[0.314], [0.272], [-0.162], [0.058]], dtype)
    log_rate = tf.matmul(x, w) - 0.141
    y = tfd.Poisson(log_rate=log_rate).sample().numpy()

    model = tfk.Sequential([
        tfkl.Dense(distribution_layer.IndependentPoisson.params_size(1), dtype=dtype),
        distribution_layer.IndependentPoisson(1, dtype=dtype),
    ])

    model.compile(optimizer=_get_adam_optimizer(learning_rate=0.05),
                  loss=_LossOfDtype(lambda y, model: -model.log_prob(y), dtype), metrics=[])
    batch_size = 50
    history = model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0,
                        steps_per_epoch=1,  # Usually `n // batch_size`.
                        shuffle=True)
    assert np.isfinite(history.history["loss"][0])


# --------------------------------------------------------------------------
# _MixtureLayerTest (MixtureNormal, MixtureLogistic)
# --------------------------------------------------------------------------


def _mixture_params(distribution, batch_shape):
    """``_Mixture{Logistic,Normal}Test._distribution_to_params`` (the same for both)."""
    params_shape = tf.concat([batch_shape, [-1]], axis=0)
    batch_and_n_shape = tf.concat([tf.shape(distribution.mixture_distribution.logits), [-1]],
                                  axis=0)
    cd = distribution.components_distribution.distribution
    return tf.concat([
        distribution.mixture_distribution.logits,
        tf.reshape(tf.concat([
            tf.reshape(cd.loc, batch_and_n_shape),
            tf.reshape(tfp.math.softplus_inverse(cd.scale), batch_and_n_shape),
        ], axis=-1), params_shape),
    ], axis=-1)


MIXTURE_CASES = [
    ("MixtureLogisticTestDynamicShape", "MixtureLogistic", tfd.Logistic, np.float64, False),
    ("MixtureLogisticTestStaticShape", "MixtureLogistic", tfd.Logistic, np.float32, True),
    ("MixtureNormalTestDynamicShape", "MixtureNormal", tfd.Normal, np.float32, False),
    ("MixtureNormalTestStaticShape", "MixtureNormal", tfd.Normal, np.float64, True),
]
MIXTURE_IDS = [case[0] for case in MIXTURE_CASES]


def _cardioid(n=2000):
    t = tfd.Uniform(low=-np.pi, high=np.pi).sample([n, 1])
    r = 2 * (1 - tf.cos(t))
    x = r * tf.sin(t) + tfd.Normal(loc=0.0, scale=0.1).sample([n, 1])
    y = r * tf.cos(t) + tfd.Normal(loc=0.0, scale=0.1).sample([n, 1])
    return x.numpy(), y.numpy()


class TestMixtureLayer:
    """Port of ``_MixtureLayerTest``, for each of upstream's concrete classes."""

    def _check_distribution(self, dist_class, dtype, t, x, batch_shape):
        x = _unwrap_tensor_coercible(x)
        assert isinstance(x, mixture_same_family._MixtureSameFamily)
        assert isinstance(_unwrap_tensor_coercible(x.mixture_distribution), tfd.Categorical)
        assert isinstance(_unwrap_tensor_coercible(x.components_distribution), tfd.Independent)
        assert isinstance(_unwrap_tensor_coercible(x.components_distribution.distribution),
                          dist_class)
        assert x.dtype == dtype
        return t, _mixture_params(x, batch_shape)

    def _assert(self, dtype, t_, t_back_):
        assert_all_close(t_, t_back_, atol=1e-6, rtol=1e-5)
        assert t_back_.dtype == dtype

    @pytest.mark.parametrize("regime", REGIMES)
    @pytest.mark.parametrize("case", MIXTURE_CASES, ids=MIXTURE_IDS)
    def test_new(self, case, regime):
        _, name, dist_class, dtype, static = case
        layer_class = getattr(distribution_layer, name)

        def run(n, event_shape, batch_shape, low, high):
            p = layer_class.params_size(n, event_shape)
            t = tfd.Uniform(low, high).sample(tf.concat([batch_shape, [p]], 0), seed=42)
            x = layer_class.new(t, n, event_shape, validate_args=True)
            return self._check_distribution(dist_class, dtype, t, x, batch_shape)

        arrays = [np.array(4, np.int32), np.array(3, np.int32), np.array([4, 2], np.int32),
                  np.array(-3.0, dtype), np.array(3.0, dtype)]
        self._assert(dtype, *_evaluate(run, arrays, regime, static))

    @pytest.mark.parametrize("regime", REGIMES)
    @pytest.mark.parametrize("case", MIXTURE_CASES, ids=MIXTURE_IDS)
    def test_layer(self, case, regime):
        _, name, dist_class, dtype, static = case
        layer_class = getattr(distribution_layer, name)
        n, event_shape = 3, [4, 2]
        p = layer_class.params_size(n, event_shape)
        assert_python_integer(p, 3 * (1 + 2 * 8))
        layer = layer_class(n, event_shape, validate_args=True, dtype=dtype)

        batch_shape = np.array([7, 3], np.int32)
        t = tfd.Uniform(np.array(-3.0, dtype), np.array(3.0, dtype)).sample(
            tf.concat([batch_shape, [p]], 0), seed=42)

        def run(t, batch_shape):
            return self._check_distribution(dist_class, dtype, t, layer(t), batch_shape)

        self._assert(dtype, *_evaluate(run, [t, batch_shape], regime, static, rank_known=True))

    @pytest.mark.parametrize("case", MIXTURE_CASES, ids=MIXTURE_IDS)
    def test_serialization(self, case, tmp_path):
        _, name, _, dtype, _ = case
        layer_class = getattr(distribution_layer, name)
        n = 3
        event_shape = []
        params_size = layer_class.params_size(n, event_shape)
        batch_size = 7

        x = tfd.Uniform(np.array(-3.0, dtype), np.array(3.0, dtype)).sample(
            [batch_size] + [params_size], seed=42).numpy()

        model = tfk.Sequential([
            tfkl.Input(shape=(params_size,), dtype=dtype),
            tfkl.Dense(params_size, dtype=dtype),
            layer_class(n, event_shape, validate_args=True, dtype=dtype),
        ])

        path = str(tmp_path / "model.keras")
        model.save(path)
        model_copy = tfk.models.load_model(path)

        assert_all_equal(model(x).mean(), model_copy(x).mean())
        assert model(x).mean().dtype.as_numpy_dtype == dtype

        ones = np.ones([3, 2] + [batch_size] + event_shape, dtype=dtype)
        assert_all_equal(model(x).log_prob(ones), model_copy(x).log_prob(ones))

    @pytest.mark.parametrize("name", ["MixtureLogistic", "MixtureNormal"])
    def test_doc_string(self, name):
        """As written: ``event_shape`` and ``num_components`` are tensors (their values are
        read by the layer; see the module docstring)."""
        layer_class = getattr(distribution_layer, name)
        n = 2000
        x, y = _cardioid(n)

        # Model the distribution of y given x with a Mixture Density Network.
        event_shape = tf.constant([1], tf.int32)
        num_components = tf.constant(5, tf.int32)
        params_size = distribution_layer.MixtureNormal.params_size(num_components, event_shape)
        model = tfk.Sequential([
            tfkl.Dense(12, activation="relu"),
            # NOTE: upstream hard-codes 15 (a placeholder cannot size a Dense).
            tfkl.Dense(15, activation=None),
            layer_class(num_components, event_shape),
        ])

        batch_size = 100
        model.compile(optimizer=_get_adam_optimizer(learning_rate=0.02),
                      loss=lambda y, model: -model.log_prob(y))
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0,
                  steps_per_epoch=n // batch_size)

        assert int(tf.convert_to_tensor(params_size)) == 15


# --------------------------------------------------------------------------
# _MixtureSameFamilyTest
# --------------------------------------------------------------------------


MIXTURE_SAME_FAMILY_CASES = [
    ("MixtureSameFamilyTestDynamicShape", np.float32, False),
    ("MixtureSameFamilyTestStaticShape", np.float64, True),
]
MIXTURE_SAME_FAMILY_IDS = [case[0] for case in MIXTURE_SAME_FAMILY_CASES]


class TestMixtureSameFamily:
    """Port of ``_MixtureSameFamilyTest``."""

    def _check_distribution(self, dtype, t, x, batch_shape):
        x = _unwrap_tensor_coercible(x)
        assert isinstance(x, mixture_same_family._MixtureSameFamily)
        assert isinstance(_unwrap_tensor_coercible(x.mixture_distribution), tfd.Categorical)
        assert isinstance(_unwrap_tensor_coercible(x.components_distribution),
                          tfd.MultivariateNormalTriL)

        shape = tf.concat([batch_shape, [-1]], axis=0)
        batch_and_n_shape = tf.concat([tf.shape(x.mixture_distribution.logits), [-1]], axis=0)
        cd = x.components_distribution
        scale_tril = tfb.FillScaleTriL(diag_shift=np.array(1e-5, dtype))
        t_back = tf.concat([
            x.mixture_distribution.logits,
            tf.reshape(tf.concat([
                tf.reshape(cd.loc, batch_and_n_shape),
                tf.reshape(scale_tril.inverse(cd.scale.to_dense()), batch_and_n_shape),
            ], axis=-1), shape),
        ], axis=-1)
        return t, t_back

    @pytest.mark.parametrize("regime", REGIMES)
    @pytest.mark.parametrize("case", MIXTURE_SAME_FAMILY_CASES, ids=MIXTURE_SAME_FAMILY_IDS)
    def test_new(self, case, regime):
        _, dtype, static = case
        normal = distribution_layer.MultivariateNormalTriL(3, validate_args=True, dtype=dtype)

        def run(n, batch_shape, event_size, low, high):
            cps = distribution_layer.MultivariateNormalTriL.params_size(event_size)
            p = distribution_layer.MixtureSameFamily.params_size(n, cps)
            t = tfd.Uniform(low, high).sample(tf.concat([batch_shape, [p]], 0), seed=42)
            x = distribution_layer.MixtureSameFamily.new(t, n, normal, validate_args=True)
            return self._check_distribution(dtype, t, x, batch_shape)

        arrays = [np.array(4, np.int32), np.array([4, 2], np.int32), np.array(3, np.int32),
                  np.array(-3.0, dtype), np.array(3.0, dtype)]
        assert_all_close(*_evaluate(run, arrays, regime, static), atol=1e-6, rtol=1e-5)

    @pytest.mark.parametrize("regime", REGIMES)
    @pytest.mark.parametrize("case", MIXTURE_SAME_FAMILY_CASES, ids=MIXTURE_SAME_FAMILY_IDS)
    def test_layer(self, case, regime):
        _, dtype, static = case
        n, event_size = 3, 4
        cps = distribution_layer.MultivariateNormalTriL.params_size(event_size)
        p = distribution_layer.MixtureSameFamily.params_size(n, cps)
        assert_python_integer(p, 45)

        normal = distribution_layer.MultivariateNormalTriL(
            event_size, validate_args=True, dtype=dtype)
        layer = distribution_layer.MixtureSameFamily(n, normal, validate_args=True, dtype=dtype)

        batch_shape = np.array([7, 3], np.int32)
        t = tfd.Uniform(np.array(-3.0, dtype), np.array(3.0, dtype)).sample(
            tf.concat([batch_shape, [p]], 0), seed=42)

        def run(t, batch_shape):
            return self._check_distribution(dtype, t, layer(t), batch_shape)

        assert_all_close(*_evaluate(run, [t, batch_shape], regime, static, rank_known=True),
                         atol=1e-6, rtol=1e-5)

    def test_doc_string(self):
        n = 2000
        x, y = _cardioid(n)

        event_shape = tf.constant([1], tf.int32)
        num_components = tf.constant(5, tf.int32)
        params_size = distribution_layer.MixtureSameFamily.params_size(
            num_components, distribution_layer.IndependentNormal.params_size(event_shape))
        model = tfk.Sequential([
            tfkl.Dense(12, activation="relu"),
            tfkl.Dense(15, activation=None),
            distribution_layer.MixtureSameFamily(
                num_components, distribution_layer.IndependentNormal(event_shape)),
        ])

        batch_size = 100
        model.compile(optimizer=_get_adam_optimizer(learning_rate=0.02),
                      loss=lambda y, model: -model.log_prob(y))
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0,
                  steps_per_epoch=1)  # Usually `n // batch_size`.

        assert int(tf.convert_to_tensor(params_size)) == 15


# --------------------------------------------------------------------------
# VariationalGaussianProcessEndToEnd
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_variational_gaussian_process_end_to_end():
    """Port of ``VariationalGaussianProcessEndToEnd.testEndToEnd``; the kernel provider is
    a Keras 3 layer, and the float64 loss says its dtype (see ``_LossOfDtype``). Added:
    the loss falls and the amplitude trains."""
    np.random.seed(43)
    dtype = np.float64

    n = 1000
    w0 = 0.125
    b0 = 5.0
    x_range = [-20, 60]

    def s(x):
        g = (x - x_range[0]) / (x_range[1] - x_range[0])
        return 3 * (0.25 + g**2.0)

    x = (x_range[1] - x_range[0]) * np.random.rand(n) + x_range[0]
    eps = np.random.randn(n) * s(x)
    y = (w0 * x * (1 + np.sin(x)) + b0) + eps
    x0 = np.linspace(*x_range, num=1000)

    class KernelFn(tfkl.Layer):

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._amplitude = self.add_weight(
                initializer=keras.initializers.Constant(0.54), dtype=dtype, name="amplitude")

        def call(self, x):
            return x

        @property
        def kernel(self):
            return tfp.math.psd_kernels.ExponentiatedQuadratic(
                amplitude=tf.nn.softplus(self._amplitude))

    num_inducing_points = 50

    # Add a leading dimension for the event_shape.
    eyes = np.expand_dims(np.eye(num_inducing_points), 0)
    variational_inducing_observations_scale_initializer = keras.initializers.Constant(
        1e-3 * eyes)

    kernel_provider = KernelFn(dtype=dtype)
    model = tfk.Sequential([
        tfkl.Input(shape=[1], dtype=dtype),
        tfkl.Dense(1, kernel_initializer="Ones", use_bias=False, activation=None, dtype=dtype),
        distribution_layer.VariationalGaussianProcess(
            num_inducing_points=num_inducing_points,
            kernel_provider=kernel_provider,
            inducing_index_points_initializer=keras.initializers.Constant(
                np.linspace(*x_range, num=num_inducing_points, dtype=dtype)[..., np.newaxis]),
            variational_inducing_observations_scale_initializer=(
                variational_inducing_observations_scale_initializer)),
    ])

    batch_size = 64
    kl_weight = np.float64(batch_size) / n
    loss = lambda y, d: d.variational_loss(y, kl_weight=kl_weight)  # noqa: E731
    model.compile(optimizer=_get_adam_optimizer(learning_rate=0.02),
                  loss=_LossOfDtype(loss, dtype))

    amplitude = kernel_provider.weights[0].numpy().copy()
    # This should have no issues
    history = model.fit(x, y, epochs=5, batch_size=batch_size, verbose=0)

    vgp = model(x0[..., np.newaxis])
    num_samples = 7
    samples_ = vgp.sample(num_samples).numpy()
    assert samples_.shape == (7, 1000, 1)
    assert distribution_of(vgp).dtype == dtype
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert kernel_provider.weights[0].numpy() != amplitude
