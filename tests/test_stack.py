"""LayerStack: immutable, pipe-like composition of Keras 3 layers."""

import keras
import numpy as np
import pytest
from helpers import volumes

from tfprobr_bridge import Conv3DReparameterization
from tfprobr_bridge import LayerStack
from tfprobr_bridge import layer_conv_3d_reparameterization as conv


def test_pipe_and_or_compose_and_never_mutate():
    empty = LayerStack(input_shape=(6, 6, 6, 1), name="bayes_cnn")
    one = empty.pipe(conv, filters=4, kernel_size=3, activation="relu")
    pooling = keras.layers.GlobalAveragePooling3D()
    two = one | pooling
    three = two.pipe(keras.layers.Dense, 2)
    assert (len(empty), len(one), len(two), len(three)) == (0, 1, 2, 3)
    assert list(two) == [one.layers[0], pooling]
    assert isinstance(three.layers[2], keras.layers.Dense)
    assert three.input_shape == (6, 6, 6, 1) and three.name == "bayes_cnn"
    with pytest.raises(AttributeError, match="immutable"):
        three.name = "other"
    # Two branches from one stack do not see each other.
    branch = one | keras.layers.Flatten()
    assert len(one) == 1 and len(branch) == 2 and len(two) == 2


def test_stack_or_stack_concatenates():
    head = LayerStack() | keras.layers.Flatten()
    stack = LayerStack(input_shape=(4, 4, 4, 1)).pipe(conv, 2, 3) | head
    assert len(stack) == 2 and stack.input_shape == (4, 4, 4, 1)
    assert list(stack[1:]) == list(head)
    assert stack[1:].input_shape == (4, 4, 4, 1)


def test_call_applies_layers_in_order(rng):
    stack = LayerStack().pipe(conv, 2, 3) | keras.layers.Flatten()
    outputs = stack(volumes(rng, (3, 5, 5, 5, 1)))
    assert tuple(outputs.shape) == (3, 3 * 3 * 3 * 2)


def test_to_model_trains_and_collects_the_kl(rng):
    stack = (
        LayerStack(input_shape=[6.0, 6.0, 6.0, 1.0], name="bayes_cnn")
        .pipe(conv, filters=4, kernel_size=3)
        | keras.layers.GlobalAveragePooling3D()
        | keras.layers.Dense(2, activation="softmax")
    )
    model = stack.to_model()
    assert isinstance(model, keras.Sequential)
    assert model.name == "bayes_cnn"
    assert model.output_shape == (None, 2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(volumes(rng, (8, 6, 6, 6, 1)), np.arange(8) % 2, epochs=1, verbose=0)
    assert len(model.losses) == 1


def test_errors_name_the_argument():
    stack = LayerStack()
    with pytest.raises(TypeError, match=r"`layer` must be a Keras 3 layer.*Received: layer='dense'"):
        stack | "dense"  # noqa: B015
    with pytest.raises(TypeError, match=r"`fn` must be callable"):
        stack.pipe(3)
    with pytest.raises(TypeError, match=r"`fn` must return a LayerStack or a Keras 3 layer"):
        stack.pipe(lambda s: 3)
    with pytest.raises(ValueError, match=r"`input_shape` must be a list of positive integers"):
        LayerStack(input_shape=(4, -1))
    with pytest.raises(TypeError, match=r"`name` must be a string or None"):
        LayerStack(name=3)


def test_legacy_layers_cannot_join():
    import tf_keras

    with pytest.raises(TypeError, match=r"`layer` must be a Keras 3 layer"):
        LayerStack() | tf_keras.layers.Dense(1)  # noqa: B015


def test_repr_lists_the_layers():
    stack = (
        LayerStack(input_shape=(6, 6, 6, 1))
        .pipe(conv, filters=4, kernel_size=3, activation="relu", name="bayes")
        | keras.layers.Dense(2, name="head")
    )
    text = repr(stack)
    assert text.splitlines() == [
        "LayerStack(input_shape=(6, 6, 6, 1), name=None) with 2 layer(s):",
        "  0: Conv3DReparameterization 'bayes' (filters=4, kernel_size=(3, 3, 3), "
        "strides=(1, 1, 1), padding='valid', activation='relu')",
        "  1: Dense 'head' (units=2)",
    ]
    assert repr(LayerStack()) == "LayerStack(input_shape=None, name=None) with no layers"


def test_equality_is_by_layers_identity():
    layer = Conv3DReparameterization(2, 1)
    assert LayerStack() | layer == LayerStack() | layer
    assert LayerStack() | layer != LayerStack() | Conv3DReparameterization(2, 1)
    assert hash(LayerStack() | layer) == hash(LayerStack() | layer)
