"""A real brain MRI for examples: the MNI ICBM152 template and its tissue maps.

The template (T1-weighted, 1 mm, 197 x 233 x 189) and its grey- and
white-matter probability maps ship inside nilearn's wheel, so loading them
needs no download.
"""

import numpy as np

from tfprobr_bridge import validation

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
    downsample = validation.positive_integer(downsample, "downsample")
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


# --- scanner shifts ---------------------------------------------------------------------------
#
# What a scan from another scanner, protocol or site looks like, simulated on a volume: the
# families of the ROOD-MRI benchmark and of TorchIO's augmentations, written with NumPy alone
# (TorchIO is PyTorch). Severity 1 is mild, 5 severe; 0 is no shift.

SHIFT_KINDS = ("bias_field", "rician_noise", "anisotropic", "blur", "ghosting")
MAX_SEVERITY = 5
# Per kind, the parameter that severity 1..5 sets (index 0 is severity 1).
SHIFT_LEVELS = {
    # Magnitude of the bias field's polynomial coefficients (TorchIO's RandomBiasField).
    "bias_field": ("coefficient_magnitude", (0.3, 0.6, 0.9, 1.2, 1.5)),
    # Noise standard deviation, as a fraction of the volume's intensity range.
    "rician_noise": ("noise_sd_fraction_of_range", (0.01, 0.02, 0.04, 0.07, 0.10)),
    # Slice thickness, in voxels: thick slices along one axis, interpolated back.
    "anisotropic": ("downsampling_factor", (2, 3, 4, 5, 6)),
    # Gaussian sigma, in voxels.
    "blur": ("sigma_voxels", (0.5, 1.0, 1.5, 2.0, 2.5)),
    # How much of every GHOST_LINES-th k-space line along the phase-encode axis is lost.
    "ghosting": ("ghost_intensity", (0.2, 0.35, 0.5, 0.65, 0.8)),
}
BIAS_FIELD_ORDER = 3  # the polynomial's degree, as TorchIO's default
GHOST_LINES = 4  # every 4th phase-encode line is attenuated: ghosts a quarter of the FOV apart
GHOST_RESTORE = 0.02  # the fraction of k-space's centre left untouched, as TorchIO's default
# The axis each kind acts along when `axis` is None: the volumes here are (x, y, z) with
# axial slices along z, so thick slices stack along z (2) and the phase is encoded along y (1).
DEFAULT_AXIS = {"anisotropic": 2, "ghosting": 1}


def shift_parameter(kind, severity):
    """The parameter ``severity`` sets for a shift ``kind``: a ``(name, value)`` pair.

    >>> shift_parameter("blur", 3)
    ('sigma_voxels', 1.5)
    >>> shift_parameter("anisotropic", 0)
    ('downsampling_factor', None)
    """
    kind = _shift_kind(kind)
    severity = _severity(severity)
    name, levels = SHIFT_LEVELS[kind]
    return name, (levels[severity - 1] if severity else None)


