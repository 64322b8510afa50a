"""Result kinds of SDKs whose responses are model objects and whose streams are (async) generators."""

from __future__ import annotations

import inspect
from typing import Any

from ._contract import ResultKind


def model_or_generator(result: Any, model: type) -> ResultKind:
    """``value`` for an instance of ``model``, ``stream`` for a generator or async generator, else ``opaque``."""
    if isinstance(result, model):
        return "value"
    if inspect.isgenerator(result) or inspect.isasyncgen(result):
        return "stream"
    return "opaque"
