"""Smoke versions of the main job: the R vignette and its Python companion, tiny and quick.

They run the real pipeline (data, crops, both networks, predict_mc, ratios, figures,
save/load, summary) with 8 small crops and one epoch, so a broken demo fails here.
"""

import pytest
import json
import math
import pathlib
import subprocess
import sys

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

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


@pytest.mark.r
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
    for line in ("whole template", "shift study", "retention"):
        assert line in printed.stdout
    _assert_scanner_study(summary, tmp_path / "figures", tmp_path)


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
    _assert_scanner_study(summary, tmp_path, tmp_path)


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


SHIFT_KINDS = {"bias_field", "rician_noise", "anisotropic", "blur", "ghosting"}
TISSUES = {"other", "grey", "white"}


def _assert_scanner_study(summary, figures, out):
    """The main job's use of the tools: the whole 1 mm template through segment_nifti, the
    scanner-shift study and the retention curves (shortened: severities 1 and 5, few draws)."""
    assert {"whole_template", "shift_study", "retention"} <= set(summary)
    for figure in ("whole-template.png", "shift-study.png", "retention.png"):
        assert (figures / figure).stat().st_size > 1000
    assert {"whole_template", "shift_study", "retention"} <= set(summary["figures"])

    whole = summary["whole_template"]
    assert whole["shape"] == [197, 233, 189] and whole["voxel_size_mm"] == [1.0, 1.0, 1.0]
    assert whole["n_samples"] >= 2 and whole["windows"] >= 1
    assert (out / "segmenter.keras").exists() and (out / "mni152_t1_1mm.nii.gz").exists()
    assert (out / "segmentation" / "mni152_t1_1mm_labels.nii.gz").stat().st_size > 1000
    assert set(whole["classes"]) == TISSUES
    for tissue, found in whole["classes"].items():
        low, high = found["interval_ml"]
        assert 0 <= low <= high, (tissue, found)
        assert found["volume_ml"] >= 0 and found["draw_sd_ml"] >= 0
        assert found["reference_ml"] > 0
    # The classes' volumes add up to the scan's (1 mm voxels: 1000 per mL).
    total = sum(found["volume_ml"] for found in whole["classes"].values())
    assert abs(total - 197 * 233 * 189 / 1000) < 0.01 * total
    for key in ("dice_held_out_slab", "dice_whole_template"):
        assert set(whole[key]) == TISSUES
        assert all(0 <= value <= 1 for value in whole[key].values())

    study = summary["shift_study"]
    severities = study["severities"]
    assert severities == [0, 1, 5]  # the shortened study; the full one runs 0 to 5
    assert study["n_samples"] >= 2 and study["seconds"] > 0
    assert set(study["kinds"]) == SHIFT_KINDS
    for kind, found in study["kinds"].items():
        assert isinstance(found["parameter"], str) and len(found["levels"]) == len(severities) - 1
        assert found["levels"] == sorted(found["levels"])
        for model, keys in (("bayesian", ("dice", "ece", "mean_mutual_information",
                                          "mean_predictive_entropy")),
                            ("deterministic", ("dice", "ece", "mean_softmax_entropy"))):
            assert set(found[model]) == set(keys), (kind, model)
            for key in keys:
                assert len(found[model][key]) == len(severities), (kind, model, key)
            assert all(0 <= value <= 1 for value in found[model]["dice"])
            assert all(0 <= value <= 1 for value in found[model]["ece"])
        assert all(value >= 0 for value in found["bayesian"]["mean_mutual_information"])
        # Severity 0 is the clean slab, the same for every kind.
        first = study["kinds"]["bias_field"]
        assert found["bayesian"]["dice"][0] == first["bayesian"]["dice"][0]
        assert found["deterministic"]["ece"][0] == first["deterministic"]["ece"][0]

    retention = summary["retention"]
    fractions = retention["fractions"]
    assert fractions[0] == 0 and abs(fractions[-1] - 0.5) < 1e-9 and fractions == sorted(fractions)
    assert set(retention["curves"]) == {
        "bayesian_mutual_information", "bayesian_predictive_entropy", "bayesian_random",
        "deterministic_softmax_entropy", "deterministic_random"}
    for name, curve in retention["curves"].items():
        assert len(curve) == len(fractions)
        assert all(0 <= value <= 1 for value in curve)
        # Correcting a voxel never lowers a Dice: the curves only rise.
        assert all(later >= earlier - 1e-12 for earlier, later in zip(curve, curve[1:])), name
        model = name.split("_")[0]
        clean = summary["dice"][model]
        assert abs(curve[0] - (clean["grey"] + clean["white"]) / 2) < 1e-9, name
        assert 0 <= retention["mean_dice"][name] <= 1
