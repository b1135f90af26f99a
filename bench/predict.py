"""Prediction: one stochastic forward pass, and 30 Monte Carlo samples.

One forward pass: ``model(x)`` eagerly, as a user calls it, for ours, TFP's
class and a deterministic Conv3D. Monte Carlo: ``predict_mc(model, x, 30)``
vs the loop a TFP user writes today, ``[model(x) for _ in range(30)]`` (then
mean and std), on our model; the same loop on TFP's model for reference.
Classifier summaries: ``predict_mc(..., classifier=True)`` (entropies and
mutual information too) vs plain ``predict_mc`` on a voxelwise 3-class
segmenter, where the summaries have the most to compute.

    python bench/predict.py [--rounds 7]
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import keras  # noqa: E402

import harness  # noqa: E402
import models  # noqa: E402
from tfprobr_bridge import Conv3DReparameterization  # noqa: E402
from tfprobr_bridge import predict_mc  # noqa: E402

SAMPLES = 30


def loop(model, x):
    draws = np.stack([np.asarray(model(x)) for _ in range(SAMPLES)])
    return draws.mean(axis=0), draws.std(axis=0)


def segmenter(size):
    """Two Bayesian conv layers and a softmax over 3 classes at every voxel."""
    return keras.Sequential([
        keras.Input((size, size, size, 1)),
        Conv3DReparameterization(8, 3, padding="same", activation="relu"),
        Conv3DReparameterization(3, 3, padding="same"),
        keras.layers.Softmax(),
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rows = []
    for size, batch in models.SIZES:
        x = np.random.default_rng(0).standard_normal((batch, size, size, size, 1)).astype("float32")
        built = {name: models.CONTENDERS[name][0](size) for name in models.CONTENDERS}
        single = harness.interleave(
            {name: (lambda m=model: np.asarray(m(x))) for name, model in built.items()},
            args.rounds, warmup=2,
        )
        monte_carlo = harness.interleave(
            {
                "predict_mc": lambda: predict_mc(built["ours"], x, n_samples=SAMPLES,
                                                 batch_size=batch, verbose=0),
                "loop_ours": lambda: loop(built["ours"], x),
                "loop_tfp": lambda: loop(built["tfp"], x),
            },
            args.rounds, warmup=1,
        )
        segmentation = segmenter(size)
        summaries = harness.interleave(
            {
                "classifier": lambda: predict_mc(segmentation, x, n_samples=SAMPLES,
                                                 batch_size=batch, classifier=True, verbose=0),
                "plain": lambda: predict_mc(segmentation, x, n_samples=SAMPLES,
                                            batch_size=batch, verbose=0),
            },
            args.rounds * 3, warmup=1,
        )
        for name, values in summaries.items():
            summary = harness.summarise(values)
            rows.append({"input": f"{size}^3 x {batch}", "task": "30 MC samples, 3-class segmenter",
                         "contender": {"classifier": "predict_mc(classifier=True)",
                                       "plain": "predict_mc()"}[name], "key": f"summaries_{name}",
                         "median_ms": summary["median"], "min_ms": summary["min"],
                         "max_ms": summary["max"],
                         "ratio": harness.paired_ratio(values, summaries["plain"]),
                         "ratio_to": "predict_mc()"})
        for name, values in single.items():
            summary = harness.summarise(values)
            rows.append({"input": f"{size}^3 x {batch}", "task": "one forward pass",
                         "contender": models.LABELS[name], "key": name,
                         "median_ms": summary["median"], "min_ms": summary["min"],
                         "max_ms": summary["max"],
                         "ratio": harness.paired_ratio(values, single["tfp"]), "ratio_to": "TFP"})
        labels = {"predict_mc": "predict_mc(ours, 30)",
                  "loop_ours": "[ours(x) for _ in range(30)]",
                  "loop_tfp": "[tfp_model(x) for _ in range(30)]"}
        for name, values in monte_carlo.items():
            summary = harness.summarise(values)
            rows.append({"input": f"{size}^3 x {batch}", "task": "30 MC samples",
                         "contender": labels[name], "key": name,
                         "median_ms": summary["median"], "min_ms": summary["min"],
                         "max_ms": summary["max"],
                         "ratio": harness.paired_ratio(values, monte_carlo["loop_ours"]),
                         "ratio_to": "our loop"})
    harness.write(
        "predict",
        rows,
        [("input", "input", None), ("task", "task", None), ("contender", "contender", None),
         ("median_ms", "median ms", ".1f"), ("min_ms", "min", ".1f"), ("max_ms", "max", ".1f"),
         ("ratio", "ratio", ".2f"), ("ratio_to", "ratio to", None)],
        notes="One forward pass: eager `model(x)`. 30 MC samples: the whole batch, mean and std "
              "included. Ratios: medians of per-round ratios.",
    )


if __name__ == "__main__":
    main()
