"""Batch API results through the real SDKs against the simulator: one record per completed OpenAI batch and per
succeeded Anthropic result, priced at the Batch rates worked out here by hand, attributed as the batch was when it
was created, written to the ledger once whoever retrieves it (another process, a restart), counted by budgets
and never refused by them."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tokentrace
from tokentrace.testing import capture_usage

from .conftest import make_telemetry, openai_client

ROOT = Path(__file__).resolve().parents[1]
REQUESTS = [{"custom_id": f"r{i}", "params": {"model": "claude-haiku-4-5", "max_tokens": 5,
                                              "messages": [{"role": "user", "content": "one two"}]}}
            for i in range(3)] + [{"custom_id": "fail-3", "params": {"model": "claude-haiku-4-5", "max_tokens": 5,
                                                                    "messages": [{"role": "user", "content": "x"}]}}]


def _rows(ledger: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(ledger)
    conn.row_factory = sqlite3.Row
    return [dict(r) for r in conn.execute("SELECT * FROM llm_usage WHERE operation = 'batch' ORDER BY id")]


def _anthropic(simulator: Any) -> Any:
    import anthropic

    return anthropic.Anthropic(api_key="sk-ant-test", base_url=simulator.url, max_retries=0)


def _openai_batch(client: Any) -> Any:
    return client.batches.create(input_file_id="file-sim", endpoint="/v1/chat/completions",
                                 completion_window="24h", metadata={"model": "gpt-4o-mini"})


def test_a_completed_openai_batch_is_one_row_at_batch_rates_attributed_as_created(simulator: Any,
                                                                                  tmp_path: Path) -> None:
    ledger = tmp_path / "usage.db"
    telemetry = make_telemetry(prices=None, ledger=ledger)
    client = openai_client(simulator)
    with tokentrace.attributes(feature="evals", user_id="bob"):
        batch = _openai_batch(client)
    assert batch.status == "validating"
    with capture_usage() as records:
        first = client.batches.retrieve(batch.id)  # outside the attributes: the batch keeps its own
        client.batches.retrieve(batch.id)  # read again: not recorded again
    assert first.status == "completed" and first.usage is not None
    assert tokentrace.flush()
    (record,) = records
    (row,) = _rows(ledger)
    # gpt-4o-mini at Batch rates (developers.openai.com pricing): $0.075 in, $0.075 cached (the Batch table has no
    # cached rate, so the standard one), $0.30 out per MTok; the simulator's batch: 1,000 in (200 cached), 500 out
    expected = (800 * 0.075 + 200 * 0.075 + 500 * 0.30) / 1e6
    assert record.cost_usd == pytest.approx(expected, rel=1e-12) and row["cost_usd"] == pytest.approx(expected)
    assert (row["operation"], row["response_id"], row["service_tier"]) == ("batch", batch.id, "batch")
    assert (row["feature"], row["user_id"]) == ("evals", "bob")
    assert "processing=batch" in row["price_source"]
    assert telemetry.sample("chat_cost_usd_total", provider="openai", model="gpt-4o-mini", operation="batch",
                            feature="evals") == pytest.approx(expected)


def test_an_unfinished_batch_records_nothing(simulator: Any) -> None:
    make_telemetry(prices=None)
    client = openai_client(simulator)
    with capture_usage() as records:
        _openai_batch(client)
    assert records == []


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_each_succeeded_anthropic_result_is_a_row_and_an_errored_one_is_not(simulator: Any, tmp_path: Path,
                                                                          mode: str) -> None:
    import anthropic

    ledger = tmp_path / "usage.db"
    make_telemetry(prices=None, ledger=ledger)
    client = _anthropic(simulator)
    with tokentrace.attributes(feature="offline"):
        batch = client.messages.batches.create(requests=REQUESTS)  # type: ignore[arg-type]
    with capture_usage() as records:
        if mode == "sync":
            seen = [item.custom_id for item in client.messages.batches.results(batch.id)]
        else:
            async def read() -> list[str]:
                async_client = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=simulator.url)
                return [item.custom_id async for item in await async_client.messages.batches.results(batch.id)]

            seen = asyncio.run(read())
    assert seen == ["r0", "r1", "r2", "fail-3"]  # the caller reads every result, unchanged
    assert tokentrace.flush()
    assert sorted(r.response_id or "" for r in records) == [f"{batch.id}/r{i}" for i in range(3)]
    rows = _rows(ledger)
    assert len(rows) == 3 and {r["feature"] for r in rows} == {"offline"}
    for record in records:  # claude-haiku-4-5 Batch rates: $0.50 in, $2.50 out per MTok
        expected = (record.usage.input * 0.5 + record.usage.output * 2.5) / 1e6
        assert record.cost_usd == pytest.approx(expected, rel=1e-12) and record.service_tier == "batch"


RETRIEVE_AGAIN = """
import json, sys
import openai, tokentrace
from tokentrace.simulator import sync_client
from tokentrace.testing import capture_usage

tokentrace.instrument(ledger=sys.argv[1], metrics_port=None)
client = openai.OpenAI(api_key="sk-test", max_retries=0, http_client=sync_client(int(sys.argv[2])))
with capture_usage() as records:
    client.batches.retrieve(sys.argv[3])
print(json.dumps([dict(r.attributes) for r in records]))
print(tokentrace.flush())
"""


def test_another_process_or_a_restart_retrieving_the_batch_adds_no_row_and_knows_its_attribution(
        simulator: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "usage.db"
    make_telemetry(prices=None, ledger=ledger)
    client = openai_client(simulator)
    with tokentrace.attributes(feature="evals"):
        batch = _openai_batch(client)
    assert tokentrace.flush()
    tokentrace.uninstrument()
    seen = []
    for _ in range(3):  # three other processes read the same completed batch, one after another
        result = subprocess.run([sys.executable, "-c", RETRIEVE_AGAIN, str(ledger), str(simulator.port), batch.id],
                                capture_output=True, text=True, timeout=120, cwd=ROOT,
                                env={**os.environ, "XDG_DATA_HOME": str(tmp_path)})
        assert result.returncode == 0, result.stderr
        attributed, flushed = result.stdout.strip().splitlines()
        assert flushed == "True"
        seen.append(json.loads(attributed))
    # the first knows the batch's attribution from the ledger's record of its creation, and records it; the others
    # find its row written and record nothing, so sum() of a counter over the fleet counts it once (issue 38, #10)
    assert seen == [[{"feature": "evals"}], [], []]
    rows = _rows(ledger)
    assert len(rows) == 1 and rows[0]["response_id"] == batch.id


def test_budgets_count_batch_results_when_they_land_and_never_refuse_them(simulator: Any) -> None:
    budget = tokentrace.Budget("tiny", limit_usd=0.0001, action="block")
    make_telemetry(prices=None, budgets=[budget])
    client = openai_client(simulator)
    batch = _openai_batch(client)
    with capture_usage() as records:
        client.batches.retrieve(batch.id)  # $0.000225 lands on a $0.0001 block budget: recorded, not refused
    assert [r.status for r in records] == ["ok"]
    with pytest.raises(tokentrace.BudgetExceeded):  # and the next call is refused: the budget counted it
        client.chat.completions.create(model="gpt-4o-mini", max_tokens=5,
                                       messages=[{"role": "user", "content": "hi"}])
