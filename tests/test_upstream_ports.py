"""Upstream test suites, ported to tfprobr_bridge's variational layers.

Four parts:

1. TensorFlow Probability's
   ``tensorflow_probability/python/layers/conv_variational_test.py``: every
   case, for every class it covers (``Convolution{1,2,3}DReparameterization``
   and ``Convolution{1,2,3}DFlipout``), and the same cases for this package's
   ``Conv{1,2,3}DLocalReparameterization`` (TFP has no such class) wherever the
   estimator permits.
2. TFP's ``tensorflow_probability/python/layers/dense_variational_test.py``:
   every case, for ``DenseReparameterization``, ``DenseFlipout`` and
   ``DenseLocalReparameterization``.
3. Keras 3's layer test harness, ``keras.src.testing.TestCase.run_layer_test``,
   on several configurations of ``Conv3DReparameterization``.
4. Keras 3's own ``Conv3D`` expectations from
   ``keras/src/layers/convolutional/conv_test.py`` (basic, correctness and
   invalid-argument cases), minus ``groups`` (our layer has no such argument).

TFP's mocks (``Counter``, ``MockDistribution``, ``MockKLDivergence``) and
assertions are kept as written. What Keras 3 and TF2 force, common to every
case (each case's docstring states its own adaptations on top):

- Regimes. Upstream runs each case with ``@test_all_tf_execution_regimes``
  (TF1 graph, eager, tf.function). TF2 has no TF1 graph sessions; every case
  runs eagerly and inside a ``tf.function`` (``REGIMES``), and upstream's
  ``sess.run([...])`` becomes reading the tensors: directly, or as the
  function's outputs (``call_layer``).
- ``layer.get_losses_for(inputs)`` (TF1) has no TF2 counterpart; its meaning
  (every loss comes from the call) is checked as: none before, the call's
  after.
- Flipout's signs. TFP draws them with ``tfp.random.rademacher`` seeded by
  ``SeedStream(layer.seed, salt)``; this package draws them with its own
  helper from the layer's ``keras.random.SeedGenerator``, so the same seed
  does not give TFP's signs, and upstream's exact-output assertions for
  Flipout cannot hold bitwise. The ports keep every other exact assertion
  (the perturbation the tensor fn drew is TFP's: same fn, same op seed after
  the same ``tf.random.set_seed``) and check the signs on structure:
  ``assert_flipout_structure`` recomputes upstream's formula,
  ``outputs = linear(x, loc) + linear(x * s_in, perturbation) * s_out + bias``,
  from the layer's exposed tensors, and requires signs ``s_in`` and ``s_out``
  in {-1, +1}, one per example and channel, shared by every position, that
  reproduce the outputs to upstream's tolerance. (Their distribution is
  checked by statistics in test_differential_tfp.py.)

PRIVATE API: ``keras.src`` (the harness and ``SafeModeScope``) is Keras's
private API. It is used here, in tests only, because Keras's own layer tests
use it; the package itself never imports it.
"""

import itertools
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from absl.testing import parameterized  # noqa: E402
from helpers import volumes  # noqa: E402
from numpy.lib.stride_tricks import as_strided  # noqa: E402

# Private Keras API, tests only (see the module docstring).
from keras.src import testing as keras_testing  # noqa: E402
from keras.src.saving.serialization_lib import SafeModeScope  # noqa: E402
from tensorflow_probability.python.distributions import independent  # noqa: E402
from tensorflow_probability.python.distributions import normal  # noqa: E402
from tensorflow_probability.python.layers import util as tfp_layers_util  # noqa: E402

import tfprobr_bridge  # noqa: E402
from tfprobr_bridge import Conv1DFlipout  # noqa: E402
from tfprobr_bridge import Conv1DLocalReparameterization  # noqa: E402
from tfprobr_bridge import Conv1DReparameterization  # noqa: E402
from tfprobr_bridge import Conv2DFlipout  # noqa: E402
from tfprobr_bridge import Conv2DLocalReparameterization  # noqa: E402
from tfprobr_bridge import Conv2DReparameterization  # noqa: E402
from tfprobr_bridge import Conv3DFlipout  # noqa: E402
from tfprobr_bridge import Conv3DLocalReparameterization  # noqa: E402
from tfprobr_bridge import Conv3DReparameterization  # noqa: E402
from tfprobr_bridge import DenseFlipout  # noqa: E402
from tfprobr_bridge import DenseLocalReparameterization  # noqa: E402
from tfprobr_bridge import DenseReparameterization  # noqa: E402

tfd = tfp.distributions

DATA_FORMATS = ["channels_last", "channels_first"]
# TFP runs its cases with @test_all_tf_execution_regimes (graph, eager,
# tf.function). TF2 has no TF1 graph sessions: tf.function is how graph mode
# is reached now, so each case runs eagerly and inside a tf.function.
REGIMES = ["eager", "tf_function"]

# The classes conv_variational_test.py covers (TFP's Convolution* names are
# aliases of these), and ours that TFP lacks.
CONV_REPARAMETERIZATION = [
    Conv1DReparameterization,
    Conv2DReparameterization,
    Conv3DReparameterization,
]
CONV_FLIPOUT = [Conv1DFlipout, Conv2DFlipout, Conv3DFlipout]
CONV_LOCAL_REPARAMETERIZATION = [
    Conv1DLocalReparameterization,
    Conv2DLocalReparameterization,
    Conv3DLocalReparameterization,
]
CONV_CLASSES = CONV_REPARAMETERIZATION + CONV_FLIPOUT + CONV_LOCAL_REPARAMETERIZATION
DENSE_CLASSES = [DenseReparameterization, DenseFlipout, DenseLocalReparameterization]
# Estimators that read the posterior's Normal (TFP: "requires
# `kernel_posterior_fn` produce an instance of `tfd.Independent(tfd.Normal)`").
NORMAL_POSTERIOR_CLASSES = set(
    CONV_FLIPOUT + CONV_LOCAL_REPARAMETERIZATION + [DenseFlipout, DenseLocalReparameterization]
)

_TEST_PACKAGE = "tfprobr_bridge_test_upstream_ports"


def _name(layer_class):
    return layer_class.__name__


# --------------------------------------------------------------------------
# Helpers ported from conv_variational_test.py and dense_variational_test.py.
# --------------------------------------------------------------------------


def channels_last_to_first(shape):
    """Given a shape with channels last, returns a shape with channels first (TFP)."""
    return shape[:1] + shape[-1:] + shape[1:-1]


def channels_first_to_last(shape):
    """Given a shape with channels first, returns a shape with channels last (TFP)."""
    return shape[:1] + shape[2:] + shape[1:2]


def maybe_transpose_tensor(tensor, data_format):
    """TFP's ``ConvVariational.maybe_transpose_tensor``."""
    if data_format == "channels_first":
        order = channels_last_to_first(list(range(tensor.shape.rank)))
        return tf.transpose(a=tensor, perm=order)
    return tensor


def conv_input_shape(layer_class, batch_size, depth=None, height=None, width=None, channels=None):
    """Upstream's if-chain on the layer's rank: the channels-last input shape."""
    return {
        1: [batch_size, width, channels],
        2: [batch_size, height, width, channels],
        3: [batch_size, depth, height, width, channels],
    }[layer_class.rank]


def plain_convolution(inputs, kernel, data_format, padding, strides=1, dilations=1):
    """A plain TensorFlow convolution (any rank), the reference for expected outputs.

    The counterpart of upstream's ``CPUConvolution`` (``nn_ops.Convolution``
    patched to run channels-first on CPU): channels-first inputs are
    transposed to channels-last and back.
    """
    inputs = tf.convert_to_tensor(inputs)
    rank = inputs.shape.rank
    if data_format == "channels_first":
        inputs = tf.transpose(inputs, channels_first_to_last(list(range(rank))))
    outputs = tf.nn.convolution(
        inputs,
        tf.convert_to_tensor(kernel, inputs.dtype),
        strides=strides,
        padding=padding.upper(),
        dilations=dilations,
    )
    if data_format == "channels_first":
        outputs = tf.transpose(outputs, channels_last_to_first(list(range(rank))))
    return outputs


