"""TensorFlow Probability's tests of ``DenseVariational``, ``VariableLayer`` and MADE, ported.

From ``tensorflow_probability/python/layers/``: ``dense_variational_v2_test.py`` and
``variable_input_test.py`` (every case), ``masked_autoregressive_test.py``
(``AutoregressiveTransform``'s doc-string case); from
``tensorflow_probability/python/bijectors/masked_autoregressive_test.py``: every
case of ``AutoregressiveNetworkTest``, ``ConditionalTests`` and
``MakeDenseAutoregressiveMasksTest``, and the flow cases whose shift and log
scale come from an ``AutoregressiveNetwork`` (``*LayerTest``, ``Gated``) for
``testNonBatchedBijector``, ``testBatchedBijector`` and ``testGradients``.

What is not ported, and why (TFP's own code, not a layer this package ports):
``GenMaskTest`` (``_gen_mask``, used only by TFP's TF1
``masked_autoregressive_default_template``), the template-based flow classes
(``MaskedAutoregressiveFlowTest``, ``...ShiftOnlyTest``, ``...UnrollLoopTest``,
``MaskedAutoregressive2DTest``, ``MaskedAutoregressiveFunnelTest``: ``tf.make_template``
is TF1), ``testVectorBijectorRaises`` / ``testRankChangingBijectorRaises`` (the
bijector's argument checks), and ``testMutuallyConsistent`` /
``testInvertMutuallyConsistent`` (statistical checks of TFP's bijector with 1e5 and
1e6 draws; the network's part, its autoregressive property, is asserted exactly by
``assertIsAutoregressive``).

Adaptations on top of ``upstream.py``'s rules and
``test_upstream_tfp_distribution_layers.py``'s (``distribution_of(x)`` for
``x.tensor_distribution``; Keras 3 spellings): upstream's regimes (graph,
eager, ``tf.function``) are eager and ``tf.function``; a case's own docstring
says what else differs.
"""

import itertools
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import tfprobr_bridge  # noqa: E402
from tfprobr_bridge import distribution_of  # noqa: E402
from tfprobr_bridge.layers import autoregressive as autoregressive_module  # noqa: E402

# Hundreds of model builds and fits: make test runs them, make test-fast leaves them out
# (tests/test_factory_other_layers.py and the valid-argument cases stay in the fast lane).
pytestmark = pytest.mark.slow

tfd = tfp.distributions
tfb = tfp.bijectors
tfk = keras
tfkl = keras.layers
dense_variational_v2 = tfprobr_bridge
distribution_layer = tfprobr_bridge
variable_input = tfprobr_bridge
masked_autoregressive = tfprobr_bridge

REGIMES = ["eager", "tf_function"]


# --------------------------------------------------------------------------
# dense_variational_v2_test.py
# --------------------------------------------------------------------------


def create_dataset():
    np.random.seed(43)
    n = 150
    w0 = 0.125
    b0 = 5.0
    x_range = [-20, 60]
    x_tst = np.linspace(*x_range).astype(np.float32)

    def s(x):
        g = (x - x_range[0]) / (x_range[1] - x_range[0])
        return 3 * (0.25 + g**2.0)

    x = (x_range[1] - x_range[0]) * np.random.rand(n) + x_range[0]
    eps = np.random.randn(n) * s(x)
    y = (w0 * x * (1.0 + np.sin(x)) + b0) + eps
    x = x[..., np.newaxis]
    x_tst = x_tst[..., np.newaxis]

    return y, x, x_tst


def posterior_mean_field(kernel_size, bias_size=0, dtype=None):
    n = kernel_size + bias_size
    c = np.log(np.expm1(1.0))
    return tfk.Sequential([
        variable_input.VariableLayer(2 * n, dtype=dtype),
        distribution_layer.DistributionLambda(lambda t: tfd.Independent(
            tfd.Normal(loc=t[..., :n], scale=1e-5 + tf.nn.softplus(c + t[..., n:])),
            reinterpreted_batch_ndims=1)),
    ])


def prior_trainable(kernel_size, bias_size=0, dtype=None):
    n = kernel_size + bias_size
    return tfk.Sequential([
        variable_input.VariableLayer(n, dtype=dtype),
        distribution_layer.DistributionLambda(
            lambda t: tfd.Independent(tfd.Normal(loc=t, scale=1), reinterpreted_batch_ndims=1)),
    ])


negloglik = lambda y, rv_y: -rv_y.log_prob(y)  # noqa: E731


