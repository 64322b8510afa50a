"""A real backend reads tokentrace's spans (issue 42): Arize Phoenix, run as a local server with SQLite, receives
them over OTLP/HTTP; its REST API and GraphQL read back, per span, the tokens, tokentrace's cost and the session
(and per session, the calls' tokens). Phoenix is a server from PyPI in a venv of its own (``.venv-phoenix``, built by
``.ci/run``), as PostgreSQL is a Debian package; this file is collected when ``TOKENTRACE_PHOENIX`` names its
``phoenix`` executable (``.ci/run`` runs it after the main suite)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tokentrace
from tokentrace.testing import capture_usage

from .cases import MESSAGES
from .conftest import free_port, openai_client
from .missing import missing

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "tokentrace-e2e"


def _phoenix_binary() -> str:
    path = os.environ.get("TOKENTRACE_PHOENIX") or str(ROOT / ".venv-phoenix" / "bin" / "phoenix")
    if not os.access(path, os.X_OK):
        missing("Arize Phoenix is not installed (python3 -m venv .venv-phoenix && .venv-phoenix/bin/pip install "
                "arize-phoenix; .ci/run does)")
    return path


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = _phoenix_binary()
    home = tmp_path_factory.mktemp("phoenix")
    port, grpc_port = free_port(), free_port()
    env = {**os.environ, "PHOENIX_WORKING_DIR": str(home), "PHOENIX_PORT": str(port), "PHOENIX_HOST": "127.0.0.1",
           "PHOENIX_GRPC_PORT": str(grpc_port), "PHOENIX_TELEMETRY_ENABLED": "false"}
    with (home / "log").open("w") as log:
        server = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    with urllib.request.urlopen(url + "/healthz", timeout=1):
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError("Phoenix did not start: " + (home / "log").read_text()[-2000:]) from None
                    time.sleep(0.3)
            yield url
        finally:
            server.terminate()
            server.wait(10)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def _spans(url: str) -> list[Any]:
    try:
        return list(_get(f"{url}/v1/projects/{PROJECT}/spans")["data"])
    except urllib.error.HTTPError as error:
        if error.code == 404:  # the project is made with its first span
            return []
        raise


def _graphql(url: str, query: str) -> Any:
    request = urllib.request.Request(url + "/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())["data"]


def test_phoenix_reads_back_tokens_cost_and_session_of_each_span(phoenix: str, simulator: Any) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"openinference.project.name": PROJECT}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=phoenix + "/v1/traces")))
    tokentrace.uninstrument()
    tokentrace.instrument(tracer_provider=provider, ledger=False)
    try:
        with openai_client(simulator) as client, capture_usage() as records, \
                tokentrace.attributes(session_id="conversation-42", user_id="u-7", agent_id="planner"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                           extra_headers={"x-sim-cached-tokens": "2"})
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, service_tier="priority")
        provider.force_flush()
    finally:
        tokentrace.uninstrument()
        provider.shutdown()

    deadline = time.monotonic() + 30
    while len(spans := _spans(phoenix)) < 2 and time.monotonic() < deadline:  # Phoenix ingests in the background
        time.sleep(0.3)
    by_response = {span["attributes"]["gen_ai.response.id"]: span["attributes"] for span in spans}
    assert len(by_response) == len(records) == 2
    for record in records:
        attributes = by_response[record.response_id]
        assert attributes["gen_ai.usage.cost"] == attributes["tokentrace.cost_usd"] == record.cost_usd
        # what Phoenix made of the GenAI names (its OpenInference view): our tokens, our session and user
        assert attributes["llm.token_count.prompt"] == record.usage.all_input
        assert attributes["llm.token_count.completion"] == record.usage.all_output
        assert attributes["llm.token_count.prompt_details.cache_read"] == record.usage.cache_read
        assert (attributes["session.id"], attributes["user.id"], attributes["gen_ai.agent.name"]) == (
            "conversation-42", "u-7", "planner")
    sessions = _graphql(phoenix, '{ projects { edges { node { name sessions(first: 5) { edges { node { sessionId '
                                 'numTraces tokenUsage { total } } } } } } } }')
    (project,) = [e["node"] for e in sessions["projects"]["edges"] if e["node"]["name"] == PROJECT]
    (session,) = [e["node"] for e in project["sessions"]["edges"]]
    assert (session["sessionId"], session["numTraces"], session["tokenUsage"]["total"]) == (
        "conversation-42", 2, sum(r.usage.total for r in records))
