"""Calibration: do the predicted probabilities match how often the model is right?

Equal-width confidence bins, as in Guo et al., "On calibration of modern
neural networks" (ICML 2017): in each bin the mean confidence (the highest
class probability) is set against the accuracy; the expected calibration error
(ECE) is their gap averaged over the bins, weighted by how many predictions
fall in each, and the maximum calibration error (MCE) is the largest gap.
"""

import numpy as np

from tfprobr_bridge import validation


def calibration(probabilities, labels, n_bins=15):
    """Expected and maximum calibration error, and the table behind a reliability diagram.

    Each prediction's confidence is its highest class probability and its
    prediction that class (the first, on ties). Confidences are binned into
    ``n_bins`` equal-width bins over [0, 1]; a bin holds the confidences in
    ``(lower, upper]``, as in Guo et al. (2017), and the first bin also holds
    0, so a confidence on an edge goes to the bin below it.

    Args:
        probabilities: Class probabilities, shaped ``(..., classes)`` with 2 or
            more classes (for a segmentation, ``(N, D, H, W, classes)``: every
            voxel is a prediction). All finite, in [0, 1].
        labels: The true classes: integers from 0 to ``classes - 1`` shaped
            like ``probabilities`` without its last axis, or one-hot vectors
            shaped like ``probabilities``.
        n_bins: Number of equal-width confidence bins.

    Returns:
        A dict: ``"ece"`` (float: the count-weighted mean of
        ``|accuracy - confidence|`` over the non-empty bins), ``"mce"``
        (float: its maximum over them), ``"n_bins"`` and ``"bins"``, a dict of
        numpy arrays of length ``n_bins``: ``"lower"``, ``"upper"`` (the
        edges), ``"confidence"`` (mean confidence), ``"accuracy"`` (both NaN
        for an empty bin) and ``"count"``.

    Raises:
        ValueError, TypeError: for invalid arguments, in Keras's form.

    Example:

    >>> import numpy as np
    >>> from tfprobr_bridge import calibration
    >>> probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.45, 0.55]])
    >>> result = calibration(probabilities, np.array([0, 1, 1, 0, 0]), n_bins=4)
    >>> result["bins"]["count"].tolist()  # Confidences 0.7 0.6 0.55 | 0.9 0.8
    [0, 0, 3, 2]
    >>> result["bins"]["accuracy"].round(3).tolist()  # 2 of 3 right | 1 of 2 right
    [nan, nan, 0.667, 0.5]
    >>> round(result["ece"], 4), round(result["mce"], 4)  # (3 * 0.05 + 2 * 0.35) / 5
    (0.17, 0.35)
    """
    probabilities, labels = probabilities_and_labels(probabilities, labels)
    n_bins = validation.positive_integer(n_bins, "n_bins")
    confidence = probabilities.max(axis=-1)
    correct = probabilities.argmax(axis=-1) == labels
    # i / n_bins rounds once, so an edge equals the literal a user writes (3 / 5 == 0.6).
    edges = np.arange(n_bins + 1) / n_bins
    # searchsorted(side="left") - 1 puts c in the bin with lower < c <= upper;
    # 0 (index -1) joins the first bin.
    bin_index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(bin_index, minlength=n_bins)
    filled = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bin_index, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(bin_index, weights=correct, minlength=n_bins) / count
    mean_confidence[~filled] = np.nan
    accuracy[~filled] = np.nan
    gap = np.abs(accuracy[filled] - mean_confidence[filled])
    return {
        "ece": float(np.sum(gap * count[filled]) / confidence.size),
        "mce": float(gap.max()),
        "bins": {
            "lower": edges[:-1].copy(),
            "upper": edges[1:].copy(),
            "confidence": mean_confidence,
            "accuracy": accuracy,
            "count": count.astype(np.int64),
        },
        "n_bins": n_bins,
    }


_DIAGONAL = "tfprobr_bridge-perfect-calibration"


