"""Attribution from agent frameworks, with no code in the app: which agent, run and step made each LLM call.

One small adapter per framework (a module here), behind one mechanism (``_scope``): the adapter wraps the
framework's own function that runs an agent, a turn, a task or a module and pushes what it is (``agent_id``,
``run_id``, ``step``, ``session_id``) for the calls made inside; or, where the framework keeps that in a contextvar
of its own, reads it at each call. The app's ``tokentrace.attributes(...)`` wins over a framework's values. The
framework's own tracing need not be on. Nothing is imported that the app has not imported: an adapter is installed
when its framework is first imported (or at ``instrument()`` when it already is), and taken off at
``uninstrument()``. A framework whose version is shaped otherwise is skipped (counted in the internal error
metric); its calls are measured as before. Usage stays on the provider call: no framework span carries it.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from typing import Any

import wrapt

from .._support import errors as _errors
from ..instrumentation import patching as _patching
from . import _scope

logger = logging.getLogger("tokentrace")

ADAPTERS: dict[str, str] = {
    "openai_agents": "agents.run_internal.run_loop",
    "pydantic_ai": "pydantic_ai.agent",
    "langchain": "langchain_core.runnables.config",
    "crewai": "crewai.agent.core",
    "dspy": "dspy.primitives.module",
    "smolagents": "smolagents.agents",
    "google_adk": "google.adk.flows.llm_flows.base_llm_flow",
}
"""Framework -> the module whose import installs its adapter (``frameworks.<framework>``)."""

_applied: dict[str, list[_patching.Applied]] = {}
_hooks_registered: set[str] = set()
_on = False


def _install_one(framework: str) -> None:
    if not _on or framework in _applied:
        return
    adapter = importlib.import_module(f"{__name__}.{framework}")
    applied: list[_patching.Applied] = []
    for module_name, attribute, extract, *entered in adapter.TARGETS:
        target = _patching.find(module_name, attribute)
        if target is None:
            _errors.report(f"framework.{framework}", LookupError(f"{module_name}.{attribute}"),
                           f"{framework}: this version has no {module_name}.{attribute}; its calls are measured "
                           "without the framework's attribution")
            continue
        done = _patching.apply(*target, _scope.around(framework, extract, bool(entered and entered[0])))
        if done is not None:
            applied.append(done)
    reader = getattr(adapter, "READER", None)
    if reader is not None and reader not in _scope.readers:
        _scope.readers.append(reader)
    _applied[framework] = applied
    _scope.active = True


def _on_import(framework: str) -> Callable[[Any], None]:
    def hook(_module: Any) -> None:
        try:
            _install_one(framework)
        except Exception as exc:  # never break the application's import
            _errors.report(f"framework.{framework}", exc, f"could not follow {framework}")

    return hook


def install() -> None:
    """Follow every framework imported now, and each other installed one when it is first imported."""
    global _on
    _on = True
    for framework, module_name in ADAPTERS.items():
        if module_name in sys.modules:
            _on_import(framework)(None)
        elif module_name not in _hooks_registered and _patching.installed(module_name):
            _hooks_registered.add(module_name)
            wrapt.register_post_import_hook(_on_import(framework), module_name)


def uninstall() -> None:
    global _on
    _on = False
    for applied in _applied.values():
        _patching.restore(applied)
    _applied.clear()
    _scope.readers.clear()
    _scope.active = False
