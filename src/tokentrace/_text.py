"""Text that every sink can write: strings from users and providers made encodable once, where they enter.

A lone surrogate (``os.fsdecode(b"report-\\xff.pdf")``, or a provider's odd ``model``) cannot be encoded as UTF-8,
so SQLite, PostgreSQL, the Prometheus exposition and OTLP would all fail on it. It is kept visible as an escape
(``report-\\udcff.pdf``) instead.
"""

from __future__ import annotations


def encodable(value: str) -> str:
    """``value`` itself when it encodes as UTF-8 (the fast, usual case), else with the offending code points
    written as backslash escapes."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def encodable_or_none(value: str | None) -> str | None:
    return None if value is None else encodable(value)
