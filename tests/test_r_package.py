"""The R package, driven from Python through rpy2 in a child process.

Python -> rpy2 -> R -> reticulate -> the same Python. reticulate 1.28 aborts
the process at exit, so the work runs in a child (tests/r_driver.py) that
writes a JSON record and marks it complete last; this test reads only a
complete record, so the abort can neither fail nor hide a run.
"""

import json
import pathlib
import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.subprocess, pytest.mark.r]

HERE = pathlib.Path(__file__).resolve().parent
SPEC = HERE / "fixtures" / "layer_conv_3d_reparameterization.txt"


def spec_usage():
    """(name, default expression or "") pairs from the spec's usage block."""
    text = SPEC.read_text()
    block = re.search(
        r"^layer_conv_3d_reparameterization\(\n(.*?)\n\)", text, flags=re.S | re.M
    ).group(1)
    pairs = []
    for line in block.splitlines():
        line = line.strip().rstrip(",")
        name, _, default = line.partition(" = ")
        pairs.append([name, default])
    return pairs


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    path = tmp_path_factory.mktemp("r") / "record.json"
    process = subprocess.run(
        [sys.executable, str(HERE / "r_driver.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if not path.exists():
        pytest.fail(
            f"the R driver wrote no record (exit {process.returncode}):\n"
            f"{process.stderr[-4000:]}"
        )
    result = json.loads(path.read_text())
    assert result.get("complete") is True
    return result


def test_spec_fixture_parses_to_the_documented_usage():
    usage = spec_usage()
    assert len(usage) == 19
    assert usage[0] == ["object", ""] and usage[-1] == ["...", ""]
    assert ["kernel_posterior_tensor_fn", "function(d) d %>% tfd_sample()"] in usage


def test_r_formals_are_the_spec_usage_block(record):
    assert record["formals"] == spec_usage()


def test_library_does_not_start_python(record):
    assert record["python_started_by_library"] is False


def test_r_values_become_the_python_layer(record):
    layer = record["layer"]
    assert layer["is_ours"] is True
    assert layer["filters"] == [8, "int"]
    assert layer["kernel_size"] == [1, 2, 3]
    assert layer["padding"] == "same"
    assert layer["activation"] == "relu"
    assert layer["name"] == "from_r"
    assert layer["default_posterior_is_native"] is True


def test_the_readme_example_builds_a_keras3_model_with_the_r_closure(record):
    model = record["model"]
    assert model["is_sequential"] is True
    assert model["output_shape"] == [2, 8]
    assert model["layer_types"] == ["Conv3DReparameterization", "GlobalAveragePooling3D"]
    # The R closure itself (wrapped by reticulate, then by tfprobr so that it
    # refuses to run off the main thread) is the divergence fn ...
    assert model["divergence_fn"] == ["MainThreadFn", "function", "rpytools.call", False]
    # ... and it divided the KL by n = 1000.
    assert model["kl_scaled"] is True


def test_r_stacks_are_python_layer_stacks(record):
    assert record["stack"] == {"lengths": [0, 1], "input_shape": [6, 6, 6, 1], "is_stack": True}


def test_python_errors_reach_r_as_r_conditions(record):
    error_class, message, python_class_kept = record["error"]
    assert error_class == "tfprobr_value_error"
    assert python_class_kept == "TRUE"  # reticulate's python.builtin.ValueError too
    assert message == (
        '`padding` must be one of "valid" or "same" ("causal" padding is not offered by '
        'the variational layers). Received: padding="causal"'
    )


def test_r_install_hints_ask_for_the_versions_pyproject_allows():
    # The R error for a missing TensorFlow/TFP/Keras prints a pip command; R reads
    # its version ranges from the wheel it ships, whose one source is pyproject.toml.
    import tomllib

    declared = tomllib.loads((HERE.parent / "pyproject.toml").read_text())["project"]["dependencies"]
    modules = ["tensorflow", "tensorflow_probability", "tf_keras", "keras"]
    process = subprocess.run(
        ["Rscript", "-e", "for (m in commandArgs(TRUE)) cat(tfprobr:::pip_requirement(m), '\\n')",
         *modules],
        capture_output=True, text=True, timeout=120,
    )
    assert process.returncode == 0, process.stderr
    hints = [line.strip() for line in process.stdout.splitlines()]
    assert len(hints) == 4
    # The wheel's METADATA may order a requirement's specifiers differently: compare as sets.
    from packaging.requirements import Requirement

    def normal(text):
        requirement = Requirement(text)
        return requirement.name, frozenset(str(s) for s in requirement.specifier)

    assert {normal(h) for h in hints} <= {normal(d) for d in declared}, hints
