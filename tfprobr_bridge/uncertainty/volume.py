"""Monte Carlo inference over a whole 3-D volume by overlapping windows.

``predict_volume`` cuts a volume of any shape into windows of the model's
input size that overlap, runs ``n_samples`` stochastic passes of each batch of
windows inside one traced function (every draw of sample ``i`` keyed by
``(seed, i)``, as ``predict_mc`` does, so sample ``i`` is one network across
the whole volume), and blends what the windows say into accumulators the
size of the volume:

- ``sum w``, ``sum w * mean p``, ``sum w * var p`` and, for a classifier,
  ``sum w * mean entropy``, where ``w`` is the window's blending weight
  (a Gaussian with sigma = patch / 8 per axis, as nnU-Net; or constant) and
  the means run over the draws;
- for a classifier, each draw's volume of each class, ``sum_x (w / sum w)(x) *
  p_i(x, c)``, a number per draw and class.

The maps are derived after blending, from the blended accumulators: the mean
probabilities, their standard deviation, the predictive entropy (of the
mean), the expected entropy (the blended mean of the draws' entropies) and
their difference, the mutual information. Memory is the accumulators
(voxels x classes) plus one batch of windows: it does not grow with
``n_samples``, and no draw of the volume is ever kept.
"""

import itertools
import math
import time

import keras
import numpy as np
import tensorflow as tf

from tfprobr_bridge import validation
from tfprobr_bridge.layers import seeding
from tfprobr_bridge.uncertainty import monte_carlo
from tfprobr_bridge.uncertainty.progress import Progress
from tfprobr_bridge.uncertainty.progress import verbosity

BLENDS = ("gaussian", "constant")
# nnU-Net's Gaussian importance map: sigma = patch size / 8 per axis.
SIGMA_SCALE = 1 / 8
# The smallest blending weight, relative to the largest: the Gaussian's tails
# are tiny at a window's corners, and a voxel covered only by corners must
# still get a finite, positive total weight.
WEIGHT_FLOOR = 1e-3


