"""Models saved with the flat layout (tfprobr_bridge/_conv.py, _defaults.py, ...) still load.

The files in fixtures/old_layout were written by its make.py before the package
was grouped into layers/, uncertainty/ and r_bridge/. Keras finds the classes
by their registered names; pickled user fns name this package's objects by
their old module paths, which now import as the modules that hold them.
"""

import json
import pathlib
import pickle

import keras
import numpy as np
import pytest

import tfprobr_bridge

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures" / "old_layout"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


def _summary(model):
    return {
        "weights": [float(np.sum(np.abs(w))) for w in model.get_weights()],
        "kernel_means": {
            layer.name: np.asarray(layer.kernel_posterior.mean()).ravel()[:5].tolist()
            for layer in model.layers if hasattr(layer, "kernel_posterior")
        },
    }


@pytest.mark.parametrize("name, safe_mode", [("family", True), ("warm", True), ("pickled", False)])
def test_a_model_saved_with_the_flat_layout_loads_with_the_same_numbers(name, safe_mode):
    model = keras.models.load_model(FIXTURES / f"{name}.keras", safe_mode=safe_mode)
    summary = _summary(model)
    expected = EXPECTED[name]
    np.testing.assert_allclose(summary["weights"], expected["weights"], rtol=1e-6)
    assert summary["kernel_means"].keys() == expected["kernel_means"].keys()
    for layer, means in expected["kernel_means"].items():
        np.testing.assert_allclose(summary["kernel_means"][layer], means, rtol=1e-6)
    inputs = [np.ones((2, *shape[1:]), "float32") for shape in
              (model.input_shape if isinstance(model.input_shape, list) else [model.input_shape])]
    outputs = model(inputs if len(inputs) > 1 else inputs[0])
    assert np.all(np.isfinite(np.asarray(outputs)))
    assert len(model.losses) >= 1


def test_pickled_fns_refer_to_the_old_paths_and_find_the_new_classes():
    model = keras.models.load_model(FIXTURES / "pickled.keras", safe_mode=False)
    layer = model.layers[0]
    # The closure over a MeanFieldNormal, pickled as tfprobr_bridge._defaults.MeanFieldNormal.
    posterior = layer.kernel_posterior_fn.__closure__[0].cell_contents
    assert type(posterior) is tfprobr_bridge.MeanFieldNormal
    divergence = layer.kernel_divergence_fn
    scaled = [cell.cell_contents for cell in divergence.__closure__]
    assert scaled == [tfprobr_bridge.scaled_kl_divergence_fn(500)]
    # The old path is an alias of the module that holds the class now.
    assert pickle.loads(pickle.dumps(tfprobr_bridge.MeanFieldNormal)) is tfprobr_bridge.MeanFieldNormal
    import tfprobr_bridge._defaults as old  # noqa: PLC0415

    assert old.MeanFieldNormal is tfprobr_bridge.MeanFieldNormal


def test_the_safe_mode_still_refuses_the_pickled_fns():
    with pytest.raises(ValueError, match=r"`kernel_posterior_fn` was saved as Python bytecode"):
        keras.models.load_model(FIXTURES / "pickled.keras")
