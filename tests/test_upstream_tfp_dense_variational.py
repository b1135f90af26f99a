"""TensorFlow Probability's ``tensorflow_probability/python/layers/dense_variational_test.py``, ported.

Every case, for ``DenseReparameterization``, ``DenseFlipout`` and
``DenseLocalReparameterization``. TFP's mocks and assertions are kept as
written; what Keras 3 and TF2 force on every port is said in ``upstream.py``.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from absl.testing import parameterized  # noqa: E402
from keras.src import testing as keras_testing  # noqa: E402
from keras.src.saving.serialization_lib import SafeModeScope  # noqa: E402
from tensorflow_probability.python.distributions import independent  # noqa: E402
from tensorflow_probability.python.distributions import normal  # noqa: E402
from tensorflow_probability.python.layers import util as tfp_layers_util  # noqa: E402
import tfprobr_bridge  # noqa: E402
from tfprobr_bridge import DenseFlipout  # noqa: E402
from tfprobr_bridge import DenseLocalReparameterization  # noqa: E402
from tfprobr_bridge import DenseReparameterization  # noqa: E402
from upstream import (  # noqa: E402
    tfd,
    REGIMES,
    DENSE_CLASSES,
    _name,
    Counter,
    MockDistribution,
    MockKLDivergence,
    call_layer,
    assert_all_close,
    assert_divergence_called_with,
    assert_flipout_structure,
    registered_tfp_dense_kernel_posterior_fn,
    run_harness,
)

# --------------------------------------------------------------------------
# Part 2: TFP's dense_variational_test.py, every case.
# --------------------------------------------------------------------------


class TFPDenseKerasLayerTest(keras_testing.TestCase):
    """Port of TFP's ``testKerasLayer{Reparameterization,LocalReparameterization,Flipout}``.

    Upstream ``_testKerasLayer`` runs tf_keras' ``layer_test`` with
    ``units=3``, its posterior fn, no prior and no bias, for input shapes
    (3, 2) and (None, None, 2); upstream skips it (as the conv one), here it
    runs with Keras 3's ``run_layer_test``. That harness makes eager data
    from ``input_shape`` and cannot take None; tf_keras' ``layer_test``
    replaced each None with a random size. So (None, None, 2) runs as (2, 3, 2)
    in the harness, expecting (None, None, 3) (the harness skips None
    dimensions), and the unknown sizes are checked symbolically: a
    ``keras.Input`` of shape (None, 2) gives (None, None, 3), and a model on
    it takes two different sizes.
    """

    def _kwargs(self, kernel_posterior_fn):
        return {
            "units": 3,
            "kernel_posterior_fn": kernel_posterior_fn,
            "kernel_prior_fn": None,
            "bias_posterior_fn": None,
            "bias_prior_fn": None,
        }

    def _run(self, layer_class, kernel_posterior_fn):
        kwargs = self._kwargs(kernel_posterior_fn)
        for input_shape, expected_output_shape in (
            ((3, 2), (3, 3)),
            ((2, 3, 2), (None, None, 3)),
        ):
            run_harness(
                self,
                kwargs,
                trainable=0,
                seed_generators=0,
                losses=0,
                layer_class=layer_class,
                input_shape=input_shape,
                expected_output_shape=expected_output_shape,
            )
        symbolic = keras.Input(shape=(None, 2))
        model = keras.Model(symbolic, layer_class(**kwargs)(symbolic))
        self.assertEqual(tuple(model.output.shape), (None, None, 3))
        for shape in ((1, 1, 2), (2, 3, 2)):
            self.assertEqual(tuple(model(np.ones(shape, "float32")).shape), shape[:-1] + (3,))

    @parameterized.named_parameters(*[(cls.__name__, cls) for cls in DENSE_CLASSES])
    def test_keras_layer_plain_function(self, layer_class):
        """Upstream's exact set-up (a local fn); safe mode off, as in the conv case."""

        def kernel_posterior_fn(dtype, shape, name, trainable, add_variable_fn):
            """Set trivially. The function is required to instantiate layer."""
            del name, trainable, add_variable_fn  # unused
            # Deserialized Keras objects do not perform lexical scoping. Any modules
            # that the function requires must be imported within the function.
            import tensorflow.compat.v2 as tf  # noqa: F811
            from tensorflow_probability.python.distributions import independent  # noqa: F811
            from tensorflow_probability.python.distributions import normal  # noqa: F811

            dist = normal.Normal(loc=tf.zeros(shape, dtype), scale=tf.ones(shape, dtype))
            batch_ndims = tf.size(dist.batch_shape_tensor())
            return independent.Independent(dist, reinterpreted_batch_ndims=batch_ndims)

        with SafeModeScope(False):
            self._run(layer_class, kernel_posterior_fn)

    @parameterized.named_parameters(*[(cls.__name__, cls) for cls in DENSE_CLASSES])
    def test_keras_layer_registered_function(self, layer_class):
        """The same function, registered with Keras: loads in safe mode."""
        self._run(layer_class, registered_tfp_dense_kernel_posterior_fn)


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("layer_class", DENSE_CLASSES, ids=_name)
def test_dense_kl_penalty_kernel(layer_class, regime):
    """Port of TFP's ``testKLPenaltyKernel*`` (dense). Added: the value, as in the conv port."""
    layer = layer_class(units=2)
    inputs = tf.random.uniform([2, 3], seed=1)

    # No keys.
    assert len(layer.losses) == 0

    _, losses, _ = call_layer(layer, inputs, regime)

    # Yes keys.
    assert len(losses) == 1
    assert losses[0].shape == ()
    np.testing.assert_allclose(
        np.asarray(losses[0]),
        np.asarray(tfd.kl_divergence(layer.kernel_posterior, layer.kernel_prior)),
        rtol=1e-6,
    )


