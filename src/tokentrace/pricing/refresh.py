"""The newest genai-prices table on demand: fetched only when the user runs ``tokentrace prices --refresh``,
checked, and stored in tokentrace's data directory, where every later ``PriceTable`` reads it (a local file)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

REFRESHED_TABLE_NAME = "prices.json"
"""``tokentrace prices --refresh`` stores the fetched table under this name in tokentrace's data directory."""


class RefreshError(ValueError):
    """The newest price table could not be fetched or read."""


def refreshed_table_path() -> Path:
    """Where ``tokentrace prices --refresh`` keeps the newest price table: tokentrace's data directory."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tokentrace" / REFRESHED_TABLE_NAME


MAX_TABLE_BYTES = 32 * 1024 * 1024
"""A published table is a few MB; a larger download is refused as it arrives (never held whole)."""
MAX_PRICE = 1_000_000.0
"""No price in a table is above this many USD (per million tokens, per thousand requests): a larger one is a
mistake or an attack, and one bad number would refuse every call under a block budget."""


def _check_prices(value: Any, where: str = "") -> None:
    """Every number under a ``prices`` object: finite, >= 0 and at most MAX_PRICE (the checks override files get)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_prices(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_prices(item, f"{where}[{index}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and ".prices" in f".{where}":
        is_threshold = where.rpartition(".")[2] in ("start", "threshold")  # a tier's token count, not a price
        finite = isinstance(value, int) or math.isfinite(value)  # a 400-digit int is exact, and too large below
        if not finite or value < 0 or (value > MAX_PRICE and not is_threshold):
            raise RefreshError(f"price {where} is {value!r}: prices must be finite, >= 0 and <= {MAX_PRICE:,.0f}")


def _check_patterns(value: Any, where: str = "") -> None:
    """Every ``regex`` match clause: one that can backtrack catastrophically (a repeat inside a repeat, or over
    alternatives) is refused: a model name is matched on the first call of each day, on the caller's thread."""
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{where}.{key}" if where else str(key)
            if key == "regex" and isinstance(item, str):
                problem = backtracking(item)
                if problem:
                    raise RefreshError(f"model match {here} = {item[:80]!r}: {problem}; refused")
            else:
                _check_patterns(item, here)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_patterns(item, f"{where}[{index}]")


def backtracking(pattern: str) -> str | None:
    """Why ``pattern`` can take exponential time on some name (a quantified group that holds a quantifier or
    alternatives, as in ``^([a-z0-9.-]+)*@$``), or None. Patterns longer than 1,000 characters are refused too."""
    import re._parser as sre_parse  # the standard library's own parser of regular expressions

    if len(pattern) > 1000:
        return "longer than 1,000 characters"
    try:
        parsed = sre_parse.parse(pattern)
    except Exception as exc:
        return f"not a regular expression ({exc})"
    repeats = {sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, getattr(sre_parse, "POSSESSIVE_REPEAT", None)}

    def nested(items: Any, inside_repeat: bool) -> bool:
        for op, arg in items:
            if op in repeats:
                _, high, body = arg
                unbounded = high == sre_parse.MAXREPEAT or high > 16
                if inside_repeat and unbounded:
                    return True
                if nested(body, inside_repeat or unbounded):
                    return True
            elif op is sre_parse.SUBPATTERN:
                if nested(arg[-1], inside_repeat):
                    return True
            elif op is sre_parse.BRANCH:
                if inside_repeat and len(arg[1]) > 1:
                    return True
                if any(nested(branch, inside_repeat) for branch in arg[1]):
                    return True
        return False

    return "a repeat inside a repeat can backtrack without end" if nested(parsed, False) else None


def _check_no_paid_model_turned_free(snapshot: Any) -> None:
    """A refreshed table may not make a model free that the bundled table charges for (one zero would turn every
    call of it into $0 and let it past every budget)."""
    from datetime import UTC, datetime

    from genai_prices import data_snapshot

    now = datetime.now(UTC)
    bundled = {(p.id, m.id): m for p in data_snapshot.get_snapshot().providers for m in p.models}
    for provider in snapshot.providers:
        for model in provider.models:
            before = bundled.get((provider.id, model.id))
            if before is None:
                continue
            try:
                old, new = before.get_prices(now), model.get_prices(now)
            except Exception:
                continue
            if _charges(old) and not _charges(new):
                raise RefreshError(f"model {provider.id}/{model.id} would cost nothing (the bundled table charges "
                                   "for it); refused")


def _charges(price: Any) -> bool:
    return any(getattr(price, name, None) for name in ("input_mtok", "output_mtok"))


def snapshot_from_raw(raw: Any) -> Any:
    """A genai-prices snapshot from the JSON genai-prices publishes (a list of providers), its prices checked, its
    match patterns checked, and no paid model made free."""
    from genai_prices import data_snapshot, types

    if not isinstance(raw, list) or not raw:
        raise RefreshError("a price table must be a non-empty JSON list of providers")
    _check_prices(raw)
    _check_patterns(raw)
    snapshot = data_snapshot.DataSnapshot(types._providers_from_raw(raw), from_auto_update=True)
    _check_no_paid_model_turned_free(snapshot)
    return snapshot


def _download(source: str, timeout: float) -> bytes:
    import httpx2

    with httpx2.stream("GET", source, timeout=timeout, follow_redirects=True) as response:
        response.raise_for_status()
        parts, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_TABLE_BYTES:
                raise RefreshError(f"the price table at {source} is larger than {MAX_TABLE_BYTES >> 20} MiB; refused")
            parts.append(chunk)
    return b"".join(parts)


def refresh_table(url: str | None = None, path: Path | None = None, timeout: float = 30.0, *,
                  allow_http: bool = False) -> tuple[Path, int]:
    """Fetch genai-prices' newest table (an explicit, user-run network call), check it, store it atomically.

    Returns (where it was stored, how many models it prices). Raises RefreshError when it cannot be fetched or read,
    for a plain ``http://`` URL unless ``allow_http``, a body over MAX_TABLE_BYTES or a price out of bounds.
    """
    from genai_prices.update_prices import DEFAULT_UPDATE_URL

    source = url or DEFAULT_UPDATE_URL
    if not source.startswith("https://") and not (allow_http and source.startswith("http://")):
        raise RefreshError(f"refusing to fetch prices from {source}: every cost is computed from this table, so it "
                           "must come over https:// (--allow-http for a trusted local mirror)")
    target = path or refreshed_table_path()
    try:
        raw = json.loads(_download(source, timeout))
        snapshot = snapshot_from_raw(raw)
    except RefreshError:
        raise
    except Exception as exc:
        raise RefreshError(f"cannot refresh prices from {source}: {exc}") from None
    if not target.parent.exists():
        target.parent.mkdir(mode=0o700, parents=True)  # readable by its owner only, like the ledger
    target.parent.chmod(target.parent.stat().st_mode & 0o700 | 0o700)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(raw), encoding="utf-8")
    os.replace(partial, target)
    return target, sum(len(p.models) for p in snapshot.providers)