def simulate_shift(volume, kind, severity, seed=0, axis=None):
    """A scanner shift of a 3-D volume: what another scanner or protocol would have given.

    The shifts are those of the ROOD-MRI benchmark and TorchIO's augmentations,
    written with NumPy:

    - ``"bias_field"``: a smooth multiplicative field, ``exp`` of a polynomial of
      degree 3 in the coordinates (scaled to [-1, 1]) whose coefficients are drawn
      uniformly in ``[-c, c]``, ``c`` = 0.3, 0.6, 0.9, 1.2, 1.5 for severity 1..5
      (the draws are the same for every severity with one seed, scaled by ``c``;
      no constant term, since a global gain is not a shift a normalisation sees);
    - ``"rician_noise"``: the magnitude of the image plus complex Gaussian noise,
      ``sqrt((x + n1)^2 + n2^2)``, as a magnitude MR image has; the noise's standard
      deviation is 1, 2, 4, 7 or 10% of the volume's intensity range;
    - ``"anisotropic"``: thick-slice acquisition: slices ``f`` = 2..6 voxels thick
      along ``axis`` (each the mean of the ``f`` voxels it covers), interpolated
      linearly back onto the original grid;
    - ``"blur"``: a Gaussian blur of sigma 0.5, 1, 1.5, 2 or 2.5 voxels;
    - ``"ghosting"``: in k-space, every 4th line along the phase-encode ``axis``
      loses 20, 35, 50, 65 or 80% of its amplitude (the centre of k-space is kept),
      which replicates attenuated copies of the image shifted by a quarter of the
      field of view; the result is the magnitude image.

    Intensity-changing shifts act on the volume above its minimum (its background),
    so a standardised volume, with negative values, is shifted as its raw scan
    would be. Apply them to the raw intensities, before the normalisation a model
    was trained with, as a scanner would.

    Args:
        volume: A 3-D array of finite numbers ``(x, y, z)``, or 4-D with channels
            last (each channel is shifted alike).
        kind: One of ``"bias_field"``, ``"rician_noise"``, ``"anisotropic"``,
            ``"blur"``, ``"ghosting"``.
        severity: An integer from 0 (no shift: the volume is returned unchanged,
            as a copy) to 5.
        seed: An integer that fixes the random draws (the bias field's
            coefficients, the noise), or None for fresh ones. The other kinds draw
            nothing.
        axis: The axis (0, 1 or 2) of the thick slices (``"anisotropic"``, default
            2) or of the phase encoding (``"ghosting"``, default 1); None for the
            default. The other kinds ignore it.

    Returns:
        An array of the volume's shape; of its dtype if that is floating, else
        float32.

    Raises:
        ValueError, TypeError: for invalid arguments, in Keras's form.

    Example:

    >>> import numpy as np
    >>> from tfprobr_bridge.datasets import simulate_shift
    >>> volume = np.random.default_rng(0).random((16, 16, 12)).astype("float32")
    >>> shifted = simulate_shift(volume, "rician_noise", severity=3, seed=1)
    >>> shifted.shape, shifted.dtype
    ((16, 16, 12), dtype('float32'))
    >>> bool(np.array_equal(simulate_shift(volume, "blur", 0), volume))
    True
    """
    array = _shift_volume(volume)
    kind = _shift_kind(kind)
    severity = _severity(severity)
    seed = validation.optional_seed(seed)
    axis = _shift_axis(axis, kind)
    if severity == 0:
        return array.copy()
    _, level = SHIFT_LEVELS[kind]
    level = level[severity - 1]
    if array.ndim == 4:
        channels = [_shift_3d(array[..., c], kind, level, seed, axis)
                    for c in range(array.shape[-1])]
        return np.stack(channels, axis=-1).astype(array.dtype, copy=False)
    return _shift_3d(array, kind, level, seed, axis).astype(array.dtype, copy=False)


def _shift_3d(volume, kind, level, seed, axis):
    x = volume.astype(np.float64)
    low = float(x.min())
    above = x - low  # the intensities above the background, >= 0
    if kind == "bias_field":
        return low + above * _bias_field(x.shape, level, np.random.default_rng(seed))
    if kind == "rician_noise":
        sd = level * float(above.max())
        rng = np.random.default_rng(seed)
        real, imaginary = (rng.standard_normal(x.shape) for _ in range(2))
        return low + np.sqrt((above + sd * real) ** 2 + (sd * imaginary) ** 2)
    if kind == "anisotropic":
        return _thick_slices(x, int(level), axis)
    if kind == "blur":
        for along in range(3):
            x = _gaussian_along(x, float(level), along)
        return x
    return low + _ghosts(above, float(level), axis)


def _bias_field(shape, magnitude, rng):
    grids = np.meshgrid(*[np.linspace(-1, 1, size) for size in shape], indexing="ij")
    log_field = np.zeros(shape)
    for i in range(BIAS_FIELD_ORDER + 1):
        for j in range(BIAS_FIELD_ORDER + 1 - i):
            for k in range(BIAS_FIELD_ORDER + 1 - i - j):
                unit = rng.uniform(-1, 1)  # drawn for every term, so a seed fixes them all
                if i + j + k:
                    log_field += magnitude * unit * grids[0] ** i * grids[1] ** j * grids[2] ** k
    return np.exp(log_field)


