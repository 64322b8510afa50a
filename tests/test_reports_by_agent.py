"""Reports by the keys framework attribution fills (issue 42): ``--by agent|run|step``, on SQLite and PostgreSQL
alike, from the API, the CLI and GET /usage."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tokentrace.ledger.db import row_of
from tokentrace.ledger.reports import report
from tokentrace.ledger.store import open_db

from .ledger_helpers import record


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    location = str(tmp_path / "usage.db") if request.param == "sqlite" else str(request.getfixturevalue("pg_ledger"))
    now = time.time()
    db = open_db(location, create=True)
    db.insert([row_of(r) for r in (
        record(now - 90, cost=0.01, agent_id="planner", run_id="run-1", step="draft"),
        record(now - 80, cost=0.02, agent_id="writer", run_id="run-1", step="polish"),
        record(now - 70, cost=0.04, agent_id="writer", run_id="run-2", step="polish"),
        record(now - 60, cost=0.08),  # made outside any agent
    )])
    db.close()
    return location


@pytest.mark.parametrize(("by", "expected"), [
    ("agent", {"writer": (2, 0.06), "planner": (1, 0.01), "": (1, 0.08)}),
    ("run", {"run-2": (1, 0.04), "run-1": (2, 0.03), "": (1, 0.08)}),
    ("step", {"polish": (2, 0.06), "draft": (1, 0.01), "": (1, 0.08)}),
])
def test_reports_group_by_agent_run_and_step(ledger: str, by: str, expected: dict[str, tuple[int, float]]) -> None:
    rows = report(since="1d", by=by, ledger=ledger)["rows"]
    assert {r["key"]: (r["calls"], pytest.approx(r["cost_usd"])) for r in rows} == expected
    printed = subprocess.run([sys.executable, "-m", "tokentrace", "report", "--since", "1d", "--by", by, "--format",
                              "json", "--ledger", ledger], capture_output=True, text=True, check=True).stdout
    assert {r["key"] for r in json.loads(printed)["rows"]} == set(expected)


def test_usage_endpoint_takes_the_new_keys(ledger: str) -> Any:
    from starlette.testclient import TestClient

    from tokentrace import usage_app

    with TestClient(usage_app(ledger=ledger)) as client:
        answer = client.get("/usage", params={"by": "agent", "since": "1d"})
    assert answer.status_code == 200
    assert {r["key"] for r in answer.json()["rows"]} == {"writer", "planner", ""}
