"""genai-prices' model-name match clauses compiled once into plain predicates over a lower-cased name.

genai-prices evaluates a clause by lower-casing the name and every literal on each call; inferring the price of a
name at an unknown host asks every model entry of the table, so that cost is paid per entry per new name. Compiled
here, the literals are lower-cased once and each entry costs one string method call. Same answers as
``ModelInfo.is_match`` (``tests/test_pricing.py`` checks every entry of the bundled table). Stdlib only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[str], bool]
"""A compiled clause: True when the (already lower-cased) model name matches."""


def compile_clause(clause: Any) -> Predicate:
    """One genai-prices match clause as a predicate over a lower-cased name; an unknown clause kind is asked
    through its own ``is_match``."""
    if hasattr(clause, "equals"):
        return str(clause.equals).lower().__eq__
    if hasattr(clause, "starts_with"):
        prefix = str(clause.starts_with).lower()
        return lambda name: name.startswith(prefix)
    if hasattr(clause, "ends_with"):
        suffix = str(clause.ends_with).lower()
        return lambda name: name.endswith(suffix)
    if hasattr(clause, "contains"):
        part = str(clause.contains).lower()
        return lambda name: part in name
    if hasattr(clause, "regex"):
        pattern = re.compile(clause.regex)
        return lambda name: pattern.search(name) is not None
    if hasattr(clause, "or_"):
        alternatives = [compile_clause(c) for c in clause.or_]
        return lambda name: any(p(name) for p in alternatives)
    if hasattr(clause, "and_"):
        required = [compile_clause(c) for c in clause.and_]
        return lambda name: all(p(name) for p in required)
    return clause.is_match  # type: ignore[no-any-return]


def compile_snapshot(snapshot: Any) -> list[tuple[Any, Any, Predicate]]:
    """(provider, model entry, predicate) for every model entry of a genai-prices snapshot."""
    compiled = []
    for provider in getattr(snapshot, "providers", None) or ():
        for candidate in provider.models:
            try:
                predicate = compile_clause(candidate.match)
            except Exception:  # a clause this module cannot read: ask genai-prices itself
                predicate = candidate.is_match
            compiled.append((provider, candidate, predicate))
    return compiled
