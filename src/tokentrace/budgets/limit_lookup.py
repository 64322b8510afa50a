"""Asking the app's ``limit_for`` for a principal's limit within a time bound: a slow or stuck plans lookup never
holds a call longer than the budget timeout. Each principal being asked has one daemon thread; a call that finds it
still asking goes on with the limit it has (the budget's default, or the last one answered). Stdlib only."""

from __future__ import annotations

import threading
from typing import Any

LIMIT_FOR_TIMEOUT_S = 1.0
"""How long a call waits for ``limit_for`` (the budget store's own timeout); then it goes on without the answer."""
MAX_PENDING = 256
"""Principals being asked at once; past it a new one is not asked (the default applies) until some answer."""


class _Asking:
    __slots__ = ("done", "error", "limit")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.limit: float | None = None
        self.error: BaseException | None = None


class LimitLookup:
    """``ask(template, principal)`` -> (answered, limit); raises what ``limit_for`` raised."""

    def __init__(self, timeout_s: float = LIMIT_FOR_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._asking: dict[tuple[str, str], _Asking] = {}
        self._lock = threading.Lock()

    def ask(self, template: Any, principal: str) -> tuple[bool, float | None]:
        if template.limit_for is None:  # a plain table of limits: nothing to wait for
            return True, template.limit_of(principal)
        key = (template.name, principal)
        with self._lock:
            asking = self._asking.get(key)
            if asking is None:
                if len(self._asking) >= MAX_PENDING:
                    return False, None
                asking = self._asking[key] = _Asking()
                threading.Thread(target=self._run, args=(template, principal, asking), daemon=True,
                                 name="tokentrace-limit-for").start()
        if not asking.done.wait(self.timeout_s):
            return False, None
        with self._lock:
            self._asking.pop(key, None)
        if asking.error is not None:
            raise asking.error
        return True, asking.limit

    @staticmethod
    def _run(template: Any, principal: str, asking: _Asking) -> None:
        try:
            asking.limit = template.limit_of(principal)
        except BaseException as exc:  # handed to the call that reads the answer
            asking.error = exc
        finally:
            asking.done.set()
