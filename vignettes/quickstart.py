"""Quick start: a Bayesian 3-D CNN on generated volumes, built with tfprobr_bridge.

Each noisy volume holds one ball, small or large; the network says which.
It is built twice over the same API: once with `LayerStack` pipes, once by
adding to a `keras.Sequential` as R keras users do. `make demo` runs it.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

from tfprobr_bridge import LayerStack  # noqa: E402
from tfprobr_bridge import layer_conv_3d_reparameterization  # noqa: E402

SIZE = 16
N_TRAIN, N_TEST = 1024, 256


def make_volumes(n, rng):
    """Small (label 0) or large (label 1) balls at random places, in noise."""
    grid = np.stack(np.meshgrid(*[np.arange(SIZE)] * 3, indexing="ij"), axis=-1)
    labels = rng.integers(0, 2, n)
    volumes = rng.normal(0.0, 0.5, (n, SIZE, SIZE, SIZE, 1)).astype("float32")
    for i, label in enumerate(labels):
        radius = rng.uniform(2.0, 3.5) if label == 0 else rng.uniform(4.0, 5.5)
        centre = rng.uniform(radius, SIZE - radius, 3)
        inside = np.sqrt(((grid - centre) ** 2).sum(-1)) <= radius
        volumes[i, ..., 0] += inside
    return volumes, labels


def kl_once_per_epoch(q, p, _):
    # The KL is a property of the whole training set: count it once per epoch.
    return tfp.distributions.kl_divergence(q, p) / N_TRAIN


def main():
    keras.utils.set_random_seed(2026)
    rng = np.random.default_rng(2026)
    x_train, y_train = make_volumes(N_TRAIN, rng)
    x_test, y_test = make_volumes(N_TEST, rng)

    stack = (
        LayerStack(input_shape=(SIZE, SIZE, SIZE, 1), name="bayesian_3d_cnn")
        .pipe(layer_conv_3d_reparameterization, filters=8, kernel_size=3,
              activation="relu", kernel_divergence_fn=kl_once_per_epoch)
        | keras.layers.MaxPooling3D(2)
        | layer_conv_3d_reparameterization(filters=16, kernel_size=3, activation="relu",
                                           kernel_divergence_fn=kl_once_per_epoch)
        | keras.layers.GlobalAveragePooling3D()
        | keras.layers.Dense(2, activation="softmax")
    )
    print(stack)
    model = stack.to_model()
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, epochs=12, batch_size=32, verbose=2)

    # Bayesian prediction: average several stochastic forward passes.
    draws = np.stack([model(x_test).numpy() for _ in range(10)])
    mean = draws.mean(axis=0)
    accuracy = float((mean.argmax(-1) == y_test).mean())
    spread = float(draws.std(axis=0)[np.arange(N_TEST), mean.argmax(-1)].mean())
    kl = float(sum(model.losses))
    print(f"held-out accuracy (mean of 10 draws): {accuracy:.3f}")
    print(f"KL term per example (sum of layer losses): {kl:.4f}")
    print(f"mean predictive std of the chosen class: {spread:.4f}")

    # The same network, R-keras style: add layers to a Sequential model.
    model_r_style = keras.Sequential([keras.Input((SIZE, SIZE, SIZE, 1))])
    layer_conv_3d_reparameterization(model_r_style, filters=8, kernel_size=3, activation="relu")
    print(f"R-style model output shape: {model_r_style.output_shape}")


if __name__ == "__main__":
    main()
