"""The variational family: training-step ratios and gradient variance, per estimator and rank.

Training step: for each estimator (reparameterization, Flipout, local
reparameterization) and rank (dense, conv 1-D, 2-D, 3-D), a small model built
around the layer (variational layer with ReLU, global average pooling for a
convolution, a dense head of 2) is trained the way users train it,
``model.fit(x, y, epochs=1, batch_size=B, verbose=0)`` on ``--steps`` batches,
against the same model with the deterministic Keras 3 layer of the same rank
and with TFP's own class (built in tf_keras) where TFP has one. All contenders
of a rank run in one process, interleaved, order rotating each round, after a
warm-up; ratios are medians of per-round ratios (min and max beside them). A
secondary column times ``train_on_batch`` calls the same way.

Gradient variance: per rank and estimator, one model with fixed weights
(posterior loc from the default N(0, 0.1) initializer under a fixed seed,
posterior scale 0.1, i.e. untransformed scale softplus^-1(0.1)), one fixed
batch of 32 examples and fixed N(0, 1) targets; the gradient of the mean
squared error (no KL: its gradient has no noise) with respect to the kernel
posterior's loc, over ``--draws`` draws. Variance: mean over the kernel's
elements of the per-element variance across draws.

    python bench/family.py [--rounds 15] [--steps 8] [--draws 200]

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
TRAIN_ON_BATCH_CALLS = 8

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
    """Keys of the models timed for ``rank``: ours, the deterministic one, TFP's."""
    keys = [f"ours_{estimator}" for estimator in ESTIMATORS] + ["deterministic"]
    keys += [f"tfp_{e}" for e in ESTIMATORS if tfp_class(rank, e) is not None]
    return keys


def build(rank, key):
    """The small model around one layer: (model, the library that built it)."""
    import keras
    import tf_keras

    import tfprobr_bridge

    shape, _, width, kernel = RANKS[rank]
    kind, _, estimator = key.partition("_")
    library = tf_keras if kind == "tfp" else keras
    if kind == "ours":
        layer_class = getattr(tfprobr_bridge, _OURS_PREFIX[rank] + ESTIMATORS[estimator])
    elif kind == "tfp":
        layer_class = tfp_class(rank, estimator)
    else:
        layer_class = getattr(keras.layers, _KERAS_LAYER[rank])
    if kernel is None:
        layer = layer_class(width, activation="relu")
    else:
        layer = layer_class(width, kernel, padding="same", activation="relu")
    first = (tf_keras.layers.InputLayer(input_shape=shape) if kind == "tfp"
             else keras.Input(shape))
    stack = [first, layer]
    if rank in _POOLING:
        stack.append(getattr(library.layers, _POOLING[rank])())
    stack.append(library.layers.Dense(CLASSES))
    return library.Sequential(stack), library