@pytest.mark.parametrize("fn_source", ["tfp", "tfprobr_bridge"])
@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("layer_class", DENSE_CLASSES, ids=_name)
def test_dense_kl_penalty_both(layer_class, regime, fn_source):
    """Port of TFP's ``testKLPenaltyBoth*`` (dense); ``fn_source`` as in the conv port."""
    util = tfp_layers_util if fn_source == "tfp" else tfprobr_bridge
    layer = layer_class(
        units=2,
        bias_posterior_fn=util.default_mean_field_normal_fn(),
        bias_prior_fn=util.default_multivariate_normal_fn,
    )
    inputs = tf.random.uniform([2, 3], seed=1)

    # No keys.
    assert len(layer.losses) == 0

    _, losses, _ = call_layer(layer, inputs, regime)

    # Yes keys.
    assert len(losses) == 2
    assert losses[0].shape == ()
    assert losses[1].shape == ()
    # Kernel first (6 terms), then bias (2 terms).
    np.testing.assert_allclose(
        [np.asarray(losses[0]), np.asarray(losses[1])],
        [
            np.asarray(tfd.kl_divergence(layer.kernel_posterior, layer.kernel_prior)),
            np.asarray(tfd.kl_divergence(layer.bias_posterior, layer.bias_prior)),
        ],
        rtol=1e-6,
    )


