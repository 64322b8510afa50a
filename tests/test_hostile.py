"""Hostile use: forks, signals, locks, odd strings and numbers must not hang the app, lose rows or leak.

Each test here reproduces one finding of the hardening review (issue 12) and failed before its fix; the
property-based part at the end throws arbitrary configuration values at resolve(), Budget and instrument().
Process-level behaviour (fork, SIGTERM, a locked or replaced ledger file) runs in a child Python process with its own
``instrument()``, calling the simulator through the real openai SDK.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tokentrace

ROOT = Path(__file__).resolve().parents[1]

PRELUDE = textwrap.dedent("""
    import json, multiprocessing, os, signal, sys, threading, time
    import openai, tokentrace
    from tokentrace.simulator import sync_client

    ledger, port = sys.argv[1], int(sys.argv[2])

    def call(i=0):
        client = openai.OpenAI(api_key="sk-test", base_url="https://api.openai.com/v1", max_retries=0,
                               http_client=sync_client(port))
        return client.chat.completions.create(model="gpt-4o-mini", max_tokens=5,
                                              messages=[{"role": "user", "content": "hi"}]).id
""")


def _run(script: str, ledger: Path, port: int, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(script), str(ledger), str(port)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kwargs)


def _rows(ledger: Path, where: str = "1 = 1") -> int:
    conn = sqlite3.connect(ledger)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM llm_usage WHERE {where}").fetchone()[0])
    finally:
        conn.close()


# ---- 1. fork while the price table loads; 2. forked children lose rows

def test_a_pool_forked_while_the_price_table_loads_neither_hangs_nor_loses_rows(simulator: Any,
                                                                              tmp_path: Path) -> None:
    ledger = tmp_path / "usage.db"
    done = _run("""
        import genai_prices.data_snapshot as snapshot
        load = snapshot.get_snapshot
        snapshot.get_snapshot = lambda: (time.sleep(1.5), load())[1]  # a slow disk: the load takes a while
        tokentrace.instrument(ledger=ledger)
        time.sleep(0.3)  # the start-up thread is loading the table now
        with multiprocessing.get_context("fork").Pool(4) as pool:
            ids = pool.map_async(call, range(120)).get(timeout=40)
            pool.close()
            pool.join()
        print(len(ids))
    """, ledger, simulator.port)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "120"
    assert _rows(ledger) == 120
    assert _rows(ledger, "cost_usd IS NULL") == 0  # every child priced its calls from the bundled table


def test_process_children_write_every_row_before_they_exit(simulator: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "usage.db"
    done = _run("""
        tokentrace.instrument(ledger=ledger, prices={"gpt-4o-mini": {"provider": "openai", "input": 1, "output": 1}})
        def work():
            for i in range(50):
                call(i)
        children = [multiprocessing.get_context("fork").Process(target=work) for _ in range(4)]
        for child in children:
            child.start()
        for child in children:
            child.join(timeout=60)
        print([child.exitcode for child in children])
    """, ledger, simulator.port)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[0, 0, 0, 0]"
    assert _rows(ledger) == 200


# ---- 3. undecodable strings; 4. impossible counts never reach the writer

def test_an_undecodable_feature_is_written_escaped_and_metrics_keep_being_served(simulator: Any,
                                                                                 tmp_path: Path) -> None:
    import urllib.request

    import tokentrace

    from .conftest import make_telemetry, openai_client

    ledger = tmp_path / "usage.db"
    telemetry = make_telemetry(ledger=ledger, metrics_port=0)
    with openai_client(simulator) as client:
        with tokentrace.attributes(feature=os.fsdecode(b"report-\xff.pdf"), user_id="\udc80"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert tokentrace.flush() is True
    conn = sqlite3.connect(ledger)
    assert sorted(r[0] for r in conn.execute("SELECT feature FROM llm_usage")) == ["", "report-\\udcff.pdf"]
    conn.close()
    port = telemetry.handle.metrics_server.port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200 and 'feature="report-\\\\udcff.pdf"' in response.read().decode()


def test_a_row_the_database_refuses_costs_only_itself(tmp_path: Path) -> None:
    from tokentrace._support import errors as _errors
    from tokentrace.sinks.ledger import LedgerSink

    from .ledger_helpers import record

    _errors.reset()
    sink = LedgerSink(tmp_path / "usage.db")
    try:
        for model in ("gpt-4o-mini", "gpt-\udc80", "gpt-4o"):  # the middle one cannot be encoded
            sink.end(record(time.time(), model=model), None)
        assert sink.flush() is False  # a row was lost, and flush says so (without raising)
        sink.end(record(time.time(), model="later"), None)
        assert sink.flush() is True  # the writer lives on
    finally:
        sink.close()
    assert sorted(r[0] for r in sqlite3.connect(tmp_path / "usage.db").execute("SELECT model FROM llm_usage")) == [
        "gpt-4o", "gpt-4o-mini", "later"]
    assert _errors.counts()["ledger.write"] == 1


# ---- 5. SIGTERM flushes queued rows, then the signal does what it did before

SIGTERM_APP = """
    tokentrace.instrument(ledger=ledger, prices={"gpt-4o-mini": {"provider": "openai", "input": 1, "output": 1}},
                          flush_on_sigterm=FLUSH)
    if CHAINED:
        signal.signal(signal.SIGTERM, lambda *_: (print("app handler", flush=True), os._exit(3)))
        tokentrace.uninstrument()
        tokentrace.instrument(ledger=ledger, prices={"gpt-4o-mini": {"provider": "openai", "input": 1, "output": 1}})
    for i in range(300):
        call(i)
    print("sent", flush=True)
    time.sleep(60)
