"""The variational family: training-step ratios and gradient variance, per estimator and rank.

Training step: for each estimator (reparameterization, Flipout, local
reparameterization) and rank (dense, conv 1-D, 2-D, 3-D), a small model built
around the layer (variational layer with ReLU, global average pooling for a
convolution, a dense head of 2) is trained the way users train it,
``model.fit(x, y, epochs=1, batch_size=B, verbose=0, shuffle=False)`` over
``--steps`` batches, against the same model with the deterministic Keras 3
layer of the same rank and with TFP's own class (built in tf_keras) where TFP
has one. A step's time is the training phase of the call (``on_train_begin``
to ``on_train_end``) over the steps; the whole call, with ``fit``'s per-call
set-up and a tear-down that stalls at random for up to 80 ms in Keras 3, is
shown beside it. All contenders of a rank run in one process, interleaved,
the order rotating each round, after a warm-up; ratios are medians of
per-round ratios (min and max beside them). A secondary column times ``train_on_batch`` calls
the same way, and the deterministic model built in tf_keras shows what each
framework costs by itself.

Gradient variance: per rank and estimator, one model with fixed weights
(posterior loc from the default N(0, 0.1) initializer under a fixed seed,
posterior scale 0.1, i.e. untransformed scale softplus^-1(0.1)), one fixed
batch of 32 examples (inputs U(0, 1), the target's case, and N(0, 1)) and
fixed N(0, 1) targets; the gradient of the mean squared error (no KL: its
gradient has no noise) with respect to the kernel posterior's loc, over
``DRAWS`` draws (``--draws`` for all). Variance: mean over the kernel's
elements of the per-element variance across draws, with a 95 % interval from
batch means. TFP's classes are measured alike, as a check.

    python bench/family.py [--rounds 15] [--steps 32] [--draws N] [--ranks dense ...]

``targets()`` gives bench/report.py this benchmark's targets.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import harness  # noqa: E402

CLASSES = 2
SEED = 0
VARIANCE_BATCH = 32
POSTERIOR_SCALE = 0.1
UNTRANSFORMED_SCALE = math.log(math.expm1(POSTERIOR_SCALE))  # softplus^-1(0.1)
# The fixed batch's inputs for the gradient variance; the target is judged on the first.
INPUTS = {"uniform": "U(0, 1)", "normal": "N(0, 1)"}
TARGET_INPUTS = "uniform"
TRAIN_ON_BATCH_CALLS = 8
CHUNKS = 10  # batch means for the gradient variance's standard error
# Draws of the gradient per rank for the target's inputs: the ratio's 95 % interval
# is about +-7 % at 2000 draws, +-10 % at 1000; conv 2-D's draws cost the most and its
# ratio is far from the target. The N(0, 1) inputs, a reference, get REFERENCE_DRAWS.
DRAWS = {"dense": 1000, "conv1d": 1000, "conv2d": 400, "conv3d": 2000}
REFERENCE_DRAWS = 200

# rank: (input shape without the batch, batch size, filters or units, kernel size)
RANKS = {
    "dense": ((256,), 64, 128, None),
    "conv1d": ((256, 8), 32, 16, 3),
    "conv2d": ((64, 64, 3), 16, 16, 3),
    "conv3d": ((16, 16, 16, 1), 8, 8, 3),
}
RANK_LABELS = {"dense": "dense", "conv1d": "conv 1-D", "conv2d": "conv 2-D", "conv3d": "conv 3-D"}
ESTIMATORS = {
    "reparameterization": "Reparameterization",
    "flipout": "Flipout",
    "local": "LocalReparameterization",
}
ESTIMATOR_LABELS = {
    "reparameterization": "reparameterization",
    "flipout": "Flipout",
    "local": "local reparameterization",
}
# Training step / deterministic Keras 3 layer of the same rank: the targets.
DETERMINISTIC_LIMITS = {"reparameterization": 1.10, "flipout": 2.2, "local": 2.2}
TFP_LIMIT = 1.0
VARIANCE_LIMIT = 4.0
_OURS_PREFIX = {"dense": "Dense", "conv1d": "Conv1D", "conv2d": "Conv2D", "conv3d": "Conv3D"}
_TFP_PREFIX = {"dense": "Dense", "conv1d": "Convolution1D", "conv2d": "Convolution2D",
               "conv3d": "Convolution3D"}
_KERAS_LAYER = {"dense": "Dense", "conv1d": "Conv1D", "conv2d": "Conv2D", "conv3d": "Conv3D"}
_POOLING = {"conv1d": "GlobalAveragePooling1D", "conv2d": "GlobalAveragePooling2D",
            "conv3d": "GlobalAveragePooling3D"}


def describe(rank):
    shape, batch, width, kernel = RANKS[rank]
    if kernel is None:
        return f"{shape[0]} -> {width}, batch {batch}"
    spatial = "x".join(str(size) for size in shape[:-1])
    return f"{spatial} x {shape[-1]} -> {width} filters, kernel {kernel}, batch {batch}"


def tfp_class(rank, estimator):
    """TFP's own class for this rank and estimator, or None where TFP has none."""
    import tensorflow_probability as tfp

    return getattr(tfp.layers, _TFP_PREFIX[rank] + ESTIMATORS[estimator], None)


