"""The benchmark network in three builds: ours, TFP's (tf_keras), deterministic Keras 3.

Two 3-D conv blocks (8 and 16 filters, 3x3x3, same padding, ReLU) with max
pooling between them, global average pooling and a dense head of 2.
"""

import keras
import tensorflow_probability as tfp
import tf_keras

import tfprobr_bridge

CLASSES = 2


def ours(size):
    return keras.Sequential([
        keras.Input((size, size, size, 1)),
        tfprobr_bridge.Conv3DReparameterization(8, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling3D(2),
        tfprobr_bridge.Conv3DReparameterization(16, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling3D(),
        keras.layers.Dense(CLASSES),
    ])


def tfp_reference(size):
    return tf_keras.Sequential([
        tf_keras.layers.InputLayer(input_shape=(size, size, size, 1)),
        tfp.layers.Convolution3DReparameterization(8, 3, padding="same", activation="relu"),
        tf_keras.layers.MaxPooling3D(2),
        tfp.layers.Convolution3DReparameterization(16, 3, padding="same", activation="relu"),
        tf_keras.layers.GlobalAveragePooling3D(),
        tf_keras.layers.Dense(CLASSES),
    ])


def deterministic(size):
    return keras.Sequential([
        keras.Input((size, size, size, 1)),
        keras.layers.Conv3D(8, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling3D(2),
        keras.layers.Conv3D(16, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling3D(),
        keras.layers.Dense(CLASSES),
    ])


CONTENDERS = {
    "ours": (ours, keras),
    "tfp": (tfp_reference, tf_keras),
    "deterministic": (deterministic, keras),
}
LABELS = {
    "ours": "tfprobr_bridge (Keras 3)",
    "tfp": "TFP Convolution3DReparameterization (tf_keras)",
    "deterministic": "deterministic Keras 3 Conv3D",
}
SIZES = [(16, 16), (32, 8), (64, 2)]


def compiled(name, size):
    make, library = CONTENDERS[name]
    model = make(size)
    model.compile(
        optimizer=library.optimizers.Adam(1e-3),
        loss=library.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model
