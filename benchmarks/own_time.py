"""An instrumentation's own time per call, measured on the same call as the SDK's: wrapt wrappers re-made so that
the instrumentation's wrapper function and the SDK method it calls are each timed, and ``clock[0]`` adds up the
first minus the second. Stdlib and wrapt only (it also runs in the peers' venvs)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import wrapt


def timed_wrapper(original: Any, wrapper: Any, clock: list[float]) -> Any:
    """A wrapt FunctionWrapper of ``original`` by ``wrapper`` (a wrapt wrapper function) that adds the wrapper's time
    to ``clock[0]`` and takes the original's time off it."""

    def sdk_method(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            clock[0] -= time.perf_counter() - start

    def instrumentation(*args: Any) -> Any:
        start = time.perf_counter()
        try:
            return wrapper(*args)
        finally:
            clock[0] += time.perf_counter() - start

    return wrapt.FunctionWrapper(sdk_method, instrumentation)


def per_call_us(fn: Callable[[], Any], calls: int, clock: list[float]) -> list[float]:
    """``clock[0]`` in us after each of ``calls`` calls of ``fn`` (after 3 warm-up calls), reset before each."""
    for _ in range(3):
        fn()
    figures = []
    for _ in range(calls):
        clock[0] = 0.0
        fn()
        figures.append(clock[0] * 1e6)
    return figures
