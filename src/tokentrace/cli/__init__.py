"""The ``tokentrace`` command line; never imported by instrument()."""

from __future__ import annotations


def main() -> None:
    from .app import run

    run()
