"""The demo: a realistic mix of calls through the real SDKs against the local simulator (no API keys),
measured by tokentrace into the ledger and Prometheus, then reported."""

from __future__ import annotations

import contextlib
import itertools
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from .invocation import command_name


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
    user: str = "alice"
    sdk: str = "openai"
    """openai (any OpenAI-compatible host), anthropic, google, or a further SDK: bedrock, xai (xai-sdk over gRPC),
    mistral, cohere, ollama."""


OPENAI = "https://api.openai.com/v1"
XAI = "https://api.x.ai/v1"
DEEPSEEK = "https://api.deepseek.com/v1"
GROQ = "https://api.groq.com/openai/v1"

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("summarize", OPENAI, "gpt-4o-mini", "chat", max_tokens=40),
    Scenario("chat", OPENAI, "gpt-4o", "stream", max_tokens=24, user="bob"),
    Scenario("search", OPENAI, "text-embedding-3-small", "embeddings"),
    Scenario("chat", OPENAI, "gpt-4o-mini", "chat", cache_key="support-bot-v3", max_tokens=16, user="carol"),
    Scenario("agent", OPENAI, "o3-mini", "responses", max_tokens=20),
    Scenario("chat", XAI, "grok-3-mini", "stream", max_tokens=12, user="bob"),
    Scenario("summarize", DEEPSEEK, "deepseek-chat", "chat", max_tokens=32),
    Scenario("chat", OPENAI, "gpt-4o-mini", "chat", headers={"x-sim-error": "429"}, user="carol"),
    Scenario("autocomplete", OPENAI, "gpt-3.5-turbo-instruct", "completions", max_tokens=10),
    Scenario("chat", GROQ, "llama-3.3-70b-versatile", "stream", max_tokens=16),
    Scenario("chat", OPENAI, "gpt-4o-mini", "cache_hit", user="alice"),
    Scenario("chat", "", "claude-haiku-4-5", "stream", max_tokens=24, user="bob", sdk="anthropic"),
    Scenario("summarize", "", "gemini-2.5-flash", "chat", max_tokens=32, sdk="google"),
    Scenario("agent", "", "claude-opus-4-6", "stream", max_tokens=40, sdk="anthropic",
             headers={"x-sim-cached-tokens": "20", "x-sim-cache-write-tokens": "6"}),
    Scenario("chat", "", "gemini-2.5-flash", "stream", max_tokens=16, user="carol", sdk="google"),
    Scenario("search", "http://localhost:8000/v1", "acme-private-7b", "chat", max_tokens=8),  # no known price
    Scenario("summarize", "http://llm-gateway.internal:4000/v1", "gpt-4o-mini", "chat", max_tokens=12),  # inferred
    Scenario("agent", "", "anthropic.claude-3-5-haiku-20241022-v1:0", "stream", max_tokens=24, sdk="bedrock"),
    Scenario("chat", "", "grok-3-mini", "stream", max_tokens=16, user="carol", sdk="xai"),
    Scenario("summarize", "", "amazon.nova-lite-v1:0", "chat", max_tokens=20, sdk="bedrock"),
    Scenario("search", "", "command-r-08-2024", "chat", max_tokens=12, sdk="cohere"),
    Scenario("chat", "", "grok-3", "chat", max_tokens=20, user="bob", sdk="xai"),
    Scenario("autocomplete", "", "mistral-small-latest", "stream", max_tokens=10, sdk="mistral"),
    Scenario("summarize", "", "llama3.2", "chat", max_tokens=16, sdk="ollama"),  # a local model: $0
)


