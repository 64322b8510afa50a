"""Sync, async and streaming wrappers, written once for every provider; the only wrapt proxies in tokentrace.

A wrapper asks the endpoint to prepare the call, starts a ``Call``, runs the SDK method and hands the result
back unchanged: a value is recorded at once, a stream is proxied so its chunks are read as the caller reads
them, and the call is recorded exactly once when the stream ends, fails, is closed or is garbage collected.
"""

from __future__ import annotations

import inspect
import weakref
from contextvars import ContextVar
from itertools import chain
from typing import Any, Callable

import wrapt

from .._support import errors as _errors
from .._usage import ResponseInfo
from ..budgets.refusal import CallRefused
from ..providers import Endpoint, Options, Prepared, StreamAccumulator
from ..recorder import Call, Recorder


class _Active:
    """What wrappers report to; recorder is None when uninstrumented (patched methods then pass straight through)."""

    recorder: Recorder | None = None
    options: Options = Options()
    wire: bool = False
    """The HTTP clients are hooked: a patched SDK method's requests are seen going out (``Measuring.sent``)."""


class Measuring:
    """What ``_inside`` holds while a patched SDK method runs (truthy): the wire layer's hooks note on it that a
    request went out, so an exception the SDK raised before sending anything is told from a failed call."""

    __slots__ = ("asked_usage", "sent")

    def __init__(self, asked_usage: bool = False) -> None:
        self.sent = False
        self.asked_usage = asked_usage
        """The SDK layer added ``stream_options.include_usage`` to this request; the HTTP hook sets it False when
        the host rejected the option and the request went again without it (``stream_usage.refused``)."""

    def __bool__(self) -> bool:
        return True


def _never_sent(exc: BaseException, measuring: Measuring) -> bool:
    """The SDK refused its own arguments before any request left (anthropic's "Streaming is required" ValueError,
    a TypeError): not an LLM request, so not recorded. Only where the HTTP clients are hooked to tell."""
    return active.wire and not measuring.sent and isinstance(exc, (ValueError, TypeError)) and \
        getattr(exc, "status_code", None) is None


active = _Active()
_END = object()
_inside: ContextVar[Any] = ContextVar("tokentrace_inside_call", default=False)
"""Truthy while a patched SDK method (``Measuring``) or the wire layer (True) measures the current call."""


def _begin(endpoint: Endpoint, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
           ) -> tuple[Call, Prepared] | None:
    recorder = active.recorder
    if recorder is None or _inside.get():
        return None
    try:
        if args and endpoint.positional:
            seen = dict(zip(endpoint.positional, args, strict=False))
            seen.update(kwargs)
            prepared = endpoint.prepare(instance, seen, active.options)
            if prepared is not None:  # the SDK gets the caller's own positional arguments, not the merged view
                prepared = prepared._replace(kwargs=kwargs)
        else:
            prepared = endpoint.prepare(instance, kwargs, active.options)
        if prepared is None or (prepared.body_left_to_caller and active.wire):
            return None  # a body the caller reads itself (with_streaming_response) is measured on the wire
        return Call(recorder, prepared.request), prepared
    except CallRefused:
        raise  # a sink (e.g. a block budget) refused the call: the caller gets it, nothing was sent
    except Exception as exc:
        _errors.report("wrapper.start", exc, "could not start measuring a call")
        return None


class _StreamState:
    """Everything a stream proxy needs to finish its call; kept apart from the proxy for the GC finalizer."""

    __slots__ = ("__weakref__", "accumulator", "call", "waiting_first")

    def __init__(self, call: Call, accumulator: StreamAccumulator) -> None:
        self.call = call
        self.accumulator = accumulator
        self.waiting_first = True

    def first_chunk(self) -> None:
        self.waiting_first = False
        self.call.first_chunk()

    def finish(self, exc: BaseException | None = None) -> None:
        call = self.call
        if call.done:
            return
        try:
            response = self.accumulator.result()
        except Exception as err:
            _errors.report("stream.result", err, "could not read a stream's usage")
            response = ResponseInfo()
        if exc is None:
            call.stop(response)
        else:
            call.fail(exc, response)


