"""Prometheus sink: the contract's counters and histograms on a prometheus_client registry, plus /metrics serving."""

from __future__ import annotations

import os
import socket
import threading
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.values import MutexValue

from .. import _errors, _forksafe
from .._cardinality import LabelGuard
from .._usage import TOKEN_TYPES, UsageRecord
from . import Sink

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
REQUEST_TOKEN_BUCKETS = (16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)


def metric_name(name: str, namespace: str = "") -> str:
    """The one place metric names are built: ``namespace_name`` or ``name``."""
    return f"{namespace}_{name}" if namespace else name


# stages exposed at 0 before any failure, so rates and alerts have a series to work on
KNOWN_ERROR_STAGES = ("budget.unavailable", "ledger.dropped", "ledger.open", "ledger.unavailable", "ledger.write",
                      "wrapper.start", "wrapper.finish")


class InternalErrorsCollector(Collector):
    """Exposes tokentrace's internal error counts (kept by ``_errors``) as a counter."""

    def __init__(self, namespace: str) -> None:
        self._name = metric_name("tokentrace_internal_errors", namespace)

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            self._name, "Failures inside tokentrace, by stage (the application call was unaffected)", labels=["stage"]
        )
        counts = dict.fromkeys(KNOWN_ERROR_STAGES, 0)
        counts.update(_errors.counts())
        for stage, count in sorted(counts.items()):
            family.add_metric([stage], count)
        yield family


class BudgetCollector(Collector):
    """The budget gauges (spent and limit, USD and tokens), read from the budget accounting at scrape time."""

    def __init__(self, namespace: str, status: Callable[[], Iterable[Any]]) -> None:
        self._namespace = namespace
        self._status = status

    def describe(self) -> Iterable[GaugeMetricFamily]:
        """The families without samples: registering the collector must not read the ledger (prometheus_client
        calls ``collect()`` at registration when there is no ``describe()``, on the thread calling instrument())."""
        yield from self._families().values()

    def _families(self) -> dict[str, GaugeMetricFamily]:
        return {
            "spent_usd": GaugeMetricFamily(metric_name("llm_budget_spent_usd", self._namespace),
                                           "Spend so far in the budget's current period (USD)", labels=["budget"]),
            "limit_usd": GaugeMetricFamily(metric_name("llm_budget_limit_usd", self._namespace),
                                           "The budget's limit per period (USD)", labels=["budget"]),
            "spent_tokens": GaugeMetricFamily(metric_name("llm_budget_spent_tokens", self._namespace),
                                              "Tokens so far in the budget's current period", labels=["budget"]),
            "limit_tokens": GaugeMetricFamily(metric_name("llm_budget_limit_tokens", self._namespace),
                                              "The budget's token limit per period", labels=["budget"]),
            "period_end": GaugeMetricFamily(metric_name("llm_budget_period_end_timestamp_seconds", self._namespace),
                                            "When the budget's current period ends (Unix time)", labels=["budget"]),
        }

    def collect(self) -> Iterable[GaugeMetricFamily]:
        families = self._families()
        for status in self._status():
            families["spent_usd"].add_metric([status.name], status.spent_usd)
            families["spent_tokens"].add_metric([status.name], status.spent_tokens)
            if status.limit_usd is not None:
                families["limit_usd"].add_metric([status.name], status.limit_usd)
            if status.limit_tokens is not None:
                families["limit_tokens"].add_metric([status.name], status.limit_tokens)
            families["period_end"].add_metric([status.name], status.budget.period_bounds()[1].timestamp())
        yield from families.values()


@dataclass(frozen=True)
class Metrics:
    tokens: Counter
    cost: Counter
    latency: Histogram
    requests: Counter
    ttft: Histogram
    request_tokens: Histogram
    unpriced: Counter
    label_keys: tuple[str, ...]
    lock: Any = field(default_factory=threading.Lock, compare=False)
    """Taken by every sink adding to these metrics in-process (one lock per call instead of one per value)."""


_metrics_lock = threading.Lock()


def _fresh_locks() -> None:
    """In a forked child: a lock some other parent thread held at the fork (a scrape, an ``inc()`` of a metric
    tokentrace created) would never be released. Give the metrics tokentrace owns, their label children and values,
    and their registry fresh locks (the child has only the forking thread, so nothing can hold them)."""
    global _metrics_lock
    _metrics_lock = threading.Lock()
    for registry, by_namespace in list(_metrics_by_registry.items()):
        _fresh_lock_of(registry)
        for metrics in by_namespace.values():
            object.__setattr__(metrics, "lock", threading.Lock())
            for metric in (getattr(metrics, f.name) for f in fields(metrics) if f.name not in ("label_keys", "lock")):
                _fresh_lock_of(metric)
                for child in [metric, *getattr(metric, "_metrics", {}).values()]:
                    for value in vars(child).values():
                        for item in value if isinstance(value, list) else (value,):
                            _fresh_lock_of(item)


