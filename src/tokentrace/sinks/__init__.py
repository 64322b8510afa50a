"""The Sink protocol: what the recorder fans each call out to (one module per sink).

Sinks see only what they need: the request and attribution when a call starts, the finished ``UsageRecord``
and their own per-call state when it ends. They never import the recorder, providers or each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._usage import RequestInfo, UsageRecord


class Sink:
    """Base class of sinks. ``start``/``detach``/``trace_id`` are optional: only sinks overriding them are called."""

    name = "sink"
    end_needs_start = False
    """True: ``end`` has nothing to do for a call whose ``start`` returned None, so the recorder skips it."""

    def start(self, request: RequestInfo, attributes: Mapping[str, str], started_wall: float) -> Any:
        """The call is about to be sent; return per-call state handed back to ``detach`` and ``end``.

        May raise a ``CallRefused`` subclass to stop the call before it is sent.
        """
        return None

    def trace_id(self, state: Any) -> str | None:
        """The trace id (32 hex digits) of the call whose start returned ``state``, for a tracing sink."""
        return None

    def detach(self, state: Any) -> None:
        """The request phase is over on the calling thread (the stream, if any, may go on)."""

    def abandon(self, state: Any) -> None:
        """The started call turned out not to be an LLM call (the SDK refused its own arguments before sending, or an
        unproven host answered like no LLM API): give back what ``start`` took; nothing is recorded. Never raises."""

    def end(self, record: UsageRecord, state: Any) -> None:
        """The call is finished: ``record`` is final. Must be quick and thread-safe."""

    def close(self) -> None:
        """tokentrace is being uninstrumented."""

    def flush(self, timeout: float) -> bool:
        """Push out anything buffered; True when everything was written in time."""
        return True

    def flush_after_close(self, timeout: float) -> bool:
        """After close(): push out what calls that were in flight at uninstrument() left behind."""
        return True
