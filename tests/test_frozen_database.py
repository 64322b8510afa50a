"""A frozen PostgreSQL server (every process SIGSTOPped) must not hang the app: every promised bound, measured.

An app process with a block budget and a PostgreSQL ledger makes calls; the server is frozen; the app's call, a
``/metrics`` scrape, ``tokentrace.flush(3)`` and SIGTERM must each end within their bound (README, reliability).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .postgres_server import PgServer, postgres_server

ROOT = Path(__file__).resolve().parent.parent

APP = textwrap.dedent("""
    import json, sys, time, urllib.request
    import openai, tokentrace
    from tokentrace.simulator import sync_client

    url, port = sys.argv[1], int(sys.argv[2])
    prices = {"gpt-4o-mini": {"provider": "openai", "input": 1, "output": 2}}
    handle = tokentrace.instrument(ledger=url, metrics_port=0, prices=prices,
                                   budgets=[tokentrace.Budget("day", limit_usd=100, action="block")])
    client = openai.OpenAI(api_key="sk-test", base_url="https://api.openai.com/v1", max_retries=0,
                           http_client=sync_client(port))

    def call():
        client.chat.completions.create(model="gpt-4o-mini", max_tokens=5, messages=[{"role": "user", "content": "hi"}])

    def timed(work):
        started = time.monotonic()
        result = work()
        return time.monotonic() - started, result

    for _ in range(3):
        call()
    assert tokentrace.flush(10)
    print("ready", flush=True)
    sys.stdin.readline()  # the server is frozen now
    calls = [timed(call)[0] for _ in range(3)]
    scrape, _ = timed(lambda: urllib.request.urlopen(
        f"http://127.0.0.1:{handle.metrics_server.port}/metrics", timeout=60).read())
    flush_s, flushed = timed(lambda: tokentrace.flush(3))
    print(json.dumps({"calls": calls, "scrape": scrape, "flush": flush_s, "flushed": flushed}), flush=True)
    while True:  # calls go on until SIGTERM
        call()
        time.sleep(0.01)
""")


def _cluster_pids(server: PgServer) -> list[int]:
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
    return [postmaster, *map(int, children)]


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    """A cluster of this test's own: freezing it must not touch the session's server."""
    with postgres_server() as server:
        yield server


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def test_a_frozen_postgresql_server_never_hangs_the_app(simulator: Any, own_server: PgServer) -> None:
    app = subprocess.Popen([sys.executable, "-c", APP, own_server.url, str(simulator.port)], cwd=ROOT,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    frozen: list[int] = []
    try:
        assert app.stdout is not None and app.stdin is not None
        assert app.stdout.readline().strip() == "ready", app.stderr.read() if app.stderr else ""
        frozen = _cluster_pids(own_server)
        _signal_all(frozen, signal.SIGSTOP)
        app.stdin.write("go\n")
        app.stdin.flush()
        line = app.stdout.readline()
        assert line, app.stderr.read() if app.stderr else ""
        measured = json.loads(line)
        app.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        with contextlib.suppress(subprocess.TimeoutExpired):
            app.wait(timeout=30)
        exited_s = time.monotonic() - sent
    finally:
        _signal_all(frozen, signal.SIGCONT)
        if app.poll() is None:
            app.kill()
            app.wait()
    print("frozen-server bounds:", json.dumps({**measured, "sigterm_exit": exited_s}))
    # the README's promises: admission gives up after about a second (then budget_unavailable="allow" sends the
    # call); a scrape never queries the database; flush(3) returns in about 3 s; SIGTERM flushes for at most 2 s
    assert max(measured["calls"]) < 3.0, measured
    assert measured["scrape"] < 1.0, measured
    assert measured["flush"] < 3.6 and measured["flushed"] is False, measured
    assert exited_s < 4.0 and app.returncode == -signal.SIGTERM, (exited_s, app.returncode)
