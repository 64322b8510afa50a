"""Budgets for every customer: one ``Budget(per="user_id")`` gives each principal its own limit (overrides by name
or from the app's own ``limit_for``), in one process and across a fleet sharing a ledger (SQLite and a real
PostgreSQL: 4 processes x 4 threads, 200 principals each with a tiny daily block budget)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import tokentrace
from tokentrace import Budget, BudgetError, BudgetExceeded, BudgetUnavailable

from .conftest import make_telemetry, openai_client
from .ledger_helpers import query_ledger

ROOT = Path(__file__).resolve().parents[1]
PRICES = {"gpt-4o-mini": {"provider": "openai", "input": 5.0, "output": 20.0},
          "gpt-4o-mini-2024-07-18": {"provider": "openai", "input": 5.0, "output": 20.0}}
CALL_USD = (7 * 5.0 + 5 * 20.0) / 1e6  # 7 tokens in, 5 out: $0.000135 (its estimate is $0.000165)
MESSAGES = [{"role": "user", "content": "one two three"}]


def _call(client: Any, **attributes: str) -> str:
    try:
        with tokentrace.attributes(**attributes):
            client.chat.completions.create(model="gpt-4o-mini", max_tokens=5, messages=MESSAGES)
        return "sent"
    except BudgetExceeded:
        return "refused"


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"per": "user-id"}, "not an attribution key"),
    ({"per": "user_di"}, "misspelling of 'user_id'"),
    ({"per": ()}, "per must be"),
    ({"per": ("user_id", "user_id")}, "names a key twice"),
    ({"limits": {"alice": 2.0}}, "need per="),
    ({"per": "user_id", "limits": {"alice": -1}}, "finite number >= 0"),
    ({"per": "user_id", "limits": {"alice": float("nan")}}, "finite number >= 0"),
    ({"per": "user_id", "limit_for": "plans"}, "limit_for must be callable"),
    ({"limit_for": lambda p: 1.0}, "limit_for needs per="),
    ({"scope": {"modle": "gpt-5"}}, "misspelling of 'model'"),
])
def test_a_templated_budget_that_cannot_work_is_refused_at_configuration(kwargs: dict[str, Any],
                                                                       message: str) -> None:
    with pytest.raises(BudgetError, match=message):
        Budget("b", limit_usd=1.0, **kwargs)
    assert issubclass(BudgetError, tokentrace.ConfigError)


def test_a_budgets_file_takes_per_and_named_limits(tmp_path: Path) -> None:
    from tokentrace.budgets import load_budgets

    path = tmp_path / "budgets.toml"
    path.write_text('[[budget]]\nname = "per-user"\nlimit_usd = 1.0\nper = "user_id"\naction = "block"\n'
                    '[budget.limits]\nvip = 5.0\n\n'
                    '[[budget]]\nname = "per-tenant-feature"\nlimit_usd = 200.0\nperiod = "month"\n'
                    'per = ["tenant", "feature"]\n')
    first, second = load_budgets(path)
    assert first.per == ("user_id",) and first.limits == {"vip": 5.0}
    assert second.per == ("tenant", "feature")
    assert second.principal_of({"tenant": "acme", "feature": "chat"}) == "acme/chat"
    assert second.principal_of({"tenant": "acme"}) is None  # a call without the key is not counted


def test_a_huge_or_odd_principal_value_is_bounded_and_stays_distinct() -> None:
    budget = Budget("per-user", limit_usd=1.0, per="user_id")
    one, two = (budget.principal_of({"user_id": "x" * 10_000 + tail}) for tail in ("a", "b"))
    assert one is not None and two is not None and one != two and len(one) <= 200 and len(two) <= 200
    odd = budget.principal_of({"user_id": "report-\udcff"})
    assert odd is not None and odd.encode("utf-8")


# --------------------------------------------------------------------------- one process


@pytest.mark.parametrize("ledger", [False, "sqlite"])
def test_each_user_has_their_own_limit_and_an_override_is_honoured(simulator: Any, tmp_path: Path,
                                                                   ledger: Any) -> None:
    limit = 4 * CALL_USD + 0.00004  # four calls fit, a fifth's estimate does not
    budget = Budget("per-user", period="day", limit_usd=limit, per="user_id", action="block",
                    limits={"vip": 2 * limit})
    make_telemetry(budgets=[budget], prices=PRICES, ledger=tmp_path / "usage.db" if ledger else False)
    with openai_client(simulator) as client:
        alice = [_call(client, user_id="alice") for _ in range(6)]
        bob = [_call(client, user_id="bob") for _ in range(3)]  # alice's refusals leave bob untouched
        vip = [_call(client, user_id="vip") for _ in range(12)]
        anonymous = [_call(client) for _ in range(6)]  # no user_id: this budget does not count the call
    assert alice == ["sent"] * 4 + ["refused"] * 2
    assert bob == ["sent"] * 3
    assert vip.count("sent") == 8 and vip[-1] == "refused"  # twice the calls: 8 x $0.000135, then no room
    assert anonymous == ["sent"] * 6
    (standing,) = tokentrace.budget_status(user_id="alice")
    assert standing["name"] == "per-user[alice]" and standing["spent_usd"] == pytest.approx(4 * CALL_USD)
    assert standing["limit_usd"] == pytest.approx(limit)
    assert tokentrace.budget_status(user_id="vip")[0]["limit_usd"] == pytest.approx(2 * limit)


def test_limit_for_reads_the_apps_own_plans_and_a_failing_one_is_decided_by_budget_unavailable(
        simulator: Any) -> None:
    plans = {"free": 2 * CALL_USD + 0.00004, "pro": 6 * CALL_USD + 0.00004}
    asked: list[str] = []

    def limit_for(principal: str) -> float | None:
        asked.append(principal)
        if principal == "broken":
            raise RuntimeError("plans database down")
        return plans.get(principal)

    budget = Budget("plan", limit_usd=1.0, per="user_id", action="block", limit_for=limit_for)
    make_telemetry(budgets=[budget], prices=PRICES)
    with openai_client(simulator) as client:
        free = [_call(client, user_id="free") for _ in range(4)]
        pro = [_call(client, user_id="pro") for _ in range(8)]
        broken = [_call(client, user_id="broken") for _ in range(2)]  # budget_unavailable="allow": sent, counted
    assert free.count("sent") == 2 and pro.count("sent") == 6 and broken == ["sent", "sent"]
    assert asked.count("free") == 1  # asked once, then kept for LIMIT_REFRESH_S
    from tokentrace._support import errors as _errors

    assert _errors.counts().get("budget.limit_for", 0) >= 1
    tokentrace.uninstrument()
    make_telemetry(budgets=[budget], prices=PRICES, budget_unavailable="block")
    with openai_client(simulator) as client, pytest.raises(BudgetUnavailable):
        with tokentrace.attributes(user_id="broken"):
            client.chat.completions.create(model="gpt-4o-mini", max_tokens=5, messages=MESSAGES)


def test_a_budget_scoped_to_a_model_counts_only_that_model(simulator: Any) -> None:
    budget = Budget("gpt-4o-only", limit_usd=2 * CALL_USD + 0.00004, action="block", scope={"model": "gpt-4o"})
    make_telemetry(budgets=[budget], prices={**PRICES, "gpt-4o": {"provider": "openai", "input": 5.0,
                                                                   "output": 20.0},
                                             "gpt-4o-2024-08-06": {"provider": "openai", "input": 5.0,
                                                                   "output": 20.0}})
    outcomes = []
    with openai_client(simulator) as client:
        for model in ("gpt-4o-mini", "gpt-4o", "gpt-4o-mini", "gpt-4o", "gpt-4o", "gpt-4o-mini"):
            try:
                client.chat.completions.create(model=model, max_tokens=5, messages=MESSAGES)
                outcomes.append((model, "sent"))
            except BudgetExceeded:
                outcomes.append((model, "refused"))
    assert outcomes == [("gpt-4o-mini", "sent"), ("gpt-4o", "sent"), ("gpt-4o-mini", "sent"), ("gpt-4o", "sent"),
                        ("gpt-4o", "refused"), ("gpt-4o-mini", "sent")]


def test_an_hour_budget_has_an_hour_long_period() -> None:
    from datetime import UTC, datetime

    start, end = Budget("hourly", period="hour", limit_usd=1.0).period_bounds(
        datetime(2026, 12, 2, 14, 37, 12, tzinfo=UTC))
    assert (start.isoformat(), end.isoformat()) == ("2026-12-02T14:00:00+00:00", "2026-12-02T15:00:00+00:00")


def test_prometheus_gets_counts_of_principals_never_a_series_per_principal(simulator: Any) -> None:
    budget = Budget("per-user", limit_usd=CALL_USD + 0.00004, per="user_id", action="block")
    telemetry = make_telemetry(budgets=[budget], prices=PRICES)
    with openai_client(simulator) as client:
        for user in ("u1", "u2", "u3"):
            for _ in range(2 if user != "u3" else 1):
                _call(client, user_id=user)
    assert telemetry.sample("llm_budget_principals", budget="per-user", state="seen") == 3
    assert telemetry.sample("llm_budget_principals", budget="per-user", state="blocked") == 2
    names = {s.labels.get("budget") for f in telemetry.registry.collect() for s in f.samples}
    assert not any("[" in (name or "") for name in names)  # no per-principal series


def test_the_cli_lists_the_principals_nearest_their_limits(simulator: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "usage.db"
    limit = 3 * CALL_USD + 0.00004
    make_telemetry(budgets=[Budget("per-user", limit_usd=limit, per="user_id", action="block")], prices=PRICES,
                   ledger=ledger)
    with openai_client(simulator) as client:
        for user, calls in (("heavy", 3), ("medium", 2), ("light", 1)):
            for _ in range(calls):
                _call(client, user_id=user)
    assert tokentrace.flush()
    budgets = tmp_path / "budgets.toml"
    budgets.write_text(f'[[budget]]\nname = "per-user"\nlimit_usd = {limit}\nper = "user_id"\naction = "block"\n')
    result = subprocess.run([sys.executable, "-m", "tokentrace", "budget", "--budgets", str(budgets), "--ledger",
                             str(ledger), "--top", "2", "--format", "json"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows[0]["name"] == "per-user" and rows[0]["principals"] == 3
    assert [r["name"] for r in rows[1:]] == ["per-user[heavy]", "per-user[medium]"]
    assert rows[1]["used"] == pytest.approx(3 * CALL_USD / limit, rel=1e-6)


# --------------------------------------------------------------------------- a fleet

PRINCIPALS = 200
PRINCIPAL_LIMIT = 0.0034  # 25 calls of $0.000135; refusals start once less than an estimate ($0.000165) is left
VIP_LIMIT = 2 * PRINCIPAL_LIMIT

WORKER = textwrap.dedent("""
    import json, random, sys, threading, time
    import openai, tokentrace
    from tokentrace import Budget, BudgetExceeded
    from tokentrace.simulator import sync_client

    ledger, port, threads, prices, principals = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], \\
        int(sys.argv[5])
    far = {f"u{i}" for i in range(principals // 2, principals)} if sys.argv[6] == "mixed" else set()
    # the far half of a mixed run may spend 100 times as much: it never nears its limit, and stops at FAR_CALLS
    limits = {"u0": VIP, **{user: 100 * LIMIT for user in far}}
    budget = Budget("per-user", period="day", limit_usd=LIMIT, per="user_id", action="block", limits=limits)
    far_sent = {}
    tokentrace.instrument(ledger=ledger, prices=json.loads(prices), budgets=[budget])
    counts = {"sent": 0, "refused": 0}
    lock = threading.Lock()
    open_ = [f"u{i}" for i in range(principals)]  # a principal refused 3 times is left alone by this process
    refusals = {}

    def work(seed):
        client = openai.OpenAI(api_key="sk-test", base_url="https://api.openai.com/v1", max_retries=0,
                               http_client=sync_client(port))
        rng = random.Random(seed)
        while True:
            with lock:
                if not open_:
                    return
                user = rng.choice(open_)
            try:
                with tokentrace.attributes(user_id=user):
                    client.chat.completions.create(model="gpt-4o-mini", max_tokens=5,
                                                   messages=[{"role": "user", "content": "one two three"}])
                outcome = "sent"
            except BudgetExceeded:  # maybe only until the fleet's calls in flight for this user settle
                outcome = "refused"
                time.sleep(0.02)
            with lock:
                counts[outcome] += 1
                if user in far and outcome == "sent":
                    far_sent[user] = far_sent.get(user, 0) + 1
                    if far_sent[user] >= FAR_CALLS and user in open_:
                        open_.remove(user)
                if outcome == "refused":
                    refusals[user] = refusals.get(user, 0) + 1
                    if refusals[user] >= 3 and user in open_:
                        open_.remove(user)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    tokentrace.flush()
    print(json.dumps(counts), flush=True)
""").replace("LIMIT", repr(PRINCIPAL_LIMIT)).replace("VIP", repr(VIP_LIMIT)).replace("FAR_CALLS", "10")


_query = query_ledger


def _run_principal_fleet(ledger: str, port: int, processes: int, threads: int, mixed: bool = False
                         ) -> dict[str, float]:
    """Every principal spends until it is refused (in a mixed run, the far half spends 10 calls a process, far from
    its limit, while the near half runs into its own): no principal over its limit, each near one >= 95% used."""
    env = {**os.environ, "TOKENTRACE_RESERVATION_TTL_S": "5"}
    started = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, ledger, str(port), str(threads), json.dumps(PRICES),
                               str(PRINCIPALS), "mixed" if mixed else "near"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(processes)]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    spend = {user: float(usd) for user, usd in _query(
        ledger, "SELECT user_id, SUM(cost_usd) FROM llm_usage WHERE status = 'ok' GROUP BY user_id")}
    assert len(spend) == PRINCIPALS
    far = {f"u{i}" for i in range(PRINCIPALS // 2, PRINCIPALS)} if mixed else set()

    def limit(user: str) -> float:
        return VIP_LIMIT if user == "u0" else 100 * PRINCIPAL_LIMIT if user in far else PRINCIPAL_LIMIT

    over = {u: s for u, s in spend.items() if s > limit(u) + 1e-12}
    assert over == {}, f"principals over their limit: {over}"  # the guarantee: spend <= limit, per principal
    used = sorted(s / limit(u) for u, s in spend.items() if u not in far)
    assert used[0] >= 0.95, f"the least-used principal spent {used[0]:.1%} of its limit"
    assert spend["u0"] > PRINCIPAL_LIMIT  # the override was honoured
    sent = sum(o["sent"] for o in outcomes)
    assert _query(ledger, "SELECT COUNT(*) FROM llm_usage WHERE status = 'ok'")[0][0] == sent
    summary = {"calls": sent + sum(o["refused"] for o in outcomes), "refused": sum(o["refused"] for o in outcomes),
               "min_used": used[0], "median_used": used[len(used) // 2], "max_used": used[-1],
               "seconds": time.monotonic() - started}
    print(f"{processes} processes x {threads} threads, {PRINCIPALS} principals: {json.dumps(summary)}")
    return summary


def test_4_processes_x_4_threads_200_principals_each_within_its_own_limit_on_sqlite(simulator: Any,
                                                                                    tmp_path: Path) -> None:
    _run_principal_fleet(str(tmp_path / "usage.db"), simulator.port, processes=4, threads=4)


def test_4_processes_x_4_threads_200_principals_each_within_its_own_limit_on_postgresql(simulator: Any,
                                                                                        pg_ledger: str) -> None:
    _run_principal_fleet(pg_ledger, simulator.port, processes=4, threads=4)


def test_3_processes_x_4_threads_200_principals_on_postgresql_half_near_their_limits_half_far(
        simulator: Any, pg_ledger: str) -> None:
    """Admissions of principals far from their limits (leased) and near them (every call exact) at once, across
    the fleet: the near ones still end within and >= 95% of their limits, the far ones spend all they asked."""
    summary = _run_principal_fleet(pg_ledger, simulator.port, processes=3, threads=4, mixed=True)
    far_calls = dict(_query(pg_ledger, "SELECT user_id, COUNT(*) FROM llm_usage WHERE status = 'ok' AND user_id IN "
                                       f"({', '.join(repr(f'u{i}') for i in range(PRINCIPALS // 2, PRINCIPALS))}) "
                                       "GROUP BY user_id"))
    # each sent its 10 a process (a few more where threads of a process were calling it at once), none refused
    assert len(far_calls) == PRINCIPALS // 2 and min(far_calls.values()) >= 3 * 10, summary


def test_3_processes_x_4_threads_200_principals_all_near_their_limits_on_postgresql(simulator: Any,
                                                                                    pg_ledger: str) -> None:
    _run_principal_fleet(pg_ledger, simulator.port, processes=3, threads=4)


def test_get_usage_answers_one_principals_standing_when_identities_are_enabled(simulator: Any) -> None:
    from tokentrace.serving.usage import UsagePolicy, usage_response

    limit = 3 * CALL_USD + 0.00004
    make_telemetry(budgets=[Budget("per-user", limit_usd=limit, per="user_id", action="block")], prices=PRICES)
    with openai_client(simulator) as client:
        _call(client, user_id="alice")
    status, _, body = usage_response("user_id=alice", None, UsagePolicy(by_identity=True))
    answer = json.loads(body)
    assert status == 200 and answer["principal"] == {"user_id": "alice"}
    assert answer["budgets"][0]["name"] == "per-user[alice]"
    assert answer["budgets"][0]["spent_usd"] == pytest.approx(CALL_USD)
    status, _, body = usage_response("user_id=alice", None, UsagePolicy())
    assert status == 403 and b"names people" in body  # off unless enabled, as by=user is
    status, _, body = usage_response("tenant=acme", None, UsagePolicy(by_identity=True))
    assert status == 400 and b"or a principal (user_id)" in body


# --------------------------------------------------------------------------- rolling windows, request limits


@pytest.mark.parametrize("ledger", [False, "sqlite"])
def test_a_requests_per_minute_limit_stops_a_runaway_user_and_leaves_the_others(simulator: Any, tmp_path: Path,
                                                                               ledger: Any) -> None:
    budget = Budget("rpm", limit_requests=3, window="1m", per="user_id", action="block")
    make_telemetry(budgets=[budget], prices=PRICES, ledger=tmp_path / "usage.db" if ledger else False)
    with openai_client(simulator) as client:
        runaway = [_call(client, user_id="loop") for _ in range(5)]
        other = [_call(client, user_id="calm") for _ in range(2)]
    assert runaway == ["sent"] * 3 + ["refused"] * 2 and other == ["sent"] * 2
    with openai_client(simulator) as client, pytest.raises(BudgetExceeded, match=r"3 calls in the last 1m"):
        with tokentrace.attributes(user_id="loop"):
            client.chat.completions.create(model="gpt-4o-mini", max_tokens=5, messages=MESSAGES)


def test_a_rolling_window_forgets_spend_as_it_ages(simulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tokentrace import recorder

    clock = [1_000_000.0]
    monkeypatch.setattr(recorder, "_wall", lambda: clock[0])  # the clock calls are started (and budgets read) by
    budget = Budget("rolling", limit_usd=2 * CALL_USD + 0.00004, window="1h", action="block")
    make_telemetry(budgets=[budget], prices=PRICES)
    with openai_client(simulator) as client:
        first = [_call(client) for _ in range(3)]
        clock[0] += 3601  # the first calls leave the window
        later = [_call(client) for _ in range(3)]
    assert first == ["sent", "sent", "refused"] and later == ["sent", "sent", "refused"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"window": "fortnight"}, "window must be a length"),
    ({"window": "0m"}, "window must be a length"),
    ({"window": "40d"}, "window must be a length"),
    ({"limit_requests": -1}, "limit_requests must be an integer"),
    ({"limit_requests": 2.5}, "limit_requests must be an integer"),
])
def test_a_bad_window_or_request_limit_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(BudgetError, match=message):
        Budget("b", limit_usd=1.0, **kwargs)


def test_each_block_budget_counts_the_calls_it_admitted_and_refused(simulator: Any) -> None:
    limit = 2 * CALL_USD + 0.00004
    telemetry = make_telemetry(prices=PRICES, budgets=[
        Budget("per-user", limit_usd=limit, per="user_id", action="block"),
        Budget("all", limit_usd=1.0, action="block"),
        Budget("watch", limit_usd=1.0, action="warn")])
    with openai_client(simulator) as client:
        for user in ("a", "a", "a", "b"):
            _call(client, user_id=user)
    sample = telemetry.sample
    assert sample("llm_budget_decisions_total", budget="per-user", decision="admitted") == 3
    assert sample("llm_budget_decisions_total", budget="per-user", decision="blocked") == 1
    assert sample("llm_budget_decisions_total", budget="all", decision="admitted") == 3  # a refused call never
    assert sample("llm_budget_decisions_total", budget="all", decision="blocked") == 0   # reaches it as admitted
    assert telemetry.registry.get_sample_value("llm_budget_decisions_total",  # a warn budget decides nothing
                                               {"budget": "watch", "decision": "admitted"}) is None
