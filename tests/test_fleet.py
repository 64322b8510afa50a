"""Many processes, one ledger: a block budget holds for the whole fleet, on SQLite and on a real PostgreSQL.

Each worker is a separate Python process with its own ``tokentrace.instrument()`` and threads, calling the
simulator through the real openai SDK, as gunicorn or Celery workers would.
"""

from __future__ import annotations

import contextlib
import json
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

from .ledger_helpers import query_ledger

ROOT = Path(__file__).resolve().parents[1]
LIMIT_USD = 0.01
# USD per million tokens: a 7-in / 5-out call costs $0.000135 (its estimate: $0.000165), so ~74 calls fit
PRICES = {"gpt-4o-mini": {"provider": "openai", "input": 5.0, "output": 20.0},
          "gpt-4o-mini-2024-07-18": {"provider": "openai", "input": 5.0, "output": 20.0}}

WORKER = textwrap.dedent("""
    import json, sys, threading, time
    import openai, tokentrace
    from tokentrace import Budget, BudgetExceeded
    from tokentrace.simulator import sync_client

    ledger, port, threads, prices, latency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    limit = float(sys.argv[6])
    tokentrace.instrument(ledger=ledger, prices=json.loads(prices),
                          budgets=[Budget("fleet-daily", period="day", limit_usd=limit, action="block")])
    sent, refused = [0], [0]
    lock = threading.Lock()

    def work():
        client = openai.OpenAI(api_key="sk-test", base_url="https://api.openai.com/v1", max_retries=0,
                               http_client=sync_client(port))
        refusals = 0
        while refusals < 5:
            try:
                client.chat.completions.create(model="gpt-4o-mini", max_tokens=5,
                                               messages=[{"role": "user", "content": "one two three"}],
                                               extra_headers={"x-sim-latency-ms": latency})
                refusals = 0
                with lock:
                    sent[0] += 1
            except BudgetExceeded:
                refusals += 1
                with lock:
                    refused[0] += 1
                time.sleep(0.1)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    print("ready", flush=True)
    for w in workers:
        w.join()
    tokentrace.flush()
    print(json.dumps({"sent": sent[0], "refused": refused[0]}), flush=True)
""")


def _start_workers(ledger: str, port: int, processes: int, threads: int, latency_ms: int = 2,
                   limit: float = LIMIT_USD) -> list[Any]:
    env = {**os.environ, "TOKENTRACE_RESERVATION_TTL_S": "3"}
    return [subprocess.Popen([sys.executable, "-c", WORKER, ledger, str(port), str(threads), json.dumps(PRICES),
                              str(latency_ms), repr(limit)], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env) for _ in range(processes)]


def _run_fleet(ledger: str, port: int, processes: int, threads: int, limit: float = LIMIT_USD
               ) -> list[dict[str, int]]:
    outcomes = []
    for proc in _start_workers(ledger, port, processes, threads, limit=limit):
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    return outcomes


_query = query_ledger
"""Rows straight from the database (either backend)."""


def _ledger_totals(ledger: str) -> tuple[float, int, int]:
    """(cost, ok rows, blocked rows) straight from the database."""
    row = _query(ledger, "SELECT COALESCE(SUM(cost_usd), 0), SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END), "
                         "SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END) FROM llm_usage")[0]
    return float(row[0]), int(row[1] or 0), int(row[2] or 0)


