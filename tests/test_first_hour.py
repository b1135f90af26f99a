"""What new users hit in their first hour, written the way they wrote it.

Each test is a user's script: a Python user porting TFP code or writing their
own digits, regression and warm-start scripts. Reproducibility and saving
are checked in fresh processes, as a user's reruns are.
"""

import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfprobr_bridge
from tfprobr_bridge import (
    Conv1DFlipout,
    Conv3DReparameterization,
    DenseFlipout,
    DenseLocalReparameterization,
    DenseReparameterization,
    layer_conv_3d_reparameterization,
    layer_dense_flipout,
    predict_mc,
    to_bayesian,
)

tfd = tfp.distributions
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(script, *, env=None, timeout=600):
    """Run ``script`` in a fresh Python; returns the completed process."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
        timeout=timeout, env=environment, cwd=ROOT,
    )


# --- 1. integer inputs to a direct layer call ------------------------------------------------

@pytest.mark.parametrize("cls, kwargs, x", [
    (DenseFlipout, {"units": 3}, np.array([[1, 2]], "int32")),
    (DenseReparameterization, {"units": 3}, np.array([[1, 2]], "int64")),
    (DenseLocalReparameterization, {"units": 3}, np.array([[1, 2]], "int32")),
    (Conv1DFlipout, {"filters": 2, "kernel_size": 2}, np.ones((1, 4, 1), "int32")),
    (Conv3DReparameterization, {"filters": 2, "kernel_size": 2}, np.ones((1, 3, 3, 3, 1), "uint8")),
    (DenseFlipout, {"units": 3}, np.array([[True, False]])),
])
def test_integer_inputs_give_the_float_outputs_of_their_float_values(cls, kwargs, x):
    """`DenseFlipout(3)(np.array([[1, 2]], "int32"))` returned int32 zeros."""
    as_ints, as_floats = cls(**kwargs, seed=4), cls(**kwargs, seed=4)
    as_ints.build(x.shape)
    as_floats.build(x.shape)
    for source, target in zip(as_ints.weights, as_floats.weights):
        target.assign(source)
    out = as_ints(x)
    assert out.dtype == tf.float32  # as keras.layers.Dense gives
    np.testing.assert_allclose(out, as_floats(x.astype("float32")), rtol=1e-6)
    assert np.any(out.numpy() != 0)


def test_text_inputs_are_refused_naming_the_dtype():
    with pytest.raises(TypeError, match=r"takes real numbers, but was called on a tensor of dtype "
                       r"string\. Received: inputs\.dtype=string"):
        DenseFlipout(3)(np.array([["a", "b"]]))


# --- 2. predict_mc(classifier=True) on outputs that are not probabilities --------------------

def _logits_model():
    return keras.Sequential([keras.Input((4,)), DenseFlipout(8, activation="relu"),
                             DenseFlipout(3)])


def test_classifier_on_logits_without_from_logits_says_to_pass_it(rng):
    x = rng.normal(size=(16, 4)).astype("float32") * 10
    with pytest.raises(ValueError, match=r"`classifier=True` needs class probabilities.*range "
                       r"from -?[0-9.e+-]+ to [0-9.e+-]+.*pass `from_logits=True`"):
        predict_mc(_logits_model(), x, n_samples=5, classifier=True, verbose=0)


def test_classifier_on_a_regression_model_is_refused(rng):
    model = keras.Sequential([keras.Input((4,)), DenseReparameterization(2)])
    x = rng.normal(size=(8, 4)).astype("float32") * 5
    with pytest.raises(ValueError, match=r"if it is not a classifier, leave `classifier` off"):
        predict_mc(model, x, n_samples=4, classifier=True, verbose=0)


def test_probabilities_pass_and_the_summaries_are_finite_and_ordered(rng):
    model = keras.Sequential([keras.Input((4,)), DenseFlipout(3), keras.layers.Softmax()])
    x = rng.normal(size=(16, 4)).astype("float32") * 10
    result = predict_mc(model, x, n_samples=10, classifier=True, verbose=0)
    assert np.all(np.isfinite(result["mutual_information"]))
    assert np.all(result["mutual_information"] >= 0)
    np.testing.assert_allclose(result["mean"].sum(-1), 1, atol=1e-5)
    logits = predict_mc(_logits_model(), x, n_samples=10, classifier=True, from_logits=True,
                        verbose=0)
    assert np.all(logits["predictive_entropy"] >= logits["mutual_information"])


# --- 3. to_bayesian's KL -------------------------------------------------------------------------

def test_to_bayesian_requires_num_examples():
    deterministic = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    with pytest.raises(TypeError, match=r"`num_examples` is required: the number of training "
                       r"examples per epoch.*Received: num_examples=None"):
        to_bayesian(deterministic, estimator="flipout", delta=0.1)


@pytest.mark.slow
def test_a_warm_start_on_digits_keeps_the_network_it_starts_from():
    """scikit-learn's digits, as the user ran it: five epochs of fine-tuning kept 0.98."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    train, test = slice(0, 1400), slice(1400, None)
    keras.utils.set_random_seed(0)
    deterministic = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                                      keras.layers.Dense(10, activation="softmax")])
    deterministic.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    deterministic.fit(x[train], y[train], epochs=30, batch_size=32, verbose=0)
    start = deterministic.evaluate(x[test], y[test], verbose=0)[1]
    warm = to_bayesian(deterministic, estimator="flipout", delta=0.1, num_examples=1400)
    warm.compile("adam", "sparse_categorical_crossentropy")
    warm.fit(x[train], y[train], epochs=5, batch_size=32, verbose=0)
    mean = predict_mc(warm, x[test], n_samples=20, verbose=0, seed=1)["mean"]
    accuracy = float(np.mean(mean.argmax(-1) == y[test]))
    assert start > 0.93
    assert accuracy > start - 0.03, (start, accuracy)


