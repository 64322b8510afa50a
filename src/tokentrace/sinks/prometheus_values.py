"""The numbers behind tokentrace's Prometheus series and how one call adds to them.

``Metrics`` is one set of the contract's metrics on a registry. ``Children`` holds the prometheus_client values
behind the label children of one (provider, model, operation, status, extra labels) key and adds a finished call to
them: in-process, each series' numbers live in one list (``_Slot`` stands in for prometheus_client's value and
reads it), and finished calls are queued and added to those lists under the metrics set's one lock, in one pass,
before any value is read (``Metrics.fold``); the pass also finds a queued call's label children, and each metric of
the set (``FoldingCounter``, ``FoldingHistogram``) runs it before it lists its children. In prometheus_client's
multiprocess mode (or with internals other than the expected ones) each value is added through its own ``inc`` when
the call ends.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.values import MutexValue

from .._support import errors as _errors
from .._usage import TOKEN_TYPES, UsageRecord

FOLD_AT = 256
"""In-process, finished calls wait in their metrics set's ``pending`` queue and are added to the series in one
pass: when any value of the set is read (a scrape, ``get_sample_value``), or on the calling thread once this many
wait. Adding a call in a warm loop of many costs a fraction of adding it alone inside the application's call."""


new_metrics_lock = threading.RLock
"""The lock of a metrics set (``Metrics.lock``): reentrant, and made anew in a forked child (``sinks.prometheus``)."""


class FoldingCounter(Counter):
    """A counter of a tokentrace metrics set: before it lists its label children (a scrape, ``collect()``,
    ``get_sample_value``) the calls waiting for the set are added, and the label children they need made."""

    tokentrace_fold: Callable[[], None] | None = None

    def collect(self) -> Iterable[Metric]:
        if self.tokentrace_fold is not None:
            self.tokentrace_fold()
        return super().collect()


class FoldingHistogram(Histogram):
    """``FoldingCounter``'s twin for histograms."""

    tokentrace_fold: Callable[[], None] | None = None

    def collect(self) -> Iterable[Metric]:
        if self.tokentrace_fold is not None:
            self.tokentrace_fold()
        return super().collect()


@dataclass(frozen=True)
class Metrics:
    tokens: FoldingCounter
    cost: FoldingCounter
    latency: FoldingHistogram
    requests: FoldingCounter
    ttft: FoldingHistogram
    request_tokens: FoldingHistogram
    unpriced: FoldingCounter
    cache_savings: FoldingCounter
    cache_write_premium: FoldingCounter
    label_keys: tuple[str, ...]
    lock: Any = field(default_factory=new_metrics_lock, compare=False)
    """Taken by every sink adding to these metrics in-process (one lock per call instead of one per value).
    Reentrant: a pending call's label children may be made (and their values swapped) inside a fold."""
    pending: deque[tuple[Adder, UsageRecord]] = field(default_factory=deque, compare=False)
    """In-process calls not yet added to the series' numbers, each with what adds it (``Adder``): added
    (``fold``) before any of them is read, and on the calling thread once ``FOLD_AT`` wait."""

    def series(self) -> tuple[FoldingCounter | FoldingHistogram, ...]:
        """The prometheus_client metrics of the set."""
        return (self.tokens, self.cost, self.latency, self.requests, self.ttft, self.request_tokens, self.unpriced,
                self.cache_savings, self.cache_write_premium)

    def fold(self) -> None:
        """Add every pending call to the series' numbers."""
        with self.lock:
            self.fold_locked()

    def fold_locked(self) -> None:
        """``fold`` for a caller holding ``lock``. A call whose numbers cannot be added is counted, never raised (a
        scrape may be the one folding)."""
        pending = self.pending
        while pending:
            adder, record = pending.popleft()
            try:
                adder.add_now(record)
            except Exception as exc:
                _errors.report("sink.prometheus", exc, "a call could not be added to the Prometheus series")


