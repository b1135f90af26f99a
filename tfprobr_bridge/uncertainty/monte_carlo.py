"""Monte Carlo prediction: the predictive mean and spread of a stochastic model."""

import keras
import numpy as np
import tensorflow as tf

from tfprobr_bridge.layers import seeding
from tfprobr_bridge.uncertainty.progress import Progress
from tfprobr_bridge.uncertainty.progress import verbosity
from tfprobr_bridge import validation

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

# How many samples TensorFlow may run at once when their draws are keyed.
PARALLEL_SAMPLES = 10

# TensorFlow's random ops that advance a hidden state: run in parallel, samples
# would take their numbers in whatever order they ran.
_STATEFUL_RANDOM_OPS = frozenset({
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal",
    "ParameterizedTruncatedNormal", "RandomGamma", "RandomPoisson", "RandomPoissonV2",
    "RandomShuffle", "Multinomial", "RandomCrop", "RngSkip", "RngReadAndSkip",
    "NonDeterministicInts",
})
_STATE_WRITING_PREFIXES = ("Assign", "ResourceScatter", "ResourceApply", "Stateful")

# How far a draw's class probabilities may stray from [0, 1], and their sum from 1.
_PROBABILITY_TOLERANCE = {"float16": 2e-2, "bfloat16": 5e-2, "float32": 1e-3, "float64": 1e-6}


