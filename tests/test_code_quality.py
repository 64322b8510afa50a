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
    assert len(graph) > 40 and "tokentrace.sinks.otel" in graph["tokentrace._instrumentor"]
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


def test_layering_sinks_and_providers_never_import_the_recorder_or_each_other() -> None:
    graph = _import_graph()
    for module, targets in graph.items():
        if module.startswith("tokentrace.sinks."):
            assert not {t for t in targets if t.startswith(("tokentrace.sinks.", "tokentrace.providers"))}, module
            assert "tokentrace.recorder" not in targets, module
        if module.startswith("tokentrace.providers."):
            assert not {t for t in targets if t.startswith("tokentrace.") and not t.startswith(
                "tokentrace.providers") and t not in ("tokentrace._usage", "tokentrace._errors",
                                                      "tokentrace._registry")}, module
    assert {"tokentrace.budgets", "tokentrace.sinks.budget"}.isdisjoint(graph["tokentrace.recorder"])
    assert {"tokentrace.budgets", "tokentrace.sinks.budget"}.isdisjoint(graph["tokentrace._wrappers"])
