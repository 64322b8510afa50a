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
    reported = json.loads(json.dumps(tokentrace.report(since="1d", by="feature", ledger=ledger)))
    assert "ledger" not in data  # where the ledger lives is not the reader's business (issue 38, finding 11)
    assert data == {k: v for k, v in reported.items() if k != "ledger"} | {"from": data["from"], "to": data["to"]}
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
    assert status == 400 and body.startswith("no ledger") and str(ledger) not in body  # a one-line answer, no path
    make_telemetry(ledger=ledger)
    _calls(simulator, 2)
    for path in ("", "/"):
        status, kind, body = _get(f"{url}{path}?since=1d&by=model")
        assert status == 200 and kind == "application/json"
        assert [(r["key"], r["calls"]) for r in json.loads(body)["rows"]] == [("gpt-4o-mini-2024-07-18", 2)]
    assert _get(f"{url}?by=colour")[0] == 400
    assert _get(f"{url}/elsewhere")[0] == 404


# --------------------------------------------------------------------------- hardening (issue 32, finding 1)

def _ledger_with_people(path: Path, people: int) -> None:
    """A ledger with one call per distinct user and session (ids like e-mail addresses), written directly."""
    import time as clock

    from tokentrace._usage import Usage, UsageRecord
    from tokentrace.ledger.db import row_of
    from tokentrace.ledger.store import open_db

    now = clock.time()
    rows = [row_of(UsageRecord(now - 60, "openai", "gpt-4o-mini", "gpt-4o-mini", "chat", Usage(input=5, output=7),
                               0.001 * (i % 7), "test", 0.01, "ok",
                               attributes={"user_id": f"person{i}@example.com", "session_id": f"s{i}"}))
            for i in range(people)]
    db = open_db(path, create=True)
    try:
        db.insert(rows)
    finally:
        db.close()


