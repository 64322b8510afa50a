"""MkDocs hooks: the site's home page is the README (its links made site-relative), the changelog is a page, and
the reference that must not drift is made from the code at build time: the environment table from
``tokentrace.config.ENVIRONMENT``, ``instrument()``'s parameters from its signature and docstring, and the CLI
reference from the typer app's own help."""

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
    generated = {"environment": environment_table, "instrument": instrument_reference, "cli": cli_reference}
    return re.sub(r"<!-- generated: (\w+) -->", lambda m: generated[m.group(1)](), markdown)


def environment_table() -> str:
    from tokentrace.config import ENVIRONMENT

    rows = [f"| `{name}` | {meaning} |" for name, meaning in ENVIRONMENT]
    return "\n".join(["| variable | meaning |", "|---|---|", *rows]) + "\n"


def instrument_reference() -> str:
    import tokentrace

    signature = inspect.signature(tokentrace.instrument)
    lines = ["```python", f"tokentrace.instrument{signature}", "```", "",
             inspect.cleandoc(tokentrace.instrument.__doc__ or "")]
    return "\n".join(lines) + "\n"


def cli_reference() -> str:
    import click
    import typer

    from tokentrace.cli.app import app

    command = typer.main.get_command(app)
    parts: list[str] = []
    with click.Context(command, info_name="tokentrace", terminal_width=100) as root:
        parts += ["## tokentrace", "", "```text", command.get_help(root).strip(), "```", ""]
        for name in sorted(getattr(command, "commands", {})):
            sub = command.commands[name]  # type: ignore[attr-defined]
            with click.Context(sub, info_name=name, parent=root, terminal_width=100) as ctx:
                parts += [f"## tokentrace {name}", "", "```text", sub.get_help(ctx).strip(), "```", ""]
    return "\n".join(parts)
