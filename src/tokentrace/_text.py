"""Text that every sink can write: strings from users and providers made encodable once, where they enter; and
the one way a cost in USD is printed (``usd``).

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


def usd(value: float) -> str:
    """A cost as every tokentrace message and table prints it: ``$0.000062`` under a dollar, ``$12.35`` above.

    Rounded to 1e-10 first, so one spend summed in two orders (a budget's running total, a report's SQL SUM)
    prints the same figure even at a half-way digit.
    """
    value = round(value, 10)
    return f"${value:,.6f}" if abs(value) < 1 else f"${value:,.2f}"