def compiled(rank, key):
    model, library = build(rank, key)
    options = {"jit_compile": False}
    model.compile(
        optimizer=library.optimizers.Adam(1e-3),
        loss=library.losses.SparseCategoricalCrossentropy(from_logits=True),
        **options,
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


def time_rank(rank, rounds, steps):
    """Fit and train_on_batch timings of every contender of ``rank``."""
    _, batch, _, _ = RANKS[rank]
    x, y = data(rank, steps * batch)
    models = {key: compiled(rank, key) for key in contenders(rank)}

    def fit(model):
        return lambda: model.fit(x, y, epochs=1, batch_size=batch, verbose=0)

    def on_batch(model):
        xb, yb = x[:batch], y[:batch]
        return lambda: [model.train_on_batch(xb, yb) for _ in range(TRAIN_ON_BATCH_CALLS)]

    fits = harness.interleave({k: fit(m) for k, m in models.items()}, rounds, warmup=2)
    calls = harness.interleave({k: on_batch(m) for k, m in models.items()}, rounds, warmup=1)
    return fits, calls


def timing_rows(rank, fits, calls, rounds, steps):
    rows = []
    det, det_calls = fits["deterministic"], calls["deterministic"]
    for estimator in ESTIMATORS:
        key = f"ours_{estimator}"
        fit_summary = harness.summarise(fits[key])
        vs_det = ratio_summary(fits[key], det)
        has_tfp = f"tfp_{estimator}" in fits
        vs_tfp = ratio_summary(fits[key], fits[f"tfp_{estimator}"]) if has_tfp else None
        tfp_ms = harness.summarise(fits[f"tfp_{estimator}"])["median"] if has_tfp else None
        tob_det = harness.paired_ratio(calls[key], det_calls)
        tob_tfp = (harness.paired_ratio(calls[key], calls[f"tfp_{estimator}"])
                   if has_tfp else None)
        limit = DETERMINISTIC_LIMITS[estimator]
        rows.append({
            "rank": rank,
            "rank_label": RANK_LABELS[rank],
            "input": describe(rank),
            "estimator": estimator,
            "estimator_label": ESTIMATOR_LABELS[estimator],
            "ours_class": _OURS_PREFIX[rank] + ESTIMATORS[estimator],
            "tfp_class": (_TFP_PREFIX[rank] + ESTIMATORS[estimator]) if has_tfp else None,
            "fit_ms": fit_summary["median"],
            "fit_ms_min": fit_summary["min"],
            "fit_ms_max": fit_summary["max"],
            "deterministic_fit_ms": harness.summarise(det)["median"],
            "tfp_fit_ms": tfp_ms,
            "vs_deterministic": vs_det[0],
            "vs_deterministic_min": vs_det[1],
            "vs_deterministic_max": vs_det[2],
            "vs_deterministic_limit": limit,
            "vs_deterministic_met": vs_det[0] <= limit,
            "vs_tfp": vs_tfp[0] if has_tfp else None,
            "vs_tfp_min": vs_tfp[1] if has_tfp else None,
            "vs_tfp_max": vs_tfp[2] if has_tfp else None,
            "vs_tfp_met": (vs_tfp[0] <= TFP_LIMIT) if has_tfp else None,
            "train_on_batch_ms": harness.summarise(calls[key])["median"] / TRAIN_ON_BATCH_CALLS,
            "train_on_batch_vs_deterministic": tob_det,
            "train_on_batch_vs_tfp": tob_tfp,
            "rounds": rounds,
            "steps_per_epoch": steps,
            # Display cells for the Markdown table.
            "fit_cell": f"{fit_summary['median']:.1f}",
            "det_cell": f"{harness.summarise(det)['median']:.1f}",
            "tfp_cell": "-" if tfp_ms is None else f"{tfp_ms:.1f}",
            "vs_det_cell": (f"{vs_det[0]:.2f} ({vs_det[1]:.2f}-{vs_det[2]:.2f}) "
                            f"{'met' if vs_det[0] <= limit else '**NOT met**'} (<= {limit:g})"),
            "vs_tfp_cell": ("no TFP class" if not has_tfp else
                            f"{vs_tfp[0]:.2f} ({vs_tfp[1]:.2f}-{vs_tfp[2]:.2f}) "
                            f"{'met' if vs_tfp[0] <= TFP_LIMIT else '**NOT met**'}"),
            "tob_cell": f"{tob_det:.2f}" + ("" if tob_tfp is None else f" / {tob_tfp:.2f}"),
        })
    return rows


# --- gradient variance -------------------------------------------------------


def _weight(layer, fragment):
    """The layer's variable whose name contains ``fragment`` (Keras 3 or tf_keras)."""
    matches = [w for w in layer.weights if fragment in w.name]
    if len(matches) != 1:
        raise LookupError(f"{layer.name}: {fragment!r} matches {[w.name for w in layer.weights]}")
    return matches[0]


def variance_of(rank, key, fixed, x, targets, draws):
    """Mean over the kernel's elements of the gradient's variance over ``draws`` draws."""
    import numpy as np
    import tensorflow as tf

    model, _ = build(rank, key)
    layer = model.layers[0]
    head = model.layers[-1]
    _weight(layer, "kernel_posterior_loc").assign(fixed["loc"])
    _weight(layer, "kernel_posterior_untransformed_scale").assign(fixed["untransformed_scale"])
    _weight(layer, "bias_posterior_loc").assign(fixed["bias"])
    head.kernel.assign(fixed["head_kernel"])
    head.bias.assign(fixed["head_bias"])
    loc = _weight(layer, "kernel_posterior_loc")
    loc = getattr(loc, "value", loc)  # Keras 3: the tf.Variable behind it
    if not isinstance(loc, tf.Variable):
        loc = _weight(layer, "kernel_posterior_loc")
    x, targets = tf.constant(x), tf.constant(targets)

    @tf.function
    def gradient():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - targets))
        return tape.gradient(loss, loc)

    gradient()  # trace
    samples = np.stack([gradient().numpy() for _ in range(draws)]).astype("float64")
    return float(samples.reshape(draws, -1).var(axis=0, ddof=1).mean())


