"""The simulator's billing: every call it served to the OpenAI or Anthropic API, as the provider's own usage and cost
reports see it, and the admin endpoints that report them (so ``tokentrace reconcile`` is tested end to end).

Served calls are billed at genai-prices' list price of the model the response names (the provider's bill, worked
out independently of tokentrace's pricing code). OpenAI's organisation reports (``/v1/organization/usage/*`` and
``/v1/organization/costs``) count calls to ``api.openai.com``; Anthropic's (``/v1/organizations/analytics/usage`` and
``/analytics/cost``, and the legacy ``/v1/organizations/usage_report/messages`` and ``/cost_report``) count Messages
API calls. A day's bucket ends when the report is asked for (the simulator's reports are final as soon as it served
the calls). Admin keys: ``sk-admin-...`` (OpenAI), ``sk-ant-admin...`` (Anthropic); anything else is 401. The
``admin_error`` default (``Simulator(admin_error="429")``) makes every report answer that status; ``analytics="off"``
answers 404 on Anthropic's analytics endpoints (an organisation still on the legacy reports).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ANALYTICS_BETA = "analytics-usage-cost-2026-08-24"
OPENAI_KINDS = ("completions", "embeddings", "images", "audio_speeches", "audio_transcriptions")


@dataclass(frozen=True, slots=True)
class BilledCall:
    """One call as the provider bills it."""

    ts: float
    org: str
    """``openai`` or ``anthropic``: whose reports count it."""
    kind: str
    """OpenAI's usage bucket (``completions``, ``embeddings``); ``messages`` for Anthropic."""
    model: str
    input_tokens: int
    """Every input token, cached and cache writes included."""
    cached_tokens: int
    cache_write_tokens: int
    output_tokens: int
    """Every output token, reasoning included."""
    api_key_id: str
    project_id: str
    usd: float


def _key_id(prefix: str, secret: str) -> str:
    return prefix + hashlib.sha256(secret.encode()).hexdigest()[:12]


def _list_price(org: str, model: str, input_tokens: int, cached: int, write: int, output: int) -> float:
    import genai_prices
    from genai_prices.types import Usage

    try:
        usage = Usage(input_tokens=input_tokens, cache_read_tokens=cached, cache_write_tokens=write,
                      output_tokens=output)
        return float(genai_prices.calc_price(usage, model, provider_id=org).total_price)
    except LookupError:
        return 0.0


def bill(request: Request, org: str, kind: str, model: str, input_tokens: int, cached: int, write: int,
         output: int) -> None:
    """Count one served call in its provider's reports (``request.app.state.billed``)."""
    if org == "openai":
        secret = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        key, project = _key_id("key_", secret), request.headers.get("openai-project") or "proj_default"
    else:
        key, project = _key_id("apikey_", request.headers.get("x-api-key", "")), "wrkspc_default"
    request.app.state.billed.append(BilledCall(
        time.time(), org, kind, model, input_tokens, cached, write, output, key, project,
        _list_price(org, model, input_tokens, cached, write, output)))


# --------------------------------------------------------------------------- the reports


def _refused(request: Request, org: str) -> Response | None:
    status = request.app.state.defaults.get("admin_error")
    if status:
        return JSONResponse({"error": {"type": "simulated", "message": f"simulated {status}"}},
                            status_code=int(status))
    if org == "openai":
        allowed = request.headers.get("authorization", "").startswith("Bearer sk-admin-")
    else:
        allowed = request.headers.get("x-api-key", "").startswith("sk-ant-admin")
    if not allowed:
        return JSONResponse({"error": {"type": "authentication_error", "message": "invalid admin key"}},
                            status_code=401)
    return None


