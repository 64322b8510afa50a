"""Bounded label values: at most ``cap`` distinct values per label; later values fold into ``other`` (counted)."""

from __future__ import annotations

import threading

from .._support import errors as _errors
from .._support import forksafe as _forksafe

OTHER = "other"
DEFAULT_CAP = 1000


class LabelGuard:
    """Shared by the metric sinks so an odd provider (or user) cannot blow up a time-series database."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        self.cap = cap
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def value(self, label: str, value: str) -> str:
        seen = self._seen.get(label)
        if seen is not None and value in seen:
            return value
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if value in seen:
                return value
            if len(seen) < self.cap:
                seen.add(value)
                return value
        _errors.report(f"label_cap.{label}", None, f"more than {self.cap} values of label {label!r}; "
                                                   f"further values are recorded as {OTHER!r}")
        return OTHER
