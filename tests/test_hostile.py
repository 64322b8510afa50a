"""Hostile use: forks, signals, locks, odd strings and numbers must not hang the app, lose rows or leak.

Each test here reproduces one finding of the hardening review (issue 12) and failed before its fix. Process-level
behaviour (fork, SIGTERM, a locked or replaced ledger file) runs in a child Python process with its own
``instrument()``, calling the simulator through the real openai SDK.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

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
    from tokentrace import _errors
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