# --- 4. what a fn returns is checked, naming the fn -------------------------------------------

def _wrong_shape_posterior(dtype, shape, name, trainable, add_variable_fn):
    return tfd.Independent(tfd.Normal(tf.zeros((2, 5)), 1.0), 2)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"kernel_posterior_fn": _wrong_shape_posterior}, ValueError,
     r"`kernel_posterior_fn` must return a distribution over the kernel, of shape \(2, 3\), but "
     r"returned one of shape \(2, 5\)"),
    ({"kernel_posterior_fn": lambda *args: 3.0}, TypeError,
     r"`kernel_posterior_fn` must return a TensorFlow Probability distribution"),
    ({"kernel_divergence_fn": lambda q, p, _: "kl"}, TypeError,
     r"`kernel_divergence_fn` must return a number.*returned 'kl' of type str"),
    ({"kernel_divergence_fn": lambda q, p, _: tf.ones(3)}, ValueError,
     r"`kernel_divergence_fn` must return one number \(a scalar\).*shape \(3,\)"),
    ({"kernel_posterior_tensor_fn": lambda d: d.sample(2)}, ValueError,
     r"`kernel_posterior_tensor_fn` must return the kernel, a tensor of shape \(2, 3\), but "
     r"returned one of shape \(2, 2, 3\)"),
    ({"bias_posterior_tensor_fn": lambda d: "b"}, TypeError,
     r"`bias_posterior_tensor_fn` must return a tensor of real numbers, the bias"),
])
@pytest.mark.parametrize("how", ["input", "no_input_fit", "functional"])
def test_a_fn_returning_the_wrong_thing_is_named(kwargs, error, message, how):
    x, y = np.ones((4, 2), "float32"), np.zeros((4, 3), "float32")
    with pytest.raises(error, match=message) as caught:
        if how == "input":  # the model is built here: the fn is checked now
            keras.Sequential([keras.Input((2,)), DenseReparameterization(3, **kwargs)])
        elif how == "functional":
            inputs = keras.Input((2,))
            keras.Model(inputs, DenseReparameterization(3, **kwargs)(inputs))
        else:  # built by its first fit, the most ordinary pattern
            model = keras.Sequential([DenseReparameterization(3, **kwargs)])
            model.compile("adam", "mse")
            model.fit(x, y, epochs=1, verbose=0)
    assert "TensorFlow rejected an input" not in str(caught.value)


