"""The mechanism behind framework attribution (``tokentrace.frameworks``), on a stand-in framework module: values
pushed only while the framework's code runs (generators step by step), the app's attribution winning, a version
shaped otherwise skipped and counted, never a change to what the framework's code returns or raises. The real
frameworks are driven in tests/frameworks/test_attribution.py."""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import tokentrace
from tokentrace import frameworks
from tokentrace._support import errors as _errors
from tokentrace._support.text import MAX_ATTRIBUTE_CHARS
from tokentrace.context import current_attributes
from tokentrace.frameworks import _scope

from .conftest import make_telemetry


class Agent:
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, fail: bool = False) -> dict[str, str]:
        if fail:
            raise KeyError("the framework's own error")
        return dict(current_attributes())

    async def arun(self) -> dict[str, str]:
        await asyncio.sleep(0)
        return dict(current_attributes())

    def steps(self) -> Iterator[dict[str, str]]:
        received = yield dict(current_attributes())
        yield {"received": str(received), **current_attributes()}

    async def asteps(self) -> AsyncIterator[dict[str, str]]:
        yield dict(current_attributes())
        yield dict(current_attributes())


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """A framework module with an adapter that follows ``Agent``'s methods (by the agent's name)."""
    module = types.ModuleType("standin_framework")
    module.Agent = Agent  # type: ignore[attr-defined]
    adapter = types.ModuleType("tokentrace.frameworks.standin")

    def by_name(instance: Any, args: Any, kwargs: Any) -> dict[str, str]:
        return {"agent_id": instance.name}

    adapter.TARGETS = [("standin_framework", f"Agent.{m}", by_name)  # type: ignore[attr-defined]
                       for m in ("run", "arun", "steps", "asteps")] + [
        ("standin_framework", "Agent.gone_in_this_version", by_name)]
    monkeypatch.setitem(sys.modules, "standin_framework", module)
    monkeypatch.setitem(sys.modules, "tokentrace.frameworks.standin", adapter)
    monkeypatch.setitem(frameworks.ADAPTERS, "standin", "standin_framework")
    tokentrace.uninstrument()
    _errors.reset()
    make_telemetry()
    yield module
    tokentrace.uninstrument()
    assert "run" in vars(Agent) and not hasattr(vars(Agent)["run"], "__wrapped__")  # taken off


def test_values_are_pushed_while_the_framework_runs_and_the_app_wins(stand_in: Any) -> None:
    agent = Agent("planner")
    assert agent.run() == {"agent_id": "planner"}
    assert asyncio.run(agent.arun()) == {"agent_id": "planner"}
    assert dict(current_attributes()) == {}
    with tokentrace.attributes(agent_id="the-app", feature="chat"):
        assert agent.run() == {"agent_id": "the-app", "feature": "chat"}
    with pytest.raises(KeyError, match="the framework's own error"):  # its exceptions pass unchanged
        agent.run(fail=True)
    assert _errors.counts() == {"framework.standin": 1}  # the version without gone_in_this_version: counted once


def test_generators_get_the_values_only_while_they_run_and_send_throw_close_pass_through(stand_in: Any) -> None:
    agent = Agent("scout")
    steps = agent.steps()
    assert isinstance(steps, types.GeneratorType)
    assert next(steps) == {"agent_id": "scout"}
    assert dict(current_attributes()) == {}  # suspended: nothing leaks into the caller
    assert steps.send("hello") == {"received": "hello", "agent_id": "scout"}
    with pytest.raises(ValueError, match="thrown"):
        steps.throw(ValueError("thrown"))
    closing = agent.steps()
    next(closing)
    closing.close()

    async def consume() -> list[Any]:
        seen = []
        async for item in agent.asteps():
            seen.append((item, dict(current_attributes())))
        return seen

    assert asyncio.run(consume()) == [({"agent_id": "scout"}, {}), ({"agent_id": "scout"}, {})]


def test_an_adapter_that_cannot_read_the_framework_is_counted_and_the_call_goes_on(stand_in: Any) -> None:
    agent = Agent("x")
    del agent.name  # shaped otherwise than the adapter expects
    assert agent.run() == {}
    assert _errors.counts()["framework.standin"] == 2


def test_long_and_control_character_names_are_bounded_as_other_attribution(stand_in: Any) -> None:
    values = Agent("a" * 10_000).run()
    assert len(values["agent_id"]) == MAX_ATTRIBUTE_CHARS and values["agent_id"].startswith("aaa")
    for odd in ("bad\udcffname", "line\nbreak\x00nul"):
        with tokentrace.attributes(agent_id=odd):
            as_the_app_would = current_attributes()["agent_id"]
        assert Agent(odd).run()["agent_id"] == as_the_app_would
    _scope.readers.clear()