def contenders(rank):
    """Keys of the models timed for ``rank``.

    Ours per estimator, the deterministic Keras 3 model, TFP's classes where TFP
    has one, and the deterministic model in tf_keras: the last separates what
    the framework's own ``fit`` costs (Keras 3 vs tf_keras) from what a layer
    costs.
    """
    keys = [f"ours_{estimator}" for estimator in ESTIMATORS] + ["deterministic"]
    keys += [f"tfp_{e}" for e in ESTIMATORS if tfp_class(rank, e) is not None]
    return keys + ["tfkeras_deterministic"]


def build(rank, key):
    """The small model around one layer: (model, the library that built it)."""
    import keras
    import tf_keras

    import tfprobr_bridge

    shape, _, width, kernel = RANKS[rank]
    kind, _, estimator = key.partition("_")
    library = tf_keras if kind in ("tfp", "tfkeras") else keras
    if kind == "ours":
        layer_class = getattr(tfprobr_bridge, _OURS_PREFIX[rank] + ESTIMATORS[estimator])
    elif kind == "tfp":
        layer_class = tfp_class(rank, estimator)
    else:
        layer_class = getattr(library.layers, _KERAS_LAYER[rank])
    if kernel is None:
        layer = layer_class(width, activation="relu")
    else:
        layer = layer_class(width, kernel, padding="same", activation="relu")
    first = (tf_keras.layers.InputLayer(input_shape=shape) if library is tf_keras
             else keras.Input(shape))
    stack = [first, layer]
    if rank in _POOLING:
        stack.append(getattr(library.layers, _POOLING[rank])())
    stack.append(library.layers.Dense(CLASSES))
    return library.Sequential(stack), library


def compiled(rank, key):
    model, library = build(rank, key)
    model.compile(
        optimizer=library.optimizers.Adam(1e-3),
        loss=library.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,  # XLA makes these convolutions slower on CPU
    )
    return model


def data(rank, examples, seed=SEED):
    import numpy as np

    shape = RANKS[rank][0]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((examples, *shape)).astype("float32")
    return x, rng.integers(0, CLASSES, examples)


def per_round(values, reference):
    return [v / r for v, r in zip(values, reference)]


def ratio_summary(values, reference):
    ratios = per_round(values, reference)
    return statistics.median(ratios), min(ratios), max(ratios)


