"""pydantic-ai: the agent's name and the run's id and conversation id, for the calls of a run (``run``,
``run_sync``, ``run_stream`` and ``iter`` all run through ``Agent.iter``). Tested with 2.78."""

from __future__ import annotations

from typing import Any


def _run(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    run = kwargs["entered"]
    return {"agent_id": instance.name, "run_id": run.run_id, "session_id": run.conversation_id}


TARGETS = [("pydantic_ai.agent", "Agent.iter", _run, True)]
