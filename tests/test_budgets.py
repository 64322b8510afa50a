"""Budgets: block before the request is sent, never overshoot under concurrency, survive a restart, warn once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import tokentrace
from tokentrace import Budget, BudgetError, BudgetExceeded
from tokentrace.budgets import load_budgets
from tokentrace.testing import capture_usage

from .cases import MESSAGES
from .conftest import make_telemetry, openai_async_client, openai_client

# estimate per call: ceil(13 / 3) + 8 = 13 input tokens, max_tokens 5 output -> (13*0.15 + 5*0.6) / 1e6 USD
ESTIMATE = (13 * 0.15 + 5 * 0.6) / 1e6
ACTUAL = (7 * 0.15 + 5 * 0.6) / 1e6


def _chat(client: Any, **kwargs: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5, **kwargs)


def test_a_block_budget_refuses_the_call_that_would_pass_the_limit(simulator: Any, tmp_path: Path) -> None:
    budget = Budget("daily", period="day", limit_usd=ESTIMATE * 3.5, action="block")
    telemetry = make_telemetry(budgets=[budget], ledger=tmp_path / "usage.db")
    sent = 0
    with openai_client(simulator) as client, capture_usage() as records:
        for _ in range(10):
            try:
                _chat(client)
                sent += 1
            except BudgetExceeded as exc:
                assert exc.budget is budget
                assert "not sent" in str(exc)
                break
    # spent after n calls = n * ACTUAL; call n+1 goes while n*ACTUAL + ESTIMATE <= limit
    expected = next(n for n in range(20) if n * ACTUAL + ESTIMATE > budget.limit_usd)
    assert sent == expected
    assert [r.status for r in records] == ["ok"] * sent + ["blocked"]
    assert records[-1].cost_usd == 0 and records[-1].usage.total == 0
    # the refused call carries the name its model was answered under: one model, one label
    assert records[-1].model == records[0].model == "gpt-4o-mini-2024-07-18"
    labels = {"provider": "openai", "model": "gpt-4o-mini-2024-07-18", "operation": "chat", "feature": ""}
    assert telemetry.sample("llm_requests_total", **labels, status="blocked") == 1
    assert telemetry.sample("llm_budget_limit_usd", budget="daily") == budget.limit_usd
    # a ledger's budget gauges are the fleet-wide reading the background thread keeps (a scrape never queries)
    assert telemetry.settled_sample("llm_budget_spent_usd", sent * ACTUAL, budget="daily") == pytest.approx(
        sent * ACTUAL)
    span = telemetry.finished_spans()[-1]
    assert span.attributes["error.type"] == "BudgetExceeded"


def test_50_concurrent_calls_against_a_budget_that_fits_10_send_at_most_10(simulator: Any) -> None:
    budget = Budget("tight", limit_usd=ESTIMATE * 10, action="block")
    make_telemetry(budgets=[budget])
    outcomes: list[str] = []

    async def go() -> None:
        async with openai_async_client(simulator) as client:

            async def one() -> None:
                try:
                    await _chat(client, extra_headers={"x-sim-latency-ms": "50"})
                    outcomes.append("sent")
                except BudgetExceeded:
                    outcomes.append("blocked")

            await asyncio.gather(*(one() for _ in range(50)))

    asyncio.run(go())
    assert outcomes.count("sent") == 10  # reservations: no overshoot, and no call refused needlessly
    assert outcomes.count("blocked") == 40


def test_a_budget_survives_a_restart(simulator: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "usage.db"
    budget = Budget("daily", limit_usd=ESTIMATE * 3.5, action="block")
    make_telemetry(budgets=[budget], ledger=ledger)
    with openai_client(simulator) as client:
        _chat(client)
        _chat(client)
    tokentrace.flush()
    tokentrace.uninstrument()

    telemetry = make_telemetry(budgets=[budget], ledger=ledger)  # a "new process": spend seeded from the ledger
    assert telemetry.settled_sample("llm_budget_spent_usd", 2 * ACTUAL, budget="daily") == pytest.approx(2 * ACTUAL)
    sent_after_restart = 0
    with openai_client(simulator) as client:
        while sent_after_restart < 20:
            try:
                _chat(client)
            except BudgetExceeded:
                break
            sent_after_restart += 1
    expected_total = next(n for n in range(20) if n * ACTUAL + ESTIMATE > budget.limit_usd)
    assert 2 + sent_after_restart == expected_total  # the restart did not reset the budget


def test_scope_limits_a_budget_to_matching_calls(simulator: Any) -> None:
    budget = Budget("chat-only", limit_usd=0.0, scope={"feature": "chat"}, action="block")
    make_telemetry(budgets=[budget])
    with openai_client(simulator) as client:
        with tokentrace.attributes(feature="search"):
            _chat(client)
        with tokentrace.attributes(feature="chat"), pytest.raises(BudgetExceeded):
            _chat(client)


def test_a_token_budget_blocks_too(simulator: Any) -> None:
    make_telemetry(budgets=[Budget("tokens", limit_tokens=40, action="block")])
    with openai_client(simulator) as client:
        _chat(client)  # estimate 18 tokens; actual 12
        _chat(client)  # 12 + 18 <= 40
        with pytest.raises(BudgetExceeded):
            _chat(client)  # 24 + 18 > 40


def test_a_warn_budget_logs_and_calls_back_once_per_crossing(simulator: Any,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    crossings: list[tuple[str, float]] = []
    budget = Budget("soft", limit_usd=ACTUAL * 2, action="warn",
                    on_exceeded=lambda b, usd, tokens: crossings.append((b.name, usd)))
    make_telemetry(budgets=[budget])
    with openai_client(simulator) as client:
        for _ in range(5):
            _chat(client)  # never blocked
    assert crossings == [("soft", pytest.approx(ACTUAL * 2))]
    assert len([r for r in caplog.records if "budget 'soft'" in r.getMessage()]) == 1


def test_a_failed_call_releases_its_reservation(simulator: Any) -> None:
    budget = Budget("daily", limit_usd=ESTIMATE * 1.5, action="block")
    make_telemetry(budgets=[budget])
    with openai_client(simulator) as client:
        for _ in range(3):
            with pytest.raises(Exception, match="Rate limit"):
                _chat(client, extra_headers={"x-sim-error": "429"})
        _chat(client)  # the failures spent nothing


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        ("day", "2026-11-23T15:00:00+00:00", "2026-11-23T00:00:00+00:00", "2026-11-24T00:00:00+00:00"),
        ("week", "2026-11-26T15:00:00+00:00", "2026-11-23T00:00:00+00:00", "2026-11-30T00:00:00+00:00"),
        ("month", "2026-12-31T23:59:00+00:00", "2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"),
    ],
)
def test_periods_are_calendar_periods_in_utc(period: str, now: str, start: str, end: str) -> None:
    b = Budget("b", period=period, limit_usd=1)
    begin, stop = b.period_bounds(datetime.fromisoformat(now))
    assert (begin, stop) == (datetime.fromisoformat(start), datetime.fromisoformat(end))


def test_periods_follow_a_configured_time_zone() -> None:
    b = Budget("b", period="day", limit_usd=1, timezone="America/New_York")
    begin, stop = b.period_bounds(datetime(2026, 11, 23, 3, 0, tzinfo=UTC))  # 22:00 the day before in NY
    assert begin.astimezone(UTC) == datetime(2026, 11, 22, 5, 0, tzinfo=UTC)
    assert stop - begin == (stop - begin)  # 24 h outside DST changes
    assert (stop.astimezone(UTC) - begin.astimezone(UTC)).total_seconds() == 86400


def test_budgets_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text('[[budget]]\nname = "chat"\nperiod = "week"\nlimit_usd = 25\naction = "block"\n'
                    '[budget.scope]\nfeature = "chat"\n\n[[budget]]\nname = "all"\nperiod = "month"\n'
                    'limit_tokens = 1000000\n')
    chat, everything = load_budgets(path)
    assert chat == Budget("chat", period="week", limit_usd=25, scope={"feature": "chat"}, action="block")
    assert everything.limit_tokens == 1_000_000 and everything.action == "warn"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"period": "year", "limit_usd": 1}, "period"),
        ({"action": "stop", "limit_usd": 1}, "action"),
        ({}, "limit_usd, limit_tokens and/or limit_requests"),
        ({"limit_usd": -1}, "negative"),
        ({"limit_usd": 1, "timezone": "Mars/Olympus"}, "time zone"),
    ],
)
def test_bad_budgets_are_clear_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(BudgetError, match=message):
        Budget("b", **kwargs)


def test_budget_period_rolls_over(simulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    budget = Budget("daily", limit_usd=ESTIMATE * 1.5, action="block")
    telemetry = make_telemetry(budgets=[budget])
    with openai_client(simulator) as client:
        _chat(client)
        with pytest.raises(BudgetExceeded):
            _chat(client)
        sink = telemetry.handle.sink("budget")
        for account in sink._accounts:  # jump to the next period
            account.period_end = time.time() - 1
        _chat(client)


@pytest.mark.parametrize(("text", "problem"), [
    ('[[buget]]\nname = "daily"\nlimit_usd = 1\n', "unknown table"),
    ("", "defines no budget"),
    ("# only a comment\n", "defines no budget"),
    ('[[budget]]\nname = "chat"\nlimit_usd = 1\naction = "block"\nscope = { featur = "chat" }\n',
     "misspelling of 'feature'"),
])
def test_a_budgets_file_that_would_turn_budgets_off_silently_is_refused(tmp_path: Path, text: str,
                                                                         problem: str) -> None:
    from .test_cli import run_cli

    path = tmp_path / "budgets.toml"
    path.write_text(text)
    with pytest.raises(tokentrace.ConfigError, match=problem):  # BudgetError is a ConfigError
        tokentrace.instrument(ledger=False, budgets=str(path))
    result = run_cli("budget", "--budgets", str(path), "--ledger", str(tmp_path / "none.db"), tmp=tmp_path)
    assert result.returncode == 2 and problem.split()[0] in result.stderr and "Traceback" not in result.stderr


def test_a_refusal_names_spend_and_reservations_and_prints_dollars_one_way() -> None:
    """Issue 43 item 9: ``limit $1e-07`` and a spend that moved down between refusals (other workers' reservations
    ending) read as a bug; the message says what the figure holds and prints every amount with the one formatter."""
    budget = tokentrace.Budget("tiny", limit_usd=1e-7, action="block")
    message = str(tokentrace.BudgetExceeded(budget, 0.00012, 40, 0.00005, 14))
    assert "limit $0.0000001)" in message and "e-0" not in message
    assert "spent and reserved $0.000120 and 40 tokens this day" in message
    assert "this call could cost up to $0.000050 and 14 tokens" in message


def test_a_refusal_says_what_its_estimate_is_made_of(simulator: Any) -> None:
    """Issue 43 item 10: LiteLLM fills max_tokens of about 64,000 for Anthropic models, and the refusal it causes
    must say so: the prompt, the output the request may ask for and where that number came from."""
    make_telemetry(budgets=[tokentrace.Budget("tiny", limit_usd=1e-7, action="block")])
    with openai_client(simulator) as client:
        with pytest.raises(tokentrace.BudgetExceeded) as refused:
            client.chat.completions.create(model="gpt-4o-mini", max_tokens=64_000,
                                           messages=[{"role": "user", "content": "hello there"}])
        with pytest.raises(tokentrace.BudgetExceeded) as unbounded:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
    assert "64,000 output tokens, the request's max_tokens; a lower max_tokens lowers it" in str(refused.value)
    assert "prompt tokens from 11 characters" in str(refused.value)
    assert "4,096 output tokens, no max_tokens given: the default" in str(unbounded.value)