class Adder(Protocol):
    """What adds a pending call to the series' numbers (the caller holds the metrics' lock): the call's label
    children (``Children``), or the sink that finds them in the fold (``PrometheusSink``)."""

    def add_now(self, record: UsageRecord) -> None: ...


_Value = Any
"""A prometheus_client value object (``MutexValue``, or ``MmapedValue`` in multiprocess mode): has ``inc``."""


class _HistogramValues:
    """The values behind one histogram label child: its sum and its buckets (upper bounds end with +Inf)."""

    __slots__ = ("bounds", "buckets", "sum")

    def __init__(self, child: Any) -> None:
        self.sum: _Value = child._sum
        self.buckets: list[_Value] = list(child._buckets)
        self.bounds: list[float] = list(child._upper_bounds)
        if len(self.buckets) != len(self.bounds) or self.bounds[-1] != float("inf"):
            raise TypeError("unexpected histogram layout")

    def add(self, updates: list[tuple[_Value, float]], amount: float) -> None:
        """What ``observe(amount)`` changes: the sum, and the first bucket whose bound is >= amount."""
        updates.append((self.sum, amount))
        if amount == amount:  # NaN falls in no bucket, as in Histogram.observe
            updates.append((self.buckets[bisect_left(self.bounds, amount)], 1.0))


class _PublicHistogram:
    """A histogram child whose internals are not the expected ones: added to through ``observe``."""

    __slots__ = ("child",)

    def __init__(self, child: Any) -> None:
        self.child = child

    def add(self, updates: list[tuple[_Value, float]], amount: float) -> None:
        updates.append((self, amount))

    def inc(self, amount: float) -> None:
        self.child.observe(amount)


def _counter_value(child: Any) -> _Value:
    """The value behind a counter child (its ``inc`` skips the public checks), else the child itself."""
    value = getattr(child, "_value", None)
    return value if callable(getattr(value, "inc", None)) else child


def _histogram_values(child: Any) -> _HistogramValues | _PublicHistogram:
    try:
        return _HistogramValues(child)
    except (AttributeError, TypeError, IndexError):  # a prometheus_client whose internals differ
        return _PublicHistogram(child)


class _Slot:
    """Stands in for a prometheus_client ``MutexValue`` in-process: one entry of its series' cell list, read and
    written under the lock of the metrics it belongs to (the lock tokentrace's sink holds while it adds)."""

    __slots__ = ("cells", "exemplar", "index", "metrics")
    _multiprocess = False

    def __init__(self, cells: list[float], index: int, metrics: Metrics, exemplar: Any = None) -> None:
        self.cells = cells
        self.index = index
        self.metrics = metrics
        self.exemplar = exemplar

    def inc(self, amount: float) -> None:
        with self.metrics.lock:
            self.cells[self.index] += amount

    def set(self, value: float, timestamp: float | None = None) -> None:
        with self.metrics.lock:
            self.cells[self.index] = value

    def get(self) -> float:
        metrics = self.metrics
        with metrics.lock:
            if metrics.pending:  # every call that ended before this read is in the value read
                metrics.fold_locked()
            return self.cells[self.index]

    def set_exemplar(self, exemplar: Any) -> None:
        with self.metrics.lock:
            self.exemplar = exemplar

    def get_exemplar(self) -> Any:
        with self.metrics.lock:
            return self.exemplar


def _plain(value: Any) -> bool:
    return type(value) is MutexValue and isinstance(getattr(value, "_value", None), float)


def _counter_cells(child: Any, metrics: Metrics) -> list[float] | None:
    """The cell list behind an in-process counter child (its ``MutexValue`` swapped for a ``_Slot`` the first
    time), or None when its value is of another kind (multiprocess mode, other internals)."""
    value: Any = getattr(child, "_value", None)
    if type(value) is _Slot:
        return value.cells
    if not _plain(value):
        return None
    with value._lock:
        cells = [value._value]
        child._value = _Slot(cells, 0, metrics, value._exemplar)
    return cells


