"""The documentation site builds in strict mode (a broken link fails), and its reference cannot drift from the
code: every environment variable the code reads is in the generated table, every CLI command in the generated
reference."""

from __future__ import annotations

import html
import inspect
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
    configuration = (site / "configuration" / "index.html").read_text(encoding="utf-8")
    assert "TOKENTRACE_LEDGER_QUEUE_SIZE" in configuration
    # issue 43 item 6: names in table cells are never broken mid-word
    assert "stylesheets/extra.css" in configuration
    assert "white-space: nowrap" in (site / "stylesheets" / "extra.css").read_text(encoding="utf-8")
    assert "Tiers, modifiers and fees" in (site / "index.html").read_text(encoding="utf-8")  # the README
    # issue 43 item 6: the CLI reference fits 80 columns (no block scrolls sideways)
    blocks = re.findall(r"<pre><span></span><code>(.*?)</code></pre>", cli, re.S)
    widths = [len(html.unescape(re.sub(r"<[^>]+>", "", line))) for block in blocks for line in block.splitlines()]
    assert blocks and max(widths) <= 80
    # issue 43 item 5: every public name has its section, with its signature and docstring
    import tokentrace

    api = html.unescape((site / "api" / "index.html").read_text(encoding="utf-8"))
    for name in tokentrace.__all__:
        assert re.search(rf"<h2[^>]*><code>{re.escape(name)}</code>", api), name
    for parameter in inspect.signature(tokentrace.instrument).parameters:
        assert f"    {parameter}" in re.sub(r"<[^>]+>", "", api), parameter  # one parameter a line


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    from tokentrace.config import ENVIRONMENT

    read = set()
    for path in (ROOT / "src" / "tokentrace").rglob("*.py"):
        read |= set(re.findall(r"TOKENTRACE_[A-Z][A-Z_0-9]*", path.read_text(encoding="utf-8")))
    documented = {name for name, _ in ENVIRONMENT}
    assert read - documented == set()


# ---- claims in the docs that the code can check (issue 43 item 7)

def _page(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def test_the_ledger_page_lists_every_column_and_every_schema_version() -> None:
    from tokentrace.ledger.db import COLUMNS
    from tokentrace.ledger.schema import SCHEMA_VERSION

    page = _page("docs/ledger-and-reports.md")
    listed = re.search(r"Columns: (.*?)\.\n", page, re.S)
    assert listed is not None
    names = [n.strip() for part in re.findall(r"`([^`]+)`", listed.group(1)) for n in part.split(",") if n.strip()]
    assert names == ["id", *COLUMNS]
    for version in range(2, SCHEMA_VERSION + 1):
        assert re.search(rf"version\s+{version} ", page), f"schema version {version} is not described"


def test_the_changelog_quotes_the_backfill_step_the_code_takes() -> None:
    from tokentrace.budgets.principal_spend import BACKFILL_ROWS

    quoted = re.search(r"backfilled in steps of\s+([\d,]+) rows", _page("CHANGELOG.md"))
    assert quoted is not None and int(quoted.group(1).replace(",", "")) == BACKFILL_ROWS


def test_no_page_sends_users_to_a_file_they_do_not_have() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert [p.name for p in pages if "CONTRACT.md" in p.read_text(encoding="utf-8")] == []


def test_the_compose_files_header_runs_the_app_where_its_prometheus_can_scrape_it() -> None:
    header = [line for line in _page("docker-compose.observability.yml").splitlines() if line.startswith("#")]
    demo = next(line for line in header if "tokentrace demo" in line)
    assert "--metrics-addr 0.0.0.0" in demo  # Prometheus scrapes from its container, not the host's loopback
    otlp = next(line for line in header if "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318" in line)
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in otlp  # 4318 is the Collector's HTTP port; gRPC is default