def plain_bias_add(outputs, bias, data_format):
    return tf.nn.bias_add(
        outputs, bias, data_format="NC..." if data_format == "channels_first" else "N...C"
    )


def channel_axis(data_format):
    return 1 if data_format == "channels_first" else -1


class Counter(object):
    """Helper class to manage incrementing a counting `int` (TFP, verbatim)."""

    def __init__(self):
        self._value = -1

    @property
    def value(self):
        return self._value

    def __call__(self):
        self._value += 1
        return self._value


class MockDistribution(independent.Independent):
    """Monitors layer calls to the underlying distribution (TFP, verbatim)."""

    def __init__(self, result_sample, result_log_prob, loc=None, scale=None):
        self.result_sample = result_sample
        self.result_log_prob = result_log_prob
        self.result_loc = loc
        self.result_scale = scale
        self.result_distribution = normal.Normal(loc=0.0, scale=1.0)
        if loc is not None and scale is not None:
            self.result_distribution = normal.Normal(
                loc=self.result_loc, scale=self.result_scale
            )
        self.called_log_prob = Counter()
        self.called_sample = Counter()
        self.called_loc = Counter()
        self.called_scale = Counter()

    def log_prob(self, *args, **kwargs):
        self.called_log_prob()
        return self.result_log_prob

    def sample(self, *args, **kwargs):
        self.called_sample()
        return self.result_sample

    @property
    def distribution(self):  # for dummy check on Independent(Normal)
        return self.result_distribution

    @property
    def loc(self):
        self.called_loc()
        return self.result_loc

    @property
    def scale(self):
        self.called_scale()
        return self.result_scale


class MockKLDivergence(object):
    """Monitors layer calls to the divergence implementation (TFP, verbatim)."""

    def __init__(self, result):
        self.result = result
        self.args = []
        self.called = Counter()

    def __call__(self, *args, **kwargs):
        self.called()
        self.args.append(args)
        return self.result


def exposed_tensors(layer):
    """What TFP's tests read off the layer after a call (its public attributes).

    ``kernel_posterior_affine`` is a distribution; its ``loc`` and ``scale``
    are read here so that they can leave a tf.function.
    """
    affine = layer.kernel_posterior_affine
    return {
        "kernel_posterior_tensor": layer.kernel_posterior_tensor,
        "kernel_posterior_affine_loc": (
            None if affine is None else tf.convert_to_tensor(affine.loc)
        ),
        "kernel_posterior_affine_scale": (
            None if affine is None else tf.convert_to_tensor(affine.scale)
        ),
        "kernel_posterior_affine_tensor": layer.kernel_posterior_affine_tensor,
        "bias_posterior_tensor": layer.bias_posterior_tensor,
    }


def call_layer(layer, inputs, regime):
    """Call ``layer`` once; return its outputs, the call's losses and exposed tensors.

    TF1's ``sess.run([outputs, layer.losses, layer.kernel_posterior_tensor,
    ...])`` becomes an eager call, or a tf.function that returns what it
    created (inside a function they are graph tensors, only reachable as the
    function's outputs).
    """
    if regime == "eager":
        outputs = layer(inputs)
        return outputs, list(layer.losses), exposed_tensors(layer)

    @tf.function
    def run(x):
        return layer(x), list(layer.losses), exposed_tensors(layer)

    return run(inputs)


def assert_all_close(expected, actual, rtol=1e-6, atol=1e-6):
    """``tf.test.TestCase.assertAllClose`` (its default tolerances)."""
    expected, actual = np.asarray(expected), np.asarray(actual)
    assert expected.shape == actual.shape, (expected.shape, actual.shape)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def assert_divergence_called_with(divergence, expected_args):
    """Upstream's check of a MockKLDivergence: one call, these arguments (identity).

    Test for identity with 'is'. TensorFlowTestCase.assertAllEqual actually
    coerces the inputs to numpy arrays, so it can't assert that the arguments
    (a mixture of Distributions and Tensors) are equal (TFP's comment).
    """
    assert divergence.called.value == 0  # Called exactly once.
    actual_args = divergence.args[0]
    assert len(actual_args) == len(expected_args)
    for a, b in zip(expected_args, actual_args):
        assert a is b


def assert_flipout_structure(outputs, inputs, loc, perturbation, bias, linear, axis):
    """Flipout's formula, recomputed from the layer's tensors, with the signs found.

    Upstream recomputes ``linear(x, loc) + linear(x * s_in, perturbation) *
    s_out + bias`` with TFP's own seeded ``rademacher`` signs. Ours come from a
    different generator, so for each example this searches the input signs
    ``s_in`` (one per input channel: 2**channels candidates); the output
    signs ``s_out`` (one per output channel) then follow. The outputs must
    equal the formula to upstream's tolerance for some signs in {-1, +1},
    one per example and channel and shared by every position. Returns the
    signs found, [(s_in, s_out)] per example.
    """
    inputs, outputs = np.asarray(inputs), np.asarray(outputs)
    channels = inputs.shape[axis]
    sign_in_shape = [1] * inputs.ndim
    sign_in_shape[axis] = channels
    sign_out_shape = [1] * outputs.ndim
    sign_out_shape[axis] = -1
    base = np.asarray(linear(inputs, loc)) + np.reshape(np.asarray(bias), sign_out_shape)

    def by_channel(array):
        return np.moveaxis(array, axis, -1).reshape(-1, array.shape[axis])

    signs = []
    for b in range(inputs.shape[0]):
        example, target = inputs[b : b + 1], outputs[b : b + 1]
        residual = target - base[b : b + 1]
        found = None
        for sign_in in itertools.product((-1.0, 1.0), repeat=channels):
            sign_in = np.asarray(sign_in, dtype=inputs.dtype)
            perturbed = np.asarray(
                linear(example * np.reshape(sign_in, sign_in_shape), perturbation)
            )
            plus = np.abs(by_channel(residual - perturbed)).max(axis=0)
            minus = np.abs(by_channel(residual + perturbed)).max(axis=0)
            sign_out = np.where(plus <= minus, 1.0, -1.0).astype(inputs.dtype)
            candidate = base[b : b + 1] + perturbed * np.reshape(sign_out, sign_out_shape)
            if np.allclose(target, candidate, rtol=1e-6, atol=1e-6):
                found = (sign_in, sign_out)
                break
        assert found is not None, (
            f"example {b}: no signs in {{-1, +1}} per channel make the outputs "
            "linear(x, loc) + linear(x * s_in, perturbation) * s_out + bias"
        )
        signs.append(found)
    return signs


def tfp_kernel_posterior_fn(dtype, shape, name, trainable, add_variable_fn):
    """``kernel_posterior_fn`` of conv_variational_test's ``_testKerasLayer``, at module level."""
    del name, trainable, add_variable_fn  # unused
    # Deserialized Keras objects do not perform lexical scoping. Any modules
    # that the function requires must be imported within the function.
    import tensorflow.compat.v2 as tf  # noqa: F811
    from tensorflow_probability.python.distributions import independent  # noqa: F811
    from tensorflow_probability.python.distributions import normal  # noqa: F811

    dist = normal.Normal(loc=tf.zeros(shape, dtype), scale=dtype.as_numpy_dtype(1))
    batch_ndims = tf.size(dist.batch_shape_tensor())
    return independent.Independent(dist, reinterpreted_batch_ndims=batch_ndims)


def tfp_dense_kernel_posterior_fn(dtype, shape, name, trainable, add_variable_fn):
    """``kernel_posterior_fn`` of dense_variational_test's ``_testKerasLayer``.

    The same as the conv test's but for ``scale``: a tensor of the kernel's
    shape (``tf.ones(shape)``), which TFP's DenseLocalReparameterization needs.
    """
    del name, trainable, add_variable_fn  # unused
    # Deserialized Keras objects do not perform lexical scoping. Any modules
    # that the function requires must be imported within the function.
    import tensorflow.compat.v2 as tf  # noqa: F811
    from tensorflow_probability.python.distributions import independent  # noqa: F811
    from tensorflow_probability.python.distributions import normal  # noqa: F811

    dist = normal.Normal(loc=tf.zeros(shape, dtype), scale=tf.ones(shape, dtype))
    batch_ndims = tf.size(dist.batch_shape_tensor())
    return independent.Independent(dist, reinterpreted_batch_ndims=batch_ndims)