@pytest.mark.parametrize("regime", ["eager", "tf_function"])
def test_dense_variational_end_to_end(regime):
    """Port of ``DenseVariationalLayerTest.test_end_to_end``.

    Keras 3 adaptations: upstream's legacy optimizer (graph mode) is Keras 3's ``Adam``;
    the regimes are ``fit`` (a ``tf.function``) with ``run_eagerly`` True and False;
    ``TensorShape.as_list()`` is a tuple. Upstream's variable *names* come from
    ``tf.name_scope``; a Keras 3 variable's name is its own and its ``path`` says where
    it was made, so ``'/posterior/'`` and ``'/prior/'`` are looked for in the paths.
    Added: the posterior moves."""
    # Get dataset.
    y, x, x_tst = create_dataset()

    layer = dense_variational_v2.DenseVariational(1, posterior_mean_field, prior_trainable)

    model = tfk.Sequential([
        layer,
        distribution_layer.DistributionLambda(lambda t: tfd.Normal(loc=t, scale=1)),
    ])

    optimizer = tfk.optimizers.Adam(learning_rate=0.05)
    # Do inference.
    model.compile(optimizer=optimizer, loss=negloglik, run_eagerly=regime == "eager")
    model.fit(x, y, epochs=2, verbose=False)

    assert len(model.layers) == 2
    assert len(model.layers[0].variables) == 2
    assert len(model.layers[1].variables) == 0

    posterior, prior = model.layers[0].variables
    assert prior.path != posterior.path
    assert "/posterior/" in posterior.path
    assert "/prior/" in prior.path
    assert tuple(posterior.shape) == (4,) and tuple(prior.shape) == (2,)
    assert not np.allclose(posterior.numpy(), 0.0)

    # Check the output_shape.
    expected_output_shape = layer.compute_output_shape((None, x.shape[-1]))
    assert tuple(expected_output_shape) == (None, 1)

    # Profit.
    yhat = model(x_tst)
    assert isinstance(distribution_of(yhat), tfd.Distribution)


# --------------------------------------------------------------------------
# variable_input_test.py
# --------------------------------------------------------------------------


def _check_variable_input_model(model, offset, dist_facts):
    # Check the weights.
    assert len(model.weights) == 2

    # Check the VariableLayer layer.
    assert tf.as_dtype(model.weights[0].dtype) is tf.float64
    assert tuple(model.layers[offset].weights[0].shape) == (2, 3, 4)
    assert not model.layers[offset].trainable
    assert not model.layers[offset].weights[0].trainable

    # Check the Dense layer.
    assert tf.as_dtype(model.weights[1].dtype) is tf.float64
    assert tuple(model.layers[offset + 1].weights[0].shape) == (4, 5)
    assert model.layers[offset + 1].trainable
    assert model.layers[offset + 1].weights[0].trainable

    # Check the distribution.
    is_independent, dtype, batch_shape, event_shape = dist_facts
    assert is_independent
    assert dtype is tf.float64
    assert tuple(batch_shape) == (3,)
    assert tuple(event_shape) == (5,)


def _distribution_facts(model, regime, x):
    """Instantiate the model (as a TFP distribution); read what upstream checks of it.

    In a ``tf.function`` the facts are read inside: a function's outputs are new
    tensors, without the distribution."""

    def facts(x):
        dist = model(x)
        d = distribution_of(dist)
        return (isinstance(d, tfd.Independent), tf.as_dtype(dist.dtype),
                d.batch_shape, d.event_shape)

    if regime == "tf_function":
        read = {}

        @tf.function
        def run(x):
            read["facts"] = facts(x)
            return x

        run(x)
        return read["facts"]
    return facts(x)


@pytest.mark.parametrize("regime", REGIMES)
def test_variable_input_sequential_api(regime):
    """Port of ``VariableInputLayerTest.test_sequential_api`` (a scalar input, as written)."""
    # Create a trainable distribution using the Sequential API.
    model = tfk.models.Sequential([
        variable_input.VariableLayer(
            shape=[2, 3, 4], dtype=tf.float64,
            trainable=False),  # You'd probably never want this in IRL.
        # The Dense serves no real purpose; it will change the event_shape.
        tfkl.Dense(5, use_bias=False, dtype=tf.float64),
        distribution_layer.DistributionLambda(
            lambda t: tfd.Independent(tfd.Normal(loc=t[0], scale=t[1]),
                                      reinterpreted_batch_ndims=1),
            dtype=tf.float64),
    ])
    _check_variable_input_model(model, 0, _distribution_facts(model, regime, tf.zeros([])))


@pytest.mark.parametrize("regime", REGIMES)
def test_variable_input_functional_api(regime):
    """Port of ``VariableInputLayerTest.test_functional_api``. Upstream calls the model on
    ``tf.zeros([])``; a Keras 3 functional model refuses an input without the batch axis of
    its ``Input(shape=())``, so it gets one scalar, ``tf.zeros([1])`` (the VariableLayer
    ignores it either way)."""
    # Create a trainable distribution using the functional API.
    dummy_input = tfk.Input(shape=())
    x = variable_input.VariableLayer(
        shape=[2, 3, 4], dtype=tf.float64,
        trainable=False,  # You'd probably never want this in IRL.
    )(dummy_input)
    # The Dense serves no real purpose; it will change the event_shape.
    x = tfkl.Dense(5, use_bias=False, dtype=tf.float64)(x)
    x = distribution_layer.DistributionLambda(
        lambda t: tfd.Independent(tfd.Normal(loc=t[0], scale=t[1]),
                                  reinterpreted_batch_ndims=1),
        dtype=tf.float64)(x)
    model = tfk.Model(dummy_input, x)
    _check_variable_input_model(model, 1, _distribution_facts(model, regime, tf.zeros([1])))


