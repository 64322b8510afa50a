"""The SQLite ledger: one row per call, exact under threads and processes, private, versioned, never in the way."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import tokentrace
from tokentrace._support import errors as _errors
from tokentrace.ledger.db import COLUMNS, NULLABLE_COLUMNS, LedgerError, row_of
from tokentrace.ledger.schema import SCHEMA_VERSION
from tokentrace.ledger.store import open_db
from tokentrace.sinks.ledger import LedgerSink

from .cases import MESSAGES
from .conftest import make_telemetry, openai_client
from .ledger_helpers import record


def rows(path: Path, where: str = "1=1") -> list[sqlite3.Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(f"SELECT * FROM llm_usage WHERE {where} ORDER BY id").fetchall()
    finally:
        conn.close()


def test_one_row_per_call_with_every_contract_column(simulator: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "usage.db"
    telemetry = make_telemetry(ledger=ledger)
    with openai_client(simulator) as client, tokentrace.attributes(feature="summarize", session_id="s-1",
                                                                   user_id="u-1", agent_id="a-1", tenant="acme"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
        list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5, stream=True))
    assert tokentrace.flush()
    got = rows(ledger)
    assert len(got) == 2
    contract = ["id", "ts_utc", "provider", "model", "request_model", "operation", "feature", "session_id",
                "user_id", "agent_id", "attributes_json", "input_tokens", "cache_read_tokens", "cache_write_tokens",
                "output_tokens", "reasoning_tokens", "total_tokens", "cost_usd", "latency_ms", "ttft_ms", "stream",
                "status", "error_type", "response_id", "trace_id"]
    assert set(contract) <= set(got[0].keys())
    first, second = got
    assert (first["provider"], first["model"], first["request_model"]) == ("openai", "gpt-4o-mini-2024-07-18",
                                                                           "gpt-4o-mini")
    assert (first["feature"], first["session_id"], first["user_id"], first["agent_id"]) == ("summarize", "s-1",
                                                                                            "u-1", "a-1")
    assert '"tenant":"acme"' in first["attributes_json"]
    assert (first["input_tokens"], first["output_tokens"], first["total_tokens"]) == (7, 5, 12)
    assert first["cost_usd"] == pytest.approx((7 * 0.15 + 5 * 0.6) / 1e6)
    assert first["stream"] == 0 and first["ttft_ms"] is None and first["status"] == "ok"
    assert second["stream"] == 1 and second["ttft_ms"] > 0
    # the W3C form of each call's own span's trace id (32 lowercase hex digits, leading zeros kept)
    spans = telemetry.finished_spans()
    assert [row["trace_id"] for row in got] == [format(span.context.trace_id, "032x") for span in spans]
    conn = sqlite3.connect(ledger)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_ledger_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "private" / "usage.db"
    open_db(path, create=True).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_rows_equal_calls_under_8_threads(tmp_path: Path) -> None:
    sink = LedgerSink(tmp_path / "usage.db", interval_s=0.01)

    def worker() -> None:
        for i in range(1000):
            sink.end(record(time.time(), feature=f"f{i % 3}"), None)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sink.flush(10)
    sink.close()
    assert len(rows(tmp_path / "usage.db")) == 8000
    assert sink.written == 8000 and sink.dropped == 0


def _process_writer(path: str, count: int) -> None:
    sink = LedgerSink(Path(path), interval_s=0.01)
    for _ in range(count):
        sink.end(record(time.time()), None)
    assert sink.flush(30)
    sink.close()


def test_rows_equal_calls_under_4_processes(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    open_db(path, create=True).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(str(path), 2500)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(rows(path)) == 10_000


def test_a_killed_process_loses_at_most_the_unflushed_batch_and_never_corrupts(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "sys.path.insert(0, 'tests')\n"
        "from tokentrace.sinks.ledger import LedgerSink\n"
        "from ledger_helpers import record\n"
        f"sink = LedgerSink(Path({str(path)!r}), interval_s=0.005, batch_size=50)\n"
        "i = 0\n"
        "while True:\n"
        "    sink.end(record(time.time()), None); i += 1\n"
        "    if i % 50 == 0: time.sleep(0.001)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[1])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if path.exists():
            try:
                if len(rows(path)) > 500:
                    break
            except sqlite3.Error:
                pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    count = conn.execute("SELECT COUNT(*) FROM llm_usage").fetchone()[0]
    conn.close()
    assert count > 500
    # a fresh writer appends after the survivors without trouble
    sink = LedgerSink(path)
    sink.end(record(time.time()), None)
    assert sink.flush(5)
    sink.close()
    assert len(rows(path)) == count + 1


def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    _errors.reset()
    sink = LedgerSink(tmp_path / "usage.db", queue_size=10, interval_s=60)
    for _ in range(25):
        sink.end(record(time.time()), None)
    assert sink.dropped == 15
    assert _errors.counts()["ledger.dropped"] == 15
    assert not sink.flush(5)  # the queued rows are written, and flush says rows were dropped since the last one
    assert sink.flush(5)  # nothing dropped since
    sink.close()
    assert len(rows(tmp_path / "usage.db")) == 10


def test_an_unwritable_path_warns_once_and_the_app_goes_on(simulator: Any, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where a directory should be")
    _errors.reset()
    telemetry = make_telemetry(ledger=blocked / "usage.db")
    with openai_client(simulator) as client:
        for _ in range(3):
            result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=2)
            assert result.usage.completion_tokens == 2
    assert not tokentrace.flush(1.0)  # the rows could not be written, and flush says so
    assert telemetry.sample("llm_requests_total", provider="openai", model="gpt-4o-mini-2024-07-18",
                            operation="chat", status="ok", feature="") == 3
    assert _errors.counts().get("ledger.open", 0) >= 1
    assert len([r for r in caplog.records if "cannot open the ledger" in r.getMessage()]) == 1


def test_a_locked_database_is_retried_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    open_db(path, create=True).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    sink = LedgerSink(path, interval_s=0.01)
    sink._conn = open_db(path, create=False, timeout=0.05)  # fail fast while locked
    for _ in range(5):
        sink.end(record(time.time()), None)
    time.sleep(0.3)
    assert sink.written == 0
    holder.execute("ROLLBACK")
    holder.close()
    assert sink.flush(5)
    sink.close()
    assert len(rows(path)) == 5 and sink.dropped == 0


def test_an_old_schema_is_migrated_forward_and_a_newer_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    sqlite3.connect(path).close()  # an empty database: user_version 0
    conn = open_db(path, create=True)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    cols = [r[1] for r in conn.execute("PRAGMA table_info(llm_usage)")]
    assert cols == ["id", *COLUMNS]
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(LedgerError, match="newer"):
        open_db(path, create=False)


def test_a_corrupt_ledger_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError, match="cannot open ledger"):
        open_db(path, create=False)


def test_ledger_off_by_env(simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENTRACE_LEDGER", "off")
    telemetry = make_telemetry(ledger=None)
    assert telemetry.handle.sink("ledger") is None
    monkeypatch.setenv("TOKENTRACE_LEDGER", str(tmp_path / "env.db"))
    tokentrace.uninstrument()
    telemetry = make_telemetry(ledger=None)
    assert telemetry.handle.sink("ledger").path == tmp_path / "env.db"


def test_default_ledger_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tokentrace.config import default_ledger_path

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_ledger_path() == tmp_path / "tokentrace" / "usage.db"


def test_fork_after_instrument_child_writes_its_own_rows(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    sink = LedgerSink(path, interval_s=0.01)
    sink.end(record(time.time(), feature="parent"), None)
    pid = os.fork()
    if pid == 0:  # child
        try:
            sink.end(record(time.time(), feature="child"), None)
            os._exit(0 if sink.flush(10) else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sink.flush(5)
    sink.close()
    features = sorted(r["feature"] for r in rows(path))
    assert features == ["child", "parent"]


def test_a_busy_application_thread_does_not_starve_the_writer(tmp_path: Path) -> None:
    """An app thread that never blocks for long but drops the GIL for many short system calls (getrandom here, as
    the SDKs do per request) must not keep the writer from writing: rows are written while it stays busy."""
    from .ledger_helpers import record as ledger_record

    sink = LedgerSink(tmp_path / "usage.db")
    try:
        calls, started = 0, time.monotonic()
        while time.monotonic() - started < 3.0:
            sink.end(ledger_record(time.time()), None)
            calls += 1
            spin = 0
            for i in range(3000):  # ~100 us of Python between calls
                spin += i
            for _ in range(5):
                os.urandom(16)
        written = sink.written
        assert written >= calls // 2, f"the writer wrote {written} of {calls} rows while the app was busy"
    finally:
        sink.close()


def test_the_writer_thread_survives_a_failure_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected error in the writer's loop is counted and the writer goes on (rows would otherwise pile up)."""
    from .ledger_helpers import record as ledger_record

    _errors.reset()
    sink = LedgerSink(tmp_path / "usage.db", interval_s=0.02)
    real = sink._drain_locked
    failures = iter([RuntimeError("boom")])

    def drain_once_failing() -> bool:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real()

    monkeypatch.setattr(sink, "_drain_locked", drain_once_failing)
    try:
        sink.end(ledger_record(time.time()), None)
        deadline = time.monotonic() + 5.0
        while sink.written < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sink.written == 1 and sink._thread is not None and sink._thread.is_alive()
        assert _errors.counts().get("ledger.write") == 1
    finally:
        sink.close()