@keras.saving.register_keras_serializable(
    package=_TEST_PACKAGE, name="registered_tfp_kernel_posterior_fn"
)
def registered_tfp_kernel_posterior_fn(dtype, shape, name, trainable, add_variable_fn):
    """``tfp_kernel_posterior_fn`` as a registered Keras object (saved by name)."""
    return tfp_kernel_posterior_fn(dtype, shape, name, trainable, add_variable_fn)


@keras.saving.register_keras_serializable(
    package=_TEST_PACKAGE, name="registered_tfp_dense_kernel_posterior_fn"
)
def registered_tfp_dense_kernel_posterior_fn(dtype, shape, name, trainable, add_variable_fn):
    """``tfp_dense_kernel_posterior_fn`` as a registered Keras object (saved by name)."""
    return tfp_dense_kernel_posterior_fn(dtype, shape, name, trainable, add_variable_fn)


@keras.saving.register_keras_serializable(package=_TEST_PACKAGE, name="posterior_mean")
def posterior_mean(distribution):
    """A deterministic tensor fn: the posterior's mean (registered, so it saves)."""
    return distribution.mean()


def run_harness(
    test,
    init_kwargs,
    trainable,
    seed_generators,
    losses,
    layer_class=Conv3DReparameterization,
    **shapes_or_data,
):
    """Keras's ``run_layer_test`` on ``layer_class``, with every check on.

    Counts: ``trainable`` weights (none non-trainable), ``seed_generators``,
    and ``losses`` per call; the layer never supports masking. The rest
    (``input_shape`` and ``expected_output_shape``, or ``input_data`` and
    ``expected_output``) passes through.
    """
    test.run_layer_test(
        layer_class,
        init_kwargs=init_kwargs,
        expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=0,
        expected_num_seed_generators=seed_generators,
        expected_num_losses=losses,
        supports_masking=False,
        run_training_check=True,
        run_mixed_precision_check=True,
        **shapes_or_data,
    )


# --------------------------------------------------------------------------
# Part 1: TFP's conv_variational_test.py, every class and case.
# --------------------------------------------------------------------------

# (name, class, data_format): TFP's ConvVariationalTestChannelsFirst and
# ...ChannelsLast test classes, as one parameter.
CONV_CASES = [
    (f"{cls.__name__}_{data_format}", cls, data_format)
    for cls in CONV_CLASSES
    for data_format in DATA_FORMATS
]


class TFPKerasLayerTest(keras_testing.TestCase):
    """Port of TFP's ``testKerasLayerConvolution{1,2,3}D{Reparameterization,Flipout}``.

    Upstream ``_testKerasLayer`` runs tf_keras' ``layer_test`` (instantiate,
    config round trip, call, output shape, functional/sequential models) on
    the layer with a custom ``kernel_posterior_fn``, no prior and no bias, for
    input shapes (2, 3, 1), (2, 3, 3, 1), (2, 3, 3, 3, 1) by rank (transposed
    for channels_first). Upstream currently skips it ("Skip the test until the
    TF and Keras has a new PIP"), and tf_keras' ``layer_test`` cannot drive a
    Keras 3 layer; Keras 3's equivalent is ``run_layer_test``, which runs here
    for real.

    Local reparameterization (ours) runs with the dense test's posterior fn
    (``scale=tf.ones(shape)``): with the conv test's scalar ``scale`` the
    layer fails, a bug (see test_local_reparameterization_scalar_scale).
    """

    def _kwargs(self, data_format, kernel_posterior_fn):
        return {
            "filters": 2,
            "kernel_size": 3,
            "kernel_posterior_fn": kernel_posterior_fn,
            "kernel_prior_fn": None,
            "bias_posterior_fn": None,
            "bias_prior_fn": None,
            "data_format": data_format,
        }

    def _run(self, layer_class, data_format, kernel_posterior_fn):
        input_shape = tuple(conv_input_shape(layer_class, 2, 3, 3, 3, 1))
        output_shape = tuple(conv_input_shape(layer_class, 2, 1, 1, 1, 2))
        if data_format == "channels_first":
            input_shape = channels_last_to_first(input_shape)
            output_shape = channels_last_to_first(output_shape)
        # The posterior fn makes no variables and there is no bias: no
        # weights; no kernel prior and no bias: no divergence at all.
        run_harness(
            self,
            self._kwargs(data_format, kernel_posterior_fn),
            trainable=0,
            seed_generators=0,
            losses=0,
            layer_class=layer_class,
            input_shape=input_shape,
            expected_output_shape=output_shape,
        )

    @parameterized.named_parameters(*CONV_CASES)
    def test_keras_layer_plain_function(self, layer_class, data_format):
        """Upstream's exact set-up: the posterior fn is a function local to the test.

        Upstream relies on Keras serialising the function as bytecode (hence its
        in-function imports); this package pickles it by value, and loading a
        pickle is refused in Keras's safe mode, as a saved lambda is. Safe mode
        is turned off here for that reason only; the config round trip (config
        == from_config(config).get_config()) stays checked.
        """

        def kernel_posterior_fn(dtype, shape, name, trainable, add_variable_fn):
            """Set trivially. The function is required to instantiate layer."""
            del name, trainable, add_variable_fn  # unused
            # Deserialized Keras objects do not perform lexical scoping. Any modules
            # that the function requires must be imported within the function.
            import tensorflow.compat.v2 as tf  # noqa: F811
            from tensorflow_probability.python.distributions import independent  # noqa: F811
            from tensorflow_probability.python.distributions import normal  # noqa: F811

            dist = normal.Normal(loc=tf.zeros(shape, dtype), scale=dtype.as_numpy_dtype(1))
            batch_ndims = tf.size(dist.batch_shape_tensor())
            return independent.Independent(dist, reinterpreted_batch_ndims=batch_ndims)

        def dense_kernel_posterior_fn(dtype, shape, name, trainable, add_variable_fn):
            """dense_variational_test's version (scale of the kernel's shape)."""
            del name, trainable, add_variable_fn  # unused
            import tensorflow.compat.v2 as tf  # noqa: F811
            from tensorflow_probability.python.distributions import independent  # noqa: F811
            from tensorflow_probability.python.distributions import normal  # noqa: F811

            dist = normal.Normal(loc=tf.zeros(shape, dtype), scale=tf.ones(shape, dtype))
            batch_ndims = tf.size(dist.batch_shape_tensor())
            return independent.Independent(dist, reinterpreted_batch_ndims=batch_ndims)

        if layer_class in CONV_LOCAL_REPARAMETERIZATION:
            kernel_posterior_fn = dense_kernel_posterior_fn
        with SafeModeScope(False):
            self._run(layer_class, data_format, kernel_posterior_fn)

    @parameterized.named_parameters(
        *[case for case in CONV_CASES if case[2] == "channels_last"]
    )
    def test_keras_layer_registered_function(self, layer_class, data_format):
        """The same function, registered with Keras: loads in safe mode.

        Loading is what differs from the plain function, so one data format.
        """
        fn = (
            registered_tfp_dense_kernel_posterior_fn
            if layer_class in CONV_LOCAL_REPARAMETERIZATION
            else registered_tfp_kernel_posterior_fn
        )
        self._run(layer_class, data_format, fn)


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("data_format", DATA_FORMATS)
@pytest.mark.parametrize("layer_class", CONV_CLASSES, ids=_name)
def test_kl_penalty_kernel(layer_class, data_format, regime):
    """Port of TFP's ``testKLPenaltyKernel*`` (``_testKLPenaltyKernel``).

    TF1's ``layer.get_losses_for(inputs)`` is not in TF2 (module docstring).
    Added: the penalty's value is the default divergence, the analytic
    KL(posterior || prior); a second eager call replaces the loss.
    """
    layer = layer_class(filters=2, kernel_size=3, data_format=data_format)
    inputs = tf.random.uniform(conv_input_shape(layer_class, 2, 3, 3, 3, 1), seed=1)
    inputs = maybe_transpose_tensor(inputs, data_format)

    # No keys.
    assert len(layer.losses) == 0
    assert list(layer.losses) == []

    _, losses, _ = call_layer(layer, inputs, regime)

    # Yes keys.
    assert len(losses) == 1
    assert losses[0].shape == ()
    np.testing.assert_allclose(
        np.asarray(losses[0]),
        np.asarray(tfd.kl_divergence(layer.kernel_posterior, layer.kernel_prior)),
        rtol=1e-6,
    )
    if regime == "eager":
        assert len(layer.losses) == 1
        # A second call replaces the losses (they belong to a call), not adds.
        layer(inputs)
        assert len(layer.losses) == 1