# --------------------------------------------------------------------------
# layers/masked_autoregressive_test.py
# --------------------------------------------------------------------------


@pytest.mark.parametrize("regime", REGIMES)
def test_autoregressive_transform_doc_string(regime):
    """Port of ``AutoregressiveTransformTest.test_doc_string``.

    Upstream calls the model on ``np.zeros((0,))``: a tf_keras model took an input
    without a batch axis. A Keras 3 model adds the missing axis at the end, so the
    call here has the batch axis upstream's ``(0,)`` stands for: one example of no
    features, ``(1, 0)``; the shapes of the draws keep it (``(4, 1, 2)`` for
    upstream's ``(4, 2)``, and log-probs broadcast to ``(5, 3)`` as upstream)."""
    # Generate data -- as in Figure 1 in [Papamakarios et al. (2017)][1]).
    n = 2000
    x2 = np.random.randn(n) * 2.0
    x1 = np.random.randn(n) + (x2 * x2 / 4.0)
    data = np.stack([x1, x2], axis=-1)

    # Density estimation with MADE.
    model = tfk.Sequential([
        # NOTE: This model takes no input and outputs a Distribution.
        tfkl.Input(shape=(0,), dtype=tf.float32),
        # Given the empty input, return a standard normal distribution with
        # matching batch_shape and event_shape of [2].
        distribution_layer.DistributionLambda(
            lambda t: tfd.MultivariateNormalDiag(
                loc=tf.zeros(tf.concat([tf.shape(t)[:-1], [2]], axis=0)),
                scale_diag=[1.0, 1.0])),
        # Transform the standard normal distribution with event_shape of [2] to
        # the target distribution with event_shape of [2].
        masked_autoregressive.AutoregressiveTransform(
            masked_autoregressive.AutoregressiveNetwork(
                params=2, hidden_units=[10], activation="relu")),
    ])

    model.compile(optimizer="adam", loss=lambda y, rv_y: -rv_y.log_prob(y),
                  run_eagerly=regime == "eager")

    history = model.fit(x=np.zeros((n, 0)), y=data, batch_size=25, epochs=1,
                        steps_per_epoch=1,  # Usually n // 25,
                        verbose=0)
    assert np.isfinite(history.history["loss"][0])

    distribution = model(np.zeros((1, 0)))
    assert distribution.sample(4).numpy().shape == (4, 1, 2)
    assert distribution.log_prob(np.zeros((5, 3, 2), dtype=np.float32)).numpy().shape == (5, 3)
    # Upstream's shapes, from the distribution without the batch axis.
    unbatched = tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag(loc=tf.zeros([2]), scale_diag=[1.0, 1.0]),
        distribution_of(distribution).bijector)
    assert unbatched.sample(4).numpy().shape == (4, 2)
    assert unbatched.log_prob(np.zeros((5, 3, 2), dtype=np.float32)).numpy().shape == (5, 3)


# --------------------------------------------------------------------------
# bijectors/masked_autoregressive_test.py: MakeDenseAutoregressiveMasksTest
# --------------------------------------------------------------------------


def _make_dense_autoregressive_masks(params, event_size, hidden_units,
                                     input_order="left-to-right", hidden_degrees="equal"):
    """Upstream's function is TFP's; this package's network makes its masks at build."""
    order = autoregressive_module._input_order(event_size, input_order)
    return autoregressive_module._masks(params, event_size, hidden_units, order, hidden_degrees)


def test_random_made():
    """Port of ``testRandomMade``."""
    hidden_size = 8
    num_hidden = 3
    params = 2
    event_size = 4

    def random_made(x):
        masks = _make_dense_autoregressive_masks(
            params=params, event_size=event_size, hidden_units=[hidden_size] * num_hidden)
        output_sizes = [hidden_size] * num_hidden
        input_size = event_size
        for (mask, output_size) in zip(masks, output_sizes):
            mask = tf.cast(mask, tf.float32)
            x = tf.matmul(x, np.random.randn(input_size, output_size).astype(np.float32) * mask)
            x = tf.nn.relu(x)
            input_size = output_size
        x = tf.matmul(
            x, np.random.randn(input_size, params * event_size).astype(np.float32) * masks[-1])
        x = tf.reshape(x, [-1, event_size, params])
        return x

    y = random_made(tf.zeros([1, event_size]))
    assert [1, event_size, params] == y.shape.as_list()


