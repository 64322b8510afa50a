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
    assert re.match(r"^\d+ tokens, \$0\.\d{6}$", result.stdout.strip()), result.stdout  # no 5.55e-06


def test_every_shell_command_in_the_readme_is_one_ci_runs() -> None:
    """The two set-up commands are run as written by ``.ci/run`` (it greps them out of the README); any other
    shell command in the README would go untested."""
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for block in re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
                for line in block.strip().splitlines()]
    patterns = re.findall(r"grep -m1 -E '([^']+)' README.md", ci)
    assert len(commands) == 2 and len(patterns) == 2
    for command in commands:
        assert sum(bool(re.match(p, command)) for p in patterns) == 1, command


@pytest.mark.parametrize("block", re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S))
def test_every_toml_snippet_in_the_readme_is_a_prices_file_tokentrace_accepts(block: str, tmp_path: Path) -> None:
    from tokentrace.price_overrides import parse_overrides

    path = tmp_path / "prices.toml"
    path.write_text(block, encoding="utf-8")
    parsed = parse_overrides(path)
    assert parsed.modifiers