def _phase_clock(library):
    """A callback recording when ``fit`` starts and ends training (Keras 3 or tf_keras)."""

    class PhaseClock(library.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.begin = time.perf_counter()

        def on_train_end(self, logs=None):
            self.end = time.perf_counter()

    return PhaseClock()


def time_rank(rank, rounds, steps):
    """Timings of every contender of ``rank``: {regime: {key: [seconds per round]}}.

    Regimes: ``fit`` (training phase of one ``fit`` call: from its first to its last
    step, as ``on_train_begin``/``on_train_end`` see it), ``fit_call`` (the whole
    call, from the same rounds) and ``train_on_batch``.
    """
    import keras
    import tf_keras

    _, batch, _, _ = RANKS[rank]
    x, y = data(rank, steps * batch)
    models = {key: compiled(rank, key) for key in contenders(rank)}
    whole = {key: [] for key in models}
    warmup = 2

    def fit(key, model):
        clock = _phase_clock(tf_keras if isinstance(model, tf_keras.Model) else keras)

        def run():
            started = time.perf_counter()
            model.fit(x, y, epochs=1, batch_size=batch, verbose=0, shuffle=False,
                      callbacks=[clock])
            whole[key].append(time.perf_counter() - started)
            return float(clock.end - clock.begin)

        return run

    def on_batch(model):
        xb, yb = x[:batch], y[:batch]
        return lambda: [model.train_on_batch(xb, yb) for _ in range(TRAIN_ON_BATCH_CALLS)]

    fits = harness.interleave({k: fit(k, m) for k, m in models.items()}, rounds, warmup=warmup)
    calls = harness.interleave({k: on_batch(m) for k, m in models.items()}, rounds, warmup=1)
    return {"fit": fits, "fit_call": {k: v[warmup:] for k, v in whole.items()},
            "train_on_batch": calls}


def _verdict(met):
    return "met" if met else "**NOT met**"


def timing_rows(rank, timings, rounds, steps):
    """One row per estimator: ours against the deterministic model and TFP's class."""
    fits, whole, calls = timings["fit"], timings["fit_call"], timings["train_on_batch"]
    rows = []
    det = fits["deterministic"]
    det_ms = harness.summarise([v / steps for v in det])["median"]
    for estimator in ESTIMATORS:
        key, tfp_key = f"ours_{estimator}", f"tfp_{estimator}"
        has_tfp = tfp_key in fits
        fit_summary = harness.summarise([v / steps for v in fits[key]])
        vs_det = ratio_summary(fits[key], det)
        vs_tfp = ratio_summary(fits[key], fits[tfp_key]) if has_tfp else (None, None, None)
        tfp_ms = (harness.summarise([v / steps for v in fits[tfp_key]])["median"]
                  if has_tfp else None)
        # The layer's cost net of the framework's: (ours / Keras 3 deterministic) over
        # (TFP / tf_keras deterministic), per round.
        net = (statistics.median(
            (o / d) / (t / k) for o, d, t, k in zip(
                fits[key], det, fits[tfp_key], fits["tfkeras_deterministic"]))
            if has_tfp else None)
        # What TFP's own class costs against tf_keras's deterministic layer: the
        # same target, met or missed by the estimator's work in either library.
        tfp_det = (ratio_summary(fits[tfp_key], fits["tfkeras_deterministic"])[0]
                   if has_tfp else None)
        call_det = harness.paired_ratio(whole[key], whole["deterministic"])
        call_tfp = harness.paired_ratio(whole[key], whole[tfp_key]) if has_tfp else None
        tob_det = harness.paired_ratio(calls[key], calls["deterministic"])
        tob_tfp = harness.paired_ratio(calls[key], calls[tfp_key]) if has_tfp else None
        limit = DETERMINISTIC_LIMITS[estimator]
        rows.append({
            "rank": rank,
            "rank_label": RANK_LABELS[rank],
            "input": describe(rank),
            "estimator": estimator,
            "estimator_label": ESTIMATOR_LABELS[estimator],
            "ours_class": _OURS_PREFIX[rank] + ESTIMATORS[estimator],
            "tfp_class": (_TFP_PREFIX[rank] + ESTIMATORS[estimator]) if has_tfp else None,
            "fit_ms_per_step": fit_summary["median"],
            "fit_ms_per_step_min": fit_summary["min"],
            "fit_ms_per_step_max": fit_summary["max"],
            "deterministic_fit_ms_per_step": det_ms,
            "tfp_fit_ms_per_step": tfp_ms,
            "vs_deterministic": vs_det[0],
            "vs_deterministic_min": vs_det[1],
            "vs_deterministic_max": vs_det[2],
            "vs_deterministic_limit": limit,
            "vs_deterministic_met": vs_det[0] <= limit,
            "vs_tfp": vs_tfp[0],
            "vs_tfp_min": vs_tfp[1],
            "vs_tfp_max": vs_tfp[2],
            "vs_tfp_met": (vs_tfp[0] <= TFP_LIMIT) if has_tfp else None,
            "vs_tfp_net_of_framework": net,
            "tfp_vs_tf_keras_deterministic": tfp_det,
            "fit_call_ms_per_step": harness.summarise([v / steps for v in whole[key]])["median"],
            "fit_call_vs_deterministic": call_det,
            "fit_call_vs_tfp": call_tfp,
            "train_on_batch_ms": harness.summarise(calls[key])["median"] / TRAIN_ON_BATCH_CALLS,
            "train_on_batch_vs_deterministic": tob_det,
            "train_on_batch_vs_tfp": tob_tfp,
            "rounds": rounds,
            "steps_per_epoch": steps,
            # Display cells for the Markdown table.
            "fit_cell": f"{fit_summary['median']:.2f}",
            "tfp_cell": "-" if tfp_ms is None else f"{tfp_ms:.2f}",
            "vs_det_cell": (f"{vs_det[0]:.2f} ({vs_det[1]:.2f}-{vs_det[2]:.2f}) "
                            f"{_verdict(vs_det[0] <= limit)} (<= {limit:.2f})"),
            "vs_tfp_cell": ("no TFP class" if not has_tfp else
                            f"{vs_tfp[0]:.2f} ({vs_tfp[1]:.2f}-{vs_tfp[2]:.2f}) "
                            f"{_verdict(vs_tfp[0] <= TFP_LIMIT)}"),
            "net_cell": "-" if net is None else f"{net:.2f}",
            "tfp_det_cell": "-" if tfp_det is None else f"{tfp_det:.2f}",
            "call_cell": f"{call_det:.2f}" + ("" if call_tfp is None else f" / {call_tfp:.2f}"),
            "tob_cell": f"{tob_det:.2f}" + ("" if tob_tfp is None else f" / {tob_tfp:.2f}"),
        })
    return rows


def framework_row(rank, timings, steps):
    """What each framework costs by itself: the deterministic model in Keras 3 and tf_keras."""
    row = {"rank_label": RANK_LABELS[rank], "input": describe(rank)}
    for regime, per in (("fit", steps), ("fit_call", steps),
                        ("train_on_batch", TRAIN_ON_BATCH_CALLS)):
        keras3 = timings[regime]["deterministic"]
        tfk = timings[regime]["tfkeras_deterministic"]
        row[f"keras3_{regime}_ms"] = harness.summarise(keras3)["median"] / per
        row[f"tf_keras_{regime}_ms"] = harness.summarise(tfk)["median"] / per
        row[f"keras3_over_tf_keras_{regime}"] = harness.paired_ratio(keras3, tfk)
    return row


# --- gradient variance -------------------------------------------------------


def _weight(layer, fragment):
    """The layer's variable whose name contains ``fragment`` (Keras 3 or tf_keras)."""
    matches = [w for w in layer.weights if fragment in w.name]
    if len(matches) != 1:
        raise LookupError(f"{layer.name}: {fragment!r} matches {[w.name for w in layer.weights]}")
    return matches[0]


def variance_of(rank, key, fixed, x, targets, draws):
    """The gradient's variance over ``draws`` draws, and its relative standard error.

    Variance: mean over the kernel's elements of the per-element variance
    across draws. Its standard error comes from the spread of the same
    statistic over ``CHUNKS`` consecutive chunks of the draws (batch means):
    a few hundred draws leave the variance uncertain by about 10 %.
    """
    import numpy as np
    import tensorflow as tf

    model, _ = build(rank, key)
    layer, head = model.layers[0], model.layers[-1]
    loc = _weight(layer, "kernel_posterior_loc")
    loc.assign(fixed["loc"])
    _weight(layer, "kernel_posterior_untransformed_scale").assign(fixed["untransformed_scale"])
    _weight(layer, "bias_posterior_loc").assign(fixed["bias"])
    head.kernel.assign(fixed["head_kernel"])
    head.bias.assign(fixed["head_bias"])
    if not isinstance(loc, tf.Variable):
        loc = loc.value  # Keras 3: the TensorFlow variable behind the Keras one
    x, targets = tf.constant(x), tf.constant(targets)

    @tf.function
    def gradient():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - targets))
        return tape.gradient(loss, loc)

    gradient()  # trace
    samples = np.stack([gradient().numpy().ravel() for _ in range(draws)]).astype("float64")
    chunks = [chunk.var(axis=0, ddof=1).mean() for chunk in np.array_split(samples, CHUNKS)]
    return {
        "variance": float(samples.var(axis=0, ddof=1).mean()),
        "relative_se": float(np.std(chunks, ddof=1) / np.mean(chunks) / math.sqrt(CHUNKS)),
    }


