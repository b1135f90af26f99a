"""Numerical robustness, safe persistence and resource use (reliability)."""

import json
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from helpers import volumes

from tfprobr_bridge import Conv3DReparameterization


@pytest.mark.parametrize("untransformed_scale", [-50.0, 50.0])
@pytest.mark.parametrize("loc", [-1e6, 1e6])
def test_extreme_posterior_parameters_give_finite_kl_and_outputs(rng, untransformed_scale, loc):
    layer = Conv3DReparameterization(2, 2)
    layer.build((None, 3, 3, 3, 1))
    layer.weights[0].assign(np.full(layer.weights[0].shape, loc, "float32"))
    layer.weights[1].assign(np.full(layer.weights[1].shape, untransformed_scale, "float32"))
    outputs = layer(volumes(rng, (1, 3, 3, 3, 1)))
    assert np.isfinite(outputs.numpy()).all()
    kl = float(layer.losses[0])
    # 16 weights, each KL = log(1/s) + (s^2 + loc^2)/2 - 1/2 with s >= float32 eps.
    assert np.isfinite(kl) and kl == pytest.approx(16 * loc**2 / 2, rel=1e-3)


def test_mixed_bfloat16_policy_trains(rng):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = keras.Sequential([
            keras.Input((4, 4, 4, 1)),
            Conv3DReparameterization(2, 2),
            keras.layers.Flatten(),
            keras.layers.Dense(1, dtype="float32"),
        ])
    finally:
        keras.config.set_dtype_policy("float32")
    layer = model.layers[0]
    assert layer.compute_dtype == "bfloat16" and layer.variable_dtype == "float32"
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(volumes(rng, (8, 4, 4, 4, 1)), np.zeros((8, 1)), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert all(w.dtype == "float32" for w in layer.weights)


def _model():
    return keras.Sequential([keras.Input((4, 4, 4, 1)), Conv3DReparameterization(2, 2)])


def test_saving_to_an_unwritable_path_fails_clearly_and_leaves_nothing(tmp_path):
    target = tmp_path / "missing" / "model.keras"
    with pytest.raises(OSError, match="No such file or directory"):
        _model().save(target)
    assert not target.exists() and not (tmp_path / "missing").exists()


def test_a_truncated_file_fails_to_load_with_an_error(tmp_path):
    path = tmp_path / "model.keras"
    _model().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model\.keras"):
        keras.models.load_model(path)


def test_a_corrupted_file_fails_to_load_with_an_error(tmp_path):
    path = tmp_path / "model.keras"
    _model().save(path)
    data = path.read_bytes()
    third = len(data) // 3
    garbage = np.random.default_rng(0).integers(0, 256, third, dtype=np.uint8).tobytes()
    path.write_bytes(data[:third] + garbage + data[2 * third:])
    # The zip's checksum catches it and names the damaged member; nothing loads.
    with pytest.raises(zipfile.BadZipFile, match=r"Bad CRC-32 for file 'model\.weights\.h5'"):
        keras.models.load_model(path)


def test_weights_only_round_trip(tmp_path, rng):
    model = _model()
    model(volumes(rng, (1, 4, 4, 4, 1)))
    path = tmp_path / "model.weights.h5"
    model.save_weights(path)
    other = _model()
    other.load_weights(path)
    for a, b in zip(model.weights, other.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(
        other.layers[0].kernel_posterior.mean(), model.layers[0].kernel_posterior.mean()
    )


RESOURCE_SCRIPT = """
import gc, json, weakref
import numpy as np, keras
import tfprobr_bridge as tb

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))

def measure(make, cycles=200, warmup=20):
    alive = weakref.WeakSet()
    x = np.ones((2, 8, 8, 8, 1), "float32")
    def cycle():
        layer = make()
        outputs = layer(x)
        float(keras.ops.sum(outputs)), [float(loss) for loss in layer.losses]
        alive.add(layer)
    for _ in range(warmup):
        cycle()
    gc.collect()
    rss, objects = rss_mb(), len(gc.get_objects())
    peak = rss
    for _ in range(cycles):
        cycle()
        peak = max(peak, rss_mb())
    gc.collect()
    return {"peak_growth_mb": peak - rss, "object_growth": len(gc.get_objects()) - objects,
            "layers_alive": len(alive)}

ours = measure(lambda: tb.layer_conv_3d_reparameterization(filters=4, kernel_size=3, activation="relu"))
keras_conv = measure(lambda: keras.layers.Conv3D(4, 3, activation="relu"))
print("RESOURCES", json.dumps({"ours": ours, "keras_conv3d": keras_conv}))
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_200_build_call_drop_cycles_keep_memory_and_objects_flat():
    output = subprocess.run([sys.executable, "-c", RESOURCE_SCRIPT], capture_output=True,
                            text=True, timeout=600, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESOURCES "))
    result = json.loads(line[len("RESOURCES "):])
    ours = result["ours"]
    assert ours["peak_growth_mb"] < 150
    assert ours["layers_alive"] == 0  # Every dropped layer was collected.
    assert ours["object_growth"] < 200  # Not one object per cycle piling up.
    # For the README: the same loop with Keras's own deterministic Conv3D.
    print(result)
