"""tokentrace side by side with its peers, each in its own venv, in one session: added us per call and per chunk.

    python benchmarks/compare.py [--rounds 60] [--block 20]

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
    return f"+{figure['median']:.{digits}f} ({figure['q1']:.{digits}f}..{figure['q3']:.{digits}f})"


def print_part(result: dict[str, Any] | None, title: str, line: Any) -> None:
    """A one-process comparison (``otel-part``, ``ledger-part``): its title, then one line per SDK."""
    if result is None:
        return
    print(f"\n{title}")
    for sdk in ("openai", "anthropic"):
        if result.get(sdk):
            print(f"- {sdk}: {line(result[sdk])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--block", type=int, default=20)
    args = parser.parse_args()
    options = ["--rounds", str(args.rounds), "--block", str(args.block)]
    runs = [(name, Path(sys.executable)) for name in ("tokentrace:prometheus", "tokentrace:prometheus+ledger",
                                                      "floor:prometheus+ledger", "tokentrace", "sdk-floor")]
    runs += [(name, venv_python(name, requirements)) for name, requirements in PEERS.items()]
    results = [r for name, python in runs if (r := run(python, "--instrumentation", name, *options))]
    floor = run(Path(sys.executable), "--instrumentation", "floor", "--rounds", str(args.rounds))
    part = run(Path(sys.executable), "--instrumentation", "otel-part", *options)
    ledger_part = run(Path(sys.executable), "--instrumentation", "ledger-part", *options)
    v2 = next((r["openai"]["call_us"]["median"] for r in results if r["instrumentation"] == "openai-v2"), None)
    v2_own = next((r["openai"]["own_us"]["median"] for r in results if r["instrumentation"] == "openai-v2"), None)

    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()} {platform.python_version()}, {args.rounds} paired "
          f"rounds of {args.block} calls; median (q1..q3) added us")
    header = ["configuration", "openai us/call", "openai us/chunk", "anthropic us/call", "anthropic us/chunk",
              "x openai-v2 (openai call)", "openai own us/call (+ ledger writer)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in results:
        openai, anthropic = r.get("openai"), r.get("anthropic")
        ratio = f"{openai['call_us']['median'] / v2:.2f}x" if openai and v2 else "n/a"
        own = "n/a"
        if openai and openai.get("own_us"):
            own = cell(openai["own_us"])
            if openai.get("writer_us") is not None:
                own += f" + {openai['writer_us']:.0f}"
            if v2_own:
                own += f" = {(openai['own_us']['median'] + (openai.get('writer_us') or 0)) / v2_own:.2f}x"
        print(f"| {LABELS.get(r['instrumentation'], r['instrumentation'])} | "
              f"{cell(openai and openai['call_us'])} | {cell(openai and openai['chunk_us'], 2)} | "
              f"{cell(anthropic and anthropic['call_us'])} | {cell(anthropic and anthropic['chunk_us'], 2)} | "
              f"{ratio} | {own} |")
    if floor is not None:
        print(f"| OpenTelemetry SDK floor: one span with tokentrace's attributes + 3 histogram records, no SDK call | "
              f"{cell(floor['floor_us'])} | | | | | |")
    print_part(part, "tokentrace's OpenTelemetry part beside the SDK floor, own us per value call in one process "
               "(every sink on, minus every sink but OTel; the floor: the OTel sink swapped for the bare SDK work):",
               lambda r: f"tokentrace {cell(r['otel_us'])}, SDK floor {cell(r['floor_us'])} = "
                         f"{r['otel_us']['median'] / r['floor_us']['median']:.2f}x the floor")
    print_part(ledger_part, "tokentrace's Prometheus + ledger beside the plainest recording of the same numbers "
               "(bare_floor.py), paired with one baseline in one process, each block flushing its own ledger:",
               lambda r: f"tokentrace {cell(r['tokentrace']['call_us'])} per call, "
                         f"{cell(r['tokentrace']['chunk_us'], 2)} per chunk; floor {cell(r['floor']['call_us'])} "
                         f"per call, {cell(r['floor']['chunk_us'], 2)} per chunk")
    base = [f"{sdk} {r[sdk]['version']}: {r[sdk]['uninstrumented_us']:.0f} us" for r in results[:1]
            for sdk in ("openai", "anthropic") if r.get(sdk)]
    print("uninstrumented call: " + ", ".join(base))
    spans = {r["instrumentation"]: r["spans"] for r in results}
    print(f"spans exported per run: {spans}")


if __name__ == "__main__":
    main()