def predict_volume(
    model,
    volume,
    patch_size=None,
    overlap=0.5,
    blend="gaussian",
    n_samples=30,
    batch_size=4,
    seed=None,
    verbose="auto",
    classifier=None,
    from_logits=False,
):
    """Monte Carlo inference over a whole 3-D volume of any shape, by overlapping windows.

    Args:
        model: A Keras 3 model taking windows ``(batch, depth, height, width,
            channels)`` (channels last) and giving per-voxel outputs of the same
            spatial size: class probabilities (or logits, with ``from_logits``)
            or regression values over the last axis.
        volume: A 3-D array ``(depth, height, width)`` or a 4-D one with
            channels last.
        patch_size: The windows' size, one integer or three; default the
            model's input size when it is fixed.
        overlap: The fraction of a window its neighbour overlaps, in [0, 1),
            one number or three (per axis). The step is ``round(patch *
            (1 - overlap))``, at least 1.
        blend: ``"gaussian"`` (weights falling off from a window's centre,
            sigma = patch / 8 per axis, as nnU-Net) or ``"constant"``.
        n_samples: Stochastic passes per window. A model whose draws do not
            differ (a deterministic network) is refused for more than 1.
        batch_size: Windows per traced call.
        seed: None, or an integer that fixes every draw (with None,
            ``keras.utils.set_random_seed`` does).
        verbose: ``"auto"`` (a progress bar with the time left where a person
            watches; one line when done in a log), 0, 1 or 2.
        classifier: Whether the outputs are class probabilities (or logits)
            over their last axis; None (default) decides by the output: two
            or more channels that are probabilities, or ``from_logits``.
        from_logits: The outputs are logits: each draw goes through a softmax.

    Returns:
        A dict of numpy arrays shaped like the volume: for a classifier
        ``"probabilities"`` and ``"std"`` (with the class axis last), ``"labels"``
        (int32, the most probable class), ``"predictive_entropy"``,
        ``"expected_entropy"`` and ``"mutual_information"`` (in nats), and
        ``"draw_volumes"``, each draw's expected number of voxels of each
        class ``(n_samples, classes)``; for a regression, ``"mean"`` and
        ``"std"``. Also ``"windows"`` (how many were run) and ``"seconds"``.

    Raises:
        ValueError, TypeError: for invalid arguments, in Keras's form; a
            ValueError when the draws do not differ and ``n_samples`` > 1.

    Example:

    >>> import numpy as np, keras
    >>> from tfprobr_bridge import Conv3DReparameterization, predict_volume
    >>> model = keras.Sequential([keras.Input((8, 8, 8, 1)),
    ...     Conv3DReparameterization(3, 3, padding="same"), keras.layers.Softmax()])
    >>> result = predict_volume(model, np.ones((11, 9, 10)), n_samples=4, verbose=0, seed=1)
    >>> result["probabilities"].shape, result["labels"].shape
    ((11, 9, 10, 3), (11, 9, 10))
    """
    started = time.perf_counter()
    if not callable(model):
        raise TypeError(
            f"`model` must be a Keras model. {validation.received('model', model)}"
        )
    volume = _as_volume(volume)
    patch = _patch_size(patch_size, model)
    overlap = _overlap(overlap)
    blend = _blend(blend)
    n_samples = validation.positive_integer(n_samples, "n_samples")
    batch_size = validation.positive_integer(batch_size, "batch_size")
    seed = validation.optional_seed(seed)
    level = verbosity(verbose)
    from_logits = validation.boolean(from_logits, "from_logits")
    if classifier is not None:
        classifier = validation.boolean(classifier, "classifier")
    _check_channels(model, volume)

    padded, crop = _pad(volume, patch)
    starts = _window_starts(padded.shape[:3], patch, overlap)
    weights = _blend_weights(patch, blend)
    total = _total_weight(padded.shape[:3], starts, patch, weights)
    # Per voxel, the share of each window's say (weights / total), zero on the
    # padding: what the draws' class volumes add up.
    share = np.zeros(padded.shape[:3], np.float32)
    share[crop[:3]] = 1
    share /= total
    base = tf.constant(
        int(seed) if seed is not None else int(tf.random.uniform([], 0, 2**31 - 1, tf.int64)),
        tf.int64,
    )
    windows = list(itertools.product(*starts))
    progress = Progress("predict_volume", math.ceil(len(windows) / batch_size), level)
    accumulators = None
    traced = None
    for first in range(0, len(windows), batch_size):
        chunk = windows[first:first + batch_size]
        batch = np.stack([_window(padded, corner, patch) for corner in chunk]).astype(
            _dtype(model)
        )
        normalized = np.stack([weights * _window(share, corner, patch) for corner in chunk])
        if traced is None:
            classifier = _decide_classifier(model, batch, classifier, from_logits)
            traced = _traced_function(model, batch.shape[1:], classifier, from_logits)
            if n_samples > 1:
                _check_draws_differ(traced, batch.shape[1:], base)
        outputs = traced(tf.constant(batch), tf.constant(normalized, batch.dtype),
                         tf.constant(n_samples, tf.int32), base)
        outputs = {key: value.numpy() for key, value in outputs.items()}
        if accumulators is None:
            accumulators = _new_accumulators(padded.shape[:3], outputs, classifier, n_samples)
        _blend_into(accumulators, outputs, chunk, patch, weights, classifier)
        progress.update()
    progress.finish(f", {len(windows)} windows of {patch}, {n_samples} samples each")
    result = _maps(accumulators, total, crop, classifier)
    result["windows"] = len(windows)
    result["seconds"] = time.perf_counter() - started
    return result


# --- arguments ------------------------------------------------------------------------------

def check_options(patch_size, overlap, blend, n_samples, batch_size, seed, verbose):
    """Refuse bad options in Keras's form, as ``predict_volume`` would (for callers that
    run it many times, such as ``segment_nifti``)."""
    if patch_size is not None:
        validation.positive_integer_tuple(patch_size, 3, "patch_size")
    _overlap(overlap)
    _blend(blend)
    validation.positive_integer(n_samples, "n_samples")
    validation.positive_integer(batch_size, "batch_size")
    validation.optional_seed(seed)
    verbosity(verbose)


