"""tokentrace.run_budget: a budget for the calls made inside one block, before the bytes leave, exact under threads
and tasks started inside it, nesting with each other and with the configured budgets."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import tokentrace
from tokentrace import Budget, BudgetError, BudgetExceeded
from tokentrace._support import errors as _errors
from tokentrace.testing import capture_usage

from .cases import MESSAGES
from .conftest import make_telemetry, openai_async_client, openai_client

ESTIMATE = (13 * 0.15 + 5 * 0.6) / 1e6  # as tests/test_budgets.py: the estimate of one call below
ACTUAL = (7 * 0.15 + 5 * 0.6) / 1e6


def _chat(client: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)


@pytest.fixture
def instrumented() -> Any:
    tokentrace.uninstrument()
    yield make_telemetry()
    tokentrace.uninstrument()


def test_a_run_budget_refuses_before_sending_and_counts_exactly_what_its_calls_cost(simulator: Any,
                                                                                     instrumented: Any) -> None:
    with openai_client(simulator) as client, capture_usage() as records:
        _chat(client)  # outside any run: not counted by one
        with tokentrace.run_budget(ESTIMATE * 3.5, name="agent-run") as run:
            sent_before = len(simulator.served)
            outcomes = []
            for _ in range(6):
                try:
                    _chat(client)
                    outcomes.append("ok")
                except BudgetExceeded as exc:
                    outcomes.append("refused")
                    assert "run budget 'agent-run'" in str(exc) and "not sent" in str(exc)
            assert len(simulator.served) - sent_before == outcomes.count("ok")
            assert run.spent_usd == pytest.approx(sum(r.cost_usd for r in records[1:] if r.status == "ok"),
                                                  rel=1e-12)
    expected = next(n for n in range(20) if n * ACTUAL + ESTIMATE > ESTIMATE * 3.5)
    assert outcomes == ["ok"] * expected + ["refused"] * (6 - expected)
    assert (run.requests, run.spent_tokens) == (expected, expected * 12)
    assert run.spent_usd == pytest.approx(expected * ACTUAL, rel=1e-12)  # readable after the run
    with openai_client(simulator) as client:
        _chat(client)  # after the run: admitted, and not counted by it
    assert run.requests == expected


def test_threads_and_tasks_started_inside_the_block_count_exactly(simulator: Any, instrumented: Any) -> None:
    """50 calls at once from 8 threads (each started with the block's context) against 10 calls: exactly 10 go."""
    with openai_client(simulator) as client, tokentrace.run_budget(limit_requests=10) as run:
        def one() -> str:
            try:
                _chat(client)
                return "ok"
            except BudgetExceeded:
                return "refused"

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(contextvars.copy_context().run, one) for _ in range(50)]  # copied here, inside
            outcomes = [future.result() for future in futures]
    assert outcomes.count("ok") == run.requests == 10

    async def tasks() -> tuple[list[Any], tokentrace.run_budget]:
        async with openai_async_client(simulator) as client:
            async with tokentrace.run_budget(limit_tokens=12 * 7) as run:  # 12 tokens a call: 7 calls fit
                results = await asyncio.gather(*(client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, max_tokens=5) for _ in range(20)),
                    return_exceptions=True)
        return results, run

    results, run = asyncio.run(tasks())
    admitted = [r for r in results if not isinstance(r, BaseException)]
    assert all(isinstance(r, BudgetExceeded) for r in results if isinstance(r, BaseException))
    # each call holds its 18-token estimate until it ends: at least 4 fit at once, never more than 7 in all
    assert 4 <= len(admitted) == run.requests <= 7 and run.spent_tokens == 12 * run.requests


def test_nested_run_budgets_each_count_the_calls_inside_them(simulator: Any, instrumented: Any) -> None:
    with openai_client(simulator) as client, tokentrace.run_budget(limit_requests=5, name="request") as outer:
        _chat(client)
        with tokentrace.run_budget(limit_requests=2, name="tool") as inner:
            _chat(client)
            _chat(client)
            with pytest.raises(BudgetExceeded, match="run budget 'tool'"):
                _chat(client)
        _chat(client)
        _chat(client)
        with pytest.raises(BudgetExceeded, match="run budget 'request'"):
            _chat(client)
    assert (outer.requests, inner.requests) == (5, 2)


def test_a_configured_budget_refusing_gives_the_run_its_estimate_back(simulator: Any, tmp_path: Path) -> None:
    tokentrace.uninstrument()
    make_telemetry(budgets=[Budget("daily", limit_requests=2, action="block")])
    try:
        with openai_client(simulator) as client, tokentrace.run_budget(limit_requests=3) as run:
            _chat(client)
            _chat(client)
            with pytest.raises(BudgetExceeded, match="'daily'"):
                _chat(client)
        assert run.requests == 2 and run._reserved == (0.0, 0, 0)
    finally:
        tokentrace.uninstrument()


def test_warn_run_budget_logs_once_and_never_refuses(simulator: Any, instrumented: Any,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tokentrace"), openai_client(simulator) as client:
        with tokentrace.run_budget(limit_requests=1, action="warn", name="soft") as run:
            for _ in range(3):
                _chat(client)
    assert run.requests == 3
    assert [r.getMessage() for r in caplog.records if "soft" in r.getMessage()] == [
        "run budget 'soft' (limit 1 calls) passed: $0.000008 and 24 tokens in 2 calls"]  # logged once, not at 3


def test_as_a_decorator_each_call_is_a_run_of_its_own(simulator: Any, instrumented: Any) -> None:
    budget = tokentrace.run_budget(limit_requests=2)

    @budget
    def handler(calls: int) -> None:
        with openai_client(simulator) as client:
            for _ in range(calls):
                _chat(client)

    handler(2)
    handler(2)  # a fresh run: not refused by the first one's calls
    assert budget.last_run is not None and budget.last_run.requests == 2
    with pytest.raises(BudgetExceeded):
        handler(3)


def test_exited_from_another_thread_it_stops_applying_and_nothing_breaks(simulator: Any,
                                                                        instrumented: Any) -> None:
    _errors.reset()
    run = tokentrace.run_budget(limit_requests=1)
    run.__enter__()
    exiting = threading.Thread(target=run.__exit__, args=(None, None, None))
    exiting.start()
    exiting.join()
    with openai_client(simulator) as client:
        _chat(client)
        _chat(client)  # would pass its limit: it no longer applies
    assert run.requests == 0
    assert _errors.counts().get("run_budget.exit") == 1
    tokentrace.budgets.run.active.set(())


def test_bad_limits_are_refused_when_the_run_budget_is_made() -> None:
    with pytest.raises(BudgetError):
        tokentrace.run_budget()
    with pytest.raises(BudgetError):
        tokentrace.run_budget(-1.0)
    with pytest.raises(BudgetError):
        tokentrace.run_budget(1.0, action="stop")