def _dense_set_up(layer_class, regime, batch_size, in_size, out_size, **kwargs):
    """Port of TFP's ``_testDenseSetUp`` (mocks, seeds and layer as written).

    Returns upstream's tuple plus the tensors the call exposed.
    """
    seed = Counter()
    inputs = tf.random.uniform([batch_size, in_size], seed=seed())

    kernel_size = [in_size, out_size]
    kernel_posterior = MockDistribution(
        loc=tf.random.uniform(kernel_size, seed=seed()),
        scale=tf.random.uniform(kernel_size, seed=seed()),
        result_log_prob=tf.random.uniform(kernel_size, seed=seed()),
        result_sample=tf.random.uniform(kernel_size, seed=seed()),
    )
    kernel_prior = MockDistribution(
        result_log_prob=tf.random.uniform(kernel_size, seed=seed()),
        result_sample=tf.random.uniform(kernel_size, seed=seed()),
    )
    kernel_divergence = MockKLDivergence(result=tf.random.uniform([], seed=seed()))

    bias_size = [out_size]
    bias_posterior = MockDistribution(
        result_log_prob=tf.random.uniform(bias_size, seed=seed()),
        result_sample=tf.random.uniform(bias_size, seed=seed()),
    )
    bias_prior = MockDistribution(
        result_log_prob=tf.random.uniform(bias_size, seed=seed()),
        result_sample=tf.random.uniform(bias_size, seed=seed()),
    )
    bias_divergence = MockKLDivergence(result=tf.random.uniform([], seed=seed()))

    layer = layer_class(
        units=out_size,
        kernel_posterior_fn=lambda *args: kernel_posterior,
        kernel_posterior_tensor_fn=lambda d: d.sample(seed=42),
        kernel_prior_fn=lambda *args: kernel_prior,
        kernel_divergence_fn=kernel_divergence,
        bias_posterior_fn=lambda *args: bias_posterior,
        bias_posterior_tensor_fn=lambda d: d.sample(seed=43),
        bias_prior_fn=lambda *args: bias_prior,
        bias_divergence_fn=bias_divergence,
        **kwargs,
    )

    outputs, kl_penalty, exposed = call_layer(layer, inputs, regime)
    return (
        kernel_posterior,
        kernel_prior,
        kernel_divergence,
        bias_posterior,
        bias_prior,
        bias_divergence,
        layer,
        inputs,
        outputs,
        kl_penalty,
        exposed,
    )


@pytest.mark.parametrize("regime", REGIMES)
def test_dense_reparameterization(regime):
    """Port of TFP's ``testDenseReparameterization``, as written (atol=0)."""
    batch_size, in_size, out_size = 2, 3, 4
    (
        kernel_posterior,
        kernel_prior,
        kernel_divergence,
        bias_posterior,
        bias_prior,
        bias_divergence,
        layer,
        inputs,
        outputs,
        kl_penalty,
        exposed,
    ) = _dense_set_up(DenseReparameterization, regime, batch_size, in_size, out_size)

    expected_outputs = (
        tf.matmul(inputs, kernel_posterior.result_sample) + bias_posterior.result_sample
    )

    assert_all_close(
        kernel_posterior.result_sample, exposed["kernel_posterior_tensor"], rtol=1e-6, atol=0.0
    )
    assert_all_close(
        bias_posterior.result_sample, exposed["bias_posterior_tensor"], rtol=1e-6, atol=0.0
    )
    assert_all_close(expected_outputs, outputs, rtol=1e-6, atol=0.0)
    assert_all_close(kernel_divergence.result, kl_penalty[0], rtol=1e-6, atol=0.0)
    assert_all_close(bias_divergence.result, kl_penalty[1], rtol=1e-6, atol=0.0)

    assert_divergence_called_with(
        kernel_divergence, [kernel_posterior, kernel_prior, kernel_posterior.result_sample]
    )
    assert_divergence_called_with(
        bias_divergence, [bias_posterior, bias_prior, bias_posterior.result_sample]
    )


@pytest.mark.parametrize("regime", REGIMES)
def test_dense_local_reparameterization(regime):
    """Port of TFP's ``testDenseLocalReparameterization``, as written (atol=0).

    Added: the affine distribution's loc and scale and its draw, directly.
    """
    batch_size, in_size, out_size = 2, 3, 4
    tf.random.set_seed(9068)
    (
        kernel_posterior,
        kernel_prior,
        kernel_divergence,
        bias_posterior,
        bias_prior,
        bias_divergence,
        layer,
        inputs,
        outputs,
        kl_penalty,
        exposed,
    ) = _dense_set_up(DenseLocalReparameterization, regime, batch_size, in_size, out_size)

    tf.random.set_seed(9068)
    expected_kernel_posterior_affine = normal.Normal(
        loc=tf.matmul(inputs, kernel_posterior.result_loc),
        scale=tf.matmul(inputs**2.0, kernel_posterior.result_scale**2) ** 0.5,
    )
    expected_kernel_posterior_affine_tensor = expected_kernel_posterior_affine.sample(seed=42)
    expected_outputs = expected_kernel_posterior_affine_tensor + bias_posterior.result_sample

    assert_all_close(
        expected_kernel_posterior_affine.loc, exposed["kernel_posterior_affine_loc"], atol=0.0
    )
    assert_all_close(
        expected_kernel_posterior_affine.scale, exposed["kernel_posterior_affine_scale"], atol=0.0
    )
    assert_all_close(
        expected_kernel_posterior_affine_tensor,
        exposed["kernel_posterior_affine_tensor"],
        atol=0.0,
    )
    assert exposed["kernel_posterior_tensor"] is None
    assert_all_close(
        bias_posterior.result_sample, exposed["bias_posterior_tensor"], rtol=1e-6, atol=0.0
    )
    assert_all_close(expected_outputs, outputs, rtol=1e-6, atol=0.0)
    assert_all_close(kernel_divergence.result, kl_penalty[0], rtol=1e-6, atol=0.0)
    assert_all_close(bias_divergence.result, kl_penalty[1], rtol=1e-6, atol=0.0)

    assert_divergence_called_with(kernel_divergence, [kernel_posterior, kernel_prior, None])
    assert_divergence_called_with(
        bias_divergence, [bias_posterior, bias_prior, bias_posterior.result_sample]
    )


