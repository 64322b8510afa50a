"""Overhead of one instrumentation (tokentrace or a peer) on the real openai and anthropic clients.

Runs inside a venv that has the instrumentation installed and prints one JSON line; `benchmarks/compare.py` builds
the venvs and runs every instrumentation in the same session. The SDKs run their whole client stack (request
building, httpx, response parsing, SSE decoding) against an in-process transport that answers at once, so the
figures are what instrumentation adds to the SDK's own work, without network noise.

Paired rounds: the instrumentation is installed once; each round times a block of calls with its patches in place
and a block with the SDK's original methods swapped back (in random order), so slow drift of a shared machine hits
both sides alike. Per-chunk cost is the difference between long and short streams, divided by the extra chunks.
Ledger configurations flush at the end of every instrumented block, inside the timing: the writer thread's work is
paid for.

    python benchmarks/peer_overhead.py --instrumentation openai-v2 [--rounds 60] [--block 20]

``--instrumentation``: ``tokentrace`` (everything on), ``tokentrace:prometheus``, ``tokentrace:prometheus+ledger``
(no OpenTelemetry SDK providers: the API's no-op ones), ``openai-v2``, ``openllmetry``, ``openlit``, ``sdk-floor``
(a wrapper doing only the OpenTelemetry SDK work tokentrace's telemetry needs, around the real SDK call),
``floor:prometheus+ledger`` (the plainest Prometheus + ledger recording of the same numbers: ``bare_floor.py``),
``floor`` (the OpenTelemetry SDK work in a warm loop, no SDK call), ``ledger-part`` (tokentrace's Prometheus +
ledger next to that floor, paired in one process), or ``otel-part`` (tokentrace's OpenTelemetry sink next to
a sink doing only that SDK work, inside the same process and the real SDK call).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry import context, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

sys.path.insert(0, str(Path(__file__).parent))
from own_time import per_call_us, timed_wrapper
from payloads import COMPLETION, MESSAGES, anthropic_message, anthropic_stream, openai_stream

SHORT, LONG = 10, 110
"""Chunks of content in the short and the long stream (per-chunk cost = difference / (LONG - SHORT))."""


def _httpx(sdk: Any) -> Any:
    """The httpx package the SDK's client is built on (recent Stainless SDKs use ``httpx2``)."""
    base = sys.modules[f"{sdk.__name__}._base_client"]
    return getattr(base, "httpx2", None) or base.httpx


def _answering_client(sdk: Any, value: bytes, stream: Callable[[int], bytes]) -> Any:
    """An httpx client (of the SDK's httpx) answering at once: ``value`` to plain calls, ``stream(max_tokens)`` as
    SSE to streaming ones (the benchmark asks for its stream length through ``max_tokens``)."""
    httpx = _httpx(sdk)
    bodies = {n: stream(n) for n in (SHORT, LONG)}

    def handler(request: Any) -> Any:
        sent = json.loads(request.content)
        if sent.get("stream"):
            return httpx.Response(200, content=bodies[int(sent["max_tokens"])],
                                  headers={"content-type": "text/event-stream"})
        return httpx.Response(200, content=value, headers={"content-type": "application/json"})

    return httpx.Client(transport=httpx.MockTransport(handler))


def openai_workloads() -> dict[str, Callable[[], Any]]:
    import openai

    client = openai.OpenAI(api_key="sk-bench", base_url="https://api.openai.com/v1", max_retries=0,
                           http_client=_answering_client(openai, COMPLETION, openai_stream))

    def stream(chunks: int) -> Callable[[], Any]:
        def run() -> None:
            for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                    max_tokens=chunks, stream_options={"include_usage": True}):
                pass
        return run

    return {"value": lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
            "short": stream(SHORT), "long": stream(LONG)}


def anthropic_workloads() -> dict[str, Callable[[], Any]]:
    import anthropic

    client = anthropic.Anthropic(api_key="sk-ant-bench", base_url="https://api.anthropic.com", max_retries=0,
                                 http_client=_answering_client(anthropic, anthropic_message(), anthropic_stream))
    model = "claude-haiku-4-5"

    def stream(chunks: int) -> Callable[[], Any]:
        def run() -> None:
            for _ in client.messages.create(model=model, max_tokens=chunks, messages=MESSAGES, stream=True):
                pass
        return run

    return {"value": lambda: client.messages.create(model=model, max_tokens=64, messages=MESSAGES),
            "short": stream(SHORT), "long": stream(LONG)}


