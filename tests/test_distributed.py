"""Training under tf.distribute.MirroredStrategy on two logical CPU devices.

Logical devices must be configured before TensorFlow starts, so the run happens
in a fresh process. With the same seeds and data, the per-epoch loss (data loss
plus the KL term, which must count once, not once per replica) matches a
single-device run.
"""

import json
import subprocess
import sys

SCRIPT = """
import json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
import tfprobr_bridge as tb

def run(strategy):
    keras.utils.set_random_seed(1)
    with strategy.scope():
        model = keras.Sequential([
            keras.Input((4, 4, 4, 1)),
            tb.Conv3DReparameterization(2, 3, padding="same", seed=1,
                                        kernel_divergence_fn=tb.scaled_kl_divergence_fn(64)),
            keras.layers.Flatten(), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    x = np.random.default_rng(0).random((64, 4, 4, 4, 1)).astype("float32")
    y = np.zeros((64, 1), "float32")
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False)
    return history.history["loss"]

single = run(tf.distribute.get_strategy())
mirrored = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
print("RESULT", json.dumps({"single": single, "mirrored": mirrored}))
"""


def test_mirrored_strategy_matches_a_single_device_run():
    output = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            timeout=600, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert len(result["mirrored"]) == len(result["single"]) == 2
    for mirrored, single in zip(result["mirrored"], result["single"]):
        assert abs(mirrored - single) <= 1e-5 * abs(single)
