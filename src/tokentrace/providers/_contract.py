"""What a provider module supplies: a PATCHES table of ``Patch`` entries, each naming an ``Endpoint``.

An endpoint is a set of pure functions over SDK objects: prepare the request, extract a response, accumulate a
stream, classify what the SDK returned. The wrappers in ``instrumentation.wrappers`` drive them for every
provider alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Collection, Literal, Mapping, NamedTuple

from .._usage import RequestInfo, ResponseInfo

ResultKind = Literal["value", "stream", "raw", "raw_stream", "deferred_stream", "stream_in_mapping", "opaque"]
"""How a wrapper treats what the SDK method returned:
value: a parsed response; stream: an iterator of chunks; raw: an object whose ``parse()`` gives a value;
raw_stream: an object whose ``parse()`` gives a stream; deferred_stream: a stream manager that sends the
request later (on ``__enter__``), see ``Endpoint.bind_deferred``; stream_in_mapping: a dict whose
``Endpoint.stream_key`` item is the stream (boto3's event streams), measured in place (the accumulator sees the
dict itself first, then each event); opaque: unknown, recorded
without usage."""

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
    asked_tier: str | None = None
    """A non-standard tier the request asked for, where the SDK's response type cannot say which one served it
    (``_usage.asked_tier``): the call is then unpriced with that reason, never priced at the standard rate."""


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

    prepare: Callable[[Any, Mapping[str, Any], Options], Prepared | None]
    """None: not a call to measure (e.g. a boto3 call to another AWS service); it passes straight through."""
    extract: Callable[[Any, Prepared], ResponseInfo]
    accumulator: Callable[[Prepared], StreamAccumulator]
    classify: Callable[[Any], ResultKind]
    bind_deferred: Callable[[Any, RequestWrapper], bool] | None = None
    """For ``deferred_stream`` results: replace the manager's pending request with ``wrap(request)``."""
    positional: tuple[str, ...] = ()
    """Names of the method's parameters that callers may pass by position: ``prepare`` sees them as keywords
    (the SDK still receives the call's own arguments)."""
    stream_key: tuple[str, ...] = ()
    """For ``stream_in_mapping`` results: the keys the stream may have in the returned dict (the first present)."""


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




def client_pair(module: str, sync_class: str, async_class: str, methods: Mapping[str, Endpoint], *,
                async_returns_at_once: Collection[str] = ()) -> tuple[Patch, ...]:
    """The same ``methods`` on an SDK's sync client class and its async twin (whose methods are coroutines, except
    those in ``async_returns_at_once``, which return an async iterator synchronously)."""
    return tuple(Patch(module, f"{sync_class}.{name}", endpoint) for name, endpoint in methods.items()) + tuple(
        Patch(module, f"{async_class}.{name}", endpoint, is_async=name not in async_returns_at_once)
        for name, endpoint in methods.items())