# ----------------------------------------------------------------------------------------- instrumentations


class CountingExporter(SpanExporter):
    """Counts exported spans and forgets them, as a network exporter does once it has sent them (an in-memory
    exporter would keep every span alive, and the garbage collector's full passes would then grow with the run)."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Any) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


class Installed:
    """An instrumentation installed once, whose patches can be swapped out and back in between blocks."""

    def __init__(self, name: str, ledger_dir: str) -> None:
        self.name = name
        self.exporter = CountingExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(BatchSpanProcessor(self.exporter, max_queue_size=1_000_000,
                                                                   max_export_batch_size=4096))
        self.meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        self.flush: Callable[[], Any] = lambda: None
        before = _patched_attributes()
        self._install(Path(ledger_dir) / "ledger.db")
        self.patches = [p for key, p in _patched_attributes().items() if key not in before]
        if not self.patches:
            raise SystemExit(f"{name}: found no patched SDK methods to measure")

    def _install(self, ledger: Path) -> None:
        providers: dict[str, Any] = {"tracer_provider": self.tracer_provider, "meter_provider": self.meter_provider}
        if self.name.startswith("tokentrace"):
            from prometheus_client import CollectorRegistry

            import tokentrace

            if self.name != "tokentrace":  # no OpenTelemetry SDK: the API's no-op providers
                providers = {}
            handle = tokentrace.instrument(ledger=ledger if self.name != "tokentrace:prometheus" else False,
                                           registry=CollectorRegistry(), **providers)
            ledger_sink = next((s for s in handle.recorder.sinks if s.name == "ledger"), None)
            if ledger_sink is not None:  # the writer's work is paid inside the timing; span export, as for every
                self.flush = lambda: ledger_sink.flush(5.0)  # peer, is left to the batch processor's thread
        elif self.name == "sdk-floor":
            _install_sdk_floor(self.tracer_provider, self.meter_provider)
        elif self.name == "floor:prometheus+ledger":
            import bare_floor

            self.flush = bare_floor.install(ledger)
        elif self.name == "openai-v2":
            from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

            OpenAIInstrumentor().instrument(**providers)
        elif self.name == "openllmetry":
            from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
            from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetryOpenAI

            OpenLLMetryOpenAI().instrument(**providers)
            AnthropicInstrumentor().instrument(**providers)
        elif self.name == "openlit":
            from opentelemetry import metrics, trace

            trace.set_tracer_provider(self.tracer_provider)  # openlit records into the global providers when set
            metrics.set_meter_provider(self.meter_provider)
            import openlit

            try:
                openlit.init(collect_gpu_stats=False, disable_events=True)  # events would print to the console
            except TypeError:  # a release without the option
                openlit.init(collect_gpu_stats=False)
        else:
            raise SystemExit(f"unknown instrumentation {self.name!r}")

    def on(self) -> None:
        for owner, attribute, patched, _original in self.patches:
            setattr(owner, attribute, patched)

    def off(self) -> None:
        for owner, attribute, _patched, original in self.patches:
            setattr(owner, attribute, original)

    def spans(self) -> int:
        self.tracer_provider.force_flush()
        return self.exporter.count


class _FloorWork:
    """The OpenTelemetry SDK work tokentrace's telemetry needs per call, with fixed values: a CLIENT span started
    with tokentrace's request attributes and made current (``begin``), then detached (``end``), given its response
    attributes and ended, plus three histogram records (``finish``)."""

    def __init__(self, tracer_provider: Any, meter_provider: Any, sdk: str = "openai") -> None:
        self.tracer = tracer_provider.get_tracer("floor")
        meter = meter_provider.get_meter("floor")
        self.duration, self.tokens = meter.create_histogram("d", unit="s"), meter.create_histogram("t", unit="{token}")
        self.request, self.response, self.common, self.inputs, self.outputs = _floor_attributes(sdk)
        self.name = f"chat {self.request['gen_ai.request.model']}"

    def begin(self) -> tuple[Any, Any]:
        span = self.tracer.start_span(self.name, kind=SpanKind.CLIENT, attributes=self.request)
        return span, context.attach(trace.set_span_in_context(span))

    def end(self, span: Any, token: Any) -> None:
        context.detach(token)
        self.finish(span)

    def finish(self, span: Any) -> None:
        """The span's response attributes and end, and the three histogram records (after the detach)."""
        span.set_attributes(self.response)
        span.end()
        self.duration.record(0.5, self.common)
        self.tokens.record(42, self.inputs)
        self.tokens.record(11, self.outputs)


