"""The uncertainty toolkit: predict_mc's classifier summaries, calibration, error detection.

Each is checked against an independent computation written here: NumPy from
the draws themselves, plain-Python loops over examples and bins, and an
O(n^2) count of (wrong, right) pairs.
"""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import volumes

from tfprobr_bridge import Conv3DReparameterization
from tfprobr_bridge import DenseReparameterization
from tfprobr_bridge import calibration
from tfprobr_bridge import default_mean_field_normal_fn
from tfprobr_bridge import error_detection_auroc
from tfprobr_bridge import plot_reliability_diagram
from tfprobr_bridge import predict_mc
from tfprobr_bridge import wrong_predictions
from tfprobr_bridge.layers.seeding import monte_carlo_sample

# --- predict_mc(classifier=True) -------------------------------------------------------------

# A segmentation-like network (N, D, H, W, classes) and a plain classifier (N, classes).
SHAPES = {"segmentation": (4, 4, 4, 1), "vector": (6,)}


def _classifier(kind, from_logits, seed=11):
    # A wide posterior, so draws disagree and the mutual information is not tiny.
    wide = default_mean_field_normal_fn(untransformed_scale_initializer=keras.initializers.Constant(-1.0))
    if kind == "segmentation":
        bayesian = Conv3DReparameterization(3, 3, padding="same", seed=seed, kernel_posterior_fn=wide)
    else:
        bayesian = DenseReparameterization(4, seed=seed, kernel_posterior_fn=wide)
    head = [] if from_logits else [keras.layers.Softmax()]
    return keras.Sequential([keras.Input(SHAPES[kind]), bayesian, *head])


def _entropy(p):
    """-sum p log p over the last axis, float64, 0 log 0 = 0."""
    p = np.asarray(p, np.float64)
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


def _softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _summaries(draws):
    """The summaries from stored draws (probabilities), axis 0 the draws."""
    draws = np.asarray(draws, np.float64)
    predictive = _entropy(draws.mean(axis=0))
    expected = _entropy(draws).mean(axis=0)
    return {
        "mean": draws.mean(axis=0),
        "stddev": draws.std(axis=0),
        "predictive_entropy": predictive,
        "expected_entropy": expected,
        "mutual_information": np.maximum(predictive - expected, 0.0),
    }


def _assert_summaries(result, expected):
    for key, value in expected.items():
        np.testing.assert_allclose(result[key], value, rtol=2e-5, atol=2e-6, err_msg=key)


@pytest.mark.parametrize("kind", ["segmentation", "vector"])
@pytest.mark.parametrize("from_logits", [False, True])
def test_classifier_summaries_match_numpy_on_the_stored_draws(rng, kind, from_logits):
    model = _classifier(kind, from_logits)
    x = volumes(rng, (5, *SHAPES[kind]))
    for n_samples, batch_size in [(1, 5), (2, 2), (30, 3)]:
        result = predict_mc(model, x, n_samples=n_samples, batch_size=batch_size,
                            return_samples=True, classifier=True, from_logits=from_logits)
        samples = result["samples"]
        assert samples.shape == (n_samples, *result["mean"].shape)
        # The draws are probabilities (softmaxed from logits) summing to 1.
        np.testing.assert_allclose(samples.sum(axis=-1), 1.0, atol=1e-5)
        _assert_summaries(result, _summaries(samples))
        class_free = result["mean"].shape[:-1]
        for key in ("predictive_entropy", "expected_entropy", "mutual_information"):
            assert result[key].shape == class_free, key
            assert result[key].dtype == np.float32, key
        assert np.all(result["mutual_information"] >= 0)
        if n_samples == 1:  # One draw: no disagreement, up to round-off from the logits.
            np.testing.assert_allclose(result["mutual_information"], 0.0, atol=0 if not from_logits else 1e-6)
        else:
            assert result["mutual_information"].max() > 1e-4


def _replay(model, x, n_samples, batch_size, seed):
    """The draws ``predict_mc(..., seed=seed)`` makes, by plain calls of the model under
    the same keys (every draw of sample i is keyed by (seed, i)), batch by batch."""
    batches = []
    for begin in range(0, len(x), batch_size):
        draws = []
        for index in range(n_samples):
            with monte_carlo_sample(tf.constant(seed, tf.int64), tf.constant(index)):
                draws.append(model(x[begin : begin + batch_size]).numpy())
        batches.append(np.stack(draws))
    return batches


