"""Flush on SIGTERM: what Docker, Kubernetes and systemd send to stop a process must not cost queued ledger rows.

``install`` (from ``instrument()``, on the main thread only) puts a handler in front of whatever SIGTERM did: it
flushes for at most ``FLUSH_S`` seconds and then hands the signal on, to the handler the application had set, or
to the default action (the process ends with SIGTERM, as it would have). An ignored SIGTERM stays ignored.
``uninstall`` puts the previous handler back if ours is still the one installed. Off with
``instrument(flush_on_sigterm=False)`` or ``TOKENTRACE_FLUSH_ON_SIGTERM=0``.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from .._support import errors as _errors

FLUSH_S = 2.0

_installed: Any = None
_previous: Any = None


def install(flush: Callable[[float], bool]) -> bool:
    """Install the flushing handler; False when it cannot (not the main thread, SIGTERM ignored or not Python's)."""
    global _installed, _previous
    if threading.current_thread() is not threading.main_thread() or _installed is not None:
        return False
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN or previous is None:
        return False

    def on_sigterm(signum: int, frame: Any) -> None:
        try:
            flush(FLUSH_S)
        except Exception as exc:  # the signal goes on regardless
            _errors.report("signal.flush", exc, "could not flush on SIGTERM")
        if callable(previous):
            previous(signum, frame)
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    _installed, _previous = on_sigterm, previous
    return True


def uninstall() -> None:
    global _installed, _previous
    if _installed is None:
        return
    try:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is _installed:
            signal.signal(signal.SIGTERM, _previous)
    finally:
        _installed, _previous = None, None
