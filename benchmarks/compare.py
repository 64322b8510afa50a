"""tokentrace side by side with its peers, each in its own venv, in the same session: overhead per call.

    python benchmarks/compare.py [--calls 1000] [--rounds 7]

Creates .bench/<peer> venvs on first use (needs PyPI). Each instrumentation must really emit spans (the runner
asserts the exported span count); tokentrace additionally writes Prometheus metrics and its ledger.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = {
    # name: pip requirements (the OpenTelemetry contrib openai-v2 release needs util-genai 0.4b0's API)
    "openai-v2": ["opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai==0.4b0", "httpx"],
    "openllmetry": ["opentelemetry-instrumentation-openai"],
}
COMMON = ["openai", "opentelemetry-sdk", "httpx2"]


def venv_python(name: str, requirements: list[str]) -> Path:
    venv = ROOT / ".bench" / name
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *COMMON, *requirements], check=True)
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    ours = ["tokentrace:prometheus", "tokentrace:prometheus+ledger", "tokentrace"]
    runs = [(name, Path(sys.executable)) for name in ours] + [(name, venv_python(name, reqs))
                                                              for name, reqs in PEERS.items()]
    results = []
    for name, python in runs:
        out = subprocess.run([str(python), str(ROOT / "benchmarks" / "peer_overhead.py"), "--instrumentation", name,
                              "--calls", str(args.calls), "--rounds", str(args.rounds)], capture_output=True,
                             text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    v2 = next(r["overhead_us"] for r in results if r["instrumentation"] == "openai-v2")
    label = {"tokentrace": "tokentrace, everything on (SDK spans + SDK metrics + Prometheus + ledger)",
             "tokentrace:prometheus": "tokentrace, Prometheus only",
             "tokentrace:prometheus+ledger": "tokentrace, Prometheus + ledger",
             "openai-v2": "OpenTelemetry openai-v2 (span + histograms)", "openllmetry": "OpenLLMetry"}
    print(f"openai {results[0]['openai']}, {args.rounds} paired rounds of {args.calls} non-streaming chat calls")
    print(f"| {'configuration':<72} | {'us/call (median, min..max)':>28} | {'x openai-v2':>11} |")
    print(f"|{'-' * 74}|{'-' * 30}|{'-' * 13}|")
    for r in results:
        spread = f"+{r['overhead_us']:.0f} ({r['overhead_min_us']:.0f}..{r['overhead_max_us']:.0f})"
        print(f"| {label.get(r['instrumentation'], r['instrumentation']):<72} | {spread:>28} | "
              f"{r['overhead_us'] / v2:>10.2f}x |")
    print(f"uninstrumented call: {results[0]['uninstrumented_us']:.0f} us")


if __name__ == "__main__":
    main()
