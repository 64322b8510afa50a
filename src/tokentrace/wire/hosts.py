"""Which hosts' requests the wire layer may count and refuse: the LLM rule for hosts that are not known providers.

A request to a known provider's host (the registry's hosts, Anthropic's, Google's, Bedrock's, Cohere's) on a known
LLM path is an LLM call. On any other host (an app's own service, a gateway, a self-hosted server) it is one only
when its body is an LLM request of that format (the fields the format requires, with the right types); and until
the host has answered one such request with an LLM answer (usage, or the answer's id and model), or is configured
as an LLM host (``instrument(llm_hosts=...)`` / ``TOKENTRACE_LLM_HOSTS``), its calls are measured but never
refused by a budget, and an answer that is not an LLM answer (an HTTP error, a body without usage, id or model)
leaves no record at all. Stdlib only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .._registry import HOSTS
from .routes import Route

PROVIDER_HOSTS: tuple[str, ...] = (*(host for host, _ in HOSTS), "api.anthropic.com", ".googleapis.com",
                                   ".amazonaws.com", "api.cohere.com", "api.cohere.ai")
"""Hosts of the providers themselves (a leading dot: any subdomain)."""
MAX_PROVEN_HOSTS = 1024
"""Hosts remembered as having answered like an LLM API; past it the set starts again (never grows without end)."""

_configured: frozenset[str] = frozenset()
_proven: set[str] = set()


def configure(hosts: Iterable[str]) -> None:
    """The hosts the user names as LLM hosts (lower case, without port): their calls may be refused at once."""
    global _configured
    _configured = frozenset(h.strip().lower() for h in hosts if h and h.strip())


def forget() -> None:
    """Uninstrumented: no configured or proven host is kept."""
    global _configured
    _configured = frozenset()
    _proven.clear()


def _matches(host: str, known: str) -> bool:
    return host.endswith(known) if known.startswith(".") else host == known or host.endswith("." + known)


def trusted(host: str) -> bool:
    """A provider's host, one configured as an LLM host, or one that has answered an LLM request like an LLM API."""
    return host in _proven or host in _configured or any(_matches(host, known) for known in PROVIDER_HOSTS)


def prove(host: str) -> None:
    """``host`` answered an LLM request with an LLM answer: from now on its calls count and may be refused."""
    if host not in _proven:
        if len(_proven) >= MAX_PROVEN_HOSTS:
            _proven.clear()
        _proven.add(host)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _messages(value: Any) -> bool:
    """A non-empty list of message objects, each with a text role."""
    return isinstance(value, list) and bool(value) and all(
        isinstance(m, Mapping) and _text(m.get("role")) for m in value)


def _text_or_list(value: Any) -> bool:
    return _text(value) or (isinstance(value, list) and bool(value))


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_REQUIRED = {
    ("openai", "chat"): lambda b: _text(b.get("model")) and _messages(b.get("messages")),
    ("openai", "responses"): lambda b: _text(b.get("model")) and _text_or_list(b.get("input")),
    ("openai", "completions"): lambda b: _text(b.get("model")) and _text_or_list(b.get("prompt")),
    ("openai", "embeddings"): lambda b: _text(b.get("model")) and _text_or_list(b.get("input")),
    ("anthropic", "messages"): lambda b: _text(b.get("model")) and _int(b.get("max_tokens"))
    and _messages(b.get("messages")),
    ("anthropic", "vertex_messages"): lambda b: _int(b.get("max_tokens")) and _messages(b.get("messages")),
    ("gemini", "generate"): lambda b: isinstance(b.get("contents"), (list, Mapping, str)) and bool(b.get("contents")),
    ("gemini", "stream"): lambda b: isinstance(b.get("contents"), (list, Mapping, str)) and bool(b.get("contents")),
    ("gemini", "embed"): lambda b: isinstance(b.get("content"), Mapping),
    ("gemini", "batch_embed"): lambda b: isinstance(b.get("requests"), list) and bool(b.get("requests")),
    ("bedrock", "converse"): lambda b: _messages(b.get("messages")),
    ("bedrock", "converse_stream"): lambda b: _messages(b.get("messages")),
    ("cohere", "chat"): lambda b: _text(b.get("model")) and _messages(b.get("messages")),
    ("cohere", "embed"): lambda b: _text(b.get("model")) and (_text_or_list(b.get("texts"))
                                                              or _text_or_list(b.get("inputs"))),
    ("ollama", "ollama_chat"): lambda b: _text(b.get("model")) and _messages(b.get("messages")),
    ("ollama", "ollama_generate"): lambda b: _text(b.get("model")) and isinstance(b.get("prompt"), str),
    ("ollama", "ollama_embed"): lambda b: _text(b.get("model")) and _text_or_list(b.get("input")),
    ("openai", "images"): lambda b: _text(b.get("model")) and _text(b.get("prompt")),
    ("openai", "speech"): lambda b: _text(b.get("model")) and _text(b.get("input")) and _text(b.get("voice")),
}
"""The fields each format's request must carry, with their types, for a request to an unknown host to be taken
for an LLM request (Bedrock's InvokeModel bodies differ by model: only a known host's count)."""


def is_llm_request(route: Route, body: Any) -> bool:
    """Whether ``body`` (the request's parsed JSON) is a request of the route's format."""
    check = _REQUIRED.get((route.format, route.api))
    if check is None or not isinstance(body, Mapping):
        return False
    try:
        return bool(check(body))
    except Exception:
        return False