"""


def _terminated(simulator: Any, ledger: Path, *, flush: bool = True, chained: bool = False) -> tuple[int, str]:
    script = SIGTERM_APP.replace("FLUSH", repr(flush)).replace("CHAINED", repr(chained))
    proc = subprocess.Popen([sys.executable, "-c", PRELUDE + textwrap.dedent(script), str(ledger),
                             str(simulator.port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "sent"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out


def test_sigterm_writes_queued_rows_then_terminates_as_before(simulator: Any, tmp_path: Path) -> None:
    returncode, _ = _terminated(simulator, tmp_path / "usage.db")
    assert returncode == -signal.SIGTERM  # the default action still ends the process, by SIGTERM
    assert _rows(tmp_path / "usage.db") == 300


def test_sigterm_chains_to_the_apps_own_handler(simulator: Any, tmp_path: Path) -> None:
    returncode, out = _terminated(simulator, tmp_path / "usage.db", chained=True)
    assert returncode == 3 and "app handler" in out
    assert _rows(tmp_path / "usage.db") == 300


# ---- 9. privacy: only OpenTelemetry's capturing values capture content

def test_content_capture_follows_only_the_values_that_mean_capture(monkeypatch: Any) -> None:
    from tokentrace.config import resolve

    for value in ("NO_CONTENT", "none", "disabled", "false", "0", "", "nope"):
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
        assert resolve(ledger=False).capture_content is False, value
    for value in ("true", "True", "SPAN_ONLY", "span_and_event", "EVENT_ONLY", "1"):
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
        assert resolve(ledger=False).capture_content is True, value


# ---- 10-13. bad configuration is refused at instrument(), with the library's own error, leaving nothing behind

def _refused(**kwargs: Any) -> str:
    import pytest

    import tokentrace

    with pytest.raises(ValueError) as caught:
        tokentrace.instrument(**{"ledger": False, **kwargs})
    assert isinstance(caught.value, (tokentrace.ConfigError, tokentrace.BudgetError)), repr(caught.value)
    return str(caught.value)


def test_bad_arguments_are_refused_with_the_librarys_error(tmp_path: Path) -> None:
    from tokentrace import Budget

    nan_prices = tmp_path / "prices.json"
    nan_prices.write_text('{"m": {"input": NaN, "output": 1}}')
    eur = tmp_path / "eur.toml"
    eur.write_text('currency = "EUR"\n[models.m]\ninput = 1\noutput = 2\n')
    typo = tmp_path / "typo.toml"
    typo.write_text('[models.m]\ninput = 1\noutptu = 2\n')
    toml_list = tmp_path / "budgets.toml"
    toml_list.write_text("budget = [1, 2]\n")
    for kwargs in ({"prices": str(nan_prices)}, {"prices": {"m": {"input": -1, "output": 1}}},
                   {"prices": {"m": {"input": float("inf"), "output": 1}}}, {"prices": str(eur)},
                   {"prices": str(typo)}, {"prices": 42}, {"ledger": 123}, {"ledger": True},
                   {"budgets": 123}, {"budgets": str(toml_list)}, {"metrics_port": True},
                   {"stream_usage": "false"}, {"capture_content": "false"},
                   {"budgets": [Budget("a", limit_usd=1), Budget("a", limit_usd=2)]}):
        assert _refused(**kwargs)
    for make in (lambda: Budget("x", limit_usd=float("nan")), lambda: Budget("x", limit_usd=True),
                 lambda: Budget("x", limit_usd="5"), lambda: Budget("x", limit_usd=1, timezone=5),
                 lambda: Budget("x", limit_usd=1, scope="chat")):
        try:
            make()
        except Exception as exc:
            from tokentrace import BudgetError

            assert isinstance(exc, BudgetError), repr(exc)
        else:
            raise AssertionError("accepted")


def test_a_bad_environment_flag_is_refused(monkeypatch: Any) -> None:
    monkeypatch.setenv("TOKENTRACE_DISABLED", "nope")
    assert "TOKENTRACE_DISABLED" in _refused()


def test_metric_labels_given_as_one_string_is_one_label() -> None:
    from tokentrace.config import resolve

    assert resolve(ledger=False, metric_labels="team").metric_labels == ("team",)


def test_a_failed_instrument_leaves_nothing_behind_and_the_next_one_works(tmp_path: Path) -> None:
    import threading

    from prometheus_client import CollectorRegistry

    import tokentrace
    from tokentrace import Budget

    registry = CollectorRegistry(auto_describe=True)  # as the default registry: duplicates are refused
    before = {t.name for t in threading.enumerate()}
    with_budget = [Budget("b", limit_usd=1.0, action="block")]
    from prometheus_client import Gauge

    Gauge("llm_budget_spent_usd", "taken by someone else", ["budget"], registry=registry)  # the collector clashes
    import pytest

    with pytest.raises(ValueError, match="Duplicated"):
        tokentrace.instrument(ledger=tmp_path / "usage.db", budgets=with_budget, registry=registry)
    time.sleep(0.5)
    assert {t.name for t in threading.enumerate()} - before == set()
    assert tokentrace.instrument(ledger=tmp_path / "usage.db", budgets=with_budget, registry=CollectorRegistry())
    tokentrace.uninstrument()


def test_instrument_again_with_other_arguments_says_which_are_ignored(caplog: Any) -> None:
    import tokentrace

    first = tokentrace.instrument(ledger=False, metric_labels=("feature",))
    assert tokentrace.instrument(ledger=False, metric_labels=("feature",)) is first
    assert not [r for r in caplog.records if "already called" in r.getMessage()]
    assert tokentrace.instrument(ledger=False, metric_labels=("team",), stream_usage=False) is first
    message = next(r.getMessage() for r in caplog.records if "already called" in r.getMessage())
    assert "metric_labels, stream_usage" in message
    caplog.clear()
    assert tokentrace.instrument() is first  # passes nothing: nothing it passed is ignored, so nothing to say
    assert not [r for r in caplog.records if "already called" in r.getMessage()]


# ---- 15. a full disk is reported as a full disk

def test_a_full_disk_is_reported_as_such_and_not_as_a_rollback_failure(tmp_path: Path) -> None:
    import pytest

    from tokentrace.ledger.db import row_of
    from tokentrace.ledger.store import open_db

    from .ledger_helpers import record

    db = open_db(tmp_path / "usage.db", create=True)
    try:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages + 2}")  # what a full disk looks like to SQLite
        with pytest.raises(sqlite3.Error, match="full"):
            db.insert([row_of(record(time.time(), model="m" * 500)) for _ in range(2000)])
    finally:
        db.close()


# ---- 16. values folded into "other" do not grow the label cache

def test_folded_label_values_share_one_cache_entry(simulator: Any) -> None:
    import tokentrace

    from .conftest import make_telemetry, openai_client

    telemetry = make_telemetry(max_label_values=5)
    with openai_client(simulator) as client:
        for i in range(60):
            with tokentrace.attributes(feature=f"file-{i}.pdf"):
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    prometheus = telemetry.handle.sink("prometheus")
    assert len(prometheus._children) <= 6  # five features as they are, and "other"
    assert telemetry.sample("llm_requests_total", provider="openai", model="gpt-4o-mini-2024-07-18",
                            operation="chat", status="ok", feature="other") == 55


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_ledger_file_deleted_or_replaced_while_running_is_reopened(simulator: Any, tmp_path: Path,
                                                                     how: str) -> None:
    """Item 7: rows written after the file is deleted (or replaced by another ledger: a restore from a backup) land
    in the file at the path. (A file replaced by an application's own database is refused, nothing in it changed:
    test_hardening.)"""
    ledger = tmp_path / "usage.db"
    script = f"""
        tokentrace.instrument(ledger=ledger)
        call()
        assert tokentrace.flush()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(ledger + suffix):
                os.remove(ledger + suffix)
        if {how == "replaced"!r}:
            import sqlite3
            restored = sqlite3.connect(ledger)  # a ledger restored from an (empty) backup
            restored.execute("CREATE TABLE llm_usage_restored_marker (x)")
            restored.commit()
            restored.close()
        for _ in range(3):
            call()
        assert tokentrace.flush()
        print("done")
    """
    result = _run(script, ledger, simulator.port)
    assert result.returncode == 0 and "done" in result.stdout, result.stderr
    assert _rows(ledger) == 3  # the three calls after the swap, in the file at the path


# ---- 6. a ledger locked by another process while it is first opened

LOCK_HOLDER = """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("COMMIT")
"""


@pytest.mark.parametrize("existing", [True, False], ids=["with-past-spend", "created-by-the-lock-holder"])
def test_a_ledger_locked_at_start_up_loses_no_row_and_keeps_its_past_spend(simulator: Any, tmp_path: Path,
                                                                           existing: bool) -> None:
    """Item 6: rows queued while the ledger is locked on first open are retried (not dropped), instrument() does not
    wait for the lock (registering the budget gauges read the ledger on the calling thread), and a block budget
    decides against the spend already in the ledger once it can read it."""
    ledger = tmp_path / "usage.db"
    prices = '{"gpt-4o-mini": {"provider": "openai", "input": 1000000, "output": 1000000}}'  # $1 per token
    if existing:
        first = _run(f"""
            tokentrace.instrument(ledger=ledger, prices={prices})
            call()
            assert tokentrace.flush()
        """, ledger, simulator.port)
        assert first.returncode == 0, first.stderr
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(LOCK_HOLDER), str(ledger), "6"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = _run(f"""
            started = time.monotonic()
            tokentrace.instrument(ledger=ledger, prices={prices},
                                  budgets=[tokentrace.Budget("day", limit_usd=5, period="day", action="block")])
            print("instrument_s", round(time.monotonic() - started, 2))
            for i in range(20):  # allowed while the store cannot be read (budget_unavailable="allow")
                call(i)
            print("flushed", tokentrace.flush(timeout=20))
            from tokentrace.budgets.store import RETRY_AFTER_FAILURE_S
            time.sleep(RETRY_AFTER_FAILURE_S + 0.5)  # calls are unchecked this long after the store was unreachable
            try:
                call()
                print("outcome admitted")
            except tokentrace.BudgetExceeded:
                print("outcome refused")
        """, ledger, simulator.port)
    finally:
        holder.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    words = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert float(words["instrument_s"]) < 0.8
    assert words["flushed"] == "True"
    assert _rows(ledger, "status = 'ok'") == 20 + existing  # the first run's row and all twenty, none dropped
    assert _rows(ledger, "status = 'blocked'") == 1
    assert words["outcome"] == "refused"  # the period did not restart at $0: the ledger's spend is over the limit


# ---- 8. uninstrument() while a stream is in flight

def test_a_stream_ending_after_uninstrument_neither_waits_for_a_locked_ledger_nor_loses_its_row(
        simulator: Any, tmp_path: Path) -> None:
    """Item 8: the row of a call that ends after uninstrument() is written by a short-lived background writer
    (retrying the locked ledger), not on the app's thread, which used to wait 5 s and then lose the row."""
    ledger = tmp_path / "usage.db"
    script = f"""
        tokentrace.instrument(ledger=ledger)
        call()
        assert tokentrace.flush()
        client = openai.OpenAI(api_key="sk-test", base_url="https://api.openai.com/v1", max_retries=0,
                               http_client=sync_client(port))
        stream = client.chat.completions.create(model="gpt-4o-mini", max_tokens=20, stream=True,
                                                messages=[{{"role": "user", "content": "hi"}}])
        first = next(stream)
        holder = subprocess.Popen([sys.executable, "-c", {textwrap.dedent(LOCK_HOLDER)!r}, ledger, "6"],
                                  stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "locked"
        tokentrace.uninstrument()
        started = time.monotonic()
        chunks = 1 + sum(1 for _ in stream)
        print("loop_s", round(time.monotonic() - started, 2))
        holder.wait()
        time.sleep(3)  # the background writer retries once the lock is gone
        print("chunks", chunks)
    """
    result = _run("import subprocess\n" + textwrap.dedent(script), ledger, simulator.port)
    assert result.returncode == 0, result.stderr
    words = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert float(words["loop_s"]) < 1.0  # the app's loop did not wait for the lock
    assert int(words["chunks"]) > 2
    assert _rows(ledger) == 2
    assert _rows(ledger, "stream = 1 AND usage_reported = 1") == 1


