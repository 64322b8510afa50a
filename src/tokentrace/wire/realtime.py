"""Realtime sessions (OpenAI Realtime and the APIs shaped like it: Azure OpenAI, xAI's voice API) seen frame by frame:
one LLM call per response, recorded when its ``response.done`` carries usage (operation ``realtime``).

The client hooks (``websockets_hook``, ``aiohttp_ws_hook``) hand every frame of a realtime connection to its
``Session`` (its ``*_guarded`` methods: a budget's refusal is raised to the app, any other failure counted): a frame
is looked at only when its first bytes name one of the few events that matter (``session.created`` / ``.updated``,
``response.created``, ``response.done``, and the client's ``response.create``), so audio deltas cost a slice and
four substring tests (Gemini Live messages: ``usageMetadata`` in their first or last bytes). Attribution is what was
in force when the session connected (its context is kept), and ``session_id`` defaults to the provider's session id.
A client-sent ``response.create`` is admitted by the budgets before it is sent (``BudgetExceeded`` from the send,
nothing sent), and a new session at a budget's limit before its handshake; a response the server starts itself
(server-side turn detection) is counted, never refused (``TOKENTRACE_REALTIME_CLOSE_ON_BUDGET=1``: the session is
closed instead). A connection that closes with responses in flight records them as failed calls that may have been
billed (their estimate is charged), unless its host is not known to be an LLM API and never answered with usage:
traffic that is not an LLM call is never counted. Usage rules (``usage_of``): ``input_tokens`` include the cached
ones (``cached_tokens``, by modality in ``cached_tokens_details``); audio and image tokens are parts of the input
and output; xAI leaves ``response.usage`` empty and puts usage at the top level of the event.
"""

from __future__ import annotations

import contextvars
import json
import os
from collections import deque
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .._registry import provider_for_host
from .._support import errors as _errors
from .._usage import RequestInfo, ResponseInfo, Usage
from ..budgets.refusal import CallRefused, counted_only
from ..context import attributes, current_attributes
from ..instrumentation.wrappers import active
from ..recorder import Call
from . import hosts
from .exchange import switch

HEAD = 160
"""How much of a frame is looked at to tell its event type (the type is the event's first key)."""
TAIL = 2048
"""How much of a Gemini Live message's end is looked at for ``usageMetadata`` (the last key of a turn's message)."""
_WATCHED = ("response.done", "response.created", "session.created", "session.updated")
_WATCHED_BYTES = tuple(name.encode() for name in _WATCHED)
MAX_PENDING = 64
"""Responses in flight kept per session (a server that never answers cannot grow it without end)."""


def recognise(host: str | None, port: int | None, resource: str) -> tuple[str, str, str] | None:
    """(provider, model, flow) when a WebSocket to ``host`` at ``resource`` (path and query) is a realtime session:
    flow ``openai`` (OpenAI Realtime and the APIs shaped like it) or ``gemini`` (Gemini Live, whose model comes in
    its first client message)."""
    parts = urlsplit(resource)
    name = (host or "").lower()
    if "BidiGenerateContent" in parts.path:
        return ("vertex_ai" if name.endswith("aiplatform.googleapis.com") else "google"), "", "gemini"
    if not parts.path.rstrip("/").endswith("/realtime"):
        return None
    query = parse_qs(parts.query)
    model = (query.get("model") or query.get("deployment") or [""])[0]
    return provider_for_host(name), model, "openai"


def session_for(address: Callable[[], tuple[str | None, int | None, str]], stage: str) -> Session | None:
    """A session for a WebSocket connection just made when ``address()`` (host, port, path and query) is a realtime
    endpoint and tokentrace is on; None otherwise (a failure to look is counted at ``stage``)."""
    if not switch.on:
        return None
    try:
        host, port, resource = address()
        found = recognise(host, port, resource)
        return None if found is None else Session(found[0], found[1], host, port, found[2])
    except Exception as exc:
        _errors.report(stage, exc, "could not look at a WebSocket connection")
        return None


