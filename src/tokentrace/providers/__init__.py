"""What a provider module supplies: a PATCHES table of endpoints, each a set of pure functions over SDK objects."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, NamedTuple
from urllib.parse import urlsplit

from .. import _errors
from .._usage import RequestInfo, ResponseInfo

ResultKind = Literal["value", "stream", "raw", "raw_stream", "deferred_stream", "opaque"]
"""How a wrapper treats what the SDK method returned:
value: a parsed response; stream: an iterator of chunks; raw: an object whose ``parse()`` gives a value;
raw_stream: an object whose ``parse()`` gives a stream; deferred_stream: a stream manager that sends the
request later (on ``__enter__``), see ``Endpoint.bind_deferred``; opaque: unknown, recorded without usage."""

RequestWrapper = Callable[[Any], Any]
"""Given a deferred request (a callable returning a stream, or an awaitable of one), the same, measured."""


@dataclass(frozen=True, slots=True)
class Options:
    """Settings that change what is sent: fixed at instrument() time."""

    stream_usage: bool = True
    """Ask for stream usage (OpenAI ``stream_options.include_usage``) when the caller did not."""
    measure_prompt: bool = False
    """Count prompt characters before sending (only budgets need it: the estimate of a call's cost)."""
    capture_content: bool = False
    """Record prompt and completion text on spans (``gen_ai.input.messages`` / ``gen_ai.output.messages``)."""


class Prepared(NamedTuple):
    """A call about to be sent: what is known about it, and the keyword arguments to send."""

    request: RequestInfo
    kwargs: Mapping[str, Any]
    hide_usage_only_chunk: bool = False
    """tokentrace asked for stream usage the caller did not: hide the extra usage-only chunk."""
    body_left_to_caller: bool = False
    """``with_streaming_response``: the caller reads the body itself, so the call is recorded without usage."""
    capture_content: bool = False
    """Content capture is on: extractors and accumulators also return the completion text."""


class StreamAccumulator:
    """Reads a stream's chunks as they pass; providers subclass it. Must never raise out of ``chunk``."""

    __slots__ = ()

    def chunk(self, item: Any) -> bool:
        """Look at one chunk; return True to hide it from the caller."""
        return False

    def result(self) -> ResponseInfo:
        """What the chunks seen so far say about the call."""
        return ResponseInfo()


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One SDK method family (e.g. chat completions): how to read its requests, responses and streams."""

    operation: str
    prepare: Callable[[Any, Mapping[str, Any], Options], Prepared]
    extract: Callable[[Any, Prepared], ResponseInfo]
    accumulator: Callable[[Prepared], StreamAccumulator]
    classify: Callable[[Any], ResultKind]
    bind_deferred: Callable[[Any, RequestWrapper], bool] | None = None
    """For ``deferred_stream`` results: replace the manager's pending request with ``wrap(request)``."""


@dataclass(frozen=True, slots=True)
class Patch:
    """One method to wrap: ``module`` path, ``Class.method`` name, whether it is async, and its endpoint."""

    module: str
    attribute: str
    endpoint: Endpoint
    is_async: bool = False
    optional: bool = False
    """Present only in some SDK versions: skip with a debug log when missing."""
    fallback: str | None = None
    """``Class.method`` to patch instead when ``attribute`` is missing (e.g. a private per-request method)."""


def int_or_none(value: Any) -> int | None:
    """An int usage field, or None for anything else (missing, None, bool, str, float, negative)."""
    if type(value) is int and value >= 0:
        return value
    return None


def number_or_none(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def field(obj: Any, name: str) -> Any:
    """An attribute of an SDK object or a key of a dict (providers send both shapes); None when absent."""
    if obj is None:
        return None
    if obj.__class__ is dict:
        return obj.get(name)
    values = getattr(obj, "__dict__", None)
    if values is not None:
        if name in values:
            return values[name]
        if hasattr(obj, "__pydantic_extra__"):  # a pydantic model: fields live in __dict__, extras here
            extra = obj.__pydantic_extra__  # (asking the model for a missing name raises slowly)
            return extra.get(name) if extra else None
    try:
        value = getattr(obj, name, None)
        if value is None and isinstance(obj, Mapping):
            return obj.get(name)
    except Exception:  # an odd object whose attribute access raises: treat as absent
        return None
    return value


RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"


def streaming_response_requested(kwargs: Mapping[str, Any]) -> bool:
    """True for the Stainless SDKs' ``with_streaming_response`` calls (openai, anthropic)."""
    headers = kwargs.get("extra_headers")
    return isinstance(headers, Mapping) and headers.get(RAW_RESPONSE_HEADER) == "stream"


MAX_CAPTURED_CHARS = 32_768


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, (list, tuple)):
        parts: list[dict[str, Any]] = []
        for part in content:
            text = part if isinstance(part, str) else field(part, "text")
            if isinstance(text, str):
                parts.append({"type": "text", "content": text})
            else:
                parts.append({"type": str(field(part, "type") or "other")})
        return parts
    nested = field(content, "parts")
    return _parts(nested) if nested is not None else [{"type": "other"}]


def capture_messages(messages: Any, system: Any = None) -> str | None:
    """Prompt messages as semconv ``gen_ai.input.messages`` JSON (truncated); only called when capture is on."""
    try:
        out: list[dict[str, Any]] = []
        if system is not None:
            out.append({"role": "system", "parts": _parts(system)})
        items = [messages] if isinstance(messages, str) or not isinstance(messages, (list, tuple)) else messages
        for message in items:
            if isinstance(message, str):
                out.append({"role": "user", "parts": _parts(message)})
            else:
                role = field(message, "role") or "user"
                content = field(message, "content")
                out.append({"role": str(role), "parts": _parts(content if content is not None
                                                               else field(message, "parts"))})
        return json.dumps(out, default=str, ensure_ascii=False)[:MAX_CAPTURED_CHARS]
    except Exception:
        return None


def capture_output(text: str | None, finish_reasons: tuple[str, ...] = ()) -> str | None:
    if text is None:
        return None
    message: dict[str, Any] = {"role": "assistant", "parts": [{"type": "text", "content": text}]}
    if finish_reasons:
        message["finish_reason"] = finish_reasons[0]
    return json.dumps([message], ensure_ascii=False)[:MAX_CAPTURED_CHARS]


def server_of(url: Any) -> tuple[str | None, int | None]:
    """(host, port) of a base URL; the scheme's default port when none is given. Never raises."""
    if url is None:
        return None, None
    try:
        parts = urlsplit(str(url))
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80 if parts.scheme == "http"
                                              else None)
    except ValueError:
        return None, None