# ---- 14. an answered call without usage counts its estimate, live and after a restart

def test_a_call_without_usage_counts_the_same_estimate_live_and_after_a_restart(simulator: Any,
                                                                                tmp_path: Path) -> None:
    """Item 14: the estimate a budget charges an answered call whose usage never came is kept in the ledger
    (``charged_usd``/``charged_tokens``, schema 4), so a restarted process counts the same spend, not $0."""
    ledger = tmp_path / "usage.db"
    script = """
        prices = {"gpt-4o-mini": {"provider": "openai", "input": 1, "output": 2}}
        budgets = [tokentrace.Budget("day", limit_usd=100, period="day", action="block")]
        tokentrace.instrument(ledger=ledger if sys.argv[4] == "ledger" else False, prices=prices, budgets=budgets)
        client = openai.OpenAI(api_key="sk-test", base_url="https://api.openai.com/v1", max_retries=0,
                               http_client=sync_client(port))
        if sys.argv[3] == "call":
            client.chat.completions.create(model="gpt-4o-mini", max_tokens=100,
                                           extra_headers={"x-sim-error": "no-usage"},
                                           messages=[{"role": "user", "content": "hi"}])
        assert tokentrace.flush()
        from prometheus_client import REGISTRY
        print("spent", REGISTRY.get_sample_value("llm_budget_spent_usd", {"budget": "day"}),
              int(REGISTRY.get_sample_value("llm_budget_spent_tokens", {"budget": "day"})))
    """

    def run(*args: str) -> str:
        result = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(script), str(ledger),
                                 str(simulator.port), *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    estimate_tokens = 1 + 8 + 100  # ceil(2 chars / 3) + 8 per message, plus max_tokens
    expected = f"spent {(9 * 1 + 100 * 2) / 1e6} {estimate_tokens}"  # input and output at their highest rates
    assert run("call", "in-process") == expected  # a budget without a ledger
    assert run("call", "ledger") == expected  # the fleet's budget, live
    assert run("read", "ledger") == expected  # and after a restart
    (row,) = sqlite3.connect(ledger).execute("SELECT cost_usd, usage_reported, charged_tokens FROM llm_usage")
    assert row == (None, 0, estimate_tokens)  # the report still says unknown: the estimate is only the budget's


