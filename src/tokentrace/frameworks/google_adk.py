"""google-adk: the agent calling the model, the session (``session_id``) and the invocation (``run_id``), for the
calls of ``BaseLlmFlow._call_llm_async``. Tested with 2.13."""

from __future__ import annotations

from typing import Any


def _call(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    context = kwargs.get("invocation_context") or args[0]
    agent = getattr(context, "agent", None)
    session = getattr(context, "session", None)
    return {"agent_id": getattr(agent, "name", None), "session_id": getattr(session, "id", None),
            "run_id": context.invocation_id}


TARGETS = [("google.adk.flows.llm_flows.base_llm_flow", "BaseLlmFlow._call_llm_async", _call)]