# --- 5. predict_mc repeats across fresh processes ------------------------------------------------

_REPEAT_SCRIPT = """
    import hashlib, keras, numpy as np
    from tfprobr_bridge import LayerStack, layer_conv_3d_reparameterization, DenseFlipout, predict_mc
    keras.utils.set_random_seed(1)
    x = np.random.rand(16, 8, 8, 8, 1).astype("float32")
    y = np.random.rand(16, 1).astype("float32")
    model = (LayerStack(input_shape=(8, 8, 8, 1))
             .pipe(layer_conv_3d_reparameterization, filters=4, kernel_size=3, activation="relu")
             | keras.layers.GlobalAveragePooling3D() | DenseFlipout(1)).to_model()
    model.compile("adam", "mse")
    history = model.fit(x, y, epochs=2, verbose=0)
    mc = predict_mc(model, x, n_samples=30, verbose=0)
    print("RESULT", history.history["loss"][-1],
          hashlib.md5(model.predict(x, verbose=0).tobytes()).hexdigest(),
          hashlib.md5(mc["mean"].tobytes()).hexdigest(), hashlib.md5(mc["stddev"].tobytes()).hexdigest())
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_predict_mc_gives_the_same_numbers_in_ten_fresh_processes():
    results = []
    for _ in range(10):
        process = _run(_REPEAT_SCRIPT)
        assert process.returncode == 0, process.stderr[-2000:]
        results.append(next(line for line in process.stdout.splitlines()
                            if line.startswith("RESULT")))
    assert len(set(results)) == 1, results


def test_a_seed_fixes_predict_mc_and_different_seeds_differ(rng):
    model = keras.Sequential([keras.Input((4,)), DenseFlipout(3)])
    x = rng.normal(size=(10, 4)).astype("float32")
    first = predict_mc(model, x, n_samples=7, seed=11, verbose=0)
    again = predict_mc(model, x, n_samples=7, seed=11, verbose=0)
    other = predict_mc(model, x, n_samples=7, seed=12, verbose=0)
    np.testing.assert_array_equal(first["mean"], again["mean"])
    assert not np.array_equal(first["mean"], other["mean"])
    # The batch size does not change what a sample draws for the reparameterization
    # estimator's kernel: every batch of sample i sees the same kernel.
    dense = keras.Sequential([keras.Input((4,)), DenseReparameterization(3)])
    whole = predict_mc(dense, x, n_samples=7, seed=3, batch_size=10, verbose=0)
    parts = predict_mc(dense, x, n_samples=7, seed=3, batch_size=3, verbose=0)
    np.testing.assert_allclose(whole["mean"], parts["mean"], rtol=1e-5)


@pytest.mark.subprocess
def test_a_model_drawing_from_tensorflows_own_state_still_repeats():
    """A fn of the user's that draws with TFP's stateful sampler: samples then run in order."""
    script = """
        import keras, numpy as np, tensorflow_probability as tfp, hashlib
        from tfprobr_bridge import DenseReparameterization, predict_mc
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((4,)),
                                  DenseReparameterization(3, kernel_posterior_tensor_fn=lambda d: d.sample())])
        mc = predict_mc(model, np.ones((5, 4), "float32"), n_samples=20, verbose=0)
        print("RESULT", hashlib.md5(mc["mean"].tobytes()).hexdigest())
    """
    outputs = {_run(script).stdout.strip().splitlines()[-1] for _ in range(3)}
    assert len(outputs) == 1 and next(iter(outputs)).startswith("RESULT"), outputs


# --- 6. a failed save leaves no file -------------------------------------------------------------

@pytest.mark.subprocess
def test_a_failed_save_leaves_no_file_and_keeps_the_one_before(tmp_path):
    script = f"""
        import os, threading, keras
        import tensorflow_probability as tfp
        from tfprobr_bridge import DenseFlipout, UnsavableFnError
        lock = threading.Lock()  # cannot be pickled: nor can the fn holding it
        def divergence(q, p, sample, lock=lock):
            return tfp.distributions.kl_divergence(q, p)
        good = keras.Sequential([keras.Input((2,)), DenseFlipout(3)])
        bad = keras.Sequential([keras.Input((2,)), DenseFlipout(3, kernel_divergence_fn=divergence)])
        good.save({str(tmp_path / "model.keras")!r})
        before = os.path.getsize({str(tmp_path / "model.keras")!r})
        for path in ({str(tmp_path / "model.keras")!r}, {str(tmp_path / "new.keras")!r}):
            for save in (bad.save, lambda p: keras.saving.save_model(bad, p),
                         lambda p: keras.models.save_model(bad, p)):
                try:
                    save(path)
                except UnsavableFnError as error:
                    assert isinstance(error, TypeError)
                    print("REFUSED", str(error)[:60])
        print("SIZE", before, os.path.getsize({str(tmp_path / "model.keras")!r}))
        print("NEW", os.path.exists({str(tmp_path / "new.keras")!r}))
        keras.models.load_model({str(tmp_path / "model.keras")!r})
        print("LOADED")
    """
    process = _run(script)
    assert process.returncode == 0, process.stderr[-3000:]
    lines = process.stdout.splitlines()
    assert sum(line.startswith("REFUSED `kernel_divergence_fn` cannot be saved") for line in lines) == 6
    size = next(line for line in lines if line.startswith("SIZE")).split()
    assert size[1] == size[2] and int(size[1]) > 0
    assert "NEW False" in lines and "LOADED" in lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


# --- 8. a misspelt argument gets "did you mean" -------------------------------------------------

def test_a_misspelt_argument_gets_did_you_mean():
    with pytest.raises(TypeError, match=r"^Unknown argument `kernal_size`: did you mean "
                       r"`kernel_size`\? Received: kernal_size=3$"):
        layer_conv_3d_reparameterization(filters=2, kernal_size=3)
    with pytest.raises(TypeError, match=r"Unknown argument `activaton`: did you mean `activation`\?"):
        DenseFlipout(3, activaton="relu")
    with pytest.raises(TypeError, match=r"Unknown argument `unit`: did you mean `units`\?"):
        layer_dense_flipout(unit=3)
    with pytest.raises(TypeError, match=r"Unknown argument `colour`: the arguments are `units`"):
        layer_dense_flipout(units=3, colour="red")


# --- 10. progress: a bar where a person watches, one line in a log -----------------------------

@pytest.mark.subprocess
def test_predict_mc_writes_one_plain_line_into_a_log():
    script = """
        import keras, numpy as np
        from tfprobr_bridge import DenseFlipout, predict_mc
        model = keras.Sequential([keras.Input((4,)), DenseFlipout(3)])
        predict_mc(model, np.ones((100, 4), "float32"), n_samples=5, batch_size=10)
    """
    process = _run(script)  # stdout is a pipe, as in a log
    assert process.returncode == 0, process.stderr[-2000:]
    assert process.stdout.splitlines() == [
        next(line for line in process.stdout.splitlines() if line.startswith("predict_mc: "))
    ]
    assert "10 batches, 100 examples, 5 samples each in" in process.stdout
    assert "\r" not in process.stdout and "\x1b" not in process.stdout


class _Terminal:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass

    def isatty(self):
        return True


def test_a_terminal_gets_a_bar_with_the_time_left():
    terminal = _Terminal()
    progress = tfprobr_bridge.uncertainty.progress.Progress("predict_mc", 4, 1, stream=terminal)
    for _ in range(4):
        progress.update()
    progress.finish()
    assert terminal.text.count("\r") == 4
    assert "predict_mc 1/4 [" in terminal.text and "left" in terminal.text
    assert "predict_mc 4/4 [" in terminal.text and terminal.text.endswith("\n")


@pytest.mark.parametrize("verbose", ["often", 3, -1, 1.5, [1]])
def test_a_bad_verbose_is_refused(verbose, rng):
    model = keras.Sequential([keras.Input((4,)), DenseFlipout(3)])
    with pytest.raises((TypeError, ValueError), match=r'`verbose` must be "auto", 0 \(silent\), 1 '
                       r"\(a progress bar\) or 2 \(one line when done\)\. Received: verbose="):
        predict_mc(model, np.ones((2, 4), "float32"), verbose=verbose)


# --- 11. a tf.data.Dataset, as for model.predict ------------------------------------------------

def test_predict_mc_takes_a_dataset_and_ignores_its_labels(rng):
    model = keras.Sequential([keras.Input((4,)), DenseFlipout(3), keras.layers.Softmax()])
    x = rng.normal(size=(10, 4)).astype("float32")
    y = np.arange(10) % 3
    arrays = predict_mc(model, x, n_samples=6, batch_size=4, seed=2, classifier=True, verbose=0)
    for dataset in (tf.data.Dataset.from_tensor_slices((x, y)).batch(4),
                    tf.data.Dataset.from_tensor_slices(x).batch(4),
                    tf.data.Dataset.from_tensor_slices((x, y)).batch(4).filter(lambda a, b: True)):
        result = predict_mc(model, dataset, n_samples=6, seed=2, classifier=True, verbose=0)
        for key in arrays:
            np.testing.assert_allclose(result[key], arrays[key], rtol=1e-6, err_msg=key)
    with pytest.raises(ValueError, match=r"`batch_size` cannot be given with a tf\.data\.Dataset"):
        predict_mc(model, tf.data.Dataset.from_tensor_slices(x).batch(4), batch_size=4)
    with pytest.raises(ValueError, match=r"`x` must hold at least one example"):
        predict_mc(model, tf.data.Dataset.from_tensor_slices(x).batch(4).take(0), verbose=0)


# --- 12. loading before the import, and legacy Keras ---------------------------------------------

@pytest.mark.subprocess
def test_loading_needs_the_import_first_as_the_readme_says(tmp_path):
    path = tmp_path / "model.keras"
    keras.Sequential([keras.Input((2,)), DenseFlipout(3)]).save(path)
    script = f"""
        import keras
        try:
            keras.models.load_model({str(path)!r})
        except TypeError as error:
            print("BEFORE", "Could not locate class" in str(error))
        import tfprobr_bridge
        print("AFTER", type(keras.models.load_model({str(path)!r}).layers[0]).__name__)
    """
    process = _run(script)
    assert process.returncode == 0, process.stderr[-2000:]
    assert "BEFORE True" in process.stdout and "AFTER DenseFlipout" in process.stdout
    readme = (ROOT / "README.md").read_text()
    assert "Could not locate class" in readme and "TF_USE_LEGACY_KERAS" in readme


@pytest.mark.subprocess
def test_legacy_keras_mode_warns_on_import():
    process = _run("import tfprobr_bridge", env={"TF_USE_LEGACY_KERAS": "1"})
    assert process.returncode == 0, process.stderr[-2000:]
    assert "TF_USE_LEGACY_KERAS is set, so tf.keras is tf_keras" in process.stderr
    quiet = _run("import tfprobr_bridge", env={"TF_USE_LEGACY_KERAS": "0"})
    assert "TF_USE_LEGACY_KERAS" not in quiet.stderr