def fixed_weights(rank):
    """One set of weights for every model of ``rank``: the defaults' init, seeded."""
    import keras
    import numpy as np

    shape, _, width, kernel = RANKS[rank]
    channels = shape[-1]
    kernel_shape = (channels, width) if kernel is None else (
        (kernel,) * (len(shape) - 1) + (channels, width))
    draw = keras.initializers.RandomNormal(mean=0.0, stddev=0.1, seed=SEED)
    untransformed = math.log(math.expm1(POSTERIOR_SCALE))  # softplus^-1(0.1)
    return {
        "loc": np.asarray(draw(kernel_shape)),
        "untransformed_scale": np.full(kernel_shape, untransformed, "float32"),
        "bias": np.asarray(keras.initializers.RandomNormal(0.0, 0.1, seed=SEED + 1)((width,))),
        "head_kernel": np.asarray(keras.initializers.GlorotUniform(seed=SEED + 2)(
            (width, CLASSES))),
        "head_bias": np.zeros(CLASSES, "float32"),
    }


def variance_rows(ranks, draws):
    import numpy as np

    rows = []
    for rank in ranks:
        shape = RANKS[rank][0]
        rng = np.random.default_rng(SEED + 10)
        x = rng.standard_normal((VARIANCE_BATCH, *shape)).astype("float32")
        targets = rng.standard_normal((VARIANCE_BATCH, CLASSES)).astype("float32")
        fixed = fixed_weights(rank)
        ours = {e: variance_of(rank, f"ours_{e}", fixed, x, targets, draws) for e in ESTIMATORS}
        tfp = {e: variance_of(rank, f"tfp_{e}", fixed, x, targets, draws)
               for e in ESTIMATORS if tfp_class(rank, e) is not None}
        to_flipout = ours["reparameterization"] / ours["flipout"]
        to_local = ours["reparameterization"] / ours["local"]
        tfp_to_flipout = tfp["reparameterization"] / tfp["flipout"]
        tfp_to_local = (tfp["reparameterization"] / tfp["local"]) if "local" in tfp else None
        rows.append({
            "rank": rank,
            "rank_label": RANK_LABELS[rank],
            "input": f"{describe(rank).rsplit(', batch', 1)[0]}, batch {VARIANCE_BATCH}",
            "variance_reparameterization": ours["reparameterization"],
            "variance_flipout": ours["flipout"],
            "variance_local": ours["local"],
            "reparameterization_over_flipout": to_flipout,
            "reparameterization_over_local": to_local,
            "flipout_met": to_flipout >= VARIANCE_LIMIT,
            "local_met": to_local >= VARIANCE_LIMIT,
            "tfp_variances": tfp,
            "tfp_reparameterization_over_flipout": tfp_to_flipout,
            "tfp_reparameterization_over_local": tfp_to_local,
            "draws": draws,
            "over_flipout_cell": (f"{to_flipout:.1f} "
                                  f"{'met' if to_flipout >= VARIANCE_LIMIT else '**NOT met**'}"),
            "over_local_cell": (f"{to_local:.1f} "
                                f"{'met' if to_local >= VARIANCE_LIMIT else '**NOT met**'}"),
            "tfp_cell": f"{tfp_to_flipout:.1f}" + (
                "" if tfp_to_local is None else f" / {tfp_to_local:.1f}"),
        })
    return rows