def _install_sdk_floor(tracer_provider: Any, meter_provider: Any) -> None:
    """The floor inside the real SDK call: a wrapt wrapper around openai's and anthropic's create doing only
    ``_FloorWork``: what any instrumentation emitting the same telemetry pays at least, measured the way the
    instrumentations are."""
    import wrapt

    def wrapper_for(sdk: str) -> Callable[..., Any]:
        work = _FloorWork(tracer_provider, meter_provider, sdk)

        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            span, token = work.begin()
            try:
                return wrapped(*args, **kwargs)
            finally:
                work.end(span, token)
        return wrapper

    wrapt.wrap_function_wrapper("openai.resources.chat.completions.completions", "Completions.create",
                                wrapper_for("openai"))
    wrapt.wrap_function_wrapper("anthropic.resources.messages.messages", "Messages.create", wrapper_for("anthropic"))


def _floor_attributes(sdk: str = "openai") -> tuple[dict[str, Any], ...]:
    """(request span attributes, response span attributes, metric attributes, + input / output token type): what
    tokentrace emits for the benchmark's value call of ``sdk`` (anthropic's carries its ``max_tokens``)."""
    provider, model, response_model, server = {
        "openai": ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "api.openai.com"),
        "anthropic": ("anthropic", "claude-haiku-4-5", "claude-haiku-4-5", "api.anthropic.com"),
    }[sdk]
    request: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
                               "gen_ai.system": provider, "gen_ai.request.model": model,
                               "gen_ai.request.stream": False, "server.address": server, "server.port": 443}
    if sdk == "anthropic":
        request["gen_ai.request.max_tokens"] = 64
    response = {"gen_ai.response.model": response_model, "gen_ai.response.id": "chatcmpl-1",
                "gen_ai.response.finish_reasons": ["stop"], "gen_ai.usage.input_tokens": 42,
                "gen_ai.usage.output_tokens": 11, "gen_ai.usage.cache_read.input_tokens": 0,
                "gen_ai.usage.cache_creation.input_tokens": 0, "tokentrace.usage.reasoning_tokens": 0,
                "tokentrace.cost_usd": 1.3e-5, "tokentrace.price_source": "genai-prices"}
    common = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
              "gen_ai.request.model": model, "gen_ai.response.model": response_model,
              "server.address": server, "server.port": 443}
    return request, response, common, {**common, "gen_ai.token.type": "input"}, \
        {**common, "gen_ai.token.type": "output"}


def _patched_attributes() -> dict[tuple[int, str], tuple[type, str, Any, Any]]:
    """Every wrapt-wrapped method on the openai and anthropic SDKs' classes and on the httpx clients under them
    (tokentrace's wire layer: left in place, an "uninstrumented" block would be measured on the wire instead):
    {(class id, name): (class, name, wrapper, original)}."""
    import wrapt

    proxy = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)
    found = {}
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name.startswith(("openai.", "anthropic.")) or module_name in ("httpx",
                                                                                                        "httpx2")):
            continue
        for owner in list(vars(module).values()):
            if isinstance(owner, type) and owner.__module__ == module_name:
                for attribute, value in list(vars(owner).items()):
                    if isinstance(value, proxy):
                        found[(id(owner), attribute)] = (owner, attribute, value, value.__wrapped__)
    return found


# ----------------------------------------------------------------------------------------- measuring


def _block_us(fn: Callable[[], Any], calls: int, after: Callable[[], Any]) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    after()
    return (time.perf_counter() - start) / calls * 1e6


