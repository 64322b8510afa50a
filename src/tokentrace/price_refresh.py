"""The newest genai-prices table on demand: fetched only when the user runs ``tokentrace prices --refresh``,
checked, and stored in tokentrace's data directory, where every later ``PriceTable`` reads it (a local file)."""

from __future__ import annotations

import json
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


def snapshot_from_raw(raw: Any) -> Any:
    """A genai-prices snapshot from the JSON genai-prices publishes (a list of providers)."""
    from genai_prices import data_snapshot, types

    if not isinstance(raw, list) or not raw:
        raise RefreshError("a price table must be a non-empty JSON list of providers")
    return data_snapshot.DataSnapshot(types._providers_from_raw(raw), from_auto_update=True)


def refresh_table(url: str | None = None, path: Path | None = None, timeout: float = 30.0) -> tuple[Path, int]:
    """Fetch genai-prices' newest table (an explicit, user-run network call), check it, store it atomically.

    Returns (where it was stored, how many models it prices). Raises RefreshError when it cannot be fetched or read.
    """
    import httpx2
    from genai_prices.update_prices import DEFAULT_UPDATE_URL

    source = url or DEFAULT_UPDATE_URL
    target = path or refreshed_table_path()
    try:
        response = httpx2.get(source, timeout=timeout, follow_redirects=True)
        response.raise_for_status()
        raw = json.loads(response.content)
        snapshot = snapshot_from_raw(raw)
    except RefreshError:
        raise
    except Exception as exc:
        raise RefreshError(f"cannot refresh prices from {source}: {exc}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(raw), encoding="utf-8")
    os.replace(partial, target)
    return target, sum(len(p.models) for p in snapshot.providers)
