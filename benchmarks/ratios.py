"""tokentrace's overhead held to its targets: the paired ratios to OpenTelemetry's openai-v2, in one command.

    python benchmarks/ratios.py [--runs 2] [--rounds 60] [--block 20]

Each run measures, in a new random order, tokentrace with Prometheus + ledger, tokentrace with everything on
(OpenTelemetry SDK spans and metrics, Prometheus, ledger), the floors of both (the same Prometheus + ledger
numbers recorded the plainest way; the bare OpenTelemetry SDK work of tokentrace's span and metrics) and
openai-v2, each in its own process by ``peer_overhead.py``: real openai SDK calls over an in-process transport,
instrumented and uninstrumented blocks alternating (the machine's drift cancels), the ledger flushed inside each
instrumented block. A configuration's ratio is its figure over openai-v2's in the same run, for two figures:
``paired``, the difference between instrumented and uninstrumented blocks (the whole cost, but it swings with the
span exporter's and ledger writer's threads on a small machine), and ``own``, the time spent inside the
instrumentation's wrappers per call plus the ledger writer's time per row and the Prometheus additions that wait
for a read, per call (``own_time.py``), which is steady. Prints one table (configuration x run) and whether each
target holds on own time; exits 1 when one does not (``--no-fail`` only prints).

Targets: Prometheus + ledger <= 0.35x openai-v2; everything on <= 0.9x.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compare import PEERS, run, venv_python

TARGETS = {"tokentrace:prometheus+ledger": 0.35, "tokentrace": 0.9}
EVERYTHING_FLOOR = "floor:everything"
"""Not run: the Prometheus + ledger floor plus the OpenTelemetry SDK floor of the same run (what everything on
costs at least)."""
LABELS = {"tokentrace:prometheus+ledger": "Prometheus + ledger", "tokentrace": "everything on",
          "floor:prometheus+ledger": "Prometheus + ledger floor (bare_floor.py: the same numbers, the plainest way)",
          "sdk-floor": "OpenTelemetry SDK floor (the span and 3 histogram records tokentrace emits, fixed values)",
          EVERYTHING_FLOOR: "everything-on floor (the two floors above added)",
          "openai-v2": "OpenTelemetry openai-v2"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--no-fail", action="store_true", help="print only; exit 0 whatever the ratios")
    args = parser.parse_args()
    options = ["--rounds", str(args.rounds), "--block", str(args.block), "--sdk", "openai"]
    here = Path(sys.executable)
    runners = [(name, here) for name in (*TARGETS, "floor:prometheus+ledger", "sdk-floor")] + [
        ("openai-v2", venv_python("openai-v2", PEERS["openai-v2"]))]
    added: dict[str, list[float]] = {name: [] for name, _ in runners}
    own: dict[str, list[float]] = {name: [] for name, _ in runners}
    chunk: dict[str, list[float]] = {name: [] for name, _ in runners}
    for _ in range(args.runs):
        for name, python in random.sample(runners, len(runners)):
            result = run(python, "--instrumentation", name, *options)
            figures = (result or {}).get("openai") or {}
            added[name].append(float(figures["call_us"]["median"]) if figures else float("nan"))
            chunk[name].append(float(figures["chunk_us"]["median"]) if figures else float("nan"))
            own[name].append(float(figures["own_us"]["median"]) + float(figures.get("writer_us") or 0.0)
                             + float(figures.get("deferred_us") or 0.0) if figures else float("nan"))
    for figures in (added, own):
        figures[EVERYTHING_FLOOR] = [a + b for a, b in zip(figures["floor:prometheus+ledger"], figures["sdk-floor"],
                                                           strict=True)]
    rows = [name for name, _ in runners if name != "openai-v2"] + [EVERYTHING_FLOOR, "openai-v2"]
    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()} Python {platform.python_version()}, {args.runs} runs of "
          f"{args.rounds} paired rounds of {args.block} openai calls; added us per call (median), ratio to "
          "openai-v2 in the same run")
    header = ["configuration", *(f"run {i + 1}: {kind}" for i in range(args.runs) for kind in ("paired", "own")),
              "target"]
    print("| " + " | ".join(header) + " |\n|" + "|".join("---" for _ in header) + "|")
    failed = False
    for name in rows:
        cells = []
        for i in range(args.runs):
            for figures, kind in ((added, "paired"), (own, "own")):
                us = figures[name][i]
                if name == "openai-v2":
                    cells.append(f"+{us:.1f} us")
                    continue
                ratio = us / figures["openai-v2"][i]
                if kind == "own" and name in TARGETS:  # held on own time: the paired figure swings with threads
                    failed |= not ratio <= TARGETS[name]
                cells.append(f"+{us:.1f} us = {ratio:.2f}x")
        target = f"<= {TARGETS[name]}x" if name in TARGETS else ""
        print(f"| {LABELS[name]} | {' | '.join(cells)} | {target} |")
    print("added us per streamed chunk (median; (110-chunk stream - 10-chunk stream) / 100), run by run: " + "; ".join(
        f"{LABELS[name].split(' (')[0]} {', '.join(f'{us:+.2f}' for us in chunk[name])}" for name, _ in runners))
    print("targets: " + ("not all met" if failed else "met in every run"))
    if failed and not args.no_fail:
        sys.exit(1)


if __name__ == "__main__":
    main()