def paired_sides(sides: dict[str, Any], off: Callable[[], Any], fn: Callable[[], Any], rounds: int, block: int
                 ) -> tuple[dict[str, list[float]], float]:
    """Each round times a block of ``fn`` with no patches (``off``) and one with each side's patches (``on``, then
    its ``flush`` inside the timing), in random order: per side, the per-round (side - uninstrumented) us per call,
    and the median uninstrumented call."""
    nothing: Callable[[], Any] = lambda: None  # noqa: E731
    for _ in range(3):
        fn()
    for side in sides.values():
        side.on()
        for _ in range(3):
            fn()
        side.flush()
    off()
    per_round: dict[str, list[float]] = {name: [] for name in ("off", *sides)}
    for _ in range(rounds):
        for name in random.sample(list(per_round), len(per_round)):
            if name == "off":
                off()
                per_round[name].append(_block_us(fn, block, nothing))
            else:
                sides[name].on()
                per_round[name].append(_block_us(fn, block, sides[name].flush))
    off()
    baseline = per_round.pop("off")
    differences = {name: [a - b for a, b in zip(times, baseline, strict=True)] for name, times in per_round.items()}
    return differences, statistics.median(baseline)


def paired(installed: Installed, fn: Callable[[], Any], rounds: int, block: int) -> tuple[list[float], float]:
    """Per-round (instrumented - uninstrumented) us per call, and the median uninstrumented call."""
    differences, baseline = paired_sides({"on": installed}, installed.off, fn, rounds, block)
    return differences["on"], baseline


def own_us(installed: Installed, fn: Callable[[], Any], calls: int) -> list[float]:
    """Per value call: time in the instrumentation's wrapper on the calling thread (its wrapper function's time minus
    the time inside the SDK method it calls, both timed around the same call), so the SDK's variance cancels. Every
    instrumentation measured here patches with wrapt, so its wrapper function is ``FunctionWrapper._self_wrapper``.
    Work on other threads (span export, tokentrace's ledger writer) is not in it: see ``writer_us``; the ledger is
    flushed every 50 calls, outside the timed wrapper, so the writer never falls behind and tokentrace's calling
    thread never waits for it here (the writer's work is ``writer_us``'s)."""
    clock = [0.0]
    for owner, attribute, patched, original in installed.patches:
        setattr(owner, attribute, timed_wrapper(original, patched._self_wrapper, clock))
    try:
        figures = []
        for start in range(0, calls, 50):
            figures += per_call_us(fn, min(50, calls - start), clock)
            installed.flush()
        return figures
    finally:
        installed.off()


def writer_us(installed: Installed, fn: Callable[[], Any], calls: int) -> float | None:
    """tokentrace's ledger writer per call: the writer thread's CPU time while ``calls`` calls are made, plus the
    final flush's time on the calling thread."""
    writer = next((t for t in threading.enumerate() if t.name in ("tokentrace-ledger", "floor-ledger")), None)
    if writer is None or writer.ident is None:
        return None
    clock = time.pthread_getcpuclockid(writer.ident)
    installed.on()
    try:
        installed.flush()
        cpu = time.clock_gettime(clock)
        for _ in range(calls):
            fn()
        writer_cpu = time.clock_gettime(clock) - cpu
        start = time.perf_counter()
        installed.flush()  # the rows left: written here, or by the writer while this waits (its CPU is in this wait)
        return (writer_cpu + time.perf_counter() - start) / calls * 1e6
    finally:
        installed.off()


