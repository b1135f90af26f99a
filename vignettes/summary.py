"""Print the short summary of a rendered brain-MRI study (make demo's last step).

    python vignettes/summary.py out/demo          # the R vignette's
    python vignettes/summary.py out/demo-python   # its Python companion's

The calibration, error-detection and warm-start lines are printed when the
summary has them (keys ece, mce, error_detection_auroc, warm_start, training_seconds),
and so are the whole-template segmentation (whole_template: each class's volume
with its interval), the shift study (shift_study: Dice, ECE and mean mutual
information at the highest severity of each shift, Bayesian against
deterministic) and the retention curves (retention).
"""

import json
import pathlib
import sys


def main(folder):
    folder = pathlib.Path(folder)
    summary = json.loads((folder / "summary.json").read_text())
    print(f"Brain MRI study rendered in {summary['seconds'] / 60:.1f} min -> {folder.resolve()}")
    for model in ("bayesian", "deterministic"):
        dice = summary["dice"][model]
        in_foreground = summary.get("accuracy_in_foreground", {}).get(model)
        foreground = "" if in_foreground is None else f" (in foreground {in_foreground:.3f})"
        print(
            f"  {model:<13} held-out accuracy {summary['accuracy'][model]:.3f}{foreground}; "
            f"Dice grey {dice['grey']:.3f}, white {dice['white']:.3f}, other {dice['other']:.3f}"
        )
    print(
        "  uncertainty ratios: boundary/interior "
        f"{summary['uncertainty_boundary_over_interior']:.2f}, noise/clean "
        f"{summary['uncertainty_noise_over_clean']:.2f}, inverted/clean "
        f"{summary['uncertainty_inverted_over_clean']:.2f}"
    )
    if "ece" in summary and "mce" in summary:
        print("  calibration (held-out foreground): " + "; ".join(
            f"{model} ECE {summary['ece'][model]:.4f}, MCE {summary['mce'][model]:.3f}"
            for model in summary["ece"]))
    for model, scores in summary.get("error_detection_auroc", {}).items():
        shown = ", ".join(f"{name} {value:.3f}" for name, value in scores.items() if value is not None)
        print(f"  error-detection AUROC, {model}: {shown or 'undefined'}")
    warm, seconds = summary.get("warm_start"), summary.get("training_seconds", {})
    if warm and "bayesian" in seconds and "warm_start" in seconds:
        dice = warm["dice"]
        print(
            f"  warm start ({warm['epochs']} epochs from the deterministic network): accuracy "
            f"{warm['accuracy']:.3f}; Dice grey {dice['grey']:.3f}, white {dice['white']:.3f}, "
            f"other {dice['other']:.3f}; trained in {seconds['warm_start']:.0f} s against "
            f"{seconds['bayesian']:.0f} s from scratch"
        )
    _print_whole_template(summary.get("whole_template"))
    _print_shift_study(summary.get("shift_study"))
    _print_retention(summary.get("retention"))
    if "restored_mean_abs_difference" in summary:
        print(
            f"  restored model: mean |difference| {summary['restored_mean_abs_difference']:.4f} "
            f"vs Monte Carlo error {summary['monte_carlo_error']:.4f}"
        )
    html = folder / "brain-mri-segmentation.html"
    if html.exists():
        print(f"  HTML: {html.resolve()}")


def _print_whole_template(whole):
    if not whole:
        return
    shape = " x ".join(str(n) for n in whole["shape"])
    print(f"  whole template ({shape} voxels at 1 mm, {whole['n_samples']} draws, "
          f"{whole['windows']} windows, {whole['seconds']:.0f} s), class volumes in mL "
          "[2.5-97.5% of the draws] (reference):")
    for tissue, found in whole["classes"].items():
        low, high = found["interval_ml"]
        reference = found.get("reference_ml")
        shown = "" if reference is None else f" ({reference:.0f})"
        print(f"    {tissue:<6} {found['volume_ml']:8.0f} [{low:.0f}, {high:.0f}]{shown}")
    slab = whole.get("dice_held_out_slab")
    if slab:
        print("    Dice at 1 mm, held-out slab: " + ", ".join(
            f"{tissue} {value:.3f}" for tissue, value in slab.items()))


def _print_shift_study(study):
    if not study:
        return
    top = study["severities"][-1]
    print(f"  shift study (severities {', '.join(map(str, study['severities']))}; "
          f"{study['n_samples']} draws), at severity {top} (clean in brackets), "
          "Bayesian | deterministic:")
    for kind, found in study["kinds"].items():
        bayes, determ = found["bayesian"], found["deterministic"]
        print(
            f"    {kind:<13} Dice {bayes['dice'][-1]:.3f} | {determ['dice'][-1]:.3f} "
            f"({bayes['dice'][0]:.3f} | {determ['dice'][0]:.3f}); "
            f"ECE {bayes['ece'][-1]:.4f} | {determ['ece'][-1]:.4f} "
            f"({bayes['ece'][0]:.4f} | {determ['ece'][0]:.4f}); "
            f"mean MI {bayes['mean_mutual_information'][-1]:.4f} "
            f"({bayes['mean_mutual_information'][0]:.4f})"
        )


def _print_retention(retention):
    if not retention:
        return
    fractions = retention["fractions"]
    shown = [i for i, f in enumerate(fractions) if round(f, 2) in (0.0, 0.1, 0.25, 0.5)]
    print("  retention, Dice after referring the most uncertain foreground voxels ("
          + ", ".join(f"{fractions[i]:.2f}" for i in shown) + "):")
    for name, curve in retention["curves"].items():
        print(f"    {name:<30} " + " ".join(f"{curve[i]:.3f}" for i in shown))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/demo")