def _days(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """UTC day buckets from ``start``'s day to ``end``; a bucket still open ends now (its calls are all billed)."""
    now = datetime.now(UTC)
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    buckets = []
    while day < end and day <= now:
        buckets.append((day, min(day + timedelta(days=1), now)))
        day += timedelta(days=1)
    return buckets


def _page(request: Request, buckets: list[Any], default_limit: int) -> tuple[list[Any], str | None]:
    first = int(request.query_params.get("page") or 0)
    limit = int(request.query_params.get("limit") or default_limit)
    chosen = buckets[first:first + limit]
    more = first + limit < len(buckets)
    return chosen, (str(first + limit) if more else None)


def _group_keys(request: Request) -> list[str]:
    return request.query_params.getlist("group_by") + request.query_params.getlist("group_by[]")


def _calls(request: Request, org: str, kind: str | None, start: datetime, end: datetime) -> list[BilledCall]:
    return [c for c in request.app.state.billed if c.org == org and (kind is None or c.kind == kind)
            and start.timestamp() <= c.ts < end.timestamp()]


def _grouped(calls: list[BilledCall], keys: list[str],
             names: dict[str, str]) -> dict[tuple[Any, ...], list[BilledCall]]:
    groups: dict[tuple[Any, ...], list[BilledCall]] = {}
    for call in calls:
        groups.setdefault(tuple(getattr(call, names[k]) if k in names else None for k in keys), []).append(call)
    return groups


_OPENAI_GROUPS = {"model": "model", "project_id": "project_id", "api_key_id": "api_key_id"}


def _openai_page(request: Request, kind: str | None, names: dict[str, str],
                 result_of: Any) -> Response:
    """One page of an OpenAI organisation report: day buckets of the calls of ``kind`` (all kinds: None), one
    result per group (``result_of(group, calls)``)."""
    refused = _refused(request, "openai")
    if refused is not None:
        return refused
    start = datetime.fromtimestamp(int(request.query_params["start_time"]), tz=UTC)
    end = datetime.fromtimestamp(int(request.query_params.get("end_time") or time.time() + 1), tz=UTC)
    keys = _group_keys(request)
    buckets, next_page = _page(request, _days(start, end), 7)
    data = [{"object": "bucket", "start_time": int(day.timestamp()), "end_time": int(day_end.timestamp()),
             "results": [result_of(dict(zip(keys, values, strict=True)), calls) for values, calls in
                         _grouped(_calls(request, "openai", kind, day, day_end), keys, names).items()]}
            for day, day_end in buckets]
    return JSONResponse({"object": "page", "data": data, "has_more": next_page is not None, "next_page": next_page})


async def openai_usage(request: Request) -> Response:
    kind = request.path_params["kind"]

    def result(group: dict[str, Any], calls: list[BilledCall]) -> dict[str, Any]:
        return {"object": f"organization.usage.{kind}.result", "num_model_requests": len(calls),
                "input_tokens": sum(c.input_tokens for c in calls),
                "output_tokens": sum(c.output_tokens for c in calls),
                "input_cached_tokens": sum(c.cached_tokens for c in calls),
                "input_cache_write_tokens": sum(c.cache_write_tokens for c in calls),
                "model": None, "project_id": None, "api_key_id": None, "batch": None, **group}

    return _openai_page(request, kind, _OPENAI_GROUPS, result)


async def openai_costs(request: Request) -> Response:
    def result(group: dict[str, Any], calls: list[BilledCall]) -> dict[str, Any]:
        if "line_item" in group:  # OpenAI's line items read "<model>, <what>"
            group["line_item"] = f"{group['line_item']}, tokens"
        return {"object": "organization.costs.result", "amount": {"value": sum(c.usd for c in calls),
                                                                  "currency": "usd"},
                "line_item": None, "project_id": None, "api_key_id": None, **group}

    return _openai_page(request, None, {"project_id": "project_id", "api_key_id": "api_key_id", "line_item": "model"},
                        result)


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _anthropic_window(request: Request) -> tuple[datetime, datetime]:
    start = datetime.fromisoformat(request.query_params["starting_at"].replace("Z", "+00:00"))
    ending = request.query_params.get("ending_at")
    end = datetime.fromisoformat(ending.replace("Z", "+00:00")) if ending else datetime.now(UTC)
    return start, end


_ANTHROPIC_GROUPS = {"model": "model", "api_key_id": "api_key_id", "workspace_id": "project_id"}


def _anthropic_usage(calls: list[BilledCall]) -> dict[str, Any]:
    cached = sum(c.cached_tokens for c in calls)
    write = sum(c.cache_write_tokens for c in calls)
    uncached = sum(c.input_tokens for c in calls) - cached - write
    output = sum(c.output_tokens for c in calls)
    return {"uncached_input_tokens": uncached, "cache_read_input_tokens": cached,
            "cache_creation": {"ephemeral_5m_input_tokens": write, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output, "server_tool_use": {"web_search_requests": 0}}


async def anthropic_report(request: Request) -> Response:
    """Anthropic's reports, analytics (``/analytics/usage``, ``/analytics/cost``) and legacy alike."""
    refused = _refused(request, "anthropic")
    if refused is not None:
        return refused
    path = request.url.path
    analytics = "/analytics/" in path
    if analytics and request.app.state.defaults.get("analytics") == "off":
        return JSONResponse({"error": {"type": "not_found_error", "message": "not found"}}, status_code=404)
    if analytics and ANALYTICS_BETA not in request.headers.get("anthropic-beta", ""):
        return JSONResponse({"error": {"type": "invalid_request_error",
                                       "message": f"this endpoint needs anthropic-beta: {ANALYTICS_BETA}"}},
                            status_code=400)
    start, end = _anthropic_window(request)
    keys = _group_keys(request)
    if not analytics and path.endswith("cost_report"):
        keys = [k for k in keys if k != "description"] + ["model"]  # a description names the model
    buckets, next_page = _page(request, _days(start, end), 7 if not analytics else 31)
    cost = path.endswith(("/cost", "cost_report"))
    data: list[dict[str, Any]] = []
    for day, day_end in buckets:
        results = []
        for values, calls in _grouped(_calls(request, "anthropic", None, day, day_end), keys,
                                      _ANTHROPIC_GROUPS).items():
            group = dict(zip(keys, values, strict=True))
            cents = f"{sum(c.usd for c in calls) * 100:.6f}"  # lowest currency units, as a decimal string
            if analytics:
                body: dict[str, Any] = {"cost": {"amount": cents, "list_amount": cents, "currency": "USD",
                                                 "requests": len(calls)}} if cost else {
                    "usage": {**_anthropic_usage(calls), "requests": len(calls),
                              "total_tokens": sum(c.input_tokens + c.output_tokens for c in calls)}}
                data.append({"starting_at": _rfc3339(day), "ending_at": _rfc3339(day_end), "group": group, **body})
            elif cost:
                results.append({"currency": "USD", "amount": cents, "cost_type": "tokens",
                                "description": f"{group.get('model')} Usage", **group})
            else:
                results.append({**_anthropic_usage(calls), "model": None, "api_key_id": None, "workspace_id": None,
                                "service_tier": None, **group})
        if not analytics:
            data.append({"starting_at": _rfc3339(day), "ending_at": _rfc3339(day_end), "results": results})
    answer: dict[str, Any] = {"data": data, "has_more": next_page is not None, "next_page": next_page}
    if analytics:
        answer["data_refreshed_at"] = _rfc3339(datetime.now(UTC) + timedelta(seconds=1))
    return JSONResponse(answer)


def routes() -> list[Route]:
    return [
        Route("/v1/organization/usage/{kind}", openai_usage, methods=["GET"]),
        Route("/v1/organization/costs", openai_costs, methods=["GET"]),
        Route("/v1/organizations/analytics/usage", anthropic_report, methods=["GET"]),
        Route("/v1/organizations/analytics/cost", anthropic_report, methods=["GET"]),
        Route("/v1/organizations/usage_report/messages", anthropic_report, methods=["GET"]),
        Route("/v1/organizations/cost_report", anthropic_report, methods=["GET"]),
    ]