def deferred_us(installed: Installed, fn: Callable[[], Any], calls: int) -> float | None:
    """tokentrace's Prometheus work that waits for a read (``prometheus_values.FOLD_AT``) per call: ``calls`` calls
    are left pending, then added in one timed pass. The calling thread pays this once per FOLD_AT calls, inside one
    call that the median of ``own_us`` leaves out; this figure puts it back."""
    if not installed.name.startswith("tokentrace"):
        return None
    from tokentrace.instrumentation import wrappers as _wrappers
    from tokentrace.sinks import prometheus_values

    recorder = _wrappers.active.recorder
    metrics = [sink.metrics for sink in (recorder.sinks if recorder else ()) if sink.name == "prometheus"]
    if not metrics:
        return None
    fold_at, prometheus_values.FOLD_AT = prometheus_values.FOLD_AT, 1 << 62
    installed.on()
    try:
        metrics[0].fold()
        for _ in range(calls):
            fn()
        start = time.perf_counter()
        metrics[0].fold()
        return (time.perf_counter() - start) / calls * 1e6
    finally:
        prometheus_values.FOLD_AT = fold_at
        installed.off()


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    n = len(ordered)
    return {"median": statistics.median(ordered), "q1": ordered[n // 4], "q3": ordered[(3 * n) // 4]}


def measure(name: str, sdks: list[str], rounds: int, block: int) -> dict[str, Any]:
    workloads = {"openai": openai_workloads, "anthropic": anthropic_workloads}
    result: dict[str, Any] = {"instrumentation": name}
    with tempfile.TemporaryDirectory() as tmp:
        loaded = {}
        for sdk in sdks:
            try:
                loaded[sdk] = workloads[sdk]()
            except ImportError:  # this venv has no such SDK
                result[sdk] = None
        installed = Installed(name, tmp)
        patched = {owner.__module__.partition(".")[0] for owner, *_ in installed.patches}
        for sdk, runs in loaded.items():
            if sdk not in patched:  # the instrumentation does not cover this SDK
                result[sdk] = None
                continue
            own = own_us(installed, runs["value"], rounds * block)
            writer = writer_us(installed, runs["value"], rounds * block)
            deferred = deferred_us(installed, runs["value"], min(rounds * block, 256))
            value, base = paired(installed, runs["value"], rounds, block)
            short, _ = paired(installed, runs["short"], rounds, block)
            long, _ = paired(installed, runs["long"], rounds, block)
            per_chunk = [(b - a) / (LONG - SHORT) for a, b in zip(short, long, strict=True)]
            result[sdk] = {"version": sys.modules[sdk].__version__, "uninstrumented_us": base,
                           "call_us": summary(value), "chunk_us": summary(per_chunk), "own_us": summary(own),
                           "writer_us": writer, "deferred_us": deferred}
        result["spans"] = installed.spans()
    return result


class _Patches:
    """A set of SDK patches that can be put in place and a flush for what they queued (the floor beside tokentrace)."""

    def __init__(self, patches: list[tuple[type, str, Any, Any]], flush: Callable[[], Any]) -> None:
        self.patches, self.flush = patches, flush

    def on(self) -> None:
        for owner, attribute, patched, _original in self.patches:
            setattr(owner, attribute, patched)


def _own_interleaved(sides: dict[str, Any], fn: Callable[[], Any], rounds: int, block: int) -> dict[str, list[float]]:
    """Own time per call (as ``own_us``) of each side's patches, a block of each per round in random order."""
    clock = [0.0]
    timed = {name: _Patches([(owner, attribute, timed_wrapper(original, patched._self_wrapper, clock), original)
                             for owner, attribute, patched, original in side.patches], side.flush)
             for name, side in sides.items()}
    own: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name in random.sample(list(timed), len(timed)):
            timed[name].on()
            own[name].append(statistics.median(per_call_us(fn, block, clock)))
            timed[name].flush()
    return own


def ledger_part(sdks: list[str], rounds: int, block: int) -> dict[str, Any]:
    """tokentrace with Prometheus + ledger next to the plainest recording of the same numbers (``bare_floor.py``), in
    one process: each round times a block with no patches, one with tokentrace's and one with the floor's (random
    order; each instrumented block ends with its own ledger flush), so both are paired with the same baseline."""
    import bare_floor

    result: dict[str, Any] = {"instrumentation": "ledger-part"}
    workloads = {"openai": openai_workloads, "anthropic": anthropic_workloads}
    with tempfile.TemporaryDirectory() as tmp:
        loaded = {sdk: workloads[sdk]() for sdk in sdks}
        installed = Installed("tokentrace:prometheus+ledger", tmp)
        installed.off()
        before = _patched_attributes()
        floor_flush = bare_floor.install(Path(tmp) / "floor.db")
        floor = _Patches([p for key, p in _patched_attributes().items() if key not in before], floor_flush)
        sides: dict[str, Any] = {"tokentrace": installed, "floor": floor}
        for sdk, runs in loaded.items():
            figures: dict[str, dict[str, list[float]]] = {name: {} for name in sides}
            for workload in ("value", "short", "long"):
                differences, _ = paired_sides(sides, installed.off, runs[workload], rounds, block)
                for name, values in differences.items():
                    figures[name][workload] = values
            own = _own_interleaved(sides, runs["value"], rounds, block)
            installed.off()
            result[sdk] = {name: {"call_us": summary(f["value"]), "chunk_us": summary(
                [(b - a) / (LONG - SHORT) for a, b in zip(f["short"], f["long"], strict=True)]),
                "own_us": summary(own[name])} for name, f in figures.items()}
    return result


def otel_part(sdks: list[str], rounds: int, block: int) -> dict[str, Any]:
    """tokentrace's OpenTelemetry part next to the SDK floor, inside the real SDK call, in one process.

    tokentrace is installed with everything on; each round times value calls (own time, as ``own_us``) under three
    recorders in random order: every sink, every sink but the OTel one, and every sink with the OTel one replaced by
    a sink doing only ``_FloorWork`` (the bare SDK span and histogram records). The part is the first minus the
    second, the floor the third minus the second, paired by round."""
    from tokentrace.instrumentation import wrappers as _wrappers
    from tokentrace.recorder import Recorder
    from tokentrace.sinks import Sink

    class FloorSink(Sink):
        name = "floor"
        end_needs_start = True

        def __init__(self, work: _FloorWork) -> None:
            self.work = work

        def start(self, request: Any, attributes: Any, started_wall: float) -> Any:
            return list(self.work.begin())

        def detach(self, state: Any) -> None:
            if state[1] is not None:
                context.detach(state[1])
                state[1] = None

        def end(self, record: Any, state: Any) -> None:
            self.work.finish(state[0])

    result: dict[str, Any] = {"instrumentation": "otel-part"}
    workloads = {"openai": openai_workloads, "anthropic": anthropic_workloads}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {sdk: workloads[sdk]()["value"] for sdk in sdks}
        installed = Installed("tokentrace", tmp)
        full = _wrappers.active.recorder
        assert full is not None
        others = [sink for sink in full.sinks if sink.name != "otel"]
        clock = [0.0]
        for owner, attribute, patched, original in installed.patches:
            setattr(owner, attribute, timed_wrapper(original, patched._self_wrapper, clock))
        for sdk, fn in runs.items():
            floor_sink = FloorSink(_FloorWork(installed.tracer_provider, installed.meter_provider, sdk))
            recorders = {"tokentrace": full, "without": Recorder(full.prices, others),
                         "floor": Recorder(full.prices, [floor_sink, *others])}
            per_round: dict[str, list[float]] = {name: [] for name in recorders}
            for _ in range(rounds):
                for name in random.sample(list(recorders), len(recorders)):
                    _wrappers.active.recorder = recorders[name]
                    per_round[name].append(statistics.median(per_call_us(fn, block, clock)))
                installed.flush()
            part = [a - b for a, b in zip(per_round["tokentrace"], per_round["without"], strict=True)]
            bare = [a - b for a, b in zip(per_round["floor"], per_round["without"], strict=True)]
            result[sdk] = {"otel_us": summary(part), "floor_us": summary(bare),
                           "without_us": summary(per_round["without"])}
        _wrappers.active.recorder = full
        installed.off()
    return result


def floor(rounds: int) -> dict[str, Any]:
    """The OpenTelemetry SDK's own cost of what tokentrace emits per call, with no instrumentation code around it:
    a CLIENT span started with tokentrace's request attributes, made current and detached, given its response
    attributes and ended (batch processor, in-memory exporter), plus three histogram records."""

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(CountingExporter(), max_queue_size=1_000_000,
                                                   max_export_batch_size=4096))
    work = _FloorWork(provider, MeterProvider(metric_readers=[InMemoryMetricReader()]))

    def one_call() -> None:
        work.end(*work.begin())

    per_round = [_block_us(one_call, 200, lambda: None) for _ in range(rounds)]
    return {"instrumentation": "floor", "floor_us": summary(per_round)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instrumentation", required=True)
    parser.add_argument("--sdk", action="append", choices=["openai", "anthropic"])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--block", type=int, default=20)
    args = parser.parse_args()
    if args.instrumentation == "floor":
        print(json.dumps(floor(args.rounds)))
        return
    if args.instrumentation == "ledger-part":
        print(json.dumps(ledger_part(args.sdk or ["openai", "anthropic"], args.rounds, args.block)))
        return
    if args.instrumentation == "otel-part":
        print(json.dumps(otel_part(args.sdk or ["openai", "anthropic"], args.rounds, args.block)))
        return
    print(json.dumps(measure(args.instrumentation, args.sdk or ["openai", "anthropic"], args.rounds, args.block)))


if __name__ == "__main__":
    main()
