"""The OpenAI Agents SDK: the agent whose turn calls the model (a handoff changes it turn by turn), the run's
trace id and group id (from its ``RunConfig``, else the current trace when tracing is on). Tested with 0.24."""

from __future__ import annotations

from typing import Any

_LOOP = "agents.run_internal.run_loop"


def _turn(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    bindings = kwargs.get("bindings") or next(a for a in args if hasattr(a, "public_agent"))
    run_config = kwargs.get("run_config") or next((a for a in args if hasattr(a, "workflow_name")), None)
    run_id = getattr(run_config, "trace_id", None)
    group = getattr(run_config, "group_id", None)
    if run_id is None or group is None:
        from agents.tracing import get_current_trace

        trace = get_current_trace()
        if trace is not None and trace.trace_id != "no-op":  # "no-op": tracing is off
            run_id = run_id or trace.trace_id
            group = group or getattr(trace, "group_id", None)
    return {"agent_id": bindings.public_agent.name, "run_id": run_id, "session_id": group}


TARGETS = [(_LOOP, "get_new_response", _turn), (_LOOP, "run_single_turn_streamed", _turn)]
