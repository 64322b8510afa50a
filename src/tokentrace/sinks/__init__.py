"""The Sink protocol: what the recorder fans each call out to (one module per sink)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._usage import UsageRecord
    from ..recorder import Call


class Sink:
    """Base class of sinks. ``start``/``detach`` are optional: only sinks overriding them are called."""

    name = "sink"

    def start(self, call: Call) -> Any:
        """The call is about to be sent; return per-call state handed back to ``detach`` and ``end``."""
        return None

    def detach(self, state: Any) -> None:
        """The request phase is over on the calling thread (the stream, if any, may go on)."""

    def end(self, call: Call, record: UsageRecord, state: Any) -> None:
        """The call is finished: ``record`` is final. Must be quick and thread-safe."""

    def close(self) -> None:
        """tokentrace is being uninstrumented."""

    def flush(self, timeout: float) -> bool:
        """Push out anything buffered; True when everything was written in time."""
        return True