def _as_volume(volume):
    array = np.asarray(volume)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                     or array.dtype == bool):
        raise TypeError(
            "`volume` must be an array of numbers, 3-D (depth, height, width) or 4-D with "
            f"channels last. Received: volume of dtype {array.dtype}"
        )
    if array.ndim == 3:
        array = array[..., np.newaxis]
    if array.ndim != 4 or min(array.shape) == 0:
        raise ValueError(
            "`volume` must be 3-D (depth, height, width) or 4-D with channels last, none of "
            f"size 0. Received: volume of shape {np.shape(volume)}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(
            "`volume` must hold finite numbers only, but it has "
            f"{int(np.sum(~np.isfinite(array)))} NaN or infinite voxels. "
            f"Received: volume of shape {np.shape(volume)}"
        )
    return array.astype(np.float32, copy=False)


def _patch_size(patch_size, model):
    if patch_size is None:
        shape = getattr(model, "input_shape", None)
        spatial = tuple(shape[1:4]) if isinstance(shape, tuple) and len(shape) == 5 else None
        if spatial is None or any(size is None for size in spatial):
            raise ValueError(
                "`patch_size` is required: the model's input shape does not fix the windows' "
                f"size. Received: patch_size=None, model input shape {shape}"
            )
        return tuple(int(size) for size in spatial)
    return validation.positive_integer_tuple(patch_size, 3, "patch_size")


def _overlap(overlap):
    items = overlap if isinstance(overlap, (list, tuple, np.ndarray)) else [overlap]
    items = list(items)
    if len(items) not in (1, 3) or not all(
        isinstance(item, (int, float, np.number)) and not isinstance(item, bool)
        and 0 <= float(item) < 1 for item in items
    ):
        raise ValueError(
            "`overlap` must be a number in [0, 1), or three of them (one per axis). "
            f"{validation.received('overlap', overlap)}"
        )
    values = [float(item) for item in items]
    return tuple(values * 3 if len(values) == 1 else values)


def _blend(blend):
    if not isinstance(blend, str) or blend.lower() not in BLENDS:
        raise ValueError(
            f'`blend` must be "gaussian" or "constant". {validation.received("blend", blend)}'
        )
    return blend.lower()


def _dtype(model):
    return getattr(model, "compute_dtype", None) or keras.config.floatx()


def _check_channels(model, volume):
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, tuple) and len(shape) == 5 and shape[-1] is not None:
        if shape[-1] != volume.shape[-1]:
            raise ValueError(
                f"`volume` has {volume.shape[-1]} channel(s), but the model takes "
                f"{shape[-1]}. Received: volume of shape {volume.shape[:3]} with "
                f"{volume.shape[-1]} channel(s)"
            )


# --- windows and weights --------------------------------------------------------------------