def test_masks_left_to_right():
    """Port of ``testLeftToRight``."""
    masks = _make_dense_autoregressive_masks(
        params=2, event_size=3, hidden_units=[4, 4], input_order="left-to-right",
        hidden_degrees="equal")
    assert len(masks) == 3
    np.testing.assert_array_equal([[1, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]], masks[0])
    np.testing.assert_array_equal(
        [[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]], masks[1])
    np.testing.assert_array_equal([
        [0, 0, 1, 1, 1, 1],
        [0, 0, 1, 1, 1, 1],
        [0, 0, 0, 0, 1, 1],
        [0, 0, 0, 0, 1, 1],
    ], masks[2])


def test_masks_random():
    """Port of ``testRandom``. Upstream seeds TFP's mask function (``seed=1``) and pins its
    masks; TFP's network (as this one) takes no seed and draws from NumPy's global
    generator, so the masks are checked on what makes them right: input ``i`` reaches
    output ``j`` only through hidden units, and only if ``order[i] < order[j]``."""
    np.random.seed(1)
    for _ in range(5):
        order = autoregressive_module._input_order(3, "random")
        masks = autoregressive_module._masks(2, 3, [4, 4], order, "random")
        assert len(masks) == 3
        assert [m.shape for m in masks] == [(3, 4), (4, 4), (4, 6)]
        reach = (masks[0] @ masks[1] @ masks[2]).reshape(3, 3, 2)  # [input, output, param]
        allowed = order[:, None] < order[None, :]
        assert np.all((reach > 0) <= allowed[..., None])


def test_masks_right_to_left():
    """Port of ``testRightToLeft``."""
    masks = _make_dense_autoregressive_masks(
        params=2, event_size=3, hidden_units=[4, 4],
        input_order=list(reversed(range(1, 4))), hidden_degrees="equal")
    assert len(masks) == 3
    np.testing.assert_array_equal([[0, 0, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1]], masks[0])
    np.testing.assert_array_equal(
        [[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]], masks[1])
    np.testing.assert_array_equal([
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
    ], masks[2])