@pytest.mark.parametrize("kind", ["segmentation", "vector"])
@pytest.mark.parametrize("from_logits", [False, True])
def test_classifier_summaries_match_a_loop_of_model_calls_with_the_same_draws(rng, kind, from_logits):
    """No samples kept: the summaries come from the loop's accumulators alone.

    predict_mc keys every draw of sample i by (seed, i), so plain calls of the
    model under the same keys replay its draws, batch by batch in its order.
    """
    model = _classifier(kind, from_logits)
    x = volumes(rng, (7, *SHAPES[kind]))
    for n_samples, batch_size in [(1, 7), (2, 3), (30, 4)]:
        result = predict_mc(model, x, n_samples=n_samples, batch_size=batch_size,
                            classifier=True, from_logits=from_logits, seed=17)
        assert "samples" not in result
        expected = [_summaries(_softmax(draws) if from_logits else draws)
                    for draws in _replay(model, x, n_samples, batch_size, seed=17)]
        expected = {key: np.concatenate([part[key] for part in expected]) for key in expected[0]}
        _assert_summaries(result, expected)


def test_regression_outputs_are_unchanged_by_the_new_arguments(rng):
    model = keras.Sequential([keras.Input((6,)), DenseReparameterization(3, seed=5)])
    x = volumes(rng, (6, 6))
    result = predict_mc(model, x, n_samples=10, batch_size=4, seed=3)
    assert set(result) == {"mean", "stddev"}
    draws = np.concatenate(_replay(model, x, 10, 4, seed=3), axis=1)
    np.testing.assert_allclose(result["mean"], draws.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result["stddev"], draws.std(axis=0), rtol=1e-4, atol=1e-6)


class _AppendClass(keras.layers.Layer):
    """Adds a class with a fixed output value: a probability 0, or a logit -inf."""

    def __init__(self, value, **kwargs):
        super().__init__(**kwargs)
        self.value = value

    def call(self, inputs):
        return keras.ops.concatenate(
            [inputs, keras.ops.full_like(inputs[..., :1], self.value)], axis=-1
        )


@pytest.mark.parametrize("from_logits, value", [(False, 0.0), (True, -np.inf)])
def test_a_class_with_probability_zero_adds_nothing(rng, from_logits, value):
    """0 log 0 is taken as 0: the summaries are those of the classes that remain."""
    head = [] if from_logits else [keras.layers.Softmax()]
    model = keras.Sequential([keras.Input((6,)), DenseReparameterization(2, seed=3), *head,
                              _AppendClass(value)])
    x = volumes(rng, (5, 6))
    result = predict_mc(model, x, n_samples=8, return_samples=True, classifier=True,
                        from_logits=from_logits)
    for key in ("mean", "stddev", "predictive_entropy", "expected_entropy", "mutual_information"):
        assert np.all(np.isfinite(result[key])), key
    np.testing.assert_array_equal(result["mean"][:, 2], 0.0)
    remaining = result["samples"][..., :2]
    np.testing.assert_allclose(remaining.sum(axis=-1), 1.0, atol=1e-6)
    _assert_summaries(result, _summaries(result["samples"]))
    assert result["expected_entropy"].max() <= np.log(2) + 1e-6


def _op_types(concrete_function):
    """Every op in a concrete function's graph, the while loop's body included."""
    graph_def = concrete_function.graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types.update(node.op for node in function.node_def)
    return types


def test_the_classifier_loop_keeps_no_draws_and_is_one_trace_for_any_n_samples(rng):
    """Memory does not grow with n_samples: no TensorArray (TensorList) in the trace,
    and n_samples is a tensor argument, so one trace serves every count."""
    model = _classifier("segmentation", from_logits=True)
    x = volumes(rng, (3, 4, 4, 4, 1))
    for n_samples in (1, 2, 30, 100):
        predict_mc(model, x, n_samples=n_samples, classifier=True, from_logits=True)
    predict_mc(model, x, n_samples=3, classifier=True, from_logits=True, return_samples=True)
    predict_mc(model, x, n_samples=3)
    traced = model._tfprobr_predict_mc_cache.functions  # noqa: SLF001 -- the cache under test
    # Plain, classifier and classifier with samples are traced apart.
    assert len(traced) == 3
    assert all(function.experimental_get_tracing_count() == 1 for function in traced.values())
    by_options = {options: function for (_, options), function in traced.items()}
    streaming = _op_types(by_options[(False, True, True)].get_concrete_function())
    keeping = _op_types(by_options[(True, True, True)].get_concrete_function())
    assert "While" in streaming or "StatelessWhile" in streaming
    assert not {op for op in streaming if "TensorList" in op or "TensorArray" in op}
    assert {op for op in keeping if "TensorList" in op or "TensorArray" in op}  # The check sees them.


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(classifier="yes"), TypeError, r"`classifier` must be True or False\. Received: classifier='yes'"),
        (dict(classifier=True, from_logits=1), TypeError, r"`from_logits` must be True or False"),
        (dict(from_logits=True), ValueError, r"`from_logits=True` needs `classifier=True`"),
    ],
)
def test_bad_classifier_arguments(rng, kwargs, error, message):
    with pytest.raises(error, match=message):
        predict_mc(_classifier("vector", False), volumes(rng, (2, 6)), **kwargs)