TIMING_COLUMNS = [
    ("rank_label", "rank", None), ("estimator_label", "estimator", None),
    ("fit_cell", "ours ms/epoch", None), ("det_cell", "deterministic ms", None),
    ("tfp_cell", "TFP ms", None),
    ("vs_det_cell", "ours / deterministic (min-max), target", None),
    ("vs_tfp_cell", "ours / TFP (min-max), target <= 1", None),
    ("tob_cell", "train_on_batch: / det (/ TFP)", None),
]
VARIANCE_COLUMNS = [
    ("rank_label", "rank", None), ("input", "model", None),
    ("variance_reparameterization", "var reparameterization", ".3g"),
    ("variance_flipout", "var Flipout", ".3g"), ("variance_local", "var local rep.", ".3g"),
    ("over_flipout_cell", "reparam. / Flipout (>= 4)", None),
    ("over_local_cell", "reparam. / local rep. (>= 4)", None),
    ("tfp_cell", "TFP's classes: reparam. / Flipout (/ local)", None),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--ranks", nargs="+", default=list(RANKS), choices=list(RANKS))
    args = parser.parse_args()
    started = time.perf_counter()
    load_before = os.getloadavg()

    import keras

    keras.utils.set_random_seed(SEED)
    timings = []
    for rank in args.ranks:
        fits, calls = time_rank(rank, args.rounds, args.steps)
        timings += timing_rows(rank, fits, calls, args.rounds, args.steps)
        print(f"{rank}: timed ({time.perf_counter() - started:.0f} s)", flush=True)
    variances = variance_rows(args.ranks, args.draws)
    seconds = time.perf_counter() - started
    command = "python " + " ".join(
        [os.path.relpath(os.path.abspath(sys.argv[0]), os.getcwd()), *sys.argv[1:]])
    notes = (
        f"ms/epoch: median over {args.rounds} rounds of one `model.fit(x, y, epochs=1, "
        f"batch_size=B, verbose=0)` over {args.steps} batches (shuffled NumPy arrays), after 2 "
        "warm-up epochs; every contender of a rank in one process, interleaved, order rotating "
        "each round. Ratios: median (min-max) of per-round ratios. train_on_batch: the same for "
        f"{TRAIN_ON_BATCH_CALLS} `train_on_batch` calls on one batch. Model: the layer (ReLU; "
        "padding \"same\" for convolutions), global average pooling for convolutions, Dense(2); "
        "Adam, sparse categorical cross-entropy, jit_compile=False. TFP's classes in tf_keras; "
        "TFP has no convolutional local reparameterization.\n\n"
        "## Gradient variance\n\n"
        + harness.markdown(variances, VARIANCE_COLUMNS)
        + f"\n\nGradient of the mean squared error (no KL) w.r.t. the kernel posterior's loc, "
        f"{args.draws} draws, one fixed batch of {VARIANCE_BATCH} N(0, 1) examples and N(0, 1) "
        "targets, same model as above without training. Fixed weights, the same for every "
        f"estimator: loc ~ N(0, 0.1) (seed {SEED}), untransformed scale softplus^-1"
        f"({POSTERIOR_SCALE}) = {math.log(math.expm1(POSTERIOR_SCALE)):.4f} (posterior scale "
        f"{POSTERIOR_SCALE}), bias loc ~ N(0, 0.1), head Glorot-uniform. Variance: mean over the "
        "kernel's elements of the per-element variance across draws.\n\n"
        f"Command: `cd bench && {command}` ({seconds:.0f} s; load average "
        f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after)."
    )
    record = harness.write("family", timings, TIMING_COLUMNS, notes=notes)
    record.update({
        "gradient_variance": variances,
        "command": f"cd bench && {command}",
        "seconds": seconds,
        "load_average": {"before": load_before[0], "after": os.getloadavg()[0]},
        "settings": {
            "ranks": {rank: {"input_shape": list(RANKS[rank][0]), "batch": RANKS[rank][1],
                             "width": RANKS[rank][2], "kernel_size": RANKS[rank][3]}
                      for rank in RANKS},
            "rounds": args.rounds, "steps_per_epoch": args.steps, "draws": args.draws,
            "train_on_batch_calls": TRAIN_ON_BATCH_CALLS, "variance_batch": VARIANCE_BATCH,
            "posterior_scale": POSTERIOR_SCALE,
            "untransformed_scale": math.log(math.expm1(POSTERIOR_SCALE)),
            "seed": SEED,
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
            f"Family training step (fit), {label} / deterministic Keras 3 layer",
            ", ".join(f"{row['rank_label']} {row['vs_deterministic']:.2f}" for row in mine),
            f"<= {limit:g}", all(row["vs_deterministic"] <= limit for row in mine),
        ))
    for estimator, label in ESTIMATOR_LABELS.items():
        mine = [row for row in rows if row["estimator"] == estimator and row["vs_tfp"] is not None]
        if mine:
            found.append((
                f"Family training step (fit), {label} / TFP's class",
                ", ".join(f"{row['rank_label']} {row['vs_tfp']:.2f}" for row in mine),
                "<= 1.00", all(row["vs_tfp"] <= TFP_LIMIT for row in mine),
            ))
    for key, label in (("reparameterization_over_flipout", "Flipout"),
                       ("reparameterization_over_local", "local reparameterization")):
        found.append((
            f"Gradient variance, reparameterization / {label}",
            ", ".join(f"{row['rank_label']} {row[key]:.1f}" for row in variances),
            f">= {VARIANCE_LIMIT:g}", all(row[key] >= VARIANCE_LIMIT for row in variances),
        ))
    return found


if __name__ == "__main__":
    main()
