"""The Python blocks of the tutorials run as written, top to bottom."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("page", ["getting-started.md", "tutorial-dealer-app.md"])
def test_tutorial_python_runs(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text("utf-8"), re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)  # the dealer-app tutorial writes portal.db here
    namespace: dict[str, object] = {}
    exec(compile("\n".join(blocks), page, "exec"), namespace)  # noqa: S102 - our own docs