def _fresh_lock_of(obj: Any) -> None:
    lock = getattr(obj, "_lock", None)
    if lock is not None and type(lock) is type(_metrics_lock):
        obj._lock = threading.Lock()


_forksafe.in_child(_fresh_locks)
_metrics_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Metrics]] = weakref.WeakKeyDictionary()


def metrics_for(registry: CollectorRegistry, namespace: str, label_keys: tuple[str, ...]) -> Metrics:
    """Create the metrics once per (registry, namespace) and reuse them on re-instrumentation."""
    with _metrics_lock:
        by_namespace = _metrics_by_registry.setdefault(registry, {})
        existing = by_namespace.get(namespace)
        if existing is not None:
            if existing.label_keys != label_keys:
                from ..config import ConfigError

                raise ConfigError(
                    f"metrics in this registry already use metric_labels={existing.label_keys}; "
                    f"cannot switch to {label_keys} in the same process (or pass a registry of its own)"
                )
            return existing
        extra = list(label_keys)
        kw: dict[str, Any] = {"namespace": namespace, "registry": registry}
        metrics = Metrics(
            tokens=Counter("tokens_used", "Tokens billed, by token type (a partition: the types sum to the bill)",
                           ["provider", "model", "operation", "token_type", *extra], **kw),
            cost=Counter("chat_cost_usd", "Cost of LLM calls in USD (priced calls only)",
                         ["provider", "model", "operation", *extra], **kw),
            latency=Histogram("llm_latency_seconds", "Duration of LLM calls, streams until their last chunk",
                              ["provider", "model", "operation", "status"], buckets=LATENCY_BUCKETS, **kw),
            requests=Counter("llm_requests", "LLM calls by outcome",
                             ["provider", "model", "operation", "status", *extra], **kw),
            ttft=Histogram("llm_time_to_first_token_seconds", "Time from request to first streamed chunk",
                           ["provider", "model", "operation"], buckets=TTFT_BUCKETS, **kw),
            request_tokens=Histogram("llm_request_tokens", "Tokens per request, input (all) and output (all)",
                                     ["provider", "model", "direction"], buckets=REQUEST_TOKEN_BUCKETS, **kw),
            unpriced=Counter("llm_unpriced_requests", "Calls whose model has no known price (cost unknown)",
                             ["provider", "model"], **kw),
            label_keys=label_keys,
        )
        registry.register(InternalErrorsCollector(namespace))
        by_namespace[namespace] = metrics
        return metrics


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
        with self.metrics.lock:
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


class _Children:
    """The prometheus_client values behind the label children of one (provider, model, operation, status, extra
    labels) key. ``in_process`` when every series is in-process (not prometheus_client's multiprocess mode): then
    each series' numbers are one list (``_Slot`` values read it for prometheus_client) and the sink adds a call's
    numbers to those lists under one lock; otherwise every value is added through its own ``inc``."""

    __slots__ = ("bounds", "cells", "cost", "in_process", "latency", "requests", "tokens", "tokens_in",
                 "tokens_out", "ttft", "unpriced")

    def __init__(self, m: Metrics, provider: str, model: str, operation: str, status: str, extra: tuple[str, ...]):
        counters = [m.tokens.labels(provider, model, operation, t, *extra) for t in TOKEN_TYPES]
        counters += [m.cost.labels(provider, model, operation, *extra),
                     m.requests.labels(provider, model, operation, status, *extra), m.unpriced.labels(provider, model)]
        histograms = [m.latency.labels(provider, model, operation, status), m.ttft.labels(provider, model, operation),
                      m.request_tokens.labels(provider, model, "input"),
                      m.request_tokens.labels(provider, model, "output")]
        with _metrics_lock:  # two sinks sharing these metrics must not both swap a series' values
            cells = [_counter_cells(c, m) for c in counters] + [_histogram_cells(h, m) for h in histograms]
        self.in_process = all(c is not None for c in cells)
        self.cells: list[list[float]] = [c for c in cells if c is not None] if self.in_process else []
        """tokens x5, cost, requests, unpriced, then the histograms latency, ttft, tokens_in, tokens_out."""
        self.bounds = [list(h._upper_bounds) for h in histograms] if self.in_process else []
        self.tokens = tuple(_counter_value(c) for c in counters[:5])
        self.cost, self.requests, self.unpriced = (_counter_value(c) for c in counters[5:])
        self.latency, self.ttft, self.tokens_in, self.tokens_out = (_histogram_values(h) for h in histograms)

    def add_in_process(self, record: UsageRecord) -> None:
        """What ``_updates`` lists, added in place to the series' cell lists (the caller holds the metrics'
        lock): the same additions in the same order, without building the list."""
        (inp_cells, read_cells, write_cells, out_cells, reasoning_cells, cost_cells, request_cells, unpriced_cells,
         latency, ttft, tokens_in, tokens_out) = self.cells
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
            if cost > 0:
                cost_cells[0] += cost
        elif record.usage_reported and record.status == "ok":
            unpriced_cells[0] += 1.0
        first = record.ttft_s
        if first is not None:
            ttft[0] += first
            if first == first:
                ttft[1 + bisect_left(bounds[1], first)] += 1.0


