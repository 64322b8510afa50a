"""Reports over a month of a busy app: 2,000,000 ledger rows, on SQLite and on a local PostgreSQL.

Builds the rows (30 days, 3 providers, 6 models, 20 features, 1,000 users), then times each command as a user
runs it, in a fresh process: ``tokentrace report``, ``stats`` and ``budget`` (wall time of the whole command,
interpreter start included, and its peak RSS), and ``GET /usage`` on the metrics server. Target: <= 1 s and
<= 100 MB each.

    python benchmarks/reports_at_scale.py [--rows 2000000] [--pg postgresql://...] [--sqlite-only]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PROVIDERS = {"openai": ("gpt-4o-mini", "gpt-4o"), "anthropic": ("claude-sonnet-4-5", "claude-haiku-4-5"),
             "google": ("gemini-2.5-flash", "gemini-2.5-pro")}
BATCH = 20_000

MEASURE = """
import json, resource, sys, time, io, contextlib
started = time.perf_counter()
kind, ledger, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
if kind == "usage":
    import urllib.request
    from tokentrace.serving.metrics import MetricsServer
    server = MetricsServer(0, "127.0.0.1", None, ledger)
    started = time.perf_counter()
    body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/usage?since=30d&by=feature", timeout=60).read()
    assert json.loads(body)["totals"]["calls"] > 0
else:
    from tokentrace.cli.app import app
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        app([kind, "--ledger", ledger, "--format", "json", *extra], standalone_mode=False)
    assert out.getvalue().strip()
elapsed = time.perf_counter() - started
print(json.dumps({"s": elapsed, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def rows(count: int, seed: int = 1) -> list[tuple[object, ...]]:
    """``count`` ledger rows over the last 30 days, oldest first."""
    from tokentrace import Usage
    from tokentrace._usage import UsageRecord
    from tokentrace.ledger.db import row_of

    rng = random.Random(seed)
    now = time.time()
    span = 30 * 86400
    out = []
    for i in range(count):
        provider = rng.choice(tuple(PROVIDERS))
        model = rng.choice(PROVIDERS[provider])
        cached = rng.randrange(0, 2000) if rng.random() < 0.3 else 0
        usage = Usage(input=rng.randrange(10, 4000), cache_read=cached, output=rng.randrange(1, 800),
                      reasoning=rng.randrange(0, 300) if model.endswith("pro") else 0)
        status = "ok" if rng.random() < 0.97 else rng.choice(("error", "blocked", "cached"))
        stream = rng.random() < 0.4
        out.append(row_of(UsageRecord(
            ts_utc=now - span + span * i / count, provider=provider, model=model, request_model=model,
            operation="chat", usage=usage, cost_usd=usage.total * 1e-6 if rng.random() > 0.01 else None,
            price_source="bench", latency_s=rng.lognormvariate(-0.5, 0.8), status=status, stream=stream,
            ttft_s=rng.uniform(0.05, 1.5) if stream else None,
            attributes={"feature": f"feature-{rng.randrange(20)}", "user_id": f"user-{rng.randrange(1000)}",
                        "session_id": f"s-{rng.randrange(50_000)}"})))
    return out


def build(location: str, count: int) -> float:
    """Write ``count`` rows the way the ledger writer does (batches, roll-up folded in each). Seconds taken."""
    from tokentrace.ledger.store import open_db

    started = time.perf_counter()
    db = open_db(location, create=True, timeout=60)
    for start in range(0, count, BATCH):
        db.insert(rows(min(BATCH, count - start), seed=start))
    db.close()
    return time.perf_counter() - started


def measure(location: str, budgets: Path) -> dict[str, dict[str, float]]:
    commands = {"report": ["report", "--since", "30d", "--by", "feature"], "report --by day": ["report", "--since",
                "30d", "--by", "day"], "stats": ["stats", "--since", "30d"], "budget": ["budget", "--budgets",
                                                                                     str(budgets)],
                "GET /usage": ["usage"]}
    results = {}
    for name, argv in commands.items():
        kind, *extra = argv
        out = subprocess.run([sys.executable, "-c", MEASURE, kind, location, *extra], capture_output=True, text=True,
                             cwd=ROOT, check=True).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
    return results


def show(title: str, results: dict[str, dict[str, float]]) -> None:
    print(title)
    for name, r in results.items():
        verdict = "ok" if r["s"] <= 1.0 and r["rss_mb"] <= 100 else "OVER TARGET"
        print(f"  {name:16} {r['s']:6.3f} s  {r['rss_mb']:6.1f} MB  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--pg", help="PostgreSQL URL (default: start a local throw-away server)")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--keep", type=Path, help="build the SQLite ledger here, or reuse the one already there")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or Path(scratch)
        budgets = Path(scratch) / "budgets.toml"
        budgets.write_text('[[budget]]\nname = "monthly"\nperiod = "month"\nlimit_usd = 5000\n\n'
                           '[[budget]]\nname = "feature-3"\nperiod = "week"\nlimit_usd = 100\n'
                           'scope = { feature = "feature-3" }\n')
        sqlite_path = str(Path(tmp) / "usage.db")
        if not Path(sqlite_path).exists():
            print(f"SQLite: {args.rows:,} rows written in {build(sqlite_path, args.rows):.0f} s")
        show(f"SQLite, {args.rows:,} rows:", measure(sqlite_path, budgets))
        if args.sqlite_only:
            return
        if args.pg:
            print(f"PostgreSQL: {args.rows:,} rows written in {build(args.pg, args.rows):.0f} s")
            show(f"PostgreSQL, {args.rows:,} rows:", measure(args.pg, budgets))
            return
        sys.path.insert(0, str(ROOT))
        from tests.postgres_server import postgres_server

        with postgres_server() as server:
            print(f"PostgreSQL: {args.rows:,} rows written in {build(server.url, args.rows):.0f} s")
            show(f"PostgreSQL (local), {args.rows:,} rows:", measure(server.url, budgets))


if __name__ == "__main__":
    main()
