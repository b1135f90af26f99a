"""A small dense regression network: where Keras 3's own per-step cost dominates.

A user reported, for a small dense regression network trained with ``fit()``,
4.2 ms per step with our layers, 4.6 ms with a plain Keras 3 ``Dense`` and
1.35 ms with TFP on tf_keras. This benchmark measures the same kind of network
the way the family benchmark measures a step: a regression MLP like those of
TFP's regression tutorials (13 features -> 50 units, ReLU -> 1 unit; mean
squared error, Adam, batch 32), trained with ``model.fit(x, y, epochs=1,
batch_size=32, verbose=0, shuffle=False)`` over ``--steps`` batches. Five
contenders, each a model built and compiled once and reused for every round:

- ``ours``: ``tfprobr_bridge.DenseReparameterization`` for both layers (KL / 1000),
  Keras 3;
- ``ours_flipout``: ``tfprobr_bridge.DenseFlipout`` likewise;
- ``keras3_dense``: ``keras.layers.Dense`` for both layers;
- ``tfp``: ``tfp.layers.DenseReparameterization`` for both layers (KL / 1000), tf_keras;
- ``tf_keras_dense``: ``tf_keras.layers.Dense`` for both layers.

A step's time is the training phase of the call (``on_train_begin`` to
``on_train_end``, which covers the epoch's iterator, every step and the
per-step callbacks) over the steps; the whole call (with ``fit``'s per-call
set-up and tear-down, paid once per call, not per epoch) is recorded beside it.
All contenders run in one process, interleaved, the order rotating each round,
after two warm-up calls each; ratios are medians of per-round ratios.

    python bench/dense_regression.py [--rounds 15] [--steps 32]
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import harness  # noqa: E402

SEED = 0
FEATURES = 13
HIDDEN = 50
BATCH = 32
KL_EXAMPLES = 1000  # the KL is divided by this, as a user with ~1,000 examples would
NOISE = 0.5
WARMUP = 2

# key: (label, library, layer kind)
CONTENDERS = {
    "ours": ("ours, DenseReparameterization", "Keras 3", "ours_reparameterization"),
    "ours_flipout": ("ours, DenseFlipout", "Keras 3", "ours_flipout"),
    "keras3_dense": ("Keras 3 Dense", "Keras 3", "keras3_dense"),
    "tfp": ("TFP DenseReparameterization", "tf_keras", "tfp_reparameterization"),
    "tf_keras_dense": ("tf_keras Dense", "tf_keras", "tf_keras_dense"),
}


def describe():
    return f"{FEATURES} -> {HIDDEN} (ReLU) -> 1, batch {BATCH}"


def data(examples, seed=SEED):
    """Synthetic regression data: y = x w + b + N(0, NOISE^2) noise, x ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((examples, FEATURES)).astype("float32")
    w = rng.standard_normal((FEATURES, 1)).astype("float32")
    y = x @ w + 1.0 + NOISE * rng.standard_normal((examples, 1)).astype("float32")
    return x, y.astype("float32")


def build(key):
    """The regression MLP for one contender: (model, the library that built it)."""
    import keras
    import tf_keras

    kind = CONTENDERS[key][2]
    if kind.startswith("ours"):
        import tfprobr_bridge

        layer_class = (tfprobr_bridge.DenseFlipout if kind == "ours_flipout"
                       else tfprobr_bridge.DenseReparameterization)

        def layer(units, activation=None):
            return layer_class(units, activation=activation,
                               kernel_divergence_fn=tfprobr_bridge.scaled_kl_divergence_fn(
                                   KL_EXAMPLES))

        return keras.Sequential([keras.Input((FEATURES,)), layer(HIDDEN, "relu"), layer(1)]), keras
    if kind == "keras3_dense":
        return keras.Sequential([keras.Input((FEATURES,)),
                                 keras.layers.Dense(HIDDEN, activation="relu"),
                                 keras.layers.Dense(1)]), keras
    if kind == "tfp_reparameterization":
        import tensorflow_probability as tfp

        tfd = tfp.distributions

        def layer(units, activation=None):
            return tfp.layers.DenseReparameterization(
                units, activation=activation,
                kernel_divergence_fn=lambda q, p, _: tfd.kl_divergence(q, p) / KL_EXAMPLES)

        return tf_keras.Sequential([tf_keras.layers.InputLayer(input_shape=(FEATURES,)),
                                    layer(HIDDEN, "relu"), layer(1)]), tf_keras
    return tf_keras.Sequential([tf_keras.layers.InputLayer(input_shape=(FEATURES,)),
                                tf_keras.layers.Dense(HIDDEN, activation="relu"),
                                tf_keras.layers.Dense(1)]), tf_keras


