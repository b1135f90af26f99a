"""Error detection: does the uncertainty single out the wrong predictions?"""

import numpy as np

from tfprobr_bridge.uncertainty import calibration as _calibration


def error_detection_auroc(uncertainty, wrong):
    """The area under the ROC curve for flagging wrong predictions by their uncertainty.

    The probability that a wrong prediction has a higher uncertainty score
    than a right one, ties counting one half: 1 means the uncertainty ranks
    every error above every correct prediction, 0.5 that it tells them apart
    no better than chance. Computed from the Mann-Whitney U statistic with
    average ranks for ties, in ``O(n log n)`` time.

    Args:
        uncertainty: Scores, higher for less certain predictions (predictive
            entropy, mutual information, standard deviation, ...); any shape,
            finite.
        wrong: Booleans shaped like ``uncertainty``: True where the
            prediction was wrong (see :func:`wrong_predictions`).

    Returns:
        The AUROC, a float in [0, 1].

    Raises:
        ValueError, TypeError: for invalid arguments, in Keras's form, and
            ValueError when ``wrong`` is all True or all False (the area is
            undefined).

    Example:

    >>> import numpy as np
    >>> from tfprobr_bridge import error_detection_auroc
    >>> uncertainty = np.array([0.1, 0.4, 0.35, 0.8])
    >>> wrong = np.array([False, False, True, True])
    >>> error_detection_auroc(uncertainty, wrong)  # 3 of the 4 (wrong, right) pairs ranked right
    0.75
    """
    uncertainty = _calibration.real_array(uncertainty, "uncertainty")
    wrong = _booleans(wrong)
    if wrong.shape != uncertainty.shape:
        raise ValueError(
            "`wrong` must have the shape of `uncertainty`. "
            f"Received: wrong.shape={wrong.shape}, uncertainty.shape={uncertainty.shape}"
        )
    if not np.all(np.isfinite(uncertainty)):
        raise ValueError(
            "`uncertainty` must be finite. Received: uncertainty with "
            f"{int(np.sum(~np.isfinite(uncertainty)))} NaN or infinite values"
        )
    scores, wrong = uncertainty.reshape(-1), wrong.reshape(-1)
    n_wrong = int(np.count_nonzero(wrong))
    n_right = wrong.size - n_wrong
    if n_wrong == 0 or n_right == 0:
        raise ValueError(
            "`wrong` must hold both wrong (True) and right (False) predictions: the "
            "AUROC compares the two. "
            f"Received: wrong with {n_wrong} True of {wrong.size}"
        )
    # Average ranks, doubled to stay integers (exact for any n below 3e9):
    # a tie group after `start` smaller values, `count` long, has ranks
    # start + 1 ... start + count, mean (2 * start + count + 1) / 2.
    _, group, counts = np.unique(scores, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts
    doubled_ranks = (2 * starts + counts + 1)[group.reshape(-1)]
    doubled_rank_sum = int(np.sum(doubled_ranks[wrong], dtype=np.int64))
    # U = rank sum of the wrong - n_wrong (n_wrong + 1) / 2 pairs won.
    u_doubled = doubled_rank_sum - n_wrong * (n_wrong + 1)
    return u_doubled / (2 * n_wrong * n_right)


def wrong_predictions(probabilities, labels):
    """Where the most probable class is not the true one.

    Args:
        probabilities: Class probabilities shaped ``(..., classes)``, in
            [0, 1] (apply a softmax to logits first).
        labels: The true classes: integers shaped like ``probabilities``
            without its last axis, or one-hot vectors shaped like it.

    Returns:
        A boolean numpy array shaped like ``probabilities`` without its last
        axis: True where ``argmax(probabilities) != label``.

    Raises:
        ValueError, TypeError: for invalid arguments, in Keras's form.

    Example:

    >>> import numpy as np
    >>> from tfprobr_bridge import wrong_predictions
    >>> wrong_predictions(np.array([[0.9, 0.1], [0.3, 0.7]]), np.array([0, 0]))
    array([False,  True])
    """
    flat_probabilities, flat_labels = _calibration.probabilities_and_labels(probabilities, labels)
    shape = np.shape(probabilities)[:-1]
    return (flat_probabilities.argmax(axis=-1) != flat_labels).reshape(shape)


def _booleans(value):
    """True/False values, or numbers that are all 0 or 1 (as R's 0/1 vectors)."""
    array = np.asarray(value)
    if array.dtype == bool:
        return array
    expected = "`wrong` must be an array of True/False (or 0/1) values."
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{expected} Received: wrong=an array of {array.dtype}")
    other = (array != 0) & (array != 1)
    if np.any(other):
        raise ValueError(f"{expected} Received: wrong with a value of {array[other][0].item()!r}")
    return array.astype(bool)