def _get_with(url: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_usage_groups_are_capped_in_the_database_and_people_are_not_listed_unless_enabled(tmp_path: Path) -> None:
    ledger = tmp_path / "usage.db"
    _ledger_with_people(ledger, 250)
    port = make_telemetry(metrics_port=0, ledger=ledger).handle.metrics_server.port
    status, _, body = _get(f"http://127.0.0.1:{port}/usage?since=1d&by=user")
    assert status == 403 and "person" not in body and "usage_by_identity" in body
    assert _get(f"http://127.0.0.1:{port}/usage?since=1d&by=session")[0] == 403
    data = json.loads(_get(f"http://127.0.0.1:{port}/usage?since=1d&by=day")[2])
    assert data["truncated"] is False and data["totals"]["calls"] == 250
    tokentrace.uninstrument()
    port = make_telemetry(metrics_port=0, ledger=ledger, usage_by_identity=True).handle.metrics_server.port
    data = json.loads(_get(f"http://127.0.0.1:{port}/usage?since=1d&by=user")[2])
    assert len(data["rows"]) == 100 and data["truncated"] is True  # the default cap
    assert data["totals"]["calls"] == 250  # totals still cover every call
    full = tokentrace.report(since="1d", by="user", ledger=ledger)
    assert data["rows"] == full["rows"][:100] and full["truncated"] is False and len(full["rows"]) == 250
    data = json.loads(_get(f"http://127.0.0.1:{port}/usage?since=1d&by=user&limit=7")[2])
    assert len(data["rows"]) == 7 and data["rows"] == full["rows"][:7]
    for limit in ("0", "1001", "-3", "x", "9" * 5000):
        status, _, body = _get(f"http://127.0.0.1:{port}/usage?by=user&limit={limit}")
        assert status == 400 and body.startswith("limit must be") and len(body) < 200


@pytest.mark.parametrize("query", ["since=99999999999999d", "to=0001-01-01&since=1d", "since=" + "9" * 5000 + "d",
                                   "from=0001-01-01&to=0001-01-02", "since=9999999d"])
def test_absurd_windows_answer_400_not_500(tmp_path: Path, query: str) -> None:
    ledger = tmp_path / "usage.db"
    _ledger_with_people(ledger, 1)
    port = make_telemetry(metrics_port=0, ledger=ledger).handle.metrics_server.port
    status, _, body = _get(f"http://127.0.0.1:{port}/usage?{query}")
    assert status in (200, 400), body[:200]
    if status == 400:
        assert body.count("\n") == 1 and len(body) < 300 and str(tmp_path) not in body


def test_usage_beyond_loopback_needs_a_bearer_token(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ledger = tmp_path / "usage.db"
    _ledger_with_people(ledger, 3)
    port = make_telemetry(metrics_port=0, metrics_addr="0.0.0.0", ledger=ledger).handle.metrics_server.port
    assert "no usage token is set" in caplog.text  # said once, at start-up
    status, _, body = _get(f"http://127.0.0.1:{port}/usage?since=1d")
    assert status == 403 and "TOKENTRACE_USAGE_TOKEN" in body
    assert _get(f"http://127.0.0.1:{port}/metrics")[0] == 200  # metrics are still served
    tokentrace.uninstrument()
    token = "s3cret-token-0123456789"
    port = make_telemetry(metrics_port=0, metrics_addr="0.0.0.0", ledger=ledger,
                          usage_token=token).handle.metrics_server.port
    url = f"http://127.0.0.1:{port}/usage?since=1d"
    assert _get(url)[0] == 401
    assert _get_with(url, {"Authorization": "Bearer wrong-token-0123456789"})[0] == 401
    status, body = _get_with(url, {"Authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(body)["totals"]["calls"] == 3
    with pytest.raises(tokentrace.ConfigError):
        tokentrace.uninstrument()
        tokentrace.instrument(ledger=False, usage_token="short")


def test_one_report_at_a_time_a_second_waits_then_answers_503(tmp_path: Path) -> None:
    from tokentrace.serving import usage as usage_http

    ledger = tmp_path / "usage.db"
    _ledger_with_people(ledger, 3)
    policy = usage_http.UsagePolicy(wait_s=0.2)
    assert usage_http._one_report.acquire(timeout=1)  # a report in progress
    try:
        status, _, body = usage_http.usage_response("since=1d", ledger, policy)
    finally:
        usage_http._one_report.release()
    assert status == 503 and b"busy" in body
    assert usage_http.usage_response("since=1d", ledger, policy)[0] == 200


def test_a_report_over_its_time_limit_gives_up(tmp_path: Path) -> None:
    from tokentrace.ledger.reports import ReportError, report

    ledger = tmp_path / "usage.db"
    _ledger_with_people(ledger, 2000)
    with pytest.raises(ReportError, match="took longer"):
        report(since="1d", by="user", ledger=ledger, limit=10, time_limit=1e-6)


def test_the_asgi_usage_app_keeps_off_the_apps_default_executor(simulator: Any,
                                                                  starlette_app: tuple[str, Path]) -> None:
    url, ledger = starlette_app
    _ledger_with_people(ledger, 2)
    before = set(threading.enumerate())
    assert _get(f"{url}?since=1d")[0] == 200
    started = set(threading.enumerate()) - before
    assert any(t.name.startswith("tokentrace-usage") for t in started)  # the report ran on the app's own thread


def test_the_metrics_server_bounds_its_threads_under_idle_clients(tmp_path: Path) -> None:
    import socket

    from tokentrace.serving import metrics as metrics_http

    port = make_telemetry(metrics_port=0).handle.metrics_server.port
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(metrics_http.MAX_CONNECTIONS + 40)]
    try:
        time.sleep(0.5)
        assert threading.active_count() - before <= metrics_http.MAX_CONNECTIONS
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + 5
    while _get(f"http://127.0.0.1:{port}/metrics")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_200_concurrent_scrapes_are_all_answered_quickly() -> None:
    from concurrent.futures import ThreadPoolExecutor

    port = make_telemetry(metrics_port=0).handle.metrics_server.port

    def scrape(_: int) -> tuple[int, float]:
        started = time.monotonic()
        status = _get(f"http://127.0.0.1:{port}/metrics")[0]
        return status, time.monotonic() - started

    with ThreadPoolExecutor(200) as pool:
        results = list(pool.map(scrape, range(200)))
    durations = sorted(d for _, d in results)
    assert [s for s, _ in results] == [200] * 200
    assert durations[int(len(durations) * 0.9)] < 4.0, durations[-20:]  # the slowest tenth: was >= 4.4 s


def test_loopback_usage_answers_only_requests_to_a_loopback_name(simulator: Any, tmp_path: Path) -> None:
    """Issue 38, finding 11: the loopback /usage answered any Host, so a web page on this machine could read it
    through a DNS name pointed at 127.0.0.1 (DNS rebinding)."""
    import http.client

    telemetry = make_telemetry(metrics_port=0, ledger=tmp_path / "usage.db")
    port = telemetry.handle.metrics_server.port
    _calls(simulator, 1)

    def get(host: str) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/usage?since=1d", headers={"Host": host})
            return connection.getresponse().status
        finally:
            connection.close()

    assert get(f"127.0.0.1:{port}") == 200 and get(f"localhost:{port}") == 200 and get("[::1]") == 200
    assert get("attacker.example") == 403 and get(f"rebind.attacker.example:{port}") == 403
    assert get("127.0.0.1.nip.io") == 403


async def test_usage_app_takes_a_token_the_environment_and_the_instrumented_ledger(
        simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 38, finding 11: ``usage_app(token=...)`` raised TypeError, the app ignored TOKENTRACE_USAGE_TOKEN, and
    without ``ledger=`` it read the default path, not the ledger instrument() was given."""
    import httpx

    ledger = tmp_path / "mine.db"
    make_telemetry(ledger=ledger)
    _calls(simulator, 2)
    assert tokentrace.flush()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "elsewhere"))  # the default ledger: empty
    for app, token in ((tokentrace.usage_app(token="t" * 20), "t" * 20),
                       (_with_env(monkeypatch, "e" * 20), "e" * 20)):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
            assert (await client.get("/usage?since=1d")).status_code == 401
            answer = await client.get("/usage?since=1d", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and answer.json()["totals"]["calls"] == 2


def _with_env(monkeypatch: pytest.MonkeyPatch, token: str) -> Any:
    monkeypatch.setenv("TOKENTRACE_USAGE_TOKEN", token)
    return tokentrace.usage_app()
