"""The provider's own usage and cost reports, read with an admin key: OpenAI's organisation Usage and Costs APIs,
Anthropic's Usage and Cost Analytics API (its legacy usage and cost reports for organisations still on them).

Each is read page by page into ``ProviderRow`` (UTC day, model, project, API key; tokens and USD), with the standard
library's HTTP client (no dependency, no SDK). The admin key is sent only as the header the provider asks for and
never appears in a message. Anything that stops the read (a refused key, a 429, an outage, an odd answer) is a
``ReconcileError`` with one line that says which.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

OPENAI_URL = "https://api.openai.com"
ANTHROPIC_URL = "https://api.anthropic.com"
ANALYTICS_BETA = "analytics-usage-cost-2026-08-24"
OPENAI_USAGE_KINDS = ("completions", "embeddings", "images", "audio_speeches", "audio_transcriptions")
TIMEOUT_S = 30.0
MAX_PAGES = 1000
"""A report of more pages than this is refused (a provider that never says it is done)."""


class ReconcileError(Exception):
    """The reports cannot be read (or the window is wrong): one line for the user, exit code 2."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status the provider answered, when it answered one."""


@dataclass(frozen=True, slots=True)
class ProviderRow:
    """What the provider reports for one UTC day and group."""

    day: str
    model: str
    project: str | None
    api_key: str | None
    tokens: int
    usd: float
    final: bool
    """The provider's figures for this day are complete (its bucket ended before the report was read)."""


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime
    """Exclusive."""


def _get(base_url: str, path: str, query: list[tuple[str, str]], headers: dict[str, str]) -> dict[str, Any]:
    url = base_url.rstrip("/") + path + "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url, headers={"accept": "application/json", "user-agent": "tokentrace-reconcile",
                                                   **headers})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise ReconcileError(_refusal(exc.code, path), exc.code) from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ReconcileError(f"could not reach {base_url} ({reason}); the provider may be down, try again later") \
            from None
    try:
        answer = json.loads(body)
    except ValueError:
        raise ReconcileError(f"{base_url}{path} did not answer JSON") from None
    if not isinstance(answer, dict):
        raise ReconcileError(f"{base_url}{path} answered something other than a report")
    return answer


def _refusal(status: int, path: str) -> str:
    if status in (401, 403):
        return f"the provider refused the admin key ({status} on {path}): check that it is an admin key of the " \
               "organisation"
    if status == 429:
        return f"the provider is rate limiting the usage reports (429 on {path}); try again in a minute"
    if status == 404:
        return f"the provider has no report at {path} (404)"
    if status >= 500:
        return f"the provider's reports are failing ({status} on {path}); try again later"
    return f"the provider refused the report request ({status} on {path})"


def _pages(base_url: str, path: str, query: list[tuple[str, str]], headers: dict[str, str]) -> Iterator[Any]:
    page: str | None = None
    for _ in range(MAX_PAGES):
        answer = _get(base_url, path, query + ([("page", page)] if page else []), headers)
        yield answer
        page = answer.get("next_page")
        if not answer.get("has_more") or not page:
            return
    raise ReconcileError(f"{path}: more than {MAX_PAGES} pages; ask for a shorter window")


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def _number(value: Any) -> float:
    try:
        return float(Decimal(str(value))) if value is not None else 0.0
    except (InvalidOperation, ValueError):
        return 0.0


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def _closed(end_time: Any) -> bool:
    """A bucket (its end in Unix seconds) that ended by the time its page arrived: its figures are final."""
    return _count(end_time) <= datetime.now(UTC).timestamp()


# --------------------------------------------------------------------------- OpenAI

_OPENAI_GROUPS = {"project": "project_id", "api_key": "api_key_id"}


def openai_rows(key: str, window: Window, by: tuple[str, ...], base_url: str | None = None) -> list[ProviderRow]:
    """Tokens from ``/v1/organization/usage/{kind}`` (every kind, grouped by model), USD from
    ``/v1/organization/costs`` (grouped by line item, whose name starts with the model)."""
    base = base_url or OPENAI_URL
    headers = {"authorization": f"Bearer {key}"}
    extra = [_OPENAI_GROUPS[b] for b in by if b in _OPENAI_GROUPS]
    span = [("start_time", str(int(window.start.timestamp()))), ("end_time", str(int(window.end.timestamp()))),
            ("bucket_width", "1d"), ("limit", "31")]
    tokens: dict[tuple[str, str, str | None, str | None], int] = {}
    final: dict[str, bool] = {}
    for kind in OPENAI_USAGE_KINDS:
        query = span + [("group_by", g) for g in ("model", *extra)]
        for page in _pages(base, f"/v1/organization/usage/{kind}", query, headers):
            for bucket in page.get("data") or ():
                day = _day(datetime.fromtimestamp(_count(bucket.get("start_time")), tz=UTC))
                final[day] = final.get(day, True) and _closed(bucket.get("end_time"))
                for result in bucket.get("results") or ():
                    group = (day, str(result.get("model") or "unknown"), result.get("project_id"),
                             result.get("api_key_id"))
                    tokens[group] = tokens.get(group, 0) + _count(result.get("input_tokens")) + \
                        _count(result.get("output_tokens"))
    usd: dict[tuple[str, str, str | None, str | None], float] = {}
    query = span + [("group_by", g) for g in ("line_item", *extra)]
    for page in _pages(base, "/v1/organization/costs", query, headers):
        for bucket in page.get("data") or ():
            day = _day(datetime.fromtimestamp(_count(bucket.get("start_time")), tz=UTC))
            final[day] = final.get(day, True) and _closed(bucket.get("end_time"))
            for result in bucket.get("results") or ():
                amount = result.get("amount") or {}
                if str(amount.get("currency", "usd")).lower() != "usd":
                    raise ReconcileError(f"the provider reports costs in {amount.get('currency')!r}, not USD")
                model = str(result.get("line_item") or "unknown").split(",", 1)[0].strip()
                group = (day, model, result.get("project_id"), result.get("api_key_id"))
                usd[group] = usd.get(group, 0.0) + _number(amount.get("value"))
    return [ProviderRow(day, model, project, api_key, tokens.get(group, 0), usd.get(group, 0.0), final[day])
            for group in sorted(set(tokens) | set(usd), key=str)
            for day, model, project, api_key in (group,)]


