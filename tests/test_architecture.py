"""The tree's arrows point down: layers know nothing of the uncertainty tools or of R;
the uncertainty tools know nothing of R; validation and datasets sit beside them."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tfprobr_bridge"

# What each part may not import (its imports, at any depth of the module).
FORBIDDEN = {
    "layers": ("tfprobr_bridge.uncertainty", "tfprobr_bridge.r_bridge"),
    "uncertainty": ("tfprobr_bridge.r_bridge",),
    "validation.py": ("tfprobr_bridge.layers", "tfprobr_bridge.uncertainty", "tfprobr_bridge.r_bridge"),
    "datasets.py": ("tfprobr_bridge.r_bridge",),
}


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_no_arrow_points_up(part):
    paths = sorted((PACKAGE / part).rglob("*.py")) if (PACKAGE / part).is_dir() else [PACKAGE / part]
    assert paths
    wrong = sorted({(path.relative_to(PACKAGE).as_posix(), name) for path in paths
                    for name in _imports(path)
                    if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[part])})
    assert not wrong, wrong
