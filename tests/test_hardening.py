"""Hardening, fourth round (issue 38): one bad value must not switch budgets off, stop the ledger, or let spend
through. Each test reproduces a finding against a real PostgreSQL server (the session fixture) and SQLite."""

from __future__ import annotations

from typing import Any

import pytest

import tokentrace
from tokentrace._support import errors as _errors
from tokentrace._support.text import MAX_ATTRIBUTE_CHARS, bounded, encodable

from .conftest import make_telemetry, openai_client
from .ledger_helpers import query_ledger
from .test_principal_budgets import CALL_USD, PRICES, _call


def test_a_nul_is_kept_visible_and_a_long_value_bounded_where_values_enter() -> None:
    assert encodable("a\x00b") == "a\\x00b"
    long = "é" * 3000
    assert len(bounded(long)) == MAX_ATTRIBUTE_CHARS and bounded(long) != bounded(long + "x")
    assert bounded("alice") == "alice"
    with tokentrace.attributes(user_id="u\x00", session_id=long):
        from tokentrace.context import current_attributes

        values = current_attributes()
        assert values["user_id"] == "u\\x00" and len(values["session_id"]) == MAX_ATTRIBUTE_CHARS


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_nul_in_one_users_id_limits_that_user_and_leaves_every_other_user_checked(
        simulator: Any, tmp_path: Any, backend: str, request: pytest.FixtureRequest) -> None:
    """Finding 1: a per-user block budget and a user id with a NUL byte. The NUL user is limited like any user, the
    ordinary users interleaved with it are checked (never sent unchecked as if the store were down), and
    budget_status answers for it."""
    ledger = str(tmp_path / "u.db") if backend == "sqlite" else request.getfixturevalue("pg_ledger")
    limit = 18 * CALL_USD
    make_telemetry(prices={"models": PRICES}, ledger=ledger, budget_unavailable="allow",
                   budgets=[tokentrace.Budget("per-user", limit_usd=limit, per="user_id", action="block")])
    client = openai_client(simulator)
    _errors.reset()
    outcomes: dict[str, list[str]] = {"evil\x00user": [], **{f"u{i}": [] for i in range(40)}}
    for _ in range(40):
        outcomes["evil\x00user"].append(_call(client, user_id="evil\x00user"))
    for name in list(outcomes)[1:]:
        outcomes[name].append(_call(client, user_id=name))
        outcomes["evil\x00user"].append(_call(client, user_id="evil\x00user"))
    sent = outcomes["evil\x00user"].count("sent")
    assert 15 <= sent <= 18, sent  # the NUL user stopped at its limit (about 18 calls), not 80 of 80
    assert all(v == ["sent"] for k, v in outcomes.items() if k != "evil\x00user")
    assert not _errors.counts().get("budget.unavailable")
    (status,) = tokentrace.budget_status(user_id="evil\x00user")
    assert status["spent_usd"] == pytest.approx(sent * CALL_USD, rel=1e-9)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_nul_in_session_or_feature_drops_no_row_and_a_block_budget_still_refuses(
        simulator: Any, tmp_path: Any, backend: str, request: pytest.FixtureRequest) -> None:
    ledger = str(tmp_path / "u.db") if backend == "sqlite" else request.getfixturevalue("pg_ledger")
    make_telemetry(prices={"models": PRICES}, ledger=ledger,
                   budgets=[tokentrace.Budget("tiny", limit_usd=5 * CALL_USD, action="block")])
    client = openai_client(simulator)
    _errors.reset()
    outcomes = [_call(client, session_id="s\x00", feature="f\x00eature") for _ in range(12)]
    assert tokentrace.flush()
    assert outcomes.count("sent") <= 5 and outcomes.count("refused") >= 7
    rows = query_ledger(ledger, "SELECT session_id, feature, status FROM llm_usage")
    assert len(rows) == 12 and {tuple(r[:2]) for r in rows} == {("s\\x00", "f\\x00eature")}
    assert not _errors.counts().get("ledger.write") and not _errors.counts().get("ledger.unavailable")