def variance_ratio(numerator, denominator):
    """numerator / denominator variance, with an approximate 95 % interval."""
    ratio = numerator["variance"] / denominator["variance"]
    spread = math.exp(1.96 * math.hypot(numerator["relative_se"], denominator["relative_se"]))
    return ratio, ratio / spread, ratio * spread


def fixed_weights(rank):
    """One set of weights for every model of ``rank``: the defaults' init, seeded."""
    import keras
    import numpy as np

    shape, _, width, kernel = RANKS[rank]
    channels = shape[-1]
    kernel_shape = (channels, width) if kernel is None else (
        (kernel,) * (len(shape) - 1) + (channels, width))
    normal = keras.initializers.RandomNormal
    return {
        "loc": np.asarray(normal(mean=0.0, stddev=0.1, seed=SEED)(kernel_shape)),
        "untransformed_scale": np.full(kernel_shape, UNTRANSFORMED_SCALE, "float32"),
        "bias": np.asarray(normal(mean=0.0, stddev=0.1, seed=SEED + 1)((width,))),
        "head_kernel": np.asarray(keras.initializers.GlorotUniform(seed=SEED + 2)(
            (width, CLASSES))),
        "head_bias": np.zeros(CLASSES, "float32"),
    }


def variance_batch(rank, inputs):
    """The fixed batch: inputs U(0, 1) or N(0, 1), targets N(0, 1)."""
    import numpy as np

    rng = np.random.default_rng(SEED + 10)
    shape = (VARIANCE_BATCH, *RANKS[rank][0])
    x = rng.uniform(size=shape) if inputs == "uniform" else rng.standard_normal(shape)
    return x.astype("float32"), rng.standard_normal((VARIANCE_BATCH, CLASSES)).astype("float32")


