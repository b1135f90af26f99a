"""The packaged brain MRI used by the demo."""

import numpy as np
import pytest

from tfprobr_bridge import load_mni152_tissue


def test_mni152_tissue_labels_follow_the_probability_maps():
    mri = load_mni152_tissue(downsample=4)
    assert mri["t1"].shape == mri["labels"].shape == (49, 58, 47)
    assert mri["voxel_mm"] == 4.0 and mri["tissues"] == ["other", "grey", "white"]
    assert mri["t1"].dtype == np.float32 and 0 <= mri["t1"].min() and mri["t1"].max() == 1
    grey, white = mri["grey"], mri["white"]
    other = np.clip(1 - grey - white, 0, 1)
    expected = np.argmax(np.stack([other, grey, white]), axis=0)
    np.testing.assert_array_equal(mri["labels"], expected)
    fractions = np.bincount(mri["labels"].ravel(), minlength=3) / mri["labels"].size
    assert 0.05 < fractions[1] < 0.3 and 0.03 < fractions[2] < 0.2
    # T1 contrast: white matter brightest, then grey matter.
    t1, labels = mri["t1"], mri["labels"]
    assert t1[labels == 2].mean() > t1[labels == 1].mean() > t1[labels == 0].mean()


def test_downsample_is_validated():
    with pytest.raises(ValueError, match=r"`downsample` must be a positive integer"):
        load_mni152_tissue(downsample=0)