@pytest.mark.parametrize("regime", REGIMES)
def test_dense_flipout(regime):
    """Port of TFP's ``testDenseFlipout``.

    Kept exactly (atol=0): the perturbation distribution and its draw
    (``sample(seed=42)`` after ``tf.random.set_seed(9069)``), the bias, the
    divergences and their arguments. Adapted: the outputs, which upstream
    recomputes with signs from ``SeedStream(layer.seed, salt='DenseFlipout')``;
    here ``assert_flipout_structure`` (module docstring), with TFP's sign
    shapes: (batch, in_size) and (batch, out_size).
    """
    batch_size, in_size, out_size = 2, 3, 4
    tf.random.set_seed(9069)
    (
        kernel_posterior,
        kernel_prior,
        kernel_divergence,
        bias_posterior,
        bias_prior,
        bias_divergence,
        layer,
        inputs,
        outputs,
        kl_penalty,
        exposed,
    ) = _dense_set_up(DenseFlipout, regime, batch_size, in_size, out_size, seed=44)

    tf.random.set_seed(9069)
    expected_kernel_posterior_affine = normal.Normal(
        loc=tf.zeros_like(kernel_posterior.result_loc), scale=kernel_posterior.result_scale
    )
    expected_kernel_posterior_affine_tensor = expected_kernel_posterior_affine.sample(seed=42)

    assert_all_close(
        expected_kernel_posterior_affine.loc, exposed["kernel_posterior_affine_loc"], atol=0.0
    )
    assert_all_close(
        expected_kernel_posterior_affine.scale, exposed["kernel_posterior_affine_scale"], atol=0.0
    )
    assert_all_close(
        expected_kernel_posterior_affine_tensor,
        exposed["kernel_posterior_affine_tensor"],
        atol=0.0,
    )
    assert exposed["kernel_posterior_tensor"] is None

    assert_flipout_structure(
        outputs,
        inputs,
        kernel_posterior.result_loc,
        exposed["kernel_posterior_affine_tensor"],
        bias_posterior.result_sample,
        tf.matmul,
        -1,
    )

    assert_all_close(
        bias_posterior.result_sample, exposed["bias_posterior_tensor"], rtol=1e-6, atol=0.0
    )
    assert_all_close(kernel_divergence.result, kl_penalty[0], rtol=1e-6, atol=0.0)
    assert_all_close(bias_divergence.result, kl_penalty[1], rtol=1e-6, atol=0.0)

    assert_divergence_called_with(kernel_divergence, [kernel_posterior, kernel_prior, None])
    assert_divergence_called_with(
        bias_divergence, [bias_posterior, bias_prior, bias_posterior.result_sample]
    )