def variance_rows(ranks, draws=None):
    rows = []
    for inputs in INPUTS:
        for rank in ranks:
            x, targets = variance_batch(rank, inputs)
            target = inputs == TARGET_INPUTS
            n = draws or (DRAWS[rank] if target else REFERENCE_DRAWS)
            fixed = fixed_weights(rank)
            ours = {e: variance_of(rank, f"ours_{e}", fixed, x, targets, n)
                    for e in ESTIMATORS}
            tfp = {e: variance_of(rank, f"tfp_{e}", fixed, x, targets, n)
                   for e in ESTIMATORS if tfp_class(rank, e) is not None}
            to_flipout, flipout_low, flipout_high = variance_ratio(
                ours["reparameterization"], ours["flipout"])
            to_local, local_low, local_high = variance_ratio(
                ours["reparameterization"], ours["local"])
            tfp_to_flipout = variance_ratio(tfp["reparameterization"], tfp["flipout"])[0]
            tfp_to_local = (variance_ratio(tfp["reparameterization"], tfp["local"])[0]
                            if "local" in tfp else None)
            rows.append({
                "rank": rank,
                "rank_label": RANK_LABELS[rank],
                "inputs": inputs,
                "inputs_label": INPUTS[inputs],
                "target": target,
                "model": f"{describe(rank).rsplit(', batch', 1)[0]}, batch {VARIANCE_BATCH}",
                "variance_reparameterization": ours["reparameterization"]["variance"],
                "variance_flipout": ours["flipout"]["variance"],
                "variance_local": ours["local"]["variance"],
                "relative_se": {e: ours[e]["relative_se"] for e in ESTIMATORS},
                "reparameterization_over_flipout": to_flipout,
                "reparameterization_over_flipout_95": [flipout_low, flipout_high],
                "reparameterization_over_local": to_local,
                "reparameterization_over_local_95": [local_low, local_high],
                "flipout_met": to_flipout >= VARIANCE_LIMIT,
                "local_met": to_local >= VARIANCE_LIMIT,
                "tfp_variances": tfp,
                "tfp_reparameterization_over_flipout": tfp_to_flipout,
                "tfp_reparameterization_over_local": tfp_to_local,
                "draws": n,
                "over_flipout_cell": (
                    f"{to_flipout:.1f} ({flipout_low:.1f}-{flipout_high:.1f})"
                    + (f" {_verdict(to_flipout >= VARIANCE_LIMIT)}" if target else "")),
                "over_local_cell": f"{to_local:.3g} ({local_low:.3g}-{local_high:.3g})" + (
                    f" {_verdict(to_local >= VARIANCE_LIMIT)}" if target else ""),
                "tfp_cell": f"{tfp_to_flipout:.1f}" + (
                    "" if tfp_to_local is None else f" / {tfp_to_local:.1f}"),
            })
            print(f"{inputs} {rank}: gradient variance done", flush=True)
    return rows


