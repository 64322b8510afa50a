"""How the user ran tokentrace, so advice names a command that works as typed. Stdlib only."""

from __future__ import annotations

import os
import shutil
import sys


def command_name() -> str:
    """How to run tokentrace again as it was run now: ``tokentrace`` when that is on PATH, else the path the user
    typed (``.venv/bin/tokentrace`` after the README's commands, whose venv is not activated)."""
    invoked = sys.argv[0] if sys.argv and sys.argv[0] else "tokentrace"
    found = shutil.which("tokentrace")
    try:
        if found and os.path.samefile(found, invoked):
            return "tokentrace"
    except OSError:
        pass
    if os.path.basename(invoked) == "tokentrace" and os.path.exists(invoked):
        relative = os.path.relpath(invoked)
        if relative.startswith(".."):
            return invoked
        return relative if os.sep in relative else os.path.join(".", relative)
    return f"{os.path.basename(sys.executable)} -m tokentrace"
