"""``GET /usage`` over real HTTP: on the metrics server, and as the ASGI app in a Starlette app under uvicorn."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tokentrace

from .conftest import free_port, make_telemetry, openai_client


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def _calls(simulator: Any, n: int) -> None:
    with openai_client(simulator) as client, tokentrace.attributes(feature="summarize"):
        for _ in range(n):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert tokentrace.flush()


def test_the_metrics_server_serves_the_report_at_usage_on_the_port_it_bound(simulator: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "usage.db"
    telemetry = make_telemetry(metrics_port=0, ledger=ledger)
    port = telemetry.handle.metrics_server.port
    assert port != 0  # port 0: the port the OS chose is readable from the handle
    _calls(simulator, 3)
    status, kind, body = _get(f"http://127.0.0.1:{port}/usage?since=1d&by=feature")
    assert status == 200 and kind == "application/json"
    data = json.loads(body)
    assert data == json.loads(json.dumps(tokentrace.report(since="1d", by="feature", ledger=ledger))) | {
        "from": data["from"], "to": data["to"]}
    assert [(r["key"], r["calls"]) for r in data["rows"]] == [("summarize", 3)]
    assert _get(f"http://127.0.0.1:{port}/metrics")[0] == 200
    for query, message in (("by=colour", "by must be one of"), ("since=forever", "since must look like"),
                           ("from=yesterday", "from must be a date"), ("colour=red", "unknown parameter")):
        status, kind, body = _get(f"http://127.0.0.1:{port}/usage?{query}")
        assert status == 400 and kind.startswith("text/plain") and body.startswith(message) and body.count("\n") == 1


def test_usage_without_a_ledger_is_not_found(simulator: Any) -> None:
    telemetry = make_telemetry(metrics_port=0, ledger=False)
    status, _, body = _get(f"http://127.0.0.1:{telemetry.handle.metrics_server.port}/usage")
    assert status == 404 and "no ledger" in body


@pytest.fixture
def starlette_app(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Starlette app with the usage app mounted at /internal/usage, served by uvicorn on a free port."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount

    ledger = tmp_path / "usage.db"
    app = Starlette(routes=[Mount("/internal/usage", app=tokentrace.usage_app(ledger=ledger))])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}/internal/usage", ledger
    server.should_exit = True
    thread.join(timeout=10)


def test_usage_app_mounted_in_a_starlette_app_answers_like_the_cli(simulator: Any,
                                                                    starlette_app: tuple[str, Path]) -> None:
    url, ledger = starlette_app
    status, _, body = _get(f"{url}?since=1d")
    assert status == 400 and "no ledger at" in body  # nothing written yet: a one-line answer, not a 500
    make_telemetry(ledger=ledger)
    _calls(simulator, 2)
    for path in ("", "/"):
        status, kind, body = _get(f"{url}{path}?since=1d&by=model")
        assert status == 200 and kind == "application/json"
        assert [(r["key"], r["calls"]) for r in json.loads(body)["rows"]] == [("gpt-4o-mini-2024-07-18", 2)]
    assert _get(f"{url}?by=colour")[0] == 400
    assert _get(f"{url}/elsewhere")[0] == 404
