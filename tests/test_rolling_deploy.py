"""A rolling deploy with two real versions on one ledger: an earlier release (its wheel, kept in
``tests/data/releases/``, installed into a directory of its own: 0.2.0 at ledger schema 4, 0.3.0 at schema 7) writes
while this version migrates the ledger.

The older process must refuse to write rows in its older layout into the newer schema, loudly (logged, counted in
its internal-error metric) and with ``flush()`` False; no row it wrote before is lost; and the roll-up every report
and budget reads adds up to the rows (the under-count of two versions on one ledger, hardening finding 6)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tokentrace
from tokentrace._version import __version__
from tokentrace.ledger import reports
from tokentrace.ledger.schema import SCHEMA_VERSION
from tokentrace.ledger.store import open_db

from .conftest import make_telemetry, openai_client

RELEASES = Path(__file__).parent / "data" / "releases"
EARLIER = {"0.2.0": 4, "0.3.0": 7}
"""Each kept release and the ledger schema it writes."""
PRICES = {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}

OLD_APP = r"""
import json, sys
import openai
import tokentrace
from tokentrace import _errors
from tokentrace.simulator import Simulator

ledger, before, after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with Simulator() as sim:
    tokentrace.instrument(ledger=ledger, prices=json.loads(sys.argv[4]), metrics_port=None)
    client = openai.OpenAI(api_key="sk-test", base_url=sim.url.rstrip("/") + "/v1", max_retries=0)
    ask = lambda: client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a b"}])
    for _ in range(before):
        ask()
    first = tokentrace.flush(10)
    print("written", flush=True)
    sys.stdin.readline()  # the new version migrates the ledger meanwhile
    for _ in range(after):
        ask()
    second = tokentrace.flush(10)
    print(json.dumps({"version": tokentrace.__version__, "first": first, "second": second,
                      "errors": _errors.counts()}), flush=True)
"""


@pytest.fixture(scope="module", params=sorted(EARLIER))
def previous_release(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """An earlier release installed (pip, no dependencies: they are this environment's) into its own directory,
    and its version."""
    version = request.param
    target = tmp_path_factory.mktemp(f"tokentrace-{version}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(target), str(RELEASES / f"tokentrace-{version}-py3-none-any.whl")], check=True)
    return target, version


def _old_app(previous: Path, ledger: Path, before: int, after: int) -> subprocess.Popen[str]:
    env = {"PYTHONPATH": str(previous), "PATH": "/usr/bin:/bin", "HOME": str(ledger.parent)}
    return subprocess.Popen([sys.executable, "-c", OLD_APP, str(ledger), str(before), str(after),
                             json.dumps(PRICES)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ledger.parent)


def _schema(ledger: Path) -> int:
    return int(sqlite3.connect(ledger).execute("PRAGMA user_version").fetchone()[0])


def _sums(ledger: Path) -> tuple[int, float, float]:
    """(rows, cost of the rows, cost the hourly roll-up holds)."""
    conn = sqlite3.connect(ledger)
    rows, cost = conn.execute("SELECT COUNT(*), SUM(cost_usd) FROM llm_usage").fetchone()
    (rolled,) = conn.execute("SELECT SUM(cost_usd) FROM llm_usage_hourly").fetchone()
    return int(rows), float(cost), float(rolled)


def test_the_previous_release_refuses_loudly_to_write_into_the_migrated_ledger(
        simulator: Any, tmp_path: Path, previous_release: tuple[Path, str]) -> None:
    release, version = previous_release
    previous_schema = EARLIER[version]
    assert __version__ != version and previous_schema < SCHEMA_VERSION
    ledger = tmp_path / "usage.db"
    old = _old_app(release, ledger, before=20, after=15)
    assert old.stdout is not None and old.stdin is not None
    assert old.stdout.readline().strip() == "written"
    assert _schema(ledger) == previous_schema and _sums(ledger)[0] == 20  # the old layout, its rows all there

    make_telemetry(ledger=ledger, prices=PRICES)  # the new version starts: it migrates, then writes its own rows
    with openai_client(simulator) as client:
        for _ in range(10):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a b"}])
    assert tokentrace.flush(10)
    assert _schema(ledger) == SCHEMA_VERSION

    out, err = old.communicate("go\n", timeout=120)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["version"] == version and result["first"] is True
    assert result["second"] is False  # its later rows were dropped: flush says so
    assert result["errors"].get("ledger.schema", 0) >= 1  # counted in tokentrace_internal_errors_total
    assert f"newer than this tokentrace's ({previous_schema})" in err  # and logged, saying what to do
    rows, cost, rolled = _sums(ledger)
    assert rows == 30  # 20 of the old version's, 10 of the new one's: nothing under-counted, nothing mixed in
    assert rolled == pytest.approx(cost, rel=1e-12)  # reports and budgets read the same spend as the rows hold
    report = reports.report(since="1d", by="feature", ledger=ledger)
    assert report["totals"]["calls"] == 30 and report["totals"]["cost_usd"] == pytest.approx(cost, rel=1e-12)


def test_the_previous_release_started_on_a_migrated_ledger_writes_nothing_and_says_so(
        tmp_path: Path, previous_release: tuple[Path, str]) -> None:
    ledger = tmp_path / "usage.db"
    open_db(ledger, create=True).close()  # what this version does at start-up
    assert _schema(ledger) == SCHEMA_VERSION
    old = _old_app(previous_release[0], ledger, before=5, after=0)
    out, err = old.communicate("go\n", timeout=120)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["first"] is False and result["errors"].get("ledger.open", 0) >= 1  # refused at open, counted
    assert "newer than this tokentrace" in err
    assert sqlite3.connect(ledger).execute("SELECT COUNT(*) FROM llm_usage").fetchone()[0] == 0
