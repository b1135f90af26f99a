"""Training under MultiWorkerMirroredStrategy with two worker processes.

docs/examples/multi_worker_training.py runs as two workers on 127.0.0.1 (ports
chosen free at run time) and once alone. The workers must report the same
per-epoch loss as the single-device run (data loss plus a KL term counted once),
and the chief's saved model must hold the single-device run's weights.
"""

import pytest
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

import tfprobr_bridge  # noqa: F401  (registers the layer for loading)

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "examples" / "multi_worker_training.py"
TIMEOUT = 300


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def epoch_losses(output):
    line = next(line for line in output.splitlines() if line.startswith("EPOCH_LOSSES "))
    return json.loads(line[len("EPOCH_LOSSES "):])


def test_two_workers_match_a_single_device_run(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    environment = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    processes = []
    try:
        for index in range(2):
            config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            processes.append(subprocess.Popen(
                [sys.executable, str(SCRIPT), "--output", str(tmp_path / f"worker{index}.keras")],
                env=dict(environment, TF_CONFIG=json.dumps(config)),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        single = subprocess.run(
            [sys.executable, str(SCRIPT), "--output", str(tmp_path / "single.keras")],
            env=environment, capture_output=True, text=True, timeout=TIMEOUT, check=True)
        results = [process.communicate(timeout=TIMEOUT) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (_, stderr) in zip(processes, results):
        assert process.returncode == 0, stderr[-3000:]

    expected = epoch_losses(single.stdout)
    assert len(expected) == 2
    for stdout, _ in results:
        np.testing.assert_allclose(epoch_losses(stdout), expected, rtol=1e-5)

    # Only the chief saves; its model holds the single-device run's weights.
    assert not (tmp_path / "worker1.keras").exists()
    chief = keras.models.load_model(tmp_path / "worker0.keras")
    alone = keras.models.load_model(tmp_path / "single.keras")
    assert len(chief.weights) == len(alone.weights) == 5
    for a, b in zip(chief.weights, alone.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
