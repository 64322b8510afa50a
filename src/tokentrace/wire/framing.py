"""Incremental splitters of response bodies into JSON payloads: server-sent events, NDJSON, AWS event-stream.

Each is fed the decoded bytes as the caller reads them and returns the payloads complete so far; nothing is kept
but the unfinished tail (bounded: a frame larger than ``MAX_FRAME`` is dropped and counted). Never raises.
Stdlib only.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from .._support import errors as _errors

MAX_FRAME = 4 * 1024 * 1024
"""A single event, line or frame larger than this is not usage: it is skipped, not buffered."""


def loads(data: bytes | str) -> Any:
    """JSON of one payload, or None (counted) when it is not JSON."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        _errors.report("wire.json", exc, "a response body or event is not valid JSON")
        return None


class _Lines:
    """Complete lines of a body fed in pieces, in time linear in the bytes: the unfinished last line is kept (at most
    MAX_FRAME; a longer one is dropped up to its end, and counted)."""

    __slots__ = ("skipping", "tail")

    def __init__(self) -> None:
        self.tail = bytearray()
        self.skipping = False
        """Inside a line longer than MAX_FRAME: its bytes are dropped until it ends."""

    def lines(self, chunk: bytes) -> list[bytes]:
        if b"\n" not in chunk:  # the usual piece of a long line: appended, never re-copied
            if not self.skipping:
                self.tail += chunk
                if len(self.tail) > MAX_FRAME:
                    self._too_long()
            return []
        parts = bytes(chunk).split(b"\n")
        if self.skipping:  # the end of a line too long to keep
            parts[0] = b""
            self.skipping = False
        elif self.tail:
            parts[0] = bytes(self.tail) + parts[0]
        self.tail = bytearray(parts.pop())
        if len(self.tail) > MAX_FRAME:
            self._too_long()
        return parts

    def _too_long(self) -> None:
        _errors.report("wire.frame", None, "a line of a streamed answer is larger than 4 MiB; skipped")
        self.tail = bytearray()
        self.skipping = True

    def _rest(self) -> bytes:
        """The unfinished last line at the end of the body (nothing, when it was too long to keep)."""
        tail, self.tail, skipping, self.skipping = bytes(self.tail), bytearray(), self.skipping, False
        return b"" if skipping else tail


class SSE(_Lines):
    """Server-sent events: the ``data:`` lines of each event, joined, parsed as JSON (``[DONE]`` skipped).

    The event's ``event:`` name, when the payload has no ``type`` of its own, is put there (Anthropic and Cohere
    payloads carry their type; some hosts only name it in ``event:``). An event whose data grows past MAX_FRAME
    (``data:`` lines with no blank line between them) is dropped and counted: what is kept stays bounded."""

    __slots__ = ("data", "event", "size")

    def __init__(self) -> None:
        super().__init__()
        self.data: list[bytes] | None = []
        """The event's data lines so far; None once they passed MAX_FRAME (dropped until the event ends)."""
        self.size = 0
        self.event = b""

    def feed(self, chunk: bytes) -> list[Any]:
        out: list[Any] = []
        for line in self.lines(chunk):
            self._line(line.rstrip(b"\r"), out)
        return out

    def _line(self, line: bytes, out: list[Any]) -> None:
        if not line:
            self._dispatch(out)
        elif line.startswith(b"data:"):
            if self.data is None:
                return
            piece = line[6:] if line[5:6] == b" " else line[5:]
            self.size += len(piece) + 1
            if self.size > MAX_FRAME:
                _errors.report("wire.frame", None, "an event of a streamed answer is larger than 4 MiB; skipped")
                self.data = None
                return
            self.data.append(piece)
        elif line.startswith(b"event:"):
            self.event = line[6:].strip()

    def _dispatch(self, out: list[Any]) -> None:
        if self.data:
            payload = b"\n".join(self.data)
            if payload.strip() != b"[DONE]":
                value = loads(payload)
                if isinstance(value, dict) and self.event and "type" not in value:
                    value["type"] = self.event.decode("utf-8", "replace")
                if value is not None:
                    out.append(value)
        self.data = []
        self.size = 0
        self.event = b""

    def end(self) -> list[Any]:
        out: list[Any] = []
        rest = self._rest()
        if rest:
            self._line(rest.rstrip(b"\r"), out)
        self._dispatch(out)
        return out


class NDJSON(_Lines):
    """One JSON value per line (Ollama's streams)."""

    __slots__ = ()

    def feed(self, chunk: bytes) -> list[Any]:
        return [v for line in self.lines(chunk) if line.strip() and (v := loads(line)) is not None]

    def end(self) -> list[Any]:
        rest = self._rest()
        return [v] if rest.strip() and (v := loads(rest)) is not None else []


class EventStream:
    """AWS event-stream binary framing (Bedrock's streams): each message's ``:event-type`` header and JSON payload,
    as ``{event_type: payload}`` (the shape botocore gives its callers). CRCs are not checked: the caller's own
    client checks them; a damaged frame only costs usage. Frames are read at an offset into one buffer, which is
    compacted once per piece fed: linear in the bytes however many frames a piece holds."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, chunk: bytes) -> list[Any]:
        buffer = self.buffer
        buffer += chunk
        out: list[Any] = []
        at = 0
        while len(buffer) - at >= 12:
            total, headers_length = struct.unpack_from(">II", buffer, at)
            if total > MAX_FRAME or total < 16 or headers_length > total - 16:
                _errors.report("wire.frame", None, "an AWS event-stream frame is malformed or too large")
                at = len(buffer)
                break
            if len(buffer) - at < total:
                break
            frame = bytes(buffer[at:at + total])
            at += total
            headers = _headers(frame[12:12 + headers_length])
            payload = frame[12 + headers_length:total - 4]
            kind = headers.get(":event-type") or headers.get(":exception-type")
            value = loads(payload) if payload else {}
            if kind and value is not None:
                out.append({kind: value})
        del buffer[:at]
        return out

    def end(self) -> list[Any]:
        self.buffer = bytearray()
        return []


def _headers(raw: bytes) -> dict[str, str]:
    """The string-valued headers of one event-stream message (type 7); other types are skipped."""
    headers: dict[str, str] = {}
    at = 0
    sizes = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
    try:
        while at < len(raw):
            name_length = raw[at]
            name = raw[at + 1:at + 1 + name_length].decode("utf-8", "replace")
            at += 1 + name_length
            kind = raw[at]
            at += 1
            if kind in (6, 7):
                (length,) = struct.unpack(">H", raw[at:at + 2])
                if kind == 7:
                    headers[name] = raw[at + 2:at + 2 + length].decode("utf-8", "replace")
                at += 2 + length
            else:
                at += sizes.get(kind, len(raw))
    except (IndexError, struct.error):
        pass
    return headers
