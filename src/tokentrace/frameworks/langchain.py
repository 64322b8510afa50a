"""LangChain and LangGraph: read at each call from LangChain's own contextvar (the config of the runnable being
run): the LangGraph node (``step``), the thread id (``session_id``), the agent's name LangGraph's prebuilt agents
set (``agent_id``) and the run name given in the config. Tested with langchain-core 1.8 and langgraph 1.x."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TARGETS: list[Any] = []


def READER() -> Mapping[str, Any] | None:  # noqa: N802 - the adapter's reader, by the mechanism's name
    from langchain_core.runnables.config import var_child_runnable_config

    config = var_child_runnable_config.get()
    if not config:
        return None
    metadata = config.get("metadata") or {}
    configurable = config.get("configurable") or {}
    return {"step": metadata.get("langgraph_node"),
            "session_id": configurable.get("thread_id") or metadata.get("thread_id"),
            "agent_id": metadata.get("lc_agent_name"),
            "run_id": config.get("run_id") or metadata.get("run_id")}
