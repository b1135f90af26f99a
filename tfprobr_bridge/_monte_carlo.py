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
    """One traced function per (example shape, dtype, keep samples, classifier, logits).

    Each is built once and reused for every batch, sample count and later
    call, until the model's layers or variables change (a layer added or
    removed, a rebuild), which would make the trace stale.
    """

    def __init__(self):
        self.parts = None
        self.functions = {}


# The classifier summaries, in the order the result dict lists them.
_CLASSIFIER_KEYS = ("predictive_entropy", "expected_entropy", "mutual_information")


def predict_mc(
    model,
    x,
    n_samples=30,
    batch_size=32,
    return_samples=False,
    verbose="auto",
    classifier=False,
    from_logits=False,
):
    """Predict ``n_samples`` times and summarise: the predictive mean and std.

    Every call of a model with Bayesian layers draws new weights, so repeated
    predictions differ; their spread is the model's (epistemic) uncertainty.
    All draws for one batch run inside one traced TensorFlow function (a
    ``tf.while_loop`` accumulating the mean and variance with Welford's
    method), which is traced once per model and input shape and then reused,
    whatever the batch size or number of samples. That is much faster than
    calling the model in a Python loop, and memory does not grow with
    ``n_samples`` unless the samples are kept.

    For a classifier (``classifier=True``: outputs are class probabilities
    over the last axis) the same loop also splits the uncertainty, in nats,
    per prediction:

    - ``predictive_entropy``: the entropy of the mean probabilities, the
      total uncertainty;
    - ``expected_entropy``: the mean over draws of each draw's entropy, the
      part the data holds (aleatoric);
    - ``mutual_information``: their difference, the part the weights hold
      (epistemic; BALD's score), clipped at 0 against round-off.

    They cost one entropy per draw, accumulated in the loop: no draw is
    stored for them.

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
        classifier: The outputs are class probabilities (or logits, with
            ``from_logits``) over their last axis, of size 2 or more; add the
            entropy summaries.
        from_logits: With ``classifier``, the outputs are logits: each draw
            goes through a softmax first, and ``mean``, ``stddev`` and
            ``samples`` are of the probabilities.

    Returns:
        A dict with numpy arrays ``"mean"`` and ``"stddev"`` (population
        standard deviation over the draws, ``ddof=0``), each shaped like one
        prediction, and ``"samples"`` when ``return_samples`` is True. With
        ``classifier``, also ``"predictive_entropy"``, ``"expected_entropy"``
        and ``"mutual_information"``, each shaped like one prediction without
        its class axis.

    Raises:
        ValueError, TypeError: for invalid arguments, in Keras's form;
            ValueError when ``classifier`` is set and the outputs have no
            class axis of size 2 or more.

    Example:

    >>> import numpy as np, keras
    >>> from tfprobr_bridge import Conv3DReparameterization, predict_mc
    >>> model = keras.Sequential([keras.Input((4, 4, 4, 1)),
    ...                           Conv3DReparameterization(2, 3, padding="same")])
    >>> result = predict_mc(model, np.ones((3, 4, 4, 4, 1), "float32"), n_samples=5)
    >>> result["mean"].shape, result["stddev"].shape
    ((3, 4, 4, 4, 2), (3, 4, 4, 4, 2))

    A segmentation network with 3 classes, its logits summarised per voxel:

    >>> segmenter = keras.Sequential([keras.Input((4, 4, 4, 1)),
    ...                               Conv3DReparameterization(3, 3, padding="same")])
    >>> result = predict_mc(segmenter, np.ones((2, 4, 4, 4, 1), "float32"),
    ...                     n_samples=5, classifier=True, from_logits=True)
    >>> result["mean"].shape, result["mutual_information"].shape
    ((2, 4, 4, 4, 3), (2, 4, 4, 4))
    >>> bool(np.allclose(result["mean"].sum(axis=-1), 1.0, atol=1e-5))
    True
    >>> bool(np.all(result["mutual_information"] <= result["predictive_entropy"]))
    True
    """
    if not callable(model):
        raise TypeError(
            f"`model` must be a Keras model or layer. {_validation.received('model', model)}"
        )
    n_samples = _validation.positive_integer(n_samples, "n_samples")
    batch_size = _validation.positive_integer(batch_size, "batch_size")
    return_samples = _validation.boolean(return_samples, "return_samples")
    classifier = _validation.boolean(classifier, "classifier")
    from_logits = _validation.boolean(from_logits, "from_logits")
    if from_logits and not classifier:
        raise ValueError(
            "`from_logits=True` needs `classifier=True`: only a classifier's outputs "
            "are logits to turn into probabilities. "
            "Received: from_logits=True, classifier=False"
        )
    x = _as_batch(x, model)
    batches = range(0, _examples(x), batch_size)
    show = len(batches) > 1 if verbose == "auto" else bool(verbose)
    progress = keras.utils.Progbar(len(batches), unit_name="batch") if show else None

    traced = _traced_function(model, x, return_samples, classifier, from_logits)
    parts = {}
    for step, start in enumerate(batches):
        batch = tf.nest.map_structure(lambda part: part[start : start + batch_size], x)
        outputs = traced(batch, tf.constant(n_samples, tf.int32))
        for key, value in outputs.items():
            parts.setdefault(key, []).append(value.numpy())
        if progress is not None:
            progress.update(step + 1)
    result = {
        "mean": np.concatenate(parts["mean"]),
        "stddev": np.sqrt(np.maximum(np.concatenate(parts["variance"]), 0.0)),
    }
    if return_samples:
        result["samples"] = np.concatenate(parts["samples"], axis=1)
    if classifier:
        result.update((key, np.concatenate(parts[key])) for key in _CLASSIFIER_KEYS)
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


