"""The tensor operations the variational layers are written in.

Convolution, matrix product, bias, Rademacher signs, normal draws and
output-shape arithmetic, with TensorFlow's quirks handled here so that the
layers' ``call`` reads like the papers (as Keras keeps them in ``ops.conv``
and its backend).
Knows nothing of layers, distributions or R.
"""

import math
import re

import tensorflow as tf

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


def conv_output_length(size, kernel, padding, stride, dilation):
    """Length of one convolved axis, as TensorFlow (and TFP) compute it; None stays None."""
    if size is None:
        return None
    dilated = kernel + (kernel - 1) * (dilation - 1)
    length = size if padding == "same" else size - dilated + 1
    return (length + stride - 1) // stride


def spatial_axes(rank, data_format):
    """The positions of the spatial axes in a ``rank``-D convolution's input."""
    first = 2 if data_format == "channels_first" else 1
    return tuple(range(first, first + rank))


def channel_axis(data_format):
    return 1 if data_format == "channels_first" else -1


def conv(inputs, kernel, strides, padding, data_format, dilation_rate, native_channels_first):
    """N-D cross-correlation of ``inputs`` with ``kernel`` (spatial..., in, out).

    ``native_channels_first`` says whether the device runs channels-first
    kernels (cuDNN does, TensorFlow's CPU kernels do not); otherwise
    channels-first inputs are transposed around a channels-last convolution.
    """
    rank = len(strides)
    channels_first = data_format == "channels_first"
    transpose = channels_first and not native_channels_first
    if transpose:
        inputs = tf.transpose(inputs, [0, *range(2, rank + 2), 1])
    channels_last = not channels_first or transpose
    layout = "N" + _SPATIAL[rank] + "C" if channels_last else "NC" + _SPATIAL[rank]
    first_spatial = 1 if channels_last else 2
    sizes = inputs.shape[first_spatial : first_spatial + rank]
    # A stride beyond the input's size gives one output position, exactly as a
    # stride equal to it does; TF 2.21's CPU convolution aborts the process on
    # strides near 2**29 and, with "same" padding, returns uninitialised values
    # for some positions on any stride beyond the size, so use the smaller one.
    strides = tuple(
        stride if size is None else min(stride, max(int(size), 1))
        for stride, size in zip(strides, sizes)
    )
    if rank == 3 and all(d == 1 for d in dilation_rate):
        # TF 2.21: tf.nn.convolution's eager gradient raises on strided 5-D
        # inputs; the Conv3D op with an explicit layout does not. Drop this
        # branch once tf.nn.convolution's gradient handles 5-D inputs.
        full_strides = (1, *strides, 1) if channels_last else (1, 1, *strides)
        outputs = tf.nn.conv3d(inputs, kernel, full_strides, padding.upper(), data_format=layout)
    else:
        # Strides are 1 whenever dilation is not (validated), and this path
        # runs dilation on CPUs whose Conv3D kernel lacks it.
        outputs = tf.nn.convolution(
            inputs,
            kernel,
            strides=strides,
            padding=padding.upper(),
            data_format=layout,
            dilations=dilation_rate,
        )
    # TF's CPU convolution returns the input's shape for an empty batch (TF
    # 2.21); reshaping to the shape the convolution should have fixes that and
    # costs no copy otherwise.
    outputs = tf.reshape(
        outputs,
        _conv_output_shape_tensor(
            inputs, kernel.shape[-1], padding, strides, dilation_rate, kernel.shape[:rank],
            channels_last,
        ),
    )
    if transpose:
        outputs = tf.transpose(outputs, [0, rank + 1, *range(1, rank + 1)])
    return outputs


def _conv_output_shape_tensor(inputs, filters, padding, strides, dilation_rate, kernel_size,
                              channels_last):
    rank = len(strides)
    first_spatial = 1 if channels_last else 2
    static = inputs.shape[first_spatial : first_spatial + rank]
    if all(size is not None for size in static):
        # A constant shape (batch inferred): one cheap op on the hot path.
        batch, sizes = -1, static
    else:
        shape = tf.shape(inputs)
        batch, sizes = shape[0], [shape[first_spatial + axis] for axis in range(rank)]
    spatial = [
        conv_output_length(size, int(kernel), padding, stride, dilation)
        for size, kernel, stride, dilation in zip(sizes, kernel_size, strides, dilation_rate)
    ]
    if channels_last:
        return tf.stack([batch, *spatial, int(filters)])
    return tf.stack([batch, int(filters), *spatial])


def dense(inputs, kernel):
    """``inputs @ kernel`` over the last axis, for inputs of any rank >= 2."""
    if inputs.shape.rank == 2:
        return tf.matmul(inputs, kernel)
    # Keras's Dense does the same: one matmul over the flattened leading axes.
    return tf.tensordot(inputs, kernel, [[inputs.shape.rank - 1], [0]])


