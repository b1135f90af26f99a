"""The README's Python examples run as written and print what they say."""

import contextlib
import io
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_example_runs_and_prints_what_it_claims(tmp_path, monkeypatch):
    blocks = _python_blocks()
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace = {}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        for block in blocks:
            exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    claimed = re.search(r"^# (\(None.*)$", blocks[0], flags=re.M).group(1)
    assert output.getvalue().strip() == claimed
    assert namespace["restored"].output_shape == (None, 2)