def plot_reliability_diagram(probabilities, labels=None, n_bins=15, ax=None, label=None):
    """Draw a reliability diagram: accuracy per confidence bin against the diagonal.

    A calibrated model's bars reach the diagonal; bars below it mean
    overconfidence. One bar per non-empty bin (see :func:`calibration`), and
    the ECE in the legend.

    Args:
        probabilities: Class probabilities as for :func:`calibration`, or the
            dict :func:`calibration` returned (then leave ``labels`` out;
            ``n_bins`` is the dict's).
        labels: The true classes, as for :func:`calibration`.
        n_bins: Number of equal-width confidence bins.
        ax: A matplotlib Axes to draw on; None for a new figure.
        label: The legend's name for these bars (e.g. ``"Bayesian"``), to
            compare models on one Axes.

    Returns:
        The matplotlib Axes.

    Raises:
        ImportError: matplotlib is not installed.
        ValueError, TypeError: for invalid arguments, in Keras's form.

    Example:

    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from tfprobr_bridge import plot_reliability_diagram
    >>> probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    >>> ax = plot_reliability_diagram(probabilities, np.array([0, 1, 1, 1]), n_bins=5)
    >>> len(ax.containers[0])  # One bar per bin with predictions: (0.4, 0.6], (0.6, 0.8], (0.8, 1]
    3
    >>> plt.close(ax.figure)
    """
    if isinstance(probabilities, dict):
        if labels is not None:
            raise ValueError(
                "`labels` must be None when `probabilities` is the dict calibration() "
                f"returned: the dict already holds them. "
                f"Received: labels of type {type(labels).__name__}"
            )
        result = _calibration_result(probabilities)
    else:
        if labels is None:
            raise ValueError(
                "`labels` must be given with `probabilities` (or pass the dict "
                "calibration() returned as `probabilities`). Received: labels=None"
            )
        result = calibration(probabilities, labels, n_bins)
    if label is not None and not isinstance(label, str):
        raise TypeError(f"`label` must be a string or None. {validation.received('label', label)}")
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "plot_reliability_diagram() needs matplotlib: install tfprobr_bridge[demo] "
            "(pip install 'tfprobr_bridge[demo]')."
        ) from None
    if ax is None:
        _, ax = plt.subplots()
    bins = result["bins"]
    filled = bins["count"] > 0
    name = "accuracy" if label is None else label
    ax.bar(
        bins["lower"][filled],
        bins["accuracy"][filled],
        width=(bins["upper"] - bins["lower"])[filled],
        align="edge",
        alpha=0.6,
        edgecolor="black",
        label=f"{name} (ECE = {result['ece']:.3f})",
    )
    # One diagonal when several models share the Axes.
    if not any(line.get_gid() == _DIAGONAL for line in ax.get_lines()):
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration",
                gid=_DIAGONAL)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (highest class probability)")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left")
    return ax


def probabilities_and_labels(probabilities, labels):
    """Validate and flatten: probabilities ``(n, classes)``, labels ``(n,)`` int64."""
    probabilities = real_array(probabilities, "probabilities")
    if probabilities.ndim < 2 or probabilities.shape[-1] < 2:
        raise ValueError(
            "`probabilities` must have a last axis of 2 or more classes, shaped "
            "(..., classes). Received: probabilities.shape="
            f"{probabilities.shape}"
        )
    if probabilities.size == 0:
        raise ValueError(
            "`probabilities` must hold at least one prediction. "
            f"Received: probabilities.shape={probabilities.shape}"
        )
    valid = (probabilities >= 0) & (probabilities <= 1)  # False for NaN too.
    if not np.all(valid):
        raise ValueError(
            "`probabilities` must be finite and in [0, 1] (apply a softmax to logits "
            f"first). Received: probabilities with a value of {probabilities[~valid][0].item()!r}"
        )
    classes = probabilities.shape[-1]
    labels = real_array(labels, "labels")
    if labels.shape == probabilities.shape:
        if not (np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(axis=-1) == 1)):
            raise ValueError(
                "`labels` shaped like `probabilities` must be one-hot: one 1 and "
                "otherwise 0 along the last axis. Received: labels with other values"
            )
        labels = labels.argmax(axis=-1)
    elif labels.shape == probabilities.shape[:-1]:
        valid = (labels == np.round(labels)) & (labels >= 0) & (labels < classes)
        if not np.all(valid):
            raise ValueError(
                f"`labels` must be class indices from 0 to {classes - 1}. "
                f"Received: labels with a value of {labels[~valid][0].item()!r}"
            )
    else:
        raise ValueError(
            "`labels` must be shaped like `probabilities` without its last axis "
            f"(class indices, {probabilities.shape[:-1]}) or like `probabilities` "
            f"(one-hot, {probabilities.shape}). Received: labels.shape={labels.shape}"
        )
    return probabilities.reshape(-1, classes), labels.reshape(-1).astype(np.int64)


def real_array(value, name):
    """``value`` as a numpy array of integers or floats (not booleans), or a TypeError."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        array = None
    if array is None or array.dtype == bool or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        kind = type(value).__name__ if array is None else f"an array of {array.dtype}"
        raise TypeError(f"`{name}` must be an array of real numbers. Received: {name}={kind}")
    return array


_BIN_KEYS = ("lower", "upper", "confidence", "accuracy", "count")


def _calibration_result(result):
    """Check that ``result`` looks like calibration()'s dict."""
    bins = result.get("bins")
    if not (
        isinstance(bins, dict)
        and all(key in bins for key in _BIN_KEYS)
        and "ece" in result
    ):
        raise ValueError(
            "`probabilities` given as a dict must be the one calibration() returned, "
            'with "ece" and "bins" (lower, upper, confidence, accuracy, count). '
            f"Received: probabilities with keys {sorted(map(str, result))}"
        )
    return {"ece": float(result["ece"]),
            "bins": {key: np.asarray(bins[key]) for key in _BIN_KEYS}}