class Workload:
    """Runs scenarios against a simulator: OpenAI clients per provider host, and Anthropic and Gemini clients."""

    def __init__(self, port: int) -> None:
        import openai

        from ..simulator import sync_client

        self._port = port
        self._openai = openai
        self._clients: dict[str, Any] = {}
        self._http = sync_client(port)
        self._expected: tuple[type[BaseException], ...] = (openai.APIError,)
        self._closers: list[Callable[[], Any]] = [self._http.close]
        self.simulator: Any = None
        """The running Simulator, for the gRPC scenarios (xai-sdk); they are skipped without it."""

    def _client(self, scenario: Scenario) -> Any:
        key = scenario.sdk if scenario.sdk != "openai" else scenario.provider_url
        client = self._clients.get(key)
        if client is not None:
            return client
        url = f"http://127.0.0.1:{self._port}"
        if scenario.sdk == "anthropic":
            import anthropic

            client = anthropic.Anthropic(api_key="sk-ant-demo-not-a-real-key", base_url=url, max_retries=0)
            self._expected += (anthropic.APIError,)
        elif scenario.sdk == "google":
            from google import genai
            from google.genai import errors, types

            client = genai.Client(api_key="demo-not-a-real-key", http_options=types.HttpOptions(base_url=url))
            self._expected += (errors.APIError,)
        elif scenario.sdk in _MORE_CLIENTS:
            client, expected = _MORE_CLIENTS[scenario.sdk](self)
            self._expected += expected
        else:
            client = self._openai.OpenAI(api_key="sk-demo-not-a-real-key", base_url=scenario.provider_url,
                                         http_client=self._http, max_retries=0)
        close = getattr(client, "close", None)  # not every SDK client has one (boto3, cohere)
        if callable(close):
            self._closers.append(close)
        self._clients[key] = client
        return client

    def run(self, scenario: Scenario) -> bool:
        """Make one call (False when its SDK is not installed); simulated errors are swallowed, as an app would."""
        from .. import BudgetExceeded, attributes

        try:
            client = self._client(scenario)
        except ImportError:
            return False
        kwargs: dict[str, Any] = {"extra_headers": scenario.headers} if scenario.headers else {}
        with attributes(feature=scenario.feature, session_id="demo-session", user_id=scenario.user), \
                contextlib.suppress(*self._expected, BudgetExceeded):
            self._call(client, scenario, kwargs)
        return True

    def _call(self, client: Any, s: Scenario, kwargs: dict[str, Any]) -> None:
        messages = [{"role": "system", "content": "You are a concise assistant"}, {"role": "user", "content": s.prompt}]
        if s.sdk == "anthropic":
            with client.messages.stream(model=s.model, max_tokens=s.max_tokens or 32, system=messages[0]["content"],
                                        messages=messages[1:], **kwargs) as stream:
                for _ in stream.text_stream:
                    pass
            return
        if s.sdk == "google":
            from google.genai import types

            config = types.GenerateContentConfig(max_output_tokens=s.max_tokens,
                                                 http_options=types.HttpOptions(headers=s.headers or None))
            if s.kind == "stream":
                for _ in client.models.generate_content_stream(model=s.model, contents=s.prompt, config=config):
                    pass
            else:
                client.models.generate_content(model=s.model, contents=s.prompt, config=config)
            return
        if s.sdk in _MORE_CALLS:
            _MORE_CALLS[s.sdk](client, s, messages)
            return
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
        elif s.kind == "cache_hit":  # the app answered from its own response cache: no provider call
            from .. import record_cache_hit

            record_cache_hit("openai", s.model)

    def close(self) -> None:
        for close in self._closers:
            with contextlib.suppress(Exception):
                close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def httpx_client(self) -> Any:
        """An httpx client to the simulator that keeps the provider's host name (the SDKs that take httpx)."""
        import httpx

        from ..simulator import sync_client

        client = sync_client(self._port, httpx_module=httpx)
        self._closers.append(client.close)
        return client


def _bedrock_client(w: Workload) -> tuple[Any, tuple[type[BaseException], ...]]:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=w.url,
                          aws_access_key_id="AKIADEMONOTAREALKEY", aws_secret_access_key="demo-not-a-real-key",
                          config=Config(retries={"total_max_attempts": 1}))
    return client, (BotoCoreError, ClientError)


def _xai_client(w: Workload) -> tuple[Any, tuple[type[BaseException], ...]]:
    import grpc
    import xai_sdk

    from ..simulator import Simulator

    simulator: Simulator | None = w.simulator
    if simulator is None:
        raise ImportError("no simulator serving gRPC")  # skipped, like a scenario whose SDK is not installed
    return xai_sdk.Client(api_key="xai-demo-not-a-real-key", api_host=simulator.grpc_address,
                          use_insecure_channel=True), (grpc.RpcError,)


