"""The README's library example and every ```python block of docs/*.md run as written.

A block that needs external data or a long run is skipped by an HTML comment
``<!-- skip-example -->`` on the line before its opening fence (the doc says why). Each block runs
in a fresh namespace, in a temporary directory.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP_MARK = "<!-- skip-example -->"
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def _blocks() -> list:
    """One pytest parameter per ```python block: (file, line, code), skip-marked ones skipped."""
    params = []
    for path in DOCS:
        text = path.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
            marks = [pytest.mark.skip(reason="marked skip-example")] if before == SKIP_MARK else []
            name = f"{path.relative_to(ROOT)}:{line}"
            params.append(pytest.param(path, line, match.group(1), id=name, marks=marks))
    return params


@pytest.mark.parametrize(("path", "line", "code"), _blocks())
def test_example_runs(path, line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    compiled = compile(code, f"{path.relative_to(ROOT)}:{line}", "exec")
    exec(compiled, {"__name__": "__example__"})


def test_readme_has_a_library_example():
    assert FENCE.search((ROOT / "README.md").read_text())
