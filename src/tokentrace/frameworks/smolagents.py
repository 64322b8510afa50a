"""smolagents: the agent's name (its class name when it has none) for the calls of a run
(``MultiStepAgent._run_stream``, which ``run`` drives, streamed or not), and the step (``step``: its number) for
the calls of each action step of the two agent kinds (``ToolCallingAgent`` / ``CodeAgent._step_stream``). Tested
with 1.26."""

from __future__ import annotations

from typing import Any

_AGENTS = "smolagents.agents"


def _run(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"agent_id": instance.name or type(instance).__name__}


def _step(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    memory_step = kwargs.get("memory_step") or args[0]
    return {"step": memory_step.step_number}


TARGETS = [(_AGENTS, "MultiStepAgent._run_stream", _run), (_AGENTS, "ToolCallingAgent._step_stream", _step),
           (_AGENTS, "CodeAgent._step_stream", _step)]