def _mistral_client(w: Workload) -> tuple[Any, tuple[type[BaseException], ...]]:
    from mistralai.client import Mistral, errors

    return Mistral(api_key="demo-not-a-real-key", server_url="https://api.mistral.ai", client=w.httpx_client()), \
        (errors.MistralError,)


def _cohere_client(w: Workload) -> tuple[Any, tuple[type[BaseException], ...]]:
    import cohere
    from cohere.core.api_error import ApiError

    return cohere.ClientV2(api_key="demo-not-a-real-key", base_url="https://api.cohere.com",
                           httpx_client=w.httpx_client()), (ApiError,)


def _ollama_client(w: Workload) -> tuple[Any, tuple[type[BaseException], ...]]:
    import ollama

    return ollama.Client(host=w.url), (ollama.ResponseError,)


_MORE_CLIENTS: dict[str, Callable[[Workload], tuple[Any, tuple[type[BaseException], ...]]]] = {
    "bedrock": _bedrock_client, "xai": _xai_client, "mistral": _mistral_client, "cohere": _cohere_client,
    "ollama": _ollama_client}


def _bedrock_call(client: Any, s: Scenario, messages: list[dict[str, str]]) -> None:
    request = {"modelId": s.model, "system": [{"text": messages[0]["content"]}],
               "messages": [{"role": "user", "content": [{"text": s.prompt}]}],
               "inferenceConfig": {"maxTokens": s.max_tokens or 32}}
    if s.kind == "stream":
        for _ in client.converse_stream(**request)["stream"]:
            pass
    else:
        client.converse(**request)


def _xai_call(client: Any, s: Scenario, messages: list[dict[str, str]]) -> None:
    from xai_sdk.chat import system, user

    chat = client.chat.create(model=s.model, max_tokens=s.max_tokens or 32)
    chat.append(system(messages[0]["content"]))
    chat.append(user(s.prompt))
    if s.kind == "stream":
        for _ in chat.stream():
            pass
    else:
        chat.sample()


def _mistral_call(client: Any, s: Scenario, messages: list[dict[str, str]]) -> None:
    if s.kind == "stream":
        for _ in client.chat.stream(model=s.model, messages=messages, max_tokens=s.max_tokens):
            pass
    else:
        client.chat.complete(model=s.model, messages=messages, max_tokens=s.max_tokens)


def _cohere_call(client: Any, s: Scenario, messages: list[dict[str, str]]) -> None:
    client.chat(model=s.model, messages=messages, max_tokens=s.max_tokens, request_options={"max_retries": 0})


def _ollama_call(client: Any, s: Scenario, messages: list[dict[str, str]]) -> None:
    client.chat(s.model, messages, options={"num_predict": s.max_tokens})


_MORE_CALLS: dict[str, Callable[[Any, Scenario, list[dict[str, str]]], None]] = {
    "bedrock": _bedrock_call, "xai": _xai_call, "mistral": _mistral_call, "cohere": _cohere_call,
    "ollama": _ollama_call}


def run_workload(port: int, count: int, on_call: Callable[[], None] | None = None, simulator: Any = None) -> None:
    """Make ``count`` calls, cycling through the scenarios; ``simulator`` (a running Simulator) also serves the
    gRPC scenarios (xai-sdk), which are skipped without it."""
    workload = Workload(port)
    workload.simulator = simulator
    try:
        made = 0
        for scenario in itertools.cycle(SCENARIOS):
            if made >= count:
                break
            if workload.run(scenario):  # scenarios whose SDK is not installed are skipped
                made += 1
                if on_call is not None:
                    on_call()
    finally:
        workload.close()


DEMO_BUDGETS = Path(__file__).with_name("demo_budgets.toml")
"""A warn budget the demo crosses, a block budget that refuses some agent calls, a monthly USD + token budget."""


def demo_ledger_path() -> Path:
    """The demo's own ledger, beside the default one (never the user's real ledger unless --ledger says so)."""
    from ..config import default_ledger_path

    return default_ledger_path().with_name("demo.db")