# ---- bad configuration, property-based: only the library's own errors, nothing left behind

_ODD_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.binary(max_size=4),
    st.sampled_from(["", "false", "true", "nope", "team", "0", "-1", "1e309", "nan", "report-\udcff.pdf", "EUR",
                     "day", "block", "UTC", "Mars/Olympus", "/nonexistent/prices.toml", "/dev/null", "openai"]),
)
_ODD_VALUES = st.recursive(
    _ODD_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner),
                            st.dictionaries(st.sampled_from(["provider", "input", "output", "cache_read", "gpt-4o",
                                                             "name", "limit_usd", "period", "currency", "inptu"]),
                                            inner, max_size=4)),
    max_leaves=8,
)
_CONFIG_KEYWORDS = ("providers", "prices", "budgets", "metrics_port", "metrics_addr", "capture_content",
                    "metric_labels", "namespace", "stream_usage", "max_label_values", "budget_unavailable",
                    "flush_on_sigterm", "infer_prices")
_ENVIRONMENT = ("TOKENTRACE_BUDGETS", "TOKENTRACE_DISABLED", "TOKENTRACE_FLUSH_ON_SIGTERM", "TOKENTRACE_INFER_PRICES",
                "TOKENTRACE_LEDGER_QUEUE_SIZE", "TOKENTRACE_MAX_LABEL_VALUES", "TOKENTRACE_METRICS_PORT",
                "TOKENTRACE_NAMESPACE", "TOKENTRACE_PRICES", "TOKENTRACE_RESERVATION_TTL_S",
                "TOKENTRACE_STREAM_USAGE", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
_ENV_TEXT = st.one_of(st.sampled_from(["", "0", "1", "true", "false", "off", "nope", "-5", "nan", "1e9", "99999",
                                       "/nonexistent", "NO_CONTENT", "SPAN_ONLY"]),
                      st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
                              max_size=8))


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Any:
    saved = {name: os.environ.get(name) for name in _ENVIRONMENT}
    for name in _ENVIRONMENT:
        os.environ.pop(name, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arguments=st.dictionaries(st.sampled_from(_CONFIG_KEYWORDS), _ODD_VALUES, max_size=4),
       environment=st.dictionaries(st.sampled_from(_ENVIRONMENT), _ENV_TEXT, max_size=3))
