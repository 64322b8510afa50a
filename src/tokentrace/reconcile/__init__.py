"""Reconciliation with the provider's bill: the provider's own usage and cost reports (``provider_reports``) set
beside the ledger by UTC day and model (and project / API key when asked), with a verdict per row.

Verdicts: ``matched`` (dollars within the tolerance), ``mismatch``, ``unseen`` (the provider billed what the ledger
never saw), ``ledger_only`` (the ledger has calls the provider's report does not), ``pending`` (the provider's day is
not final yet). The ledger side is the rows of that provider (``openai``: calls to OpenAI itself; ``anthropic``:
Anthropic's own API, not Bedrock or Vertex AI), with ``project`` and ``api_key`` read from the attribution keys of the
same name. Models are matched by name, a dated snapshot on one side matching its undated name on the other.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..pricing import undated_names
from .provider_reports import ProviderRow, ReconcileError, Window, anthropic_rows, day_window, openai_rows

__all__ = ["KEY_VARIABLES", "VERDICTS", "ReconcileError", "reconcile"]

KEY_VARIABLES = {"openai": "OPENAI_ADMIN_KEY", "anthropic": "ANTHROPIC_ADMIN_KEY"}
"""Where each provider's admin key is read from (never printed, logged or stored)."""
VERDICTS = ("matched", "mismatch", "unseen", "ledger_only", "pending")
DIMENSIONS = ("day", "model", "project", "api_key")
DEFAULT_TOLERANCE_PCT = 1.0
MICRO_USD = 1e-6
"""Dollar differences below a micro-dollar always match (sums of floating-point figures)."""