@pytest.mark.parametrize("fn_source", ["tfp", "tfprobr_bridge"])
@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("data_format", DATA_FORMATS)
@pytest.mark.parametrize("layer_class", CONV_CLASSES, ids=_name)
def test_kl_penalty_both(layer_class, data_format, regime, fn_source):
    """Port of TFP's ``testKLPenaltyBoth*`` (``_testKLPenaltyBoth``).

    ``fn_source="tfp"`` passes TFP's own ``layers.util`` fns, as upstream does;
    ``"tfprobr_bridge"`` passes this package's serialisable equivalents.
    Added: the two values, kernel's then bias's.
    """
    util = tfp_layers_util if fn_source == "tfp" else tfprobr_bridge
    layer = layer_class(
        filters=2,
        kernel_size=3,
        bias_posterior_fn=util.default_mean_field_normal_fn(),
        bias_prior_fn=util.default_multivariate_normal_fn,
        data_format=data_format,
    )
    inputs = tf.random.uniform(conv_input_shape(layer_class, 2, 3, 3, 3, 1), seed=1)
    inputs = maybe_transpose_tensor(inputs, data_format)

    # No keys.
    assert len(layer.losses) == 0

    _, losses, _ = call_layer(layer, inputs, regime)

    # Yes keys.
    assert len(losses) == 2
    assert losses[0].shape == ()
    assert losses[1].shape == ()
    # Kernel first, then bias (checked by value: the bias KL has 2 terms,
    # the kernel KL 3**rank * 2, so they differ).
    np.testing.assert_allclose(
        [np.asarray(losses[0]), np.asarray(losses[1])],
        [
            np.asarray(tfd.kl_divergence(layer.kernel_posterior, layer.kernel_prior)),
            np.asarray(tfd.kl_divergence(layer.bias_posterior, layer.bias_prior)),
        ],
        rtol=1e-6,
    )