@pytest.mark.parametrize("head, shape", [([keras.layers.Dense(1)], r"\(None, 1\)"),
                                         ([keras.layers.Dense(1), keras.layers.Reshape(())],
                                          r"\(None,\)")])
def test_classifier_outputs_need_a_class_axis_of_two_or_more(rng, head, shape):
    model = keras.Sequential([keras.Input((6,)), DenseReparameterization(2), *head])
    with pytest.raises(ValueError, match=r"`classifier=True` needs model outputs whose last "
                                         r"axis holds 2 or more classes.*Received: outputs of "
                                         rf"shape {shape}"):
        predict_mc(model, volumes(rng, (2, 6)), classifier=True)
    # The same model still predicts as a regression.
    assert predict_mc(model, volumes(rng, (2, 6)), n_samples=2)["mean"].shape[0] == 2


# --- calibration ------------------------------------------------------------------------------


def test_calibration_by_hand():
    # n_bins=5: (0, .2] (.2, .4] (.4, .6] (.6, .8] (.8, 1]   (0 joins the first)
    probabilities = np.array([
        [0.5, 0.3, 0.2],     # conf .5  bin 2, predicts 0, label 0: right
        [0.1, 0.6, 0.3],     # conf .6  on an edge: bin 2, predicts 1, label 2: wrong
        [0.05, 0.15, 0.8],   # conf .8  on an edge: bin 3, right
        [0.0, 1.0, 0.0],     # conf 1   bin 4 (the last), right
        [0.9, 0.05, 0.05],   # conf .9  bin 4, predicts 0, label 1: wrong
        [0.7, 0.2, 0.1],     # conf .7  bin 3, right
    ])
    labels = np.array([0, 2, 2, 1, 1, 0])
    # bin 2: conf (.5 + .6) / 2 = .55, acc 1/2 -> gap .05
    # bin 3: conf (.8 + .7) / 2 = .75, acc 2/2 -> gap .25
    # bin 4: conf (1 + .9) / 2 = .95, acc 1/2 -> gap .45
    # ECE = (2 * .05 + 2 * .25 + 2 * .45) / 6 = .25; MCE = .45
    result = calibration(probabilities, labels, n_bins=5)
    assert result["n_bins"] == 5
    bins = result["bins"]
    np.testing.assert_array_equal(bins["count"], [0, 0, 2, 2, 2])
    np.testing.assert_allclose(bins["lower"], [0, 0.2, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(bins["upper"], [0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(bins["confidence"], [np.nan, np.nan, 0.55, 0.75, 0.95])
    np.testing.assert_allclose(bins["accuracy"], [np.nan, np.nan, 0.5, 1.0, 0.5])
    assert result["ece"] == pytest.approx(0.25, abs=1e-12)
    assert result["mce"] == pytest.approx(0.45, abs=1e-12)
    # One-hot labels say the same.
    one_hot = np.eye(3)[labels]
    assert calibration(probabilities, one_hot, n_bins=5)["ece"] == pytest.approx(0.25, abs=1e-12)


def test_calibration_confidence_zero_and_a_tie_on_an_edge():
    # Row 1: conf 0 -> the first bin (closed at 0); predicts class 0, label 0: right.
    # Row 2: conf .5, on the edge of 2 bins -> the first (0, .5]; a tie predicts
    #        the first class, 0, label 1: wrong.
    # First bin: conf (0 + .5) / 2 = .25, acc .5 -> ECE = MCE = .25; second bin empty.
    result = calibration(np.array([[0.0, 0.0], [0.5, 0.5]]), np.array([0, 1]), n_bins=2)
    np.testing.assert_array_equal(result["bins"]["count"], [2, 0])
    np.testing.assert_allclose(result["bins"]["confidence"], [0.25, np.nan])
    np.testing.assert_allclose(result["bins"]["accuracy"], [0.5, np.nan])
    assert result["ece"] == result["mce"] == pytest.approx(0.25)


def test_calibration_of_a_perfect_and_an_overconfident_model():
    # Always right at confidence 1: perfectly calibrated.
    perfect = calibration(np.eye(4), np.arange(4), n_bins=10)
    assert perfect["ece"] == perfect["mce"] == 0.0
    # Always 0.9 sure and right 3 times of 4: ECE = |.75 - .9| = .15.
    sure = np.tile([0.9, 0.1], (4, 1))
    assert calibration(sure, [0, 0, 0, 1])["ece"] == pytest.approx(0.15)


def _reference_calibration(probabilities, labels, n_bins):
    """Plain loops: for each prediction, its bin by comparing with every edge."""
    counts, confidence_sums, right = [0] * n_bins, [0.0] * n_bins, [0] * n_bins
    for row, label in zip(probabilities.tolist(), labels.tolist()):
        confidence = max(row)
        prediction = row.index(confidence)
        for b in range(n_bins):
            lower, upper = b / n_bins, (b + 1) / n_bins
            if lower < confidence <= upper or (b == 0 and confidence == 0):
                counts[b] += 1
                confidence_sums[b] += confidence
                right[b] += prediction == label
                break
    total = sum(counts)
    gaps = [abs(right[b] / counts[b] - confidence_sums[b] / counts[b])
            for b in range(n_bins) if counts[b]]
    weights = [counts[b] for b in range(n_bins) if counts[b]]
    return sum(g * w for g, w in zip(gaps, weights)) / total, max(gaps), counts


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_bins", [1, 3, 10, 15, 20])
def test_calibration_matches_a_reference_in_plain_loops(rng, n_bins, dtype):
    shape = (3, 4, 5, 6)  # Small "volumes" of 3-class predictions per voxel, flattened.
    probabilities = rng.dirichlet([0.5, 0.5, 0.5], size=shape)
    # A quarter rounded to 1/20ths: confidences on bin edges (exactly, in
    # float64), and ties.
    coarse = rng.random(shape) < 0.25
    probabilities[coarse] = np.round(probabilities[coarse] * 20) / 20
    probabilities = probabilities.astype(dtype)
    labels = rng.integers(0, 3, size=shape)
    result = calibration(probabilities, labels, n_bins=n_bins)
    ece, mce, counts = _reference_calibration(probabilities.reshape(-1, 3), labels.reshape(-1), n_bins)
    np.testing.assert_array_equal(result["bins"]["count"], counts)
    assert result["ece"] == pytest.approx(ece, rel=1e-9, abs=1e-12)
    assert result["mce"] == pytest.approx(mce, rel=1e-9, abs=1e-12)
    one_hot = np.eye(3, dtype=dtype)[labels]
    assert calibration(probabilities, one_hot, n_bins=n_bins)["ece"] == pytest.approx(ece, rel=1e-9)
    # R hands labels over as doubles.
    assert calibration(probabilities, labels.astype(float), n_bins)["ece"] == pytest.approx(ece, rel=1e-9)


@pytest.mark.parametrize(
    "probabilities, labels, kwargs, error, message",
    [
        ([[0.5, 0.5]], [0], dict(n_bins=0), ValueError, r"`n_bins` must be a positive integer\. Received: n_bins=0"),
        ([[0.5, 0.5]], [0], dict(n_bins=2.5), ValueError, r"`n_bins` must be a positive integer"),
        ([0.5, 0.5], [0], {}, ValueError, r"`probabilities` must have a last axis of 2 or more classes.*Received: probabilities.shape=\(2,\)"),
        ([[1.0], [0.0]], [0, 0], {}, ValueError, r"`probabilities` must have a last axis of 2 or more"),
        (np.zeros((0, 3)), np.zeros(0), {}, ValueError, r"`probabilities` must hold at least one prediction"),
        ([[0.5, np.nan]], [0], {}, ValueError, r"`probabilities` must be finite and in \[0, 1\].*Received: probabilities with a value of nan"),
        ([[1.5, -0.5]], [0], {}, ValueError, r"`probabilities` must be finite and in \[0, 1\]"),
        ([["a", "b"]], [0], {}, TypeError, r"`probabilities` must be an array of real numbers"),
        ([[0.5, 0.5]], [2], {}, ValueError, r"`labels` must be class indices from 0 to 1\. Received: labels with a value of 2"),
        ([[0.5, 0.5]], [-1], {}, ValueError, r"`labels` must be class indices from 0 to 1"),
        ([[0.5, 0.5]], [0.5], {}, ValueError, r"`labels` must be class indices"),
        ([[0.5, 0.5]], [True], {}, TypeError, r"`labels` must be an array of real numbers"),
        ([[0.5, 0.5]], [0, 1], {}, ValueError, r"`labels` must be shaped like `probabilities` without its last axis.*Received: labels.shape=\(2,\)"),
        ([[0.5, 0.5]], [[1, 1]], {}, ValueError, r"`labels` shaped like `probabilities` must be one-hot"),
    ],
)
def test_calibration_rejects_bad_input(probabilities, labels, kwargs, error, message):
    with pytest.raises(error, match=message):
        calibration(np.asarray(probabilities), np.asarray(labels), **kwargs)


# --- reliability diagram ----------------------------------------------------------------------


def _agg():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def test_reliability_diagram_draws_a_bar_per_filled_bin_and_the_ece():
    plt = _agg()
    probabilities = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.05, 0.15, 0.8],
                              [0.0, 1.0, 0.0], [0.9, 0.05, 0.05], [0.7, 0.2, 0.1]])
    labels = np.array([0, 2, 2, 1, 1, 0])
    ax = plot_reliability_diagram(probabilities, labels, n_bins=5, label="Bayesian")
    try:
        assert isinstance(ax, plt.Axes)
        (bars,) = ax.containers
        assert len(bars) == 3  # Bins 2, 3 and 4 hold predictions (see test_calibration_by_hand).
        np.testing.assert_allclose([bar.get_height() for bar in bars], [0.5, 1.0, 0.5])
        np.testing.assert_allclose([bar.get_x() for bar in bars], [0.4, 0.6, 0.8])
        legend = [text.get_text() for text in ax.get_legend().get_texts()]
        assert "Bayesian (ECE = 0.250)" in legend
        assert "perfect calibration" in legend
        # A second model on the same Axes, from calibration()'s dict: one diagonal still.
        result = calibration(probabilities, labels, n_bins=15)
        assert plot_reliability_diagram(result, ax=ax, label="deterministic") is ax
        assert len(ax.containers) == 2
        assert len(ax.containers[1]) == int(np.count_nonzero(result["bins"]["count"]))
        assert len(ax.get_lines()) == 1
    finally:
        plt.close(ax.figure)


def test_reliability_diagram_arguments(monkeypatch):
    probabilities, labels = np.array([[0.7, 0.3]]), np.array([0])
    with pytest.raises(ValueError, match=r"`labels` must be None when `probabilities` is the dict"):
        plot_reliability_diagram(calibration(probabilities, labels), labels)
    with pytest.raises(ValueError, match=r"`labels` must be given with `probabilities`"):
        plot_reliability_diagram(probabilities)
    with pytest.raises(ValueError, match=r"`probabilities` given as a dict must be the one calibration\(\) returned"):
        plot_reliability_diagram({"ece": 0.1})
    with pytest.raises(TypeError, match=r"`label` must be a string or None\. Received: label=3"):
        plot_reliability_diagram(probabilities, labels, label=3)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"needs matplotlib: install tfprobr_bridge\[demo\]"):
        plot_reliability_diagram(probabilities, labels)