UNCOMPRESSIBLE = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(3000))
"""3,000 CJK characters in no repeating order (9,000 bytes of UTF-8 that PostgreSQL cannot compress under 8,191)."""


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_3000_character_attribute_neither_stops_the_ledger_nor_splits_an_account(
        simulator: Any, tmp_path: Any, backend: str, request: pytest.FixtureRequest) -> None:
    """Finding 2: an attribute of ~2,800+ characters made PostgreSQL refuse the row's index entry (over 8,191
    bytes), and the batch was retried as if the server were away, for good. Values are bounded where they enter
    (512 characters, the start and a hash of the whole), so every row is written and flush() is True."""
    ledger = str(tmp_path / "u.db") if backend == "sqlite" else request.getfixturevalue("pg_ledger")
    make_telemetry(prices={"models": PRICES}, ledger=ledger)
    client = openai_client(simulator)
    _errors.reset()
    for i in range(36):
        _call(client, user_id=UNCOMPRESSIBLE + str(i % 3), session_id=UNCOMPRESSIBLE[::-1], feature="f")
    assert tokentrace.flush(10)
    rows = query_ledger(ledger, "SELECT user_id, session_id FROM llm_usage")
    assert len(rows) == 36 and {len(r[0]) for r in rows} == {MAX_ATTRIBUTE_CHARS} and len({r[0] for r in rows}) == 3
    assert not _errors.counts().get("ledger.unavailable") and not _errors.counts().get("ledger.write")


def test_a_row_postgresql_refuses_is_dropped_alone_and_the_batch_is_not_retried_for_ever(pg_ledger: str) -> None:
    """A row the server refuses for its own sake (an index entry over 8,191 bytes: ``program_limit_exceeded``, an
    OperationalError, here from a record built past the entry checks) costs that row only: the batch is written
    row by row, the refused row dropped and counted, the others written; nothing is retried as if the server were
    away."""
    import secrets
    import time

    from tokentrace.sinks.ledger import LedgerSink

    from .ledger_helpers import record as ledger_record

    sink = LedgerSink(pg_ledger)
    _errors.reset()
    try:
        good = [ledger_record(time.time()) for _ in range(4)]
        bad = ledger_record(time.time(), user_id=secrets.token_urlsafe(12_000))  # incompressible: 16,000 chars
        for record in (*good[:2], bad, *good[2:]):
            sink.end(record, None)
        assert not sink.flush(10)  # one row could not be written: flush says so
        assert sink.written == 4 and sink.dropped == 1
        assert not _errors.counts().get("ledger.unavailable")
    finally:
        sink.close()


CUT_LIMIT = 0.09
"""About 4.5 estimates of the calls below (max_tokens=1000 at $20 per million output: $0.020 each)."""


def _cut_sdk(simulator: Any) -> None:
    client = openai_client(simulator)
    stream = client.chat.completions.create(model="gpt-4o-mini", max_tokens=1000, stream=True,
                                            messages=[{"role": "user", "content": "one two three"}],
                                            extra_headers={"x-sim-error": "cut"})
    with pytest.raises(Exception):  # noqa: B017 - whatever the SDK raises for a dropped connection
        for _ in stream:
            pass


def _cut_httpx(simulator: Any) -> None:
    import httpx

    body = {"model": "gpt-4o-mini", "max_tokens": 1000, "stream": True,
            "messages": [{"role": "user", "content": "one two three"}]}
    with pytest.raises(httpx.HTTPError), httpx.Client() as http, http.stream(
            "POST", simulator.url.rstrip("/") + "/v1/chat/completions", json=body,
            headers={"x-sim-error": "cut"}) as response:
        for _ in response.iter_bytes():
            pass


