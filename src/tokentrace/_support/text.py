"""Text that every sink can write: strings from users and providers made encodable once, where they enter; and
the one way a cost in USD is printed (``usd``).

A lone surrogate (``os.fsdecode(b"report-\\xff.pdf")``, or a provider's odd ``model``) cannot be encoded as UTF-8,
so SQLite, PostgreSQL, the Prometheus exposition and OTLP would all fail on it. It is kept visible as an escape
(``report-\\udcff.pdf``) instead.
"""

from __future__ import annotations


def encodable(value: str) -> str:
    """``value`` itself when it encodes as UTF-8 and holds no NUL (the fast, usual case), else with the offending
    code points written as backslash escapes (a NUL as ``\\x00``: PostgreSQL text and JSON columns cannot hold one)."""
    if "\x00" in value:
        value = value.replace("\x00", "\\x00")
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


MAX_ATTRIBUTE_CHARS = 512
"""An attribution value (``user_id``, ``session_id``, ``tenant``, ...) longer than this is stored as its first
characters and a hash of the whole: every database index, label and key can hold it (PostgreSQL's B-tree entries
stop at 8,191 bytes), and two long values stay distinct."""


def bounded(value: str, limit: int = MAX_ATTRIBUTE_CHARS) -> str:
    """``encodable(value)`` of at most ``limit`` characters: a longer one keeps its start and ``~`` + 16 hex digits
    of its SHA-256, so distinct values stay distinct."""
    value = encodable(value)
    if len(value) <= limit:
        return value
    import hashlib

    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
    return f"{value[:limit - 17]}~{digest}"


def encodable_or_none(value: str | None) -> str | None:
    return None if value is None else encodable(value)


def usd(value: float) -> str:
    """A cost as every tokentrace message and table prints it: ``$0.000062`` under a dollar, ``$12.35`` above.

    Rounded to 1e-10 first, so one spend summed in two orders (a budget's running total, a report's SQL SUM)
    prints the same figure even at a half-way digit.
    """
    value = round(value, 10)
    if 0 < abs(value) < 0.000001:  # a test-sized limit: its own digits, never "$0.000000" or "$1e-07"
        return f"${value:.10f}".rstrip("0")
    return f"${value:,.6f}" if abs(value) < 1 else f"${value:,.2f}"
