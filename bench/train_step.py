"""Training: ours vs TFP's class vs a deterministic Conv3D, as users train and per call.

Two regimes, each with the contenders interleaved round by round in one process:

- ``fit`` (the headline): whole ``model.fit(epochs=1)`` calls over a dataset of
  several steps, as users train; sizes from 16^3 to 96^3 (batch sized to fit),
  with the peak memory of each contender (a fresh child process each, median of
  three) and how the step time grows with the voxels.
- ``train_on_batch``: one call per step from a Python loop. This measures per-call
  overhead as much as the step itself: tf_keras pays a large fixed cost per call.

    python bench/train_step.py [--rounds 15] [--steps 8]
"""

import argparse
import json
import math
import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import harness  # noqa: E402
import models  # noqa: E402

# (edge, batch): the batch shrinks as volumes grow, as it must on a real machine.
FIT_SIZES = [(16, 16), (32, 8), (48, 4), (64, 2), (96, 1)]
PER_CALL_SIZES = models.SIZES


def data(size, examples):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((examples, size, size, size, 1)).astype("float32")
    return x, rng.integers(0, models.CLASSES, examples)


def peak_memory_mb(name, size, batch, steps):
    """Run in a child: peak RSS growth (MB) of building a model and fitting one epoch."""
    x, y = data(size, batch * steps)
    with harness.PeakMemory() as memory:
        model = models.compiled(name, size)
        model.fit(x, y, epochs=1, batch_size=batch, verbose=0, shuffle=False)
    return memory.growth_mb


def child_memory(name, size, batch, steps):
    output = subprocess.run(
        [sys.executable, __file__, "--memory-child", name, str(size), str(batch), str(steps)],
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])["peak_mb"]


def rows_for(regime, size, batch, timings, steps, rounds, memory=None):
    rows = []
    for name, values in timings.items():
        summary = harness.summarise([v / steps for v in values])
        row = {
            "regime": regime,
            "input": f"{size}^3 x {batch}",
            "voxels": size**3,
            "batch": batch,
            "contender": models.LABELS[name],
            "key": name,
            "median_ms": summary["median"],
            "min_ms": summary["min"],
            "max_ms": summary["max"],
            "vs_tfp": harness.paired_ratio(values, timings["tfp"]),
            "vs_deterministic": harness.paired_ratio(values, timings["deterministic"]),
            "rounds": rounds,
            "steps_per_round": steps,
        }
        if memory is not None:
            row["peak_memory_mb"] = memory[name]
            row["memory_vs_deterministic"] = memory[name] / memory["deterministic"]
        rows.append(row)
    return rows


def fit_regime(rounds, steps):
    rows = []
    for size, batch in FIT_SIZES:
        x, y = data(size, batch * steps)
        compiled = {name: models.compiled(name, size) for name in models.CONTENDERS}

        def epoch(model):
            return lambda: model.fit(x, y, epochs=1, batch_size=batch, verbose=0, shuffle=False)

        timings = harness.interleave(
            {name: epoch(model) for name, model in compiled.items()}, rounds, warmup=1
        )
        # Memory noise between processes is a few MB: take the median of three.
        memory = {name: float(np.median([child_memory(name, size, batch, steps)
                                         for _ in range(3)]))
                  for name in compiled}
        rows.extend(rows_for("fit", size, batch, timings, steps, rounds, memory))
    return rows


def per_call_regime(rounds, steps):
    rows = []
    for size, batch in PER_CALL_SIZES:
        x, y = data(size, batch)
        compiled = {name: models.compiled(name, size) for name in models.CONTENDERS}

        def calls(model):
            return lambda: [model.train_on_batch(x, y) for _ in range(steps)]

        timings = harness.interleave(
            {name: calls(model) for name, model in compiled.items()}, rounds, warmup=1
        )
        rows.extend(rows_for("train_on_batch", size, batch, timings, steps, rounds))
    return rows


def growth(rows, key):
    """Exponent b of time per example ~ voxels**b (least squares in log-log)."""
    points = [(math.log(r["voxels"]), math.log(r["median_ms"] / r["batch"]))
              for r in rows if r["key"] == key]
    mean_x = sum(p[0] for p in points) / len(points)
    mean_y = sum(p[1] for p in points) / len(points)
    return (sum((px - mean_x) * (py - mean_y) for px, py in points)
            / sum((px - mean_x) ** 2 for px, _ in points))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--memory-child", nargs=4, metavar=("NAME", "SIZE", "BATCH", "STEPS"))
    args = parser.parse_args()
    if args.memory_child:
        name, size, batch, steps = args.memory_child
        print(json.dumps({"peak_mb": peak_memory_mb(name, int(size), int(batch), int(steps))}))
        return

    fit_rows = fit_regime(args.rounds, args.steps)
    exponents = {key: growth(fit_rows, key) for key in models.CONTENDERS}
    harness.write(
        "train_step",
        fit_rows,
        [("input", "input", None), ("contender", "contender", None),
         ("median_ms", "median ms/step", ".1f"), ("min_ms", "min", ".1f"),
         ("max_ms", "max", ".1f"), ("vs_tfp", "vs TFP", ".2f"),
         ("vs_deterministic", "vs deterministic", ".2f"),
         ("peak_memory_mb", "peak memory MB", ".0f"),
         ("memory_vs_deterministic", "memory vs deterministic", ".2f")],
        notes=f"Regime: whole `model.fit(epochs=1)` calls of {args.steps} steps, the contenders "
              f"interleaved over {args.rounds} rounds in one process after a warm-up. Time: median "
              "over rounds of the epoch time / steps; ratios are medians of per-round ratios. "
              "Memory: peak RSS growth of a fresh process (same imports; median of three) from "
              "building the model through one epoch, sampled every 2 ms. Growth with voxels "
              "(time per example ~ voxels^b): "
              + ", ".join(f"{models.LABELS[k]} b = {v:.2f}" for k, v in exponents.items()) + ".",
    )
    per_call_rows = per_call_regime(args.rounds, 5)
    harness.write(
        "train_on_batch",
        per_call_rows,
        [("input", "input", None), ("contender", "contender", None),
         ("median_ms", "median ms/step", ".1f"), ("min_ms", "min", ".1f"),
         ("max_ms", "max", ".1f"), ("vs_tfp", "vs TFP", ".2f"),
         ("vs_deterministic", "vs deterministic", ".2f")],
        notes="Regime: per-call overhead. `train_on_batch` called 5 times per round from a Python "
              f"loop, {args.rounds} interleaved rounds; tf_keras pays a large fixed cost on every "
              "such call, so TFP looks slower here than in `fit()`.",
    )


if __name__ == "__main__":
    main()