@pytest.mark.parametrize("regime", REGIMES)
def test_random_dense_flipout(regime):
    """Port of TFP's ``testRandomDenseFlipout``, as written.

    Upstream's bound: fewer than ``out_size`` of the 8 outputs agree.
    """
    batch_size, in_size, out_size = 2, 3, 4
    seed = Counter()
    inputs = tf.random.uniform([batch_size, in_size], seed=seed())

    kernel_posterior = MockDistribution(
        loc=tf.random.uniform([in_size, out_size], seed=seed()),
        scale=tf.random.uniform([in_size, out_size], seed=seed()),
        result_log_prob=tf.random.uniform([in_size, out_size], seed=seed()),
        result_sample=tf.random.uniform([in_size, out_size], seed=seed()),
    )
    bias_posterior = MockDistribution(
        loc=tf.random.uniform([out_size], seed=seed()),
        scale=tf.random.uniform([out_size], seed=seed()),
        result_log_prob=tf.random.uniform([out_size], seed=seed()),
        result_sample=tf.random.uniform([out_size], seed=seed()),
    )

    def make(layer_seed):
        return DenseFlipout(
            units=out_size,
            kernel_posterior_fn=lambda *args: kernel_posterior,
            kernel_posterior_tensor_fn=lambda d: d.sample(seed=42),
            kernel_divergence_fn=None,
            bias_posterior_fn=lambda *args: bias_posterior,
            bias_posterior_tensor_fn=lambda d: d.sample(seed=43),
            bias_divergence_fn=None,
            seed=layer_seed,
        )

    layer_one, layer_two = make(44), make(45)
    outputs_one_ = np.asarray(call_layer(layer_one, inputs, regime)[0])
    outputs_two_ = np.asarray(call_layer(layer_two, inputs, regime)[0])

    assert np.sum(np.isclose(outputs_one_, outputs_two_)) < out_size


@pytest.mark.parametrize("layer_class", DENSE_CLASSES, ids=_name)
def test_dense_seed_drives_the_draws(layer_class):
    """``test_seed_drives_the_draws`` (ours, see there) for the dense layers."""
    inputs = tf.random.uniform([2, 3], seed=0)
    loc = tf.random.uniform([3, 4], seed=1)
    scale = tf.random.uniform([3, 4], seed=2)

    def kernel_posterior_fn(dtype, shape, name, trainable, add_variable_fn):
        del dtype, shape, name, trainable, add_variable_fn
        return tfd.Independent(tfd.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=2)

    def make(seed):
        return layer_class(
            units=4,
            kernel_posterior_fn=kernel_posterior_fn,
            kernel_divergence_fn=None,
            bias_posterior_fn=None,
            seed=seed,
        )

    outputs_one = np.asarray(make(44)(inputs))
    outputs_two = np.asarray(make(45)(inputs))
    assert np.sum(np.isclose(outputs_one, outputs_two)) < 4
    np.testing.assert_array_equal(np.asarray(make(44)(inputs)), outputs_one)


def test_dense_layers_in_sequential():
    """Port of TFP's ``testDenseLayersInSequential``.

    ``keras.Sequential`` for ``tf_keras.Sequential``; ``verbose=0``. Added:
    the three epochs' losses are finite.
    """
    data_size, batch_size, in_size, out_size = 10, 2, 3, 4
    x = np.random.uniform(-1.0, 1.0, size=(data_size, in_size)).astype(np.float32)
    y = np.random.uniform(-1.0, 1.0, size=(data_size, out_size)).astype(np.float32)

    model = keras.Sequential(
        [
            DenseReparameterization(6, activation=tf.nn.relu),
            DenseFlipout(6, activation=tf.nn.relu),
            DenseLocalReparameterization(out_size),
        ]
    )

    model.compile(loss="mse", optimizer="adam")
    history = model.fit(x, y, batch_size=batch_size, epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))

    batch_input = tf.random.uniform([batch_size, in_size])
    batch_output = np.asarray(model(batch_input))
    assert batch_output.shape == (batch_size, out_size)


def test_dense_gradients():
    """Port of TFP's ``testGradients`` (dense), as written; ``keras.Sequential``.

    Upstream's all-zero input gives the local reparameterization layer a zero
    output variance. Added: the 9 gradients are finite (see
    test_gradients_every_estimator).
    """
    net = keras.Sequential(
        [
            DenseReparameterization(1),
            DenseFlipout(1),
            DenseLocalReparameterization(1),
        ]
    )
    with tf.GradientTape() as tape:
        y = net(tf.zeros([1, 1]))
    grads = tape.gradient(y, net.trainable_variables)
    assert len(grads) == 9
    assert all(g is not None for g in grads)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)
