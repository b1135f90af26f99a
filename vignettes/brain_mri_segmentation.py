"""The brain-MRI study of brain-mri-segmentation.Rmd, in Python and pipe style, shorter.

A Bayesian 3-D CNN (LayerStack | layer_conv_3d_reparameterization) and the same
network with Keras 3 Conv3D segment the MNI ICBM152 template into grey matter,
white matter and other; a held-out axial slab measures accuracy, Dice and
Monte Carlo uncertainty. Then, Bayesian against deterministic on the slab's
foreground: calibration (ECE, MCE, a reliability diagram), the mutual
information beside the standard deviation, how well each uncertainty flags the
wrong voxels (AUROC), and a Bayesian network warm-started from the trained
deterministic one with to_bayesian(), against the one trained from scratch.
Then, as a user would: the network saved with its preprocessing
(save_segmenter) segments the whole 1 mm template from a NIfTI file
(segment_nifti: class volumes with intervals, uncertainty maps); both networks
meet realistic scanner shifts (tfprobr_bridge.datasets.simulate_shift: bias
field, Rician noise, thick slices, blur, ghosting) of growing severity; and a
retention curve shows how Dice rises as the most uncertain voxels are referred
to a person. `make demo-python` runs it; `--quick` is the smoke test.

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
from tfprobr_bridge import calibration  # noqa: E402
from tfprobr_bridge import error_detection_auroc  # noqa: E402
from tfprobr_bridge import layer_conv_3d_reparameterization as bayes_conv  # noqa: E402
from tfprobr_bridge import load_mni152_tissue  # noqa: E402
from tfprobr_bridge import plot_reliability_diagram  # noqa: E402
from tfprobr_bridge import predict_mc  # noqa: E402
from tfprobr_bridge import save_segmenter  # noqa: E402
from tfprobr_bridge import scaled_kl_divergence_fn  # noqa: E402
from tfprobr_bridge import segment_nifti  # noqa: E402
from tfprobr_bridge import to_bayesian  # noqa: E402
from tfprobr_bridge import wrong_predictions  # noqa: E402
from tfprobr_bridge.datasets import SHIFT_KINDS  # noqa: E402
from tfprobr_bridge.datasets import shift_parameter  # noqa: E402
from tfprobr_bridge.datasets import simulate_shift  # noqa: E402

SLAB = slice(28, 37)  # nine held-out axial slices (the R vignette's 29:37)
MARGIN = 3  # the network's reach: three voxels of context
N_BINS = 15  # calibration's equal-width confidence bins
DELTA = 0.1  # the warm start's posterior scales: DELTA * |trained weight| (MOPED)
PATCH, OVERLAP = 48, 0.25  # segment_nifti's windows (at 3 mm) over the whole template
CORONAL = 125  # the whole-template figure's coronal slice (1 mm), through the basal ganglia
FRACTIONS = np.round(np.arange(0, 0.51, 0.05), 2)  # the retention curve's fractions referred


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


def fit(model, epochs, x, y):
    """Compile and train as the study does; the fit's wall time and its median epoch."""
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ticks = []
    clock = keras.callbacks.LambdaCallback(on_epoch_begin=lambda *_: ticks.append(time.perf_counter()),
                                           on_epoch_end=lambda *_: ticks.append(time.perf_counter()))
    timer = time.perf_counter()
    history = model.fit(x, y, epochs=epochs, batch_size=8, verbose=2, callbacks=[clock])
    seconds = time.perf_counter() - timer
    return {"seconds": seconds, "epochs": epochs,
            "median_epoch_seconds": float(np.median(np.diff(ticks)[::2])),
            "final_accuracy": float(history.history["accuracy"][-1])}


def spread_of_chosen_class(mean, stddev):
    chosen = mean.argmax(-1)
    return np.take_along_axis(stddev, chosen[..., None], -1)[..., 0]


def entropy(probabilities):
    """Entropy in nats over the last axis (0 log 0 = 0): a deterministic softmax's only uncertainty."""
    p = np.clip(probabilities, 0, 1)
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), axis=-1)


def dice(predicted, truth, k):
    return 2 * np.sum((predicted == k) & (truth == k)) / (np.sum(predicted == k) + np.sum(truth == k))


def worst_bin_voxels(result):
    """How many predictions the bin behind the MCE holds (one stray voxel can make the MCE)."""
    bins = result["bins"]
    gap = np.abs(bins["accuracy"] - bins["confidence"])
    return int(bins["count"][np.nanargmax(gap)])


