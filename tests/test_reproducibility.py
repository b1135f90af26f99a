"""Reproducible sampling: a layer's own `seed`, and the global seed across processes."""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow_probability as tfp
from helpers import volumes

from tfprobr_bridge import Conv3DReparameterization


def _seeded_pair(seed, **kwargs):
    layers = [Conv3DReparameterization(2, 2, seed=seed, **kwargs) for _ in range(2)]
    for layer in layers:
        layer.build((None, 3, 3, 3, 1))
    for source, target in zip(layers[0].weights, layers[1].weights):
        target.assign(source)
    return layers


def laplace_posterior(dtype, shape, name, trainable, add_variable_fn):
    loc = add_variable_fn(name=name + "_loc", shape=shape, initializer="zeros", dtype=dtype,
                          trainable=trainable)
    return tfp.distributions.Independent(tfp.distributions.Laplace(loc, 0.1), len(shape))


@pytest.mark.parametrize("posterior", ["default", "laplace"])
def test_a_layer_seed_makes_its_sampling_repeat(rng, posterior):
    # A Laplace posterior is drawn by TFP's own sample(seed=...), the default directly.
    kwargs = ({"kernel_posterior_fn": laplace_posterior, "kernel_divergence_fn": None}
              if posterior == "laplace" else {})
    first, second = _seeded_pair(7, **kwargs)
    x = volumes(rng, (1, 3, 3, 3, 1))
    draws_first = [first(x).numpy() for _ in range(3)]
    draws_second = [second(x).numpy() for _ in range(3)]
    for a, b in zip(draws_first, draws_second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(draws_first[0], draws_first[1])  # Still a new draw per call.


def test_the_seed_is_part_of_the_config_and_validated():
    layer = Conv3DReparameterization(2, 2, seed=42)
    assert layer.get_config()["seed"] == 42
    assert Conv3DReparameterization.from_config(layer.get_config()).seed == 42
    assert Conv3DReparameterization(2, 2).get_config()["seed"] is None
    with pytest.raises(ValueError, match=r"`seed` must be None or an integer from 0 to 2147483647\. Received: seed=-1"):
        Conv3DReparameterization(2, 2, seed=-1)
    with pytest.raises(ValueError, match=r"`seed` must be None or an integer"):
        Conv3DReparameterization(2, 2, seed="7")


def test_a_seeded_model_saves_and_loads(tmp_path, rng):
    model = keras.Sequential([keras.Input((3, 3, 3, 1)), Conv3DReparameterization(2, 2, seed=3)])
    x = volumes(rng, (1, 3, 3, 3, 1))
    first_draw = model(x).numpy()
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.layers[0].seed == 3
    # The generator's position is not saved (as for Keras's own seeded layers):
    # the loaded layer replays the sequence from its start.
    np.testing.assert_array_equal(loaded(x).numpy(), first_draw)


SCRIPT = """
import hashlib, keras, numpy as np
import tfprobr_bridge as tb
keras.utils.set_random_seed(123)
model = keras.Sequential([keras.Input((6, 6, 6, 1)), tb.Conv3DReparameterization(3, 3, activation="relu"),
                          keras.layers.GlobalAveragePooling3D(), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
x = np.random.default_rng(0).random((16, 6, 6, 6, 1)).astype("float32")
y = np.random.default_rng(1).random((16, 1)).astype("float32")
outputs = model(x).numpy()
kl = float(model.losses[0])
losses = model.fit(x, y, epochs=3, batch_size=8, verbose=0).history["loss"]
digest = hashlib.sha256(outputs.tobytes() + np.float64(kl).tobytes()
                        + np.array(losses, np.float64).tobytes()).hexdigest()
print("DIGEST", digest, kl, losses[-1])
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_global_seed_gives_bit_identical_runs_in_fresh_processes():
    digests = []
    for _ in range(2):
        output = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                                timeout=300, check=True).stdout
        digests.append([line for line in output.splitlines() if line.startswith("DIGEST")][0])
    assert digests[0] == digests[1]
