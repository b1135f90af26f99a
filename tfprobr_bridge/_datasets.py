"""A real brain MRI for examples: the MNI ICBM152 template and its tissue maps.

The template (T1-weighted, 1 mm, 197 x 233 x 189) and its grey- and
white-matter probability maps ship inside nilearn's wheel, so loading them
needs no download.
"""

import numpy as np

from tfprobr_bridge import _validation

TISSUES = ("other", "grey", "white")


def load_mni152_tissue(downsample=3):
    """The MNI ICBM152 T1 template with grey/white/other labels per voxel.

    Each volume is averaged over blocks of ``downsample`` voxels per axis
    (trailing voxels that do not fill a block are dropped). The label of a
    voxel is the most probable of grey matter, white matter and other
    (``1 - grey - white``: cerebrospinal fluid, skull, background), from the
    block-averaged probability maps.

    Args:
        downsample: Block size in voxels (1 keeps the 1 mm grid).

    Returns:
        A dict of numpy arrays on the (depth, height, width) grid, with the
        axes in the template's order (x: left to right, y: posterior to
        anterior, z: inferior to superior): ``"t1"`` (float32, scaled to
        [0, 1]), ``"labels"`` (int32: 0 other, 1 grey, 2 white), ``"grey"`` and
        ``"white"`` (float32 probabilities), plus ``"voxel_mm"`` (float) and
        ``"tissues"`` (the label names).

    Raises:
        ImportError: nilearn is not installed.
    """
    downsample = _validation.positive_integer(downsample, "downsample")
    try:
        from nilearn import datasets
    except ImportError:
        raise ImportError(
            "load_mni152_tissue() needs nilearn, which ships the template: "
            "install tfprobr_bridge[demo] (pip install 'tfprobr_bridge[demo]')."
        ) from None
    t1 = datasets.load_mni152_template(resolution=1).get_fdata(dtype=np.float32)
    grey = datasets.load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32)
    white = datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32)
    t1, grey, white = (_block_mean(volume, downsample) for volume in (t1, grey, white))
    grey, white = (np.clip(p / max(p.max(), 1e-6), 0, 1) for p in (grey, white))
    other = np.clip(1.0 - grey - white, 0.0, 1.0)
    labels = np.argmax(np.stack([other, grey, white]), axis=0).astype(np.int32)
    return {
        "t1": (t1 / t1.max()).astype(np.float32),
        "labels": labels,
        "grey": grey.astype(np.float32),
        "white": white.astype(np.float32),
        "voxel_mm": float(downsample),
        "tissues": list(TISSUES),
    }


def _block_mean(volume, size):
    if size == 1:
        return volume
    shape = [dim // size for dim in volume.shape]
    trimmed = volume[: shape[0] * size, : shape[1] * size, : shape[2] * size]
    blocks = trimmed.reshape(shape[0], size, shape[1], size, shape[2], size)
    return blocks.mean(axis=(1, 3, 5))
