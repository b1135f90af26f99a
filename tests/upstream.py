"""What the ports of upstream test suites share: TFP's mocks, the regimes, the class tables.

The ports, one file each (tests/test_upstream_*.py):

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
assertions are kept as written, here. What Keras 3 and TF2 force, common to every
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
