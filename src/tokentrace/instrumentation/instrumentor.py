"""Assembles tokentrace: resolves settings, builds the recorder and sinks, patches and unpatches the SDKs.

Patching is idempotent and deferred: an SDK imported after instrument() is patched by a post-import hook.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
from typing import Any

import wrapt

from .._registry import SDK_BY_NAME
from .._support import errors as _errors
from .._support import forksafe as _forksafe
from ..config import Settings
from ..pricing import PriceTable
from ..providers import Options, Patch, stream_usage
from ..recorder import Recorder
from ..sinks import Sink
from ..sinks.cardinality import LabelGuard
from . import batch_results
from . import patching as _patching
from . import sigterm as _sigterm
from . import wrappers as _wrappers

logger = logging.getLogger("tokentrace")

_lock = threading.RLock()


def _fresh_lock() -> None:
    global _lock
    _lock = threading.RLock()


_forksafe.in_child(_fresh_lock)
_current: Instrumentation | None = None
_retired: Instrumentation | None = None
"""The last uninstrumented handle: calls in flight at uninstrument() still end into its sinks."""
_hooks_registered: set[str] = set()


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:  # an argument whose == raises: not provably the same
        return False


class Instrumentation:
    """The handle instrument() returns: what was patched, the recorder, and the metrics server."""

    def __init__(self, settings: Settings | None, recorder: Recorder | None, metrics_server: Any = None) -> None:
        self.settings = settings
        self.recorder = recorder
        self.metrics_server = metrics_server
        self.patched: dict[str, list[_patching.Applied]] = {}
        self.arguments: dict[str, Any] = {}
        """The arguments instrument() was called with (compared when it is called again)."""

    def warn_if_different(self, arguments: dict[str, Any], defaults: dict[str, Any] | None = None) -> None:
        """instrument() again: the first call's arguments stay in force; say which of the arguments this call
        passed (those not at their ``defaults``) differ and are ignored."""
        defaults = defaults or {}
        ignored = sorted(name for name, value in arguments.items()
                         if name in self.arguments and not _same(value, self.arguments[name])
                         and not (name in defaults and _same(value, defaults[name])))
        if ignored:
            logger.warning("instrument() was already called; ignoring the different %s (call "
                           "tokentrace.uninstrument() first to change them)", ", ".join(ignored))

    @property
    def enabled(self) -> bool:
        return self.recorder is not None

    def sink(self, name: str) -> Any:
        """The sink called ``name`` (otel, prometheus, ledger, budget), or None."""
        if self.recorder is None:
            return None
        return next((s for s in self.recorder.sinks if s.name == name), None)

    @property
    def providers(self) -> tuple[str, ...]:
        """The providers whose SDK methods are patched right now."""
        return tuple(p for p, applied in self.patched.items() if applied)

    def flush(self, timeout: float = 5.0) -> bool:
        return self._flush_sinks("flush", timeout)

    def _flush_sinks(self, method: str, timeout: float) -> bool:
        """Call ``sink.<method>(timeout)`` on every sink; True when all say everything was written."""
        if self.recorder is None:
            return True
        flushed = True
        deadline = time.monotonic() + timeout  # one deadline for all sinks: flush(3) returns in about 3 s
        for sink in self.recorder.sinks:
            try:
                flushed = getattr(sink, method)(max(deadline - time.monotonic(), 0.0)) and flushed
            except Exception as exc:  # flush() is called by the app: it never raises
                _errors.report(f"sink.{sink.name}.flush", exc, "could not flush")
                flushed = False
        return flushed

    def uninstrument(self) -> None:
        uninstrument()

    def __repr__(self) -> str:
        return f"<tokentrace.Instrumentation enabled={self.enabled} providers={self.providers}>"


def _resolve_patch(patch: Patch) -> tuple[Any, str] | None:
    """Where to patch: the method, or its fallback; a missing method is logged and skipped, never raised."""
    target = _patching.find(patch.module, patch.attribute)
    if target is None and patch.fallback:
        target = _patching.find(patch.module, patch.fallback)
    if target is None:
        (logger.debug if patch.optional else logger.warning)(
            "%s.%s not found in this SDK version; not measured", patch.module, patch.attribute
        )
    return target


def _patch_provider(handle: Instrumentation, provider: str) -> None:
    if handle.patched.get(provider):
        return
    sdk = SDK_BY_NAME[provider]
    try:
        modules = [importlib.import_module(name) for name in (sdk.support_module, *sdk.more_modules)]
    except ImportError:
        logger.debug("no support module for %s yet", provider)
        return
    applied: list[_patching.Applied] = []
    for patch in (patch for module in modules for patch in module.PATCHES):
        target = _resolve_patch(patch)
        if target is None:
            continue
        done = _patching.apply(*target, _wrappers.make_wrapper(patch.endpoint, patch.is_async))
        if done is not None:  # None: already ours (or another instrumentation's), never wrapped twice
            applied.append(done)
    for module, attribute, wrapper in batch_results.PATCHES.get(provider, ()):  # Batch API results
        found = _patching.find(module, attribute)
        if found is not None and (done := _patching.apply(*found, wrapper)) is not None:
            applied.append(done)
    handle.patched[provider] = applied


def _unpatch_all(handle: Instrumentation) -> None:
    for applied_list in handle.patched.values():
        _patching.restore(applied_list)
    handle.patched.clear()


def _on_sdk_import(provider: str) -> Any:
    def hook(_module: Any) -> None:
        with _lock:
            handle = _current
            if handle is not None and handle.enabled and handle.settings and provider in handle.settings.providers:
                try:
                    _patch_provider(handle, provider)
                except Exception as exc:  # never break the application's import
                    logger.warning("could not patch %s: %s", provider, exc)

    return hook


def _close_all(sinks: list[Sink]) -> None:
    for sink in sinks:
        try:
            sink.flush(5.0)
            sink.close()
        except Exception as exc:
            logger.warning("closing sink %s failed: %s", sink.name, exc)


def _build_sinks(sinks: list[Sink], settings: Settings, prices: PriceTable, tracer_provider: Any,
                 meter_provider: Any, registry: Any) -> None:
    """Append the sinks to ``sinks`` (so a failure can close those already built), in the order they see a call:
    OTel first (its span covers a blocked call too), budgets last (run budgets before the configured ones, whose
    refusal they see as a blocked call and give back)."""
    from ..sinks.calllog import CallLogSink
    from ..sinks.otel import OTelSink
    from ..sinks.prometheus import PrometheusSink
    from ..sinks.run_budget import RunBudgetSink

    guard = LabelGuard(settings.max_label_values)
    sinks.append(OTelSink(tracer_provider, meter_provider, guard))
    prometheus = PrometheusSink(registry, settings.namespace, settings.metric_labels, None, guard)
    sinks.append(prometheus)
    sinks.append(CallLogSink())
    ledger_sink = None
    if settings.ledger is not None:
        from ..sinks.ledger import LedgerSink

        ledger_sink = LedgerSink(settings.ledger, queue_size=settings.ledger_queue_size)
        sinks.append(ledger_sink)
    sinks.append(RunBudgetSink(prices))
    if settings.budgets:
        from ..sinks.budget import BudgetSink

        budget_sink = BudgetSink(list(settings.budgets), prices, settings.ledger,
                                 release=ledger_sink.release if ledger_sink is not None else None,
                                 unavailable=settings.budget_unavailable,
                                 reservation_ttl_s=settings.reservation_ttl_s)
        sinks.append(budget_sink)
        prometheus.watch_budgets(budget_sink.status)


def instrument(
    settings: Settings,
    *,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    registry: Any = None,
    disabled: bool = False,
) -> Instrumentation:
    global _current
    with _lock:
        if _current is not None:
            return _current
        if disabled:
            _current = Instrumentation(None, None)
            return _current
        prices = PriceTable(settings.price_overrides, infer=settings.infer_prices)
        sinks: list[Sink] = []
        try:
            _build_sinks(sinks, settings, prices, tracer_provider, meter_provider, registry)
        except BaseException:
            _close_all(sinks)  # a failed instrument() leaves no thread, connection or collector behind
            raise
        recorder = Recorder(prices, sinks)
        server = None
        if settings.metrics_port is not None:
            from ..serving.metrics import MetricsServer

            server = MetricsServer(settings.metrics_port, settings.metrics_addr, registry, settings.ledger,
                                   usage_token=settings.usage_token, usage_by_identity=settings.usage_by_identity)
        handle = Instrumentation(settings, recorder, server)
        if settings.flush_on_sigterm:
            _sigterm.install(handle.flush)
        _wrappers.active.options = Options(stream_usage=settings.stream_usage,
                                           measure_prompt=handle_has_budgets(recorder),
                                           capture_content=settings.capture_content)
        _wrappers.active.recorder = recorder
        batch_results.ledger_location = settings.ledger
        from ..serving import usage as usage_http  # stdlib only: what GET /usage reads for this process

        usage_http.instrumented_ledger_location = settings.ledger if settings.ledger is not None else False
        usage_http.budgets = handle.sink("budget")
        _current = handle
        for provider in settings.providers:
            sdk = SDK_BY_NAME[provider].import_name
            if sdk in sys.modules:
                _patch_provider(handle, provider)
            elif _patching.installed(sdk) and sdk not in _hooks_registered:
                _hooks_registered.add(sdk)
                wrapt.register_post_import_hook(_on_sdk_import(provider), sdk)
        if settings.http:
            from .. import wire
            from ..wire import hosts

            hosts.configure(settings.llm_hosts)
            wire.install()
            _wrappers.active.wire = True
        from .. import frameworks

        frameworks.install()
        threading.Thread(target=prices.warm, name="tokentrace-prices", daemon=True).start()
        return handle


def handle_has_budgets(recorder: Recorder) -> bool:
    return any(sink.name == "budget" for sink in recorder.sinks)


def uninstrument() -> None:
    global _current, _retired
    with _lock:
        handle = _current
        _current = None
        _wrappers.active.recorder = None
        _wrappers.active.wire = False
        batch_results.ledger_location = None
        if "tokentrace.serving.usage" in sys.modules:
            from ..serving import usage as usage_http

            usage_http.budgets = None
            usage_http.instrumented_ledger_location = None
        if handle is None:
            return
        _retired = handle
        _unpatch_all(handle)
        stream_usage.forget()
        if "tokentrace.wire" in sys.modules:
            from .. import wire
            from ..wire import hosts

            wire.uninstall()
            hosts.forget()
        if "tokentrace.frameworks" in sys.modules:
            from .. import frameworks

            frameworks.uninstall()
        _sigterm.uninstall()
        if handle.metrics_server is not None:
            handle.metrics_server.close()
        if handle.recorder is not None:
            _close_all(list(handle.recorder.sinks))


def current() -> Instrumentation | None:
    return _current


def flush_retired(timeout: float) -> bool:
    """Write what calls in flight at the last uninstrument() left behind (for ``tokentrace.flush()``)."""
    handle = _retired
    return handle._flush_sinks("flush_after_close", timeout) if handle is not None else True
