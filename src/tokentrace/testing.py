"""Helpers for users' own tests: capture the UsageRecords that calls made inside a block produce."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ._usage import UsageRecord
from .instrumentation.instrumentor import current

__all__ = ["capture_usage"]


@contextmanager
def capture_usage() -> Iterator[list[UsageRecord]]:
    """Yield a list that fills with the UsageRecord of every call finished inside the block, from any thread.

    tokentrace must be instrumented (``tokentrace.instrument()``); otherwise RuntimeError.
    """
    handle = current()
    if handle is None or handle.recorder is None:
        raise RuntimeError("capture_usage() needs tokentrace.instrument() to be active")
    records: list[UsageRecord] = []
    recorder = handle.recorder
    recorder.add_listener(records.append)
    try:
        yield records
    finally:
        recorder.remove_listener(records.append)
