"""One call's lifecycle: start() -> Call; Call.stop(response) or Call.fail(exc) exactly once; prices and fans out."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Sequence

from ._support import errors as _errors
from ._support import forksafe as _forksafe
from ._support.text import encodable
from ._usage import ZERO_USAGE, RequestInfo, ResponseInfo, UsageRecord, build, with_modifier
from .budgets.estimate import estimate, unpriced_estimate_usd
from .budgets.refusal import CallRefused
from .context import current_attributes
from .pricing import PriceTable
from .sinks import Sink

_perf = time.perf_counter
_wall = time.time

Listener = Callable[[UsageRecord], None]
MAX_MODEL_NAMES = 4096
"""(provider, requested model) -> answered model names kept; past it the map starts again."""
WARN_UNPRICED_MODELS = 20
"""Unpriced (provider, model) pairs warned about one by one; beyond them, one warning a minute at most."""


class Recorder:
    """Owns pricing and the list of sinks; knows nothing about providers or concrete sinks."""

    def __init__(self, prices: PriceTable, sinks: Sequence[Sink]) -> None:
        self.prices = prices
        self.sinks = tuple(sinks)
        self._starters = tuple((i, s) for i, s in enumerate(self.sinks) if type(s).start is not Sink.start)
        self._detachers = tuple((i, s) for i, s in enumerate(self.sinks) if type(s).detach is not Sink.detach)
        self._tracers = tuple((i, s) for i, s in enumerate(self.sinks) if type(s).trace_id is not Sink.trace_id)
        self._indexed = tuple(enumerate(self.sinks))
        self._enders = tuple((i, s) for i, s in self._indexed if not s.end_needs_start)
        """The sinks that end a call no sink started (none returned a state)."""
        self._listeners: tuple[Listener, ...] = ()
        self._listeners_lock = threading.Lock()
        _forksafe.register(self)
        self._warned_unpriced: set[tuple[str, str]] = set()
        self._unpriced_said_at = -60.0
        self.answered_as: dict[tuple[str, str], str] = {}
        """(provider, requested model) -> the model name the provider answered it under (its dated snapshot):
        a call that gets no answer (refused by a budget, failed) is recorded under that name too, so one model is
        one name in the ledger, the metrics and the reports. Bounded (``MAX_MODEL_NAMES``)."""

    def _after_fork_in_child(self) -> None:
        self._listeners_lock = threading.Lock()

    def start(self, request: RequestInfo) -> Call:
        return Call(self, request)

    def add_listener(self, listener: Listener) -> None:
        with self._listeners_lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._listeners_lock:
            self._listeners = tuple(x for x in self._listeners if x != listener)  # bound methods: ==, not is

    def emit(self, record: UsageRecord, states: dict[int, Any] | None) -> None:
        for index, sink in self._indexed if states else self._enders:
            state = states.get(index) if states else None
            if state is None and sink.end_needs_start:
                continue
            try:
                sink.end(record, state)
            except Exception as exc:
                _errors.report(f"sink.{sink.name}", exc, "a sink failed to record a call")
        for listener in self._listeners:
            try:
                listener(record)
            except Exception as exc:
                _errors.report("listener", exc, "a usage listener failed")

    def price(self, record_provider: str, model: str, tier: str | None = None) -> tuple[Any, str | None]:
        """(price at the served tier, None), or (None, why unpriced); warns once per unpriced model."""
        price, reason = self.prices.price_for(record_provider, model, tier)
        if price is not None:
            return price, None
        key = (record_provider, f"{model}@{tier}" if tier else model)
        if key in self._warned_unpriced:
            return None, reason
        if len(self._warned_unpriced) >= WARN_UNPRICED_MODELS:  # a host inventing names: no flood of warnings
            now = _perf()
            if now - self._unpriced_said_at >= 60.0:  # llm_unpriced_requests_total counts every such call
                self._unpriced_said_at = now
                _errors.logger.warning(
                    "%s model %r is %s too; more than %d models are unpriced, so further ones are logged at most "
                    "once a minute (see llm_unpriced_requests_total)", record_provider, model, reason,
                    WARN_UNPRICED_MODELS)
        else:
            self._warned_unpriced.add(key)
            _errors.logger.warning("%s model %r%s is %s; its cost is recorded as unknown", record_provider, model,
                                   f" served at {tier!r}" if tier else "", reason)
        return None, reason


_NO_CACHE = (0.0, 0.0)


def _units(media: Any) -> str:
    """What a media call was billed by, for an unpriced reason."""
    return ", ".join(name for name, value in (("audio seconds", media.audio_seconds), ("characters", media.characters),
                                              (f"images ({media.image_quality or 'default'} quality, "
                                               f"{media.image_size or 'default'} size)", media.images)) if value)

_TIMEOUTS = frozenset({"TimeoutError", "CancelledError", "ReadTimeout", "TimeoutException", "PoolTimeout",
                       "WriteTimeout", "ServerTimeoutError", "ReadTimeoutError", "APITimeoutError", "Timeout"})
"""Exceptions of a call cancelled or timed out while it waited for its answer: the request had gone out."""


def _may_be_billed(exc: BaseException, call: Call) -> bool:
    """Whether the provider may bill a call that failed with ``exc``: its answer had begun (a stream cut off, or
    cancelled by the caller), or it was cancelled or timed out after sending. Not an HTTP error answer, nor a
    request that never left (a refused connection, an SDK refusing its own arguments)."""
    if call.first_chunk_at is not None:
        return True
    if getattr(exc, "status_code", None) is not None or getattr(exc, "status", None) is not None:
        return False
    return any(kind.__name__ in _TIMEOUTS for kind in type(exc).__mro__)


class Call:
    """An LLM call in flight. Providers only report chunks and the outcome; the Call does the rest."""

    __slots__ = (
        "attributes",
        "done",
        "first_chunk_at",
        "recorder",
        "request",
        "started",
        "started_wall",
        "states",
        "trace_id",
    )

    def __init__(self, recorder: Recorder, request: RequestInfo) -> None:
        self.recorder = recorder
        self.request = request if request.request_model.isascii() else request._replace(
            request_model=encodable(request.request_model))
        self.attributes = current_attributes()
        self.started_wall = _wall()
        self.first_chunk_at: float | None = None
        self.done = False
        self.trace_id: str | None = None
        self.states: dict[int, Any] | None = None
        if recorder._starters:
            self._start_sinks(recorder, request)
        self.started = _perf()

    def _start_sinks(self, recorder: Recorder, request: RequestInfo) -> None:
        """Each sink with a start hook sees the call before it is sent; a sink may refuse it (CallRefused)."""
        states: dict[int, Any] | None = None
        for index, sink in recorder._starters:
            try:
                state = sink.start(request, self.attributes, self.started_wall)
            except CallRefused as exc:
                self.states = states
                self.started = _perf()
                self.detach()
                self.done = True
                self._finish(None, "blocked", type(exc).__qualname__)
                raise
            except Exception as exc:
                _errors.report(f"sink.{sink.name}.start", exc, "a sink failed to start a call")
                continue
            if state is not None:  # a sink with nothing to keep for this call (e.g. OTel with no provider)
                if states is None:
                    states = {}
                states[index] = state
        self.states = states
        if states:
            for index, sink in recorder._tracers:
                if index in states:
                    try:
                        self.trace_id = sink.trace_id(states[index])
                    except Exception as exc:
                        _errors.report(f"sink.{sink.name}.trace_id", exc)

    def restart_clock(self) -> None:
        """The request is only now being sent (a deferred stream manager was entered)."""
        self.started = _perf()

    def first_chunk(self) -> None:
        if self.first_chunk_at is None:
            self.first_chunk_at = _perf()

    def detach(self) -> None:
        """The wrapped SDK call returned (or raised) on the calling thread."""
        if self.states:
            self._to_started(self.recorder._detachers, "detach")

    def discard(self) -> None:
        """What was taken for an LLM call was not one (an unproven host's non-LLM answer, ``wire.hosts``; an SDK
        refusing its own arguments before sending): no record is made, and each sink that started it gives back
        what it took (a budget's reservation). Idempotent, never raises."""
        if self.done:
            return
        self.done = True
        if self.states:
            self._to_started(self.recorder._indexed, "abandon")

    def _to_started(self, sinks: tuple[tuple[int, Sink], ...], hook: str) -> None:
        """Call ``hook`` of each of ``sinks`` that started this call, with its state; a failure is counted."""
        states = self.states or {}
        for index, sink in sinks:
            if index in states:
                try:
                    getattr(sink, hook)(states[index])
                except Exception as exc:
                    _errors.report(f"sink.{sink.name}.{hook}", exc)

    def stop(self, response: ResponseInfo | None, status: str = "ok") -> None:
        """The call succeeded (or the stream ended/was abandoned): record it. Idempotent, never raises."""
        if self.done:
            return
        self.done = True
        try:
            self._finish(response, status, None)
        except Exception as exc:
            _errors.report("recorder.stop", exc, "failed to record a call")

    def fail(self, exc: BaseException, response: ResponseInfo | None = None, error_type: str | None = None) -> None:
        """The call raised ``exc`` (``error_type``: its name, else the exception's class): record it with status
        ``error``. A call the provider may have billed (its answer had begun, or it was cancelled or timed out
        while waiting for one) is charged its estimate: budgets never count it as $0. Idempotent, never raises."""
        if self.done:
            return
        self.done = True
        try:
            self._finish(response, "error", error_type or type(exc).__qualname__, _may_be_billed(exc, self))
        except Exception as err:
            _errors.report("recorder.fail", err, "failed to record a failed call")

    def _answered_name(self, request: RequestInfo) -> str:
        """The name this call's model was last answered under (else the requested name)."""
        names = self.recorder.answered_as
        return names.get((request.provider, request.request_model), request.request_model) if names else \
            request.request_model

    def _remember_answer(self, request: RequestInfo, model: str) -> None:
        names = self.recorder.answered_as
        key = (request.provider, request.request_model)
        if names.get(key) != model:
            if len(names) >= MAX_MODEL_NAMES:
                names.clear()  # names without end (a host inventing them): start again, never grow
            names[key] = model

    def _finish(self, response: ResponseInfo | None, status: str, error_type: str | None,
                cut: bool = False) -> None:
        now = _perf()
        request = self.request
        recorder = self.recorder
        if response is not None:
            usage, model, response_id, reasons, output_text, reported_cost, tier, media = response
            if media is not None and usage is None:  # billed by its media units only (seconds, characters, images)
                usage = ZERO_USAGE
            if request.endpoint_modifiers is not None:
                tier = with_modifier(tier, request.endpoint_modifiers)
            if model and model != request.request_model:
                self._remember_answer(request, model)
            model = model or self._answered_name(request)
            # what ``encodable`` would give back unchanged for certain (ASCII, no NUL), checked inline: the usual case
            if not (model.isascii() and "\x00" not in model):
                model = encodable(model)
            if response_id is not None and not (response_id.isascii() and "\x00" not in response_id):
                response_id = encodable(response_id)
            if reasons and not ((joined := "".join(reasons)).isascii() and "\x00" not in joined):
                reasons = tuple(map(encodable, reasons))
        else:
            usage = response_id = output_text = reported_cost = tier = media = None
            model, reasons = self._answered_name(request), ()
        usage_reported = usage is not None
        cost: float | None = None
        fees: float | None = None
        cache_effect: tuple[float, float] | None = None
        source: str | None = None
        if status == "cached":
            cost = 0.0
        elif reported_cost is not None:  # the provider's own figure beats any price table
            cost, source = reported_cost, f"reported by {request.provider}"
        elif model:
            price, source = recorder.price(request.price_provider, request.priced_name(model), tier)
            if price is not None:
                source = price.source
                if usage is not None:
                    cost = price.cost(usage)
                    if media is not None:
                        units = price.media_cost(request.priced_name(model), media)
                        cost, source = (cost + units, source) if units is not None else (
                            None, f"unpriced: {model!r} has no rate for its {_units(media)}")
                    fees = price.fees(usage) if usage.web_search_requests or usage.file_search_requests else 0.0
                    cache_effect = price.cache_effect(usage) if usage.cache_read or usage.cache_write else _NO_CACHE
                elif status in ("error", "blocked") and not cut:
                    cost = 0.0  # providers do not bill failed requests; blocked ones were never sent
        charged_usd: float | None = None
        charged_tokens: int | None = None
        if (status == "ok" or cut) and not usage_reported and cost is None:  # what it used is unknown
            charged_usd, charged_tokens = estimate(request, recorder.prices)
        elif cut and usage is not None:  # a stream cut off: its usage so far may be a placeholder (message_start)
            charged_usd, charged_tokens = estimate(request, recorder.prices)
            charged_usd, charged_tokens = max(charged_usd, cost or 0.0), max(charged_tokens, usage.total)
        elif cost is None and usage is not None and status == "ok":
            standard = recorder.prices.lookup(request.price_provider, model) if tier is not None else None
            if standard is not None:  # a tier nobody prices: budgets count the standard price, the ledger's cost
                charged_usd, charged_tokens = standard.cost(usage), usage.total  # stays unknown
            else:  # no price applies at all: budgets count the floor a reservation holds, never $0
                charged_usd, charged_tokens = unpriced_estimate_usd(), usage.total
        first = self.first_chunk_at
        recorder.emit(build(UsageRecord, (  # every field, in order
            self.started_wall, request.provider, model, request.request_model, request.operation,
            ZERO_USAGE if usage is None else usage, cost, source, now - self.started, status, request.stream,
            None if first is None else first - self.started, error_type, response_id, reasons, usage_reported,
            self.attributes, self.trace_id, output_text, charged_usd, charged_tokens, tier, fees, cache_effect,
            media,
        )), self.states)
