"""The README's snippets marked ``# runnable`` run as written (no API key, no network), in a fresh process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    promised = re.search(r"print\(.*\)  # (.+)$", snippet, re.M)
    assert promised is not None and result.stdout.strip() == promised.group(1)  # what the comment says it prints
    again = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True,
                           timeout=90, env=env)
    assert again.stdout == result.stdout  # a second run prints the same: nothing accumulates across runs


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
    from tokentrace.pricing.overrides import parse_overrides

    path = tmp_path / "prices.toml"
    path.write_text(block, encoding="utf-8")
    parsed = parse_overrides(path)
    assert parsed.modifiers


OTHER_SNIPPETS = [block for block in re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
                  if not block.startswith("# runnable")]


@pytest.mark.parametrize("snippet", OTHER_SNIPPETS)
def test_every_other_python_snippet_runs_against_the_simulator(snippet: str, simulator: Any,
                                                               tmp_path: Path) -> None:
    """The snippets written for a real provider run as written, the openai SDK pointed at the simulator through
    its own environment variables (no code changed), in a fresh process with no other configuration."""
    port = simulator.port
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path),
           "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1", "OPENAI_API_KEY": "sk-test"}
    check = ("\nimport tokentrace\nassert tokentrace.flush(10)\n"
             "print(tokentrace.report(since='1h')['totals']['calls'] if 'client' in dir() else 'instrumented')\n")
    result = subprocess.run([sys.executable, "-c", snippet + check], cwd=tmp_path, capture_output=True, text=True,
                            timeout=90, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in ("1", "instrumented"), result.stdout
