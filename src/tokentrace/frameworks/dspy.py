"""DSPy: the module running (``step``: its class name; a module inside another is the more specific one), for the
calls of ``Module.__call__`` / ``acall``. Tested with 3.4."""

from __future__ import annotations

from typing import Any

_MODULE = "dspy.primitives.module"


def _module(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"step": type(instance).__name__}


TARGETS = [(_MODULE, "Module.__call__", _module), (_MODULE, "Module.acall", _module)]