class PrometheusSink(Sink):
    name = "prometheus"

    def __init__(self, registry: CollectorRegistry | None, namespace: str, label_keys: tuple[str, ...],
                 budget_status: Callable[[], Iterable[Any]] | None = None, guard: LabelGuard | None = None) -> None:
        self.guard = guard or LabelGuard()
        self.registry = registry if registry is not None else REGISTRY
        self.metrics = metrics_for(self.registry, namespace, label_keys)
        self.label_keys = label_keys
        self._namespace = namespace
        self._budget_collector: BudgetCollector | None = None
        if budget_status is not None:
            self.watch_budgets(budget_status)
        self._children: dict[tuple[str, ...], _Children] = {}
        self._lock = threading.Lock()
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def _bound(self, record: UsageRecord) -> _Children:
        attrs = record.attributes
        label_keys = self.label_keys
        if len(label_keys) == 1:  # the usual case (feature): no generator per call
            extra: tuple[str, ...] = (attrs.get(label_keys[0], ""),) if attrs else ("",)
        else:
            extra = tuple(attrs.get(k, "") for k in label_keys)
        key = (record.provider, record.model, record.operation, record.status, *extra)
        children = self._children.get(key)
        if children is None:
            guard = self.guard
            model = guard.value("model", record.model)
            extra = tuple(guard.value(k, v) for k, v in zip(self.label_keys, extra, strict=True))
            # cached under the label values as exposed: values folded into "other" share one entry, so the cache
            # stays as small as the label cap makes the series (the raw key is a cache hit only when nothing folded)
            folded = (record.provider, model, record.operation, record.status, *extra)
            with self._lock:
                children = self._children.get(folded)
                if children is None:
                    children = _Children(self.metrics, record.provider, model, record.operation, record.status, extra)
                    self._children[folded] = children
        return children

    def end(self, record: UsageRecord, state: Any) -> None:
        c = self._bound(record)
        if c.in_process:
            with self.metrics.lock:  # the one lock every tokentrace sink takes to add to these metrics
                c.add_in_process(record)
        else:
            for value, amount in _updates(c, record):
                value.inc(amount)

    def watch_budgets(self, budget_status: Callable[[], Iterable[Any]]) -> None:
        """Expose the budget gauges, read from ``budget_status`` at scrape time."""
        self._budget_collector = BudgetCollector(self._namespace, budget_status)
        self.registry.register(self._budget_collector)

    def close(self) -> None:
        if self._budget_collector is not None:
            self.registry.unregister(self._budget_collector)
            self._budget_collector = None


def _updates(c: _Children, record: UsageRecord) -> list[tuple[_Value, float]]:
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
        if record.cost_usd > 0:
            updates.append((c.cost, record.cost_usd))
    elif record.usage_reported and record.status == "ok":
        updates.append((c.unpriced, 1.0))
    if record.ttft_s is not None:
        c.ttft.add(updates, record.ttft_s)
    return updates


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on the application's stderr."""


def _serve(port: int, addr: str, registry: CollectorRegistry, ledger: str | os.PathLike[str] | None) -> Any:
    from wsgiref.simple_server import make_server  # the stdlib server prometheus_client's start_http_server uses

    from prometheus_client import make_wsgi_app
    from prometheus_client.exposition import ThreadingWSGIServer

    from ..usage_http import with_usage_route

    family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)[0][0]
    server_class = type("MetricsHTTPServer", (ThreadingWSGIServer,), {"address_family": family})
    server: Any = make_server(addr, port, with_usage_route(make_wsgi_app(registry), ledger), server_class,
                              handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="tokentrace-metrics-http", daemon=True).start()
    return server


class MetricsServer:
    """Serves ``/metrics`` of one registry and ``/usage`` (the ledger report) on addr:port, from a daemon thread.

    ``port`` is the port actually bound (useful with port 0). Failures to bind are logged, never raised.
    """

    def __init__(self, port: int, addr: str, registry: CollectorRegistry | None,
                 ledger: str | os.PathLike[str] | None = None) -> None:
        self.port = port
        self.addr = addr
        self._server: Any = None
        try:
            self._server = _serve(port, addr, registry or REGISTRY, ledger)
        except OSError as exc:
            _errors.logger.warning("tokentrace: cannot serve /metrics on %s:%s (%s); metrics are still collected",
                                   addr, port, exc.strerror or exc)
            return
        self.port = int(self._server.server_port)

    @property
    def running(self) -> bool:
        return self._server is not None

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