def auroc(uncertainty, wrong):
    """error_detection_auroc, or None when every voxel is right (or wrong): the area is undefined."""
    return float(error_detection_auroc(uncertainty, wrong)) if 0 < wrong.sum() < wrong.size else None


def dice_grey_white(predicted, truth):
    """The mean of the grey- and white-matter Dice: the shift study's and retention's one number."""
    return float(np.mean([dice(predicted, truth, 1), dice(predicted, truth, 2)]))


def retention_curve(predicted, truth, uncertainty, in_foreground):
    """Dice after the most uncertain FRACTIONS of the foreground are referred and corrected."""
    index = np.flatnonzero(in_foreground)
    ranked = index[np.argsort(-uncertainty.ravel()[index], kind="stable")]
    curve = []
    for fraction in FRACTIONS:
        corrected = predicted.copy().ravel()
        referred = ranked[:int(round(fraction * len(ranked)))]
        corrected[referred] = truth.ravel()[referred]  # a person labels them correctly
        curve.append(dice_grey_white(corrected.reshape(truth.shape), truth))
    return curve


def segment_whole_template(bayesian, tissues, out, n_samples, slab_1mm):
    """save_segmenter, the 1 mm template to .nii.gz, segment_nifti; volumes, Dice and the maps."""
    import nibabel
    from nilearn import datasets

    segmenter = out / "segmenter.keras"
    save_segmenter(bayesian, segmenter, voxel_spacing=3, orientation="RAS",
                   normalization="zscore", class_names=list(tissues))
    template = out / "mni152_t1_1mm.nii.gz"
    datasets.load_mni152_template(resolution=1).to_filename(template)
    result, = segment_nifti(segmenter, template, out / "segmentation", n_samples=n_samples,
                            patch_size=PATCH, overlap=OVERLAP, seed=2026, overwrite=True,
                            verbose=0)
    if result["status"] != "done":
        raise RuntimeError(f"segment_nifti failed: {result['error']}")
    summary = result["summary"]
    reference = load_mni152_tissue(downsample=1)["labels"]
    maps = {name: np.asarray(nibabel.load(result["outputs"][name]).dataobj)
            for name in ("labels", "predictive_entropy", "mutual_information")}
    maps["t1"] = np.asarray(nibabel.load(template).dataobj, dtype=np.float32)
    labels = maps["labels"]
    classes = {}
    for k, tissue in enumerate(tissues):
        found = summary["classes"][tissue]
        classes[tissue] = {key: found[key] for key in (
            "volume_ml", "interval_ml", "draw_sd_ml", "label_volume_ml", "mean_mutual_information",
            "mean_predictive_entropy")}
        classes[tissue]["reference_ml"] = float(np.sum(reference == k) / 1000)
    whole = {
        "input": str(template), "model": str(segmenter), "shape": summary["shape"],
        "voxel_size_mm": summary["voxel_size_mm"], "n_samples": n_samples,
        "windows": summary["windows"], "patch_size": PATCH, "overlap": OVERLAP,
        "seconds": summary["seconds"], "interval": summary["interval"], "classes": classes,
        "dice_held_out_slab": {t: float(dice(labels[..., slab_1mm], reference[..., slab_1mm], k))
                               for k, t in enumerate(tissues)},
        "dice_whole_template": {t: float(dice(labels, reference, k)) for k, t in enumerate(tissues)},
    }
    return whole, maps