def _pad(volume, patch):
    """The volume padded with zeros, centred, to at least one window per axis; and the crop back."""
    pads = []
    for size, window in zip(volume.shape[:3], patch):
        missing = max(window - size, 0)
        pads.append((missing // 2, missing - missing // 2))
    padded = np.pad(volume, pads + [(0, 0)]) if any(sum(p) for p in pads) else volume
    crop = tuple(slice(before, before + size) for (before, _), size in zip(pads, volume.shape))
    return padded, crop


def _window_starts(shape, patch, overlap):
    """Per axis, the windows' first voxels: a step of patch * (1 - overlap), the last window
    flush with the end, so every voxel is covered."""
    starts = []
    for size, window, fraction in zip(shape, patch, overlap):
        step = max(1, int(round(window * (1 - fraction))))
        axis = list(range(0, size - window + 1, step))
        if axis[-1] != size - window:
            axis.append(size - window)
        starts.append(axis)
    return starts


def _blend_weights(patch, blend):
    if blend == "constant":
        return np.ones(patch, np.float32)
    grids = np.meshgrid(*[np.arange(size, dtype=np.float64) for size in patch], indexing="ij")
    exponent = sum(
        ((grid - (size - 1) / 2) / (size * SIGMA_SCALE)) ** 2 / 2
        for grid, size in zip(grids, patch)
    )
    weights = np.exp(-exponent)
    weights /= weights.max()
    return np.maximum(weights, WEIGHT_FLOOR).astype(np.float32)


def _total_weight(shape, starts, patch, weights):
    total = np.zeros(shape, np.float32)
    for corner in itertools.product(*starts):
        total[_slices(corner, patch)] += weights
    return total


def _slices(corner, patch):
    return tuple(slice(start, start + size) for start, size in zip(corner, patch))


def _window(array, corner, patch):
    return array[_slices(corner, patch)]


# --- the traced draws -----------------------------------------------------------------------

def _decide_classifier(model, batch, classifier, from_logits):
    if classifier is not None:
        if from_logits and not classifier:
            raise ValueError(
                "`from_logits=True` needs a classifier: only a classifier's outputs are "
                "logits to turn into probabilities. Received: from_logits=True, classifier=False"
            )
        return classifier
    if from_logits:
        return True
    with seeding.monte_carlo_sample(tf.constant(0, tf.int64), tf.constant(0)):
        output = np.asarray(model(batch[:1], training=False))
    if output.shape[-1] < 2:
        return False
    sums = output.sum(axis=-1)
    return bool(output.min() >= -1e-3 and output.max() <= 1 + 1e-3
                and np.abs(sums - 1).max() <= 1e-2)


# Draws of one batch of windows in flight at once. Fewer than predict_mc's: a volume's
# batch of windows is large, and with 10 the peak memory still rose from 10 to 100 samples
# (1.15x, bench/volume.py); 4 keeps it flat (1.03x) and both cores busy.
PARALLEL_SAMPLES = 4


def _traced_function(model, window_shape, classifier, from_logits):
    """The traced draws for windows of ``window_shape``: in parallel when the model draws
    only through keyed seeds, one after another otherwise (as ``predict_mc``)."""
    for parallel_iterations in (PARALLEL_SAMPLES, 1):
        function = _trace(model, window_shape, classifier, from_logits, parallel_iterations)
        if parallel_iterations == 1 or not monte_carlo.has_stateful_ops(
            function.get_concrete_function()
        ):
            return function
    return function


def _trace(model, window_shape, classifier, from_logits, parallel_iterations):
    dtype = _dtype(model)

    def draw(batch, base, index):
        with seeding.monte_carlo_sample(base, index):
            output = tf.convert_to_tensor(model(batch, training=False))
        if output.shape.rank != 5 or tuple(output.shape[1:4]) != tuple(window_shape[:3]):
            raise ValueError(
                "The model must give per-voxel outputs of its window's spatial size, "
                f"(batch, {', '.join(map(str, window_shape[:3]))}, channels), for "
                f"predict_volume. Received: outputs of shape {tuple(output.shape)} for "
                f"windows of shape {tuple(window_shape)}"
            )
        if classifier and from_logits:
            output = tf.nn.softmax(output, axis=-1)
        return tf.cast(output, tf.float32)

    def entropy(probabilities):
        return -tf.reduce_sum(tf.math.xlogy(probabilities, probabilities), axis=-1)

    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([None, *window_shape], dtype),
        tf.TensorSpec([None, *window_shape[:3]], dtype),
        tf.TensorSpec([], tf.int32),
        tf.TensorSpec([], tf.int64),
    ])
    def run(batch, normalized, n_samples, base):
        first = draw(batch, base, tf.constant(0))
        channels = tf.shape(first)[-1]
        weight = tf.cast(normalized, tf.float32)[..., tf.newaxis]

        def volumes(sample):  # each class's expected voxel count in this batch, by this draw
            return tf.reduce_sum(weight * sample, axis=[0, 1, 2, 3])

        draw_volumes = tf.zeros([n_samples, channels], tf.float32)
        draw_volumes = tf.tensor_scatter_nd_add(draw_volumes, [[0]], [volumes(first)])
        # Welford's mean and sum of squared deviations: stable where the spread is tiny.
        totals = (first, tf.zeros_like(first), entropy(first) if classifier else tf.zeros([]))

        def body(i, mean, deviations, entropies, draw_volumes, spread):
            sample = draw(batch, base, i)
            if classifier:
                entropies = entropies + entropy(sample)
                draw_volumes = tf.tensor_scatter_nd_add(draw_volumes, [[i]], [volumes(sample)])
            # How far any draw strays from the first: 0 when the draws never differ.
            spread = tf.maximum(spread, tf.reduce_max(tf.abs(sample - first)))
            delta = sample - mean
            mean = mean + delta / tf.cast(i + 1, tf.float32)
            deviations = deviations + delta * (sample - mean)
            return i + 1, mean, deviations, entropies, draw_volumes, spread

        _, mean, deviations, entropies, draw_volumes, spread = tf.while_loop(
            lambda i, *_: i < n_samples, body,
            (tf.constant(1), *totals, draw_volumes, tf.constant(0.0)),
            parallel_iterations=parallel_iterations,
        )
        count = tf.cast(n_samples, tf.float32)
        outputs = {"mean": mean, "variance": deviations / count, "spread": spread}
        if classifier:
            outputs["entropy"] = entropies / count
            outputs["draw_volumes"] = draw_volumes
        return outputs

    return run


