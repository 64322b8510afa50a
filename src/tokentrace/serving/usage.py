"""``GET /usage``: the ledger report as JSON over HTTP, for the metrics server (WSGI) and for web apps (ASGI).

Query parameters are the CLI's: ``since``, ``from``, ``to``, ``by``, plus ``limit`` (groups returned, default 100,
at most 1000; ``truncated`` in the body says whether groups were left out). The body is what ``tokentrace report
--format json`` prints, with at most ``limit`` rows. A principal instead (``?user_id=alice``, the keys of the
process's ``per=`` budgets) answers that principal's standing in each of them (``tokentrace.budget_status``), for an
app's own "your usage" page; like ``by=user`` it names people, so it is off unless enabled.

Owns the endpoint's policy (``UsagePolicy``): a bearer token, identities off unless enabled, one report at a time, a
time limit per report. Error bodies are one line and never name the ledger's path, host, user or driver. Reads only;
the ASGI app runs reports on its own thread, never on the event loop or the app's default executor.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from .._support import errors as _errors

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PARAMETERS = ("since", "from", "to", "by", "limit")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
IDENTITY_KEYS = ("user", "session")
"""``by`` values whose groups name people: answered over HTTP only when the policy allows it."""
_TEXT = "text/plain; charset=utf-8"

Answer = tuple[int, str, bytes]


@dataclass(frozen=True)
class UsagePolicy:
    """Who may read ``/usage`` and how much one request may cost."""

    token: str | None = None
    """Requests must carry ``Authorization: Bearer <token>``; None: no token asked (loopback only, see
    ``refuse_without_token``)."""
    refuse_without_token: bool = False
    """Bound to a non-loopback address with no token: every request answers 403."""
    by_identity: bool = False
    """``by=user`` and ``by=session`` allowed (their rows are user and session ids)."""
    loopback_hosts_only: bool = False
    """Served on a loopback address with no token: a request whose ``Host`` is not a loopback name answers 403 (a
    web page on this machine cannot read it through a DNS name it points at 127.0.0.1: DNS rebinding)."""
    time_limit_s: float = 10.0
    """A report that takes longer answers 503."""
    wait_s: float = 2.0
    """How long a request waits for the report before it (one at a time) to finish; then 503."""


def is_loopback(addr: str) -> bool:
    """``addr`` (a host name or IP) only accepts connections from this machine."""
    if addr == "localhost":
        return True
    try:
        return ipaddress.ip_address(addr.strip("[]")).is_loopback
    except ValueError:
        return False


def _one_line(status: int, text: str) -> Answer:
    return status, _TEXT, f"{text}\n".encode()


def _loopback_host(host: str | None) -> bool:
    """Whether a ``Host`` header names this machine (``localhost``, ``127.0.0.1``, ``[::1]``, with any port)."""
    if not host:
        return False
    name = host.strip()
    if name.startswith("["):
        name = name[1:name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.rsplit(":", 1)[0]
    return is_loopback(name.lower())


def authorize(policy: UsagePolicy, authorization: str | None, host: str | None = None) -> Answer | None:
    """None when the request may be answered; else the refusal."""
    if policy.refuse_without_token:
        return _one_line(403, "GET /usage is off: the server listens beyond loopback and no usage_token (or "
                              "TOKENTRACE_USAGE_TOKEN) is set")
    if policy.token is None:
        if policy.loopback_hosts_only and not _loopback_host(host):
            return _one_line(403, "GET /usage answers requests to localhost only (Host header); set a usage token "
                                  "to read it under another name")
        return None
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), policy.token.encode()):
        return _one_line(401, "GET /usage needs the header Authorization: Bearer <usage token>")
    return None


_one_report = threading.BoundedSemaphore(1)
"""One report at a time per process: a burst of requests waits instead of running N full scans at once."""


def _limit(text: str | None) -> int | str:
    if not text:
        return DEFAULT_LIMIT
    if not text.isdigit() or len(text) > 4 or not 1 <= int(text) <= MAX_LIMIT:
        return f"limit must be a whole number from 1 to {MAX_LIMIT}, not {text[:20]!r}"
    return int(text)


def usage_response(query: str, ledger: str | os.PathLike[str] | None,
                   policy: UsagePolicy = UsagePolicy(by_identity=True)) -> Answer:
    """(HTTP status, content type, body) of ``GET /usage?{query}`` over ``ledger`` (authorization already done)."""
    from ..ledger.reports import HTTP_NAMES, ReportError, report

    try:
        values = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=16)
    except ValueError:
        return _one_line(400, "bad query string: too many fields")
    principal_keys = _principal_keys()
    unknown = sorted(set(values) - set(PARAMETERS) - principal_keys)
    if unknown:
        return _one_line(400, f"unknown parameter {unknown[0][:40]!r}; use {', '.join(PARAMETERS)}"
                              + (f" or a principal ({', '.join(sorted(principal_keys))})" if principal_keys else ""))
    one = {name: values[name][-1] for name in values}
    if set(one) & principal_keys:
        return _principal_answer({k: v for k, v in one.items() if k in principal_keys}, policy)
    by = one.get("by") or "feature"
    if by in IDENTITY_KEYS and not policy.by_identity:
        return _one_line(403, f"by={by} names people and is off over HTTP; enable it with usage_by_identity=True "
                              "(or TOKENTRACE_USAGE_BY_IDENTITY=1)")
    limit = _limit(one.get("limit"))
    if isinstance(limit, str):
        return _one_line(400, limit)
    if not _one_report.acquire(timeout=policy.wait_s):
        return _one_line(503, "busy: another /usage report is running; retry shortly")
    try:
        data = report(since=one.get("since") or "7d", by=by, ledger=ledger, start=one.get("from") or None,
                      end=one.get("to") or None, limit=limit, time_limit=policy.time_limit_s)
    except ReportError as exc:
        if exc.parameter is not None:  # the caller's own mistake: say which
            return _one_line(400, exc.worded(HTTP_NAMES))
        if "took longer" in exc.problem:
            return _one_line(503, exc.problem)
        _errors.report("http.usage", None, f"GET /usage cannot read the ledger: {exc}")
        return _one_line(400, "no ledger to read yet (or it cannot be read); see the application's log")
    except Exception as exc:  # never a traceback to the client, never a dead server
        _errors.report("http.usage", exc, "cannot answer GET /usage")
        return _one_line(500, "cannot read the ledger; see the application's log")
    finally:
        _one_report.release()
    data.pop("ledger", None)  # where the ledger lives is the server's business, not the reader's
    return 200, "application/json", json.dumps(data, indent=2).encode() + b"\n"


instrumented_ledger_location: Any = None
"""The ledger ``instrument()`` was given (False: none; None: not instrumented); ``instrument()`` sets it."""


def instrumented_ledger() -> Any:
    """The ledger ``instrument()`` was given (False when it was given none), or None when not instrumented."""
    return instrumented_ledger_location


budgets: Any = None
"""The budget accounting of this process's instrumentation (``instrument()`` sets it, ``uninstrument()`` clears it):
what a principal's standing is read from."""