class Session:
    """One realtime connection: its responses in flight and where their calls are recorded."""

    def __init__(self, provider: str, model: str, host: str | None, port: int | None, flow: str = "openai") -> None:
        self.provider, self.model, self.host, self.port = provider, model, host, port
        self.gemini = flow == "gemini"
        self.context = contextvars.copy_context()
        self.session_id: str | None = None
        self.pending: deque[Call] = deque()
        self.asked = 0
        """``response.create`` events sent and not yet answered by a ``response.created``."""
        self.close_on_budget = os.environ.get("TOKENTRACE_REALTIME_CLOSE_ON_BUDGET", "").strip().lower() in (
            "1", "true", "yes", "on")
        self.ended = False
        self.refused = False
        """A block budget would have refused a response the server started: the hook closes the connection."""

    # ---- frames (the hot path)
    def received(self, message: Any) -> None:
        if self.ended:  # the app closed the session: what it still reads was recorded as failed already
            return
        if self.gemini:  # usage comes last in a Gemini Live message: its end is looked at too
            name = "usageMetadata" if message.__class__ is str else b"usageMetadata"
            if name in message[:HEAD] or name in message[-TAIL:]:
                self._gemini_usage(message)
            return
        head = message[:HEAD]
        names = _WATCHED if head.__class__ is str else _WATCHED_BYTES
        if names[0] in head or names[1] in head or names[2] in head or names[3] in head:
            self._event(message)

    def sending(self, message: Any) -> None:
        """A frame the app is about to send: a ``response.create`` is admitted first (may raise BudgetExceeded)."""
        head = message[:HEAD]
        if self.gemini:
            if ("setup" if head.__class__ is str else b"setup") in head:
                self._gemini_setup(message)
            return
        if ("response.create" if head.__class__ is str else b"response.create") in head:
            self._start(refusable=True)
            self.asked += 1

    def admit(self) -> None:
        """Before the session is opened: a block budget at its limit refuses it (BudgetExceeded, nothing sent; a
        blocked call recorded). Admitted, nothing is held or recorded."""
        recorder = active.recorder
        if recorder is None or not hosts.trusted(self.host or ""):
            return
        request = RequestInfo(self.provider, "realtime", self.model, True, self.host, self.port)
        call = self.context.copy().run(self._call, recorder, request, True)
        if call is not None:
            call.discard()

    def closed(self, exc: BaseException) -> None:
        """The connection ended (or the app closed it): responses still in flight failed after they began (their
        estimate is charged). At a host not known to be an LLM API, and that never answered with usage, they were
        no calls: nothing is recorded."""
        self.ended = True
        proven = hosts.trusted(self.host or "")
        while self.pending:
            call = self.pending.popleft()
            if proven:
                call.fail(exc)
            else:
                call.discard()

    # ---- what the client hooks call: a budget's refusal (CallRefused) is the app's, any other failure is counted
    def admit_guarded(self) -> None:
        """``admit``, before the connection is opened."""
        try:
            self.admit()
        except CallRefused:
            raise
        except Exception as exc:
            _errors.report("wire.realtime", exc, "could not check a realtime session against the budgets")

    def sending_guarded(self, message: Any) -> None:
        """``sending``, before a frame of the app's goes out (a refusal raises: nothing is sent)."""
        if not isinstance(message, (str, bytes)):
            return
        try:
            self.sending(message)
        except CallRefused:
            raise
        except Exception as exc:
            _errors.report("wire.realtime", exc, "could not look at a realtime client event")

    def received_guarded(self, message: Any) -> bool:
        """``received``, for a frame the app is about to get (unchanged, whatever happens); True when the hook is to
        close the connection now: a block budget would refuse a response the server started and closing is opted
        in (``TOKENTRACE_REALTIME_CLOSE_ON_BUDGET``); what was already received is counted and reaches the app."""
        try:
            self.received(message)
        except Exception as exc:
            _errors.report("wire.realtime", exc, "could not read a realtime event")
            return False
        if self.refused:
            self.refused = False
            return True
        return False

    def closed_guarded(self, exc: BaseException | None = None) -> None:
        """``closed``: the connection was lost with ``exc``, or (None) the app closes it, which ends only what is
        still in flight."""
        if exc is None and not self.pending:
            return
        try:
            self.closed(exc or ConnectionAbortedError("the realtime connection was closed with a response in flight"))
        except Exception as error:
            _errors.report("wire.realtime", error, "could not record a realtime session's end")

    # ---- events
    def _event(self, message: Any) -> None:
        try:
            event = json.loads(message)
            kind = event.get("type") if isinstance(event, Mapping) else None
        except (ValueError, RecursionError, TypeError) as exc:
            _errors.report("wire.realtime", exc, "could not read a realtime event")
            return
        if kind in ("session.created", "session.updated"):
            session = event.get("session")
            if isinstance(session, Mapping):
                self.session_id = self.session_id or _text(session.get("id"))
                self.model = self.model or _text(session.get("model")) or ""
        elif kind == "response.created":
            if self.asked:
                self.asked -= 1
            else:  # the server started it (turn detection): counted, never refused (unless closing is opted in)
                self._server_started()
            if self.pending:
                self.pending[-1].first_chunk()
        elif kind == "response.done":
            self._done(event)

    def _gemini_setup(self, message: Any) -> None:
        setup = json.loads(message).get("setup")
        model = setup.get("model") if isinstance(setup, Mapping) else None
        if isinstance(model, str) and model:
            self.model = model.rsplit("/", 1)[-1]  # models/gemini-live-2.5-flash -> gemini-live-2.5-flash

    def _gemini_usage(self, message: Any) -> None:
        """A Gemini Live turn's ``usageMetadata``: one call per message that carries it, its prompt the whole
        context as re-counted that turn (what the turn is billed), thoughts as reasoning (outside its total)."""
        from ..providers.google_genai import usage_from
        from .formats import snake

        event = json.loads(message)
        meta = event.get("usageMetadata") if isinstance(event, Mapping) else None
        if not isinstance(meta, Mapping):
            return
        fields = snake(meta)  # Live names the output "response" where generate_content says "candidates"
        fields.setdefault("candidates_token_count", fields.get("response_token_count"))
        fields.setdefault("candidates_tokens_details", fields.get("response_tokens_details"))
        self._start(refusable=False)
        if self.pending:
            self.pending.popleft().stop(ResponseInfo(usage=usage_from(fields), response_model=self.model or None))

    def _server_started(self) -> None:
        if not self.close_on_budget:
            self._start(refusable=False)
            return
        try:
            self._start(refusable=True)
        except CallRefused:  # recorded as refused; the response itself is on its way: counted as well
            self.refused = True
            self._start(refusable=False)

    def _start(self, refusable: bool) -> None:
        recorder = active.recorder
        if recorder is None:
            return
        request = RequestInfo(self.provider, "realtime", self.model, True, self.host, self.port)
        call = self.context.copy().run(self._call, recorder, request, refusable)
        if call is not None:
            if len(self.pending) >= MAX_PENDING:  # the oldest ends without usage (or, unproven, is no call)
                oldest = self.pending.popleft()
                if hosts.trusted(self.host or ""):
                    oldest.stop(None)
                else:
                    oldest.discard()
            self.pending.append(call)

    def _call(self, recorder: Any, request: RequestInfo, refusable: bool) -> Call | None:
        """Runs in a copy of the connect-time context: its attribution, its span parent."""
        token = None if refusable and hosts.trusted(self.host or "") else counted_only.set(True)
        try:
            if self.session_id and "session_id" not in current_attributes():
                with attributes(session_id=self.session_id):
                    call = Call(recorder, request)
            else:
                call = Call(recorder, request)
        finally:
            if token is not None:
                counted_only.reset(token)
        call.detach()
        return call

    def _done(self, event: Mapping[str, Any]) -> None:
        response = event.get("response")
        response = response if isinstance(response, Mapping) else {}
        if not self.pending:  # a response whose start was not seen (connected mid-response): counted now
            self._start(refusable=False)
        if not self.pending:
            return
        call = self.pending.popleft()
        if self.session_id and "session_id" not in call.attributes:  # started before session.created was read
            call.attributes = MappingProxyType({**call.attributes, "session_id": self.session_id})
        try:
            usage = usage_of(response.get("usage") or event.get("usage"))
        except (TypeError, ValueError) as exc:
            _errors.report("wire.realtime", exc, "a realtime response.done carried usage of an odd shape")
            usage = None
        if usage is not None and self.host:
            hosts.prove(self.host)
        status = response.get("status")
        call.stop(ResponseInfo(usage=usage, response_model=self.model or None,
                               response_id=_text(response.get("id"))),
                  "error" if status == "failed" else "ok")