def whole_template_figure(maps, axial, tissues, path):
    """Axial and coronal slices of the 1 mm template: T1, labels, entropy, MI, with colour bars."""
    labels_map = matplotlib.colors.ListedColormap(["black", "0.6", "white"])
    mi_top = max(maps["mutual_information"][:, :, axial].max(),
                 maps["mutual_information"][:, CORONAL, :].max())
    panels = [("t1", "T1 (1 mm)", "gray", 0, 1), ("labels", "labels", labels_map, -0.5, 2.5),
              ("predictive_entropy", "predictive entropy (nats)", "viridis", 0, np.log(3)),
              ("mutual_information", "mutual information (nats)", "inferno", 0, mi_top)]
    figure, axes = plt.subplots(2, 4, figsize=(18, 9.6), constrained_layout=True)
    for row, (view, cut) in enumerate((("axial", np.s_[:, :, axial]),
                                       ("coronal", np.s_[:, CORONAL, :]))):
        for column, (key, title, colours, low, high) in enumerate(panels):
            axis = axes[row, column]
            shown = axis.imshow(maps[key][cut].T, origin="lower", cmap=colours, vmin=low, vmax=high,
                                interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(title)
            if column == 0:
                axis.set_ylabel(f"{view} slice {axial if view == 'axial' else CORONAL}")
            if row == 1:
                bar = figure.colorbar(shown, ax=axes[:, column], orientation="horizontal",
                                      fraction=0.05, pad=0.02)
                if key == "labels":
                    bar.set_ticks([0, 1, 2], labels=list(tissues))
    figure.savefig(path, dpi=80)
    plt.close(figure)


def shift_study_figure(study, path):
    """Dice, ECE, mean MI and mean entropy against severity, per shift, both models."""
    severities = study["severities"]
    colours = {"bayesian": "firebrick", "deterministic": "steelblue"}
    rows = [("dice", "Dice (grey, white)", {"bayesian": "dice", "deterministic": "dice"}),
            ("ece", "ECE (foreground)", {"bayesian": "ece", "deterministic": "ece"}),
            ("mi", "mean mutual information (nats)", {"bayesian": "mean_mutual_information"}),
            ("entropy", "mean entropy (nats)", {"bayesian": "mean_predictive_entropy",
                                                "deterministic": "mean_softmax_entropy"})]
    kinds = list(study["kinds"])
    figure, axes = plt.subplots(len(rows), len(kinds), figsize=(20, 14), sharey="row",
                                constrained_layout=True)
    for r, (_, label, keys) in enumerate(rows):
        for c, kind in enumerate(kinds):
            axis = axes[r, c]
            for model, key in keys.items():
                axis.plot(severities, study["kinds"][kind][model][key], "o-", color=colours[model],
                          lw=2, label=model)
            if r == 0:
                axis.set_title(kind)
            if c == 0:
                axis.set_ylabel(label)
            axis.set_xlabel("severity")
            axis.set_xticks(severities)
    handles, names = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, [f"Bayesian (mean of {study['n_samples']} draws; entropy: predictive)",
                            "deterministic (one pass; entropy: softmax)"],
                  loc="outside upper center", ncol=2, frameon=False)
    figure.savefig(path, dpi=80)
    plt.close(figure)


