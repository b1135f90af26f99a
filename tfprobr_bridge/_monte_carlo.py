"""Monte Carlo prediction: the predictive mean and spread of a stochastic model."""

import keras
import numpy as np
import tensorflow as tf

from tfprobr_bridge import _validation

# The traced functions live on the model, as Keras keeps its own
# predict_function there: they close over the model, so a cache held anywhere
# else would keep every model alive. The holder is a plain object, which
# neither Keras's nor TensorFlow's attribute tracking adopts (a tf.function in
# a tracked attribute would be exported by tf.saved_model.save).
_CACHE_ATTRIBUTE = "_tfprobr_predict_mc_cache"


class _TracedCache:
    """One traced function per (example shape, dtype, keep samples).

    Each is built once and reused for every batch, sample count and later
    call, until the model's layers or variables change (a layer added or
    removed, a rebuild), which would make the trace stale.
    """

    def __init__(self):
        self.parts = None
        self.functions = {}


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
        x: Inputs: a numpy array or tensor with a leading batch axis, or, for
            a model with several inputs, a list or dict of them (as for
            ``model.predict``).
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
    batches = range(0, _examples(x), batch_size)
    show = len(batches) > 1 if verbose == "auto" else bool(verbose)
    progress = keras.utils.Progbar(len(batches), unit_name="batch") if show else None

    traced = _traced_function(model, x, return_samples)
    means, stddevs, samples = [], [], []
    for step, start in enumerate(batches):
        batch = tf.nest.map_structure(lambda part: part[start : start + batch_size], x)
        outputs = traced(batch, tf.constant(n_samples, tf.int32))
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
    """``x`` as tensors: one array, or a list or dict of them for a multi-input model."""
    if isinstance(x, dict) or (
        isinstance(x, (list, tuple)) and x and all(hasattr(part, "shape") for part in x)
    ):
        parts = tf.nest.map_structure(lambda part: _as_tensor(part, model), x)
        sizes = {int(part.shape[0]) for part in tf.nest.flatten(parts)}
        if len(sizes) > 1:
            raise ValueError(
                "`x` must give every input the same number of examples. "
                f"Received: x with batch sizes {sorted(sizes)}"
            )
        return parts
    return _as_tensor(x, model)


def _as_tensor(x, model):
    try:
        x = tf.convert_to_tensor(x)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"`x` must be an array or tensor with a leading batch axis, or a list or "
            f"dict of them ({error}). {_validation.received('x', type(x).__name__)}"
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


def _examples(x):
    return int(tf.nest.flatten(x)[0].shape[0])


def _traced_function(model, x, return_samples):
    key = (_signature_key(x), return_samples)
    cache = getattr(model, _CACHE_ATTRIBUTE, None)
    if not isinstance(cache, _TracedCache):
        cache = _TracedCache()
        try:
            object.__setattr__(model, _CACHE_ATTRIBUTE, cache)
        except (AttributeError, TypeError):
            return _trace(model, x, return_samples)  # Cannot hold a cache: trace anew.
    parts = _parts(model)
    # Compared by identity (a Keras variable's == is elementwise); the cache
    # holds the parts, so their ids cannot be reused meanwhile.
    if cache.parts is None or list(map(id, parts)) != list(map(id, cache.parts)):
        cache.parts, cache.functions = parts, {}
    if key not in cache.functions:
        cache.functions[key] = _trace(model, x, return_samples)
    return cache.functions[key]


def _parts(model):
    """What a trace depends on: which layers run and which variables they read."""
    layers = getattr(model, "layers", None) or ()
    variables = getattr(model, "variables", None) or ()
    return (*layers, None, *variables)


def _signature_key(x):
    structure = tf.nest.map_structure(lambda _: None, x)
    parts = tuple((tuple(part.shape[1:]), part.dtype.name) for part in tf.nest.flatten(x))
    return repr(structure), parts


def _trace(model, x, return_samples):
    signature = [
        tf.nest.map_structure(lambda part: tf.TensorSpec([None, *part.shape[1:]], part.dtype), x),
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
