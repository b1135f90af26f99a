"""Smoke versions of the main job: the R vignette and its Python companion, tiny and quick.

They run the real pipeline (data, crops, both networks, predict_mc, ratios, figures,
save/load, summary) with 8 small crops and one epoch, so a broken demo fails here.
"""

import json
import math
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
VIGNETTES = ROOT / "vignettes"
SUMMARY_KEYS = {
    "accuracy",
    "dice",
    "uncertainty_boundary_over_interior",
    "uncertainty_noise_over_clean",
    "uncertainty_inverted_over_clean",
}


def _finite_numbers(value):
    if isinstance(value, dict):
        return all(_finite_numbers(item) for item in value.values())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return math.isfinite(value)
    return True


def test_r_vignette_renders_html_with_figures_and_summary(tmp_path):
    render = (
        'rmarkdown::render("{rmd}", output_dir = "{out}", intermediates_dir = "{tmp}", '
        'params = list(quick = TRUE, output_dir = "{out}"), quiet = TRUE)'
    ).format(rmd=VIGNETTES / "brain-mri-segmentation.Rmd", out=tmp_path, tmp=tmp_path)
    process = subprocess.run(
        ["Rscript", "-e", render], capture_output=True, text=True, timeout=900, cwd=tmp_path
    )
    assert process.returncode == 0, process.stderr[-4000:]
    html = (tmp_path / "brain-mri-segmentation.html").read_text()
    assert html.count("data:image/png;base64") >= 3  # Figures embedded, self-contained.
    for figure in ("slices.png", "uncertainty-shift.png", "training.png"):
        assert (tmp_path / "figures" / figure).stat().st_size > 1000
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["quick"] is True
    assert SUMMARY_KEYS | {"accuracy_in_foreground", "restored_mean_abs_difference"} <= set(summary)
    assert set(summary["accuracy"]) == {"bayesian", "deterministic"}
    assert set(summary["dice"]["bayesian"]) == {"other", "grey", "white"}
    assert _finite_numbers(summary)
    assert 0 <= summary["accuracy"]["bayesian"] <= 1
    assert (tmp_path / "bayesian.keras").exists()
    _assert_uncertainty_toolkit(summary, tmp_path / "figures")

    printed = subprocess.run(
        [sys.executable, str(VIGNETTES / "summary.py"), str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert printed.returncode == 0, printed.stderr
    assert "held-out accuracy" in printed.stdout and "boundary/interior" in printed.stdout


def test_python_companion_runs_and_writes_its_summary(tmp_path):
    process = subprocess.run(
        [sys.executable, str(VIGNETTES / "brain_mri_segmentation.py"), "--quick",
         "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )
    assert process.returncode == 0, process.stderr[-4000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert _finite_numbers(summary)
    assert (tmp_path / "slices.png").stat().st_size > 1000
    # The restored model predicts like the original, up to Monte Carlo variation.
    assert abs(summary["restored_accuracy"] - summary["accuracy"]["bayesian"]) < 0.05
    _assert_uncertainty_toolkit(summary, tmp_path)


TOOLKIT_KEYS = {
    "ece", "mce", "mce_bin_voxels", "calibration_n_bins", "error_detection_auroc", "warm_start",
    "training_seconds", "training_epochs", "wrong_voxels_in_foreground", "foreground_voxels",
}


def _assert_uncertainty_toolkit(summary, directory):
    """Issue 13's additions to the study: calibration, error detection, warm start."""
    assert TOOLKIT_KEYS <= set(summary)
    models = {"bayesian", "deterministic", "warm_start"}
    assert set(summary["ece"]) == models
    for model in models:
        assert 0 <= summary["ece"][model] <= summary["mce"][model] <= 1
        assert summary["mce_bin_voxels"][model] >= 1
        assert summary["wrong_voxels_in_foreground"][model] <= summary["foreground_voxels"]
        assert summary["training_seconds"][model] > 0
    auroc = summary["error_detection_auroc"]
    assert {"mutual_information", "predictive_entropy"} <= set(auroc["bayesian"])
    assert "softmax_entropy" in auroc["deterministic"]
    for scores in auroc.values():
        assert all(value is None or 0 <= value <= 1 for value in scores.values())
    warm = summary["warm_start"]
    assert set(warm["dice"]) == {"other", "grey", "white"}
    assert 0 <= warm["accuracy"] <= 1
    assert warm["epochs"] <= summary["training_epochs"]["bayesian"]
    for figure in ("reliability.png", "uncertainty-maps.png"):
        assert (directory / figure).stat().st_size > 1000