def test_masks_uneven():
    """Port of ``testUneven``."""
    masks = _make_dense_autoregressive_masks(
        params=2, event_size=3, hidden_units=[5, 3], input_order="left-to-right",
        hidden_degrees="equal")
    assert len(masks) == 3
    np.testing.assert_array_equal(
        [[1, 1, 1, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], masks[0])
    np.testing.assert_array_equal(
        [[1, 1, 1], [1, 1, 1], [1, 1, 1], [0, 0, 1], [0, 0, 1]], masks[1])
    np.testing.assert_array_equal([
        [0, 0, 1, 1, 1, 1],
        [0, 0, 1, 1, 1, 1],
        [0, 0, 0, 0, 1, 1],
    ], masks[2])


def test_masks_are_tfps():
    """Added: the masks equal TFP's own for the deterministic orders."""
    from tensorflow_probability.python.bijectors import masked_autoregressive as tfp_made

    for order, hidden in itertools.product(["left-to-right", "right-to-left", [2, 3, 1]],
                                           [[], [4], [5, 3], [2, 7, 2]]):
        ours = _make_dense_autoregressive_masks(2, 3, hidden, order, "equal")
        theirs = tfp_made._make_dense_autoregressive_masks(2, 3, hidden, order, "equal")
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# bijectors/masked_autoregressive_test.py: the flow, with the network's shift and scale
# --------------------------------------------------------------------------


def _masked_autoregressive_2d_template(base_template, event_shape):

    def wrapper(x):
        x_flat = tf.reshape(x, tf.concat([tf.shape(x)[:-len(event_shape)], [-1]], -1))
        t = base_template(x_flat)
        if tf.is_tensor(t):
            x_shift, x_log_scale = tf.unstack(t, axis=-1)
        else:
            x_shift, x_log_scale = t
        return tf.reshape(x_shift, tf.shape(x)), tf.reshape(x_log_scale, tf.shape(x))

    return wrapper


def _masked_autoregressive_shift_and_log_scale_fn(hidden_units, shift_only=False,
                                                  activation="relu", name=None, **kwargs):
    params = 1 if shift_only else 2
    layer = masked_autoregressive.AutoregressiveNetwork(
        params, hidden_units=hidden_units, activation=activation, name=name, **kwargs)

    if shift_only:
        return lambda x: (layer(x)[..., 0], None)

    return layer


def _masked_autoregressive_gated_bijector_fn(hidden_units, activation="relu", name=None,
                                             **kwargs):
    layer = masked_autoregressive.AutoregressiveNetwork(
        2, hidden_units=hidden_units, activation=activation, name=name, **kwargs)

    def _bijector_fn(x):
        if x.shape.rank == 1:
            x = x[tf.newaxis, ...]
            reshape_output = lambda x: x[0]  # noqa: E731
        else:
            reshape_output = lambda x: x  # noqa: E731

        shift, logit_gate = tf.unstack(layer(x), axis=-1)
        shift = reshape_output(shift)
        logit_gate = reshape_output(logit_gate)
        gate = tf.nn.sigmoid(logit_gate)
        return tfb.Shift(shift=(1.0 - gate) * shift)(tfb.Scale(scale=gate))

    return _bijector_fn


# Upstream's classes whose network is an AutoregressiveNetwork: (name, event_shape, kwargs).
FLOW_CASES = {
    "MaskedAutoregressiveFlowShiftOnlyLayerTest": ([4], lambda: {
        "shift_and_log_scale_fn": _masked_autoregressive_shift_and_log_scale_fn(
            hidden_units=[2], shift_only=True),
        "is_constant_jacobian": True,
    }),
    "MaskedAutoregressiveFlowUnrollLoopLayerTest": ([4], lambda: {
        "shift_and_log_scale_fn": _masked_autoregressive_shift_and_log_scale_fn(
            hidden_units=[10, 10], activation="relu"),
        "is_constant_jacobian": False,
        "unroll_loop": True,
    }),
    "MaskedAutoregressiveGatedTest": ([4], lambda: {
        "bijector_fn": _masked_autoregressive_gated_bijector_fn(
            hidden_units=[10, 10], activation="relu"),
        "is_constant_jacobian": False,
    }),
    "MaskedAutoregressive2DLayerTest": ([3, 2], lambda: {
        "shift_and_log_scale_fn": _masked_autoregressive_2d_template(
            _masked_autoregressive_shift_and_log_scale_fn(hidden_units=[6], shift_only=False),
            [3, 2]),
        "is_constant_jacobian": False,
        "event_ndims": 2,
    }),
}


def _run_flow(case, regime, batched):
    event_shape, kwargs = FLOW_CASES[case]
    size = int(np.prod(event_shape))
    if batched:
        x_ = np.arange(4 * size).astype(np.float32).reshape([4] + event_shape) / 10.0
    else:
        x_ = np.arange(size).astype(np.float32).reshape(event_shape)
    ma = tfb.MaskedAutoregressiveFlow(validate_args=True, **kwargs())

    def run(x):
        forward_x = ma.forward(x)
        # Use identity to invalidate cache.
        inverse_y = ma.inverse(tf.identity(forward_x))
        forward_inverse_y = ma.forward(inverse_y)
        fldj = ma.forward_log_det_jacobian(x, event_ndims=len(event_shape))
        # Use identity to invalidate cache.
        ildj = ma.inverse_log_det_jacobian(tf.identity(forward_x), event_ndims=len(event_shape))
        return forward_x, inverse_y, forward_inverse_y, ildj, fldj

    if regime == "tf_function":
        run = tf.function(run)
    outputs = [np.asarray(v) for v in run(tf.constant(x_))]
    assert ma.name.startswith("masked_autoregressive_flow")
    return x_, outputs


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("case", list(FLOW_CASES))
def test_flow_non_batched_bijector(case, regime):
    """Port of ``testNonBatchedBijector``."""
    x_, (forward_x_, inverse_y_, forward_inverse_y_, ildj_, fldj_) = _run_flow(
        case, regime, batched=False)
    np.testing.assert_allclose(forward_inverse_y_, forward_x_, rtol=1e-6, atol=0.0)
    np.testing.assert_allclose(inverse_y_, x_, rtol=1e-4, atol=0.0)
    np.testing.assert_allclose(-fldj_, ildj_, rtol=1e-6, atol=0.0)


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("case", list(FLOW_CASES))
def test_flow_batched_bijector(case, regime):
    """Port of ``testBatchedBijector``."""
    x_, (forward_x_, inverse_y_, forward_inverse_y_, ildj_, fldj_) = _run_flow(
        case, regime, batched=True)
    np.testing.assert_allclose(forward_inverse_y_, forward_x_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(inverse_y_, x_, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(-fldj_, ildj_, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", list(FLOW_CASES))
def test_flow_gradients(case):
    """Port of ``testGradients``. Added: the gradient reaches the network's weights."""
    event_shape, kwargs = FLOW_CASES[case]
    maf = tfb.MaskedAutoregressiveFlow(validate_args=True, **kwargs())

    def _transform(x):
        y = maf.forward(x)
        return maf.inverse(tf.identity(y))

    _, grad = tfp.math.value_and_gradient(_transform, tf.zeros(event_shape))
    assert grad is not None
    x = tf.ones(event_shape)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(maf.forward(x))
    variables = tape.watched_variables()
    assert variables and all(g is not None for g in tape.gradient(loss, variables))


# --------------------------------------------------------------------------
# bijectors/masked_autoregressive_test.py: AutoregressiveNetworkTest
# --------------------------------------------------------------------------


def _count_trainable_params(layer):
    ret = 0
    for w in layer.trainable_weights:
        ret += np.prod(w.shape)
    return ret


def assert_is_autoregressive(f, event_size, order):
    input_order = None
    if isinstance(order, str):
        if order == "left-to-right":
            input_order = range(event_size)
        elif order == "right-to-left":
            input_order = range(event_size - 1, -1, -1)
    elif np.all(np.sort(order) == np.arange(1, event_size + 1)):
        input_order = list(np.array(order) - 1)
    if input_order is None:
        raise ValueError("Invalid input order: '{}'.".format(order))

    # Test that if we change dimension `i` of the input, then the only changed
    # dimensions `j` of the output are those with larger `input_order[j]`.
    for i in range(event_size):
        x = np.random.randn(event_size)
        delta = np.zeros(event_size)
        delta[i] = np.random.randn()
        diff = np.asarray(f(x + delta) - f(x))
        mask = [[input_order[i] >= input_order[j]] for j in range(event_size)]
        np.testing.assert_allclose(mask * diff, np.zeros_like(diff), atol=0.0, rtol=1e-6)


def test_layer_right_to_left_float64():
    made = masked_autoregressive.AutoregressiveNetwork(
        params=3, event_shape=4, activation=None, input_order="right-to-left",
        dtype=tf.float64, hidden_degrees="random", hidden_units=[10, 7, 10])
    assert tuple(made(np.zeros(4, dtype=np.float64)).shape) == (4, 3)
    assert made(np.zeros(4, dtype=np.float64)).dtype == "float64"
    assert _count_trainable_params(made) == 5 * 10 + 11 * 7 + 8 * 10 + 11 * 12
    assert_is_autoregressive(made, event_size=4, order="right-to-left")


def test_layer_callable_activation():
    made = masked_autoregressive.AutoregressiveNetwork(
        params=2, activation=tf.math.exp, input_order="random",
        kernel_regularizer=tfk.regularizers.l2(0.1), bias_initializer="ones",
        hidden_units=[9], hidden_degrees="equal")
    assert tuple(made(np.zeros((3, 5))).shape) == (3, 5, 2)
    assert _count_trainable_params(made) == 6 * 9 + 10 * 10
    assert_is_autoregressive(made, event_size=5, order=made._input_order)


def test_layer_smaller_hidden_layers_than_input():
    made = masked_autoregressive.AutoregressiveNetwork(
        params=1, event_shape=9, activation="relu", use_bias=False,
        bias_regularizer=tfk.regularizers.l1(0.5), bias_constraint=tf.math.abs,
        input_order="right-to-left", hidden_units=[5, 5])
    assert tuple(made(np.zeros(9)).shape) == (9, 1)
    assert _count_trainable_params(made) == 9 * 5 + 5 * 5 + 5 * 9
    assert_is_autoregressive(made, event_size=9, order="right-to-left")


def test_layer_no_hidden_units():
    made = masked_autoregressive.AutoregressiveNetwork(
        params=4, event_shape=3, use_bias=False, hidden_degrees="random",
        kernel_constraint="unit_norm")
    assert tuple(made(np.zeros((2, 2, 5, 3))).shape) == (2, 2, 5, 3, 4)
    assert _count_trainable_params(made) == 3 * 12
    assert_is_autoregressive(made, event_size=3, order="left-to-right")


def test_layer_v2_kernel_initializer():
    init = tfk.initializers.GlorotNormal()
    made = masked_autoregressive.AutoregressiveNetwork(
        params=2, event_shape=4, activation="relu", hidden_units=[5, 5],
        kernel_initializer=init)
    assert tuple(made(np.zeros(4)).shape) == (4, 2)
    assert _count_trainable_params(made) == 5 * 5 + 6 * 5 + 6 * 8
    assert_is_autoregressive(made, event_size=4, order="left-to-right")


class _LogProb(tfkl.Layer):
    """``distribution.log_prob(inputs)`` as a Keras 3 layer that owns the network.

    Upstream builds ``tfk.Model(x_, distribution.log_prob(x_))``: tf_keras turned TF ops on
    its symbolic inputs into layers and tracked the variables they used. Keras 3 refuses TF
    ops on ``KerasTensor``s; a computation in a functional model is a layer, and a layer
    trains the variables of the layers it holds."""

    def __init__(self, distribution, made, conditional=False, **kwargs):
        super().__init__(**kwargs)
        self.distribution = distribution
        self.made = made
        self.conditional = conditional

    def build(self, input_shape):
        # Keras 3 cannot make variables while it traces a call for shapes, so the layer
        # builds the network it holds (Keras's rule for a layer's sublayers).
        if self.conditional:
            self.made.build(input_shape[0])
        elif not self.made.built:
            self.made.build(input_shape[-1:])

    def call(self, inputs):
        if self.conditional:
            x, c = inputs
            return self.distribution.log_prob(x, bijector_kwargs={"conditional_input": c})
        return self.distribution.log_prob(inputs)

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if self.conditional else input_shape
        return tuple(shape[:1])


def test_made_doc_string():
    """Port of ``AutoregressiveNetworkTest.test_doc_string``: TF1's ``AdamOptimizer`` is Keras
    3's ``Adam``; the log-prob is a layer (see ``_LogProb``)."""
    # Generate data.
    n = 2000
    x2 = np.random.randn(n).astype(dtype=np.float32) * 2.0
    x1 = np.random.randn(n).astype(dtype=np.float32) + (x2 * x2 / 4.0)
    data = np.stack([x1, x2], axis=-1)

    # Density estimation with MADE.
    made = masked_autoregressive.AutoregressiveNetwork(params=2, hidden_units=[10, 10])

    distribution = tfd.TransformedDistribution(
        distribution=tfd.Sample(tfd.Normal(0.0, 1.0), [2]),
        bijector=tfb.MaskedAutoregressiveFlow(made))

    # Construct and fit model.
    x_ = tfkl.Input(shape=(2,), dtype=tf.float32)
    log_prob_ = _LogProb(distribution, made)(x_)
    model = tfk.Model(x_, log_prob_)

    model.compile(optimizer=tfk.optimizers.Adam(), loss=lambda _, log_prob: -log_prob)

    batch_size = 25
    model.fit(x=data, y=np.zeros((n, 0), dtype=np.float32), batch_size=batch_size, epochs=1,
              steps_per_epoch=1,  # Usually `n // batch_size`.
              shuffle=True, verbose=0)
    assert len(model.trainable_variables) == 6

    # Use the fitted distribution.
    assert tuple(distribution.sample((3, 1)).shape) == (3, 1, 2)
    assert tuple(distribution.log_prob(np.ones((3, 2), dtype=np.float32)).shape) == (3,)


@pytest.mark.slow
def test_made_doc_string_2():
    """Port of ``AutoregressiveNetworkTest.test_doc_string_2`` (conditional), as written;
    TFP's test seed stream is a fixed seed."""
    n = 2000
    c = np.r_[np.zeros(n // 2), np.ones(n // 2)]
    mean_0, mean_1 = 0, 5
    x = np.r_[np.random.randn(n // 2).astype(dtype=np.float32) + mean_0,
              np.random.randn(n // 2).astype(dtype=np.float32) + mean_1]
    shuffle_idxs = np.arange(n)
    np.random.shuffle(shuffle_idxs)
    x = x[shuffle_idxs]
    c = c[shuffle_idxs]

    # Density estimation with MADE.
    made = masked_autoregressive.AutoregressiveNetwork(
        params=2, hidden_units=[1], event_shape=(1,),
        kernel_initializer=tfk.initializers.VarianceScaling(0.1, seed=42),
        conditional=True, conditional_event_shape=(1,))

    distribution = tfd.TransformedDistribution(
        distribution=tfd.Sample(tfd.Normal(loc=0.0, scale=1.0), sample_shape=[1]),
        bijector=tfb.MaskedAutoregressiveFlow(made))

    # Construct and fit model.
    x_ = tfkl.Input(shape=(1,), dtype=tf.float32)
    c_ = tfkl.Input(shape=(1,), dtype=tf.float32)
    log_prob_ = _LogProb(distribution, made, conditional=True)([x_, c_])
    model = tfk.Model([x_, c_], log_prob_)

    model.compile(optimizer=tfk.optimizers.Adam(learning_rate=0.1),
                  loss=lambda _, log_prob: -log_prob)

    batch_size = 25
    model.fit(x=[x, c], y=np.zeros((n, 0), dtype=np.float32), batch_size=batch_size, epochs=3,
              steps_per_epoch=n // batch_size, shuffle=False, verbose=0)

    # Use the fitted distribution to sample condition on c = 1
    n_samples = 1000
    cond = 1
    samples = distribution.sample(
        (n_samples,), bijector_kwargs={"conditional_input": cond * np.ones((n_samples, 1))},
        seed=43)
    # Assert mean is close to conditional mean
    assert abs(float(np.mean(samples[..., 0])) - mean_1) <= 1.0


def _images_case(event_shape, reshaped_images, sample_shape, ndims, sample0_shape):
    n = reshaped_images.shape[0]
    made = masked_autoregressive.AutoregressiveNetwork(
        params=1, event_shape=event_shape, hidden_units=[20, 20], activation="relu")

    distribution = tfd.Autoregressive(
        lambda x: tfd.Independent(
            tfd.Bernoulli(logits=tf.unstack(made(x), axis=-1)[0], dtype=tf.float32),
            reinterpreted_batch_ndims=ndims),
        sample0=tf.zeros(sample0_shape, dtype=tf.float32))

    # Construct and fit model.
    x_ = tfkl.Input(shape=reshaped_images.shape[1:], dtype=tf.float32)
    log_prob_ = _LogProb(distribution, made)(x_)
    model = tfk.Model(x_, log_prob_)

    model.compile(optimizer=tfk.optimizers.Adam(), loss=lambda _, log_prob: -log_prob)

    batch_size = 10
    model.fit(x=reshaped_images, y=np.zeros((n, 0), dtype=np.float32), batch_size=batch_size,
              epochs=1, steps_per_epoch=1,  # Usually `n // batch_size`.
              shuffle=True, verbose=0)
    return distribution


@pytest.mark.slow
def test_made_doc_string_images_case_1():
    """Port of ``test_doc_string_images_case_1``."""
    # Generate fake images.
    images = np.random.choice([0, 1], size=(100, 8, 8, 3))
    n, width, height, channels = images.shape

    # Reshape images to achieve desired autoregressivity.
    event_shape = [width * height * channels]
    reshaped_images = np.reshape(images, [n, width * height * channels]).astype(np.float32)

    distribution = _images_case(event_shape, reshaped_images, None, 1, event_shape)

    # Use the fitted distribution.
    assert list(distribution.sample().shape) == event_shape
    assert tuple(distribution.log_prob(reshaped_images).shape) == (n,)


@pytest.mark.slow
def test_made_doc_string_images_case_2():
    """Port of ``test_doc_string_images_case_2``."""
    images = np.random.choice([0, 1], size=(100, 8, 8, 3))
    n, width, height, channels = images.shape

    # Reshape images to achieve desired autoregressivity.
    reshaped_images = np.transpose(np.reshape(images, [n, width * height, channels]),
                                   axes=[0, 2, 1]).astype(np.float32)

    distribution = _images_case([width * height], reshaped_images, None, 2,
                                [channels, width * height])

    # Use the fitted distribution.
    assert tuple(distribution.sample(7).shape) == (7, channels, width * height)
    assert tuple(distribution.log_prob(reshaped_images).shape) == (n,)


# --------------------------------------------------------------------------
# bijectors/masked_autoregressive_test.py: ConditionalTests
# --------------------------------------------------------------------------


def test_conditional_missing_event_shape():
    with pytest.raises(ValueError,
                       match="`event_shape` must be provided when `conditional` is True"):
        masked_autoregressive.AutoregressiveNetwork(
            params=2, conditional=True, conditional_event_shape=[4])


def test_conditional_missing_conditional_shape():
    with pytest.raises(
            ValueError,
            match="`conditional_event_shape` must be provided when `conditional` is True"):
        masked_autoregressive.AutoregressiveNetwork(params=2, conditional=True, event_shape=[4])


def test_conditional_incorrect_layers():
    """Upstream's pattern names "first_layers", a value TFP's message offers but its layer
    refuses (it takes "first_layer"); the message here names the value it takes."""
    with pytest.raises(ValueError, match='`conditional_input_layers` must be "first_layer" or '
                                         '"all_layers"'):
        masked_autoregressive.AutoregressiveNetwork(
            params=2, conditional=True, event_shape=[4], conditional_event_shape=[4],
            conditional_input_layers="non-existent-option")


def test_conditional_false_with_shape():
    with pytest.raises(ValueError,
                       match="`conditional_event_shape` passed but `conditional` is set to False."):
        masked_autoregressive.AutoregressiveNetwork(params=2, conditional_event_shape=[4])


def test_conditional_wrong_shape():
    with pytest.raises(ValueError,
                       match="Parameter `conditional_event_shape` must describe a rank-1 shape"):
        masked_autoregressive.AutoregressiveNetwork(
            params=2, conditional=True, event_shape=[4], conditional_event_shape=[10, 4])


def test_conditional_missing_tensor():
    with pytest.raises(ValueError, match="`conditional_input` must be passed as a named argument"):
        made = masked_autoregressive.AutoregressiveNetwork(
            params=2, event_shape=[4], conditional=True, conditional_event_shape=[6])
        made(np.random.normal(0, 1, (1, 4)))


@pytest.mark.parametrize(
    "input_shape,cond_shape",
    list(itertools.product([[3], [1, 3], [2, 3], [1, 2, 3], [2, 1, 3], [2, 2, 3]],
                           [[4], [1, 4], [2, 4], [1, 2, 4], [2, 1, 4], [2, 2, 4]])),
    ids=lambda shape: "x".join(map(str, shape)))
def test_conditional_broadcasting(input_shape, cond_shape):
    made = masked_autoregressive.AutoregressiveNetwork(
        params=2, event_shape=[3], conditional=True, conditional_event_shape=[4])

    made_shape = tf.shape(made(tf.ones(input_shape), conditional_input=tf.ones(cond_shape)))
    broadcast_shape = tf.concat(
        [tf.broadcast_dynamic_shape(cond_shape[:-1], input_shape[:-1]), input_shape[-1:]],
        axis=0)
    np.testing.assert_array_equal(tf.concat([broadcast_shape, [2]], axis=0), made_shape)
