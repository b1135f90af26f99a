"""Distribution functions R calls by name (``tfd_sample()``, ``tfd_normal()``, ...).

R's ``tfd_*`` methods accept whatever a distribution layer returned (a tensor
carrying its distribution, inside a loss or from ``model(x)``) as well as a
distribution; arguments TensorFlow Probability has no message of its own for
are checked here, in Keras's form.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfprobr_bridge import validation
from tfprobr_bridge.layers.distribution import distribution_of

tfd = tfp.distributions

# The methods R's tfd_* functions call, by name.
METHODS = ("sample", "log_prob", "prob", "log_cdf", "cdf", "log_survival_function",
           "survival_function", "entropy", "mean", "quantile", "variance", "stddev",
           "covariance", "mode", "cross_entropy", "kl_divergence")


def as_distribution(value, name="distribution"):
    """``value``'s distribution (itself, or the one a distribution layer attached)."""
    distribution = distribution_of(value)
    if distribution is None:
        raise TypeError(
            f"`{name}` must be a distribution, or the output of a distribution layer (such as "
            f"layer_independent_normal()). {validation.received(name, validation.short_repr(value))}"
        )
    return distribution


# The methods whose first argument is a value in the distribution's support.
_AT_VALUE = ("log_prob", "prob", "log_cdf", "cdf", "log_survival_function", "survival_function",
             "quantile")


def _as_floats(value, dtype):
    """R's numbers (doubles, always) in ``dtype``, a floating distribution's: R has no
    float32, so an R vector must not make a float32 model's distribution float64."""
    if isinstance(value, (np.ndarray, float, int)) and not isinstance(value, bool) and (
        dtype is not None and tf.as_dtype(dtype).is_floating
    ):
        return tf.convert_to_tensor(np.asarray(value), dtype=dtype)
    return value


def method(method_name, distribution, *args, **kwargs):
    """``distribution.<method_name>(*args, **kwargs)``, for any of ``METHODS``."""
    if method_name not in METHODS:
        raise ValueError(f"`method_name` must be one of {', '.join(METHODS)}. "
                         f"Received: method_name={method_name!r}")
    distribution = as_distribution(distribution)
    if method_name in ("cross_entropy", "kl_divergence") and args:
        args = (as_distribution(args[0], "other"), *args[1:])
    if method_name in _AT_VALUE and args:
        args = (_as_floats(args[0], distribution.dtype), *args[1:])
    return getattr(distribution, method_name)(*args, **kwargs)


def sample(distribution, sample_shape=(), **kwargs):
    """``distribution.sample(sample_shape, ...)`` with ``sample_shape`` checked."""
    return as_distribution(distribution).sample(
        sample_shape=validation.sample_shape(sample_shape), **kwargs)


def new(class_name, arguments):
    """A distribution of TFP's class ``class_name``, made with ``arguments`` (a dict)."""
    cls = getattr(tfd, class_name, None)
    if cls is None:
        raise ValueError(f"TensorFlow Probability has no distribution {class_name!r}.")
    arguments = {key: (distribution_of(value) if key in ("distribution", "components_distribution",
                                                         "mixture_distribution") and
                       distribution_of(value) is not None else value)
                 for key, value in dict(arguments).items()}
    floatx = keras.config.floatx()
    arguments = {key: (tf.convert_to_tensor(value, dtype=floatx)
                       if isinstance(value, np.ndarray) and value.dtype == np.float64 else value)
                 for key, value in arguments.items()}
    return cls(**arguments)
