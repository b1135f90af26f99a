"""Print the short summary of a rendered brain-MRI study (make demo's last step).

    python vignettes/summary.py out/demo          # the R vignette's
    python vignettes/summary.py out/demo-python   # its Python companion's

The calibration, error-detection and warm-start lines are printed when the
summary has them (keys ece, mce, error_detection_auroc, warm_start, training_seconds).
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
    if "restored_mean_abs_difference" in summary:
        print(
            f"  restored model: mean |difference| {summary['restored_mean_abs_difference']:.4f} "
            f"vs Monte Carlo error {summary['monte_carlo_error']:.4f}"
        )
    html = folder / "brain-mri-segmentation.html"
    if html.exists():
        print(f"  HTML: {html.resolve()}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/demo")