TIMING_COLUMNS = [
    ("rank_label", "rank", None), ("estimator_label", "estimator", None),
    ("fit_cell", "ours ms/step", None), ("tfp_cell", "TFP ms/step", None),
    ("vs_det_cell", "ours / deterministic (min-max), target", None),
    ("vs_tfp_cell", "ours / TFP (min-max), target <= 1", None),
    ("net_cell", "net of framework", None),
    ("tfp_det_cell", "TFP's class / tf_keras deterministic", None),
    ("call_cell", "whole fit() call: ours / det (/ TFP)", None),
    ("tob_cell", "train_on_batch: ours / det (/ TFP)", None),
]
FRAMEWORK_COLUMNS = [
    ("rank_label", "rank", None), ("input", "input", None),
    ("keras3_fit_ms", "Keras 3 fit ms/step", ".2f"),
    ("tf_keras_fit_ms", "tf_keras fit ms/step", ".2f"),
    ("keras3_over_tf_keras_fit", "Keras 3 / tf_keras", ".2f"),
    ("keras3_fit_call_ms", "Keras 3 whole call ms/step", ".2f"),
    ("tf_keras_fit_call_ms", "tf_keras whole call ms/step", ".2f"),
    ("keras3_over_tf_keras_fit_call", "Keras 3 / tf_keras, whole call", ".2f"),
    ("keras3_train_on_batch_ms", "Keras 3 train_on_batch ms", ".2f"),
    ("tf_keras_train_on_batch_ms", "tf_keras train_on_batch ms", ".2f"),
]
VARIANCE_COLUMNS = [
    ("rank_label", "rank", None), ("inputs_label", "inputs", None), ("model", "model", None),
    ("draws", "draws", "d"),
    ("variance_reparameterization", "var reparam.", ".3g"),
    ("variance_flipout", "var Flipout", ".3g"), ("variance_local", "var local rep.", ".3g"),
    ("over_flipout_cell", "reparam. / Flipout (95 % interval), >= 4", None),
    ("over_local_cell", "reparam. / local rep. (95 % interval), >= 4", None),
    ("tfp_cell", "TFP's classes: reparam. / Flipout (/ local)", None),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--draws", type=int, default=None,
                        help="gradient draws for every rank and inputs (default: DRAWS, "
                             "REFERENCE_DRAWS)")
    parser.add_argument("--ranks", nargs="+", default=list(RANKS), choices=list(RANKS))
    args = parser.parse_args()
    started = time.perf_counter()
    load_before = os.getloadavg()

    import keras

    keras.utils.set_random_seed(SEED)
    timings, frameworks = [], []
    for rank in args.ranks:
        measured = time_rank(rank, args.rounds, args.steps)
        timings += timing_rows(rank, measured, args.rounds, args.steps)
        frameworks.append(framework_row(rank, measured, args.steps))
        print(f"{rank}: timed ({time.perf_counter() - started:.0f} s)", flush=True)
    variances = variance_rows(args.ranks, args.draws)
    seconds = time.perf_counter() - started
    load_after = os.getloadavg()
    command = "python " + " ".join(
        [os.path.relpath(os.path.abspath(sys.argv[0]), os.getcwd()), *sys.argv[1:]])
    notes = "\n".join([
        f"ms/step: median over {args.rounds} rounds of one `model.fit(x, y, epochs=1, "
        f"batch_size=B, verbose=0, shuffle=False)` over {args.steps} batches of NumPy arrays "
        "(after 2 warm-up calls), timed from `on_train_begin` to `on_train_end` (every step "
        "and its callbacks, as in a long epoch) and divided by the steps; all contenders of a "
        "rank in one process, interleaved, the order rotating each round. Ratios: median "
        "(min-max) of per-round ratios; the targets are judged on these. Whole fit() call: "
        "the same calls timed whole, with `fit`'s per-call set-up (a new tf.data pipeline, "
        "~20 ms in both frameworks) and tear-down: Keras 3's `fit` stalls for 0-80 ms at "
        "random after `on_train_end`, while its frame is freed (also with a tf.data input; "
        "not the iterator, the callbacks' executor or Python's GC; tf_keras's does not), as "
        "long as a whole epoch of these small models, so it is shown but not judged. "
        f"train_on_batch: {TRAIN_ON_BATCH_CALLS} `train_on_batch` calls on one batch, no "
        "per-epoch cost (tf_keras pays a large fixed cost per call). Model: the layer (ReLU; "
        "padding \"same\" for convolutions), global average pooling for convolutions, "
        "Dense(2); Adam, sparse categorical cross-entropy, jit_compile=False. TFP's classes "
        "are built in tf_keras; TFP has no convolutional local reparameterization. Net of "
        "framework: median per-round (ours / Keras 3 deterministic) / (TFP / tf_keras "
        "deterministic), the layer's own cost against TFP's with each framework's share taken "
        "out. TFP's class / tf_keras deterministic: median per-round ratio, what TFP's layer "
        "costs against the deterministic layer in its own framework (the first target, asked "
        "of TFP). Inputs: " + "; ".join(f"{RANK_LABELS[r]} {describe(r)}" for r in args.ranks)
        + ".",
        "",
        "The deterministic model in each framework (what the framework costs by itself):",
        "",
        harness.markdown(frameworks, FRAMEWORK_COLUMNS),
        "",
        "## Gradient variance",
        "",
        harness.markdown(variances, VARIANCE_COLUMNS),
        "",
        f"Gradient of the mean squared error to fixed N(0, 1) targets (no KL: its gradient is "
        "not random) w.r.t. the kernel posterior's loc, over the draws in the table; one "
        "fixed batch of "
        f"{VARIANCE_BATCH} examples; the model above, untrained. Weights fixed and the same for "
        f"every estimator (and TFP's classes): loc ~ N(0, 0.1) (the default initializer, seed "
        f"{SEED}), untransformed scale softplus^-1({POSTERIOR_SCALE}) = "
        f"{UNTRANSFORMED_SCALE:.4f} (posterior scale {POSTERIOR_SCALE}), bias loc ~ N(0, 0.1), "
        "head Glorot-uniform. Variance: mean over the kernel's elements of the per-element "
        f"variance across draws; intervals from the spread over {CHUNKS} chunks of the draws "
        f"(batch means). The target is judged on {INPUTS[TARGET_INPUTS]} inputs "
        "(non-negative, like intensities and every ReLU output). With zero-mean i.i.d. inputs "
        "the shared-kernel perturbations of different examples are already nearly "
        "uncorrelated for a dense layer (correlation ~ x_n . x_m / |x|^2 ~ 1/sqrt(256)), so "
        "no estimator can reduce the variance there: TFP's classes give the same ratio. The "
        "conv 3-D input has one channel, so Flipout's input signs are one sign per example "
        "and only the output signs decorrelate the examples: the ratio is about 4, for TFP's "
        "class too (per-position signs, which neither library uses, would raise it).",
        "",
        f"Command: `cd bench && {command}` ({seconds:.0f} s; load average {load_before[0]:.2f} "
        f"before, {load_after[0]:.2f} after, on {os.cpu_count()} cores).",
    ])
    record = harness.write("family", timings, TIMING_COLUMNS, notes=notes)
    record.update({
        "framework": frameworks,
        "gradient_variance": variances,
        "command": f"cd bench && {command}",
        "seconds": seconds,
        "load_average": {"before": load_before[0], "after": load_after[0]},
        "settings": {
            "ranks": {rank: {"input_shape": list(RANKS[rank][0]), "batch": RANKS[rank][1],
                             "width": RANKS[rank][2], "kernel_size": RANKS[rank][3]}
                      for rank in args.ranks},
            "rounds": args.rounds, "steps_per_epoch": args.steps,
            "draws": {row["rank"] + " " + row["inputs"]: row["draws"] for row in variances},
            "train_on_batch_calls": TRAIN_ON_BATCH_CALLS, "variance_batch": VARIANCE_BATCH,
            "posterior_scale": POSTERIOR_SCALE, "untransformed_scale": UNTRANSFORMED_SCALE,
            "variance_target_inputs": TARGET_INPUTS, "seed": SEED,
        },
    })
    (harness.RESULTS / "family.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nGradient variance\n{harness.markdown(variances, VARIANCE_COLUMNS)}\n"
          f"{seconds:.0f} s")


