"""ruff is clean on the whole tree (configured in pyproject.toml)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from .missing import missing

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        missing("ruff is not installed (it comes with the test extra)")
    result = subprocess.run([ruff, "check", "src", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    mypy = Path(sys.executable).with_name("mypy")
    if not mypy.exists():
        missing("mypy is not installed (it comes with the test extra)")
    result = subprocess.run([str(mypy)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _import_graph() -> dict[str, set[str]]:
    """Module -> the tokentrace modules it imports anywhere (top level, TYPE_CHECKING blocks and functions)."""
    package = ROOT / "src" / "tokentrace"

    def module_name(path: Path) -> str:
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {module_name(p): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else [])) \
                    if node.level else (node.module or "")
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    edges.add(full if full in modules else base)
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def test_no_import_cycle_in_the_package_type_checking_and_lazy_imports_included() -> None:
    graph = _import_graph()
    assert len(graph) > 40 and "tokentrace.sinks.otel" in graph["tokentrace.instrumentation.instrumentor"]
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == []


PACKAGES = ("budgets", "ledger", "pricing", "providers", "wire", "sinks", "cli", "simulator", "serving",
            "instrumentation", "reconcile", "frameworks")
ALLOWED: dict[str, set[str]] = {
    "pricing": {"_usage", "_registry", "_support"},
    "providers": {"_usage", "_support", "_registry"},
    "budgets": {"ledger", "pricing", "_support", "_usage", "_registry"},
    "ledger": {"budgets", "config", "_support", "_usage"},
    "sinks": {"budgets", "ledger", "pricing", "config", "_support", "_registry", "_usage", "_version"},
    "wire": {"budgets", "instrumentation", "providers", "recorder", "context", "_support", "_registry", "_usage"},
    "serving": {"ledger", "budgets", "_support"},
    "frameworks": {"instrumentation", "_support"},
    "reconcile": {"ledger", "pricing"},
    "simulator": set(),
    "_support": set(),
    "recorder": {"budgets", "pricing", "sinks", "context", "_support", "_usage"},
}
"""Which package (or top-level module) may import which: the layout's dependency rules, read on every run from the
imports anywhere in each module (top level, TYPE_CHECKING blocks, functions). ``instrumentation`` (the composition
root) may import any package but ``cli``; ``cli`` may import anything; nothing else imports ``cli`` or
``instrumentation`` (the wire layer's hooks read the active recorder from ``instrumentation.wrappers``; the wire
layer and the framework adapters patch through ``instrumentation.patching``)."""
SINK_HELPERS = {"tokentrace.sinks", "tokentrace.sinks.semconv", "tokentrace.sinks.cardinality",
                "tokentrace.sinks.prometheus_values", "tokentrace.sinks.prometheus_multiprocess"}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_each_package_imports_only_what_the_layout_allows() -> None:
    graph = _import_graph()
    assert {_part(m) for m in graph} >= set(PACKAGES)
    problems = []
    for module, targets in graph.items():
        here = _part(module)
        for target in targets:
            there = _part(target)
            if there == here:
                continue
            if there == "cli" and here not in ("cli", "__main__"):
                problems.append(f"{module} imports the CLI ({target})")
            if there == "instrumentation" and here not in ("instrumentation", "wire", "frameworks", "", "testing"):
                problems.append(f"{module} imports the composition root ({target})")
            if here in ALLOWED and there not in ALLOWED[here]:
                problems.append(f"{module} ({here}) may not import {target} ({there})")
            if there == "simulator" and here not in ("cli", "simulator"):
                problems.append(f"{module} imports the simulator ({target})")
    assert problems == []


def test_sinks_and_providers_never_import_the_recorder_or_each_other() -> None:
    graph = _import_graph()
    for module, targets in graph.items():
        if module.startswith("tokentrace.sinks.") and module not in SINK_HELPERS:
            assert not {t for t in targets if t.startswith(("tokentrace.sinks.", "tokentrace.providers"))
                        and t not in SINK_HELPERS}, module
            assert "tokentrace.recorder" not in targets, module
        if module.startswith("tokentrace.providers."):
            assert not {t for t in targets if t.startswith("tokentrace.") and not t.startswith(
                "tokentrace.providers") and t not in ("tokentrace._usage", "tokentrace._support.errors",
                                                      "tokentrace._registry")}, module
    concrete = {"tokentrace.budgets", "tokentrace.sinks.budget", "tokentrace.budgets.store"}
    assert concrete.isdisjoint(graph["tokentrace.recorder"])
    assert concrete.isdisjoint(graph["tokentrace.instrumentation.wrappers"])


def test_what_a_build_or_a_run_writes_is_ignored_by_git() -> None:
    """The docs site, the CI's venvs and their logs never show up as changes to commit."""
    paths = ["site/index.html", ".venv-oldest/bin/python", ".venv-fw-openai3/bin/python", ".venv-fw-adk.log",
             ".venv-phoenix/bin/phoenix", ".venv-phoenix.log"]
    result = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.split() == paths
