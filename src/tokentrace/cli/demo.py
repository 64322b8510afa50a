"""The demo workload: a realistic mix of calls through the real SDKs against the local simulator (no API keys)."""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator


@dataclass(frozen=True)
class Scenario:
    """One kind of call the demo makes."""

    feature: str
    provider_url: str
    model: str
    kind: str  # chat | stream | responses | embeddings | completions
    headers: dict[str, str] = field(default_factory=dict)
    max_tokens: int | None = None
    prompt: str = "Summarize the quarterly report in three short bullet points for the leadership team"
    cache_key: str | None = None


OPENAI = "https://api.openai.com/v1"
XAI = "https://api.x.ai/v1"
DEEPSEEK = "https://api.deepseek.com/v1"
GROQ = "https://api.groq.com/openai/v1"

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("summarize", OPENAI, "gpt-4o-mini", "chat", max_tokens=40),
    Scenario("chat", OPENAI, "gpt-4o", "stream", max_tokens=24),
    Scenario("search", OPENAI, "text-embedding-3-small", "embeddings"),
    Scenario("chat", OPENAI, "gpt-4o-mini", "chat", cache_key="support-bot-v3", max_tokens=16),
    Scenario("agent", OPENAI, "o3-mini", "responses", max_tokens=20),
    Scenario("chat", XAI, "grok-3-mini", "stream", max_tokens=12),
    Scenario("summarize", DEEPSEEK, "deepseek-chat", "chat", max_tokens=32),
    Scenario("chat", OPENAI, "gpt-4o-mini", "chat", headers={"x-sim-error": "429"}),
    Scenario("autocomplete", OPENAI, "gpt-3.5-turbo-instruct", "completions", max_tokens=10),
    Scenario("chat", GROQ, "llama-3.3-70b-versatile", "stream", max_tokens=16),
)


def scenarios(count: int) -> Iterator[Scenario]:
    return itertools.islice(itertools.cycle(SCENARIOS), count)


class Workload:
    """Runs scenarios against a simulator with one OpenAI client per provider host."""

    def __init__(self, port: int) -> None:
        import openai

        from ..simulator import sync_client

        self._openai = openai
        self._clients: dict[str, Any] = {}
        self._http = sync_client(port)

    def _client(self, base_url: str) -> Any:
        client = self._clients.get(base_url)
        if client is None:
            client = self._openai.OpenAI(api_key="sk-demo-not-a-real-key", base_url=base_url,
                                         http_client=self._http, max_retries=0)
            self._clients[base_url] = client
        return client

    def run(self, scenario: Scenario) -> None:
        """Make one call; the simulated errors are expected and swallowed here, as an app would handle them."""
        from .. import attributes

        client = self._client(scenario.provider_url)
        kwargs: dict[str, Any] = {"extra_headers": scenario.headers} if scenario.headers else {}
        with attributes(feature=scenario.feature, session_id="demo-session"), \
                contextlib.suppress(self._openai.APIError):
            self._call(client, scenario, kwargs)

    def _call(self, client: Any, s: Scenario, kwargs: dict[str, Any]) -> None:
        messages = [{"role": "system", "content": "You are a concise assistant"}, {"role": "user", "content": s.prompt}]
        if s.max_tokens:
            kwargs["max_tokens" if s.kind in ("chat", "stream", "completions") else "max_output_tokens"] = s.max_tokens
        if s.cache_key:
            kwargs["prompt_cache_key"] = s.cache_key
        if s.kind == "chat":
            client.chat.completions.create(model=s.model, messages=messages, **kwargs)
        elif s.kind == "stream":
            for _ in client.chat.completions.create(model=s.model, messages=messages, stream=True, **kwargs):
                pass
        elif s.kind == "responses":
            client.responses.create(model=s.model, input=s.prompt, **kwargs)
        elif s.kind == "embeddings":
            client.embeddings.create(model=s.model, input=[s.prompt, "quarterly report"], **kwargs)
        elif s.kind == "completions":
            client.completions.create(model=s.model, prompt=s.prompt, **kwargs)

    def close(self) -> None:
        self._http.close()


def run_workload(port: int, count: int, on_call: Callable[[], None] | None = None) -> None:
    workload = Workload(port)
    try:
        for scenario in scenarios(count):
            workload.run(scenario)
            if on_call is not None:
                on_call()
    finally:
        workload.close()