def _principal_keys() -> set[str]:
    """The ``per=`` keys of the budgets of this process's instrumentation (what a principal is named by)."""
    return {key for template in getattr(budgets, "templates", ()) for key in template.per_keys}


def _principal_answer(principal: dict[str, str], policy: UsagePolicy) -> Answer:
    if not policy.by_identity:
        return _one_line(403, "a principal's standing names people and is off over HTTP; enable it with "
                              "usage_by_identity=True (or TOKENTRACE_USAGE_BY_IDENTITY=1)")
    from ..ledger.reports import budget_row

    try:
        standing = [budget_row(s.budget, s.spent_usd, s.spent_tokens) for s in budgets.principal_status(**principal)]
    except Exception as exc:  # never a traceback to the client
        _errors.report("http.usage", exc, "cannot answer GET /usage for a principal")
        return _one_line(500, "cannot read the budgets; see the application's log")
    return 200, "application/json", json.dumps({"principal": principal, "budgets": standing},
                                               indent=2).encode() + b"\n"


def _relative_path(path: str, root_path: str) -> str:
    return path[len(root_path):] if root_path and path.startswith(root_path) else path


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def usage_app(ledger: str | os.PathLike[str] | None = None, *, token: str | None = None,
              by_identity: bool = False) -> ASGIApp:
    """An ASGI app answering ``GET /usage`` (also ``/`` when mounted at a prefix) with the report as JSON.

    ``ledger``: None reads the ledger ``instrument()`` was given (else the default one), at each request.
    ``token``: None takes ``TOKENTRACE_USAGE_TOKEN`` (unset: no token asked; the app's own auth applies)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    if token is None:
        token = os.environ.get("TOKENTRACE_USAGE_TOKEN") or None
    policy = UsagePolicy(token=token, by_identity=by_identity)
    executor: list[ThreadPoolExecutor] = []  # made on first use: one thread, never the app's default executor

    def run(query: str) -> Answer:
        chosen = ledger if ledger is not None else instrumented_ledger()
        if chosen is False:
            return _one_line(404, "no ledger: instrument() was given ledger=False")
        return usage_response(query, chosen, policy)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if executor:
                        executor[0].shutdown(wait=False)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        refusal = authorize(policy, _header(scope, b"authorization"))
        if _relative_path(scope.get("path", ""), scope.get("root_path", "")) not in ("", "/", "/usage"):
            status, kind, body = 404, _TEXT, b"not found; GET /usage\n"
        elif scope.get("method") not in ("GET", "HEAD"):
            status, kind, body = 405, _TEXT, b"only GET\n"
        elif refusal is not None:
            status, kind, body = refusal
        else:
            if not executor:
                executor.append(ThreadPoolExecutor(1, thread_name_prefix="tokentrace-usage"))
            query = scope.get("query_string", b"").decode("latin-1")
            status, kind, body = await asyncio.get_running_loop().run_in_executor(executor[0], run, query)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body})

    return app


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            503: "Service Unavailable"}


def with_usage_route(metrics: WSGIApp, ledger: str | os.PathLike[str] | None,
                     policy: UsagePolicy = UsagePolicy()) -> WSGIApp:
    """A WSGI app serving ``/usage`` from ``ledger`` (404 when there is none) and everything else from ``metrics``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/usage":
            return metrics(environ, start_response)
        refusal = authorize(policy, environ.get("HTTP_AUTHORIZATION"), environ.get("HTTP_HOST"))
        if refusal is not None:
            status, kind, body = refusal
        elif ledger is None:
            status, kind, body = _one_line(404, "no ledger: instrument() was given ledger=False")
        else:
            status, kind, body = usage_response(environ.get("QUERY_STRING", ""), ledger, policy)
        start_response(f"{status} {_REASONS.get(status, 'Internal Server Error')}",
                       [("Content-Type", kind), ("Content-Length", str(len(body)))])
        return [body]

    return app