def _conv_set_up(
    layer_class,
    data_format,
    regime,
    batch_size,
    depth=None,
    height=None,
    width=None,
    channels=None,
    filters=None,
    **kwargs,
):
    """Port of TFP's ``_testConvSetUp`` (mocks, seeds and layer as written).

    Returns upstream's tuple plus the tensors the call exposed (see
    ``call_layer``; upstream reads them off the layer in ``sess.run``).
    """
    seed = Counter()
    inputs = tf.random.uniform(
        conv_input_shape(layer_class, batch_size, depth, height, width, channels), seed=seed()
    )
    kernel_size = (2,) * layer_class.rank
    inputs = maybe_transpose_tensor(inputs, data_format)

    kernel_shape = kernel_size + (channels, filters)
    kernel_posterior = MockDistribution(
        loc=tf.random.uniform(kernel_shape, seed=seed()),
        scale=tf.random.uniform(kernel_shape, seed=seed()),
        result_log_prob=tf.random.uniform(kernel_shape, seed=seed()),
        result_sample=tf.random.uniform(kernel_shape, seed=seed()),
    )
    kernel_prior = MockDistribution(
        result_log_prob=tf.random.uniform(kernel_shape, seed=seed()),
        result_sample=tf.random.uniform(kernel_shape, seed=seed()),
    )
    kernel_divergence = MockKLDivergence(result=tf.random.uniform([], seed=seed()))

    bias_size = (filters,)
    bias_posterior = MockDistribution(
        result_log_prob=tf.random.uniform(bias_size, seed=seed()),
        result_sample=tf.random.uniform(bias_size, seed=seed()),
    )
    bias_prior = MockDistribution(
        result_log_prob=tf.random.uniform(bias_size, seed=seed()),
        result_sample=tf.random.uniform(bias_size, seed=seed()),
    )
    bias_divergence = MockKLDivergence(result=tf.random.uniform([], seed=seed()))

    tf.random.set_seed(5995)
    layer = layer_class(
        filters=filters,
        kernel_size=kernel_size,
        padding="SAME",
        kernel_posterior_fn=lambda *args: kernel_posterior,
        kernel_posterior_tensor_fn=lambda d: d.sample(seed=42),
        kernel_prior_fn=lambda *args: kernel_prior,
        kernel_divergence_fn=kernel_divergence,
        bias_posterior_fn=lambda *args: bias_posterior,
        bias_posterior_tensor_fn=lambda d: d.sample(seed=43),
        bias_prior_fn=lambda *args: bias_prior,
        bias_divergence_fn=bias_divergence,
        data_format=data_format,
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
        kernel_shape,
        exposed,
    )


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("data_format", DATA_FORMATS)
@pytest.mark.parametrize("layer_class", CONV_REPARAMETERIZATION, ids=_name)
def test_convolution_reparameterization(layer_class, data_format, regime):
    """Port of TFP's ``testConvolution{1,2,3}DReparameterization``, as written.

    Added: the layer's distribution properties are the fns' results.
    """
    batch_size, depth, height, width, channels, filters = 2, 4, 4, 4, 3, 5
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
        kernel_shape,
        exposed,
    ) = _conv_set_up(
        layer_class,
        data_format,
        regime,
        batch_size,
        depth=depth,
        height=height,
        width=width,
        channels=channels,
        filters=filters,
    )

    expected_outputs = plain_convolution(
        inputs, kernel_posterior.result_sample, data_format, padding="SAME"
    )
    expected_outputs = plain_bias_add(expected_outputs, bias_posterior.result_sample, data_format)

    assert_all_close(kernel_posterior.result_sample, exposed["kernel_posterior_tensor"])
    assert_all_close(bias_posterior.result_sample, exposed["bias_posterior_tensor"])
    assert_all_close(expected_outputs, outputs)
    assert len(kl_penalty) == 2
    assert_all_close(kernel_divergence.result, kl_penalty[0])
    assert_all_close(bias_divergence.result, kl_penalty[1])
    assert layer.kernel_posterior is kernel_posterior
    assert layer.kernel_prior is kernel_prior
    assert layer.bias_posterior is bias_posterior
    assert layer.bias_prior is bias_prior

    # We expect that there was one call to kernel_divergence, with these args.
    assert_divergence_called_with(
        kernel_divergence, [kernel_posterior, kernel_prior, kernel_posterior.result_sample]
    )
    # Same story as above.
    assert_divergence_called_with(
        bias_divergence, [bias_posterior, bias_prior, bias_posterior.result_sample]
    )


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("data_format", DATA_FORMATS)
@pytest.mark.parametrize("layer_class", CONV_FLIPOUT, ids=_name)
def test_convolution_flipout(layer_class, data_format, regime):
    """Port of TFP's ``testConvolution{1,2,3}DFlipout``.

    Kept exactly: the perturbation distribution (``Normal(0, scale)``), the
    perturbation drawn (upstream's ``expected_kernel_posterior_affine.sample(
    seed=42)`` after ``tf.random.set_seed(5995)``; upstream checks it through
    the outputs, here also directly), the bias, both divergences and their
    arguments (the kernel's sample argument is None). Adapted: the outputs.
    Upstream recomputes them with ``tfp.random.rademacher`` signs seeded by
    ``SeedStream(layer.seed, salt='ConvFlipout')``, which are not ours; here
    ``assert_flipout_structure`` checks the same formula with the signs found
    (module docstring).
    """
    batch_size, depth, height, width, channels, filters = 2, 4, 4, 4, 3, 5
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
        kernel_shape,
        exposed,
    ) = _conv_set_up(
        layer_class,
        data_format,
        regime,
        batch_size,
        depth=depth,
        height=height,
        width=width,
        channels=channels,
        filters=filters,
        seed=44,
    )

    tf.random.set_seed(5995)
    expected_kernel_posterior_affine = normal.Normal(
        loc=tf.zeros_like(kernel_posterior.result_loc), scale=kernel_posterior.result_scale
    )
    expected_kernel_posterior_affine_tensor = expected_kernel_posterior_affine.sample(seed=42)

    assert_all_close(
        expected_kernel_posterior_affine.loc, exposed["kernel_posterior_affine_loc"]
    )
    assert_all_close(
        expected_kernel_posterior_affine.scale, exposed["kernel_posterior_affine_scale"]
    )
    assert_all_close(
        expected_kernel_posterior_affine_tensor, exposed["kernel_posterior_affine_tensor"]
    )
    assert exposed["kernel_posterior_tensor"] is None  # TFP sets it to None.

    assert_flipout_structure(
        outputs,
        inputs,
        kernel_posterior.distribution.loc,
        exposed["kernel_posterior_affine_tensor"],
        bias_posterior.result_sample,
        lambda x, kernel: plain_convolution(x, kernel, data_format, padding="SAME"),
        channel_axis(data_format),
    )

    assert_all_close(bias_posterior.result_sample, exposed["bias_posterior_tensor"])
    assert_all_close(kernel_divergence.result, kl_penalty[0])
    assert_all_close(bias_divergence.result, kl_penalty[1])

    assert_divergence_called_with(kernel_divergence, [kernel_posterior, kernel_prior, None])
    assert_divergence_called_with(
        bias_divergence, [bias_posterior, bias_prior, bias_posterior.result_sample]
    )


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("data_format", DATA_FORMATS)
@pytest.mark.parametrize("layer_class", CONV_LOCAL_REPARAMETERIZATION, ids=_name)
def test_convolution_local_reparameterization(layer_class, data_format, regime):
    """TFP's ``testDenseLocalReparameterization``, on the conv set-up (ours; TFP has none).

    The convolution's output distribution is ``Normal(conv(x, loc),
    sqrt(conv(x**2, scale**2)))``; upstream's dense assertions, as written,
    with the convolution for the matrix product: the affine distribution,
    its draw (``sample(seed=42)`` after the same ``tf.random.set_seed``),
    the outputs (that draw plus the bias), bias, divergences and arguments.
    """
    batch_size, depth, height, width, channels, filters = 2, 4, 4, 4, 3, 5
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
        kernel_shape,
        exposed,
    ) = _conv_set_up(
        layer_class,
        data_format,
        regime,
        batch_size,
        depth=depth,
        height=height,
        width=width,
        channels=channels,
        filters=filters,
    )

    tf.random.set_seed(5995)
    expected_kernel_posterior_affine = normal.Normal(
        loc=plain_convolution(inputs, kernel_posterior.result_loc, data_format, "SAME"),
        scale=plain_convolution(
            inputs**2.0, kernel_posterior.result_scale**2, data_format, "SAME"
        )
        ** 0.5,
    )
    expected_kernel_posterior_affine_tensor = expected_kernel_posterior_affine.sample(seed=42)
    expected_outputs = plain_bias_add(
        expected_kernel_posterior_affine_tensor, bias_posterior.result_sample, data_format
    )

    assert_all_close(
        expected_kernel_posterior_affine.loc, exposed["kernel_posterior_affine_loc"]
    )
    assert_all_close(
        expected_kernel_posterior_affine.scale, exposed["kernel_posterior_affine_scale"]
    )
    assert_all_close(
        expected_kernel_posterior_affine_tensor, exposed["kernel_posterior_affine_tensor"]
    )
    assert exposed["kernel_posterior_tensor"] is None
    assert_all_close(bias_posterior.result_sample, exposed["bias_posterior_tensor"])
    assert_all_close(expected_outputs, outputs)
    assert_all_close(kernel_divergence.result, kl_penalty[0])
    assert_all_close(bias_divergence.result, kl_penalty[1])

    assert_divergence_called_with(kernel_divergence, [kernel_posterior, kernel_prior, None])
    assert_divergence_called_with(
        bias_divergence, [bias_posterior, bias_prior, bias_posterior.result_sample]
    )


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("data_format", DATA_FORMATS)
@pytest.mark.parametrize("layer_class", CONV_FLIPOUT, ids=_name)
def test_random_convolution_flipout(layer_class, data_format, regime):
    """Port of TFP's ``testRandomConvolution1DFlipout`` (``_testRandomConvFlipout``).

    As written; upstream runs it for the 1-D layer only, here for every rank.
    Two layers share the posteriors and tensor fns and differ in ``seed``
    (44, 45): their outputs must differ somewhere. In tf.function each layer
    runs in its own function, so, as in upstream's TF1 graph, both draw the
    same perturbation (same op seed 42) and differ by their signs alone.
    """
    batch_size, depth, height, width, channels, filters = 2, 4, 4, 4, 3, 5
    seed = Counter()
    inputs = tf.random.uniform(
        conv_input_shape(layer_class, batch_size, depth, height, width, channels), seed=seed()
    )
    kernel_size = (2,) * layer_class.rank
    inputs = maybe_transpose_tensor(inputs, data_format)

    kernel_shape = kernel_size + (channels, filters)
    bias_size = (filters,)

    kernel_posterior = MockDistribution(
        loc=tf.random.uniform(kernel_shape, seed=seed()),
        scale=tf.random.uniform(kernel_shape, seed=seed()),
        result_log_prob=tf.random.uniform(kernel_shape, seed=seed()),
        result_sample=tf.random.uniform(kernel_shape, seed=seed()),
    )
    bias_posterior = MockDistribution(
        loc=tf.random.uniform(bias_size, seed=seed()),
        scale=tf.random.uniform(bias_size, seed=seed()),
        result_log_prob=tf.random.uniform(bias_size, seed=seed()),
        result_sample=tf.random.uniform(bias_size, seed=seed()),
    )

    def make(layer_seed):
        return layer_class(
            filters=filters,
            kernel_size=kernel_size,
            padding="SAME",
            kernel_posterior_fn=lambda *args: kernel_posterior,
            kernel_posterior_tensor_fn=lambda d: d.sample(seed=42),
            kernel_divergence_fn=None,
            bias_posterior_fn=lambda *args: bias_posterior,
            bias_posterior_tensor_fn=lambda d: d.sample(seed=43),
            bias_divergence_fn=None,
            seed=layer_seed,
            data_format=data_format,
        )

    layer_one, layer_two = make(44), make(45)
    outputs_one_ = np.asarray(call_layer(layer_one, inputs, regime)[0])
    outputs_two_ = np.asarray(call_layer(layer_two, inputs, regime)[0])

    assert np.sum(np.isclose(outputs_one_, outputs_two_)) < np.prod(outputs_one_.shape)


@pytest.mark.parametrize("data_format", DATA_FORMATS)
@pytest.mark.parametrize("layer_class", CONV_CLASSES, ids=_name)
def test_seed_drives_the_draws(layer_class, data_format):
    """``_testRandomConvFlipout``'s assertion, for every layer's ``seed`` (ours).

    Upstream's case is Flipout-only: there the layer's ``seed`` drives the
    sign flips. TFP's reparameterization layers take no seed; ours (and our
    local reparameterization layers) do: ``seed=`` drives the default tensor
    fn's draws (and Flipout's signs). So the assertion is made for each
    class, on a shared fixed posterior: seeds 44 and 45 differ somewhere, and
    (the converse) equal seeds repeat exactly.
    """
    batch_size, depth, height, width, channels, filters = 2, 4, 4, 4, 3, 5
    inputs = tf.random.uniform(
        conv_input_shape(layer_class, batch_size, depth, height, width, channels), seed=0
    )
    inputs = maybe_transpose_tensor(inputs, data_format)
    kernel_shape = (2,) * layer_class.rank + (channels, filters)
    loc = tf.random.uniform(kernel_shape, seed=1)
    scale = tf.random.uniform(kernel_shape, seed=2)

    def kernel_posterior_fn(dtype, shape, name, trainable, add_variable_fn):
        del dtype, shape, name, trainable, add_variable_fn
        return tfd.Independent(
            tfd.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=len(kernel_shape)
        )

    def make(seed):
        return layer_class(
            filters=filters,
            kernel_size=(2,) * layer_class.rank,
            padding="SAME",
            kernel_posterior_fn=kernel_posterior_fn,
            kernel_divergence_fn=None,
            bias_posterior_fn=None,
            seed=seed,
            data_format=data_format,
        )

    outputs_one = np.asarray(make(44)(inputs))
    outputs_two = np.asarray(make(45)(inputs))
    assert np.sum(np.isclose(outputs_one, outputs_two)) < np.prod(outputs_one.shape)
    np.testing.assert_array_equal(np.asarray(make(44)(inputs)), outputs_one)


