"""Print the short summary of a rendered brain-MRI study (make demo's last step).

    python vignettes/summary.py out/demo
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
        print(
            f"  {model:<13} held-out accuracy {summary['accuracy'][model]:.3f} "
            f"(in foreground {summary['accuracy_in_foreground'][model]:.3f}); Dice grey {dice['grey']:.3f}, "
            f"white {dice['white']:.3f}, other {dice['other']:.3f}"
        )
    print(
        "  uncertainty ratios: boundary/interior "
        f"{summary['uncertainty_boundary_over_interior']:.2f}, noise/clean "
        f"{summary['uncertainty_noise_over_clean']:.2f}, inverted/clean "
        f"{summary['uncertainty_inverted_over_clean']:.2f}"
    )
    print(
        f"  restored model: mean |difference| {summary['restored_mean_abs_difference']:.4f} "
        f"vs Monte Carlo error {summary['monte_carlo_error']:.4f}"
    )
    print(f"  HTML: {(folder / 'brain-mri-segmentation.html').resolve()}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/demo")
