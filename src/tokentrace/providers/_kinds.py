"""Result kinds of SDKs whose responses are model objects and whose streams are (async) generators."""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

from ._contract import ResultKind


def model_or_generator(result: Any, model: type) -> ResultKind:
    """``value`` for an instance of ``model``, ``stream`` for a generator or async generator, else ``opaque``."""
    if isinstance(result, model):
        return "value"
    if inspect.isgenerator(result) or inspect.isasyncgen(result):
        return "stream"
    return "opaque"


def classifier(module: str, name: str) -> Callable[[Any], ResultKind]:
    """``model_or_generator`` against the SDK's response type ``module.name``, imported on the first call (never at
    import time)."""
    loaded: list[type] = []

    def classify(result: Any) -> ResultKind:
        if not loaded:
            loaded.append(getattr(importlib.import_module(module), name))
        return model_or_generator(result, loaded[0])

    return classify