def _thick_slices(x, factor, axis):
    """Slices ``factor`` voxels thick along ``axis``, linearly interpolated back."""
    moved = np.moveaxis(x, axis, 0)
    n = moved.shape[0]
    thick_count = -(-n // factor)
    padded = np.concatenate(
        [moved, np.repeat(moved[-1:], thick_count * factor - n, axis=0)], axis=0)
    thick = padded.reshape(thick_count, factor, *moved.shape[1:]).mean(axis=1)
    # Voxel i lies at (i - (factor - 1) / 2) / factor in thick-slice units.
    position = np.clip((np.arange(n) - (factor - 1) / 2) / factor, 0, thick_count - 1)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, thick_count - 1)
    weight = (position - below).reshape(-1, *([1] * (moved.ndim - 1)))
    back = thick[below] * (1 - weight) + thick[above] * weight
    return np.moveaxis(back, 0, axis)


def _gaussian_along(x, sigma, axis):
    """A Gaussian blur along one axis, edges extended by their nearest voxel."""
    n = x.shape[axis]
    radius = int(np.ceil(4 * sigma))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    matrix = np.zeros((n, n))
    for offset, weight in zip(offsets, kernel):
        np.add.at(matrix, (np.arange(n), np.clip(np.arange(n) + offset, 0, n - 1)), weight)
    return np.moveaxis(np.tensordot(matrix, np.moveaxis(x, axis, 0), axes=1), 0, axis)


def _ghosts(x, intensity, axis):
    """Every GHOST_LINES-th k-space line along ``axis`` attenuated by ``intensity``."""
    spectrum = np.fft.fftshift(np.fft.fftn(x))
    n = x.shape[axis]
    gain = np.ones(n)
    gain[::GHOST_LINES] = 1 - intensity
    centre = n // 2
    keep = max(1, int(round(GHOST_RESTORE * n / 2)))
    gain[max(0, centre - keep):centre + keep + 1] = 1  # the centre of k-space stays
    shape = [1, 1, 1]
    shape[axis] = n
    spectrum = spectrum * gain.reshape(shape)
    return np.abs(np.fft.ifftn(np.fft.ifftshift(spectrum)))


def _shift_volume(volume):
    array = np.asarray(volume)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                     or array.dtype == bool):
        raise TypeError(
            "`volume` must be an array of numbers, 3-D or 4-D with channels last. "
            f"Received: volume of dtype {array.dtype}"
        )
    if array.ndim not in (3, 4) or min(array.shape) == 0:
        raise ValueError(
            "`volume` must be 3-D (x, y, z) or 4-D with channels last, none of size 0. "
            f"Received: volume of shape {array.shape}"
        )
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(
            "`volume` must be an array of real numbers. "
            f"Received: volume of dtype {array.dtype}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(
            "`volume` must hold finite numbers only, but it has "
            f"{int(np.sum(~np.isfinite(array)))} NaN or infinite voxels. "
            f"Received: volume of shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
    return array


def _shift_kind(kind):
    if not isinstance(kind, str) or kind not in SHIFT_KINDS:
        raise ValueError(
            f"`kind` must be one of {', '.join(repr(k) for k in SHIFT_KINDS)}. "
            f"{validation.received('kind', kind)}"
        )
    return kind


def _severity(severity):
    integer = validation._as_integer(severity)
    if integer is None or not 0 <= integer <= MAX_SEVERITY:
        error = ValueError if validation._is_number(severity) else TypeError
        raise error(
            f"`severity` must be an integer from 0 (no shift) to {MAX_SEVERITY}. "
            f"{validation.received('severity', severity)}"
        )
    return integer


def _shift_axis(axis, kind):
    if axis is None:
        return DEFAULT_AXIS.get(kind, 2)
    integer = validation._as_integer(axis)
    if integer is None or integer not in (0, 1, 2):
        raise ValueError(
            f"`axis` must be 0, 1, 2 or None. {validation.received('axis', axis)}"
        )
    return integer
