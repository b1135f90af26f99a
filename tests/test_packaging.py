"""The Python package as users get it: sdist and wheel, their metadata, a fresh venv.

Also the wheel the R package ships (r/inst/python): built from tfprobr_bridge/
by `make r-wheel` and committed, it must hold exactly what the tree holds.
"""

import email
import fcntl
import os
import pathlib
import re
import subprocess
import sys
import tomllib
import venv
import zipfile

import pytest

pytestmark = [pytest.mark.subprocess]

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SHIPPED = ROOT / "r" / "inst" / "python"
# make r-wheel's timestamp: the wheel's bytes then depend on its contents alone.
SOURCE_DATE_EPOCH = "315532800"


def _build(outdir, *what):
    environment = dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH)
    # setuptools stages the sdist in the source tree (tfprobr_bridge-0.1.0/ and
    # the egg-info): two builds at once, one per pytest-xdist worker, deleted
    # each other's files ("No such file ... r_bridge/facts.py", 1 run in 4).
    # One build at a time.
    lock_path = ROOT / "build" / "test-packaging.lock"
    lock_path.parent.mkdir(exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        process = subprocess.run(
            [sys.executable, "-m", "build", *what, "--outdir", str(outdir), str(ROOT)],
            capture_output=True, text=True, env=environment, timeout=600,
        )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    return outdir


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("dist"))


def _wheel(directory):
    wheels = sorted(directory.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _sdist(directory):
    sdists = sorted(directory.glob("*.tar.gz"))
    assert len(sdists) == 1, sdists
    return sdists[0]


def _metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(archive.read(name))


# What the wheel says that pyproject.toml and the tree decide (not the build
# tool's own lines, which move with setuptools releases).
_DECIDED_FIELDS = ("Name", "Version", "Summary", "Requires-Python", "License-Expression",
                   "License-File", "Requires-Dist", "Provides-Extra", "Classifier",
                   "Project-URL", "Keywords", "Description-Content-Type")


def _contents(wheel):
    with zipfile.ZipFile(wheel) as archive:
        files = {
            name.split(".dist-info/", 1)[-1] if ".dist-info/" in name else name: archive.read(name)
            for name in archive.namelist()
            if not name.endswith(("/RECORD", "/WHEEL", "/METADATA"))
        }
    metadata = _metadata(wheel)
    decided = {field: sorted(metadata.get_all(field) or []) for field in _DECIDED_FIELDS}
    return files, decided, metadata.get_payload()


def test_shipped_wheel_holds_what_the_tree_holds(dist):
    shipped = sorted(SHIPPED.glob("*.whl"))
    assert len(shipped) == 1, (
        f"r/inst/python must hold exactly one wheel, the one `make r-wheel` builds: {shipped}"
    )
    assert shipped[0].name == _wheel(dist).name
    files, decided, description = _contents(shipped[0])
    fresh_files, fresh_decided, fresh_description = _contents(_wheel(dist))
    stale = sorted(
        name for name in set(files) | set(fresh_files) if files.get(name) != fresh_files.get(name)
    )
    assert not stale and decided == fresh_decided and description == fresh_description, (
        f"{shipped[0].relative_to(ROOT)} is out of date with the tree ({stale or 'metadata'}): "
        "run `make r-wheel` and commit the wheel"
    )


def test_package_files_in_the_wheel_are_the_trees(dist):
    with zipfile.ZipFile(_wheel(dist)) as archive:
        packaged = {n for n in archive.namelist() if n.startswith("tfprobr_bridge/")}
    tree = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "tfprobr_bridge").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert packaged == tree


def test_sdist_and_wheel_pass_twine_check_and_carry_the_licence(dist):
    process = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
        capture_output=True, text=True,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    licence = (ROOT / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    with zipfile.ZipFile(_wheel(dist)) as archive:
        names = [n for n in archive.namelist() if n.endswith("licenses/LICENSE")]
        assert len(names) == 1 and archive.read(names[0]).decode() == licence
    import tarfile

    with tarfile.open(_sdist(dist)) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("/LICENSE"))
        assert archive.extractfile(member).read().decode() == licence


def test_metadata_a_python_user_reads(dist):
    metadata = _metadata(_wheel(dist))
    assert metadata["License-Expression"] == "Apache-2.0"
    classifiers = metadata.get_all("Classifier")
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert not any(c.startswith("License ::") for c in classifiers)  # PEP 639: the expression says it
    assert metadata.get_all("Project-URL")
    assert metadata["Requires-Python"] == PYPROJECT["project"]["requires-python"]
    description = metadata.get_payload()
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert len(description) < 5000  # a Python-facing page, not the repository's README
    assert "make " not in description and "```r" not in description
    # Links that work outside the repository, or none.
    for target in re.findall(r"\]\(([^)]+)\)", description):
        assert re.match(r"https?://", target), target


def _python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.slow
def test_a_fresh_venv_installs_the_sdist_and_runs_the_readme_examples(dist, tmp_path):
    """pip install of the sdist into a venv with nothing in it, then the README's Python, verbatim."""
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    python = environment / "bin" / "python"
    process = subprocess.run(
        # With the nifti extra, which the README's segment_nifti() example says it needs.
        [str(python), "-m", "pip", "install", "--quiet", f"tfprobr_bridge[nifti] @ {_sdist(dist).as_uri()}"],
        capture_output=True, text=True, timeout=1200,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    scripts = {
        "readme": "\n".join(_python_blocks(ROOT / "README.md")),
        "pypi": "\n".join(_python_blocks(ROOT / "docs" / "pypi-description.md")),
    }
    for name, code in scripts.items():
        script = tmp_path / f"{name}.py"
        script.write_text(
            "import tfprobr_bridge, pathlib\n"
            "print('from:', pathlib.Path(tfprobr_bridge.__file__).parent)\n" + code
        )
        run = subprocess.run(
            [str(python), str(script)], capture_output=True, text=True, timeout=600,
            cwd=tmp_path, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        assert run.returncode == 0, f"{name}:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
        # The installed copy ran, not the repository's.
        installed = re.search(r"^from: (.*)$", run.stdout, flags=re.M).group(1)
        assert installed.startswith(str(environment)), installed
    assert "KL terms" in run.stdout