def _cut_on_the_wire(client: str) -> Any:
    def cut(simulator: Any) -> None:
        from .wire_cases import WireCase, fetch

        body = {"model": "gpt-4o-mini", "max_tokens": 1000, "stream": True,
                "messages": [{"role": "user", "content": "one two three"}]}
        url = _CUTTING.url.rstrip("/") + "/v1/chat/completions"  # a simulator that cuts every stream half-way
        try:
            fetch(client, url, WireCase("cut", "", body, True, "openai_compatible", "chat"))
        except tokentrace.BudgetExceeded:
            raise
        except Exception:  # each client's own error for a dropped connection
            return
        raise AssertionError("the stream was not cut")
    return cut


class _Cutting:
    """A simulator started on first use whose every stream is cut half-way (``error="cut"``)."""

    _sim: Any = None

    @property
    def url(self) -> str:
        if _Cutting._sim is None:
            from tokentrace.simulator import Simulator

            _Cutting._sim = Simulator(error="cut").__enter__()
        return str(_Cutting._sim.url)


_CUTTING = _Cutting()


def _cancelled_sdk(simulator: Any) -> None:
    import asyncio

    from .conftest import openai_async_client

    async def read_all() -> None:
        client = openai_async_client(simulator)
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", max_tokens=1000, stream=True, messages=[{"role": "user", "content": "one two"}],
            extra_headers={"x-sim-chunk-delay-ms": "200"})
        async for _ in stream:
            pass

    async def press_stop() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(read_all(), timeout=0.3)  # the user pressed "stop" after the first chunks

    asyncio.run(press_stop())


@pytest.mark.parametrize("cut", [_cut_sdk, _cut_httpx, _cut_on_the_wire("requests"), _cut_on_the_wire("aiohttp"),
                                 _cancelled_sdk], ids=["sdk-cut", "httpx-cut", "requests-cut", "aiohttp-cut",
                                                       "sdk-cancel"])
def test_a_cut_or_cancelled_stream_is_charged_its_estimate_so_a_block_budget_stops_it(simulator: Any,
                                                                                      cut: Any) -> None:
    """Finding 3: a stream the server cut or the caller cancelled was recorded as an error charged $0, so a block
    budget never refused the next one. Its answer had begun: the provider bills it, so budgets count its
    estimate (the ledger's cost stays unknown)."""
    make_telemetry(prices={"models": {"gpt-4o-mini": {"input": 5.0, "output": 20.0}}}, llm_hosts=["127.0.0.1"],
                   budgets=[tokentrace.Budget("stop", limit_usd=CUT_LIMIT, action="block")])
    outcomes = []
    with tokentrace.testing.capture_usage() as records:
        for _ in range(8):
            try:
                cut(simulator)
                outcomes.append("sent")
            except tokentrace.BudgetExceeded:
                outcomes.append("refused")
    assert outcomes == ["sent"] * 4 + ["refused"] * 4
    cut_records = [r for r in records if r.status == "error"]
    assert len(cut_records) == 4 and all(r.cost_usd is None and r.charged()[0] > 0.019 for r in cut_records)