def test_any_configuration_resolves_or_raises_the_librarys_own_error(arguments: dict[str, Any],
                                                                      environment: dict[str, str]) -> None:
    from tokentrace import BudgetError, ConfigError, config

    with _environment(environment):
        with contextlib.suppress(ConfigError, BudgetError):
            config.resolve(ledger=False, **arguments)


@settings(max_examples=200, deadline=None)
@given(fields=st.dictionaries(st.sampled_from(["period", "limit_usd", "limit_tokens", "scope", "action", "timezone",
                                               "on_exceeded"]), _ODD_VALUES, max_size=4),
       name=st.one_of(st.text(max_size=6), _ODD_SCALARS))
def test_any_budget_definition_is_a_budget_or_a_budget_error(fields: dict[str, Any], name: Any) -> None:
    from tokentrace import Budget, BudgetError

    try:
        budget = Budget(name, **fields)
    except BudgetError:
        return
    # what was accepted works: a period, and a decision on a plain call
    begin, end = budget.period_bounds()
    assert begin < end
    assert budget.applies_to({"feature": "chat"}) in (True, False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arguments=st.dictionaries(st.sampled_from(_CONFIG_KEYWORDS), _ODD_VALUES, max_size=3))
def test_instrument_with_any_arguments_works_or_refuses_and_leaves_nothing_behind(arguments: dict[str, Any]) -> None:
    import threading

    from prometheus_client import CollectorRegistry

    import tokentrace
    from tokentrace import BudgetError, ConfigError
    from tokentrace.instrumentation import instrumentor as _instrumentor

    arguments.pop("metrics_port", None)  # a real port would be bound: covered by resolve() above
    threads = {t.name for t in threading.enumerate()}
    with _environment({}):
        try:
            tokentrace.instrument(ledger=False, registry=CollectorRegistry(), **arguments)
        except (ConfigError, BudgetError):
            assert _instrumentor.current() is None
            assert {t.name for t in threading.enumerate()} <= threads | {"tokentrace-prices"}
        finally:
            tokentrace.uninstrument()
    tokentrace.instrument(ledger=False, registry=CollectorRegistry())  # the next instrument() works
    tokentrace.uninstrument()


