"""A distribution head: IndependentNormal against a hand-written Gaussian NLL, in fit and predict.

A regression network whose last layer is ``tfprobr_bridge.IndependentNormal(1)``
(its output is a tensor carrying a Normal; the loss is ``lambda y, rv:
-rv.log_prob(y)``) against the same plain network (the same dense layers, a
``Dense(2)`` head) trained with a hand-written Gaussian negative
log-likelihood (``loc``, ``softplus`` scale: the same parameterisation and
the same loss values for the same weights, which the script checks). Data:
scikit-learn's diabetes regression (442 examples, 10 features, shipped inside
scikit-learn's wheel, no download), target standardised. Three model sizes:
10 -> 16 (ReLU) -> 2, 10 -> 64 -> 64 -> 2 and 10 -> 256 -> 256 -> 2.

Contenders per size, each a model built and compiled once and reused for
every round (Adam(1e-3), batch 32, ``jit_compile=False``, which is what the
default gives on a CPU):

- ``plain``: ``Dense(2)`` head, hand-written Gaussian NLL (the reference);
- ``independent_normal``: ``Dense(2)`` then ``IndependentNormal(1)``, loss
  ``lambda y, rv: -rv.log_prob(y)`` (the target's contender);
- ``distribution_lambda``: ``Dense(2)`` then a ``DistributionLambda`` making
  ``Independent(Normal(loc, softplus(scale)), 1)`` by hand, same loss;
- ``plain_tfd_loss``: the plain network, its loss building that distribution
  inside the loss (a diagnostic: TFP's ``log_prob`` without any layer).

Training: one ``model.fit(x, y, epochs=--epochs, batch_size=32, verbose=0,
shuffle=False)`` per round (14 batches per epoch), timed from
``on_train_begin`` to ``on_train_end`` and divided by the steps; the
process's CPU time over the same span is recorded beside it (on a shared
machine, other jobs stretch wall time but hardly this process's CPU time).
Prediction: ``model.predict(x, batch_size=32, verbose=0)`` on the 442
examples, and an eager ``model(x)`` followed by the mean and standard
deviation (what an R or Python user calls to read the distribution; for the
plain network, ``loc`` and the softplus by hand). Contenders of one size run in one process,
interleaved, the order rotating each round, after warm-ups; ratios are
medians (min-max) of per-round ratios to ``plain``.

    python bench/distribution_head.py [--rounds 30] [--predict-rounds 15] [--epochs 2]
                                      [--sizes small medium large]
"""

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import harness  # noqa: E402

