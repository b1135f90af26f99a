"""Shared test set-up.

In CI (CI=true) a skipped test is a failure: a test that cannot run there is a
missing install step, not a pass. Property tests are derandomized there (the
same examples every run, so CI time and memory are known); locally they draw
new examples each run, which is how they keep finding bugs.

The fast lane (``make test-fast``) leaves out tests marked ``slow``,
``subprocess`` or ``r``. A test that starts a process without its
``subprocess`` mark fails, so the marks stay true. ``--order reverse`` or
``--order shuffle:SEED`` runs the suite in another order, to show that no
test depends on another having run first.
"""

import os
import random
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# As the Makefile sets them, so that `pytest` alone runs R against this Python
# (offline, reticulate must not create an environment of its own).
os.environ.setdefault("RETICULATE_PYTHON", sys.executable)
os.environ.setdefault("RETICULATE_USE_MANAGED_VENV", "no")
os.environ.setdefault("TFPROBR_VENV", sys.prefix)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402


def _in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if _in_ci():
    settings.load_profile("ci")


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if _in_ci() and skipped:
        reporter.write_line(
            f"CI=true: {skipped} skipped test(s) count as failures here.", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(7)



def pytest_addoption(parser):
    parser.addoption(
        "--order", default="file",
        help="file (default), reverse, or shuffle:SEED: the order tests run in",
    )


def pytest_collection_modifyitems(config, items):
    order = config.getoption("--order")
    if order == "reverse":
        items.reverse()
    elif order.startswith("shuffle:"):
        random.Random(int(order.split(":", 1)[1])).shuffle(items)
    elif order != "file":
        raise pytest.UsageError(f"--order must be file, reverse or shuffle:SEED, not {order!r}")


@pytest.fixture(autouse=True)
def _processes_are_marked(request, monkeypatch):
    """A test that starts a process must say so, so the fast lane can leave it out."""
    if request.node.get_closest_marker("subprocess") is not None:
        return

    def refuse(self, args, *rest, **kwargs):
        raise AssertionError(
            f"{request.node.nodeid} starts a process ({args!r}): mark it "
            "@pytest.mark.subprocess, so that the fast lane (make test-fast) leaves it out"
        )

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
