"""Where tokentrace's own time per openai call goes, inside the real SDK call: the same harness as ``own_time.py``,
with parts of tokentrace taken away in turn, in one process, the variants alternating in a new random order each
round (the machine's drift cancels).

    python benchmarks/own_parts.py [--rounds 8]

Variants (Prometheus + ledger, as ``peer_overhead.py --instrumentation tokentrace:prometheus+ledger``):

- ``full``: as shipped;
- ``-<sink>``: without one sink (a recorder made with the others);
- ``no sinks``: the recorder with no sink at all (the call is still prepared, read, priced and recorded);
- ``prepare stub`` / ``read stub``: the endpoint's request preparation / response reading replaced by a function
  returning what it returned for the same call;
- ``no sinks, stubs``: both stubs and no sink: the wrapper, the call's life cycle and the record itself;
- ``passthrough``: no recorder (the wrapper passes the call straight through): wrapt's dispatch and the harness.

Prints the median own time per call of each, and its difference from ``full``. The ledger writer's time per row is
not in these figures (``peer_overhead.py``'s ``writer_us``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import peer_overhead
from own_time import per_call_us, timed_wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    runs = peer_overhead.openai_workloads()
    installed = peer_overhead.Installed("tokentrace:prometheus+ledger", tempfile.mkdtemp())
    import openai

    from tokentrace.instrumentation import wrappers
    from tokentrace.providers import openai as readers
    from tokentrace.recorder import Recorder

    full = wrappers.active.recorder
    assert full is not None
    call = runs["value"]
    clock = [0.0]
    for owner, attribute, patched, original in installed.patches:
        setattr(owner, attribute, timed_wrapper(original, patched._self_wrapper, clock))

    endpoint = readers.CHAT
    prepare, extract = endpoint.prepare, endpoint.extract
    client = openai.OpenAI(api_key="sk-bench", base_url="https://api.openai.com/v1", max_retries=0,
                           http_client=peer_overhead._answering_client(openai, peer_overhead.COMPLETION,
                                                                      peer_overhead.openai_stream))
    kwargs = {"model": "gpt-4o-mini", "messages": peer_overhead.MESSAGES}
    wrappers.active.recorder = None
    result = client.chat.completions.create(**kwargs)
    wrappers.active.recorder = full
    prepared = prepare(client.chat.completions, kwargs, wrappers.active.options)
    response = extract(result, prepared)

    def without(*names: str) -> Recorder:
        return Recorder(full.prices, [s for s in full.sinks if s.name not in names])

    def variant(recorder: Recorder | None, stub_prepare: bool = False, stub_read: bool = False) -> Callable[[], None]:
        def use() -> None:
            wrappers.active.recorder = recorder
            object.__setattr__(endpoint, "prepare", (lambda *a: prepared) if stub_prepare else prepare)
            object.__setattr__(endpoint, "extract", (lambda *a: response) if stub_read else extract)
        return use

    every_sink = tuple(s.name for s in full.sinks)
    variants: dict[str, Callable[[], None]] = {"full": variant(full)}
    variants.update({f"-{name}": variant(without(name)) for name in every_sink})
    variants["no sinks"] = variant(without(*every_sink))
    variants["prepare stub"] = variant(full, stub_prepare=True)
    variants["read stub"] = variant(full, stub_read=True)
    variants["no sinks, stubs"] = variant(without(*every_sink), stub_prepare=True, stub_read=True)
    variants["passthrough"] = variant(None)
    figures: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(args.rounds):
            for name in random.sample(list(variants), len(variants)):
                variants[name]()
                own: list[float] = []
                for _ in range(6):
                    own += per_call_us(call, 50, clock)
                    installed.flush()
                figures[name].append(statistics.median(own))
    finally:
        variant(full)()
    base = statistics.median(figures["full"])
    print(f"own us per openai call (Prometheus + ledger), median of {args.rounds} rounds; difference from full")
    for name, values in figures.items():
        median = statistics.median(values)
        print(f"{name:18s} {median:6.1f} us  ({min(values):.1f}..{max(values):.1f})  {median - base:+6.1f}")


if __name__ == "__main__":
    main()