SEED = 0
BATCH = 32
WARMUP = 2
TARGET = 1.10  # training step, independent_normal / plain
SIZES = {"small": (16,), "medium": (64, 64), "large": (256, 256)}
CONTENDERS = {
    "plain": "plain Dense(2), hand-written Gaussian NLL",
    "independent_normal": "IndependentNormal(1), -rv.log_prob(y)",
    "distribution_lambda": "DistributionLambda (Independent Normal by hand), -rv.log_prob(y)",
    "plain_tfd_loss": "plain Dense(2), TFP Normal built in the loss (diagnostic)",
}
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def data():
    """scikit-learn's diabetes regression: x as shipped (centred, scaled), y standardised."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    y = (y - y.mean()) / y.std()
    return x.astype("float32"), y.reshape(-1, 1).astype("float32")


def describe(size, features=10):
    return " -> ".join(map(str, (features, *SIZES[size], 2)))


def gaussian_nll(y_true, params):
    """-log N(y; loc, softplus(scale)) per example, from a (batch, 2) output."""
    import keras

    loc, raw = params[..., :1], params[..., 1:]
    scale = keras.ops.softplus(raw)
    z = (y_true - loc) / scale
    return keras.ops.sum(LOG_SQRT_2PI + keras.ops.log(scale) + 0.5 * z * z, axis=-1)


def _normal(params):
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    return tfd.Independent(tfd.Normal(loc=params[..., :1], scale=tf.math.softplus(params[..., 1:])),
                           reinterpreted_batch_ndims=1)


def tfd_nll(y_true, params):
    return -_normal(params).log_prob(y_true)


def distribution_nll(y_true, rv):
    return -rv.log_prob(y_true)


def build(key, size, features):
    import keras

    import tfprobr_bridge

    layers = [keras.Input((features,))]
    layers += [keras.layers.Dense(units, activation="relu") for units in SIZES[size]]
    layers.append(keras.layers.Dense(tfprobr_bridge.IndependentNormal.params_size(1)))
    if key == "independent_normal":
        layers.append(tfprobr_bridge.IndependentNormal(1))
    elif key == "distribution_lambda":
        layers.append(tfprobr_bridge.DistributionLambda(_normal))
    model = keras.Sequential(layers)
    loss = {"plain": gaussian_nll, "plain_tfd_loss": tfd_nll}.get(key, distribution_nll)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, jit_compile=False)
    return model


def models_for(size, features):
    """The contenders of one size, with the same initial weights."""
    import keras

    keras.utils.set_random_seed(SEED)
    models = {key: build(key, size, features) for key in CONTENDERS}
    weights = models["plain"].get_weights()
    for model in models.values():
        model.set_weights(weights)
    return models


def check_losses(models, x, y):
    """Every contender's loss on the same weights equals the hand-written one."""
    losses = {key: float(model.evaluate(x, y, batch_size=len(x), verbose=0))
              for key, model in models.items()}
    spread = max(losses.values()) - min(losses.values())
    if spread > 1e-4 * max(1.0, abs(losses["plain"])):
        raise AssertionError(f"the contenders' losses differ on the same weights: {losses}")
    return losses