# --- error detection --------------------------------------------------------------------------


def _reference_auroc(scores, wrong):
    """Every (wrong, right) pair: 1 when the wrong one scores higher, 1/2 on a tie."""
    scores, wrong = np.ravel(scores).tolist(), np.ravel(wrong).tolist()
    wins = pairs = 0
    for score_wrong, is_wrong in zip(scores, wrong):
        if not is_wrong:
            continue
        for score_right, other_wrong in zip(scores, wrong):
            if other_wrong:
                continue
            pairs += 1
            wins += 1.0 if score_wrong > score_right else 0.5 if score_wrong == score_right else 0.0
    return wins / pairs


def _sklearn_auroc(scores, wrong):
    """scikit-learn's value when it happens to be installed; it is no dependency."""
    try:
        from sklearn.metrics import roc_auc_score
    except ImportError:
        return None
    return roc_auc_score(np.ravel(wrong), np.ravel(scores))


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("size", [2, 7, 60, 301])
def test_auroc_matches_pairwise_counting(rng, ties, size):
    for _ in range(3):
        wrong = rng.random(size) < 0.3
        wrong[:2] = [True, False]  # Both kinds present.
        # An informative score: higher, on average, for the wrong ones.
        scores = rng.standard_normal(size) + wrong
        if ties:
            scores = np.round(scores * 2) / 2  # Few distinct values: many ties, across kinds.
        expected = _reference_auroc(scores, wrong)
        assert error_detection_auroc(scores, wrong) == pytest.approx(expected, abs=1e-12)
        reference = _sklearn_auroc(scores, wrong)
        if reference is not None:
            assert error_detection_auroc(scores, wrong) == pytest.approx(reference, abs=1e-12)