def compiled(key):
    model, library = build(key)
    # jit_compile=False is also what "auto" (Keras 3) and None (tf_keras) give on a CPU.
    model.compile(optimizer=library.optimizers.Adam(1e-3), loss="mse", jit_compile=False)
    return model


def _phase_clock(library):
    """A callback recording when ``fit`` starts and ends training (Keras 3 or tf_keras)."""

    class PhaseClock(library.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.begin = time.perf_counter()

        def on_train_end(self, logs=None):
            self.end = time.perf_counter()

    return PhaseClock()


def measure(rounds, steps):
    """{"fit": {key: [training-phase seconds]}, "fit_call": {key: [whole-call seconds]}}."""
    import keras
    import tf_keras

    x, y = data(steps * BATCH)
    models = {key: compiled(key) for key in CONTENDERS}
    whole = {key: [] for key in models}

    def fit(key, model):
        clock = _phase_clock(tf_keras if isinstance(model, tf_keras.Model) else keras)

        def run():
            started = time.perf_counter()
            model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0, shuffle=False,
                      callbacks=[clock])
            whole[key].append(time.perf_counter() - started)
            return float(clock.end - clock.begin)

        return run

    fits = harness.interleave({k: fit(k, m) for k, m in models.items()}, rounds, warmup=WARMUP)
    return {"fit": fits, "fit_call": {k: v[WARMUP:] for k, v in whole.items()}}


def ratio_summary(values, reference):
    ratios = [v / r for v, r in zip(values, reference)]
    return harness.paired_ratio(values, reference), min(ratios), max(ratios)


def rows_for(timings, rounds, steps):
    fits, whole = timings["fit"], timings["fit_call"]
    rows = []
    for key, (label, library, _) in CONTENDERS.items():
        step = harness.summarise([v / steps for v in fits[key]])
        epoch = harness.summarise(fits[key])
        call = harness.summarise(whole[key])
        vs_k3 = ratio_summary(fits[key], fits["keras3_dense"])
        vs_tfk = ratio_summary(fits[key], fits["tf_keras_dense"])
        rows.append({
            "key": key,
            "contender": label,
            "library": library,
            "input": describe(),
            "median_ms": step["median"],
            "min_ms": step["min"],
            "max_ms": step["max"],
            "epoch_ms": epoch["median"],
            "fit_call_ms": call["median"],
            "vs_keras3_dense": vs_k3[0],
            "vs_keras3_dense_min": vs_k3[1],
            "vs_keras3_dense_max": vs_k3[2],
            "vs_tf_keras_dense": vs_tfk[0],
            "vs_tf_keras_dense_min": vs_tfk[1],
            "vs_tf_keras_dense_max": vs_tfk[2],
            "rounds": rounds,
            "steps_per_epoch": steps,
            "batch": BATCH,
            # Display cells for the Markdown table.
            "vs_keras3_cell": f"{vs_k3[0]:.2f} ({vs_k3[1]:.2f}-{vs_k3[2]:.2f})",
            "vs_tf_keras_cell": f"{vs_tfk[0]:.2f} ({vs_tfk[1]:.2f}-{vs_tfk[2]:.2f})",
        })
    return rows


