"""CrewAI: the agent's role (``agent_id``) and the task it works on (``step``: the task's name, else the start of
its description), for the calls of ``Agent.execute_task`` / ``aexecute_task`` and an agent's own ``kickoff``.
Tested with 1.15."""

from __future__ import annotations

from typing import Any

_AGENT = "crewai.agent.core"


def _task(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    task = kwargs.get("task", args[0] if args else None)
    name = getattr(task, "name", None) or (getattr(task, "description", None) or "")[:80]
    return {"agent_id": instance.role, "step": name}


def _kickoff(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"agent_id": instance.role}


TARGETS = [(_AGENT, "Agent.execute_task", _task), (_AGENT, "Agent.aexecute_task", _task),
           (_AGENT, "Agent.kickoff", _kickoff), (_AGENT, "Agent.kickoff_async", _kickoff)]
