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


def snapshot_from_raw(raw: Any) -> Any:
    """A genai-prices snapshot from the JSON genai-prices publishes (a list of providers), its prices checked."""
    from genai_prices import data_snapshot, types

    if not isinstance(raw, list) or not raw:
        raise RefreshError("a price table must be a non-empty JSON list of providers")
    _check_prices(raw)
    return data_snapshot.DataSnapshot(types._providers_from_raw(raw), from_auto_update=True)


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
