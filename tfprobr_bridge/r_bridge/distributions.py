"""Distribution functions R calls by name (``tfd_sample()``), with their arguments checked
here, in Keras's form, where TensorFlow Probability has no message of its own."""

from tfprobr_bridge import validation


def sample(distribution, sample_shape=(), **kwargs):
    """``distribution.sample(sample_shape, ...)`` with ``sample_shape`` checked."""
    return distribution.sample(sample_shape=validation.sample_shape(sample_shape), **kwargs)