def _histogram_cells(child: Any, metrics: Metrics) -> list[float] | None:
    """As ``_counter_cells`` for a histogram child: one list [sum, bucket 0, bucket 1, ...]."""
    try:
        total, buckets, bounds = child._sum, child._buckets, child._upper_bounds
        if type(total) is _Slot:
            return total.cells
        if not (isinstance(buckets, list) and len(buckets) == len(bounds) and bounds[-1] == float("inf")
                and _plain(total) and all(_plain(b) for b in buckets)):
            return None
    except (AttributeError, TypeError, IndexError):
        return None
    cells = [total._value, *(b._value for b in buckets)]
    child._sum = _Slot(cells, 0, metrics, total._exemplar)
    for i, bucket in enumerate(buckets):
        buckets[i] = _Slot(cells, i + 1, metrics, bucket._exemplar)
    return cells


class Children:
    """The prometheus_client values behind the label children of one (provider, model, operation, status, extra
    labels) key. ``in_process`` when every series is in-process (not prometheus_client's multiprocess mode): then
    each series' numbers are one list (``_Slot`` values read it for prometheus_client) and a call's numbers are
    queued and added to those lists under one lock before any value is read (``Metrics.fold``); otherwise every
    value is added through its own ``inc``."""

    __slots__ = ("bounds", "cache", "cells", "cost", "cost_labels", "in_process", "latency", "metrics", "requests",
                 "tokens", "tokens_in", "tokens_out", "ttft", "unpriced")

    def __init__(self, m: Metrics, provider: str, model: str, operation: str, status: str, extra: tuple[str, ...]):
        self.metrics = m
        self.cost_labels = (provider, model, operation, *extra)
        """The cost series is made at the first priced call: an unpriced model gets no ``chat_cost_usd_total``
        series at 0, which would read as free."""
        counters = [m.tokens.labels(provider, model, operation, t, *extra) for t in TOKEN_TYPES]
        counters += [m.requests.labels(provider, model, operation, status, *extra), m.unpriced.labels(provider, model)]
        histograms = [m.latency.labels(provider, model, operation, status), m.ttft.labels(provider, model, operation),
                      m.request_tokens.labels(provider, model, "input"),
                      m.request_tokens.labels(provider, model, "output")]
        with m.lock:  # two sinks sharing these metrics must not both swap a series' values
            cells = [_counter_cells(c, m) for c in counters] + [_histogram_cells(h, m) for h in histograms]
        self.in_process = all(c is not None for c in cells)
        self.cells: list[list[float]] = [c for c in cells if c is not None] if self.in_process else []
        """tokens x5, requests, unpriced, the histograms latency, ttft, tokens_in, tokens_out, then cost once made."""
        self.bounds = [list(h._upper_bounds) for h in histograms] if self.in_process else []
        self.tokens = tuple(_counter_value(c) for c in counters[:5])
        self.requests, self.unpriced = (_counter_value(c) for c in counters[5:])
        self.cost: _Value | None = None
        self.cache: tuple[Any, Any] | None = None
        """The prompt-cache series (saved, write premium), made at the first call with cache tokens."""
        self.latency, self.ttft, self.tokens_in, self.tokens_out = (_histogram_values(h) for h in histograms)

    def cost_value(self) -> _Value:
        """The cost series' value, made now if this is the first priced call (in-process: with the lock held)."""
        child = self.metrics.cost.labels(*self.cost_labels)
        if self.in_process:
            cells = _counter_cells(child, self.metrics)
            if cells is None:  # pragma: no cover - a counter unlike the others of this registry
                raise TypeError("the cost counter's value is not in-process")
            self.cells.append(cells)
        self.cost = value = _counter_value(child)
        return value

    def add(self, record: UsageRecord) -> None:
        """Add one finished call to these series."""
        if self.in_process:  # queued; added in one pass before any value is read (FOLD_AT)
            pending = self.metrics.pending
            pending.append((self, record))
            if len(pending) >= FOLD_AT:
                self.metrics.fold()
        else:
            for value, amount in _updates(self, record):
                value.inc(amount)
        effect = record.cache_effect_usd
        if effect is not None and (effect[0] or effect[1]):  # calls that read or wrote a prompt cache: a minority
            self._add_cache(effect)

    def _add_cache(self, effect: tuple[float, float]) -> None:
        if self.cache is None:
            self.cache = (self.metrics.cache_savings.labels(*self.cost_labels),
                          self.metrics.cache_write_premium.labels(*self.cost_labels))
        saved, premium = effect
        if saved > 0:
            self.cache[0].inc(saved)
        if premium > 0:
            self.cache[1].inc(premium)

    def add_now(self, record: UsageRecord) -> None:
        """Add one call now, the caller holding the metrics' lock (``Metrics.fold``): in place in the series' cell
        lists, else through each value's own ``inc``."""
        if self.in_process:
            self._add_in_process(record)
        else:
            for value, amount in _updates(self, record):
                value.inc(amount)

    def _add_in_process(self, record: UsageRecord) -> None:
        """What ``_updates`` lists, added in place to the series' cell lists (the caller holds the metrics'
        lock: ``Metrics.fold``): the same additions in the same order, without building the list."""
        cells = self.cells
        (inp_cells, read_cells, write_cells, out_cells, reasoning_cells, request_cells, unpriced_cells,
         latency, ttft, tokens_in, tokens_out) = cells[:11]
        bounds = self.bounds
        request_cells[0] += 1.0
        amount = record.latency_s
        latency[0] += amount
        if amount == amount:  # NaN falls in no bucket, as in Histogram.observe
            latency[1 + bisect_left(bounds[0], amount)] += 1.0
        if record.status == "blocked":
            return
        if record.usage_reported:
            inp, read, write, out, reasoning = record.usage[:5]
            if inp:
                inp_cells[0] += inp
            if read:
                read_cells[0] += read
            if write:
                write_cells[0] += write
            if out:
                out_cells[0] += out
            if reasoning:
                reasoning_cells[0] += reasoning
            count = inp + read + write
            tokens_in[0] += count
            tokens_in[1 + bisect_left(bounds[2], count)] += 1.0
            count = out + reasoning
            tokens_out[0] += count
            tokens_out[1 + bisect_left(bounds[3], count)] += 1.0
        cost = record.cost_usd
        if cost is not None:
            if self.cost is None:
                self.cost_value()
            if cost > 0:
                cells[11][0] += cost
        elif record.usage_reported and record.status == "ok":
            unpriced_cells[0] += 1.0
        first = record.ttft_s
        if first is not None:
            ttft[0] += first
            if first == first:
                ttft[1 + bisect_left(bounds[1], first)] += 1.0


def _updates(c: Children, record: UsageRecord) -> list[tuple[_Value, float]]:
    """(value, amount to add) for everything one call changes: what the counters' ``inc`` and the histograms'
    ``observe`` would do, as one list (every series already exists: ``labels()`` made it at 0)."""
    updates: list[tuple[_Value, float]] = [(c.requests, 1.0)]
    c.latency.add(updates, record.latency_s)
    if record.status == "blocked":
        return updates
    usage = record.usage
    if record.usage_reported:
        updates += [(value, count) for value, count in zip(c.tokens, usage.counts(), strict=True) if count]
        c.tokens_in.add(updates, usage.all_input)
        c.tokens_out.add(updates, usage.all_output)
    if record.cost_usd is not None:
        cost = c.cost if c.cost is not None else c.cost_value()
        if record.cost_usd > 0:
            updates.append((cost, record.cost_usd))
    elif record.usage_reported and record.status == "ok":
        updates.append((c.unpriced, 1.0))
    if record.ttft_s is not None:
        c.ttft.add(updates, record.ttft_s)
    return updates
