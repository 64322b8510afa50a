"""Attribution from each framework's own structure, with no code in the app (issue 42): the calls made inside an
agent, a run, a graph node, a task or a module carry who made them; the app's own attribution wins; usage stays on
the provider call (one record per request, costs summing to the run)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import tokentrace
from tokentrace.testing import capture_usage

from ..conftest import make_telemetry
from .test_frameworks import _CHOSEN, QUESTION, _in_loop


def _needs(framework: str) -> Callable[[Any], Any]:
    """A test of a framework this venv does not hold is not collected (as test_frameworks.py's cases)."""
    return (lambda test: test) if framework in _CHOSEN else (lambda test: None)


needs = {name: _needs(name) for name in
         ("openai_agents", "pydantic_ai", "langchain", "dspy", "smolagents", "crewai", "google_adk")}


def _records(run: Callable[[], Any]) -> list[Any]:
    make_telemetry()
    with capture_usage() as records:
        run()
    assert records and all(r.status == "ok" and r.usage_reported for r in records), records
    return records


@needs["openai_agents"]
def test_openai_agents_a_planner_handing_off_to_a_writer(to_simulator: Any) -> None:
    """The must-show trace: each call carries its agent's name, the run's group id, and the costs sum to the run."""
    from agents import Agent, ModelSettings, RunConfig, Runner, set_default_openai_client, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)  # attribution must not need the SDK's own tracing
    set_default_openai_client(AsyncOpenAI())
    writer = Agent(name="writer", instructions="Write the answer.", model="gpt-4o-mini")
    planner = Agent(name="planner", instructions="Plan, then hand off.", model="gpt-4o-mini", handoffs=[writer],
                    model_settings=ModelSettings(extra_headers={"x-sim-tool-call": "transfer_to_writer"}))
    telemetry = make_telemetry()
    with capture_usage() as records, tokentrace.run_budget(1.0) as run:
        result = Runner.run_sync(planner, QUESTION, run_config=RunConfig(group_id="conversation-7"))
    assert result.last_agent.name == "writer"
    assert [(r.attributes.get("agent_id"), r.attributes.get("session_id")) for r in records] == [
        ("planner", "conversation-7"), ("writer", "conversation-7")]
    assert run.spent_usd == pytest.approx(sum(r.cost_usd for r in records), rel=1e-12) and run.requests == 2
    spans = telemetry.finished_spans()
    assert [s.attributes.get("gen_ai.agent.name") for s in spans] == ["planner", "writer"]
    assert all("gen_ai.usage.input_tokens" in s.attributes for s in spans)  # usage on the provider call only


@needs["openai_agents"]
@pytest.mark.parametrize("mode", ["async", "stream"])
def test_openai_agents_async_and_streamed_runs_and_the_app_wins(to_simulator: Any, mode: str) -> None:
    from agents import Agent, Runner, set_default_openai_client, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    set_default_openai_client(AsyncOpenAI())
    agent = Agent(name="counter", instructions="Answer briefly.", model="gpt-4o-mini")

    async def run() -> Any:
        if mode == "async":
            return (await Runner.run(agent, QUESTION)).final_output
        streamed = Runner.run_streamed(agent, QUESTION)
        return [event.type async for event in streamed.stream_events()]

    (record,) = _records(lambda: _in_loop(run()))
    assert record.attributes["agent_id"] == "counter"
    with tokentrace.attributes(agent_id="set-by-the-app"):
        (record,) = _records(lambda: _in_loop(run()))
    assert record.attributes["agent_id"] == "set-by-the-app"


@needs["pydantic_ai"]
@pytest.mark.parametrize("mode", ["sync", "async", "stream"])
def test_pydantic_ai_agent_name_run_id_and_conversation(to_simulator: Any, mode: str) -> None:
    from pydantic_ai import Agent

    agent = Agent("openai:gpt-4o-mini", name="helper", instructions="Answer briefly.")
    results: list[Any] = []

    async def stream() -> Any:
        async with agent.run_stream(QUESTION) as streamed:
            return "".join([text async for text in streamed.stream_text(delta=True)])

    def run() -> None:
        if mode == "sync":
            results.append(agent.run_sync(QUESTION))
        elif mode == "async":
            results.append(_in_loop(agent.run(QUESTION)))
        else:
            _in_loop(stream())

    (record,) = _records(run)
    assert record.attributes["agent_id"] == "helper"
    assert record.attributes["run_id"] and record.attributes["session_id"]
    if results:
        assert record.attributes["run_id"] == results[0].run_id


