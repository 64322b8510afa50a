"""Prometheus sink: the contract's counters and histograms on a prometheus_client registry, created once per
(registry, namespace), fork-safe, with the internal-error and budget collectors.

How a call's numbers reach the series is ``prometheus_values``' job; serving ``/metrics`` is ``serving.metrics``'s.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from itertools import repeat
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .._support import errors as _errors
from .._support import forksafe as _forksafe
from .._usage import UsageRecord
from . import Sink, prometheus_multiprocess, prometheus_values
from .cardinality import LabelGuard
from .prometheus_values import Children, Metrics, new_metrics_lock
from .prometheus_values import FoldingCounter as Counter
from .prometheus_values import FoldingHistogram as Histogram

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
    """Exposes tokentrace's internal error counts (kept by ``_support.errors``) as a counter."""

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

    def describe(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        """The families without samples: registering the collector must not read the ledger (prometheus_client
        calls ``collect()`` at registration when there is no ``describe()``, on the thread calling instrument())."""
        yield from self._families().values()

    def _families(self) -> dict[str, GaugeMetricFamily | CounterMetricFamily]:
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
            "decisions": CounterMetricFamily(metric_name("llm_budget_decisions", self._namespace),
                                             "Calls a block budget admitted or refused in this process (decision "
                                             "admitted / blocked)", labels=["budget", "decision"]),
            "principals": GaugeMetricFamily(metric_name("llm_budget_principals", self._namespace),
                                            "Principals of a per= budget this process has seen this period (state "
                                            "seen), and of them those refused a call (state blocked)",
                                            labels=["budget", "state"]),
        }

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        families = self._families()
        for status in self._status():
            decisions = getattr(status, "decisions", (0, 0))
            if status.budget.action == "block":
                families["decisions"].add_metric([status.name, "admitted"], decisions[0])
                families["decisions"].add_metric([status.name, "blocked"], decisions[1])
            principals = getattr(status, "principals", None)
            if principals is not None:  # a per= budget: counts of principals, never a series per principal
                families["principals"].add_metric([status.name, "seen"], principals[0])
                families["principals"].add_metric([status.name, "blocked"], principals[1])
                continue
            families["spent_usd"].add_metric([status.name], status.spent_usd)
            families["spent_tokens"].add_metric([status.name], status.spent_tokens)
            if status.limit_usd is not None:
                families["limit_usd"].add_metric([status.name], status.limit_usd)
            if status.limit_tokens is not None:
                families["limit_tokens"].add_metric([status.name], status.limit_tokens)
            families["period_end"].add_metric([status.name], status.budget.period_bounds()[1].timestamp())
        yield from families.values()


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
            object.__setattr__(metrics, "lock", new_metrics_lock())
            for metric in metrics.series():
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
            cache_savings=Counter("llm_cache_savings_usd", "What prompt-cache reads saved in USD: their tokens at the "
                                  "uncached input price minus what they cost", ["provider", "model", "operation",
                                                                                *extra], **kw),
            cache_write_premium=Counter("llm_cache_write_premium_usd", "What prompt-cache writes cost in USD beyond "
                                        "the uncached input price (net saving: savings minus this)",
                                        ["provider", "model", "operation", *extra], **kw),
            label_keys=label_keys,
        )
        for metric in metrics.series():
            metric.tokentrace_fold = metrics.fold  # a waiting call's label children exist before they are listed
        registry.register(InternalErrorsCollector(namespace))
        by_namespace[namespace] = metrics
        return metrics


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
        self._children: dict[tuple[str, ...], Children] = {}
        self._queue_unbound = False
        """A finished call waits unbound (``end``): set at the first call when its children are in-process."""
        self._no_labels = ("",) * len(label_keys)
        """The extra label values of a call made outside every ``attributes()`` block."""
        self._lock = threading.Lock()
        _forksafe.register(self)
        errors = InternalErrorsCollector(namespace)
        self._mirror = prometheus_multiprocess.MultiprocessMirror(
            lambda: [errors, *([self._budget_collector] if self._budget_collector else [])]
        ) if prometheus_multiprocess.active() else None  # gunicorn: custom collectors are not in the served files

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def _bound(self, record: UsageRecord) -> Children:
        attributes = record.attributes
        if attributes:
            key: tuple[str, ...] = (record.provider, record.model, record.operation, record.status,
                                    *map(attributes.get, self.label_keys, repeat("")))
        else:
            key = (record.provider, record.model, record.operation, record.status, *self._no_labels)
        children = self._children.get(key)
        if children is None:
            guard = self.guard
            model = guard.value("model", record.model)
            extra = tuple(guard.value(k, v) for k, v in zip(self.label_keys, key[4:], strict=True))
            # cached under the label values as exposed: values folded into "other" share one entry, so the cache
            # stays as small as the label cap makes the series (the raw key is a cache hit only when nothing folded)
            folded = (record.provider, model, record.operation, record.status, *extra)
            # the metrics' lock first, as a fold (which binds calls while holding it) takes the two
            with self.metrics.lock, self._lock:
                children = self._children.get(folded)
                if children is None:
                    children = Children(self.metrics, record.provider, model, record.operation, record.status, extra)
                    self._children[folded] = children
        return children

    def end(self, record: UsageRecord, state: Any) -> None:
        if not self._queue_unbound:
            children = self._bound(record)
            children.add(record)
            self._queue_unbound = children.in_process
            return
        # in-process: the call waits with this sink, which finds its label children in the fold (a warm loop over
        # the calls waiting) instead of here, inside the application's call
        pending = self.metrics.pending
        pending.append((self, record))
        if len(pending) >= prometheus_values.FOLD_AT:  # read here: one knob, set in one place
            self.metrics.fold()
        effect = record.cache_effect_usd
        if effect is not None and (effect[0] or effect[1]):  # read through their own values: added now, as before
            self._bound(record)._add_cache(effect)

    def add_now(self, record: UsageRecord) -> None:
        """Add a call that waited with this sink (``Metrics.fold``, the metrics' lock held)."""
        self._bound(record).add_now(record)

    def watch_budgets(self, budget_status: Callable[[], Iterable[Any]]) -> None:
        """Expose the budget gauges, read from ``budget_status`` at scrape time."""
        self._budget_collector = BudgetCollector(self._namespace, budget_status)
        self.registry.register(self._budget_collector)

    def flush(self, timeout: float) -> bool:
        self.metrics.fold()
        return True

    def close(self) -> None:
        self.metrics.fold()
        if self._mirror is not None:
            self._mirror.close()
        if self._budget_collector is not None:
            self.registry.unregister(self._budget_collector)
            self._budget_collector = None


