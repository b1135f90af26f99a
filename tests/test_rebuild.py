"""``layers.rebuild.FnVariables``: the variables a layer's fns create, and their replay.

Keras 3 builds some models in a stateless scope (a subclassed model, ``fit``
under a strategy), where a new variable has only its initial value behind it.
These tests drive the helper alone, with real Keras variables in and out of
``keras.StatelessScope``, and then the layer that relies on it.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfprobr_bridge import Conv3DReparameterization, DenseReparameterization
from tfprobr_bridge.layers.rebuild import FnVariables


def _variable(name, shape=(2, 3), initializer="ones"):
    return keras.Variable(initializer=initializer, shape=shape, name=name)


def test_outside_a_stateless_scope_a_fn_reads_the_tensorflow_variable_itself():
    fn_variables = FnVariables()
    variable = _variable("kernel_posterior_loc")
    read = fn_variables.record("kernel_posterior_loc", variable)
    # The very tf.Variable: a distribution made on it sees every later assignment.
    assert isinstance(read, tf.Variable) and read is variable.value
    variable.assign(np.full((2, 3), 5.0, "float32"))
    np.testing.assert_array_equal(read.numpy(), np.full((2, 3), 5.0))
    assert not fn_variables.stand_ins and fn_variables.ready()


def test_in_a_stateless_scope_it_hands_out_the_initial_value_and_says_so():
    fn_variables = FnVariables()
    with keras.StatelessScope():
        variable = _variable("kernel_posterior_loc")
        read = fn_variables.record("kernel_posterior_loc", variable)
        assert not isinstance(read, tf.Variable)
        np.testing.assert_array_equal(read.numpy(), np.ones((2, 3)))
        assert fn_variables.stand_ins and not fn_variables.ready()
    assert fn_variables.ready()  # Keras made the variable when the scope ended.
    assert fn_variables.stand_ins  # Until the distributions are made again.


def test_replay_hands_back_the_same_variables_in_order_and_clears_the_flag():
    fn_variables = FnVariables()
    with keras.StatelessScope():
        loc = _variable("loc", (2, 3))
        scale = _variable("scale", (3,))
        fn_variables.record("loc", loc)
        fn_variables.record("scale", scale)
    existing = fn_variables.replay("dense_flipout")
    assert not fn_variables.stand_ins
    assert existing("loc", (2, 3), initializer="zeros") is loc.value
    assert existing("scale", [3], dtype="float32", trainable=True) is scale.value


def test_a_reused_name_keeps_both_variables_in_creation_order():
    fn_variables = FnVariables()
    first, second = _variable("w", (2,)), _variable("w", (4,))
    fn_variables.record("w", first)
    fn_variables.record("w", second)
    assert list(fn_variables.variables) == ["w", "w_1"]
    existing = fn_variables.replay("layer")
    assert existing("w", (2,)) is first.value
    assert existing("w", (4,)) is second.value


@pytest.mark.parametrize("asks_for, expected", [
    (("other", (2, 3)), r"asked for a different variable \('other', shape \(2, 3\)\)"),
    (("loc", (3, 2)), r"asked for a different variable \('loc', shape \(3, 2\)\)"),
])
def test_replay_refuses_a_fn_that_asks_for_other_variables(asks_for, expected):
    fn_variables = FnVariables()
    fn_variables.record("loc", _variable("loc"))
    existing = fn_variables.replay("conv3d_reparameterization")
    with pytest.raises(RuntimeError, match=r"Layer `conv3d_reparameterization`: .*" + expected):
        existing(*asks_for)


def test_replay_refuses_a_fn_that_asks_for_more_variables_than_the_first_time():
    fn_variables = FnVariables()
    fn_variables.record("loc", _variable("loc"))
    existing = fn_variables.replay("layer")
    existing("loc", (2, 3))
    with pytest.raises(RuntimeError, match=r"asked for a different variable \('scale'.*"
                                            r"Fns must create the same variables"):
        existing("scale", (2, 3))


@pytest.mark.parametrize("cls, kwargs, shape", [
    (DenseReparameterization, {"units": 2}, (None, 3)),
    (Conv3DReparameterization, {"filters": 2, "kernel_size": 2}, (None, 3, 3, 3, 1)),
])
def test_a_layer_built_in_a_stateless_scope_reads_its_trained_variables(cls, kwargs, shape):
    """The layer's side: distributions made on stand-ins are made again on the real
    variables at the first call, so an assignment to the posterior reaches the output."""
    layer = cls(**kwargs, kernel_posterior_tensor_fn=lambda d: d.mean())
    with keras.StatelessScope():
        layer.build(shape)
    x = np.ones((1,) + shape[1:], "float32")
    layer(x)
    weights = {weight.name: weight for weight in layer.weights}
    kernel = weights["kernel_posterior_loc"]
    kernel.assign(np.full(kernel.shape, 2.0, "float32"))
    bias = weights["bias_posterior_loc"].numpy()
    fan_in = int(np.prod(kernel.shape[:-1]))
    output = np.asarray(layer(x)).reshape(-1, kwargs.get("units", kwargs.get("filters")))
    expected = np.broadcast_to(2.0 * fan_in + bias, output.shape)
    np.testing.assert_allclose(output, expected, rtol=1e-6)
    assert len(layer.losses) == 1  # One KL, for the kernel; the bias is a point estimate.
