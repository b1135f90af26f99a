"""The brain-MRI study of brain-mri-segmentation.Rmd, in Python and pipe style, shorter.

A Bayesian 3-D CNN (LayerStack | layer_conv_3d_reparameterization) and the same
network with Keras 3 Conv3D segment the MNI ICBM152 template into grey matter,
white matter and other; a held-out axial slab measures accuracy, Dice and
Monte Carlo uncertainty. `make demo-python` runs it; `--quick` is the smoke test.

    python vignettes/brain_mri_segmentation.py [--quick] [--output-dir out/demo-python]
"""

import argparse
import json
import os
import pathlib
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tfprobr_bridge import LayerStack  # noqa: E402
from tfprobr_bridge import layer_conv_3d_reparameterization as bayes_conv  # noqa: E402
from tfprobr_bridge import load_mni152_tissue  # noqa: E402
from tfprobr_bridge import predict_mc  # noqa: E402
from tfprobr_bridge import scaled_kl_divergence_fn  # noqa: E402

SLAB = slice(28, 37)  # nine held-out axial slices (the R vignette's 29:37)
MARGIN = 3  # the network's reach: three voxels of context


def crops(t1, labels, n, size, rng):
    """Random crops centred in the brain, whose slices stay clear of the slab and its margin."""
    banned = set(range(SLAB.start - MARGIN, SLAB.stop + MARGIN))
    brain = np.argwhere(labels > 0)
    low, high = brain.min(0), brain.max(0)
    starts = []
    for axis in range(3):
        first = max(0, low[axis] - size[axis] // 2)
        last = min(t1.shape[axis] - size[axis], high[axis] - size[axis] // 2)
        starts.append([s for s in range(first, last + 1)
                       if axis < 2 or not banned & set(range(s, s + size[2]))])
    x = np.empty((n, *size, 1), "float32")
    y = np.empty((n, *size), "int32")
    for i in range(n):
        a, b, c = (rng.choice(options) for options in starts)
        region = np.s_[a:a + size[0], b:b + size[1], c:c + size[2]]
        x[i, ..., 0], y[i] = t1[region], labels[region]
    return x, y


def networks(n_examples):
    kl = scaled_kl_divergence_fn(n_examples)  # the KL counts once per epoch
    bayesian, deterministic = (LayerStack(input_shape=(None, None, None, 1), name=name)
                               for name in ("bayesian", "deterministic"))
    for _ in range(3):
        bayesian = bayesian.pipe(bayes_conv, filters=16, kernel_size=3, padding="same",
                                 activation="relu", kernel_divergence_fn=kl)
        deterministic |= keras.layers.Conv3D(16, 3, padding="same", activation="relu")
    bayesian = bayesian.pipe(bayes_conv, filters=3, kernel_size=1, activation="softmax",
                             kernel_divergence_fn=kl)
    deterministic |= keras.layers.Conv3D(3, 1, activation="softmax")
    return bayesian.to_model(), deterministic.to_model()


def spread_of_chosen_class(mean, stddev):
    chosen = mean.argmax(-1)
    return np.take_along_axis(stddev, chosen[..., None], -1)[..., 0]


def dice(predicted, truth, k):
    return 2 * np.sum((predicted == k) & (truth == k)) / (np.sum(predicted == k) + np.sum(truth == k))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny crops, one epoch")
    parser.add_argument("--output-dir", default="out/demo-python")
    args = parser.parse_args()
    out = pathlib.Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    keras.utils.set_random_seed(2026)
    rng = np.random.default_rng(2026)

    mri = load_mni152_tissue(downsample=3)
    foreground = mri["t1"] > 0.1  # the template is skull-stripped: standardise over it
    t1 = (mri["t1"] - mri["t1"][foreground].mean()) / mri["t1"][foreground].std()
    size, n_crops, epochs, n_samples = ((16, 16, 12), 8, 1, 3) if args.quick else ((24, 24, 16), 192, 60, 30)
    x, y = crops(t1, mri["labels"], n_crops, size, rng)

    bayesian, deterministic = networks(n_examples=n_crops * np.prod(size))
    for model in (bayesian, deterministic):
        model.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, epochs=epochs, batch_size=8, verbose=2)

    context = slice(SLAB.start - MARGIN, SLAB.stop + MARGIN)
    x_slab = t1[None, :, :, context, None]
    inner = slice(MARGIN, MARGIN + SLAB.stop - SLAB.start)
    truth = mri["labels"][:, :, SLAB]
    mc = predict_mc(bayesian, x_slab, n_samples=n_samples)
    mean, stddev = mc["mean"][0, :, :, inner], mc["stddev"][0, :, :, inner]
    predicted = {"bayesian": mean.argmax(-1),
                 "deterministic": deterministic.predict(x_slab, verbose=0)[0, :, :, inner].argmax(-1)}
    uncertainty = spread_of_chosen_class(mean, stddev)

    # Boundary voxels: tissue with a face neighbour of another label.
    padded = np.pad(truth, 1, constant_values=-1)
    core = padded[1:-1, 1:-1, 1:-1]
    differs = np.zeros_like(truth, bool)
    for axis in range(3):
        for step in (-1, 1):
            neighbour = np.roll(padded, step, axis)[1:-1, 1:-1, 1:-1]
            differs |= (neighbour != -1) & (neighbour != core)
    tissue = truth > 0
    in_foreground = foreground[:, :, SLAB]
    shifted = {}
    noise = np.random.default_rng(7).normal(size=x_slab.shape).astype("float32")
    for name, x_shift in (("noise", x_slab + noise), ("inverted", -x_slab)):
        result = predict_mc(bayesian, x_shift, n_samples=n_samples)
        shifted[name] = spread_of_chosen_class(result["mean"][0, :, :, inner],
                                               result["stddev"][0, :, :, inner])

    path = out / "bayesian.keras"
    bayesian.save(path)
    restored = keras.models.load_model(path)
    again = predict_mc(restored, x_slab, n_samples=n_samples)["mean"][0, :, :, inner]

    summary = {
        "quick": args.quick,
        "accuracy": {k: float(np.mean(p == truth)) for k, p in predicted.items()},
        "dice": {k: {t: float(dice(p, truth, i)) for i, t in enumerate(mri["tissues"])}
                 for k, p in predicted.items()},
        "uncertainty_boundary_over_interior":
            float(uncertainty[tissue & differs].mean() / uncertainty[tissue & ~differs].mean()),
        **{f"uncertainty_{k}_over_clean": float(u[in_foreground].mean() / uncertainty[in_foreground].mean())
           for k, u in shifted.items()},
        "restored_accuracy": float(np.mean(again.argmax(-1) == truth)),
        "seconds": time.perf_counter() - started,
    }
    middle = truth.shape[2] // 2
    panels = [(mri["t1"][:, :, SLAB][..., middle], "T1", "gray"), (truth[..., middle], "truth", "gray"),
              (predicted["bayesian"][..., middle], "Bayesian prediction", "gray"),
              (uncertainty[..., middle], "uncertainty", "inferno")]
    figure, axes = plt.subplots(1, 4, figsize=(14, 4))
    for axis, (image, title, colours) in zip(axes, panels):
        axis.imshow(image.T, origin="lower", cmap=colours)
        axis.set_title(title)
        axis.axis("off")
    figure.savefig(out / "slices.png", dpi=100, bbox_inches="tight")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
