"""Frameworks written by others, driven against the simulator over real sockets (issue 40's framework suite).

Each case runs twice, uninstrumented then instrumented, and must show: the framework's own result (text, chunks,
the usage it reports) equal in both runs; as many calls counted as LLM requests the simulator served; each answer
counted once, with the tokens the simulator billed for it. The frameworks are not the project's dependencies: CI
installs them in venvs of their own (``.ci/run``) and runs this file there with ``TOKENTRACE_FRAMEWORKS`` naming
the frameworks that venv holds; the README's test command does not collect it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tokentrace.testing import capture_usage
from tokentrace.wire.routes import recognise

from ..conftest import make_telemetry

QUESTION = "count the tokens of this question"
_LOOP = asyncio.new_event_loop()


def _in_loop(coroutine: Any) -> Any:
    """One event loop for every async run: frameworks keep clients bound to the loop that first used them."""
    return _LOOP.run_until_complete(coroutine)


@dataclass(frozen=True)
class FrameworkCase:
    framework: str
    mode: str
    run: Callable[[], Any]
    """Runs the framework once; returns what the app would read from it (texts, chunks, the usage it reports)."""
    reported_totals: Callable[[Any], list[int]] | None = None
    """For a provider the simulator does not bill (Gemini): the totals of each answer, as the framework read them."""
    layer: str = "sdk"
    """Which layer counts the case (docs/wire-layer.md's table): ``sdk`` (exact with the HTTP hooks off), ``wire``,
    or ``sdk+hooks`` (the SDK layer, with the hooks telling an attempt the SDK refused before sending)."""

    @property
    def id(self) -> str:
        return f"{self.framework}-{self.mode}"


def _llm_paths(served: list[str]) -> list[str]:
    return [path for path in served if recognise("POST", "api.openai.com", path) is not None]


def check(simulator: Any, run: Callable[[], Any], reported_totals: Callable[[Any], list[int]] | None = None
          ) -> list[Any]:
    """Run uninstrumented, then instrumented: the results equal, every served LLM request counted once, exactly."""
    uninstrumented = run()
    make_telemetry()
    served, billed = len(simulator.served), len(simulator.billed)
    with capture_usage() as records:
        instrumented = run()
    assert instrumented == uninstrumented
    requests = _llm_paths(simulator.served[served:])
    assert requests and len(records) == len(requests), (requests, records)
    assert all(r.status == "ok" and r.usage_reported for r in records), records
    if reported_totals is not None:
        assert sorted(r.usage.total for r in records) == sorted(reported_totals(instrumented))
        return records
    bills = simulator.billed[billed:]
    assert len(bills) == len(records)
    assert sorted(r.usage.total for r in records) == sorted(b.input_tokens + b.output_tokens for b in bills)
    return records


# --------------------------------------------------------------------------- pydantic-ai

def _pydantic_ai(model: str, mode: str) -> Callable[[], Any]:
    def run() -> Any:
        from pydantic_ai import Agent

        agent = Agent(model, instructions="Answer briefly.")

        def tool_free(usage: Any) -> tuple[int, int]:
            usage = usage() if callable(usage) else usage  # a method before pydantic-ai 2.7x, a property since
            return usage.input_tokens, usage.output_tokens

        if mode == "sync":
            result = agent.run_sync(QUESTION)
            return result.output, tool_free(result.usage)
        if mode == "async":
            result = _in_loop(agent.run(QUESTION))
            return result.output, tool_free(result.usage)

        async def stream() -> Any:
            async with agent.run_stream(QUESTION) as streamed:
                texts = [text async for text in streamed.stream_text(delta=True)]
                return "".join(texts), tool_free(streamed.usage)

        return _in_loop(stream())

    return run


# --------------------------------------------------------------------------- the OpenAI Agents SDK

def _openai_agents(mode: str) -> Callable[[], Any]:
    def run() -> Any:
        from agents import Agent, Runner, set_default_openai_client, set_tracing_disabled
        from openai import AsyncOpenAI

        set_tracing_disabled(True)
        set_default_openai_client(AsyncOpenAI())  # one per event loop: each run has its own
        agent = Agent(name="counter", instructions="Answer briefly.", model="gpt-4o-mini")
        if mode == "sync":
            return Runner.run_sync(agent, QUESTION).final_output
        if mode == "async":
            return _in_loop(Runner.run(agent, QUESTION)).final_output

        async def stream() -> Any:
            result = Runner.run_streamed(agent, QUESTION)
            kinds = [event.type async for event in result.stream_events()]
            return result.final_output, kinds

        return _in_loop(stream())

    return run


# --------------------------------------------------------------------------- LangChain

def _langchain(provider: str, mode: str) -> Callable[[], Any]:
    def run() -> Any:
        if provider == "openai":
            from langchain_openai import ChatOpenAI

            chat: Any = ChatOpenAI(model="gpt-4o-mini", max_tokens=12)
        else:
            from langchain_anthropic import ChatAnthropic

            chat = ChatAnthropic(model="claude-haiku-4-5", max_tokens=12)  # type: ignore[call-arg]
        if mode == "sync":
            message = chat.invoke(QUESTION)
            return message.content, message.usage_metadata
        if mode == "async":
            message = _in_loop(chat.ainvoke(QUESTION))
            return message.content, message.usage_metadata
        chunks = list(chat.stream(QUESTION))
        return [c.content for c in chunks], [c.usage_metadata for c in chunks]

    return run


# --------------------------------------------------------------------------- DSPy (its default lm15 engine)

def _dspy(mode: str) -> Callable[[], Any]:
    def run() -> Any:
        import dspy

        lm = dspy.LM("openai/gpt-4o-mini", api_key="sk-test-secret-key", cache=False, max_tokens=16)
        if mode == "sync":
            return lm(QUESTION)
        if mode == "async":
            return _in_loop(lm.acall(QUESTION))
        with dspy.context(lm=lm):
            prediction = dspy.Predict("question -> answer")(question=QUESTION)
        return prediction.toDict()

    return run


# --------------------------------------------------------------------------- haystack

def _haystack(mode: str) -> Callable[[], Any]:
    def run() -> Any:
        from haystack.components.generators.chat import OpenAIChatGenerator
        from haystack.dataclasses import ChatMessage

        chunks: list[Any] = []
        generator = OpenAIChatGenerator(model="gpt-4o-mini", generation_kwargs={"max_completion_tokens": 12},
                                        streaming_callback=chunks.append if mode == "stream" else None)
        messages = [ChatMessage.from_user(QUESTION)]
        result = _in_loop(generator.run_async(messages=messages)) if mode == "async" else generator.run(
            messages=messages)
        reply = result["replies"][0]
        return reply.text, reply.meta.get("usage"), [c.content for c in chunks]

    return run


# --------------------------------------------------------------------------- smolagents

def _smolagents(mode: str) -> Callable[[], Any]:
    def run() -> Any:
        from smolagents import OpenAIModel

        model = OpenAIModel(model_id="gpt-4o-mini", max_tokens=12)
        messages = [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}]
        if mode == "sync":
            message = model.generate(messages)
            return message.content, message.token_usage
        deltas = list(model.generate_stream(messages))
        return [d.content for d in deltas], [d.token_usage for d in deltas]

    return run


# --------------------------------------------------------------------------- llama-index (openai < 3)

def _llama_index(mode: str) -> Callable[[], Any]:
    def run() -> Any:
        from llama_index.core.llms import ChatMessage
        from llama_index.llms.openai import OpenAI

        llm = OpenAI(model="gpt-4o-mini", max_tokens=12)
        if mode == "sync":
            return llm.complete(QUESTION).text
        if mode == "async":
            return _in_loop(llm.acomplete(QUESTION)).text
        if mode == "stream":
            return [r.delta for r in llm.stream_complete(QUESTION)]
        return str(llm.chat([ChatMessage(role="user", content=QUESTION)]).message.content)

    return run


# --------------------------------------------------------------------------- instructor

def _instructor(mode: str) -> Callable[[], Any]:
    def run() -> Any:
        import instructor
        import openai
        from pydantic import BaseModel

        class Answer(BaseModel):
            answer: str
            confidence: int

        messages = [{"role": "user", "content": QUESTION}]
        if mode == "sync":
            client = instructor.from_openai(openai.OpenAI(), mode=instructor.Mode.JSON_SCHEMA)
            return client.chat.completions.create(model="gpt-4o-mini", response_model=Answer,
                                                  messages=messages).model_dump()
        aclient = instructor.from_openai(openai.AsyncOpenAI(), mode=instructor.Mode.JSON_SCHEMA)
        return _in_loop(aclient.chat.completions.create(model="gpt-4o-mini", response_model=Answer,
                                                        messages=messages)).model_dump()

    return run


# --------------------------------------------------------------------------- crewai (openai < 3)

def _crewai(mode: str) -> Callable[[], Any]:
    def run() -> Any:
        from crewai import LLM

        llm = LLM(model="gpt-4o-mini", max_tokens=12)
        if mode == "sync":
            return llm.call(QUESTION)
        return _in_loop(llm.acall(QUESTION))

    return run


# --------------------------------------------------------------------------- google-adk (google-genai < 3)

def _google_adk(mode: str) -> Callable[[], Any]:
    def run() -> Any:
        from google.adk.agents import Agent
        from google.adk.runners import InMemoryRunner
        from google.genai import types

        runner = InMemoryRunner(agent=Agent(name="counter", model="gemini-2.5-flash", instruction="Answer briefly."))

        async def agent_run() -> Any:
            session = await runner.session_service.create_session(app_name=runner.app_name, user_id="u")
            events = [event async for event in runner.run_async(
                user_id="u", session_id=session.id,
                new_message=types.Content(role="user", parts=[types.Part(text=QUESTION)]))]
            return [((e.content.parts[0].text if e.content and e.content.parts else None),
                     e.usage_metadata.total_token_count if e.usage_metadata else None) for e in events]

        return _in_loop(agent_run())

    return run


def _adk_totals(result: Any) -> list[int]:
    return [total for _, total in result if total is not None]


CASES = [
    *(FrameworkCase("pydantic_ai", f"{provider}-{mode}", _pydantic_ai(model, mode),
                    # the anthropic SDK refuses pydantic-ai's first, non-streamed attempt before sending it; only
                    # the HTTP hooks can tell it never left (without them it counts as a failed call)
                    layer="sdk+hooks" if provider == "anthropic" and mode != "stream" else "sdk")
      for provider, model in (("openai", "openai:gpt-4o-mini"), ("anthropic", "anthropic:claude-haiku-4-5"))
      for mode in ("sync", "async", "stream")),
    *(FrameworkCase("openai_agents", mode, _openai_agents(mode), layer="wire" if mode == "stream" else "sdk")
      for mode in ("sync", "async", "stream")),
    *(FrameworkCase("langchain", f"{provider}-{mode}", _langchain(provider, mode))
      for provider in ("openai", "anthropic") for mode in ("sync", "async", "stream")),
    *(FrameworkCase("dspy", mode, _dspy(mode), layer="wire") for mode in ("sync", "async", "program")),
    *(FrameworkCase("haystack", mode, _haystack(mode)) for mode in ("sync", "async", "stream")),
    *(FrameworkCase("smolagents", mode, _smolagents(mode)) for mode in ("sync", "stream")),
    *(FrameworkCase("llama_index", mode, _llama_index(mode)) for mode in ("sync", "async", "stream", "chat")),
    *(FrameworkCase("instructor", mode, _instructor(mode)) for mode in ("sync", "async")),
    *(FrameworkCase("crewai", mode, _crewai(mode)) for mode in ("sync", "async")),
    FrameworkCase("google_adk", "agent-run", _google_adk("agent"), reported_totals=_adk_totals),
]

_CHOSEN = {name.strip() for name in os.environ.get("TOKENTRACE_FRAMEWORKS", "").split(",") if name.strip()}


@pytest.mark.parametrize("case", [c for c in CASES if c.framework in _CHOSEN], ids=lambda c: c.id)
def test_each_framework_call_is_counted_once_with_the_usage_on_the_wire(to_simulator: Any,
                                                                        case: FrameworkCase) -> None:
    check(to_simulator, case.run, case.reported_totals)


@pytest.mark.parametrize("case", [c for c in CASES if c.framework in _CHOSEN], ids=lambda c: c.id)
def test_the_layer_that_counts_each_case_is_the_one_documented(to_simulator: Any, case: FrameworkCase) -> None:
    """With the HTTP hooks off, an SDK-layer case is still counted exactly; a wire-layer case is not."""
    make_telemetry(http=False)
    served = len(to_simulator.served)
    with capture_usage() as records:
        case.run()
    requests = _llm_paths(to_simulator.served[served:])
    exact = len(records) == len(requests) and all(r.usage_reported for r in records)
    assert exact is (case.layer == "sdk"), (case.layer, requests,
                                            [(r.status, r.stream, r.usage_reported) for r in records])