def reconcile(provider: str, window_start: datetime, window_end: datetime, *, by: Sequence[str] = ("day", "model"),
              tolerance_pct: float = DEFAULT_TOLERANCE_PCT, base_url: str | None = None,
              ledger: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The report ``tokentrace reconcile --format json`` prints. Raises ReconcileError with one line."""
    if provider not in KEY_VARIABLES:
        raise ReconcileError(f"--provider must be one of {', '.join(KEY_VARIABLES)}, not {provider!r}")
    unknown = [b for b in by if b not in DIMENSIONS]
    if unknown:
        raise ReconcileError(f"--by takes {', '.join(DIMENSIONS)}, not {unknown[0]!r}")
    if window_start >= window_end:
        raise ReconcileError("the window is empty: --from must be before --to")
    if base_url is not None and not base_url.startswith(("https://", "http://")):
        raise ReconcileError(f"--base-url must be an http(s) URL, not {base_url[:60]!r}")
    key = os.environ.get(KEY_VARIABLES[provider], "").strip()
    if not key:
        raise ReconcileError(f"set {KEY_VARIABLES[provider]} to an admin key of the organisation (it is read from "
                             "the environment only, and never printed or stored)")
    window = day_window(window_start, window_end)
    extra = tuple(b for b in by if b in ("project", "api_key"))
    ledger_rows = _ledger_rows(provider, window, extra, ledger)
    fetch = openai_rows if provider == "openai" else anthropic_rows
    provider_rows = fetch(key, window, extra, base_url)
    rows = _compare(provider_rows, ledger_rows, tuple(by), tolerance_pct)
    return {"provider": provider, "from": window.start.date().isoformat(), "to": window.end.date().isoformat(),
            "by": list(by), "tolerance_pct": tolerance_pct, "rows": rows, "totals": _totals(rows)}


def _ledger_rows(provider: str, window: Window, extra: tuple[str, ...],
                 ledger: str | os.PathLike[str] | None) -> list[ProviderRow]:
    """The ledger's calls to ``provider`` in the window, summed by UTC day, model and the asked dimensions."""
    from ..ledger.reports import ReportError, open_ledger

    try:
        db, where = open_ledger(ledger)
    except ReportError as exc:
        raise ReconcileError(str(exc)) from None
    try:
        first = db.execute("SELECT MIN(ts_utc) FROM llm_usage WHERE provider = ?", (provider,)).fetchone()[0]
        if first is None or str(first) >= _iso(window.end):
            began = f"began on {str(first)[:10]}" if first else f"has no {provider} call"
            raise ReconcileError(f"the ledger at {where} {began}: the window {window.start.date()} to "
                                 f"{window.end.date()} is before it, so there is nothing to set beside the bill")
        keys = ["substr(ts_utc, 1, 10)", "model"]
        params: list[Any] = []
        for name in extra:
            keys.append(db.json_field("attributes_json"))
            params.append(name)
        selected = ", ".join(keys)
        query = (f"SELECT {selected}, COALESCE(SUM(total_tokens), 0), COALESCE(SUM(cost_usd), 0) FROM llm_usage "
                 f"WHERE provider = ? AND ts_utc >= ? AND ts_utc < ? AND status IN ('ok', 'error') "
                 f"GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}")
        found = db.execute(query, [*params, provider, _iso(window.start), _iso(window.end)]).fetchall()
    finally:
        db.close()
    rows = []
    for row in found:
        values = dict(zip(extra, row[2:2 + len(extra)], strict=True))
        rows.append(ProviderRow(str(row[0]), str(row[1]), values.get("project"), values.get("api_key"),
                                int(row[-2] or 0), float(row[-1] or 0.0), True))
    return rows


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _base(model: str) -> str:
    """A model's undated name (``gpt-4o-mini-2024-07-18`` -> ``gpt-4o-mini``), or the name itself."""
    undated = undated_names(model.lower())
    return undated[-1] if undated else model


def _group(row: ProviderRow, by: tuple[str, ...], model: str) -> tuple[Any, ...]:
    values = {"day": row.day, "model": model, "project": row.project, "api_key": row.api_key}
    return tuple(values[b] for b in by)


def _compare(provider: list[ProviderRow], ledger: list[ProviderRow], by: tuple[str, ...],
             tolerance_pct: float) -> list[dict[str, Any]]:
    names = {"provider": {r.model for r in provider}, "ledger": {r.model for r in ledger}}
    bases = {side: {_base(m) for m in models} for side, models in names.items()}

    def key(row: ProviderRow, side: str) -> tuple[Any, ...]:
        """A name both sides use stays; a snapshot whose undated name the other side also reaches meets it there;
        any other keeps its own name."""
        other = "ledger" if side == "provider" else "provider"
        model = row.model
        if model not in names[other] and _base(model) in bases[other]:
            model = _base(model)
        return _group(row, by, model)

    sides: dict[tuple[Any, ...], dict[str, Any]] = {}
    for side, rows in (("provider", provider), ("ledger", ledger)):
        for row in rows:
            entry = sides.setdefault(key(row, side), {"provider_usd": 0.0, "ledger_usd": 0.0, "provider_tokens": 0,
                                                "ledger_tokens": 0, "final": True, "provider_seen": False,
                                                "ledger_seen": False})
            entry[f"{side}_usd"] += row.usd
            entry[f"{side}_tokens"] += row.tokens
            entry[f"{side}_seen"] = True
            if side == "provider":
                entry["final"] = entry["final"] and row.final
    result = []
    for group, entry in sorted(sides.items(), key=lambda item: tuple(str(v) for v in item[0])):
        provider_usd, ledger_usd = round(entry["provider_usd"], 10), round(entry["ledger_usd"], 10)
        if not entry["final"]:
            verdict = "pending"
        elif not entry["provider_seen"] or (provider_usd == 0 and entry["provider_tokens"] == 0):
            verdict = "ledger_only" if ledger_usd or entry["ledger_tokens"] else "matched"
        elif not entry["ledger_seen"] or (ledger_usd == 0 and entry["ledger_tokens"] == 0):
            verdict = "unseen"
        elif abs(provider_usd - ledger_usd) <= max(MICRO_USD, abs(provider_usd) * tolerance_pct / 100):
            verdict = "matched"
        else:
            verdict = "mismatch"
        result.append({**dict(zip(by, group, strict=True)), "ledger_usd": ledger_usd, "provider_usd": provider_usd,
                       "ledger_tokens": entry["ledger_tokens"], "provider_tokens": entry["provider_tokens"],
                       "verdict": verdict})
    return result


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    provider_usd = sum(r["provider_usd"] for r in rows)
    ledger_usd = sum(r["ledger_usd"] for r in rows)
    unseen = sum(r["provider_usd"] if r["verdict"] == "unseen" else
                 max(r["provider_usd"] - r["ledger_usd"], 0.0) if r["verdict"] == "mismatch" else 0.0 for r in rows)
    counts = {verdict: sum(1 for r in rows if r["verdict"] == verdict) for verdict in VERDICTS}
    return {"ledger_usd": round(ledger_usd, 10), "provider_usd": round(provider_usd, 10),
            "unseen_usd": round(unseen, 10), "gap_pct": round(unseen / provider_usd * 100, 4) if provider_usd else 0.0,
            "rows": counts}
