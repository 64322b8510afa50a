"""Refactors change nothing observable: the demo workload's ledger rows, /metrics and spans match the reference."""

from __future__ import annotations

import json
from pathlib import Path

from tests.behaviour_snapshot import snapshot

REFERENCE = Path(__file__).parent / "data" / "demo_snapshot.json"


def test_demo_workload_records_exactly_the_reference_rows_metrics_and_spans() -> None:
    expected = json.loads(REFERENCE.read_text())
    actual = json.loads(json.dumps(snapshot()))
    assert actual["ledger"] == expected["ledger"]
    assert actual["metrics"] == expected["metrics"]
    assert actual["spans"] == expected["spans"]
