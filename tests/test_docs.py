"""The documentation site builds in strict mode (a broken link fails), and its reference cannot drift from the
code: every environment variable the code reads is in the generated table, every CLI command in the generated
reference."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_site_builds_strictly_with_the_generated_reference(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr
    cli = (site / "cli" / "index.html").read_text(encoding="utf-8")
    for command in ("report", "stats", "export", "budget", "prices", "demo"):
        assert f"tokentrace {command}" in cli
    assert "TOKENTRACE_LEDGER_QUEUE_SIZE" in (site / "configuration" / "index.html").read_text(encoding="utf-8")
    assert "Tiers, modifiers and fees" in (site / "index.html").read_text(encoding="utf-8")  # the README


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    from tokentrace.config import ENVIRONMENT

    read = set()
    for path in (ROOT / "src" / "tokentrace").rglob("*.py"):
        read |= set(re.findall(r"TOKENTRACE_[A-Z][A-Z_0-9]*", path.read_text(encoding="utf-8")))
    documented = {name for name, _ in ENVIRONMENT}
    assert read - documented == set()
