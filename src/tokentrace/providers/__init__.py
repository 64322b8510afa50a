"""What a provider module supplies: a PATCHES table of endpoints, each a set of pure functions over SDK objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

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


@dataclass(frozen=True, slots=True)
class Prepared:
    """A call about to be sent: what is known about it, and the keyword arguments to send."""

    request: RequestInfo
    kwargs: Mapping[str, Any]
    hide_usage_only_chunk: bool = False
    """tokentrace asked for stream usage the caller did not: hide the extra usage-only chunk."""
    body_left_to_caller: bool = False
    """``with_streaming_response``: the caller reads the body itself, so the call is recorded without usage."""


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