@pytest.mark.parametrize("data_format", DATA_FORMATS)
@pytest.mark.parametrize("layer_class", CONV_CLASSES, ids=_name)
def test_layer_in_sequential(layer_class, data_format):
    """Port of TFP's ``testSequentialConvolution{1,2,3}D{Reparameterization,Flipout}``.

    Two changes, both Keras 3 idiom with the same meaning: the input shape is
    a ``keras.Input`` (Keras 3 warns against ``input_shape=`` on a layer), and
    the two training examples are repeated by a dataset, since Keras 3 stops
    an epoch ("ran out of data") when arrays give fewer batches than
    ``steps_per_epoch`` where tf_keras repeated them. ``verbose=0``. Added:
    the three losses are finite.
    """
    inputs = tf.random.uniform(conv_input_shape(layer_class, 2, 3, 3, 3, 1))
    outputs = tf.random.uniform(conv_input_shape(layer_class, 2, 1, 1, 1, 2))
    inputs = maybe_transpose_tensor(inputs, data_format)
    outputs = maybe_transpose_tensor(outputs, data_format)

    net = keras.Sequential(
        [
            keras.Input(shape=tuple(inputs.shape[1:])),
            layer_class(filters=2, kernel_size=3, data_format=data_format),
            layer_class(filters=2, kernel_size=1, data_format=data_format),
        ]
    )

    net.compile(loss="mse", optimizer="adam")
    # batch_size=2: each element of the dataset is the whole 2-example batch.
    dataset = tf.data.Dataset.from_tensors((inputs, outputs)).repeat()
    history = net.fit(dataset, epochs=3, steps_per_epoch=2, verbose=0)
    assert len(history.history["loss"]) == 3
    assert np.all(np.isfinite(history.history["loss"]))

    batch_output = np.asarray(net(inputs))
    assert tuple(outputs.shape) == batch_output.shape


@pytest.mark.parametrize("data_format", DATA_FORMATS)
def test_gradients(data_format):
    """Port of TFP's ``testGradients`` (conv), as written.

    A 1-D Flipout layer and a 1-D reparameterization layer of 1 filter,
    kernel size 1: the output has a gradient (not None) for each of the 6
    trainable variables (3 per layer: kernel loc, kernel untransformed scale,
    bias loc). ``keras.Sequential`` for ``tf_keras.Sequential``.
    """
    net = keras.Sequential(
        [
            Conv1DFlipout(1, 1, data_format=data_format),
            Conv1DReparameterization(1, 1, data_format=data_format),
        ]
    )
    with tf.GradientTape() as tape:
        y = net(tf.zeros([1, 1, 1]))
    grads = tape.gradient(y, net.trainable_variables)
    assert len(grads) == 6
    assert all(g is not None for g in grads)


@pytest.mark.parametrize("data_format", DATA_FORMATS)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_gradients_every_estimator(rank, data_format):
    """``testGradients`` for every rank, with our local reparameterization layer added.

    Three layers (Flipout, reparameterization, local reparameterization) of 1
    filter, kernel size 1: a gradient for each of the 9 trainable variables.
    Upstream's all-zero input would give the local reparameterization layer a
    zero output variance; a gradient must still exist (the layer floors the
    variance so that sqrt's gradient stays finite), and it must be finite.
    """
    net = keras.Sequential(
        [
            classes[rank - 1](1, 1, data_format=data_format)
            for classes in (CONV_FLIPOUT, CONV_REPARAMETERIZATION, CONV_LOCAL_REPARAMETERIZATION)
        ]
    )
    with tf.GradientTape() as tape:
        y = net(tf.zeros([1] * (rank + 2)))
    grads = tape.gradient(y, net.trainable_variables)
    assert len(grads) == 9
    assert all(g is not None for g in grads)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)