def predict_mc(
    model,
    x,
    n_samples=30,
    batch_size=None,
    return_samples=False,
    verbose="auto",
    classifier=False,
    from_logits=False,
    seed=None,
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

    Reruns give the same numbers: every draw of this package's layers in
    sample ``i`` is keyed by ``(seed, i)``, so samples may run in parallel
    without changing what they draw. With ``seed=None`` the key comes from
    TensorFlow's global random state, which ``keras.utils.set_random_seed``
    (R: ``set_random_seed()``) fixes. A model whose graph draws or writes
    state by other means (a layer of its own calling ``tf.random``) runs its
    samples one after another, so its reruns repeat too.

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
        x: Inputs, as for ``model.predict``: a numpy array or tensor with a
            leading batch axis, a list or dict of them for a model with
            several inputs, or a batched ``tf.data.Dataset`` (its batches are
            used, and labels or weights in its elements are ignored).
        n_samples: Number of stochastic forward passes, at least 1.
        batch_size: Examples per traced call (default 32); not for a dataset.
        return_samples: Also return every draw, stacked on a new first axis
            (``n_samples`` times the output's memory).
        verbose: ``"auto"`` (a progress bar with the time left where a person
            watches, a terminal or a notebook; one line when done otherwise,
            as in a log), ``0`` for nothing, ``1`` for the bar, ``2`` for the
            one line.
        classifier: The outputs are class probabilities (or logits, with
            ``from_logits``) over their last axis, of size 2 or more; add the
            entropy summaries. Each draw is checked: outputs that are not
            probabilities (outside [0, 1], or not summing to 1 over the last
            axis) are an error that says to pass ``from_logits=True``.
        from_logits: With ``classifier``, the outputs are logits: each draw
            goes through a softmax first, and ``mean``, ``stddev`` and
            ``samples`` are of the probabilities.
        seed: None, or an integer from 0 to 2**31 - 1 that fixes every draw.

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
            class axis of size 2 or more, or are not probabilities.

    Example:

    >>> import numpy as np, keras
    >>> from tfprobr_bridge import Conv3DReparameterization, predict_mc
    >>> model = keras.Sequential([keras.Input((4, 4, 4, 1)),
    ...                           Conv3DReparameterization(2, 3, padding="same")])
    >>> result = predict_mc(model, np.ones((3, 4, 4, 4, 1), "float32"), n_samples=5, verbose=0)
    >>> result["mean"].shape, result["stddev"].shape
    ((3, 4, 4, 4, 2), (3, 4, 4, 4, 2))

    A segmentation network with 3 classes, its logits summarised per voxel:

    >>> segmenter = keras.Sequential([keras.Input((4, 4, 4, 1)),
    ...                               Conv3DReparameterization(3, 3, padding="same")])
    >>> result = predict_mc(segmenter, np.ones((2, 4, 4, 4, 1), "float32"),
    ...                     n_samples=5, classifier=True, from_logits=True, verbose=0)
    >>> result["mean"].shape, result["mutual_information"].shape
    ((2, 4, 4, 4, 3), (2, 4, 4, 4))
    >>> bool(np.allclose(result["mean"].sum(axis=-1), 1.0, atol=1e-5))
    True
    >>> bool(np.all(result["mutual_information"] <= result["predictive_entropy"]))
    True
    """
    if not callable(model):
        raise TypeError(
            f"`model` must be a Keras model or layer. {validation.received('model', model)}"
        )
    n_samples = validation.positive_integer(n_samples, "n_samples")
    return_samples = validation.boolean(return_samples, "return_samples")
    classifier = validation.boolean(classifier, "classifier")
    from_logits = validation.boolean(from_logits, "from_logits")
    seed = validation.optional_seed(seed)
    level = verbosity(verbose)
    if from_logits and not classifier:
        raise ValueError(
            "`from_logits=True` needs `classifier=True`: only a classifier's outputs "
            "are logits to turn into probabilities. "
            "Received: from_logits=True, classifier=False"
        )
    batches, count = _batches(x, batch_size, model)
    base = _base_seed(seed)
    progress = Progress("predict_mc", count, level)
    options = (return_samples, classifier, from_logits)
    parts = {}
    examples = 0
    for batch in batches:
        traced = _traced_function(model, batch, options)
        outputs = traced(batch, tf.constant(n_samples, tf.int32), base)
        if classifier and not from_logits:
            _check_probabilities(outputs.pop("probability_range"), outputs["mean"].dtype)
        for key, value in outputs.items():
            parts.setdefault(key, []).append(value.numpy())
        examples += int(outputs["mean"].shape[0])
        progress.update()
    if not parts:
        raise ValueError("`x` must hold at least one example. Received: x=an empty dataset")
    progress.finish(f", {examples} examples, {n_samples} samples each")
    result = {
        "mean": np.concatenate(parts["mean"]),
        "stddev": np.sqrt(np.maximum(np.concatenate(parts["variance"]), 0.0)),
    }
    if return_samples:
        result["samples"] = np.concatenate(parts["samples"], axis=1)
    if classifier:
        result.update((key, np.concatenate(parts[key])) for key in _CLASSIFIER_KEYS)
    return result


def _batches(x, batch_size, model):
    """(an iterable of input batches, their number or None when unknown)."""
    if isinstance(x, tf.data.Dataset):
        if batch_size is not None:
            raise ValueError(
                "`batch_size` cannot be given with a tf.data.Dataset, whose own batches are "
                f"used (as in model.predict). Received: batch_size={batch_size!r}"
            )
        cardinality = int(x.cardinality())
        count = cardinality if cardinality >= 0 else None
        return (_as_batch(keras.utils.unpack_x_y_sample_weight(element)[0], model)
                for element in x), count
    size = 32 if batch_size is None else validation.positive_integer(batch_size, "batch_size")
    x = _as_batch(x, model)
    starts = range(0, _examples(x), size)
    return (tf.nest.map_structure(lambda part: part[start : start + size], x)
            for start in starts), len(starts)


def _base_seed(seed):
    """The key of this run's draws: ``seed``, or one drawn from TensorFlow's global state."""
    if seed is None:
        seed = tf.random.uniform([], 0, 2**31 - 1, dtype=tf.int64)
    return tf.constant(int(seed), tf.int64)


def _check_probabilities(value_range, dtype):
    low, high, deviation = (float(value) for value in value_range.numpy())
    tolerance = _PROBABILITY_TOLERANCE.get(tf.as_dtype(dtype).name, 1e-3)
    if low >= -tolerance and high <= 1 + tolerance and deviation <= tolerance:
        return
    raise ValueError(
        "`classifier=True` needs class probabilities over the outputs' last axis (each in "
        f"[0, 1], summing to 1), but the model's outputs range from {low:.4g} to {high:.4g} "
        f"and their sums over the last axis differ from 1 by up to {deviation:.4g}. If the "
        "model ends in logits (no softmax), pass `from_logits=True`; if it is not a "
        "classifier, leave `classifier` off. Received: classifier=True, from_logits=False"
    )


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
            f"dict of them ({error}). {validation.received('x', type(x).__name__)}"
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


def _traced_function(model, x, options):
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
    """The traced Monte Carlo loop for inputs like ``x``: one draw, then one accumulation loop.

    Samples run in parallel when the model's graph draws only through
    ``MonteCarloStream`` seeds; a graph with stateful random ops or variable
    writes is traced again to run its samples in order.
    """
    signature = [
        tf.nest.map_structure(lambda part: tf.TensorSpec([None, *part.shape[1:]], part.dtype), x),
        tf.TensorSpec([], tf.int32),
        tf.TensorSpec([], tf.int64),
    ]
    draw = _draw_function(model, classifier, from_logits)
    for parallel_iterations in (PARALLEL_SAMPLES, 1):
        function = tf.function(
            _loop(draw, return_samples, classifier, from_logits, parallel_iterations),
            input_signature=signature,
            autograph=False,  # Errors raised while tracing reach the user as they are.
        )
        if parallel_iterations == 1 or not has_stateful_ops(function.get_concrete_function()):
            return function
    return function


def _draw_function(model, classifier, from_logits):
    """Sample ``index``: the output (as probabilities for a classifier) and what else it adds.

    The extras: a classifier's entropy, and for probabilities the range that
    ``_check_probabilities`` judges (lowest value, highest value, largest
    distance of a sum over the class axis from 1).
    """

    def draw(batch, base, index):
        with seeding.monte_carlo_sample(base, index):
            output = tf.convert_to_tensor(model(batch, training=False))
        if not classifier:
            return output, {}
        if not _has_class_axis(output):
            raise ValueError(
                "`classifier=True` needs model outputs whose last axis holds 2 or more "
                "classes (probabilities, or logits with `from_logits=True`), after the "
                f"batch axis. Received: outputs of shape {tuple(output.shape)}"
            )
        if from_logits:
            log_probabilities = tf.nn.log_softmax(output, axis=-1)
            probabilities = tf.exp(log_probabilities)
            # A class whose probability underflows to 0 adds 0, even at a logit of -inf.
            entropy = -tf.reduce_sum(
                tf.math.multiply_no_nan(log_probabilities, probabilities), -1
            )
            return probabilities, {"entropy": entropy}
        deviation = tf.reduce_max(tf.abs(tf.reduce_sum(output, axis=-1) - 1))
        value_range = tf.cast(
            tf.stack([tf.reduce_min(output), tf.reduce_max(output), deviation]), tf.float32
        )
        return output, {"entropy": _entropy(output), "range": value_range}

    return draw


def _loop(draw, return_samples, classifier, from_logits, parallel_iterations):
    def draws(batch, n_samples, base):
        first, extras = draw(batch, base, tf.constant(0))
        # i, mean, Welford's M2, the extras summed (entropy) or ranged, kept draws.
        kept = ()
        if return_samples:
            array = tf.TensorArray(first.dtype, size=n_samples, element_shape=first.shape)
            kept = (array.write(0, first),)
        state = (tf.constant(1), first, tf.zeros_like(first), extras, kept)

        def body(i, mean, squares, totals, kept):
            sample, extras = draw(batch, base, i)
            delta = sample - mean
            mean = mean + delta / tf.cast(i + 1, sample.dtype)
            squares = squares + delta * (sample - mean)
            totals = {key: _combine(key, totals[key], value) for key, value in extras.items()}
            kept = tuple(array.write(i, sample) for array in kept)
            return i + 1, mean, squares, totals, kept

        _, mean, squares, totals, kept = tf.while_loop(
            lambda i, *_: i < n_samples, body, state, parallel_iterations=parallel_iterations
        )
        count = tf.cast(n_samples, first.dtype)
        outputs = {"mean": mean, "variance": squares / count}
        if return_samples:
            outputs["samples"] = kept[0].stack()
        if classifier:
            # Welford's mean of values >= 0 cannot round below 0; the clip only
            # guards the log against outputs that were not probabilities.
            predictive = _entropy(tf.maximum(mean, 0))
            expected = totals["entropy"] / count
            outputs["predictive_entropy"] = predictive
            outputs["expected_entropy"] = expected
            outputs["mutual_information"] = tf.maximum(predictive - expected, 0)
        if classifier and not from_logits:
            outputs["probability_range"] = totals["range"]
        return outputs

    return draws


def _combine(key, total, value):
    if key == "range":  # lowest, highest, largest deviation
        return tf.stack([tf.minimum(total[0], value[0]), tf.maximum(total[1], value[1]),
                         tf.maximum(total[2], value[2])])
    return total + value


def has_stateful_ops(concrete):
    """Whether the traced graph draws or writes state other than through stateless seeds."""
    graph = concrete.graph.as_graph_def()
    operations = {node.op for node in graph.node}
    for function in graph.library.function:
        operations.update(node.op for node in function.node_def)
    return any(op in _STATEFUL_RANDOM_OPS or op.startswith(_STATE_WRITING_PREFIXES)
               for op in operations)


def _entropy(probabilities):
    """Entropy in nats over the last axis, with 0 * log(0) taken as 0."""
    return -tf.reduce_sum(tf.math.xlogy(probabilities, probabilities), axis=-1)


def _has_class_axis(output):
    """Whether ``output`` has a class axis of size >= 2 after its batch axis
    (a size unknown until run time passes)."""
    rank = output.shape.rank
    return rank is None or (rank >= 2 and (output.shape[-1] is None or output.shape[-1] >= 2))