def bias_add(outputs, bias, data_format="channels_last"):
    layout = "NC..." if data_format == "channels_first" else "N...C"
    return tf.nn.bias_add(outputs, tf.cast(bias, outputs.dtype), data_format=layout)


def rademacher(shape, dtype, seed_generator=None):
    """Independent +1/-1 signs of ``shape`` (a shape tensor), each with probability 1/2.

    With a Keras ``SeedGenerator`` the signs come from its stream, so a seeded
    layer repeats them run after run; without one, from TensorFlow's global
    random state (``tf.random.set_seed`` / ``keras.utils.set_random_seed``).
    """
    bits = _uniform(shape, tf.int32, 2, seed_generator)
    return tf.cast(2 * bits - 1, dtype)


def _uniform(shape, dtype, maxval, seed_generator):
    """Uniform numbers in ``[0, maxval)``: from ``seed_generator``'s stream when
    given (a seeded layer, or a Monte Carlo sample, repeats them), else from
    TensorFlow's global state."""
    if seed_generator is None:
        return tf.random.uniform(shape, maxval=maxval, dtype=dtype)
    seed = tf.cast(seed_generator.next(), tf.int32)
    return tf.random.stateless_uniform(shape, seed=seed, maxval=maxval, dtype=dtype)


def standard_normal(shape, dtype, seed_generator=None):
    """Independent ``N(0, 1)`` numbers of ``shape`` (a shape tensor), by Box and Muller (1958).

    TensorFlow's ``random.normal`` (on CPU, v2.21) costs about three times its
    ``random.uniform`` per number: it transforms each pair of uniforms one
    scalar at a time. Here the pair ``(u, v)`` becomes
    ``sqrt(-2 log(1 - u)) * (cos 2 pi v, sin 2 pi v)`` with vectorised ops, half
    the time of ``random.normal`` for a million numbers (2.9 against 5.7 ms on a
    2-core CPU). ``1 - u`` lies in ``(0, 1]``, so the radius is finite; with
    float32's 2**-23 steps it reaches 5.6 standard deviations, as TensorFlow's
    own normal does. Computed
    in float32 (float64 for float64). Seeding as in :func:`rademacher` (both
    draw through ``_uniform``).
    """
    dtype = tf.as_dtype(dtype)
    work = tf.float64 if dtype == tf.float64 else tf.float32
    shape = tf.convert_to_tensor(shape, tf.int32)
    size = tf.reduce_prod(shape)
    pairs = tf.stack([2, (size + 1) // 2])
    uniform = _uniform(pairs, work, 1, seed_generator)
    radius = tf.sqrt(-2.0 * tf.math.log(1.0 - uniform[0]))
    angle = (2.0 * math.pi) * uniform[1]
    normal = tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], axis=0)
    return tf.cast(tf.reshape(normal[:size], shape), dtype)


def normal_with_scale_gradient(mean, variance, noise, floor):
    """``mean + sqrt(max(variance, floor)) * noise``, with its gradient in one step.

    Local reparameterization's output draw. TensorFlow would differentiate
    the chain op by op (product, square root, maximum), each a pass over the
    outputs; the gradient w.r.t. ``variance`` is ``noise / (2 * scale)`` where
    ``variance >= floor`` (as tf.maximum breaks ties) and 0 elsewhere,
    precomputed with the draw.
    """

    @tf.custom_gradient
    def draw(mean, variance):
        scale = tf.sqrt(tf.maximum(variance, floor))
        outputs = mean + scale * noise
        # A 0/1 factor, not tf.where: under half the time on CPU (TF 2.21).
        slope = noise * (0.5 / scale) * tf.cast(variance >= floor, noise.dtype)

        def gradient(upstream):
            return upstream, upstream * slope

        return outputs, gradient

    return draw(mean, variance)


def with_context(error, context):
    """``error`` again, of the same TensorFlow type, with ``context`` in front of its message.

    Callers catch ``tf.errors.ResourceExhaustedError`` to shrink a batch and
    retry, so the type must survive; the context says which layer and why.
    """
    message = f"{context} ({tf_message(error)})"
    if isinstance(error, tf.errors.OpError):
        return type(error)(error.node_def, error.op, message)
    return type(error)(message)


def tf_message(error):
    """A TensorFlow op error's message without its op and device decorations."""
    message = getattr(error, "message", None) or str(error)
    message = re.sub(r"\{\{[^}]*\}\}\s*", "", message)
    return re.sub(r"\s*\[Op:[^\]]*\].*$", "", message, flags=re.S).strip()


def native_channels_first():
    """Whether convolutions here can run channels-first without a transpose (cuDNN)."""
    return bool(tf.config.list_logical_devices("GPU"))
