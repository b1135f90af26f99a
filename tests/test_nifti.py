"""segment_nifti, save_segmenter and the tfprobr-segment command: NIfTI in, NIfTI out."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import nibabel as nib
import numpy as np
import pytest

import tfprobr_bridge as tb

CLASSES = ["other", "grey", "white"]


def _segmenter(patch=8):
    return keras.Sequential([
        keras.Input((patch, patch, patch, 1)),
        tb.Conv3DReparameterization(4, 3, padding="same", activation="relu"),
        tb.Conv3DReparameterization(3, 3, padding="same"),
        keras.layers.Softmax(),
    ])


def _oblique_affine(zooms=(1.2, 0.9, 2.5)):
    angle = np.deg2rad(17)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                         [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(zooms)
    affine[:3, 3] = [-40.5, 12.25, 7]
    return affine


def _scan(path, shape=(19, 14, 11), affine=None, data=None, rng=None):
    rng = rng or np.random.default_rng(0)
    if data is None:
        data = rng.normal(100, 20, shape).astype(np.float32)
    affine = _oblique_affine() if affine is None else affine
    image = nib.Nifti1Image(data, affine)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=2)
    image.header["descrip"] = b"a test scan"
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, str(path))
    return image


@pytest.fixture
def segmenter_file(tmp_path):
    path = tmp_path / "segmenter.keras"
    tb.save_segmenter(_segmenter(), path, voxel_spacing=1.5, normalization="zscore",
                      class_names=CLASSES)
    return path


def test_the_preprocessing_travels_inside_the_keras_file(segmenter_file):
    document = tb.load_preprocessing(segmenter_file)
    assert document == {"format": 1, "voxel_spacing_mm": [1.5, 1.5, 1.5], "orientation": "RAS",
                        "normalization": {"method": "zscore"}, "class_names": CLASSES}
    loaded = keras.models.load_model(segmenter_file)  # Keras ignores it
    assert isinstance(loaded.layers[0], tb.Conv3DReparameterization)


def test_an_oblique_anisotropic_odd_scan_comes_back_in_its_own_space(segmenter_file, tmp_path):
    scan = _scan(tmp_path / "subject01.nii.gz")
    results = tb.segment_nifti(segmenter_file, tmp_path / "subject01.nii.gz", tmp_path / "out",
                               n_samples=4, seed=3, verbose=0)
    assert [r["status"] for r in results] == ["done"], results
    outputs = results[0]["outputs"]
    assert sorted(outputs) == sorted(["labels", "probabilities", "std", "predictive_entropy",
                                      "expected_entropy", "mutual_information", "summary"])
    for name, path in outputs.items():
        if name == "summary":
            continue
        image = nib.load(path)
        expected_shape = scan.shape + ((3,) if name in ("probabilities", "std") else ())
        assert image.shape == expected_shape, name
        np.testing.assert_allclose(image.affine, scan.affine, err_msg=name)
        assert image.header.get_sform(coded=True)[1] == 2 and image.header.get_qform(coded=True)[1] == 1
        np.testing.assert_allclose(image.header.get_zooms()[:3], scan.header.get_zooms()[:3])
        assert image.header["descrip"].tobytes().rstrip(b"\0") == b"a test scan"
        assert image.header.get_xyzt_units() == ("mm", "sec")
        assert image.get_data_dtype() == (np.int16 if name == "labels" else np.float32)
    labels = np.asarray(nib.load(outputs["labels"]).dataobj)
    probabilities = nib.load(outputs["probabilities"]).get_fdata()
    assert set(np.unique(labels)) <= {0, 1, 2}
    np.testing.assert_allclose(probabilities.sum(-1), 1, atol=1e-4)
    summary = json.loads(open(outputs["summary"]).read())
    assert list(summary["classes"]) == CLASSES
    voxel_ml = float(np.prod(scan.header.get_zooms()[:3])) / 1000
    total = sum(c["volume_ml"] for c in summary["classes"].values())
    assert total == pytest.approx(np.prod(scan.shape) * voxel_ml, rel=1e-3)
    for c in summary["classes"].values():
        low, high = c["interval_ml"]
        assert low <= high
    # The draws count the resampled grid's real voxel volume (the scan's odd shape does not
    # divide into 1.5 mm voxels), so their class volumes also add up to the scan's volume.
    draws_total = sum(c["draw_mean_ml"] for c in summary["classes"].values())
    assert draws_total == pytest.approx(total, rel=1e-3)
    assert summary["n_samples"] == 4 and summary["versions"]["tfprobr_bridge"]
    # No temporary file is left.
    assert not [p for p in os.listdir(tmp_path / "out") if ".tmp" in p]


def test_a_reoriented_scan_gives_the_same_labels_in_its_own_orientation(tmp_path):
    """The same scan stored LPS-ordered instead of RAS: the model sees the same RAS array, so the
    labels come back flipped the same way."""
    model = _segmenter()
    document = tb.preprocessing(voxel_spacing=None, orientation="RAS", normalization="none")
    rng = np.random.default_rng(1)
    data = rng.normal(size=(10, 9, 8)).astype(np.float32)
    ras = np.diag([2.0, 2.0, 2.0, 1.0])
    lps = ras.copy()
    lps[0, 0] = lps[1, 1] = -2.0
    _scan(tmp_path / "ras.nii.gz", affine=ras, data=data)
    _scan(tmp_path / "lps.nii.gz", affine=lps, data=data[::-1, ::-1].copy())
    results = tb.segment_nifti(model, [tmp_path / "ras.nii.gz", tmp_path / "lps.nii.gz"],
                               tmp_path / "out", n_samples=3, seed=5, verbose=0,
                               preprocessing=document)
    assert [r["status"] for r in results] == ["done", "done"], results
    first, second = (np.asarray(nib.load(r["outputs"]["labels"]).dataobj) for r in results)
    np.testing.assert_array_equal(first, second[::-1, ::-1])


def test_several_scans_a_failing_one_reported_by_name_the_rest_go_on(segmenter_file, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    _scan(folder / "a.nii.gz")
    _scan(folder / "b.nii", shape=(9, 9, 9))
    nib.save(nib.Nifti1Image(np.ones((9, 9), np.float32), np.eye(4)), str(folder / "flat.nii.gz"))
    bad = np.ones((9, 9, 9), np.float32)
    bad[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(bad, np.eye(4)), str(folder / "nan.nii.gz"))
    nib.save(nib.Nifti1Image(np.ones((9, 9, 9, 2), np.float32), np.eye(4)),
             str(folder / "two_channels.nii.gz"))
    (folder / "notes.nii.gz").write_bytes(b"not a nifti file at all")
    results = tb.segment_nifti(segmenter_file, folder, tmp_path / "out", n_samples=2, verbose=0)
    status = {os.path.basename(r["input"]): (r["status"], r.get("error", "")) for r in results}
    assert status["a.nii.gz"][0] == "done" and status["b.nii"][0] == "done"
    assert "is 2-D" in status["flat.nii.gz"][1] and "flat.nii.gz" in status["flat.nii.gz"][1]
    assert "1 NaN or infinite voxels" in status["nan.nii.gz"][1]
    assert "has 2 channel(s), but the model takes 1" in status["two_channels.nii.gz"][1]
    assert "could not be read as NIfTI" in status["notes.nii.gz"][1]
    # Existing outputs are not overwritten unless asked.
    again = tb.segment_nifti(segmenter_file, folder / "a.nii.gz", tmp_path / "out", n_samples=2,
                             verbose=0)
    assert again[0]["status"] == "failed" and "outputs exist" in again[0]["error"]
    assert tb.segment_nifti(segmenter_file, folder / "a.nii.gz", tmp_path / "out", n_samples=2,
                            verbose=0, overwrite=True)[0]["status"] == "done"


def test_bad_preprocessing_arguments_are_named():
    with pytest.raises(ValueError, match=r"`voxel_spacing` must be a positive number of mm"):
        tb.preprocessing(voxel_spacing=-1)
    with pytest.raises(ValueError, match=r"`orientation` must be three axis codes"):
        tb.preprocessing(orientation="RAA")
    with pytest.raises(ValueError, match=r"`normalization` must be one of"):
        tb.preprocessing(normalization="histogram")
    with pytest.raises(TypeError, match=r"`class_names` must be a list of strings"):
        tb.preprocessing(class_names="grey")


@pytest.mark.parametrize("source, target", [
    ((22, 26, 21), (66, 78, 63)),  # model grid back to a scan three times finer
    ((66, 78, 63), (22, 26, 21)),  # a scan down to the model's grid
    ((22, 26, 21, 3), (65, 79, 62)),  # a map per class, odd factors
    ((5, 1, 7), (9, 3, 2)),  # a single slice and a shrinking axis
    ((8, 8, 8), (8, 13, 8)),  # one axis only
])
def test_maps_are_resampled_as_scipys_linear_zoom_resamples_them(source, target):
    # The maps go back to the scan's grid with a separable interpolation of our
    # own (scipy's zoom was the slowest part of a 1 mm segmentation): it must
    # give scipy's values, edges and grid alignment included.
    from scipy import ndimage

    from tfprobr_bridge.uncertainty.nifti import _resample_to

    array = np.random.default_rng(3).random(source).astype("float32")
    zoom = [new / old for new, old in zip(target, source)] + [1] * (len(source) - 3)
    expected = ndimage.zoom(array, zoom, order=1, mode="nearest", grid_mode=True)
    expected = expected[tuple(slice(0, size) for size in target)]
    resampled = _resample_to(array, target, 1)
    assert resampled.shape == target + source[3:] and resampled.dtype == np.float32
    np.testing.assert_allclose(resampled, expected, rtol=0, atol=1e-6)
    # Integers are interpolated as numbers, not truncated weights.
    counts = (array * 100).astype("int16")
    np.testing.assert_allclose(_resample_to(counts, target, 1),
                               _resample_to(counts.astype("float32"), target, 1))


@pytest.mark.subprocess
def test_the_command_line_end_to_end(segmenter_file, tmp_path):
    _scan(tmp_path / "scan.nii.gz")
    command = [sys.executable, "-m", "tfprobr_bridge.cli", str(segmenter_file),
               str(tmp_path / "scan.nii.gz"), "--output-dir", str(tmp_path / "out"), "-n", "3",
               "--seed", "1"]
    process = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "grey" in process.stdout and "mL" in process.stdout
    assert json.loads(process.stdout.strip().splitlines()[-1]) == {"done": 1, "failed": 0}
    assert len(list((tmp_path / "out").iterdir())) == 7
    # A second run without --overwrite: the scan fails, exit status 1.
    process = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert process.returncode == 1 and "outputs exist" in process.stderr
    # A bad option: exit status 2 and a message.
    process = subprocess.run(command + ["--overlap", "1.5"], capture_output=True, text=True,
                             timeout=600)
    assert process.returncode == 2 and "`overlap` must be a number in [0, 1)" in process.stderr


@pytest.mark.subprocess
@pytest.mark.slow
def test_an_interrupt_leaves_no_half_written_output(segmenter_file, tmp_path):
    (tmp_path / "scans").mkdir()
    for index in range(6):
        _scan(tmp_path / "scans" / f"s{index}.nii.gz", shape=(40, 40, 40))
    process = subprocess.Popen(
        [sys.executable, "-m", "tfprobr_bridge.cli", str(segmenter_file), str(tmp_path / "scans"),
         "--output-dir", str(tmp_path / "out"), "-n", "20", "--overlap", "0.75", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As from a terminal: a test run started in the background (nohup, `&`)
        # ignores SIGINT, and a child inherits that, so Ctrl-C would never arrive.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    out = tmp_path / "out"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (out.exists() and any(out.iterdir())):
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr
    written = sorted(out.iterdir())
    assert not [p for p in written if ".tmp" in p.name]  # no temporary left
    for path in written:  # every output there is whole
        if path.name.endswith(".nii.gz"):
            assert np.all(np.isfinite(nib.load(path).get_fdata()))
        else:
            json.loads(path.read_text())
