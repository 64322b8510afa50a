"""The floor of tokentrace's Prometheus + ledger output inside the real SDK call: what any instrumentation that
records the same per-call numbers pays at least, written the plainest way the libraries allow.

A wrapt wrapper around openai's and anthropic's ``create`` reads the response's usage and model, adds the call to
pre-bound prometheus_client children (five token counters, cost, requests, the latency histogram and the two
request-token histograms: what tokentrace's Prometheus sink adds for an answered call) and appends a row tuple, in
the ledger's column order, to a deque. A writer thread (``floor-ledger``) inserts queued rows with one
``executemany`` per batch into a ledger created by tokentrace itself (same table and indexes; no roll-up). Streams
are passed through a generator that keeps the last usage it saw. No price lookup (a fixed rate), no attribution, no
label caps, no error handling: a floor, not an instrumentation.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import wrapt
from prometheus_client import CollectorRegistry, Counter, Histogram

from tokentrace.ledger.db import COLUMNS, INSERT_SQL
from tokentrace.ledger.store import open_db

_LATER_COLUMNS = (None,) * (len(COLUMNS) - 27)
"""The columns after ``cache_hit`` (budget charge, served tier, fees, cache savings, ...): NULL in a floor row."""
RATE = (0.15e-6, 0.6e-6)
"""USD per input and output token (fixed: the floor looks no price up)."""


class _Writer:
    """Rows queued by the calling thread, inserted in batches by one thread."""

    def __init__(self, path: Path) -> None:
        open_db(path, create=True).close()  # tokentrace's own schema, indexes and pragmas
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.queue: deque[tuple[Any, ...]] = deque()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        threading.Thread(target=self._run, name="floor-ledger", daemon=True).start()

    def _run(self) -> None:
        while True:
            self.wake.wait(0.2)
            self.wake.clear()
            self.drain()

    def drain(self) -> None:
        with self.lock:
            queue = self.queue
            if not queue:
                return
            rows = [queue.popleft() for _ in range(len(queue))]
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(INSERT_SQL, rows)
            self.conn.execute("COMMIT")


class _Series:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.tokens = Counter("tokens_used", "", ["provider", "model", "operation", "token_type", "feature"],
                              registry=registry)
        self.cost = Counter("chat_cost_usd", "", ["provider", "model", "operation", "feature"], registry=registry)
        self.requests = Counter("llm_requests", "", ["provider", "model", "operation", "status", "feature"],
                                registry=registry)
        self.latency = Histogram("llm_latency_seconds", "", ["provider", "model", "operation", "status"],
                                 registry=registry)
        self.request_tokens = Histogram("llm_request_tokens", "", ["provider", "model", "direction"],
                                        registry=registry)
        self.bound: dict[tuple[str, str], tuple[Any, ...]] = {}

    def children(self, provider: str, model: str) -> tuple[Any, ...]:
        key = (provider, model)
        found = self.bound.get(key)
        if found is None:
            found = self.bound[key] = (
                *(self.tokens.labels(provider, model, "chat", t, "") for t in
                  ("input", "cache_read", "cache_write", "output", "reasoning")),
                self.cost.labels(provider, model, "chat", ""), self.requests.labels(provider, model, "chat", "ok", ""),
                self.latency.labels(provider, model, "chat", "ok"),
                self.request_tokens.labels(provider, model, "input"),
                self.request_tokens.labels(provider, model, "output"))
        return found


def _openai_usage(usage: Any) -> tuple[int, int, int, int, int]:
    details = usage.prompt_tokens_details
    read = (details.cached_tokens or 0) if details is not None else 0
    output_details = usage.completion_tokens_details
    reasoning = (output_details.reasoning_tokens or 0) if output_details is not None else 0
    return usage.prompt_tokens - read, read, 0, usage.completion_tokens - reasoning, reasoning


def _anthropic_usage(usage: Any) -> tuple[int, int, int, int, int]:
    return (usage.input_tokens or 0, usage.cache_read_input_tokens or 0, usage.cache_creation_input_tokens or 0,
            usage.output_tokens or 0, 0)


def install(ledger: Path) -> Any:
    """Patch both SDKs; returns the flush (writes every queued row on the calling thread)."""
    series = _Series(CollectorRegistry())
    writer = _Writer(ledger)
    queue = writer.queue

    def record(provider: str, model: str, counts: tuple[int, int, int, int, int], started: float,
               latency: float, stream: bool) -> None:
        inp, read, write, out, reasoning = counts
        (c_inp, c_read, c_write, c_out, c_reasoning, c_cost, c_requests, h_latency, h_in, h_out) = \
            series.children(provider, model)
        cost = (inp + read + write) * RATE[0] + (out + reasoning) * RATE[1]
        c_inp.inc(inp)
        c_read.inc(read)
        c_write.inc(write)
        c_out.inc(out)
        c_reasoning.inc(reasoning)
        c_cost.inc(cost)
        c_requests.inc()
        h_latency.observe(latency)
        h_in.observe(inp + read + write)
        h_out.observe(out + reasoning)
        queue.append((str(started), provider, model, model, "chat", "", None, None, None, "{}", inp, read, write, out,
                      reasoning, inp + read + write + out + reasoning, cost, latency * 1000.0, None, int(stream),
                      "ok", None, None, None, "floor", 1, 0, *_LATER_COLUMNS))

    def stream(items: Any, provider: str, read_usage: Any, started: float, wall: float) -> Any:
        usage, model = None, ""
        for item in items:
            found = getattr(item, "usage", None)
            if found is not None:
                usage, model = found, getattr(item, "model", model)
            yield item
        if usage is not None:
            record(provider, model, read_usage(usage), wall, time.perf_counter() - started, True)

    def wrapper_for(provider: str, read_usage: Any) -> Any:
        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            started, wall = time.perf_counter(), time.time()
            result = wrapped(*args, **kwargs)
            if kwargs.get("stream"):
                return stream(result, provider, read_usage, started, wall)
            record(provider, result.model, read_usage(result.usage), wall, time.perf_counter() - started, False)
            return result
        return wrapper

    wrapt.wrap_function_wrapper("openai.resources.chat.completions.completions", "Completions.create",
                                wrapper_for("openai", _openai_usage))
    wrapt.wrap_function_wrapper("anthropic.resources.messages.messages", "Messages.create",
                                wrapper_for("anthropic", _anthropic_usage))
    return writer.drain
