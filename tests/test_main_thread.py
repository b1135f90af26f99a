"""R fns off the main thread: a clear error naming the argument, never an abort.

The R package wraps every R function it passes as a fn with
``_main_thread.main_thread_fn``; a plain Python callable stands in for the R
function here (the R side is tested in test-usage-patterns.R).
"""

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfprobr_bridge
from tfprobr_bridge import Conv3DReparameterization
from tfprobr_bridge.r_bridge.main_thread import main_thread_fn


def test_on_the_main_thread_the_fn_runs_as_given(rng):
    calls = []

    def tensor_fn(distribution):
        calls.append(threading.current_thread().name)
        return tfprobr_bridge.sample(distribution)

    layer = Conv3DReparameterization(
        2, 3, kernel_posterior_tensor_fn=main_thread_fn(tensor_fn, "kernel_posterior_tensor_fn")
    )
    layer(rng.standard_normal((1, 4, 4, 4, 1)).astype("float32"))
    assert calls == [threading.main_thread().name]
    assert main_thread_fn(None, "bias_prior_fn") is None
    wrapped = main_thread_fn(tensor_fn, "kernel_posterior_tensor_fn")
    assert main_thread_fn(wrapped, "kernel_posterior_tensor_fn") is wrapped


def test_off_the_main_thread_the_error_names_the_argument():
    wrapped = main_thread_fn(lambda d: d, "kernel_divergence_fn")
    errors = []

    def other_thread():
        try:
            wrapped(1)
        except RuntimeError as error:
            errors.append(str(error))

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert "`kernel_divergence_fn` is an R function, and R can only run on the main thread" in (
        errors[0]
    )
    assert "scaled_kl_divergence_fn(n)" in errors[0]


def test_under_mirrored_strategy_fit_fails_with_that_error(rng):
    """MirroredStrategy traces each replica on a thread of its own, even with one device."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = keras.Sequential([
            Conv3DReparameterization(
                2, 3, kernel_posterior_tensor_fn=main_thread_fn(
                    tfprobr_bridge.sample, "kernel_posterior_tensor_fn")),
            keras.layers.GlobalAveragePooling3D(),
            keras.layers.Dense(1),
        ])
        model.compile(optimizer="adam", loss="mse")
    x = rng.standard_normal((4, 6, 6, 6, 1)).astype("float32")
    with pytest.raises(RuntimeError, match="`kernel_posterior_tensor_fn` is an R function"):
        model.fit(x, np.zeros((4, 1), "float32"), verbose=0)


def test_a_model_holding_an_r_fn_refuses_to_save_and_says_what_to_use(tmp_path, rng):
    class Unpicklable:
        def __call__(self, distribution):
            return tfprobr_bridge.sample(distribution)

        def __reduce__(self):
            raise TypeError("an R function cannot be pickled")

    model = keras.Sequential([
        keras.Input((4, 4, 4, 1)),
        Conv3DReparameterization(2, 3, kernel_posterior_tensor_fn=main_thread_fn(
            Unpicklable(), "kernel_posterior_tensor_fn")),
    ])
    with pytest.raises(TypeError, match="`kernel_posterior_tensor_fn` cannot be saved: "
                       "<R function given as kernel_posterior_tensor_fn>. An R function "
                       "cannot be saved with a model"):
        model.save(tmp_path / "model.keras")
