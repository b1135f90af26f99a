"""The README's Python examples run as written and print what they say."""

import contextlib
import io
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_example_runs_and_prints_what_it_claims(tmp_path, monkeypatch):
    blocks = _python_blocks()
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace = {}
    outputs = []
    for block in blocks:
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
        outputs.append(output.getvalue().strip())
    claimed = re.search(r"^# (\(None.*)$", blocks[0], flags=re.M).group(1)
    assert outputs[0] == claimed
    assert namespace["restored"].output_shape == (None, 2)
    # A block that ends with a print and a comment claims that comment is what it prints.
    for block, output in zip(blocks[1:], outputs[1:]):
        last = block.strip().splitlines()
        if len(last) >= 2 and last[-2].startswith("print(") and last[-1].startswith("# "):
            assert output == last[-1][2:], block


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.r
def test_readme_r_example_runs_in_rscript_and_prints_what_it_claims(tmp_path):
    import subprocess

    blocks = re.findall(r"```r\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    script = tmp_path / "example.R"
    script.write_text(blocks[0])
    process = subprocess.run(
        ["Rscript", str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert process.returncode == 0, process.stderr[-3000:]
    claimed = re.search(r"^# (\d+ KL term.*)$", blocks[0], flags=re.M).group(1)
    assert process.stdout.strip().splitlines()[-1] == claimed
