"""Training step: ours vs TFP's class vs a deterministic Conv3D, time and peak memory.

Time: one process, contenders interleaved, 15 rounds of 5 steps after warm-up.
Memory: each contender in a fresh child process (same imports), peak RSS
growth from just before the model is built to after 5 training steps.

    python bench/train_step.py [--rounds 15] [--steps 5]
"""

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import harness  # noqa: E402
import models  # noqa: E402


def data(size, batch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, size, size, size, 1)).astype("float32")
    return x, rng.integers(0, models.CLASSES, batch)


def peak_memory_mb(name, size, batch, steps):
    """Run in a child: peak RSS growth (MB) of building and training one model."""
    x, y = data(size, batch)
    with harness.PeakMemory() as memory:
        model = models.compiled(name, size)
        for _ in range(steps):
            model.train_on_batch(x, y)
    return memory.growth_mb


def child_memory(name, size, batch, steps):
    output = subprocess.run(
        [sys.executable, __file__, "--memory-child", name, str(size), str(batch), str(steps)],
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])["peak_mb"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--memory-child", nargs=4, metavar=("NAME", "SIZE", "BATCH", "STEPS"))
    args = parser.parse_args()
    if args.memory_child:
        name, size, batch, steps = args.memory_child
        print(json.dumps({"peak_mb": peak_memory_mb(name, int(size), int(batch), int(steps))}))
        return

    rows = []
    for size, batch in models.SIZES:
        x, y = data(size, batch)
        compiled = {name: models.compiled(name, size) for name in models.CONTENDERS}

        def steps(model):
            return lambda: [model.train_on_batch(x, y) for _ in range(args.steps)]

        timings = harness.interleave(
            {name: steps(model) for name, model in compiled.items()}, args.rounds, warmup=1
        )
        # Memory noise between processes is a few MB: take the median of three.
        memory = {name: float(np.median([child_memory(name, size, batch, args.steps)
                                         for _ in range(3)]))
                  for name in compiled}
        for name, values in timings.items():
            summary = harness.summarise([v / args.steps for v in values])
            rows.append({
                "input": f"{size}^3 x {batch}",
                "contender": models.LABELS[name],
                "key": name,
                "median_ms": summary["median"],
                "min_ms": summary["min"],
                "max_ms": summary["max"],
                "vs_tfp": harness.paired_ratio(values, timings["tfp"]),
                "vs_deterministic": harness.paired_ratio(values, timings["deterministic"]),
                "peak_memory_mb": memory[name],
                "rounds": args.rounds,
                "steps_per_round": args.steps,
            })
    harness.write(
        "train_step",
        rows,
        [("input", "input", None), ("contender", "contender", None),
         ("median_ms", "median ms/step", ".1f"), ("min_ms", "min", ".1f"),
         ("max_ms", "max", ".1f"), ("vs_tfp", "vs TFP", ".2f"),
         ("vs_deterministic", "vs deterministic", ".2f"),
         ("peak_memory_mb", "peak memory MB", ".0f")],
        notes="Time: median over rounds of the mean step time in a round; ratios are medians of "
              "per-round ratios. Memory: peak RSS growth "
              "of a fresh process (same imports; median of three processes) from building the model through 5 training steps, "
              "sampled every 2 ms.",
    )


if __name__ == "__main__":
    main()