@pytest.mark.parametrize(
    "layer_class", CONV_LOCAL_REPARAMETERIZATION + [DenseLocalReparameterization], ids=_name
)
def test_local_reparameterization_scalar_scale(layer_class):
    """Local reparameterization with upstream's conv ``kernel_posterior_fn``.

    That fn returns ``Independent(Normal(loc=zeros(kernel_shape), scale=1.))``:
    an Independent Normal over the kernel whose scale is a scalar broadcast to
    the kernel's shape, as Normal broadcasts its parameters. The estimator
    needs only the elementwise mean and scale, so the layer must accept it
    (Flipout does) and give ``Normal(linear(x, 0), sqrt(linear(x**2, 1)))``.
    TFP has no conv local reparameterization; its DenseLocalReparameterization
    fails on this fn too (tf.matmul of a scalar), which is why
    dense_variational_test.py uses ``scale=tf.ones(shape)``.
    """
    if layer_class is DenseLocalReparameterization:
        layer = layer_class(
            units=2,
            kernel_posterior_fn=tfp_kernel_posterior_fn,
            kernel_prior_fn=None,
            bias_posterior_fn=None,
        )
        inputs = tf.random.uniform([3, 2], seed=1)
        kernel_shape = (2, 2)

        def linear(x, kernel):
            return tf.matmul(x, kernel)

    else:
        layer = layer_class(
            filters=2,
            kernel_size=2,
            kernel_posterior_fn=tfp_kernel_posterior_fn,
            kernel_prior_fn=None,
            bias_posterior_fn=None,
        )
        inputs = tf.random.uniform(conv_input_shape(layer_class, 2, 3, 3, 3, 1), seed=1)
        kernel_shape = (2,) * layer_class.rank + (1, 2)

        def linear(x, kernel):
            return plain_convolution(x, kernel, "channels_last", "VALID")

    outputs = layer(inputs)
    assert tuple(outputs.shape) == tuple(layer.compute_output_shape(inputs.shape))
    assert_all_close(linear(inputs, tf.zeros(kernel_shape)), layer.kernel_posterior_affine.loc)
    assert_all_close(
        tf.sqrt(linear(inputs**2, tf.ones(kernel_shape))), layer.kernel_posterior_affine.scale
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


# --------------------------------------------------------------------------
# Part 3: Keras 3's layer test harness, run_layer_test (Conv3DReparameterization).
# --------------------------------------------------------------------------

# Checks of run_layer_test that cannot apply to a stochastic layer: none run
# by default. The harness never compares the outputs of two calls; its only
# value check is `expected_output`, which compares the output of a layer it
# builds itself with a value given in advance. A layer that samples a new
# kernel per call (from variables initialised at random) has no such value,
# so `expected_output` is left out of the stochastic configurations below;
# it is checked in `test_deterministic_posterior_expected_output`, where the
# kernel is the posterior mean and the initializers are seeded.

HARNESS_CASES = [
    # (name, constructor kwargs, input shape, expected output shape)
    (
        "channels_last_valid",
        dict(filters=2, kernel_size=3, padding="valid", seed=1),
        (2, 5, 5, 5, 2),
        (2, 3, 3, 3, 2),
    ),
    (
        "channels_last_same_strided",
        dict(filters=3, kernel_size=3, strides=2, padding="same", seed=2),
        (2, 5, 6, 7, 1),
        (2, 3, 3, 4, 3),
    ),
    (
        "channels_first_valid_strided",
        dict(
            filters=4,
            kernel_size=(2, 3, 2),
            strides=(2, 1, 2),
            padding="valid",
            data_format="channels_first",
            seed=3,
        ),
        (2, 3, 6, 5, 4),
        (2, 4, 3, 3, 2),
    ),
    (
        "channels_first_same",
        dict(filters=2, kernel_size=2, padding="same", data_format="channels_first", seed=4),
        (2, 1, 4, 4, 4),
        (2, 2, 4, 4, 4),
    ),
    (
        "channels_first_same_dilated",
        dict(
            filters=2,
            kernel_size=2,
            padding="same",
            dilation_rate=2,
            data_format="channels_first",
            seed=5,
        ),
        (2, 2, 4, 5, 6),
        (2, 2, 4, 5, 6),
    ),
    (
        "channels_last_same_strided_activation",
        dict(filters=2, kernel_size=3, strides=(1, 2, 3), padding="SAME",
             activation="relu", seed=6),
        (1, 4, 5, 7, 3),
        (1, 4, 3, 3, 2),
    ),
]


class KerasLayerHarnessTest(keras_testing.TestCase):
    """Keras 3's ``run_layer_test`` on Conv3DReparameterization.

    Checks: config and serialization round trips, build (3 trainable weights
    with the defaults: kernel_posterior_loc, kernel_posterior_untransformed_scale,
    bias_posterior_loc; none non-trainable; one seed generator when ``seed``
    is given), symbolic and eager output shapes, one loss per call (the kernel
    KL: the default bias has no prior), no masking, one compiled training
    step, and a mixed_float16 call (float16 output, float32 weights).
    """

    @parameterized.named_parameters(*HARNESS_CASES)
    def test_run_layer_test(self, init_kwargs, input_shape, output_shape):
        run_harness(
            self,
            init_kwargs,
            trainable=3,
            seed_generators=1,
            losses=1,
            input_shape=input_shape,
            expected_output_shape=output_shape,
        )

    @parameterized.named_parameters(
        ("channels_last", "channels_last"), ("channels_first", "channels_first")
    )
    def test_deterministic_posterior_expected_output(self, data_format):
        """``expected_output`` checked: a kernel that is the posterior mean.

        With seeded loc initializers every layer the harness builds starts
        from the same kernel and bias, and the mean tensor fn removes the
        sampling, so the output is a plain convolution of those values.
        """
        filters, channels = 3, 2
        kernel_seed, bias_seed = 11, 12
        kernel_size = (2, 2, 2)
        rng = np.random.default_rng(3)
        input_data = volumes(rng, (2, 4, 5, 3, channels))
        if data_format == "channels_first":
            input_data = np.transpose(input_data, channels_last_to_first(list(range(5))))
        kernel = keras.initializers.RandomNormal(mean=0.0, stddev=0.1, seed=kernel_seed)(
            kernel_size + (channels, filters), dtype="float32"
        )
        bias = keras.initializers.RandomNormal(mean=0.0, stddev=0.1, seed=bias_seed)(
            (filters,), dtype="float32"
        )
        expected = plain_bias_add(
            plain_convolution(input_data, kernel, data_format, padding="same"),
            bias,
            data_format,
        )
        run_harness(
            self,
            dict(
                filters=filters,
                kernel_size=kernel_size,
                padding="same",
                data_format=data_format,
                kernel_posterior_fn=tfprobr_bridge.default_mean_field_normal_fn(
                    loc_initializer=keras.initializers.RandomNormal(
                        mean=0.0, stddev=0.1, seed=kernel_seed
                    )
                ),
                kernel_posterior_tensor_fn=posterior_mean,
                bias_posterior_fn=tfprobr_bridge.default_mean_field_normal_fn(
                    is_singular=True,
                    loc_initializer=keras.initializers.RandomNormal(
                        mean=0.0, stddev=0.1, seed=bias_seed
                    ),
                ),
            ),
            trainable=3,
            seed_generators=0,
            losses=1,
            input_data=input_data,
            expected_output=expected,
        )


# --------------------------------------------------------------------------
# Part 4: Keras 3's Conv3D tests (keras/src/layers/convolutional/conv_test.py).
# --------------------------------------------------------------------------

# Keras's numpy reference convolution, copied from conv_test.py (Apache-2.0)
# because that module cannot be imported under this repo's --strict-markers
# (it marks tests `requires_trainable_backend`). Reduced to one group.


def _same_padding(input_size, kernel_size, stride):
    if input_size % stride == 0:
        padding = max(kernel_size - stride, 0)
    else:
        padding = max(kernel_size - (input_size % stride), 0)
    return padding // 2, padding - padding // 2


def np_conv3d(x, kernel_weights, bias_weights, strides, padding, data_format, dilation_rate):
    if data_format == "channels_first":
        x = x.transpose((0, 2, 3, 4, 1))
    if isinstance(strides, (tuple, list)):
        h_stride, w_stride, d_stride = strides
    else:
        h_stride = w_stride = d_stride = strides
    if isinstance(dilation_rate, (tuple, list)):
        h_dilation, w_dilation, d_dilation = dilation_rate
    else:
        h_dilation = w_dilation = d_dilation = dilation_rate

    h_kernel, w_kernel, d_kernel, ch_in, ch_out = kernel_weights.shape

    if h_dilation > 1 or w_dilation > 1 or d_dilation > 1:
        new_h_kernel = h_kernel + (h_dilation - 1) * (h_kernel - 1)
        new_w_kernel = w_kernel + (w_dilation - 1) * (w_kernel - 1)
        new_d_kernel = d_kernel + (d_dilation - 1) * (d_kernel - 1)
        new_kernel_weights = np.zeros(
            (new_h_kernel, new_w_kernel, new_d_kernel, ch_in, ch_out),
            dtype=kernel_weights.dtype,
        )
        new_kernel_weights[::h_dilation, ::w_dilation, ::d_dilation] = kernel_weights
        kernel_weights = new_kernel_weights
        h_kernel, w_kernel, d_kernel = kernel_weights.shape[:3]

    if padding == "same":
        n_batch, h_x, w_x, d_x, _ = x.shape
        npad = [(0, 0)] * x.ndim
        npad[1] = _same_padding(h_x, h_kernel, h_stride)
        npad[2] = _same_padding(w_x, w_kernel, w_stride)
        npad[3] = _same_padding(d_x, d_kernel, d_stride)
        x = np.pad(x, pad_width=npad, mode="constant", constant_values=0)

    n_batch, h_x, w_x, d_x, _ = x.shape
    h_out = int((h_x - h_kernel) / h_stride) + 1
    w_out = int((w_x - w_kernel) / w_stride) + 1
    d_out = int((d_x - d_kernel) / d_stride) + 1

    x = np.ascontiguousarray(x)
    stride_shape = (n_batch, h_out, w_out, d_out, h_kernel, w_kernel, d_kernel, ch_in)
    element_strides = (
        x.strides[0],
        h_stride * x.strides[1],
        w_stride * x.strides[2],
        d_stride * x.strides[3],
        x.strides[1],
        x.strides[2],
        x.strides[3],
        x.strides[4],
    )
    inner_dim = h_kernel * w_kernel * d_kernel * ch_in
    x_strided = as_strided(x, shape=stride_shape, strides=element_strides).reshape(
        -1, inner_dim
    )
    out = x_strided @ kernel_weights.reshape(-1, ch_out) + bias_weights
    out = out.reshape(n_batch, h_out, w_out, d_out, ch_out)
    if data_format == "channels_first":
        out = out.transpose((0, 4, 1, 2, 3))
    return out


# ConvBasicTest.test_conv3d_basic's table. Keras's rows 2 and 3 use groups=2;
# our layer has no `groups`, so they run with one group (a full convolution).
# The output shape does not depend on groups, so the expected shapes are
# Keras's own.
KERAS_CONV3D_BASIC = [
    (
        "valid",
        dict(filters=5, kernel_size=2, strides=1, padding="valid",
             data_format="channels_last", dilation_rate=1),
        (3, 5, 5, 5, 4),
        (3, 4, 4, 4, 5),
    ),
    (
        "same_dilated",
        dict(filters=6, kernel_size=2, strides=1, padding="same",
             data_format="channels_last", dilation_rate=(2, 2, 2)),
        (3, 4, 4, 4, 4),
        (3, 4, 4, 4, 6),
    ),
    (
        "valid_strided",
        dict(filters=6, kernel_size=(2, 2, 3), strides=(2, 1, 2), padding="valid",
             data_format="channels_last", dilation_rate=(1, 1, 1)),
        (3, 5, 5, 5, 4),
        (3, 2, 4, 2, 6),
    ),
]

# ConvCorrectnessTest.test_conv3d's table, groups dropped as above.
KERAS_CONV3D_CORRECTNESS = [
    ("valid", dict(filters=5, kernel_size=2, strides=1, padding="valid",
                   data_format="channels_last", dilation_rate=1)),
    ("same_dilated_222", dict(filters=6, kernel_size=2, strides=1, padding="same",
                              data_format="channels_last", dilation_rate=(2, 2, 2))),
    ("same_dilated_234", dict(filters=6, kernel_size=2, strides=1, padding="same",
                              data_format="channels_last", dilation_rate=(2, 3, 4))),
    ("valid_strided", dict(filters=6, kernel_size=(2, 2, 3), strides=(2, 1, 2),
                           padding="valid", data_format="channels_last",
                           dilation_rate=(1, 1, 1))),
    ("valid_strided_channels_first", dict(filters=6, kernel_size=(2, 2, 3),
                                          strides=(2, 1, 2), padding="valid",
                                          data_format="channels_first",
                                          dilation_rate=(1, 1, 1))),
]

# Two ways to make the kernel deterministic, so the layer is a plain Conv3D.
DETERMINISTIC_POSTERIORS = [
    # The default mean-field Normal posterior, used through its mean.
    ("posterior_mean", dict(kernel_posterior_tensor_fn=posterior_mean)),
    # A point-mass posterior. TFP has no KL(Deterministic || Normal), so no prior.
    (
        "deterministic_posterior",
        dict(
            kernel_posterior_fn=tfprobr_bridge.default_mean_field_normal_fn(is_singular=True),
            kernel_prior_fn=None,
        ),
    ),
]


def _product(cases, variants):
    return [
        (f"{name}_{variant}", kwargs, variant_kwargs)
        for name, kwargs in cases
        for variant, variant_kwargs in variants
    ]


class KerasConv3DTest(keras_testing.TestCase):
    """Keras 3's Conv3D expectations, on Conv3DReparameterization."""

    @parameterized.named_parameters(*KERAS_CONV3D_BASIC)
    def test_conv3d_basic(self, init_kwargs, input_shape, output_shape):
        """Port of ``ConvBasicTest.test_conv3d_basic`` (groups dropped).

        Keras expects 2 trainable weights (kernel, bias) and no loss; a
        Bayesian layer has 3 (kernel loc and scale, bias loc) and adds the
        kernel KL. No seed: the harness compares no values across calls.
        """
        run_harness(
            self,
            init_kwargs,
            trainable=3,
            seed_generators=0,
            losses=1,
            input_shape=input_shape,
            expected_output_shape=output_shape,
        )

    @parameterized.named_parameters(*KERAS_CONV3D_BASIC)
    def test_conv3d_basic_shapes_with_unknown_sizes(self, init_kwargs, input_shape, output_shape):
        """The same table, symbolically with unknown batch and spatial sizes.

        compute_output_shape and a functional model agree with Keras's shapes
        (spatial sizes None when unknown, as Keras's Conv3D gives).
        """
        layer = Conv3DReparameterization(**init_kwargs)
        self.assertEqual(layer.compute_output_shape(input_shape), output_shape)
        symbolic = keras.Input(shape=(None, None, None, input_shape[-1]))
        out = Conv3DReparameterization(**init_kwargs)(symbolic)
        self.assertEqual(tuple(out.shape), (None, None, None, None, output_shape[-1]))
        reference = keras.layers.Conv3D(**init_kwargs)(symbolic)
        self.assertEqual(tuple(out.shape), tuple(reference.shape))
        self.assertEqual(
            layer.compute_output_shape(input_shape),
            keras.layers.Conv3D(**init_kwargs).compute_output_shape(input_shape),
        )

    @parameterized.named_parameters(*_product(KERAS_CONV3D_CORRECTNESS, DETERMINISTIC_POSTERIORS))
    def test_conv3d(self, init_kwargs, posterior_kwargs):
        """Port of ``ConvCorrectnessTest.test_conv3d`` (groups dropped).

        Keras assigns random values to ``kernel`` and ``bias`` and compares with
        a reference convolution. Here the kernel is deterministic (see
        DETERMINISTIC_POSTERIORS) and the values go to its ``loc`` variables;
        the references are TensorFlow's convolution and Keras's numpy one.
        """
        layer = Conv3DReparameterization(**init_kwargs, **posterior_kwargs)
        rng = np.random.default_rng(1)
        # Keras's input shape, for both data formats (channels_first reads it
        # as 8 channels of 8x8x4 volumes, as Keras's test does).
        inputs = rng.normal(size=[2, 8, 8, 8, 4]).astype("float32")
        layer.build(input_shape=inputs.shape)

        weights = {w.name: w for w in layer.weights}
        kernel_shape = weights["kernel_posterior_loc"].shape
        kernel_weights = rng.normal(size=kernel_shape).astype("float32")
        bias_weights = rng.normal(size=(init_kwargs["filters"],)).astype("float32")
        weights["kernel_posterior_loc"].assign(kernel_weights)
        weights["bias_posterior_loc"].assign(bias_weights)

        outputs = layer(inputs)
        expected = plain_bias_add(
            plain_convolution(
                inputs,
                kernel_weights,
                init_kwargs["data_format"],
                padding=init_kwargs["padding"],
                strides=init_kwargs["strides"],
                dilations=init_kwargs["dilation_rate"],
            ),
            bias_weights,
            init_kwargs["data_format"],
        )
        self.assertAllClose(outputs, expected, rtol=1e-5, atol=1e-5)
        # Keras's own numpy reference, with its tolerance.
        expected_np = np_conv3d(
            inputs,
            kernel_weights,
            bias_weights,
            strides=init_kwargs["strides"],
            padding=init_kwargs["padding"],
            data_format=init_kwargs["data_format"],
            dilation_rate=init_kwargs["dilation_rate"],
        )
        self.assertAllClose(outputs, expected_np, rtol=1e-3, atol=1e-4)
        # Deterministic: a second call gives the same output.
        self.assertAllClose(layer(inputs), outputs, rtol=0, atol=0)

    def test_conv_symbolic_invalid_configuration(self):
        """Port of ``test_conv_symbolic_invalid_configuration`` (its Conv3D row).

        A dilated kernel (2 dilated by 10: 11) larger than the input (10)
        with valid padding: a ValueError on the symbolic call.
        """
        inputs = keras.layers.Input(shape=(10, 10, 10, 3))
        layer = Conv3DReparameterization(
            filters=1, kernel_size=(2, 2, 2), dilation_rate=(10, 10, 10)
        )
        with self.assertRaises(ValueError):
            layer(inputs)

    def test_conv_raises_exception_on_zero_dims(self):
        """3-D version of ``test_conv_raises_exception_on_zero_dims`` (a Conv2D test).

        Keras accepts any exception type; ours is a ValueError.
        """
        x = np.random.default_rng(0).random((3, 4, 4, 4, 4)).astype("float32")
        layer = Conv3DReparameterization(6, [5, 5, 5], 1, "valid")
        with self.assertRaises(ValueError):
            layer(x)

    def test_bad_init_args(self):
        """Port of ``test_bad_init_args`` (its non-``groups`` parts, in 3-D).

        Keras's exact messages are Keras's; this layer raises the same error
        type naming the same argument.
        """
        # `filters` is not positive.
        with self.assertRaisesRegex(ValueError, "`filters`.*Received: filters=0"):
            Conv3DReparameterization(filters=0, kernel_size=1)
        # `kernel_size` has 0.
        with self.assertRaisesRegex(ValueError, r"`kernel_size`.*\(1, 0, 1\)"):
            Conv3DReparameterization(filters=2, kernel_size=(1, 0, 1))
        # `strides` has 0.
        with self.assertRaisesRegex(ValueError, r"`strides`.*\(1, 0, 1\)"):
            Conv3DReparameterization(filters=2, kernel_size=(2, 2, 2), strides=(1, 0, 1))
        # `dilation_rate > 1` while `strides > 1`.
        with self.assertRaisesRegex(ValueError, "`strides`.*`dilation_rate`"):
            Conv3DReparameterization(
                filters=2, kernel_size=(2, 2, 2), strides=2, dilation_rate=(2, 1, 1)
            )
