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
    runs = [("tokentrace", Path(sys.executable))] + [(name, venv_python(name, reqs)) for name, reqs in PEERS.items()]
    results = []
    for name, python in runs:
        out = subprocess.run([str(python), str(ROOT / "benchmarks" / "peer_overhead.py"), "--instrumentation", name,
                              "--calls", str(args.calls), "--rounds", str(args.rounds)], capture_output=True,
                             text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best_peer = min(r["overhead_us"] for r in results if r["instrumentation"] != "tokentrace")
    print(f"{'instrumentation':<14} {'uninstrumented':>15} {'instrumented':>13} {'overhead (median, min..max)':>32}")
    for r in results:
        spread = f"{r['overhead_us']:.1f} ({r['overhead_min_us']:.1f}..{r['overhead_max_us']:.1f}) us"
        print(f"{r['instrumentation']:<14} {r['uninstrumented_us']:>12.1f} us {r['instrumented_us']:>10.1f} us "
              f"{spread:>32}")
    ours = next(r["overhead_us"] for r in results if r["instrumentation"] == "tokentrace")
    print(f"target: tokentrace <= half the best peer ({best_peer / 2:.1f} us) and <= 20 us; "
          f"measured {ours:.1f} us ({ours / best_peer:.0%} of the best peer)")


if __name__ == "__main__":
    main()
