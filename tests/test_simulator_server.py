"""``python -m tokentrace.simulator``: the simulator as a server of its own, as an app run apart from it uses it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from .conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def _server(*flags: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tokentrace.simulator", "--port", str(port), *flags], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_python_m_tokentrace_simulator_serves_the_openai_format() -> None:
    with _server() as url:
        answer = httpx.post(f"{url}/v1/chat/completions", json={
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 4})
    assert answer.status_code == 200
    assert answer.json()["usage"] == {**answer.json()["usage"], "prompt_tokens": 7, "completion_tokens": 4,
                                      "total_tokens": 11}


def test_its_flags_set_what_every_call_gets() -> None:
    with _server("--error", "429", "--latency-ms", "50") as url:
        started = time.monotonic()
        answer = httpx.post(f"{url}/v1/messages", json={
            "model": "claude-haiku-4-5", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
        took = time.monotonic() - started
    assert answer.status_code == 429 and took >= 0.05


def test_a_bad_flag_is_refused_with_the_choices() -> None:
    result = subprocess.run([sys.executable, "-m", "tokentrace.simulator", "--error", "sometimes"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "429" in result.stderr and "no-usage" in result.stderr