COLUMNS = [
    ("contender", "contender", None),
    ("library", "framework", None),
    ("median_ms", "median ms/step", ".2f"),
    ("min_ms", "min", ".2f"),
    ("max_ms", "max", ".2f"),
    ("epoch_ms", "ms/epoch", ".1f"),
    ("fit_call_ms", "whole fit() call ms", ".1f"),
    ("vs_keras3_cell", "vs Keras 3 Dense (min-max)", None),
    ("vs_tf_keras_cell", "vs tf_keras Dense (min-max)", None),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=32)
    args = parser.parse_args()
    started = time.perf_counter()
    load_before = os.getloadavg()

    import keras
    import tf_keras

    keras.utils.set_random_seed(SEED)
    tf_keras.utils.set_random_seed(SEED)
    timings = measure(args.rounds, args.steps)
    rows = rows_for(timings, args.rounds, args.steps)
    seconds = time.perf_counter() - started
    load_after = os.getloadavg()
    by_key = {row["key"]: row for row in rows}
    framework = by_key["keras3_dense"]["vs_tf_keras_dense"]
    command = "python " + " ".join(
        [os.path.relpath(os.path.abspath(sys.argv[0]), os.getcwd()), *sys.argv[1:]])
    notes = "\n".join([
        f"Network: {describe()}: a regression MLP like those of TFP's regression tutorials; "
        f"mean squared error, Adam(1e-3), jit_compile=False (what the default gives on a CPU). "
        f"Data: {args.steps * BATCH} synthetic examples (NumPy, seed {SEED}), x ~ N(0, 1) with "
        f"{FEATURES} features, y = x w + 1 + N(0, {NOISE}^2) noise. The variational models use "
        "the same layer class for both layers, kernel KL divided by "
        f"{KL_EXAMPLES} (ours: `scaled_kl_divergence_fn({KL_EXAMPLES})`; TFP: a lambda), "
        "default posteriors and priors (no bias KL); TFP's class is built in tf_keras.",
        "",
        f"ms/step: median over {args.rounds} rounds of one `model.fit(x, y, epochs=1, "
        f"batch_size={BATCH}, verbose=0, shuffle=False)` over {args.steps} batches (after "
        f"{WARMUP} warm-up calls), timed from `on_train_begin` to `on_train_end` (the epoch's "
        "iterator, every step and its callbacks, as in every epoch of a long fit) and divided "
        "by the steps; min and max over the rounds. ms/epoch: the median training phase of "
        "the epoch. Whole fit() call: the same calls timed whole, with `fit`'s per-call set-up "
        "and tear-down, paid once per `fit` call, not per epoch (shown, not used in the "
        "ratios). All contenders in one process, models built once, interleaved, the order "
        "rotating each round. Ratios: median (min-max) of per-round ratios of the training "
        f"phase. Keras 3 Dense / tf_keras Dense = {framework:.2f}: what Keras 3's own `fit` "
        "step costs against tf_keras's on this network, with no variational layer at all.",
        "",
        f"Command: `cd bench && {command}` ({seconds:.0f} s; load average {load_before[0]:.2f} "
        f"before, {load_after[0]:.2f} after, on {os.cpu_count()} cores).",
    ])
    record = harness.write("dense_regression", rows, COLUMNS, notes=notes)
    record.update({
        "command": f"cd bench && {command}",
        "seconds": seconds,
        "load_average": {"before": load_before[0], "after": load_after[0]},
        "settings": {"features": FEATURES, "hidden": HIDDEN, "batch": BATCH,
                     "examples": args.steps * BATCH, "kl_examples": KL_EXAMPLES,
                     "rounds": args.rounds, "steps_per_epoch": args.steps,
                     "warmup": WARMUP, "seed": SEED},
        "per_round_seconds": timings,
    })
    (harness.RESULTS / "dense_regression.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{seconds:.0f} s")


if __name__ == "__main__":
    main()
