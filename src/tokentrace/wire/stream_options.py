"""Asking an OpenAI-format stream for usage on the wire, and keeping what the caller reads as if nobody had asked.

``ask`` adds ``stream_options.include_usage`` to a request body's bytes (the caller's bytes otherwise kept as they
were); ``unask`` takes it out again for the one retry a host that rejects the option gets. ``UsageHidden`` filters
the answer's bytes: it drops the usage-only event the option caused and the ``"usage": null`` it adds to every other
event (where the host's un-asked events lack it), event by event, SSE framing kept. Whether to ask a host at all is
``providers.stream_usage``'s to say. Stdlib only.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from .._support import errors as _errors

_LEADING_BRACE = re.compile(rb"^\s*\{")
_NULL_USAGE = re.compile(rb',\s*"usage"\s*:\s*null(?=\s*[,}])|"usage"\s*:\s*null\s*,\s*')
"""The ``"usage": null`` member of an event's JSON object, with the comma that joins it to its neighbour (a quote
inside a JSON string is escaped, so the pattern cannot match text)."""
_ASKED = b'"stream_options":{"include_usage":true},'


def ask(body: bytes) -> bytes | None:
    """The request body with ``stream_options.include_usage`` set, or None to send it as it is (not a JSON object,
    or ``stream_options`` already there in a shape the caller chose)."""
    match = _LEADING_BRACE.match(body)
    if match is None or b'"stream_options"' in body:
        return None
    rest = body[match.end():]
    if not rest.strip() or rest.lstrip().startswith(b"}"):
        return None
    return body[:match.end()] + _ASKED + rest


def unask(body: bytes) -> bytes:
    """``body`` as the caller wrote it, for a host that rejected the option: ``ask``'s addition taken out, or (for a
    body the SDK layer asked in) ``include_usage`` removed from ``stream_options``."""
    if _ASKED in body:
        return body.replace(_ASKED, b"", 1)
    try:
        value = json.loads(body)
        options = value.get("stream_options")
        if isinstance(options, dict):
            options.pop("include_usage", None)
            if not options:
                del value["stream_options"]
        return json.dumps(value, separators=(",", ":")).encode()
    except Exception as exc:
        _errors.report("wire.stream_options", exc, "could not take stream_options out of a request")
        return body


def rejects_option(status: int, content: bytes) -> bool:
    """An HTTP 400 that names ``stream_options``: the host does not take the option (the request is sent again)."""
    return status == 400 and b"stream_options" in content


class UsageHidden:
    """The caller's bytes of an asked stream: complete events passed on as they end; the usage-only event dropped;
    ``"usage": null`` taken out of the others when ``strip_nulls``. Never raises: on a fault, bytes pass unchanged."""

    __slots__ = ("pending", "scanned", "strip_nulls")

    def __init__(self, strip_nulls: bool) -> None:
        self.pending = bytearray()
        self.scanned = 0
        """Bytes of ``pending`` already searched for an event's end."""
        self.strip_nulls = strip_nulls

    def feed(self, data: bytes) -> bytes:
        self.pending += data
        out = bytearray()
        try:
            while True:
                end = _event_end(self.pending, max(self.scanned - 3, 0))
                if end < 0:
                    self.scanned = len(self.pending)
                    break
                event = bytes(self.pending[:end])
                del self.pending[:end]
                self.scanned = 0
                out += self._event(event)
        except Exception as exc:
            _errors.report("wire.hide_usage", exc, "could not filter a stream's usage event")
            out += self.pending
            self.pending = bytearray()
        return bytes(out)

    def end(self) -> bytes:
        """The rest, when the body ends (an event with no blank line after it)."""
        rest, self.pending, self.scanned = bytes(self.pending), bytearray(), 0
        try:
            return self._event(rest) if rest else b""
        except Exception as exc:
            _errors.report("wire.hide_usage", exc, "could not filter a stream's usage event")
            return rest

    def _event(self, event: bytes) -> bytes:
        if b'"usage"' not in event:
            return event
        payload = _data_of(event)
        if isinstance(payload, dict) and payload.get("choices") == [] and isinstance(payload.get("usage"), dict):
            return b""  # the usage-only event the option caused
        return _NULL_USAGE.sub(b"", event, count=1) if self.strip_nulls else event


def _event_end(buffer: bytearray, start: int) -> int:
    """The index just past the first blank line at or after ``start`` (``\\n\\n``, ``\\r\\n\\r\\n``), or -1."""
    lf = buffer.find(b"\n\n", start)
    crlf = buffer.find(b"\r\n\r\n", start)
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf + 4
    return lf + 2 if lf >= 0 else -1


def _data_of(event: bytes) -> Any:
    lines = [line[5:].strip() for line in event.splitlines() if line.startswith(b"data:")]
    if not lines:
        return None
    try:
        return json.loads(b"\n".join(lines))
    except ValueError:
        return None


def hide(chunks: Iterator[bytes], hidden: UsageHidden) -> Iterator[bytes]:
    """The caller's pieces of an asked stream, filtered by ``hidden`` (an empty piece is not passed on)."""
    try:
        yield from filter(None, map(hidden.feed, chunks))
        yield from filter(None, (hidden.end(),))
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # the caller stopped reading: the reading below ends (and records) now


async def ahide(chunks: AsyncIterator[bytes], hidden: UsageHidden) -> AsyncIterator[bytes]:
    """The async twin of ``hide``."""
    try:
        async for chunk in chunks:
            out = hidden.feed(chunk)
            if out:
                yield out
        rest = hidden.end()
        if rest:
            yield rest
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