def _check_draws_differ(traced, window_shape, base):
    """Refuse a model whose draws are all the same, judged on a window of noise.

    The volume's own windows cannot tell: where the input is 0 (background) a
    Bayesian layer with a point-mass bias gives the same output every draw.
    """
    noise = np.random.default_rng(0).standard_normal((1, *window_shape)).astype(np.float32)
    ones = np.ones((1, *window_shape[:3]), np.float32)
    spread = traced(tf.constant(noise, traced.input_signature[0].dtype),
                    tf.constant(ones, traced.input_signature[1].dtype), tf.constant(2), base)
    if float(spread["spread"]) == 0:
        raise ValueError(
            "The model's draws are all the same: it is deterministic (no Bayesian layer, or "
            "dropout switched off at inference), so they measure no uncertainty. Use a model "
            "with variational layers, or pass n_samples=1 for a single pass."
        )


# --- blending -------------------------------------------------------------------------------

def _new_accumulators(shape, outputs, classifier, n_samples):
    channels = outputs["mean"].shape[-1]
    accumulators = {
        "mean": np.zeros((*shape, channels), np.float32),
        "variance": np.zeros((*shape, channels), np.float32),
    }
    if classifier:
        accumulators["entropy"] = np.zeros(shape, np.float32)
        accumulators["draw_volumes"] = np.zeros((n_samples, channels), np.float64)
    return accumulators


def _blend_into(accumulators, outputs, chunk, patch, weights, classifier):
    for index, corner in enumerate(chunk):
        region = _slices(corner, patch)
        accumulators["mean"][region] += weights[..., np.newaxis] * outputs["mean"][index]
        accumulators["variance"][region] += weights[..., np.newaxis] * outputs["variance"][index]
        if classifier:
            accumulators["entropy"][region] += weights * outputs["entropy"][index]
    if classifier:
        accumulators["draw_volumes"] += outputs["draw_volumes"]


def _maps(accumulators, total, crop, classifier):
    spatial = crop[:3]
    weight = total[spatial][..., np.newaxis]
    mean = accumulators["mean"][spatial] / weight
    std = np.sqrt(np.maximum(accumulators["variance"][spatial] / weight, 0)).astype(np.float32)
    if not classifier:
        return {"mean": mean.astype(np.float32), "std": std}
    probabilities = np.clip(mean, 0, 1)
    predictive = -np.sum(probabilities * np.log(np.where(probabilities > 0, probabilities, 1)),
                         axis=-1)
    expected = accumulators["entropy"][spatial] / total[spatial]
    return {
        "probabilities": probabilities.astype(np.float32),
        "std": std,
        "labels": np.argmax(mean, axis=-1).astype(np.int32),
        "predictive_entropy": predictive.astype(np.float32),
        "expected_entropy": expected.astype(np.float32),
        "mutual_information": np.maximum(predictive - expected, 0).astype(np.float32),
        "draw_volumes": accumulators["draw_volumes"].astype(np.float64),
    }