class PhaseClock:
    """A Keras callback recording when ``fit`` starts and ends training."""

    def __new__(cls):
        import keras

        class Clock(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.begin, self.cpu_begin = time.perf_counter(), time.process_time()

            def on_train_end(self, logs=None):
                self.end, self.cpu_end = time.perf_counter(), time.process_time()

        return Clock()


def read_plain(model, x):
    import tensorflow as tf

    out = model(x)
    return out[..., :1].numpy(), tf.math.softplus(out[..., 1:]).numpy()


def read_distribution(model, x):
    rv = model(x)
    return rv.mean().numpy(), rv.stddev().numpy()


def measure(size, rounds, predict_rounds, epochs, x, y):
    models = models_for(size, x.shape[1])
    losses = check_losses(models, x, y)
    whole = {key: [] for key in models}
    cpu = {key: [] for key in models}

    def fit(key, model):
        clock = PhaseClock()

        def run():
            started = time.perf_counter()
            model.fit(x, y, epochs=epochs, batch_size=BATCH, verbose=0, shuffle=False,
                      callbacks=[clock])
            whole[key].append(time.perf_counter() - started)
            cpu[key].append(clock.cpu_end - clock.cpu_begin)
            return float(clock.end - clock.begin)

        return run

    fits = harness.interleave({k: fit(k, m) for k, m in models.items()}, rounds, warmup=WARMUP)
    predicted = ("plain", "independent_normal", "distribution_lambda")
    predicts = harness.interleave(
        {k: (lambda m=models[k]: m.predict(x, batch_size=BATCH, verbose=0)) for k in predicted},
        predict_rounds, warmup=WARMUP)
    eager = harness.interleave(
        {k: (lambda m=models[k], k=k: (read_plain if k == "plain" else read_distribution)(m, x))
         for k in predicted},
        predict_rounds, warmup=WARMUP)
    return {"fit": fits, "fit_call": {k: v[WARMUP:] for k, v in whole.items()},
            "fit_cpu": {k: v[WARMUP:] for k, v in cpu.items()},
            "predict": predicts, "eager": eager, "losses": losses}


def package_state():
    """The commit, and a digest of tfprobr_bridge/'s sources as measured (the working tree
    may differ from the commit)."""
    import hashlib
    import pathlib
    import subprocess

    root = pathlib.Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted((root / "tfprobr_bridge").rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = git("status", "--porcelain", "--", "tfprobr_bridge")
    return {"commit": git("rev-parse", "HEAD"), "sources_sha256": digest.hexdigest(),
            "uncommitted_package_files": len(changed.splitlines()) if changed else 0}


def ratios(values, reference):
    per_round = [v / r for v, r in zip(values, reference)]
    return harness.paired_ratio(values, reference), min(per_round), max(per_round)


def rows_for(size, timings, steps, examples):
    rows = []
    fits, cpu = timings["fit"], timings["fit_cpu"]
    for key, label in CONTENDERS.items():
        step = harness.summarise([v / steps for v in fits[key]])
        ratio = ratios(fits[key], fits["plain"])
        cpu_ratio = ratios(cpu[key], cpu["plain"])
        rows.append({
            "size": size, "network": describe(size), "measure": "fit step", "key": key,
            "contender": label, "median_ms": step["median"], "min_ms": step["min"],
            "max_ms": step["max"], "whole_call_ms": harness.summarise(
                timings["fit_call"][key])["median"],
            "ratio": ratio[0], "ratio_min": ratio[1], "ratio_max": ratio[2],
            "ratio_cell": f"{ratio[0]:.2f} ({ratio[1]:.2f}-{ratio[2]:.2f})",
            "cpu_ms": harness.summarise([v / steps for v in cpu[key]])["median"],
            "cpu_ratio": cpu_ratio[0], "cpu_ratio_min": cpu_ratio[1],
            "cpu_ratio_max": cpu_ratio[2],
            "cpu_ratio_cell": f"{cpu_ratio[0]:.2f} ({cpu_ratio[1]:.2f}-{cpu_ratio[2]:.2f})",
            "rounds": len(fits[key]), "steps": steps,
        })
    for measure, name in (("predict", f"predict(), {examples} examples"),
                          ("eager", f"model(x) + mean, stddev, {examples} examples")):
        values = timings[measure]
        for key in values:
            summary = harness.summarise(values[key])
            ratio = ratios(values[key], values["plain"])
            rows.append({
                "size": size, "network": describe(size), "measure": name, "key": key,
                "contender": CONTENDERS[key], "median_ms": summary["median"],
                "min_ms": summary["min"], "max_ms": summary["max"], "whole_call_ms": None,
                "ratio": ratio[0], "ratio_min": ratio[1], "ratio_max": ratio[2],
                "ratio_cell": f"{ratio[0]:.2f} ({ratio[1]:.2f}-{ratio[2]:.2f})",
                "cpu_ms": None, "cpu_ratio": None, "cpu_ratio_min": None,
                "cpu_ratio_max": None, "cpu_ratio_cell": "-",
                "rounds": len(values[key]), "steps": None,
            })
    return rows


COLUMNS = [
    ("network", "network", None),
    ("measure", "measure", None),
    ("contender", "contender", None),
    ("median_ms", "median ms", ".2f"),
    ("min_ms", "min", ".2f"),
    ("max_ms", "max", ".2f"),
    ("ratio_cell", "vs plain (min-max)", None),
    ("cpu_ratio_cell", "CPU time vs plain (min-max)", None),
]


def targets(record=None):
    """This benchmark's target: [(text, values, limit, met)] for bench/report.py."""
    if record is None:
        record = json.loads((harness.RESULTS / "distribution_head.json").read_text())
    mine = [row for row in record["results"]
            if row["measure"] == "fit step" and row["key"] == "independent_normal"]
    return [(
        "Training step in `fit()`, IndependentNormal head / plain Dense head with a hand-written "
        "Gaussian NLL",
        ", ".join(f"{row['network']} {row['ratio']:.2f}" for row in mine),
        f"<= {TARGET:.2f}", all(row["ratio"] <= TARGET for row in mine),
    )]


def facts(record=None):
    """Prediction, no target: a line for bench/report.py."""
    if record is None:
        record = json.loads((harness.RESULTS / "distribution_head.json").read_text())
    rows = [row for row in record["results"] if row["key"] == "independent_normal"]
    cells = {}
    for row in rows:
        kind = ("fit" if row["measure"] == "fit step" else
                "predict" if row["measure"].startswith("predict") else "eager")
        cells.setdefault(kind, []).append(f"{row['network']} {row['ratio']:.2f}")
    return ("- IndependentNormal head / plain Dense head (no target): `predict()` "
            + ", ".join(cells["predict"]) + "; eager `model(x)` then mean and stddev "
            + ", ".join(cells["eager"]) + ".")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="fit() rounds")
    parser.add_argument("--predict-rounds", type=int, default=15,
                        help="rounds of predict() and of the eager call")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per fit() call")
    parser.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    args = parser.parse_args()
    started = time.perf_counter()
    load_before = os.getloadavg()

    x, y = data()
    steps = args.epochs * math.ceil(len(x) / BATCH)
    rows, per_round, losses = [], {}, {}
    for size in args.sizes:
        timings = measure(size, args.rounds, args.predict_rounds, args.epochs, x, y)
        losses[size] = timings.pop("losses")
        per_round[size] = timings
        rows += rows_for(size, timings, steps, len(x))
    seconds = time.perf_counter() - started
    load_after = os.getloadavg()
    command = "python " + " ".join(
        [os.path.relpath(os.path.abspath(sys.argv[0]), os.getcwd()), *sys.argv[1:]])
    notes = "\n".join([
        "Networks: dense layers with ReLU, then `Dense(2)`; the distribution models add "
        "`IndependentNormal(1)` (or a `DistributionLambda` making `Independent(Normal(loc, "
        "softplus(scale)), 1)`) whose output reaches the loss `lambda y, rv: -rv.log_prob(y)`; "
        "the plain one is trained with a hand-written Gaussian NLL (loc, softplus scale), equal "
        "loss for equal weights (checked: all contenders' losses on the same initial weights "
        "agree within 1e-4). Adam(1e-3), batch 32, jit_compile=False (the CPU default). Data: "
        f"scikit-learn's diabetes regression, {len(x)} examples x {x.shape[1]} features, target "
        "standardised.",
        "",
        f"fit step: median over {args.rounds} rounds of one `model.fit(x, y, epochs="
        f"{args.epochs}, batch_size={BATCH}, verbose=0, shuffle=False)` ({steps} steps; after "
        f"{WARMUP} warm-up calls), timed from `on_train_begin` to `on_train_end`, divided by the "
        "steps; min and max over rounds. CPU time: this process's CPU time (all threads) over "
        "the same span, as a ratio like the wall time's: other jobs on the machine stretch wall "
        "time but hardly this. predict(): `model.predict(x, batch_size=32, verbose=0)` over all "
        f"examples, {args.predict_rounds} rounds. model(x) + mean, stddev: an eager call and "
        "reading the distribution's mean and standard deviation (plain: `loc` and the softplus "
        f"by hand), {args.predict_rounds} rounds. Contenders of one size in one process, models "
        "built once, interleaved, the order rotating each round. vs plain: median (min-max) of "
        "per-round ratios.",
        "",
        f"Command: `cd bench && {command}` ({seconds:.0f} s; load average {load_before[0]:.2f} "
        f"before, {load_after[0]:.2f} after, on {os.cpu_count()} cores).",
    ])
    record = harness.write("distribution_head", rows, COLUMNS, notes=notes)
    record.update({
        "command": f"cd bench && {command}",
        "seconds": seconds,
        "load_average": {"before": load_before[0], "after": load_after[0]},
        "settings": {"batch": BATCH, "epochs": args.epochs, "steps": steps,
                     "rounds": args.rounds, "predict_rounds": args.predict_rounds,
                     "warmup": WARMUP, "seed": SEED,
                     "examples": len(x), "features": int(x.shape[1]),
                     "sizes": {size: describe(size) for size in args.sizes}},
        "initial_losses": losses,
        "package": package_state(),
        "per_round_seconds": per_round,
    })
    (harness.RESULTS / "distribution_head.json").write_text(json.dumps(record, indent=2) + "\n")
    for text, values, limit, met in targets(record):
        print(f"{text}: {values} (target {limit}): {'met' if met else 'NOT met'}")
    print(f"{seconds:.0f} s")


if __name__ == "__main__":
    main()