def retention_figure(retention, path):
    styles = {"bayesian_mutual_information": ("firebrick", "-", "Bayesian, by mutual information"),
              "bayesian_predictive_entropy": ("darkorange", "-", "Bayesian, by predictive entropy"),
              "deterministic_softmax_entropy": ("steelblue", "-", "deterministic, by softmax entropy"),
              "bayesian_random": ("firebrick", ":", "Bayesian, at random"),
              "deterministic_random": ("steelblue", ":", "deterministic, at random")}
    figure, axis = plt.subplots(figsize=(8, 5.5))
    for name, (colour, style, label) in styles.items():
        axis.plot(retention["fractions"], retention["curves"][name], marker="o", ms=3, ls=style,
                  color=colour, lw=2, label=label)
    axis.set_xlabel("fraction of held-out foreground voxels referred")
    axis.set_ylabel("Dice (grey, white) after referral")
    axis.set_title("Retention: the most uncertain voxels corrected first")
    axis.legend(loc="lower right", frameon=False)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


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
    warm_epochs = max(1, epochs // 4)  # the warm start trains a quarter as long
    x, y = crops(t1, mri["labels"], n_crops, size, rng)

    n_examples = n_crops * np.prod(size)
    bayesian, deterministic = networks(n_examples=n_examples)
    training = {name: fit(model, epochs, x, y)
                for name, model in (("bayesian", bayesian), ("deterministic", deterministic))}

    context = slice(SLAB.start - MARGIN, SLAB.stop + MARGIN)
    x_slab = t1[None, :, :, context, None]
    inner = slice(MARGIN, MARGIN + SLAB.stop - SLAB.start)
    truth = mri["labels"][:, :, SLAB]

    def monte_carlo(model, x_in=x_slab):
        """predict_mc over the slab, every summary cut to the held-out slices."""
        result = predict_mc(model, x_in, n_samples=n_samples, classifier=True)
        return {k: v[0, :, :, inner] for k, v in result.items()}

    mc = monte_carlo(bayesian)
    mean, stddev = mc["mean"], mc["stddev"]
    probabilities = {"bayesian": mean,
                     "deterministic": deterministic.predict(x_slab, verbose=0)[0, :, :, inner]}
    predicted = {k: p.argmax(-1) for k, p in probabilities.items()}
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
        result = monte_carlo(bayesian, x_shift)
        shifted[name] = spread_of_chosen_class(result["mean"], result["stddev"])

    path = out / "bayesian.keras"
    bayesian.save(path)
    restored = keras.models.load_model(path)
    # Another seed, as in the R vignette: under the same one, the restored model's fresh trace
    # would draw the very numbers the original's first trace drew, and agree exactly.
    keras.utils.set_random_seed(7)
    again = monte_carlo(restored)["mean"]

    # Warm start: a Bayesian copy of the trained deterministic network (posterior means at its
    # weights, scales DELTA * |w|), trained a quarter as long, timed as the others were.
    warm = to_bayesian(deterministic, estimator="reparameterization", delta=DELTA,
                       num_examples=n_examples)
    before = monte_carlo(warm)["mean"].argmax(-1)
    training["warm_start"] = fit(warm, warm_epochs, x, y)
    warm_mc = monte_carlo(warm)
    probabilities["warm_start"] = warm_mc["mean"]
    predicted["warm_start"] = warm_mc["mean"].argmax(-1)

    # Calibration and error detection on the slab's foreground (the brain and what surrounds
    # it closely): the empty background, right and certain in every model, would swamp both.
    labels = truth[in_foreground]
    calibrated = {k: calibration(p[in_foreground], labels, n_bins=N_BINS) for k, p in probabilities.items()}
    whole_slab = {k: calibration(p, truth, n_bins=N_BINS) for k, p in probabilities.items()}
    wrong = {k: wrong_predictions(p[in_foreground], labels) for k, p in probabilities.items()}
    scores = {
        "bayesian": {"mutual_information": mc["mutual_information"],
                     "predictive_entropy": mc["predictive_entropy"],
                     "stddev_of_predicted_class": uncertainty},
        "deterministic": {"softmax_entropy": entropy(probabilities["deterministic"])},
        "warm_start": {"mutual_information": warm_mc["mutual_information"],
                       "predictive_entropy": warm_mc["predictive_entropy"],
                       "stddev_of_predicted_class": spread_of_chosen_class(warm_mc["mean"],
                                                                           warm_mc["stddev"])},
    }

    def scores_of(p):
        return {"accuracy": float(np.mean(p == truth)),
                "accuracy_in_foreground": float(np.mean((p == truth)[in_foreground])),
                "dice": {t: float(dice(p, truth, i)) for i, t in enumerate(mri["tissues"])}}

    warm_scores = scores_of(predicted["warm_start"])
    figures = {"slices": out / "slices.png", "reliability": out / "reliability.png",
               "uncertainty_maps": out / "uncertainty-maps.png",
               "whole_template": out / "whole-template.png", "shift_study": out / "shift-study.png",
               "retention": out / "retention.png"}

    # The whole 1 mm template, from its NIfTI file, through the saved segmenter (3 mm, z-scored
    # over the brain as in training, class names); Dice at 1 mm on the held-out slab's 27 slices.
    middle = truth.shape[2] // 2
    whole, whole_maps = segment_whole_template(
        bayesian, mri["tissues"], out, n_samples=3 if args.quick else 30,
        slab_1mm=slice(3 * SLAB.start, 3 * SLAB.stop))
    whole_template_figure(whole_maps, 3 * (SLAB.start + middle) + 1, mri["tissues"],
                          figures["whole_template"])
    del whole_maps

    # Scanner shifts of the raw 3 mm template, standardised over the brain as in training; both
    # networks on the held-out slab (severity 0: the clean slab, predicted the same way).
    severities = [1, 5] if args.quick else [1, 2, 3, 4, 5]
    shift_samples = 3 if args.quick else 20

    def evaluate_on(volume):
        standardised = (volume - volume[foreground].mean()) / volume[foreground].std()
        x_shift = standardised[None, :, :, context, None].astype("float32")
        draws = predict_mc(bayesian, x_shift, n_samples=shift_samples, classifier=True, seed=11)
        draws = {k: v[0, :, :, inner] for k, v in draws.items()}
        single = deterministic.predict(x_shift, verbose=0)[0, :, :, inner]
        return {
            "bayesian": {
                "dice": dice_grey_white(draws["mean"].argmax(-1), truth),
                "ece": float(calibration(draws["mean"][in_foreground], labels, n_bins=N_BINS)["ece"]),
                "mean_mutual_information": float(draws["mutual_information"][in_foreground].mean()),
                "mean_predictive_entropy": float(draws["predictive_entropy"][in_foreground].mean())},
            "deterministic": {
                "dice": dice_grey_white(single.argmax(-1), truth),
                "ece": float(calibration(single[in_foreground], labels, n_bins=N_BINS)["ece"]),
                "mean_softmax_entropy": float(entropy(single)[in_foreground].mean())},
        }

    shift_timer = time.perf_counter()
    clean = evaluate_on(mri["t1"])
    shift_study = {"severities": [0, *severities], "n_samples": shift_samples, "kinds": {}}
    for kind in SHIFT_KINDS:
        results = [clean] + [evaluate_on(simulate_shift(mri["t1"], kind, s, seed=1))
                             for s in severities]
        shift_study["kinds"][kind] = {
            "parameter": shift_parameter(kind, 1)[0],
            "levels": [shift_parameter(kind, s)[1] for s in severities],
            **{model: {key: [r[model][key] for r in results] for key in clean[model]}
               for model in clean},
        }
    shift_study["seconds"] = time.perf_counter() - shift_timer
    shift_study_figure(shift_study, figures["shift_study"])

    # Retention on the clean slab: the most uncertain foreground voxels referred and corrected.
    random_order = np.random.default_rng(5).random(truth.shape)
    curves = {
        "bayesian_mutual_information": retention_curve(predicted["bayesian"], truth,
                                                       mc["mutual_information"], in_foreground),
        "bayesian_predictive_entropy": retention_curve(predicted["bayesian"], truth,
                                                       mc["predictive_entropy"], in_foreground),
        "bayesian_random": retention_curve(predicted["bayesian"], truth, random_order,
                                           in_foreground),
        "deterministic_softmax_entropy": retention_curve(
            predicted["deterministic"], truth, scores["deterministic"]["softmax_entropy"],
            in_foreground),
        "deterministic_random": retention_curve(predicted["deterministic"], truth, random_order,
                                                in_foreground),
    }
    retention = {"fractions": [float(f) for f in FRACTIONS], "curves": curves,
                 "mean_dice": {k: float(np.mean(v)) for k, v in curves.items()}}
    retention_figure(retention, figures["retention"])
    summary = {
        "quick": args.quick,
        "accuracy": {k: float(np.mean(predicted[k] == truth)) for k in ("bayesian", "deterministic")},
        "dice": {k: {t: float(dice(predicted[k], truth, i)) for i, t in enumerate(mri["tissues"])}
                 for k in ("bayesian", "deterministic")},
        "uncertainty_boundary_over_interior":
            float(uncertainty[tissue & differs].mean() / uncertainty[tissue & ~differs].mean()),
        **{f"uncertainty_{k}_over_clean": float(u[in_foreground].mean() / uncertainty[in_foreground].mean())
           for k, u in shifted.items()},
        "restored_accuracy": float(np.mean(again.argmax(-1) == truth)),
        # As in the R vignette: the restored model's mean differs from the original's by about
        # the Monte Carlo error of two independent means of n_samples draws, and no more.
        "restored_mean_abs_difference": float(np.mean(np.abs(again - mean))),
        "monte_carlo_error": float(np.mean(np.sqrt(2) * stddev / np.sqrt(n_samples))),
        "accuracy_in_foreground": {k: float(np.mean((predicted[k] == truth)[in_foreground]))
                                   for k in ("bayesian", "deterministic")},
        # Seconds of each model.fit (wall time), as the R vignette's training_seconds.
        "training_seconds": {k: t["seconds"] for k, t in training.items()},
        "training_epochs": {k: t["epochs"] for k, t in training.items()},
        "median_epoch_seconds": {k: t["median_epoch_seconds"] for k, t in training.items()},
        "foreground_voxels": int(in_foreground.sum()),
        "wrong_voxels_in_foreground": {k: int(w.sum()) for k, w in wrong.items()},
        "calibration_n_bins": N_BINS,
        "ece": {k: c["ece"] for k, c in calibrated.items()},
        "mce": {k: c["mce"] for k, c in calibrated.items()},
        "mce_bin_voxels": {k: worst_bin_voxels(c) for k, c in calibrated.items()},
        "ece_whole_slab": {k: c["ece"] for k, c in whole_slab.items()},
        "mce_whole_slab": {k: c["mce"] for k, c in whole_slab.items()},
        "error_detection_auroc": {k: {name: auroc(u[in_foreground], wrong[k]) for name, u in by.items()}
                                  for k, by in scores.items()},
        "mean_mutual_information_in_foreground": {
            "bayesian": float(mc["mutual_information"][in_foreground].mean()),
            "warm_start": float(warm_mc["mutual_information"][in_foreground].mean())},
        "warm_start": {
            "estimator": "reparameterization", "delta": DELTA, "prior": "standard",
            "epochs": warm_epochs,
            "accuracy_before_training": float(np.mean(before == truth)),
            **warm_scores,
            "training_seconds": training["warm_start"]["seconds"],
            "scratch_training_seconds": training["bayesian"]["seconds"],
            "seconds_over_scratch": training["warm_start"]["seconds"] / training["bayesian"]["seconds"],
            "with_deterministic_seconds_over_scratch":
                (training["warm_start"]["seconds"] + training["deterministic"]["seconds"])
                / training["bayesian"]["seconds"],
        },
        # As the R vignette's: the whole 1 mm template through segment_nifti, the shift study
        # (one value per severity, 0 the clean slab) and the retention curves.
        "whole_template": whole,
        "shift_study": shift_study,
        "retention": retention,
        "figures": {k: str(v) for k, v in figures.items()},
    }

    panels = [(mri["t1"][:, :, SLAB][..., middle], "T1", "gray"), (truth[..., middle], "truth", "gray"),
              (predicted["bayesian"][..., middle], "Bayesian prediction", "gray"),
              (uncertainty[..., middle], "uncertainty", "inferno")]
    figure, axes = plt.subplots(1, 4, figsize=(14, 4))
    for axis, (image, title, colours) in zip(axes, panels):
        axis.imshow(image.T, origin="lower", cmap=colours)
        axis.set_title(title)
        axis.axis("off")
    figure.savefig(figures["slices"], dpi=100, bbox_inches="tight")
    plt.close(figure)

    # The same slice: the spread of the chosen class's probability beside the mutual information
    # (the weights' share of the uncertainty), the total entropy of each model, and where each errs.
    top = np.log(3)  # the largest entropy over three classes
    maps = [(uncertainty, "Bayesian: std of p (chosen class)", "inferno", None),
            (mc["mutual_information"], "Bayesian: mutual information", "inferno", None),
            (mc["predictive_entropy"], "Bayesian: predictive entropy", "viridis", top),
            (scores["deterministic"]["softmax_entropy"], "deterministic: softmax entropy", "viridis", top)]
    figure, axes = plt.subplots(1, 5, figsize=(22, 4.6))
    for axis, (image, title, colours, vmax) in zip(axes, maps):
        shown = axis.imshow(image[..., middle].T, origin="lower", cmap=colours, vmin=0, vmax=vmax)
        figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.02,
                        label=None if "std" in title else "nats")
        axis.set_title(title)
        axis.axis("off")
    errors = np.zeros(truth.shape[:2], int)  # 1 Bayesian only, 2 deterministic only, 3 both
    for bit, model_name in ((1, "bayesian"), (2, "deterministic")):
        errors += bit * (predicted[model_name][..., middle] != truth[..., middle])
    axes[4].imshow(truth[..., middle].T, origin="lower", cmap="gray", alpha=0.35)
    axes[4].imshow(np.ma.masked_equal(errors, 0).T, origin="lower", interpolation="nearest",
                   cmap=matplotlib.colors.ListedColormap(["firebrick", "steelblue", "darkorange"]),
                   vmin=0.5, vmax=3.5)
    axes[4].set_title("wrong: Bayesian red, determ. blue, both orange")
    axes[4].axis("off")
    figure.savefig(figures["uncertainty_maps"], dpi=100, bbox_inches="tight")
    plt.close(figure)

    # Reliability: both models on one diagram (foreground voxels), with the count per bin beside it.
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    for model_name, label in (("bayesian", "Bayesian (MC mean)"), ("deterministic", "deterministic")):
        plot_reliability_diagram(calibrated[model_name], ax=left, label=label)
        bins = calibrated[model_name]["bins"]
        right.bar(bins["lower"], bins["count"], width=1 / N_BINS, align="edge", alpha=0.6,
                  edgecolor="black", label=label, log=True)
    left.set_title("MCE: Bayesian {:.3f}, deterministic {:.3f}".format(
        calibrated["bayesian"]["mce"], calibrated["deterministic"]["mce"]))
    right.set_xlim(0, 1)
    right.set_xlabel("confidence (highest class probability)")
    right.set_ylabel("foreground voxels in the bin")
    right.set_title(f"{int(in_foreground.sum())} held-out foreground voxels")
    right.legend(loc="upper left")
    figure.savefig(figures["reliability"], dpi=100, bbox_inches="tight")
    plt.close(figure)

    summary["seconds"] = time.perf_counter() - started
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
