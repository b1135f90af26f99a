"""Training under tf.distribute.MirroredStrategy on two logical CPU devices.

The model is built either before fit (an Input) or by fit itself (no Input).

Logical devices must be configured before TensorFlow starts, so the run happens
in a fresh process. With the same seeds and data, the per-epoch loss (data loss
plus the KL term, which must count once, not once per replica) matches a
single-device run. The trained model saves inside the scope and loads both
outside it and inside it, where it keeps training on mirrored variables.
"""

import json
import subprocess
import sys

import pytest

SCRIPT = """
import json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import sys
import keras, numpy as np
import tfprobr_bridge as tb

def run(strategy, deferred=False):
    keras.utils.set_random_seed(1)
    with strategy.scope():
        layers = [
            tb.Conv3DReparameterization(2, 3, padding="same", seed=1,
                                        kernel_divergence_fn=tb.scaled_kl_divergence_fn(64)),
            keras.layers.Flatten(), keras.layers.Dense(1)]
        # deferred: no Input, so Keras builds the layers when fit first runs.
        model = keras.Sequential(layers if deferred else [keras.Input((4, 4, 4, 1)), *layers])
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    x = np.random.default_rng(0).random((64, 4, 4, 4, 1)).astype("float32")
    y = np.zeros((64, 1), "float32")
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False)
    return model, history.history["loss"], x, y

def same_weights(a, b):
    return all(np.array_equal(v.numpy(), w.numpy()) for v, w in zip(a.weights, b.weights))

_, single, _, _ = run(tf.distribute.get_strategy())
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
model, mirrored, x, y = run(strategy)
_, single_deferred, _, _ = run(tf.distribute.get_strategy(), deferred=True)
deferred_model, mirrored_deferred, _, _ = run(strategy, deferred=True)

# Save inside the scope; load outside it and inside it; keep training inside it.
path = sys.argv[1]
with strategy.scope():
    model.save(path)
outside = keras.models.load_model(path)
with strategy.scope():
    inside = keras.models.load_model(path)
outside_same, inside_same = same_weights(outside, model), same_weights(inside, model)
before = inside.layers[0].kernel_posterior.distribution.loc.numpy().copy()
more = inside.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False).history["loss"]
print("RESULT", json.dumps({
    "single": single, "mirrored": mirrored,
    "single_deferred": single_deferred, "mirrored_deferred": mirrored_deferred,
    "deferred_variables_mirrored": all(
        isinstance(v.value, tf.distribute.DistributedValues)
        for v in deferred_model.layers[0].weights),
    "outside_same": outside_same, "inside_same": inside_same,
    "inside_variables_mirrored": all(
        isinstance(v.value, tf.distribute.DistributedValues) for v in inside.layers[0].weights),
    "inside_trained": bool(np.all(np.isfinite(more)))
                      and not np.array_equal(before, inside.layers[0].kernel_posterior.distribution.loc.numpy()),
}))
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_mirrored_strategy_matches_a_single_device_run_and_saves(tmp_path):
    path = str(tmp_path / "mirrored.keras")
    output = subprocess.run([sys.executable, "-c", SCRIPT, path], capture_output=True, text=True,
                            timeout=600, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert len(result["mirrored"]) == len(result["single"]) == 2
    for mirrored, single in zip(result["mirrored"], result["single"]):
        assert abs(mirrored - single) <= 1e-5 * abs(single)
    # Built by fit itself under the strategy (Keras builds symbolically first).
    assert len(result["mirrored_deferred"]) == len(result["single_deferred"]) == 2
    for mirrored, single in zip(result["mirrored_deferred"], result["single_deferred"]):
        assert abs(mirrored - single) <= 1e-5 * abs(single)
    assert result["deferred_variables_mirrored"]
    assert result["outside_same"] and result["inside_same"]
    assert result["inside_variables_mirrored"]
    assert result["inside_trained"]