def usage_of(usage: Any) -> Usage | None:
    """The token partition of a realtime response's usage (None: none reported)."""
    if not isinstance(usage, Mapping) or not usage:
        return None
    inp, out = usage.get("input_tokens"), usage.get("output_tokens")
    if not isinstance(inp, int) or not isinstance(out, int) or isinstance(inp, bool) or isinstance(out, bool):
        raise TypeError(f"realtime usage tokens are not integers: {type(inp).__name__}, {type(out).__name__}")
    details = _mapping(usage.get("input_token_details"))
    cached_details = _mapping(details.get("cached_tokens_details"))
    out_details = _mapping(usage.get("output_token_details"))
    cached = _count(details.get("cached_tokens"))
    cached_audio, cached_image = _count(cached_details.get("audio_tokens")), _count(cached_details.get("image_tokens"))
    reasoning = min(_count(out_details.get("reasoning_tokens")), out)
    return Usage(input=max(inp - cached, 0), cache_read=min(cached, inp), output=out - reasoning, reasoning=reasoning,
                 input_audio=max(_count(details.get("audio_tokens")) - cached_audio, 0),
                 input_image=max(_count(details.get("image_tokens")) - cached_image, 0),
                 output_audio=min(_count(out_details.get("audio_tokens")), out - reasoning),
                 cache_read_audio=cached_audio)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