@needs["langchain"]
def test_langgraph_node_and_thread(to_simulator: Any) -> None:
    from langchain_openai import ChatOpenAI
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    class State(TypedDict):
        text: str

    chat = ChatOpenAI(model="gpt-4o-mini", max_tokens=12)

    def draft(state: State) -> State:
        return {"text": str(chat.invoke(state["text"]).content)}

    def polish(state: State) -> State:
        return {"text": str(chat.invoke(state["text"]).content)}

    graph = StateGraph(State)
    graph.add_node("draft", draft)
    graph.add_node("polish", polish)
    graph.add_edge(START, "draft")
    graph.add_edge("draft", "polish")
    graph.add_edge("polish", END)
    app = graph.compile()
    records = _records(lambda: app.invoke({"text": QUESTION}, config={"configurable": {"thread_id": "thread-3"}}))
    assert [(r.attributes.get("step"), r.attributes.get("session_id")) for r in records] == [
        ("draft", "thread-3"), ("polish", "thread-3")]
    (plain,) = _records(lambda: chat.invoke(QUESTION))  # outside a graph: nothing to attribute
    assert "step" not in plain.attributes


@needs["dspy"]
def test_dspy_module(to_simulator: Any) -> None:
    import dspy

    lm = dspy.LM("openai/gpt-4o-mini", api_key="sk-test-secret-key", cache=False, max_tokens=16)

    def run() -> None:
        with dspy.context(lm=lm):
            dspy.Predict("question -> answer")(question=QUESTION)

    records = _records(run)  # DSPy asks again when an answer does not parse: each of its calls
    assert {r.attributes.get("step") for r in records} == {"Predict"}


@needs["smolagents"]
def test_smolagents_agent_and_step(to_simulator: Any) -> None:
    from smolagents import OpenAIModel, ToolCallingAgent

    agent = ToolCallingAgent(tools=[], model=OpenAIModel(model_id="gpt-4o-mini", max_tokens=12), name="scout",
                             max_steps=1, verbosity_level=0)
    records = _records(lambda: agent.run(QUESTION))
    assert {r.attributes.get("agent_id") for r in records} == {"scout"}
    assert records[0].attributes.get("step") == "1"  # then the final-answer call after the last step


@needs["crewai"]
def test_crewai_agent_role_and_task(to_simulator: Any) -> None:
    from crewai import LLM, Agent, Crew, Task

    agent = Agent(role="researcher", goal="Answer", backstory="Brief.", llm=LLM(model="gpt-4o-mini", max_tokens=12),
                  max_iter=1, verbose=False)
    task = Task(name="find-answer", description=QUESTION, expected_output="an answer", agent=agent)
    records = _records(lambda: Crew(agents=[agent], tasks=[task], verbose=False).kickoff())
    assert {(r.attributes.get("agent_id"), r.attributes.get("step")) for r in records} == {
        ("researcher", "find-answer")}


@needs["google_adk"]
def test_google_adk_agent_session_and_invocation(to_simulator: Any) -> None:
    from google.adk.agents import Agent
    from google.adk.runners import InMemoryRunner
    from google.genai import types

    runner = InMemoryRunner(agent=Agent(name="counter", model="gemini-2.5-flash", instruction="Answer briefly."))
    seen: dict[str, Any] = {}

    async def run() -> None:
        session = await runner.session_service.create_session(app_name=runner.app_name, user_id="u")
        seen["session"] = session.id
        async for event in runner.run_async(user_id="u", session_id=session.id, new_message=types.Content(
                role="user", parts=[types.Part(text=QUESTION)])):
            seen["invocation"] = event.invocation_id

    make_telemetry()
    with capture_usage() as records:
        _in_loop(run())
    (record,) = records
    assert (record.attributes["agent_id"], record.attributes["session_id"], record.attributes["run_id"]) == (
        "counter", seen["session"], seen["invocation"])
