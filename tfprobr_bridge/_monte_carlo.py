"""Monte Carlo prediction: the predictive mean and spread of a stochastic model."""

import weakref

import keras
import numpy as np
import tensorflow as tf

from tfprobr_bridge import _validation

# One traced function per (model, example shape, dtype, keep samples): built
# once, then reused for every batch, sample count and later call.
_TRACED = weakref.WeakKeyDictionary()


def predict_mc(model, x, n_samples=30, batch_size=32, return_samples=False, verbose="auto"):
    """Predict ``n_samples`` times and summarise: the predictive mean and std.

    Every call of a model with Bayesian layers draws new weights, so repeated
    predictions differ; their spread is the model's (epistemic) uncertainty.
    All draws for one batch run inside one traced TensorFlow function (a
    ``tf.while_loop`` accumulating the mean and variance with Welford's
    method), which is traced once per model and input shape and then reused,
    whatever the batch size or number of samples. That is much faster than
    calling the model in a Python loop, and memory does not grow with
    ``n_samples`` unless the samples are kept.

    Args:
        model: A Keras 3 model (or any callable layer).
        x: Inputs: a numpy array or tensor with a leading batch axis.
        n_samples: Number of stochastic forward passes, at least 1.
        batch_size: Examples per traced call.
        return_samples: Also return every draw, stacked on a new first axis
            (``n_samples`` times the output's memory).
        verbose: ``"auto"`` shows a progress bar when there is more than one
            batch; ``0``/False for none, ``1``/True to always show it.

    Returns:
        A dict with numpy arrays ``"mean"`` and ``"stddev"`` (population
        standard deviation over the draws, ``ddof=0``), each shaped like one
        prediction, and ``"samples"`` when ``return_samples`` is True.

    Raises:
        ValueError, TypeError: for invalid arguments, in Keras's form.

    Example:

    >>> import numpy as np, keras
    >>> from tfprobr_bridge import Conv3DReparameterization, predict_mc
    >>> model = keras.Sequential([keras.Input((4, 4, 4, 1)),
    ...                           Conv3DReparameterization(2, 3, padding="same")])
    >>> result = predict_mc(model, np.ones((3, 4, 4, 4, 1), "float32"), n_samples=5)
    >>> result["mean"].shape, result["stddev"].shape
    ((3, 4, 4, 4, 2), (3, 4, 4, 4, 2))
    """
    if not callable(model):
        raise TypeError(
            f"`model` must be a Keras model or layer. {_validation.received('model', model)}"
        )
    n_samples = _validation.positive_integer(n_samples, "n_samples")
    batch_size = _validation.positive_integer(batch_size, "batch_size")
    return_samples = _validation.boolean(return_samples, "return_samples")
    x = _as_batch(x, model)
    batches = range(0, int(x.shape[0]), batch_size)
    show = len(batches) > 1 if verbose == "auto" else bool(verbose)
    progress = keras.utils.Progbar(len(batches), unit_name="batch") if show else None

    traced = _traced_function(model, x, return_samples)
    means, stddevs, samples = [], [], []
    for step, start in enumerate(batches):
        outputs = traced(x[start : start + batch_size], tf.constant(n_samples, tf.int32))
        means.append(outputs[0].numpy())
        stddevs.append(np.sqrt(np.maximum(outputs[1].numpy(), 0.0)))
        if return_samples:
            samples.append(outputs[2].numpy())
        if progress is not None:
            progress.update(step + 1)
    result = {"mean": np.concatenate(means), "stddev": np.concatenate(stddevs)}
    if return_samples:
        result["samples"] = np.concatenate(samples, axis=1)
    return result


def _as_batch(x, model):
    try:
        x = tf.convert_to_tensor(x)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"`x` must be an array or tensor with a leading batch axis ({error}). "
            f"{_validation.received('x', type(x).__name__)}"
        ) from None
    if x.shape.rank is None or x.shape.rank < 1 or x.shape[0] == 0:
        raise ValueError(
            "`x` must have a leading batch axis with at least one example. "
            f"Received: x.shape={tuple(x.shape)}"
        )
    dtype = getattr(model, "compute_dtype", None) or keras.config.floatx()
    if x.dtype.is_floating and x.dtype != dtype:
        x = tf.cast(x, dtype)
    return x


def _traced_function(model, x, return_samples):
    per_model = _TRACED.setdefault(model, {})
    key = (tuple(x.shape[1:]), x.dtype.name, return_samples)
    if key not in per_model:
        per_model[key] = _trace(model, x, return_samples)
    return per_model[key]


def _trace(model, x, return_samples):
    signature = [
        tf.TensorSpec([None, *x.shape[1:]], x.dtype),
        tf.TensorSpec([], tf.int32),
    ]

    @tf.function(input_signature=signature)
    def draws(batch, n_samples):
        first = tf.convert_to_tensor(model(batch, training=False))
        state = (tf.constant(1), first, tf.zeros_like(first))  # i, mean, Welford's M2
        if return_samples:
            kept = tf.TensorArray(first.dtype, size=n_samples, element_shape=first.shape)
            state += (kept.write(0, first),)

        def body(i, mean, squares, *kept):
            draw = tf.convert_to_tensor(model(batch, training=False))
            delta = draw - mean
            mean = mean + delta / tf.cast(i + 1, draw.dtype)
            squares = squares + delta * (draw - mean)
            return (i + 1, mean, squares, *(array.write(i, draw) for array in kept))

        _, mean, squares, *kept = tf.while_loop(lambda i, *_: i < n_samples, body, state)
        variance = squares / tf.cast(n_samples, first.dtype)
        return (mean, variance, kept[0].stack()) if return_samples else (mean, variance)

    return draws
