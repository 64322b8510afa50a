"""``tokentrace reconcile`` end to end: calls made through the real SDKs against the simulator, which keeps the
provider's own usage and cost reports of what it served (billed at genai-prices' list price) and serves them on the
admin endpoints; the command sets them beside the ledger. One test per verdict, per failure, per output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tokentrace
from tokentrace.simulator import Simulator, sync_client

CLI = [sys.executable, "-c", "from tokentrace.cli import main; main()"]
OPENAI_KEY = "sk-admin-SECRET-0123456789"
ANTHROPIC_KEY = "sk-ant-admin01-SECRET-0123456789"


def run(*args: str, ledger: Path, url: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "OPENAI_ADMIN_KEY": OPENAI_KEY, "ANTHROPIC_ADMIN_KEY": ANTHROPIC_KEY,
                   **(env or {})}
    done = subprocess.run([*CLI, "reconcile", *args, "--base-url", url, "--ledger", str(ledger)],
                          capture_output=True, text=True, timeout=120, env=environment)
    assert OPENAI_KEY not in done.stdout + done.stderr and ANTHROPIC_KEY not in done.stdout + done.stderr
    return done


def as_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _openai(sim: Simulator, **kwargs: Any) -> Any:
    import openai

    return openai.OpenAI(api_key="sk-test", http_client=sync_client(sim.port), max_retries=0, **kwargs)


def _chat(client: Any, model: str = "gpt-4o-mini", text: str = "one two three") -> None:
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


@pytest.fixture
def sim() -> Any:
    with Simulator() as simulator:
        yield simulator


def _instrumented(ledger: Path, **kwargs: Any) -> None:
    tokentrace.instrument(ledger=str(ledger), metrics_port=None, **kwargs)


def test_calls_made_with_tokentrace_match_and_calls_made_without_it_are_unseen_to_the_cent(
        sim: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "u.db"
    _instrumented(ledger)
    client = _openai(sim)
    for _ in range(3):
        _chat(client)
    client.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert tokentrace.flush()
    tokentrace.uninstrument()
    _chat(_openai(sim), model="gpt-4o", text="nobody measured this one")  # an app without tokentrace
    report = as_json(run("--provider", "openai", "--since", "2d", "--format", "json", ledger=ledger, url=sim.url))
    by_model = {r["model"]: r for r in report["rows"]}
    assert {m: r["verdict"] for m, r in by_model.items()} == {
        "gpt-4o-mini-2024-07-18": "matched", "text-embedding-3-small": "matched", "gpt-4o-2024-08-06": "unseen"}
    billed = {c.model: 0.0 for c in sim.billed}
    for call in sim.billed:
        billed[call.model] += call.usd
    for model, row in by_model.items():
        assert row["provider_usd"] == pytest.approx(billed[model], abs=1e-12)
        assert row["provider_tokens"] == sum(c.input_tokens + c.output_tokens for c in sim.billed if c.model == model)
    matched = by_model["gpt-4o-mini-2024-07-18"]
    assert round(matched["ledger_usd"], 2) == round(matched["provider_usd"], 2)
    assert matched["ledger_tokens"] == matched["provider_tokens"]
    assert by_model["gpt-4o-2024-08-06"]["ledger_usd"] == 0
    totals = report["totals"]
    assert totals["unseen_usd"] == pytest.approx(billed["gpt-4o-2024-08-06"], abs=1e-12)
    assert totals["gap_pct"] == pytest.approx(100 * billed["gpt-4o-2024-08-06"] / sum(billed.values()), rel=1e-6)
    table = run("--provider", "openai", "--since", "2d", ledger=ledger, url=sim.url)
    assert table.returncode == 0 and "unseen" in table.stdout and "matched" in table.stdout
    csv = run("--provider", "openai", "--since", "2d", "--format", "csv", ledger=ledger, url=sim.url)
    assert csv.returncode == 0 and csv.stdout.splitlines()[0].startswith("day,model,ledger_usd,provider_usd")


@pytest.mark.parametrize("analytics", ["on", "off"], ids=["analytics-api", "legacy-reports"])
def test_anthropic_calls_match_through_the_analytics_api_and_the_legacy_reports(sim: Any, tmp_path: Path,
                                                                                analytics: str) -> None:
    import anthropic

    ledger = tmp_path / "u.db"
    _instrumented(ledger)
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url=sim.url, max_retries=0)
    for _ in range(2):
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert tokentrace.flush()
    with sim.behaving(analytics=analytics):
        report = as_json(run("--provider", "anthropic", "--since", "1d", "--format", "json", ledger=ledger,
                             url=sim.url))
    (row,) = report["rows"]
    assert row["model"] == "claude-haiku-4-5" and row["verdict"] == "matched"
    assert row["provider_usd"] == pytest.approx(sum(c.usd for c in sim.billed), abs=1e-12)
    assert row["ledger_tokens"] == row["provider_tokens"]


def test_a_ledger_priced_differently_from_the_bill_is_a_mismatch(sim: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "u.db"
    _instrumented(ledger, prices={"models": {"gpt-4o-mini": {"provider": "openai", "input": 1.5, "output": 6.0}}})
    _chat(_openai(sim))
    assert tokentrace.flush()
    report = as_json(run("--provider", "openai", "--since", "1d", "--format", "json", "--tolerance", "1",
                         ledger=ledger, url=sim.url))
    (row,) = report["rows"]
    assert row["verdict"] == "mismatch" and row["ledger_usd"] == pytest.approx(10 * row["provider_usd"], rel=1e-9)


def test_calls_only_the_ledger_has_are_ledger_only(sim: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "u.db"
    _instrumented(ledger)
    _chat(_openai(sim))
    assert tokentrace.flush()
    with Simulator() as other:  # an organisation whose reports never saw these calls
        report = as_json(run("--provider", "openai", "--since", "1d", "--format", "json", ledger=ledger,
                             url=other.url))
    (row,) = report["rows"]
    assert row["verdict"] == "ledger_only" and row["provider_usd"] == 0 and row["ledger_usd"] > 0


def test_a_day_the_provider_has_not_closed_is_pending(httpserver: Any, tmp_path: Path) -> None:
    """Real providers report the current day before it is final: a bucket that ends after the report was read."""
    import time

    ledger = tmp_path / "u.db"
    _instrumented(ledger)
    with Simulator() as simulator:
        _chat(_openai(simulator))
    assert tokentrace.flush()
    now = int(time.time())
    start = now - now % 86400
    bucket = {"object": "bucket", "start_time": start, "end_time": start + 86400,
              "results": [{"object": "organization.usage.completions.result", "model": "gpt-4o-mini-2024-07-18",
                           "input_tokens": 5, "output_tokens": 7, "num_model_requests": 1}]}
    for kind in ("completions", "embeddings", "images", "audio_speeches", "audio_transcriptions"):
        httpserver.expect_request(f"/v1/organization/usage/{kind}").respond_with_json(
            {"object": "page", "data": [bucket] if kind == "completions" else [], "has_more": False})
    httpserver.expect_request("/v1/organization/costs").respond_with_json(
        {"object": "page", "has_more": False, "data": [{**bucket, "results": [
            {"object": "organization.costs.result", "line_item": "gpt-4o-mini-2024-07-18, input",
             "amount": {"value": 0.000001, "currency": "usd"}}]}]})
    report = as_json(run("--provider", "openai", "--since", "1d", "--format", "json", ledger=ledger,
                         url=httpserver.url_for("/").rstrip("/")))
    assert [r["verdict"] for r in report["rows"]] == ["pending"]


def test_fail_over_exits_3_when_the_unseen_share_is_above_it(sim: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "u.db"
    _instrumented(ledger)
    _chat(_openai(sim))
    assert tokentrace.flush()
    tokentrace.uninstrument()
    _chat(_openai(sim), model="gpt-4o")
    assert run("--provider", "openai", "--since", "1d", "--fail-over", "5", ledger=ledger, url=sim.url).returncode == 3
    assert run("--provider", "openai", "--since", "1d", "--fail-over", "99.9", ledger=ledger,
               url=sim.url).returncode == 0


def test_by_project_reads_the_providers_projects_and_the_ledgers_project_key(sim: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "u.db"
    _instrumented(ledger)
    for project in ("proj_a", "proj_b"):
        with tokentrace.attributes(project=project):
            _chat(_openai(sim, project=project))
    assert tokentrace.flush()
    report = as_json(run("--provider", "openai", "--since", "1d", "--by", "model", "--by", "project",
                         "--format", "json", ledger=ledger, url=sim.url))
    assert sorted((r["project"], r["verdict"]) for r in report["rows"]) == [("proj_a", "matched"),
                                                                          ("proj_b", "matched")]


@pytest.mark.parametrize("case", ["bad-key", "429", "outage", "empty-window", "before-the-ledger", "no-key"])
def test_each_failure_is_one_clear_line_exit_2_and_nothing_written(sim: Any, tmp_path: Path, case: str) -> None:
    ledger = tmp_path / "u.db"
    _instrumented(ledger)
    _chat(_openai(sim))
    assert tokentrace.flush()
    tokentrace.uninstrument()
    before = ledger.read_bytes()
    files = sorted(p.name for p in tmp_path.iterdir())
    args = ["--provider", "openai", "--since", "1d"]
    env: dict[str, str] = {}
    url = sim.url
    expected = {"bad-key": "refused the admin key", "429": "rate limiting", "outage": "could not reach",
                "empty-window": "before", "before-the-ledger": "is before it", "no-key": "set OPENAI_ADMIN_KEY"}[case]
    if case == "bad-key":
        env = {"OPENAI_ADMIN_KEY": "sk-not-an-admin-key-SECRET"}
    elif case == "outage":
        from .conftest import free_port

        url = f"http://127.0.0.1:{free_port()}"
    elif case == "empty-window":
        args = ["--provider", "openai", "--from", "2026-11-05", "--to", "2026-11-01"]
    elif case == "before-the-ledger":
        args = ["--provider", "openai", "--from", "2020-01-01", "--to", "2020-02-01"]
    elif case == "no-key":
        env = {"OPENAI_ADMIN_KEY": ""}
    with sim.behaving(admin_error="429" if case == "429" else None):
        done = run(*args, ledger=ledger, url=url, env=env)
    assert done.returncode == 2, done
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1 and expected in done.stderr
    assert "Traceback" not in done.stderr and "SECRET" not in done.stderr
    assert ledger.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == files
