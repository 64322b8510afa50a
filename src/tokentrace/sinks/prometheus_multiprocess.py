"""The budget gauges and the internal-error counter under prometheus_client's multiprocess mode (gunicorn workers).

With ``PROMETHEUS_MULTIPROC_DIR`` set, ``/metrics`` is served by ``MultiProcessCollector`` from the files each
worker's metrics write, and a custom collector (tokentrace's budget and internal-error collectors) is invisible
there: ``LLMBudgetAt80Percent`` and ``LLMBudgetExceeded`` could never fire. So each worker also writes those
collectors' samples into real metrics, on a thread of its own every ``EVERY_S``: gauges with
``multiprocess_mode="livemostrecent"`` (the budget gauges read the shared ledger, so every worker reports the fleet's
spend: the most recent reading of a live worker is the answer), counters by the increase since the last write (so
they sum over the workers).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import Counter, Gauge
from prometheus_client.registry import Collector

from .._support import errors as _errors

EVERY_S = 2.0
"""How often a worker writes the collectors' samples (the budget thread reads the ledger as often)."""

_metrics: dict[str, Any] = {}
"""The multiprocess metrics of this process, by name: one each, whichever sink (a re-instrument) writes them."""
_counted: dict[tuple[str, tuple[str, ...]], float] = {}
"""Each counter sample's value as last written: the counts it mirrors are the process's, not one sink's."""
_lock = threading.Lock()


def active() -> bool:
    """prometheus_client's multiprocess mode is on in this process."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir"))  # noqa: SIM112 - the old spelling prometheus_client still reads


class MultiprocessMirror:
    """Writes the samples of ``collectors()`` into multiprocess metrics (never registered on a registry: the files
    are what ``MultiProcessCollector`` reads)."""

    def __init__(self, collectors: Callable[[], Iterable[Collector]]) -> None:
        self._collectors = collectors
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tokentrace-prometheus-mirror", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.write()
            self._stop.wait(EVERY_S)

    def write(self) -> None:
        """Write every sample now. Never raises."""
        try:
            with _lock:
                for collector in list(self._collectors()):
                    for family in collector.collect():
                        for sample in family.samples:
                            self._write(family, sample)
        except Exception as exc:
            _errors.report("prometheus.multiprocess", exc, "could not write budget gauges for multiprocess mode")

    def _write(self, family: Any, sample: Any) -> None:
        names = tuple(sample.labels)
        values = tuple(sample.labels[n] for n in names)
        if family.type == "counter":
            if not sample.name.endswith("_total"):
                return  # a counter's _created sample
            metric = self._metric(family.name, names, lambda: Counter(family.name, family.documentation, names,
                                                                      registry=None))
            key = (sample.name, values)
            child = metric.labels(*values) if names else metric  # a stage at 0 is served too: alerts need a series
            increase = sample.value - _counted.get(key, 0.0)
            if increase > 0:
                child.inc(increase)
                _counted[key] = sample.value
            return
        metric = self._metric(family.name, names, lambda: Gauge(family.name, family.documentation, names,
                                                                registry=None, multiprocess_mode="livemostrecent"))
        (metric.labels(*values) if names else metric).set(sample.value)

    def _metric(self, name: str, labels: tuple[str, ...], make: Callable[[], Any]) -> Any:
        metric = _metrics.get(name)
        if metric is None:
            metric = _metrics[name] = make()
        return metric

    def close(self) -> None:
        """A last write (what the final calls changed), then stop."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=EVERY_S + 1)
        self.write()