def count(obj: Any, name: str, stage: str) -> int:
    """A token count field: a non-negative int, else 0 (and, when the field held something odd, counted)."""
    value = field(obj, name)
    number = int_or_none(value)
    if number is None:
        if value is not None:
            _errors.report(stage, None, f"usage field {name!r} is not a non-negative integer")
        return 0
    return number


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def classify_result(result: Any, model: type, streams: tuple[type, ...], raw: type, raw_is_stream: str,
                    managers: tuple[type, ...] = ()) -> ResultKind:
    """How to treat what a Stainless-generated SDK (openai, anthropic) returned."""
    if isinstance(result, model):
        return "value"
    if isinstance(result, streams):
        return "stream"
    if managers and isinstance(result, managers):
        return "deferred_stream"
    if isinstance(result, raw):
        return "raw_stream" if getattr(result, raw_is_stream, False) else "raw"
    return "opaque"


def text_length(value: Any) -> int:
    """Characters of text in a prompt of any provider's shape: strings, lists of parts or messages, and objects
    or dicts with ``text``, ``content`` or ``parts`` (for budget estimates; never raises on odd shapes)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(text_length(item) for item in value)
    if value is None:
        return 0
    for name in ("text", "content", "parts"):
        inner = field(value, name)
        if inner is not None:
            return text_length(inner)
    return 0
