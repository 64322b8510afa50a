"""Real Prometheus and Alertmanager servers for the end-to-end tests: binaries, free ports, polling."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .missing import missing

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "grafana" / "dashboards" / "tokentrace.json"
RULES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))
T = TypeVar("T")

# what Grafana would substitute when every variable is "All"
GRAFANA_VARIABLES = {
    "$provider": ".*", "$model": ".*", "$feature": ".*",
    "$__rate_interval": "30s", "$__range": "10m", "$__interval": "5s", "${datasource}": "prometheus",
}


def binary(*names: str) -> str:
    """The first of ``names`` on PATH (Alertmanager is ``prometheus-alertmanager`` on Debian, else ``alertmanager``)."""
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    missing(f"{' / '.join(names)} is not installed (apt-get install -y prometheus prometheus-alertmanager; "
            ".ci/run does)")


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana variables substituted) for every panel of the shipped dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((panel["title"], expr))
    return queries


def metric_names_in(expr: str) -> set[str]:
    """Metric names (not functions, labels or recording rules) used by a PromQL expression."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_selectors = re.sub(r"\{[^}]*\}", "", without_strings)
    without_grouping = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_selectors)
    tokens = set(re.findall(r"\b[a-zA-Z_][a-zA-Z0-9_:]*\b(?!\s*\()", without_grouping))
    keywords = {"by", "without", "on", "ignoring", "and", "or", "unless", "offset", "bool", "le", "group_left",
                "group_right", "inf", "nan"}
    return {t for t in tokens if t not in keywords and not re.fullmatch(r"\d+[smhdwy]?", t)}


def poll(what: str, probe: Callable[[], T | None], timeout: float = 60.0, every: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result:
                return result
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last_error = exc
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error})")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def prom_query(base: str, expr: str) -> list[Any]:
    data = get_json(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    assert data["status"] == "success", data
    return list(data["data"]["result"])


class Server:
    """A background server process that is always stopped (and whose output is kept for failures)."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._file = log.open("w")
        self.process = subprocess.Popen(args, stdout=self._file, stderr=subprocess.STDOUT, env=env)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._file.close()

    def output(self) -> str:
        return self.log.read_text()[-3000:]