def _fresh(path: Path) -> None:
    """Start the demo ledger empty, so each run reports just itself."""
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def run_demo(*, calls: int, serve: bool, metrics_port: int, metrics_addr: str, ledger: str | None, console: Any,
             err_console: Any, fail: Callable[[str], NoReturn]) -> None:
    try:
        import openai  # noqa: F401

        from ..simulator import Simulator
    except ImportError as exc:
        fail(f"the demo needs the openai and simulator extras ({exc.name} is missing): "
             "pip install 'tokentrace[openai,simulator]'")
    from rich.progress import Progress

    import tokentrace

    from ..ledger import reports
    from ..ledger.location import describe
    from . import render

    if ledger is None:
        demo_ledger = demo_ledger_path()
        _fresh(demo_ledger)
        ledger = str(demo_ledger)
    handle = tokentrace.instrument(metrics_port=metrics_port if serve else None, metrics_addr=metrics_addr,
                                   ledger=ledger, budgets=str(DEMO_BUDGETS))
    ledger_sink = handle.sink("ledger")
    if ledger_sink is None:
        tokentrace.uninstrument()
        fail(f"the demo could not open its ledger {describe(ledger)}"
             + (" (TOKENTRACE_DISABLED is set)" if not handle.enabled else ""))
    if serve and (handle.metrics_server is None or not handle.metrics_server.running):
        tokentrace.uninstrument()
        fail(f"cannot serve /metrics on {metrics_addr}:{metrics_port} (in use?); pick another --metrics-port")
    with Simulator(latency_ms=5, chunk_delay_ms=1) as sim:
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("simulated LLM calls", total=calls)
            run_workload(sim.port, calls, on_call=lambda: progress.advance(task), simulator=sim)
        tokentrace.flush()
        console.print(f"Ledger: {describe(ledger_sink.path)} (the demo's own; your usage ledger is untouched)"
                      if ledger == str(demo_ledger_path()) else f"Ledger: {describe(ledger_sink.path)}",
                      soft_wrap=True)
        _provider_table(console, reports.report("1d", "provider", ledger_sink.path))
        render.report_table(console, reports.report("1d", "feature", ledger_sink.path))
        _inferred_prices(console, ledger_sink.path)
        budget_sink = handle.sink("budget")
        if budget_sink is not None:
            render.budget_table(console, [reports.budget_row(s.budget, s.spent_usd, s.spent_tokens)
                                          for s in budget_sink.status()])
        where = describe(ledger_sink.path)
        again = command_name()
        console.print(f"Again: {again} report --ledger {where}\n"
                      f"       {again} budget --budgets {DEMO_BUDGETS} --ledger {where}", soft_wrap=True,
                      highlight=False)
        if serve:
            _serve(sim.port, f"http://{metrics_addr}:{metrics_port}/metrics", console)
    tokentrace.flush()
    tokentrace.uninstrument()


def _provider_table(console: Any, data: dict[str, Any]) -> None:
    from . import render

    render.report_table(console, {**data, "by": "provider"}, title="Measured by provider (last 24 h)", totals=False,
                        trend=False)


def _inferred_prices(console: Any, ledger: Any) -> None:
    """Say which calls to unknown hosts were priced from a matching price-table entry."""
    from ..ledger import reports

    db, _ = reports.open_ledger(ledger)
    try:
        found = db.execute("SELECT DISTINCT provider, model, price_source FROM llm_usage "
                           "WHERE price_source LIKE 'inferred%' ORDER BY provider, model").fetchall()
    finally:
        db.close()
    for provider, model, source in found:
        console.print(f"Priced by inference: {provider} / {model}: {source}", highlight=False)  # wraps at the width


def _serve(port: int, metrics_url: str, console: Any) -> None:
    """Keep traffic flowing until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"Serving {metrics_url}; Ctrl-C to stop.", soft_wrap=True)
    workload = Workload(port)
    try:
        for scenario in itertools.cycle(SCENARIOS):
            if stop.is_set():
                break
            workload.run(scenario)
            stop.wait(0.1)
    finally:
        workload.close()
