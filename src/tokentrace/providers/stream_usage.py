"""Whether to ask a host for usage in an OpenAI-format stream (``stream_options.include_usage``), host by host.

An OpenAI-format stream carries usage only when the request asks for it, on most hosts; some hosts (Hugging Face's
router, Mistral, self-hosted routers and servers) end every stream with usage unasked, and some reject the option.
Asking a host of the second kind would make the caller read a usage chunk twice or lose the one it always read; asking
one of the third kind fails the call. So:

- a provider the registry knows is asked when the registry says it accepts the option, never otherwise;
- a host the registry does not know is learnt from its own streams: its first streams go out as the caller wrote
  them; one that ends (with a finish reason) carrying usage shows a host that sends it unasked (never asked), one
  that ends without shows a host that must be asked (asked from then on);
- a host that answers an asked request with HTTP 400 is never asked again (the request is sent again without it).

What a host's un-asked stream chunks looked like is kept too: OpenAI adds ``"usage": null`` to every chunk only when
asked, and the wire layer takes it out of the bytes the caller reads only where the un-asked chunks lacked it.
The table is per process, bounded (``MAX_HOSTS``); the SDK layer and the wire layer share it. Stdlib only.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from .._registry import ACCEPTS_STREAM_OPTIONS, OPENAI_COMPATIBLE, STREAM_USAGE_UNASKED_HOSTS

MAX_HOSTS = 1024
"""Hosts learnt at the most; beyond that a new host is never asked (its streams go out as written)."""

ASK = "ask"
UNASKED = "unasked"
REFUSES = "refuses"

_learnt: dict[str, tuple[str, bool]] = {}
"""host -> (ASK / UNASKED / REFUSES, whether its un-asked chunks carry ``"usage": null``)."""
_lock = threading.Lock()


def should_ask(provider: str, host: str | None) -> bool:
    """Add ``stream_options.include_usage`` to a stream request the caller did not ask usage for?"""
    if host in STREAM_USAGE_UNASKED_HOSTS:
        return False
    if provider != OPENAI_COMPATIBLE:
        return provider in ACCEPTS_STREAM_OPTIONS and (host is None or _learnt.get(host, ("", False))[0] != REFUSES)
    if not host:
        return False
    return _learnt.get(host, ("", False))[0] == ASK


def caller_asked(body: Mapping[str, Any]) -> bool:
    """The request itself asks for stream usage."""
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


def learning(provider: str, host: str | None) -> bool:
    """A stream to this host, sent as written, would tell whether it sends usage unasked."""
    return provider == OPENAI_COMPATIBLE and bool(host) and host not in _learnt and host not in \
        STREAM_USAGE_UNASKED_HOSTS


def learn(host: str, usage_unasked: bool, null_usage_in_chunks: bool = False) -> None:
    """A stream sent as written ended: it carried usage (``usage_unasked``) or it did not."""
    with _lock:
        if host in _learnt or len(_learnt) >= MAX_HOSTS:
            return
        _learnt[host] = (UNASKED if usage_unasked else ASK, null_usage_in_chunks)


def refused(host: str | None) -> None:
    """The host answered an asked request with HTTP 400: never ask it again."""
    if not host:
        return
    with _lock:
        if host in _learnt or len(_learnt) < MAX_HOSTS:
            _learnt[host] = (REFUSES, _learnt.get(host, ("", False))[1])


def null_usage_unasked(host: str | None) -> bool:
    """The host's un-asked stream chunks carry ``"usage": null`` themselves (learnt; False for known providers)."""
    return bool(host) and _learnt.get(host or "", ("", False))[1]


def forget() -> None:
    """Forget every host learnt (``uninstrument()``, tests)."""
    with _lock:
        _learnt.clear()
