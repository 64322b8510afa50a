"""The README's snippets marked ``# runnable`` run as written (no API key, no network), in a fresh process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
RUNNABLE = [block for block in re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
            if block.startswith("# runnable")]


def test_the_readme_has_a_runnable_snippet() -> None:
    assert RUNNABLE


@pytest.mark.parametrize("snippet", RUNNABLE)
def test_runnable_snippet_runs_as_written(snippet: str, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}  # no keys, no config
    result = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True,
                            timeout=90, env=env)
    assert result.returncode == 0, result.stderr
    assert re.match(r"^\d+ tokens; \d\.\d+(e-\d+)? USD$", result.stdout.strip()), result.stdout
