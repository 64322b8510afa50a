"""Internal failures: counted per stage, logged at most once a minute per stage, never raised."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from . import forksafe as _forksafe

logger = logging.getLogger("tokentrace")

_LOG_INTERVAL_S = 60.0
_lock = threading.Lock()
_counts: Counter[str] = Counter()
_last_logged: dict[str, float] = {}


def _fresh_lock() -> None:
    global _lock
    _lock = threading.Lock()


_forksafe.in_child(_fresh_lock)


def report(stage: str, exc: BaseException | None = None, message: str = "") -> None:
    """Count one internal failure at ``stage`` and log it unless logged recently. Never raises."""
    try:
        now = time.monotonic()
        with _lock:
            _counts[stage] += 1
            last = _last_logged.get(stage)
            should_log = last is None or now - last >= _LOG_INTERVAL_S
            if should_log:
                _last_logged[stage] = now
        if should_log:
            text = message or "internal error"
            logger.warning(
                "%s at stage %r (%s); the application call is unaffected; "
                "further errors at this stage are counted, not logged, for %ds",
                text,
                stage,
                type(exc).__name__ if exc is not None else "no exception",
                int(_LOG_INTERVAL_S),
                exc_info=exc if exc is not None and logger.isEnabledFor(logging.DEBUG) else None,
            )
    except Exception:  # pragma: no cover - logging itself failed; nothing safer to do
        pass


def counts() -> dict[str, int]:
    """A snapshot of internal error counts per stage."""
    with _lock:
        return dict(_counts)


def reset() -> None:
    """Forget counts and log times (tests)."""
    with _lock:
        _counts.clear()
        _last_logged.clear()