# --- for bench/report.py -----------------------------------------------------


def targets(record=None):
    """This benchmark's targets: [(text, values, limit, met)] for bench/report.py."""
    if record is None:
        record = json.loads((harness.RESULTS / "family.json").read_text())
    rows, variances = record["results"], record["gradient_variance"]
    found = []
    for estimator, label in ESTIMATOR_LABELS.items():
        mine = [row for row in rows if row["estimator"] == estimator]
        limit = DETERMINISTIC_LIMITS[estimator]
        found.append((
            f"Family training step in `fit()`, {label} / deterministic Keras 3 layer",
            ", ".join(f"{row['rank_label']} {row['vs_deterministic']:.2f}" for row in mine),
            f"<= {limit:.2f}", all(row["vs_deterministic"] <= limit for row in mine),
        ))
    for estimator, label in ESTIMATOR_LABELS.items():
        mine = [row for row in rows if row["estimator"] == estimator and row["vs_tfp"] is not None]
        if mine:
            found.append((
                f"Family training step in `fit()`, {label} / TFP's class",
                ", ".join(f"{row['rank_label']} {row['vs_tfp']:.2f}" for row in mine),
                "<= 1.00", all(row["vs_tfp"] <= TFP_LIMIT for row in mine),
            ))
    paired = [row for row in rows if row["train_on_batch_vs_tfp"] is not None]
    found.append((
        "Family per call (`train_on_batch`), ours / TFP's class",
        ", ".join(f"{row['rank_label']} {row['estimator_label']} "
                  f"{row['train_on_batch_vs_tfp']:.2f}" for row in paired),
        "<= 1.00", all(row["train_on_batch_vs_tfp"] <= TFP_LIMIT for row in paired),
    ))
    judged = [row for row in variances if row["target"]]
    for key, label in (("reparameterization_over_flipout", "Flipout"),
                       ("reparameterization_over_local", "local reparameterization")):
        found.append((
            f"Gradient variance ({INPUTS[judged[0]['inputs']]} inputs, batch {VARIANCE_BATCH}), "
            f"reparameterization / {label}",
            ", ".join(f"{row['rank_label']} {row[key]:.1f}" for row in judged),
            f">= {VARIANCE_LIMIT:g}", all(row[key] >= VARIANCE_LIMIT for row in judged),
        ))
    return found


if __name__ == "__main__":
    main()
