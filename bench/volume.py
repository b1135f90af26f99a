"""Whole-volume Monte Carlo inference: predict_volume's time and memory, and a 1 mm scan.

Four measurements, on a 3-class voxelwise segmenter of 32^3 x 1 windows (two
3-D conv layers: 8 filters with ReLU, then 3 filters and a softmax, 3x3x3,
same padding), Bayesian (``Conv3DReparameterization``) or deterministic
(``keras.layers.Conv3D``), on a synthetic 2 mm brain of 96 x 112 x 96 voxels
(an ellipsoid of tissue in zeros), default window layout (overlap 0.5,
Gaussian blending, batch 4: 150 windows):

1. Time: ``predict_volume(bayesian, volume, n_samples=N)`` against N
   deterministic sliding-window passes, each ``predict_volume(deterministic,
   volume, n_samples=1)`` (what a user calls), N = 10 and 30, interleaved in
   one process with the order rotating each round; the ratio is the median of
   per-round ratios.
2. Memory: peak RSS growth of ``predict_volume`` at n_samples = 10 and 100,
   each in a fresh process (median of ``--memory-repeats``), measured from
   after a warm-up call on one window to the end of the call, result kept.
3. Memory of the "stacked samples" approach (MONAI / nobrainer style): N
   sliding-window passes, each sample's whole probability volume kept in a
   preallocated numpy stack (N, depth, height, width, classes), then
   ``mean`` and ``std`` over the stack; N = 10 and 100, one fresh process each
   (its size is arithmetic: the noise between processes is a few MB).
4. The 1 mm MNI152 template (nilearn's, 197 x 233 x 189) through
   ``segment_nifti`` end to end (the model from its ``.keras`` file, min-max
   normalisation, 30 samples, six NIfTI maps and the summary written), the
   model saved at 3 mm (the study's spacing: the scan is resampled to 66 x 78
   x 63) and at 1 mm (no resampling); predict_volume's own time inside the
   same run (its ``seconds``) is reported beside it. One run each.

    python bench/volume.py [--rounds 5] [--rounds-30 2] [--memory-repeats 3] [--spacings 3 1]
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import keras  # noqa: E402

import harness  # noqa: E402
from tfprobr_bridge import Conv3DReparameterization  # noqa: E402
from tfprobr_bridge import predict_volume  # noqa: E402
from tfprobr_bridge import save_segmenter  # noqa: E402
from tfprobr_bridge import segment_nifti  # noqa: E402

SHAPE = (96, 112, 96)  # a 2 mm brain
PATCH = 32
CLASSES = 3
CLASS_NAMES = ["background", "gray matter", "white matter"]
TIME_SAMPLES = (10, 30)
MEMORY_SAMPLES = (10, 100)
TEMPLATE_SAMPLES = 30
VOXELS = int(np.prod(SHAPE))


def segmenter(layer):
    """Two 3-D conv layers (8 filters, ReLU; then 3) and a softmax over 3 classes per voxel."""
    return keras.Sequential([
        keras.Input((PATCH, PATCH, PATCH, 1)),
        layer(8, 3, padding="same", activation="relu"),
        layer(CLASSES, 3, padding="same"),
        keras.layers.Softmax(),
    ])


def brain(shape=SHAPE):
    """An ellipsoid of textured tissue (0..1) in a background of zeros."""
    rng = np.random.default_rng(0)
    grids = np.meshgrid(*[np.linspace(-1, 1, size) for size in shape], indexing="ij")
    radius = np.sqrt(sum((grid / 0.85) ** 2 for grid in grids))
    texture = 0.6 + 0.25 * np.sin(8 * grids[0]) * np.cos(6 * grids[1]) + 0.05 * rng.standard_normal(
        shape)
    return np.where(radius < 1, np.clip(texture, 0, 1), 0).astype(np.float32)


# --- 1. time --------------------------------------------------------------------------------

def timing(rounds, rounds_30):
    volume = brain()
    bayesian = segmenter(Conv3DReparameterization)
    deterministic = segmenter(keras.layers.Conv3D)
    windows = predict_volume(deterministic, volume, n_samples=1, verbose=0)["windows"]
    rows = []
    for n in TIME_SAMPLES:
        # N = 30 runs after N = 10 in the same process: everything is warm already (and
        # predict_volume traces its function on every call anyway).
        timings = harness.interleave(
            {
                "ours": lambda n=n: predict_volume(bayesian, volume, n_samples=n, verbose=0),
                "deterministic": lambda n=n: [
                    predict_volume(deterministic, volume, n_samples=1, verbose=0)
                    for _ in range(n)
                ],
            },
            rounds if n == TIME_SAMPLES[0] else rounds_30,
            warmup=1 if n == TIME_SAMPLES[0] else 0,
        )
        labels = {
            "ours": f"predict_volume(bayesian, n_samples={n})",
            "deterministic": f"{n} x predict_volume(deterministic, n_samples=1)",
        }
        for name, values in timings.items():
            summary = harness.summarise(values, scale=1)
            rows.append({
                "part": "time", "key": f"time_{name}_{n}",
                "measure": f"time, {'x'.join(map(str, SHAPE))} ({windows} windows of {PATCH}^3)",
                "contender": labels[name], "samples": n,
                "median": summary["median"], "min": summary["min"], "max": summary["max"],
                "unit": "s", "per_voxel": summary["median"] / VOXELS * 1e6,
                "per_voxel_unit": "us",
                "ratio": harness.paired_ratio(values, timings["deterministic"]),
                "ratio_to": f"{n} deterministic passes", "repeats": len(values),
            })
    return rows


# --- 2. and 3. memory, in fresh processes -------------------------------------------------------

def stacked(model, volume, n):
    """The anchors' way: N sliding-window passes, every sample's probability volume kept."""
    draws = None
    for index in range(n):
        probabilities = predict_volume(model, volume, n_samples=1, seed=index,
                                       verbose=0)["probabilities"]
        if draws is None:
            draws = np.empty((n, *probabilities.shape), np.float32)
        draws[index] = probabilities
    return draws.mean(axis=0), draws.std(axis=0)


def memory_in_child(kind, n):
    """Peak RSS growth (MB) of one whole-volume inference, after a warm-up on one window."""
    volume = brain()
    model = segmenter(Conv3DReparameterization)
    predict_volume(model, volume[:PATCH, :PATCH, :PATCH], n_samples=2, verbose=0, seed=0)
    started = time.perf_counter()
    with harness.PeakMemory() as memory:
        if kind == "ours":
            result = predict_volume(model, volume, n_samples=n, verbose=0, seed=0)
        else:
            result = stacked(model, volume, n)
        del result
    return {"peak_mb": memory.growth_mb, "seconds": time.perf_counter() - started}


def child_memory(kind, n):
    output = subprocess.run(
        [sys.executable, __file__, "--memory-child", kind, str(n)],
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def memory(repeats):
    runs = {("ours", n): [child_memory("ours", n) for _ in range(repeats)]
            for n in MEMORY_SAMPLES}
    runs.update({("stacked", n): [child_memory("stacked", n)] for n in MEMORY_SAMPLES})
    peak = {key: float(np.median([run["peak_mb"] for run in values]))
            for key, values in runs.items()}
    seconds = {key: float(np.median([run["seconds"] for run in values]))
               for key, values in runs.items()}
    rows = []
    for (kind, n), values in runs.items():
        mb = [run["peak_mb"] for run in values]
        if kind == "ours":
            contender = f"predict_volume(n_samples={n})"
            ratio, ratio_to = peak[kind, n] / peak[kind, MEMORY_SAMPLES[0]], \
                f"predict_volume(n_samples={MEMORY_SAMPLES[0]})"
        else:
            contender = f"stacked samples: {n} passes kept, numpy mean/std"
            ratio, ratio_to = peak[kind, n] / peak["ours", n], f"predict_volume(n_samples={n})"
        rows.append({
            "part": "memory" if kind == "ours" else "stacked", "key": f"memory_{kind}_{n}",
            "measure": "peak RSS growth", "contender": contender, "samples": n,
            "median": peak[kind, n], "min": min(mb), "max": max(mb), "unit": "MB",
            "per_voxel": peak[kind, n] * 2**20 / VOXELS, "per_voxel_unit": "bytes",
            "ratio": ratio, "ratio_to": ratio_to, "repeats": len(values),
            "seconds": seconds[kind, n],
        })
    return rows


# --- 4. the 1 mm MNI template through segment_nifti ---------------------------------------------

def template(spacings):
    import nibabel
    from nilearn import datasets

    nifti = sys.modules["tfprobr_bridge.uncertainty.nifti"]
    image = datasets.load_mni152_template(resolution=1)
    voxels = int(np.prod(image.shape[:3]))
    size = "x".join(map(str, image.shape[:3]))
    model = segmenter(Conv3DReparameterization)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        scan = folder / "mni152_1mm.nii.gz"
        nibabel.save(image, scan)
        for spacing in spacings:
            path = folder / f"segmenter_{spacing}mm.keras"
            save_segmenter(model, path, voxel_spacing=spacing, normalization="minmax",
                           class_names=CLASS_NAMES)
            inner = []
            original = nifti.predict_volume

            def timed(model, volume, *args, **kwargs):  # records predict_volume's own time
                result = original(model, volume, *args, **kwargs)
                inner.append((result["seconds"], result["windows"], np.shape(volume)[:3]))
                return result

            nifti.predict_volume = timed
            try:
                started = time.perf_counter()
                results = segment_nifti(str(path), scan, folder / f"out_{spacing}mm",
                                        n_samples=TEMPLATE_SAMPLES, verbose=0, overwrite=True)
                total = time.perf_counter() - started
            finally:
                nifti.predict_volume = original
            if results[0]["status"] != "done":
                raise RuntimeError(results[0].get("error"))
            alone, windows, grid = inner[0]
            measure = (f"1 mm MNI template {size}, {TEMPLATE_SAMPLES} samples, model at "
                       f"{spacing} mm ({'x'.join(map(str, grid))} grid, {windows} windows)")
            common = {"measure": measure, "samples": TEMPLATE_SAMPLES, "unit": "s",
                      "per_voxel_unit": "us", "repeats": 1, "spacing_mm": spacing,
                      "windows": windows, "grid": list(grid)}
            rows.append({**common, "part": "template", "key": f"template_{spacing}mm_end_to_end",
                         "contender": "segment_nifti end to end", "median": total, "min": total,
                         "max": total, "per_voxel": total / voxels * 1e6,
                         "ratio": total / alone, "ratio_to": "its predict_volume"})
            rows.append({**common, "part": "template", "key": f"template_{spacing}mm_predict",
                         "contender": "predict_volume inside it", "median": alone, "min": alone,
                         "max": alone, "per_voxel": alone / int(np.prod(grid)) * 1e6,
                         "ratio": 1.0, "ratio_to": "its predict_volume"})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds at N = 10")
    parser.add_argument("--rounds-30", type=int, default=2, help="timed rounds at N = 30")
    parser.add_argument("--memory-repeats", type=int, default=3)
    parser.add_argument("--spacings", type=float, nargs="*", default=[3, 1],
                        help="model spacings (mm) for the 1 mm template; none to skip")
    parser.add_argument("--memory-child", nargs=2, metavar=("KIND", "N"))
    args = parser.parse_args()
    if args.memory_child:
        kind, n = args.memory_child
        print(json.dumps(memory_in_child(kind, int(n))))
        return

    started = time.perf_counter()
    rows = timing(args.rounds, args.rounds_30)
    rows += memory(args.memory_repeats)
    spacings = [int(s) if float(s).is_integer() else s for s in args.spacings]
    rows += template(spacings)
    minutes = (time.perf_counter() - started) / 60
    stacked_seconds = ", ".join(f"N = {row['samples']} {row['seconds']:.0f} s"
                                for row in rows if row["part"] == "stacked")
    harness.write(
        "volume",
        rows,
        [("measure", "measure", None), ("contender", "contender", None),
         ("samples", "N", None), ("median", "median", ".2f"), ("min", "min", ".2f"),
         ("max", "max", ".2f"), ("unit", "unit", None), ("per_voxel", "per voxel", ".2f"),
         ("per_voxel_unit", "per voxel unit", None), ("ratio", "ratio", ".2f"),
         ("ratio_to", "ratio to", None), ("repeats", "rounds / runs", None)],
        notes=f"Segmenter: 32^3 x 1 windows, Conv3D 8 (3x3x3, ReLU) -> Conv3D 3 (3x3x3) -> "
              "softmax; Bayesian = Conv3DReparameterization, untrained (random weights; time "
              "and memory do not depend on them). Volume: a synthetic 2 mm brain "
              f"{'x'.join(map(str, SHAPE))}; predict_volume's defaults (overlap 0.5, Gaussian "
              "blending, batch 4), verbose=0. Time: the contenders interleaved in one process, "
              f"order rotating, warm-up 1 round at N = 10 ({args.rounds} rounds), none at N = 30 "
              f"({args.rounds_30} rounds, already warm); few rounds to keep the script short. "
              "Ratios: medians of per-round ratios; per voxel: median / voxels of the volume. "
              "Memory: peak RSS growth sampled every 2 ms in a fresh process, after a warm-up "
              "call on one window, until the call's result is dropped: predict_volume median of "
              f"{args.memory_repeats} processes per setting, stacked samples one process per "
              f"N (stacked run times: {stacked_seconds}). The 1 mm template: one run each, "
              "cold (model loaded from its .keras file; the first call traces); 'predict_volume "
              "inside it' is the same run's predict_volume time (its `seconds`), per voxel of "
              "the grid it ran on. The machine may have been busy with other jobs: times are "
              f"noisy. Whole script: {minutes:.1f} min.",
    )


if __name__ == "__main__":
    main()