@pytest.mark.parametrize("attributes", [
    {}, {"feature": "summarize"}, {"b": "2", "a": "1", "feature": ""},
    {"n": 1, "feature": "x"},
    {"feature": 'quote " backslash \\ tab \t newline \n', "user_id": "ünïcödé ✓ \U0001f600", "z": "\x00\x1f\x7f"},
])
def test_attributes_json_is_what_json_gives(attributes: dict[str, Any]) -> None:
    import json
    from types import MappingProxyType

    from tokentrace.ledger.db import attributes_json

    assert attributes_json(MappingProxyType(attributes)) == json.dumps(attributes, separators=(",", ":"),
                                                                       sort_keys=True)


def test_a_writer_whose_ledger_a_newer_version_migrated_refuses_loudly_and_flush_says_so(
        simulator: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 32, finding 6: a newer tokentrace migrates the shared ledger while this process writes to it. This
    process must not keep writing rows in its older layout: its rows are dropped, counted under
    stage="ledger.schema", logged, and flush() returns False (it used to return True with every row lost)."""
    import sqlite3

    from tokentrace._support import errors as _errors
    from tokentrace.ledger.schema import SCHEMA_VERSION

    from .conftest import make_telemetry, openai_client

    ledger = tmp_path / "usage.db"
    make_telemetry(ledger=ledger)
    _errors.reset()
    with openai_client(simulator) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert tokentrace.flush()
        newer = sqlite3.connect(ledger)
        newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")  # what a newer release's migration leaves
        newer.close()
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert tokentrace.flush() is False
        assert tokentrace.flush() is True  # said once; nothing new was dropped since
    rows = sqlite3.connect(ledger).execute("SELECT COUNT(*) FROM llm_usage").fetchone()[0]
    assert rows == 1  # nothing written in the old layout
    assert _errors.counts().get("ledger.schema") == 1 and "newer than this tokentrace" in caplog.text


def test_columns_left_out_of_an_insert_are_exactly_the_nullable_ones_and_rows_read_back_whole(tmp_path: Path) -> None:
    """The SQLite writer leaves a column out of a statement when it is NULL in every row of it (binding a None costs
    Python's sqlite3 an adapter lookup): only columns that may be NULL and default to NULL may be left out, and
    every row reads back exactly as written, whichever of its neighbours had a value there."""
    path = tmp_path / "usage.db"
    open_db(path, create=True).close()
    conn = sqlite3.connect(path)
    info = {row[1]: (row[3], row[4]) for row in conn.execute("PRAGMA table_info(llm_usage)")}  # notnull, default
    conn.close()
    assert set(COLUMNS) >= NULLABLE_COLUMNS
    assert {name for name in COLUMNS if info[name] == (0, None)} == NULLABLE_COLUMNS
    written = [row_of(record(1_700_000_000.0 + i, feature="f", **({"user_id": f"u{i}"} if i % 3 == 0 else {}),
                             ttft_s=0.5 if i % 5 == 0 else None, cost=None if i % 7 == 0 else 0.001))
               for i in range(37)]  # statements of 32, 4 and 1 rows: some with a column set in no row, some mixed
    db = open_db(path, create=True)
    try:
        db.insert(written)
    finally:
        db.close()
    conn = sqlite3.connect(path)
    read = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM llm_usage ORDER BY id").fetchall()
    conn.close()
    assert read == written