def test_stream_framing_keeps_bounded_memory_on_an_endless_event_and_an_endless_line() -> None:
    """Finding 5: SSE ``data:`` lines with no blank line between them, and one line that never ends, are fed as a
    caller reads them: what the reader keeps stays within one MAX_FRAME (a 200 MB stream peaked at 2.3 GB), and the
    next event after them is read as usual. Timings: ``benchmarks/wire_framing.py``."""
    import tracemalloc

    from tokentrace.wire import framing

    piece = b"data: " + b"x" * 4090 + b"\n"
    endless_event, endless_line = framing.SSE(), framing.SSE()
    tracemalloc.start()
    try:
        for _ in range(12_000):  # 50 MB of one event's data lines
            assert endless_event.feed(piece) == []
        for _ in range(50 * 1024 * 1024 // 4096):  # 50 MB of one line, in 4 KiB pieces
            endless_line.feed(b"y" * 4096)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * framing.MAX_FRAME + (1 << 20), f"peak {peak / 2**20:.1f} MiB"
    after = b'\n\ndata: {"type": "done", "usage": {"output_tokens": 3}}\n\n'
    assert endless_event.feed(after) == [{"type": "done", "usage": {"output_tokens": 3}}]
    assert endless_line.feed(after) == [{"type": "done", "usage": {"output_tokens": 3}}]


def test_an_event_stream_body_of_40000_frames_read_whole_is_parsed_at_once() -> None:
    from tokentrace.simulator.bedrock_api import event_message
    from tokentrace.wire import framing

    body = b"".join(event_message("contentBlockDelta", {"delta": {"text": f"t{i}"}}) for i in range(40_000))
    reader = framing.EventStream()
    events = reader.feed(body)
    assert len(events) == 40_000 and events[-1] == {"contentBlockDelta": {"delta": {"text": "t39999"}}}
    assert reader.buffer == b""


@pytest.mark.parametrize("usage", [{"prompt_tokens": -5, "completion_tokens": 2, "total_tokens": -3},
                                   {"prompt_tokens": "7", "completion_tokens": "5", "total_tokens": "12"},
                                   {"prompt_tokens": True, "completion_tokens": False, "total_tokens": 1},
                                   {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None},
                                   [7, 5, 12]], ids=["negative", "strings", "booleans", "nulls", "list"])
def test_an_answer_with_odd_usage_counts_is_not_reported_and_charged_its_estimate(httpserver: Any,
                                                                                  usage: Any) -> None:
    """Finding 6: such an answer was recorded with its usage 'reported', 0 tokens and $0 charged. Read on the wire
    (the raw JSON); the openai SDK's own model turns "7" and True into ints, and tokentrace reads what it says."""
    import httpx

    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_json({
        "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": usage})
    make_telemetry(prices=None, llm_hosts=["localhost"])
    with tokentrace.testing.capture_usage() as records:
        httpx.post(httpserver.url_for("/v1/chat/completions"),
                   json={"model": "gpt-4o-mini", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
    (record,) = records
    assert not record.usage_reported and record.cost_usd is None
    assert record.charged()[0] > 0 and record.charged()[1] >= 100


def test_a_batch_result_with_an_impossible_count_still_lands_charged_its_estimate(simulator: Any, tmp_path: Any,
                                                                                   httpserver: Any) -> None:
    """Finding 6: a completed batch whose usage says 2**70 input tokens left no record at all."""
    import openai

    from tokentrace.simulator import sync_client

    httpserver.expect_request("/v1/batches/batch_1", method="GET").respond_with_json({
        "id": "batch_1", "object": "batch", "endpoint": "/v1/chat/completions", "input_file_id": "f",
        "completion_window": "24h", "status": "completed", "created_at": 1, "model": "gpt-4o-mini",
        "usage": {"input_tokens": 2**70, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 5,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 2**70 + 5}})
    make_telemetry(prices=None)
    client = openai.OpenAI(api_key="sk-test", http_client=sync_client(httpserver.port), max_retries=0)
    with tokentrace.testing.capture_usage() as records:
        client.batches.retrieve("batch_1")
    (record,) = records
    assert record.operation == "batch" and not record.usage_reported and record.charged()[0] > 0


def _table(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": "openai", "name": "OpenAI", "api_pattern": r"https://api\.openai\.com", "models": [model]}]


CATASTROPHIC = {"id": "gpt-4o-mini", "match": {"regex": "^([a-z0-9.-]+)*@$"},
                "prices": [{"constraint": {"start_date": "2026-11-01"},
                            "prices": {"input_mtok": 0.15, "output_mtok": 0.6}}]}
FREE = {"id": "gpt-4o-mini", "match": {"equals": "gpt-4o-mini"},
        "prices": [{"constraint": {"start_date": "2026-11-01"}, "prices": {"input_mtok": 0, "output_mtok": 0}}]}


@pytest.mark.parametrize("model, problem", [(CATASTROPHIC, "backtrack"), (FREE, "would cost nothing")],
                         ids=["backtracking-regex", "paid-model-made-free"])
def test_a_refreshed_table_that_could_stall_or_zero_calls_is_refused_and_ignored_when_stored(
        tmp_path: Any, httpserver: Any, model: dict[str, Any], problem: str) -> None:
    """Finding 7: such a table was accepted; the first call per model name per day then blocked its thread (27
    characters: 4 s), or every call of a paid model was charged $0."""
    import json

    from tokentrace.pricing import PriceTable
    from tokentrace.pricing.refresh import RefreshError, refresh_table

    stored = tmp_path / "prices.json"
    httpserver.expect_request("/bad.json").respond_with_json(_table(model))
    with pytest.raises(RefreshError, match=problem):
        refresh_table(httpserver.url_for("/bad.json"), stored, allow_http=True)
    assert not stored.exists()
    stored.write_text(json.dumps(_table(model)))  # written by hand, or by an older release: not used either
    table = PriceTable(refreshed=stored)
    price = table.lookup("openai", "gpt-4o-mini")
    assert price is not None and price.base.input == 0.15 and "refreshed" not in price.source
    assert table.lookup("openai_compatible", "a" * 40 + "!") is None  # inferred over the bundled table: no stall


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres"])
def test_a_pair_of_keys_names_one_account_per_pair_whatever_the_values_hold(
        simulator: Any, tmp_path: Any, backend: str, request: pytest.FixtureRequest) -> None:
    """Finding 8: ``per=("tenant", "feature")`` joined the values with "/", so tenant ``acme/chat`` + feature
    ``summary`` and tenant ``acme`` + feature ``chat/summary`` shared one account: one's spend refused the other."""
    ledger: Any = False if backend == "memory" else str(tmp_path / "u.db") if backend == "sqlite" else \
        request.getfixturevalue("pg_ledger")
    make_telemetry(prices={"models": PRICES}, ledger=ledger,
                   budgets=[tokentrace.Budget("pair", limit_usd=3 * CALL_USD, per=("tenant", "feature"),
                                              action="block")])
    client = openai_client(simulator)
    first = [_call(client, tenant="acme/chat", feature="summary") for _ in range(5)]
    second = _call(client, tenant="acme", feature="chat/summary")
    assert first.count("sent") == 2 and first[-1] == "refused" and second == "sent"  # 2 fit beside an estimate
    assert tokentrace.flush()
    if backend != "memory":
        (status,) = tokentrace.budget_status(tenant="acme", feature="chat/summary")
        assert status["spent_usd"] == pytest.approx(CALL_USD, rel=1e-9)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("skew_s", [-90.0, -3600.0, 3600.0], ids=["90s-behind", "1h-behind", "1h-ahead"])
def test_a_process_whose_clock_is_off_holds_its_reservations_by_the_stores_clock(
        tmp_path: Any, backend: str, skew_s: float, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    """Finding 9: reservations were stamped with each process's own clock, so one 90 s behind made its
    reservations look lapsed to the others (each user ended at 101% of a per-user limit). They are stamped and
    judged by the store's clock: a reservation made by a skewed process holds for every other."""
    import time as real_time

    from tokentrace.budgets import Budget, BudgetExceeded
    from tokentrace.budgets import store as _budget_store
    from tokentrace.ledger.store import open_db

    ledger = str(tmp_path / "u.db") if backend == "sqlite" else request.getfixturevalue("pg_ledger")
    open_db(ledger, create=True, timeout=10).close()  # made before the two stores' threads start on it
    budget = Budget("shared", limit_usd=1.0, action="block")
    skewed, fair = (_budget_store.SharedBudgets(ledger, [budget], ttl_s=60.0) for _ in range(2))
    try:
        clock = real_time.time
        monkeypatch.setattr(_budget_store.time, "time", lambda: clock() + skew_s)
        held = skewed.admit([budget], 0.7, 0, real_time.time())  # the skewed process's call, in flight
        monkeypatch.undo()
        assert held
        with pytest.raises(BudgetExceeded):
            fair.admit([budget], 0.4, 0, real_time.time())  # 0.7 held + 0.4 > 1.0, whatever the skew
        fair.admit([budget], 0.3, 0, real_time.time())
    finally:
        skewed.close()
        fair.close()


@pytest.mark.parametrize("prices, problem", [
    ({"models": {"gpt-x": {"provider": "opnai", "input": 0.3, "output": 1.2}}}, "did you mean 'openai'"),
    ({"models": {"gpt-x": 0.3}}, "must be a table of prices"),
    ({"models": {"gpt-x": {"input": "0.30", "output": 1.2}}}, "must be a number (not quoted)"),
    ({"models": {"gpt-x": {"input": 1e308, "output": 1.2}}}, "from 0 to 1,000,000"),
], ids=["misspelt-provider", "bare-number", "quoted-number", "absurd-price"])
def test_a_prices_mapping_that_cannot_mean_what_it_says_is_refused(prices: dict[str, Any], problem: str) -> None:
    """Finding 12: each was accepted silently (a misspelt provider or a bare number priced nothing, "0.30" was kept
    as text, 1e308 refused every call as costing infinity)."""
    with pytest.raises(tokentrace.ConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        tokentrace.instrument(prices=prices, ledger=False)


def test_a_prices_file_over_32_mib_is_refused_before_it_is_read(tmp_path: Any) -> None:
    huge = tmp_path / "prices.json"
    with huge.open("wb") as out:
        out.truncate(33 * 1024 * 1024)
    with pytest.raises(tokentrace.ConfigError, match="larger than 32 MiB"):
        tokentrace.instrument(prices=str(huge), ledger=False)


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "0", "inf"])
def test_an_unpriced_estimate_that_is_not_a_positive_amount_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                                      value: str) -> None:
    monkeypatch.setenv("TOKENTRACE_UNPRICED_ESTIMATE_USD", value)
    with pytest.raises(tokentrace.ConfigError, match="TOKENTRACE_UNPRICED_ESTIMATE_USD must be"):
        tokentrace.instrument(ledger=False)


@pytest.mark.parametrize("value", ["no", "No", "false", "off", "0"])
def test_every_documented_false_turns_the_ledger_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                                     value: str) -> None:
    from tokentrace.config import ledger_location

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOKENTRACE_LEDGER", value)
    assert ledger_location() is None and list(tmp_path.iterdir()) == []


def test_a_ledger_path_that_names_a_directory_is_refused(tmp_path: Any) -> None:
    for path in (f"{tmp_path}/ledgers/", str(tmp_path)):
        with pytest.raises(tokentrace.ConfigError, match="is a directory"):
            tokentrace.instrument(ledger=path)
    assert not (tmp_path / "ledgers").exists()


def test_a_scope_with_several_values_is_refused_not_matched_against_their_text(tmp_path: Any) -> None:
    """Finding 12: ``scope = { feature = ["chat", "search"] }`` was stored as the text "['chat', 'search']" and
    matched nothing, in a budgets file as in code."""
    with pytest.raises(tokentrace.BudgetError, match="a scope value must be one text value"):
        tokentrace.Budget("b", limit_usd=1.0, scope={"feature": ["chat", "search"]})
    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[[budget]]\nname = "b"\nlimit_usd = 1.0\nscope = { feature = ["chat", "search"] }\n')
    with pytest.raises(tokentrace.ConfigError, match="a scope value must be one text value"):
        tokentrace.instrument(budgets=str(budgets), ledger=False)


def test_budget_status_takes_any_value_and_names_a_key_no_budget_is_keyed_by(simulator: Any) -> None:
    make_telemetry(prices={"models": PRICES},
                   budgets=[tokentrace.Budget("per-user", limit_usd=1.0, per="user_id", action="block")])
    _call(openai_client(simulator), user_id="123")
    (status,) = tokentrace.budget_status(user_id=123)  # a number, as attributes(user_id=123) accepts
    assert status["spent_usd"] == pytest.approx(CALL_USD, rel=1e-9)
    with pytest.raises(tokentrace.ConfigError, match="no budget with per= is keyed by user; the per= keys are "
                                                     "user_id"):
        tokentrace.budget_status(user="a")


def test_an_applications_own_database_given_as_the_ledger_is_refused_and_left_as_it_was(simulator: Any,
                                                                                       tmp_path: Any) -> None:
    """Finding 13: tokentrace added eight tables to it, switched it to WAL and chmodded it 600 (breaking the app's
    other readers); a file that is not a database was chmodded before it was found not to be one."""
    import os
    import sqlite3

    from tokentrace.ledger.db import LedgerError
    from tokentrace.ledger.store import open_db

    app_db = tmp_path / "app.db"
    conn = sqlite3.connect(app_db)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('acme')")
    conn.commit()
    conn.close()
    os.chmod(app_db, 0o644)
    before = (app_db.read_bytes(), os.stat(app_db).st_mode)
    with pytest.raises(LedgerError, match=r"holds tables that are not tokentrace's \(customers\)"):
        open_db(app_db, create=True)
    assert (app_db.read_bytes(), os.stat(app_db).st_mode) == before
    assert not (tmp_path / "app.db-wal").exists()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database at all\n" * 100)
    os.chmod(notes, 0o644)
    with pytest.raises(LedgerError, match="is not a SQLite database"):
        open_db(notes, create=True)
    assert os.stat(notes).st_mode & 0o777 == 0o644
    make_telemetry(prices={"models": PRICES}, ledger=str(app_db))  # through instrument(), with a call to write
    assert _call(openai_client(simulator)) == "sent"  # the app's call goes on; its row cannot be written
    assert tokentrace.flush() is False  # and flush() says so
    assert (app_db.read_bytes(), os.stat(app_db).st_mode) == before


def test_a_ledger_that_cannot_heal_says_why_once_and_is_not_retried(postgres_url: str, simulator: Any,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Finding 14: a missing database (or a wrong password) was logged only as "locked or unreachable; retrying",
    and retried for ever. The server's reason is said once, in the log (never a password), and no connection is
    tried again: the rows are dropped, counted, and flush() says so."""
    import logging

    from tokentrace.sinks.ledger import LedgerSink

    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_database_here"
    make_telemetry(prices={"models": PRICES}, ledger=missing)
    client = openai_client(simulator)
    _errors.reset()
    with caplog.at_level(logging.WARNING, logger="tokentrace"):
        for _ in range(3):
            assert _call(client) == "sent"
            assert tokentrace.flush(5) is False
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert 'database "no_such_database_here" does not exist' in messages
    assert "locked or unreachable" not in messages and not _errors.counts().get("ledger.unavailable")
    from tokentrace.instrumentation import instrumentor as _instrumentor

    handle = _instrumentor.current()
    assert handle is not None
    sink = handle.sink("ledger")
    assert isinstance(sink, LedgerSink) and sink._cannot_heal is not None and sink.dropped == 3


def test_a_slow_limit_for_holds_a_call_no_longer_than_the_budget_timeout(simulator: Any) -> None:
    """Finding 15: a limit_for taking 10 s stalled each affected call 10 s, at first use and at every refresh. The
    call waits at most the budget timeout (1 s), then goes on with the default limit; the answer, when it comes,
    applies to the next calls."""
    import threading
    import time

    release = threading.Event()

    def slow_plans(user: str) -> float:
        release.wait(10)
        return 2 * CALL_USD + 0.000165  # room for 2 calls beside an estimate

    make_telemetry(prices={"models": PRICES}, budgets=[
        tokentrace.Budget("per-user", limit_usd=100.0, per="user_id", action="block", limit_for=slow_plans)])
    client = openai_client(simulator)
    started = time.monotonic()
    assert _call(client, user_id="alice") == "sent"  # the default ($100) while the plans service is slow
    first = time.monotonic() - started
    assert first < 3.0, f"the first call waited {first:.1f} s"
    started = time.monotonic()
    assert _call(client, user_id="alice") == "sent"
    assert time.monotonic() - started < 3.0
    release.set()  # the plans service answers
    time.sleep(1.2)  # past the short re-ask interval
    outcomes = [_call(client, user_id="alice") for _ in range(3)]
    assert outcomes[-1] == "refused"  # its answer (two calls' worth) now applies