def _assert_rollup_matches_rows(ledger: str) -> None:
    """The hourly roll-up equals a GROUP BY over every row (both are written in one transaction)."""
    keys = "hour, provider, model, operation, feature, status"
    sums = "input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens, total_tokens"

    def normal(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return sorted(tuple(round(float(v), 9) if not isinstance(v, str) else v for v in r) for r in rows)

    rolled = _query(ledger, f"SELECT {keys}, calls, {sums}, cost_usd FROM llm_usage_hourly")
    rows = _query(ledger, f"SELECT substr(ts_utc, 1, 13) AS hour, provider, model, operation, feature, status, "
                          f"COUNT(*), {', '.join(f'SUM({c})' for c in sums.split(', '))}, "
                          f"COALESCE(SUM(cost_usd), 0) FROM llm_usage GROUP BY {keys}")
    assert rows and normal(rolled) == normal(rows)
    histogram = _query(ledger, "SELECT measure, SUM(n) FROM llm_usage_histogram GROUP BY measure")
    measured = _query(ledger, "SELECT COUNT(*) FROM llm_usage WHERE status = 'ok' AND usage_reported = 1")[0][0]
    assert dict(histogram).get("latency", 0) == measured == dict(histogram).get("tokens", 0)


def _assert_budget_held(ledger: str, outcomes: list[dict[str, int]], limit: float = LIMIT_USD,
                        used: float = 0.7) -> float:
    _assert_rollup_matches_rows(ledger)
    cost, ok_rows, blocked_rows = _ledger_totals(ledger)
    assert ok_rows == sum(o["sent"] for o in outcomes)  # no row lost
    assert blocked_rows == sum(o["refused"] for o in outcomes)
    assert cost <= limit + 1e-12, f"the fleet spent ${cost:.6f} of a ${limit} budget"
    assert cost >= used * limit, f"the fleet used only ${cost:.6f} of ${limit}"
    return cost


def test_4_processes_x_4_threads_on_one_sqlite_file_never_overshoot_a_block_budget(simulator: Any,
                                                                                   tmp_path: Path) -> None:
    ledger = str(tmp_path / "usage.db")
    outcomes = _run_fleet(ledger, simulator.port, processes=4, threads=4)
    _assert_budget_held(ledger, outcomes)
    conn = sqlite3.connect(ledger)  # every reservation was settled with its row
    assert conn.execute("SELECT COUNT(*) FROM llm_budget_reservations").fetchone()[0] == 0


LEASED_LIMIT_USD = 0.15
"""A budget ~900 estimates wide: far from its limit each process admits from a lease, near it exactly."""


def _reservations_made(ledger: str) -> int:
    """How many reservations (per-call or lease) the fleet made: the largest id the table has handed out."""
    query = ("SELECT seq FROM sqlite_sequence WHERE name = 'llm_budget_reservations'" if not ledger.startswith(
        "postgresql://") else "SELECT last_value FROM llm_budget_reservations_id_seq")
    return int(_query(ledger, query)[0][0])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_leased_admission_far_from_the_limit_needs_few_round_trips_and_still_never_overshoots(
        simulator: Any, tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    ledger = str(tmp_path / "usage.db") if backend == "sqlite" else request.getfixturevalue("pg_ledger")
    outcomes = _run_fleet(ledger, simulator.port, processes=4, threads=4, limit=LEASED_LIMIT_USD)
    cost = _assert_budget_held(ledger, outcomes, LEASED_LIMIT_USD, used=0.95)
    sent = sum(o["sent"] for o in outcomes)
    made = _reservations_made(ledger)
    print(f"{backend}: {sent} calls sent, {made} reservations made, ${cost:.6f} of ${LEASED_LIMIT_USD}")
    assert made < sent / 2  # most calls were admitted from a lease, with no round trip
    held = _query(ledger, "SELECT COALESCE(SUM(usd), 0) FROM llm_budget_reservations")[0][0]
    assert float(held) < 1e-9  # every lease was given back or charged down to nothing


def test_3_processes_x_4_threads_on_postgresql_never_overshoot_and_the_cli_matches(simulator: Any,
                                                                                  pg_ledger: str) -> None:
    outcomes = _run_fleet(pg_ledger, simulator.port, processes=3, threads=4)
    cost = _assert_budget_held(pg_ledger, outcomes)
    report = subprocess.run([sys.executable, "-m", "tokentrace.cli", "report", "--ledger", pg_ledger, "--since",
                             "1d", "--by", "provider", "--format", "json"], capture_output=True, text=True, cwd=ROOT)
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["totals"]["cost_usd"] == pytest.approx(cost, rel=1e-9)
    assert data["totals"]["calls"] == sum(o["sent"] + o["refused"] for o in outcomes)
    assert "tokentrace@" in data["ledger"] and "password" not in data["ledger"]


def test_reports_agree_on_sqlite_and_postgresql_for_the_same_rows(tmp_path: Path, pg_ledger: str) -> None:
    from tokentrace.ledger import reports
    from tokentrace.ledger.db import row_of
    from tokentrace.ledger.store import open_db

    from .ledger_helpers import record

    now = time.time()
    records = [record(now - i * 600, feature=("chat", "search")[i % 2], cost=None if i == 3 else 0.001 * i,
                      status="error" if i == 5 else "ok", ttft_s=0.05 * i if i % 3 == 0 else None,
                      team="a" if i % 2 else "b") for i in range(12)]
    for location in (str(tmp_path / "usage.db"), pg_ledger):
        db = open_db(location, create=True)
        db.insert([row_of(r) for r in records])
        db.close()
    for by in ("provider", "feature", "day", "user"):
        sqlite_report = reports.report("1d", by, str(tmp_path / "usage.db"))
        pg_report = reports.report("1d", by, pg_ledger)
        assert sqlite_report["rows"] == pg_report["rows"] and sqlite_report["totals"] == pg_report["totals"]
    sqlite_stats, pg_stats = reports.stats("1d", str(tmp_path / "usage.db")), reports.stats("1d", pg_ledger)
    volatile = ("ledger", "from", "to")
    assert {k: v for k, v in sqlite_stats.items() if k not in volatile} == {
        k: v for k, v in pg_stats.items() if k not in volatile}
    from tokentrace import Budget

    scoped = [Budget("team-a", limit_usd=1.0, scope={"team": "a"}), Budget("chat", limit_usd=1.0,
                                                                           scope={"feature": "chat"})]
    assert reports.budget_status(scoped, str(tmp_path / "usage.db")) == reports.budget_status(scoped, pg_ledger)


def test_a_killed_process_releases_its_reservations_within_the_expiry(simulator: Any, pg_ledger: str) -> None:
    import psycopg

    # 10 slow calls in flight, then SIGKILL: their reservations stay until they lapse (TTL 3 s here)
    (proc,) = _start_workers(pg_ledger, simulator.port, processes=1, threads=10, latency_ms=30_000)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 20
    live = 0
    with psycopg.connect(pg_ledger, autocommit=True) as conn:
        while time.monotonic() < deadline and live < 10:
            with contextlib.suppress(psycopg.errors.UndefinedTable):  # the workers have not created the ledger yet
                live = conn.execute("SELECT COUNT(*) FROM llm_budget_reservations WHERE expires_at > %s",
                                    (time.time(),)).fetchone()[0]
            time.sleep(0.05)
        assert live == 10
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        time.sleep(3.5)
        live = conn.execute("SELECT COUNT(*) FROM llm_budget_reservations WHERE expires_at > %s",
                            (time.time(),)).fetchone()[0]
    assert live == 0  # released within the expiry: a new process gets the whole budget
    outcomes = _run_fleet(pg_ledger, simulator.port, processes=1, threads=2)
    _assert_budget_held(pg_ledger, outcomes)


def test_a_killed_process_lease_lapses_and_the_fleet_gets_the_whole_budget_back(simulator: Any,
                                                                               tmp_path: Path) -> None:
    # a lease granted far from the limit, 10 slow calls admitted from it, then SIGKILL (reservation TTL 3 s here)
    ledger = str(tmp_path / "usage.db")
    (proc,) = _start_workers(ledger, simulator.port, processes=1, threads=10, latency_ms=30_000,
                             limit=LEASED_LIMIT_USD)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 20
    held = 0.0
    while time.monotonic() < deadline and held <= 0.005:
        with contextlib.suppress(sqlite3.Error, IndexError):
            held = float(_query(ledger, f"SELECT COALESCE(SUM(usd), 0) FROM llm_budget_reservations "
                                        f"WHERE expires_at > {time.time()}")[0][0])
        time.sleep(0.05)
    assert held > 0.005  # a lease (1/16 of the budget), much more than 10 calls' estimates ($0.00165)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    time.sleep(3.5)
    live = float(_query(ledger, f"SELECT COALESCE(SUM(usd), 0) FROM llm_budget_reservations "
                                f"WHERE expires_at > {time.time()}")[0][0])
    assert live == 0.0  # lapsed within the expiry
    outcomes = _run_fleet(ledger, simulator.port, processes=2, threads=2, limit=LEASED_LIMIT_USD)
    _assert_budget_held(ledger, outcomes, LEASED_LIMIT_USD, used=0.95)  # the survivors use all of it


def test_a_process_killed_while_writing_leaves_the_rollup_equal_to_the_rows(simulator: Any,
                                                                           tmp_path: Path) -> None:
    """The crash test of the roll-up: SIGKILL in the middle of a stream of ledger writes."""
    ledger = str(tmp_path / "usage.db")
    victim, survivor = _start_workers(ledger, simulator.port, processes=2, threads=4, latency_ms=1)
    for proc in (victim, survivor):
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _query(ledger, "SELECT COUNT(*) FROM llm_usage")[0][0]:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    _assert_rollup_matches_rows(ledger)
    _, err = survivor.communicate(timeout=240)
    assert survivor.returncode == 0, err
    _assert_rollup_matches_rows(ledger)
    assert _ledger_totals(ledger)[0] <= LIMIT_USD + 1e-12


def test_postgresql_restarting_mid_run_reaches_no_caller_and_later_rows_are_written(simulator: Any) -> None:
    import psycopg

    import tokentrace
    from tokentrace import Budget
    from tokentrace._support import errors as _errors

    from .cases import MESSAGES
    from .conftest import make_telemetry, openai_client
    from .postgres_server import postgres_server

    with postgres_server() as server:
        _errors.reset()
        budget = Budget("roomy", limit_usd=100.0, action="block")
        telemetry = make_telemetry(ledger=server.url, budgets=[budget])
        with openai_client(simulator) as client:
            def call() -> None:
                result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=3)
                assert result.usage.completion_tokens == 3

            for _ in range(5):
                call()
            assert tokentrace.flush(5.0)
            server.stop()
            for _ in range(5):  # the store is down: budget_unavailable="allow" sends them, nothing raises
                call()
            server.start()
            time.sleep(5.5)  # past the admission back-off: the budget is checked against the store again
            for _ in range(5):
                call()
        assert tokentrace.flush(40.0)
        sink = telemetry.handle.sink("ledger")
        tokentrace.uninstrument()  # gives back what is left of this process's budget lease
        with psycopg.connect(server.url) as conn:
            rows = conn.execute("SELECT COUNT(*) FROM llm_usage WHERE status = 'ok'").fetchone()
            held = conn.execute("SELECT COALESCE(SUM(usd), 0) FROM llm_budget_reservations").fetchone()
        assert rows is not None and held is not None
        assert rows[0] + sink.dropped == 15  # every row written, or dropped and counted
        assert rows[0] >= 10  # the rows before the outage and after the restart are there
        assert float(held[0]) < 1e-9  # nothing stays reserved: rows settled, the lease given back
        assert _errors.counts().get("budget.unavailable", 0) >= 1


def test_gunicorn_4_workers_500_requests_hold_the_budget_and_count_exactly(simulator: Any, tmp_path: Path) -> None:
    import concurrent.futures
    import urllib.error
    import urllib.request

    from .conftest import free_port

    def get(url: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    ledger = str(tmp_path / "usage.db")
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    port = free_port()
    env = {**os.environ, "TT_LEDGER": ledger, "TT_SIM_PORT": str(simulator.port), "TT_LIMIT_USD": str(LIMIT_USD),
           "TT_PRICES": json.dumps(PRICES), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen([str(gunicorn), "-c", "tests/apps/fleet_gunicorn.py", "-b", f"127.0.0.1:{port}",
                               "tests.apps.fleet_wsgi:app"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                get(f"{base}/metrics")
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: get(f"{base}/call")[0], range(500)))
        assert set(codes) <= {200, 429} and codes.count(200) > 0 and codes.count(429) > 0
        from tokentrace.sinks.prometheus_multiprocess import EVERY_S

        time.sleep(EVERY_S + 2.5)  # each worker writes its budget gauges every EVERY_S, read from the ledger
        metrics = get(f"{base}/metrics")[1]
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    cost, ok_rows, blocked_rows = _ledger_totals(ledger)
    assert (ok_rows, blocked_rows) == (codes.count(200), codes.count(429))  # one row per request, none lost
    assert 0.7 * LIMIT_USD <= cost <= LIMIT_USD + 1e-12
    from prometheus_client.parser import text_string_to_metric_families

    ok_counted = sum(sample.value for family in text_string_to_metric_families(metrics)
                     for sample in family.samples
                     if sample.name == "llm_requests_total" and sample.labels.get("status") == "ok")
    assert ok_counted == codes.count(200)
    # issue 43 item 2: under gunicorn the budget gauges and the internal-error counter are served too, so the
    # budget alerts can fire (the gauges read the shared ledger: every worker reports the fleet's spend)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(metrics) for s in family.samples}
    assert samples[("llm_budget_limit_usd", (("budget", "fleet-daily"),))] == LIMIT_USD
    assert 0.7 * LIMIT_USD <= samples[("llm_budget_spent_usd", (("budget", "fleet-daily"),))] <= LIMIT_USD + 1e-9
    assert ("tokentrace_internal_errors_total", (("stage", "ledger.write"),)) in samples