# --------------------------------------------------------------------------- Anthropic

_ANTHROPIC_GROUPS = {"project": "workspace_id", "api_key": "api_key_id"}


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parsed(text: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise ReconcileError(f"the provider's report has an unreadable time {str(text)[:40]!r}") from None


def _anthropic_tokens(usage: dict[str, Any]) -> int:
    creation = usage.get("cache_creation") or {}
    return (_count(usage.get("uncached_input_tokens")) + _count(usage.get("cache_read_input_tokens"))
            + _count(creation.get("ephemeral_5m_input_tokens")) + _count(creation.get("ephemeral_1h_input_tokens"))
            + _count(usage.get("output_tokens")))


def anthropic_rows(key: str, window: Window, by: tuple[str, ...], base_url: str | None = None) -> list[ProviderRow]:
    """The Usage and Cost Analytics API (``/v1/organizations/analytics/usage`` and ``/cost``); an organisation
    without it (404) is read from the legacy ``usage_report/messages`` and ``cost_report``. Amounts are in cents."""
    base = base_url or ANTHROPIC_URL
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    groups = ["model", *(_ANTHROPIC_GROUPS[b] for b in by if b in _ANTHROPIC_GROUPS)]
    span = [("starting_at", _rfc3339(window.start)), ("ending_at", _rfc3339(window.end))]
    try:
        return _analytics(base, {**headers, "anthropic-beta": ANALYTICS_BETA}, span, groups)
    except ReconcileError as exc:
        if exc.status != 404:  # only an organisation without the analytics API falls back to the legacy reports
            raise
    return _legacy(base, headers, span, groups)


def _add(found: dict[tuple[Any, ...], list[Any]], group: tuple[Any, ...], tokens: int, usd: float, final: bool) -> None:
    entry = found.setdefault(group, [0, 0.0, True])
    entry[0] += tokens
    entry[1] += usd
    entry[2] = entry[2] and final


def _analytics(base: str, headers: dict[str, str], span: list[tuple[str, str]], groups: list[str]) -> list[ProviderRow]:
    query = span + [("time_bucket_width", "1d"), ("limit", "1000")] + [("group_by[]", g) for g in groups]
    found: dict[tuple[Any, ...], list[Any]] = {}
    for endpoint in ("usage", "cost"):
        for page in _pages(base, f"/v1/organizations/analytics/{endpoint}", query, headers):
            refreshed = page.get("data_refreshed_at")
            complete_until = _parsed(refreshed) if refreshed else datetime.now(UTC)
            for item in page.get("data") or ():
                group_values = item.get("group") or {}
                group = (_day(_parsed(item.get("starting_at"))), str(group_values.get("model") or "unknown"),
                         group_values.get("workspace_id"), group_values.get("api_key_id"))
                final = _parsed(item.get("ending_at")) <= complete_until
                if endpoint == "usage":
                    _add(found, group, _anthropic_tokens(item.get("usage") or {}), 0.0, final)
                else:
                    _add(found, group, 0, _cents(item.get("cost") or {}), final)
    return _rows(found)


def _cents(cost: dict[str, Any]) -> float:
    if str(cost.get("currency", "USD")).upper() != "USD":
        raise ReconcileError(f"the provider reports costs in {cost.get('currency')!r}, not USD")
    return _number(cost.get("amount")) / 100


def _legacy(base: str, headers: dict[str, str], span: list[tuple[str, str]], groups: list[str]) -> list[ProviderRow]:
    found: dict[tuple[Any, ...], list[Any]] = {}
    reports = (("/v1/organizations/usage_report/messages", groups),
               ("/v1/organizations/cost_report", ["description", *groups[1:]]))
    for path, grouped_by in reports:
        query = span + [("bucket_width", "1d"), ("limit", "31")] + [("group_by[]", g) for g in grouped_by]
        for page in _pages(base, path, query, headers):
            for bucket in page.get("data") or ():
                day = _day(_parsed(bucket.get("starting_at")))
                final = _parsed(bucket.get("ending_at")) <= datetime.now(UTC)  # read after the page arrived
                for result in bucket.get("results") or ():
                    group = (day, str(result.get("model") or "unknown"), result.get("workspace_id"),
                             result.get("api_key_id"))
                    if path.endswith("messages"):
                        _add(found, group, _anthropic_tokens(result), 0.0, final)
                    else:
                        _add(found, group, 0, _cents(result), final)
    return _rows(found)


def _rows(found: dict[tuple[Any, ...], list[Any]]) -> list[ProviderRow]:
    return [ProviderRow(day, model, project, api_key, tokens, usd, final)
            for (day, model, project, api_key), (tokens, usd, final) in sorted(found.items(), key=lambda i: str(i[0]))]


def day_window(start: datetime, end: datetime) -> Window:
    """Whole UTC days covering [start, end)."""
    first = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    last = end.astimezone(UTC)
    if last != last.replace(hour=0, minute=0, second=0, microsecond=0):
        last = last.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return Window(first, last)
