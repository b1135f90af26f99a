"""The R package installed from the repository's files alone installs its Python side.

As an R user gets it: the files git tracks under r/ (what a `git archive`, a
clean clone or `remotes::install_github(subdir = "r")` hands R), installed
with `R CMD INSTALL` of the folder and of the `R CMD build` tarball, without
the set-up's TFPROBR_VENV. Then `install_tfprobr()` must work, and say plainly
when R has to be restarted.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.subprocess, pytest.mark.r]

# The environment's Python must match this one, whose packages it borrows.
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


def _environment(**changes):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("TFPROBR_VENV", "RETICULATE_PYTHON", "R_LIBS", "R_LIBS_USER")}
    environment.update(changes)
    return environment


def _run(command, **kwargs):
    process = subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)
    assert process.returncode == 0, (
        f"{' '.join(map(str, command))} failed:\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}"
    )
    return process.stdout + process.stderr


@pytest.fixture(scope="module")
def committed_r(tmp_path_factory):
    """The files git tracks under r/, copied as they are: what an archive of r/ holds."""
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "r"],
                             capture_output=True, text=True, check=True).stdout.split("\0")
    target = tmp_path_factory.mktemp("archive")
    for name in filter(None, tracked):
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, destination)
    return target / "r"


@pytest.fixture(scope="module", params=["folder", "tarball"])
def library(request, committed_r, tmp_path_factory):
    """tfprobr installed from the committed files into a library of its own."""
    library = tmp_path_factory.mktemp(f"library-{request.param}")
    source = committed_r
    if request.param == "tarball":  # what remotes::install_github() does
        build = tmp_path_factory.mktemp("build")
        _run(["R", "CMD", "build", "--no-build-vignettes", "--no-manual", str(committed_r)],
             cwd=build, env=_environment())
        source = next(build.glob("tfprobr_*.tar.gz"))
    _run(["R", "CMD", "INSTALL", "--no-multiarch", "-l", str(library), str(source)],
         env=_environment())
    return library


def _rscript(code, library, tmp_path, **environment):
    script = tmp_path / "script.R"
    script.write_text(code)
    process = subprocess.run(
        # Away from the repository: reticulate puts the working directory on sys.path.
        ["Rscript", "--vanilla", str(script)], capture_output=True, text=True, timeout=900,
        cwd=tmp_path,
        env=_environment(R_LIBS=str(library), RETICULATE_USE_MANAGED_VENV="no", **environment),
    )
    return process.returncode, process.stdout + process.stderr


def _empty_python(tmp_path):
    environment = tmp_path / "empty"
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(environment)], check=True)
    return environment / "bin" / "python"


def test_install_tfprobr_works_from_the_committed_files(library, tmp_path):
    root = tmp_path / "virtualenvs"
    root.mkdir()
    status, output = _rscript(
        "library(tfprobr)\n"
        "cat('source:', tfprobr:::python_package_source(), '\\n')\n"
        f"python <- install_tfprobr(pip_options = '--no-deps', python_version = '{PYTHON_VERSION}')\n"
        "cat('returned:', python, '\\n')\n",
        library, tmp_path, RETICULATE_VIRTUALENV_ROOT=str(root),
    )
    assert status == 0, output
    assert f"source: {library}/tfprobr/python/tfprobr_bridge-" in output
    python = root / "r-tfprobr" / "bin" / "python"
    assert f"returned: {python}" in output
    # The environment's tfprobr_bridge is the shipped one. Its dependencies
    # (not installed: --no-deps) are seen through the project's venv, so that
    # a fresh session can use it as a user's would.
    site = next((root / "r-tfprobr" / "lib").glob("python3*/site-packages"))
    assert (site / "tfprobr_bridge" / "__init__.py").read_bytes() == (
        ROOT / "tfprobr_bridge" / "__init__.py"
    ).read_bytes()
    # A plain path entry, so that the project venv's own .pth files (its
    # editable install of tfprobr_bridge among them) are not run.
    (site / "zz_project_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    status, output = _rscript(
        "library(keras3)\nlibrary(tfprobr)\n"
        "cat('chosen:', tfprobr_python(), '\\n')\n"
        "model <- keras_model_sequential(input_shape = c(6, 6, 6, 1)) |>\n"
        "  layer_conv_3d_reparameterization(filters = 2, kernel_size = 3)\n"
        "cat('output shape:', unlist(model$output_shape), '\\n')\n"
        "cat('bridge from:', reticulate::import('tfprobr_bridge')$`__file__`, '\\n')\n",
        library, tmp_path, RETICULATE_VIRTUALENV_ROOT=str(root),
    )
    assert status == 0, output
    assert f"chosen: {python}" in output
    assert "output shape: 4 4 4 2" in output
    assert f"bridge from: {site}/tfprobr_bridge/__init__.py" in output


def test_install_after_python_started_says_to_restart_and_never_loops(library, tmp_path):
    """The issue's session: a failed first call, install_tfprobr(), then the next call."""
    root = tmp_path / "virtualenvs"
    root.mkdir()
    empty = _empty_python(tmp_path)
    status, output = _rscript(
        f"reticulate::use_python('{empty}', required = TRUE)\n"
        "library(tfprobr)\n"
        "first <- tryCatch(layer_conv_3d_reparameterization(filters = 2, kernel_size = 3),\n"
        "                  error = conditionMessage)\n"
        "cat('@FIRST:', first, '\\n')\n"
        "installed <- withCallingHandlers(\n"
        f"  install_tfprobr(pip_options = '--no-deps', python_version = '{PYTHON_VERSION}'),\n"
        "  warning = function(w) {\n"
        "    cat('@WARNING:', class(w)[1], conditionMessage(w), '\\n')\n"
        "    invokeRestart('muffleWarning')\n"
        "  })\n"
        "second <- tryCatch(layer_conv_3d_reparameterization(filters = 2, kernel_size = 3),\n"
        "                   error = function(e) paste(class(e)[1], conditionMessage(e)))\n"
        "cat('@SECOND:', second, '\\n')\n",
        library, tmp_path, RETICULATE_VIRTUALENV_ROOT=str(root),
    )
    assert status == 0, output
    lines = {line.split(":", 1)[0]: line for line in output.splitlines()
             if line.startswith(("@FIRST:", "@WARNING:", "@SECOND:"))}
    # Nothing chosen yet but the Python the session runs: install_tfprobr() is the advice.
    assert "tfprobr_bridge" in lines["@FIRST"] and "install_tfprobr()" in lines["@FIRST"]
    assert "@WARNING: tfprobr_restart_needed" in lines["@WARNING"]
    assert "Restart R" in lines["@WARNING"] and str(empty) in lines["@WARNING"]
    # The next call says to restart, not to install again.
    assert lines["@SECOND"].startswith("@SECOND: tfprobr_python_missing")
    assert "Restart R" in lines["@SECOND"]
    assert str(root / "r-tfprobr" / "bin" / "python") in lines["@SECOND"]
    assert "install_tfprobr()" not in lines["@SECOND"]