def _watch(proxy: Any, state: _StreamState) -> None:
    """Finish the call if the proxy is garbage collected before the stream ended (no __del__ involved)."""
    weakref.finalize(proxy, state.finish)


def _items(stream: Any, state: _StreamState) -> Any:
    """The chunks of one SDK stream as the caller reads them: a generator looping over the SDK's own iterator, so a
    chunk costs one resumption (locals kept) instead of a method call and proxy attribute reads."""
    chunk = state.accumulator.chunk
    try:
        # an SDK stream that is a generator sends its request on the first read: the wire layer must not count it
        token = _inside.set(True)
        try:
            first = next(stream, _END)
        finally:
            _inside.reset(token)
        for item in (chain((first,), stream) if first is not _END else ()):
            if state.waiting_first:
                state.first_chunk()
            try:
                if chunk(item):
                    continue  # hidden from the caller (the usage-only chunk tokentrace asked for)
            except Exception as exc:
                _errors.report("stream.chunk", exc, "could not read a stream chunk")
            yield item
    except GeneratorExit:
        raise  # closed or collected while the caller held it: close() or the finalizer ends the call
    except BaseException as exc:  # the SDK's stream failed (our own code cannot raise here)
        state.finish(exc)
        raise
    state.finish()


class SyncStreamProxy(wrapt.BaseObjectProxy[Any]):
    """Iterates the SDK stream for the caller, letting the accumulator see every chunk.

    Iterating the proxy iterates one generator (``_items``) that lives as long as the caller holds the proxy or
    the iterator: the call is finished when the stream ends, or when both are collected."""

    def __init__(self, wrapped: Any, state: _StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state
        self._self_items: Any = None
        self._self_handoff = _Handoff(state)
        weakref.finalize(self, self._self_handoff.finish_if_still_owner)  # never iterated: end the call on GC

    def _self_iterator(self) -> Any:
        items = self._self_items
        if items is None:
            # the SDK's own iteration of its stream (an iterator, or an iterable such as botocore's EventStream)
            items = self._self_items = _items(iter(self.__wrapped__), self._self_state)
            weakref.finalize(items, self._self_state.finish)  # the generator outlives the proxy: it owns the call
            self._self_handoff.handed_off = True
        return items

    def __iter__(self) -> Any:
        return self._self_items or self._self_iterator()

    def __next__(self) -> Any:
        return next(self._self_items or self._self_iterator())

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc_info)
        finally:
            self._self_state.finish()

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_state.finish()