def _traced_function(model, x, return_samples, classifier, from_logits):
    options = (return_samples, classifier, from_logits)
    key = (_signature_key(x), options)
    cache = getattr(model, _CACHE_ATTRIBUTE, None)
    if not isinstance(cache, _TracedCache):
        cache = _TracedCache()
        try:
            object.__setattr__(model, _CACHE_ATTRIBUTE, cache)
        except (AttributeError, TypeError):
            return _trace(model, x, *options)  # Cannot hold a cache: trace anew.
    parts = _parts(model)
    # Compared by identity (a Keras variable's == is elementwise); the cache
    # holds the parts, so their ids cannot be reused meanwhile.
    if cache.parts is None or list(map(id, parts)) != list(map(id, cache.parts)):
        cache.parts, cache.functions = parts, {}
    if key not in cache.functions:
        cache.functions[key] = _trace(model, x, *options)
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


def _trace(model, x, return_samples, classifier, from_logits):
    signature = [
        tf.nest.map_structure(lambda part: tf.TensorSpec([None, *part.shape[1:]], part.dtype), x),
        tf.TensorSpec([], tf.int32),
    ]

    # Output shapes refused for a classifier, found while tracing and raised
    # after it: raised inside, AutoGraph would bury the message in its own.
    refused = []

    def predict(batch):
        """One draw (as probabilities for a classifier) and, for a classifier, its entropy."""
        output = tf.convert_to_tensor(model(batch, training=False))
        if not classifier:
            return output, ()
        if not _has_class_axis(output):
            refused.append(output.shape)
            return output, ()
        if not from_logits:
            return output, (_entropy(output),)
        log_probabilities = tf.nn.log_softmax(output, axis=-1)
        probabilities = tf.exp(log_probabilities)
        # A class whose probability underflows to 0 adds 0, even at a logit of -inf.
        entropy = -tf.reduce_sum(tf.math.multiply_no_nan(log_probabilities, probabilities), -1)
        return probabilities, (entropy,)

    @tf.function(input_signature=signature)
    def draws(batch, n_samples):
        first, entropy = predict(batch)
        # i, mean, Welford's M2, the sum of per-draw entropies (classifier), kept draws.
        kept = ()
        if return_samples:
            array = tf.TensorArray(first.dtype, size=n_samples, element_shape=first.shape)
            kept = (array.write(0, first),)
        state = (tf.constant(1), first, tf.zeros_like(first), entropy, kept)

        def body(i, mean, squares, entropy_sum, kept):
            draw, entropy = predict(batch)
            delta = draw - mean
            mean = mean + delta / tf.cast(i + 1, draw.dtype)
            squares = squares + delta * (draw - mean)
            entropy_sum = tuple(total + value for total, value in zip(entropy_sum, entropy))
            kept = tuple(array.write(i, draw) for array in kept)
            return i + 1, mean, squares, entropy_sum, kept

        _, mean, squares, entropy_sum, kept = tf.while_loop(
            lambda i, *_: i < n_samples, body, state
        )
        count = tf.cast(n_samples, first.dtype)
        outputs = {"mean": mean, "variance": squares / count}
        if return_samples:
            outputs["samples"] = kept[0].stack()
        if classifier and not refused:
            # Welford's mean of values >= 0 cannot round below 0; the clip only
            # guards the log against outputs that were not probabilities.
            predictive = _entropy(tf.maximum(mean, 0))
            expected = entropy_sum[0] / count
            outputs["predictive_entropy"] = predictive
            outputs["expected_entropy"] = expected
            outputs["mutual_information"] = tf.maximum(predictive - expected, 0)
        return outputs

    draws.get_concrete_function()  # Trace now, to refuse outputs with no class axis.
    if refused:
        raise ValueError(
            "`classifier=True` needs model outputs whose last axis holds 2 or more "
            "classes (probabilities, or logits with `from_logits=True`), after the "
            f"batch axis. Received: outputs of shape {tuple(refused[0])}"
        )
    return draws


def _entropy(probabilities):
    """Entropy in nats over the last axis, with 0 * log(0) taken as 0."""
    return -tf.reduce_sum(tf.math.xlogy(probabilities, probabilities), axis=-1)


def _has_class_axis(output):
    """Whether ``output`` has a class axis of size >= 2 after its batch axis
    (a size unknown until run time passes)."""
    rank = output.shape.rank
    return rank is None or (rank >= 2 and (output.shape[-1] is None or output.shape[-1] >= 2))