# ---- 1. (cont.) a metric lock held by another thread at the fork

def test_a_child_forked_while_another_thread_holds_a_metric_lock_records_its_calls(simulator: Any,
                                                                                   tmp_path: Path) -> None:
    """prometheus_client guards each value with a lock: a scrape or an ``inc()`` on another thread at the moment
    of the fork left the child's copy held for ever, and the child's first call hung in the metrics sink."""
    script = """
        from prometheus_client import REGISTRY
        from tokentrace.sinks.prometheus import _metrics_by_registry
        tokentrace.instrument(ledger=False)
        call()
        requests = _metrics_by_registry[REGISTRY][""].requests
        ((values, child),) = requests._metrics.items()
        labels = dict(zip(requests._labelnames, values))
        holding, release = threading.Event(), threading.Event()

        # the lock guarding the value: prometheus_client's own, or (in-process) the one of tokentrace's metrics set
        lock = getattr(child._value, "_lock", None) or child._value.metrics.lock

        def hold():  # stands for another thread inside inc() (or a scrape) when the fork happens
            with lock:
                holding.set()
                release.wait()

        threading.Thread(target=hold, daemon=True).start()
        holding.wait()
        pid = os.fork()
        if pid == 0:
            signal.alarm(10)
            call()
            os._exit(0 if REGISTRY.get_sample_value("llm_requests_total", labels) == 2 else 1)
        release.set()
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
    """
    result = _run(script, tmp_path / "unused.db", simulator.port)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "child 0"  # not -14 (SIGALRM: the child hung)


