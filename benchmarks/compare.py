"""tokentrace side by side with its peers, each in its own venv, in one session: added us per call and per chunk.

    python benchmarks/compare.py [--rounds 60] [--block 20] [--repeat 1] [--part-rounds 200]

Creates .bench/<peer> venvs on first use (needs PyPI). Each runner (`peer_overhead.py`) drives the real openai and
anthropic clients, value calls and streams, in paired rounds; every instrumentation exports spans to a counting
exporter that drops them and metrics to an in-memory reader (tokentrace also feeds Prometheus and, where named, its
SQLite ledger). The ``floor`` row is the OpenTelemetry SDK's own cost of what tokentrace emits per call (one span
with the same attributes, three histogram records), with no instrumentation around it; ``otel-part`` sets
tokentrace's OpenTelemetry sink beside a sink doing only that SDK work, in one process, inside the real call.
Prints one markdown table and the OpenTelemetry part.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PEERS = {
    # name: pip requirements (the OpenTelemetry contrib openai-v2 release needs util-genai 0.4b0's API; OpenLIT pins
    # its own SDK versions, so it gets them in its venv)
    "openai-v2": ["opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai==0.4b0", "httpx"],
    "openllmetry": ["opentelemetry-instrumentation-openai", "opentelemetry-instrumentation-anthropic"],
    # OpenLIT caps both SDKs below their current majors, and the release that installs beside them imports
    # opentelemetry._events, which API 1.38 dropped: pinned to a set that installs and runs together
    "openlit": ["openlit==1.34.43", "openai<3", "anthropic<1", "opentelemetry-api==1.37.0",
                "opentelemetry-sdk==1.37.0", "opentelemetry-semantic-conventions==0.58b0",
                "opentelemetry-instrumentation==0.58b0", "opentelemetry-exporter-otlp==1.37.0"],
}
COMMON = ["openai", "anthropic", "opentelemetry-sdk", "httpx2", "wrapt"]
LABELS = {
    "tokentrace:prometheus": "tokentrace, Prometheus only",
    "tokentrace:prometheus+ledger": "tokentrace, Prometheus + ledger (writer thread included)",
    "tokentrace": "tokentrace, everything on (OTel SDK spans + metrics, Prometheus, ledger)",
    "openai-v2": "OpenTelemetry openai-v2 (span + 2 histograms; no cost, Prometheus, ledger)",
    "openllmetry": "OpenLLMetry", "openlit": "OpenLIT",
    "floor:prometheus+ledger": "Prometheus + ledger floor: the same numbers recorded the plainest way (pre-bound "
                               "prometheus_client children, a row tuple, executemany)",
    "sdk-floor": "OpenTelemetry SDK floor inside the call: a wrapper doing only the span + 3 histogram records "
                 "tokentrace emits, fixed values",
}


def venv_python(name: str, requirements: list[str]) -> Path:
    venv = ROOT / ".bench" / name
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *COMMON, *requirements], check=True)
    return python


def run(python: Path, *args: str) -> dict[str, Any] | None:
    done = subprocess.run([str(python), str(ROOT / "benchmarks" / "peer_overhead.py"), *args], capture_output=True,
                          text=True)
    if done.returncode != 0:
        print(f"{args[1]}: failed ({done.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def cell(figure: dict[str, float] | None, digits: int = 0) -> str:
    if figure is None:
        return "n/a"
    return f"{figure['median']:+.{digits}f} ({figure['q1']:.{digits}f}..{figure['q3']:.{digits}f})"


def print_part(result: dict[str, Any] | None, title: str, line: Any) -> None:
    """A one-process comparison (``otel-part``, ``ledger-part``): its title, then one line per SDK
    (``line(sdk, merged result)``)."""
    if result is None:
        return
    print(f"\n{title}")
    for sdk in ("openai", "anthropic"):
        if result.get(sdk):
            print(f"- {sdk}: {line(sdk, result[sdk])}")


def merged(repetitions: list[Any]) -> Any:
    """Repetitions of one runner's result merged: every number the median of its repetitions (summaries element-wise),
    anything else the first repetition's."""
    present = [r for r in repetitions if r is not None]
    if not present:
        return None
    first = present[0]
    if isinstance(first, dict):
        return {key: merged([r.get(key) for r in present]) for key in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return statistics.median(present)
    return first


def openai_ratio(result: dict[str, Any], v2: dict[str, Any] | None, own: bool) -> float | None:
    """An openai figure over openai-v2's in the same repetition: the whole call, or own time (+ ledger writer)."""
    ours, theirs = result.get("openai"), (v2 or {}).get("openai")
    if not ours or not theirs:
        return None
    if own:
        return float((ours["own_us"]["median"] + (ours.get("writer_us") or 0)) / theirs["own_us"]["median"])
    return float(ours["call_us"]["median"] / theirs["call_us"]["median"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1,
                        help="run every runner this many times, in a new random order each time (a shared machine "
                             "drifts over minutes); figures are medians over repetitions, ratios to openai-v2 the "
                             "median of each repetition's ratio")
    parser.add_argument("--part-rounds", type=int, default=200,
                        help="rounds of the one-process OpenTelemetry part (own time only, so cheap; its ratio to "
                             "the floor is read to a few percent, which needs many rounds)")
    args = parser.parse_args()
    options = ["--rounds", str(args.rounds), "--block", str(args.block)]
    here = Path(sys.executable)
    names = ["tokentrace:prometheus", "tokentrace:prometheus+ledger", "floor:prometheus+ledger", "tokentrace",
             "sdk-floor", *PEERS]
    runners = [(name, here if name not in PEERS else venv_python(name, PEERS[name]), options) for name in names]
    runners += [("floor", here, ["--rounds", str(args.rounds)]),
                ("otel-part", here, ["--rounds", str(args.part_rounds), "--block", str(args.block)]),
                ("ledger-part", here, options)]
    by_name: dict[str, list[dict[str, Any]]] = {}
    ratios: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.repeat):
        repetition = {name: r for name, python, argv in random.sample(runners, len(runners))
                      if (r := run(python, "--instrumentation", name, *argv))}
        for name, r in repetition.items():
            by_name.setdefault(name, []).append(r)
            for own_time in (False, True):
                found = openai_ratio(r, repetition.get("openai-v2"), own_time) if name in names else None
                if found is not None:
                    ratios.setdefault((name, own_time), []).append(found)
    results = [merged(by_name[name]) for name in names if name in by_name]
    floor, part, ledger_part = (merged(by_name[name]) if name in by_name else None
                                for name in ("floor", "otel-part", "ledger-part"))

    def ratio_cell(name: str, own_time: bool) -> str:
        found = ratios.get((name, own_time))
        return f"{statistics.median(found):.2f}x" if found else "n/a"

    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()} {platform.python_version()}, {args.rounds} paired "
          f"rounds of {args.block} calls, {args.repeat} repetition(s) in random order; median (q1..q3) added us")
    header = ["configuration", "openai us/call", "openai us/chunk", "anthropic us/call", "anthropic us/chunk",
              "x openai-v2 (openai call)", "openai own us/call (+ ledger writer)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in results:
        openai, anthropic = r.get("openai"), r.get("anthropic")
        own = "n/a"
        if openai and openai.get("own_us"):
            own = cell(openai["own_us"])
            if openai.get("writer_us") is not None:
                own += f" + {openai['writer_us']:.0f}"
            own += f" = {ratio_cell(r['instrumentation'], True)}"
        print(f"| {LABELS.get(r['instrumentation'], r['instrumentation'])} | "
              f"{cell(openai and openai['call_us'])} | {cell(openai and openai['chunk_us'], 2)} | "
              f"{cell(anthropic and anthropic['call_us'])} | {cell(anthropic and anthropic['chunk_us'], 2)} | "
              f"{ratio_cell(r['instrumentation'], False)} | {own} |")
    if floor is not None:
        print(f"| OpenTelemetry SDK floor: one span with tokentrace's attributes + 3 histogram records, no SDK call | "
              f"{cell(floor['floor_us'])} | | | | | |")
    part_ratios = {sdk: sorted(r[sdk]["otel_us"]["median"] / r[sdk]["floor_us"]["median"]
                               for r in by_name.get("otel-part", []) if r.get(sdk)) for sdk in ("openai", "anthropic")}

    def part_line(sdk: str, r: dict[str, Any]) -> str:
        found = part_ratios[sdk]
        spread = f" (each repetition: {', '.join(f'{x:.2f}' for x in found)})" if len(found) > 1 else ""
        return (f"tokentrace {cell(r['otel_us'])}, SDK floor {cell(r['floor_us'])} = "
                f"{statistics.median(found):.2f}x the floor{spread}")

    print_part(part, f"tokentrace's OpenTelemetry part beside the SDK floor, own us per value call in one process, "
               f"{args.part_rounds} rounds (every sink on, minus every sink but OTel; the floor: the OTel sink swapped "
               f"for the bare SDK work; the ratio is the median of each repetition's):", part_line)
    print_part(ledger_part, "tokentrace's Prometheus + ledger beside the plainest recording of the same numbers "
               "(bare_floor.py), paired with one baseline in one process, each block flushing its own ledger:",
               lambda sdk, r: f"tokentrace {cell(r['tokentrace']['call_us'])} per call, "
                         f"{cell(r['tokentrace']['chunk_us'], 2)} per chunk; floor {cell(r['floor']['call_us'])} "
                         f"per call, {cell(r['floor']['chunk_us'], 2)} per chunk")
    base = [f"{sdk} {r[sdk]['version']}: {r[sdk]['uninstrumented_us']:.0f} us" for r in results[:1]
            for sdk in ("openai", "anthropic") if r.get(sdk)]
    print("uninstrumented call: " + ", ".join(base))
    spans = {r["instrumentation"]: r["spans"] for r in results}
    print(f"spans exported per run: {spans}")


if __name__ == "__main__":
    main()