def test_auroc_of_shaped_inputs_and_extreme_cases(rng):
    # A segmentation's map, flattened with its error map.
    scores = rng.random((2, 3, 4, 5)).astype(np.float32)
    wrong = rng.random((2, 3, 4, 5)) < 0.5
    assert error_detection_auroc(scores, wrong) == pytest.approx(_reference_auroc(scores, wrong), abs=1e-12)
    # 0/1 numbers (R's) count as booleans.
    assert error_detection_auroc(scores, wrong.astype(float)) == error_detection_auroc(scores, wrong)
    assert error_detection_auroc([0.1, 0.2, 0.9], [False, False, True]) == 1.0
    assert error_detection_auroc([0.9, 0.2, 0.1], [True, False, False]) == 1.0
    assert error_detection_auroc([0.1, 0.2, 0.9], [True, False, False]) == 0.0
    assert error_detection_auroc([3, 3, 3, 3], [True, False, True, False]) == 0.5


@pytest.mark.parametrize(
    "uncertainty, wrong, error, message",
    [
        ([0.1, 0.2], [True, True], ValueError, r"`wrong` must hold both wrong \(True\) and right \(False\) predictions.*Received: wrong with 2 True of 2"),
        ([0.1, 0.2], [False, False], ValueError, r"Received: wrong with 0 True of 2"),
        ([0.1, 0.2], [True, False, True], ValueError, r"`wrong` must have the shape of `uncertainty`\. Received: wrong.shape=\(3,\), uncertainty.shape=\(2,\)"),
        ([0.1, np.nan], [True, False], ValueError, r"`uncertainty` must be finite"),
        (["a", "b"], [True, False], TypeError, r"`uncertainty` must be an array of real numbers"),
        ([0.1, 0.2], ["yes", "no"], TypeError, r"`wrong` must be an array of True/False \(or 0/1\) values"),
        ([0.1, 0.2], [2, 0], ValueError, r"`wrong` must be an array of True/False \(or 0/1\) values\. Received: wrong with a value of 2"),
    ],
)
def test_auroc_rejects_bad_input(uncertainty, wrong, error, message):
    with pytest.raises(error, match=message):
        error_detection_auroc(np.asarray(uncertainty), np.asarray(wrong))


def test_wrong_predictions_and_the_whole_chain(rng):
    probabilities = np.array([[[0.9, 0.1], [0.4, 0.6]], [[0.5, 0.5], [0.2, 0.8]]])
    labels = np.array([[0, 0], [1, 1]])
    np.testing.assert_array_equal(wrong_predictions(probabilities, labels),
                                  [[False, True], [True, False]])
    np.testing.assert_array_equal(wrong_predictions(probabilities, np.eye(2)[labels]),
                                  [[False, True], [True, False]])
    with pytest.raises(ValueError, match=r"`labels` must be class indices from 0 to 1"):
        wrong_predictions(probabilities, labels + 1)
    # predict_mc's mutual information scores the errors of a small segmenter.
    model = _classifier("segmentation", from_logits=True)
    x = volumes(rng, (4, 4, 4, 4, 1))
    result = predict_mc(model, x, n_samples=10, classifier=True, from_logits=True)
    truth = tf.argmax(model(x), axis=-1).numpy()  # One more draw's answer as the "truth".
    wrong = wrong_predictions(result["mean"], truth)
    auroc = error_detection_auroc(result["mutual_information"], wrong)
    assert auroc == pytest.approx(_reference_auroc(result["mutual_information"], wrong), abs=1e-12)