class AsyncStreamProxy(wrapt.BaseObjectProxy[Any]):
    """The async twin of SyncStreamProxy (async iteration and close)."""

    def __init__(self, wrapped: Any, state: _StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state
        _watch(self, state)

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        state = self._self_state
        while True:
            # the first read may send the request (an async generator): the wire layer must not count it again
            token = _inside.set(True) if state.waiting_first else None
            try:
                item = await self.__wrapped__.__anext__()
            except StopAsyncIteration:
                state.finish()
                raise
            except BaseException as exc:
                state.finish(exc)
                raise
            finally:
                if token is not None:
                    _inside.reset(token)
            if state.waiting_first:
                state.first_chunk()
            try:
                if not state.accumulator.chunk(item):
                    return item
            except Exception as exc:
                _errors.report("stream.chunk", exc, "could not read a stream chunk")
                return item

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            self._self_state.finish()

    async def close(self) -> None:
        await self._self_close("close", "aclose")

    async def aclose(self) -> None:
        await self._self_close("aclose", "close")

    async def _self_close(self, preferred: str, fallback: str) -> None:
        """Close the SDK stream (SDK streams have ``close``, async generators ``aclose``), then end the call."""
        try:
            result = (getattr(self.__wrapped__, preferred, None) or getattr(self.__wrapped__, fallback))()
            if inspect.isawaitable(result):
                await result
        finally:
            self._self_state.finish()


def _proxy_stream(stream: Any, call: Call, endpoint: Endpoint, prepared: Prepared, is_async: bool) -> Any:
    state = _StreamState(call, endpoint.accumulator(prepared))
    # a plain method may return an async generator (xai-sdk's and cohere's async streams)
    proxy_class = AsyncStreamProxy if is_async or hasattr(stream, "__anext__") else SyncStreamProxy
    return proxy_class(stream, state)


class _Handoff:
    """Finishes a call on GC unless ownership passed to a stream proxy (which then finishes it)."""

    __slots__ = ("handed_off", "state")

    def __init__(self, state: _StreamState) -> None:
        self.state = state
        self.handed_off = False

    def finish_if_still_owner(self) -> None:
        if not self.handed_off:
            self.state.finish()


class RawStreamResponseProxy(wrapt.BaseObjectProxy[Any]):
    """A ``with_raw_response`` stream: ``parse()`` returns the measured stream proxy."""

    def __init__(self, wrapped: Any, call: Call, endpoint: Endpoint, prepared: Prepared, is_async: bool) -> None:
        super().__init__(wrapped)
        self._self_parsed: Any = None
        self._self_args = (call, endpoint, prepared, is_async)
        self._self_handoff = _Handoff(_StreamState(call, StreamAccumulator()))
        weakref.finalize(self, self._self_handoff.finish_if_still_owner)  # never parsed: end the call on GC

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        result = self.__wrapped__.parse(*args, **kwargs)
        if inspect.isawaitable(result):  # anthropic's AsyncAPIResponse.parse() is a coroutine
            return self._self_wrap_later(result)
        return self._self_wrap(result)

    async def _self_wrap_later(self, pending: Any) -> Any:
        return self._self_wrap(await pending)

    def _self_wrap(self, result: Any) -> Any:
        if self._self_parsed is not None and self._self_parsed.__wrapped__ is result:
            return self._self_parsed
        call, endpoint, prepared, is_async = self._self_args
        try:
            if call.done or endpoint.classify(result) != "stream":
                return result
            self._self_parsed = _proxy_stream(result, call, endpoint, prepared, is_async)
            self._self_handoff.handed_off = True  # the stream proxy owns the call now
            return self._self_parsed
        except Exception as exc:
            _errors.report("wrapper.raw_stream", exc, "could not measure a raw stream")
            return result


def _defer(call: Call, endpoint: Endpoint, prepared: Prepared, manager: Any) -> None:
    """A stream manager (e.g. Anthropic's ``messages.stream()``) sends its request on ``__enter__``: measure that."""
    state = _StreamState(call, endpoint.accumulator(prepared))
    handoff = _Handoff(state)

    def wrap(request: Any) -> Any:
        if inspect.isawaitable(request):

            async def run_async() -> Any:
                call.restart_clock()
                token = _inside.set(True)  # the request goes out now: the wire layer below must not count it
                try:
                    stream = await request
                except BaseException as exc:
                    state.finish(exc)
                    raise
                finally:
                    _inside.reset(token)
                handoff.handed_off = True  # the stream proxy owns the call now
                return AsyncStreamProxy(stream, state)

            return run_async()

        def run() -> Any:
            call.restart_clock()
            token = _inside.set(True)
            try:
                stream = request()
            except BaseException as exc:
                state.finish(exc)
                raise
            finally:
                _inside.reset(token)
            handoff.handed_off = True
            return SyncStreamProxy(stream, state)

        return run

    if endpoint.bind_deferred is None or not endpoint.bind_deferred(manager, wrap):
        call.stop(None)
        return
    weakref.finalize(manager, handoff.finish_if_still_owner)  # a manager never entered still ends its call


def _finish(call: Call, endpoint: Endpoint, prepared: Prepared, result: Any, is_async: bool) -> Any:
    """Record a returned result (or proxy it when it is a stream); returns what the caller gets. Never raises."""
    try:
        kind = "opaque" if prepared.body_left_to_caller else endpoint.classify(result)
        if kind == "value":
            call.stop(endpoint.extract(result, prepared))
            return result
        if kind == "stream":
            return _proxy_stream(result, call, endpoint, prepared, is_async)
        if kind == "raw":
            call.stop(endpoint.extract(result.parse(), prepared))  # parse() caches: the caller gets this same object
            # (an async parse() is awaited by _finish_async before we get here)
        elif kind == "raw_stream":
            return RawStreamResponseProxy(result, call, endpoint, prepared, is_async)
        elif kind == "deferred_stream":
            _defer(call, endpoint, prepared, result)
        elif kind == "stream_in_mapping":  # the caller gets the same dict, its stream measured in place
            key = next(k for k in endpoint.stream_key if k in result)
            proxy = _proxy_stream(result[key], call, endpoint, prepared, is_async)
            proxy._self_state.accumulator.chunk(result)  # the envelope first (request id, headers)
            result[key] = proxy
        else:
            call.stop(None)
    except Exception as exc:
        _errors.report("wrapper.finish", exc, "could not read a response")
        call.stop(None)
    return result


async def _finish_async(call: Call, endpoint: Endpoint, prepared: Prepared, result: Any) -> Any:
    """As _finish, awaiting an async ``parse()`` of a raw response first (anthropic's AsyncAPIResponse)."""
    try:
        if not prepared.body_left_to_caller and endpoint.classify(result) == "raw":
            parsed = result.parse()
            if inspect.isawaitable(parsed):
                parsed = await parsed  # cached by the SDK: the caller's own parse() returns this object
            call.stop(endpoint.extract(parsed, prepared))
            return result
    except Exception as exc:
        _errors.report("wrapper.finish", exc, "could not read a response")
        call.stop(None)
        return result
    return _finish(call, endpoint, prepared, result, True)


def _left_sdk(call: Call, token: Any, measuring: Measuring, prepared: Prepared,
              failure: BaseException | None = None) -> Prepared:
    """The SDK method returned or raised: leave its context; a failure is the call's, or none if nothing was sent.
    Returns ``prepared`` as it now holds (no usage chunk to hide when the host refused the option it asks for)."""
    _inside.reset(token)
    call.detach()
    if failure is not None:
        call.discard() if _never_sent(failure, measuring) else call.fail(failure)
    if prepared.hide_usage_only_chunk and not measuring.asked_usage:
        return prepared._replace(hide_usage_only_chunk=False)
    return prepared


def make_wrapper(endpoint: Endpoint, is_async: bool) -> Callable[..., Any]:
    """The wrapt wrapper for one endpoint; the SDK sees the same arguments, the caller the same result."""

    if is_async:

        async def async_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            begun = _begin(endpoint, instance, args, kwargs)
            if begun is None:
                return await wrapped(*args, **kwargs)
            call, prepared = begun
            token = _inside.set(measuring := Measuring(prepared.hide_usage_only_chunk))
            try:
                result = await wrapped(*args, **prepared.kwargs)
            except BaseException as exc:
                _left_sdk(call, token, measuring, prepared, exc)
                raise
            prepared = _left_sdk(call, token, measuring, prepared)
            return await _finish_async(call, endpoint, prepared, result)

        return async_wrapper

    def sync_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        begun = _begin(endpoint, instance, args, kwargs)
        if begun is None:
            return wrapped(*args, **kwargs)
        call, prepared = begun
        token = _inside.set(measuring := Measuring(prepared.hide_usage_only_chunk))
        try:
            result = wrapped(*args, **prepared.kwargs)
        except BaseException as exc:
            _left_sdk(call, token, measuring, prepared, exc)
            raise
        prepared = _left_sdk(call, token, measuring, prepared)
        return _finish(call, endpoint, prepared, result, False)

    return sync_wrapper
