"""MkDocs hooks: the site's home page is the README (its links made site-relative), the changelog is a page, and
the reference that must not drift is made from the code at build time: the environment table from
``tokentrace.config.ENVIRONMENT``, the Python API from every public name's signature and docstring, and the CLI
reference from the typer app's own help (at 80 columns)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    readme = re.sub(r"\]\(docs/([^)]+)\)", r"](\1)", readme).replace("](CHANGELOG.md)", "](changelog.md)")
    files.append(File.generated(config, "index.md", content=readme))
    files.append(File.generated(config, "changelog.md",
                                content=(ROOT / "CHANGELOG.md").read_text(encoding="utf-8")))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    generated = {"environment": environment_table, "api": api_reference, "cli": cli_reference}
    return re.sub(r"<!-- generated: (\w+) -->", lambda m: generated[m.group(1)](), markdown)


def environment_table() -> str:
    from tokentrace.config import ENVIRONMENT

    rows = [f"| `{name}` | {meaning} |" for name, meaning in ENVIRONMENT]
    return "\n".join(["| variable | meaning |", "|---|---|", *rows]) + "\n"


def _signature(name: str, obj: Any) -> str:
    """``name(...)`` with one parameter a line (a signature on one line scrolls sideways)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return name
    params = [str(p) for p in signature.parameters.values() if p.name != "self"]
    returns = "" if signature.return_annotation is inspect.Signature.empty else f" -> {signature.return_annotation}"
    if not params:
        return f"{name}(){returns}"
    return f"{name}(\n" + "".join(f"    {p},\n" for p in params) + f"){returns}"


def _public_members(cls: type) -> list[tuple[str, Any]]:
    """A class's own public methods and properties, in definition order."""
    return [(n, v) for n, v in vars(cls).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))]


def api_reference() -> str:
    """One section per name in ``tokentrace.__all__``: its signature (classes: their constructor and public methods)
    and its docstring, as the code has them."""
    import tokentrace

    parts: list[str] = []
    for name in tokentrace.__all__:
        obj = getattr(tokentrace, name)
        parts += [f"## `{name}`", ""]
        if inspect.isclass(obj):
            init = obj.__dict__.get("__init__")
            shown = _signature(f"tokentrace.{name}", init) if init is not None else f"class tokentrace.{name}"
            parts += ["```python", shown, "```", "", inspect.cleandoc(obj.__doc__ or ""), ""]
            for member, value in _public_members(obj):
                target = value.fget if isinstance(value, property) else value
                parts += [f"### `{name}.{member}`", "", "```python", _signature(member, target), "```", "",
                          inspect.cleandoc(getattr(target, "__doc__", None) or ""), ""]
        elif callable(obj):
            parts += ["```python", _signature(f"tokentrace.{name}", obj), "```", "",
                      inspect.cleandoc(obj.__doc__ or ""), ""]
        else:
            parts += ["```python", f"tokentrace.{name} = {obj!r}", "```", ""]
    return "\n".join(parts)


def cli_reference() -> str:
    import click
    import typer

    from tokentrace.cli.app import app

    command = typer.main.get_command(app)
    parts: list[str] = []
    with click.Context(command, info_name="tokentrace", terminal_width=80) as root:
        parts += ["## tokentrace", "", "```text", command.get_help(root).strip(), "```", ""]
        for name in sorted(getattr(command, "commands", {})):
            sub = command.commands[name]  # type: ignore[attr-defined]
            with click.Context(sub, info_name=name, parent=root, terminal_width=80) as ctx:
                parts += [f"## tokentrace {name}", "", "```text", sub.get_help(ctx).strip(), "```", ""]
    return "\n".join(parts)