# ---- issue 32, finding 5: a password with an unencoded "/" never leaks

@pytest.mark.parametrize("url", ["postgresql://tt:12345/S3cret@db.example/llm", "postgresql://tt:ab/S3cret@h/db",
                                 "postgresql://tt:S3cret?x@h/db"])
def test_a_password_with_an_unencoded_slash_is_refused_and_never_printed(url: str, tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    from tokentrace.ledger.location import describe

    assert "S3cret" not in describe(url)
    with pytest.raises(tokentrace.ConfigError, match="percent-encode the password") as refused:
        tokentrace.instrument(ledger=url)
    assert "S3cret" not in str(refused.value)
    for args, env in ((["report", "--ledger", url], {}), (["demo", "--calls", "1", "--ledger", url],
                                                           {"TOKENTRACE_DISABLED": "1"})):
        result = subprocess.run([sys.executable, "-m", "tokentrace", *args], capture_output=True, text=True,
                                timeout=120, cwd=ROOT, env={**os.environ, **env, "XDG_DATA_HOME": str(tmp_path)})
        assert result.returncode == 2, result.stderr
        assert "S3cret" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert "S3cret" not in caplog.text


# ---- issue 32, finding 10: an unknown host inventing model names

def test_hundreds_of_unknown_model_names_log_a_bounded_number_of_warnings_and_cache_boundedly(
        simulator: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from tokentrace import pricing, recorder

    from .conftest import make_telemetry, openai_client

    monkeypatch.setattr(pricing, "MAX_CACHED_PRICES", 50)
    telemetry = make_telemetry()
    with caplog.at_level("WARNING", logger="tokentrace"), openai_client(
            simulator, base_url="https://llm.internal.example/v1") as client:
        for i in range(120):
            client.chat.completions.create(model=f"private-model-{i}", messages=[{"role": "user", "content": "hi"}])
    warnings = [r for r in caplog.records if "no price known" in r.getMessage()]
    assert len(warnings) <= recorder.WARN_UNPRICED_MODELS + 1
    assert len(telemetry.handle.recorder.prices._cache) <= 50
    unpriced = sum(s.value for m in telemetry.registry.collect() if m.name == "llm_unpriced_requests"
                   for s in m.samples if s.name == "llm_unpriced_requests_total")
    assert unpriced == 120  # every call is still counted as unpriced


# ---- issue 32, finding 7: ledger file permissions

def test_a_dangling_symlink_as_the_ledger_is_refused_not_followed(tmp_path: Path) -> None:
    from tokentrace.ledger.db import LedgerError
    from tokentrace.ledger.store import open_db

    target = tmp_path / "elsewhere" / "usage.db"
    target.parent.mkdir()
    link = tmp_path / "usage.db"
    link.symlink_to(target)
    with pytest.raises(LedgerError, match="symbolic link"):
        open_db(link, create=True)
    assert not target.exists()  # nothing created behind the link


def test_a_ledger_open_to_others_is_tightened_with_its_journal_files(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    from tokentrace.ledger.store import open_db

    ledger = tmp_path / "usage.db"
    open_db(ledger, create=True).close()
    for name in (ledger, ledger.with_name("usage.db-wal"), ledger.with_name("usage.db-shm")):
        name.touch()
        name.chmod(0o666)
    db = open_db(ledger, create=True)
    db.close()
    for name in (ledger, ledger.with_name("usage.db-wal"), ledger.with_name("usage.db-shm")):
        if name.exists():
            assert name.stat().st_mode & 0o077 == 0, oct(name.stat().st_mode)
    assert "made it its owner's only" in caplog.text
    fresh = tmp_path / "new" / "usage.db"
    db = open_db(fresh, create=True)
    db.execute("CREATE TABLE IF NOT EXISTS t (x)")
    db.close()
    assert all(p.stat().st_mode & 0o077 == 0 for p in fresh.parent.iterdir())


def test_a_ledger_of_another_user_is_refused(tmp_path: Path) -> None:
    import pwd

    from tokentrace.ledger.db import LedgerError
    from tokentrace.ledger.store import open_db

    if os.geteuid() != 0:
        pytest.skip("needs root to give a file to another user")
    ledger = tmp_path / "usage.db"
    open_db(ledger, create=True).close()
    os.chown(ledger, pwd.getpwnam("nobody").pw_uid, -1)
    ledger.chmod(0o666)
    with pytest.raises(LedgerError, match="belongs to another user"):
        open_db(ledger, create=True)
