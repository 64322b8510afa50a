"""Which HTTP requests are LLM calls: the path (and method) of each known LLM API, and the provider by host.

``recognise`` is the one check every request through a hooked HTTP client pays: a POST whose path ends in none
of the known endpoints returns None after a handful of string comparisons, reading no body. Stdlib only.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .._registry import OPENAI_COMPATIBLE, provider_for_host


class Route(NamedTuple):
    """A recognised LLM API request: its wire format, operation and what the path says."""

    format: str
    """``openai``, ``anthropic``, ``gemini``, ``bedrock``, ``cohere``, ``ollama``."""
    api: str
    """The API within the format: ``chat``, ``responses``, ``completions``, ``embeddings``, ``messages``,
    ``generate``, ``stream``, ``embed``, ``batch_embed``, ``converse``, ``converse_stream``, ``invoke``,
    ``invoke_stream``, ``ollama_chat``, ``ollama_generate``, ``ollama_embed``."""
    provider: str
    path_model: str = ""
    """The model named in the path (Gemini, Bedrock), else empty."""
    generic: bool = False
    """A path an ordinary web API may use too (Ollama's ``/api/chat``, Cohere's ``/v2/chat``): the request is an LLM
    call only if its JSON body names a ``model``."""


_MEDIA_SUFFIXES = (("/images/generations", "images"), ("/images/edits", "images"), ("/images/variations", "images"),
                   ("/audio/transcriptions", "transcription"), ("/audio/translations", "translation"),
                   ("/audio/speech", "speech"), ("/moderations", "moderation"))
"""OpenAI's media endpoints (``providers.openai_media``), seen on the wire too."""
MEDIA_APIS = frozenset(api for _, api in _MEDIA_SUFFIXES)
_OPENAI_SUFFIXES = (("/chat/completions", "chat"), ("/responses", "responses"), ("/completions", "completions"),
                    ("/embeddings", "embeddings"))
_GEMINI_VERBS = {"generateContent": "generate", "streamGenerateContent": "stream", "embedContent": "embed",
                 "batchEmbedContents": "batch_embed"}
_BEDROCK = re.compile(r"/model/(?P<model>[^/]+)/(?P<verb>converse|converse-stream|invoke|invoke-with-response-stream)$")
_BEDROCK_APIS = {"converse": "converse", "converse-stream": "converse_stream", "invoke": "invoke",
                 "invoke-with-response-stream": "invoke_stream"}
_OLLAMA = {"/api/chat": "ollama_chat", "/api/generate": "ollama_generate", "/api/embed": "ollama_embed"}
_VERTEX_ANTHROPIC = re.compile(r"/publishers/anthropic/models/(?P<model>[^/:]+):(?:rawPredict|streamRawPredict)$")
"""Claude on Vertex AI: the Messages API with the model in the path."""
_ENDINGS = ("/completions", "/responses", "/embeddings", "/messages", "Content", "Contents", "/converse",
            "-stream", "/invoke", "/chat", "/embed", "/generate", "Predict", "/generations", "/edits", "/variations",
            "/transcriptions", "/translations", "/speech", "/moderations")
"""Every recognised path ends in one of these: the first, cheapest filter."""


def _gemini_provider(host: str) -> str:
    return "vertex_ai" if host.endswith("aiplatform.googleapis.com") else "google"


def regional_vertex(host: str | None) -> bool:
    """A Vertex AI host bound to a region (``us-east5-aiplatform.googleapis.com``) or multi-region
    (``aiplatform.us.rep.googleapis.com``), not the global endpoint (``aiplatform.googleapis.com``)."""
    if not host or host == "aiplatform.googleapis.com":
        return False
    return host.endswith(("-aiplatform.googleapis.com", ".rep.googleapis.com"))


def may_be_llm(path: str) -> bool:
    """The cheap first check (no parsing): could a request to ``path`` be an LLM call at all?"""
    return path.endswith(_ENDINGS)


def recognise(method: str, host: str, path: str) -> Route | None:
    """The LLM call a request is, or None (everything else passes untouched). ``host`` lower case, ``path`` without
    the query string."""
    if method != "POST" or not path.endswith(_ENDINGS):
        return None
    if path.endswith("/messages"):
        return Route("anthropic", "messages", "anthropic") if path.endswith("/v1/messages") else None
    for suffix, api in _OPENAI_SUFFIXES:
        if path.endswith(suffix):
            return Route("openai", api, provider_for_host(host))
    for suffix, api in _MEDIA_SUFFIXES:
        if path.endswith(suffix):
            return Route("openai", api, provider_for_host(host))
    if path.endswith("Content") or path.endswith("Contents"):
        model, _, verb = path.rpartition("/")[2].partition(":")
        gemini_api = _GEMINI_VERBS.get(verb)
        return Route("gemini", gemini_api, _gemini_provider(host), model) if gemini_api else None
    if "/model/" in path:
        match = _BEDROCK.search(path)
        if match:
            from urllib.parse import unquote

            return Route("bedrock", _BEDROCK_APIS[match["verb"]], "bedrock", unquote(match["model"]))
    if path.endswith("Predict"):
        match = _VERTEX_ANTHROPIC.search(path)
        if match:
            from urllib.parse import unquote

            return Route("anthropic", "vertex_messages", "anthropic", unquote(match["model"]))
        return None
    if path.endswith(("/v2/chat", "/v2/embed")):
        return Route("cohere", "chat" if path.endswith("chat") else "embed", "cohere", generic=True)
    for suffix, api in _OLLAMA.items():
        if path.endswith(suffix):
            return Route("ollama", api, "ollama", generic=True)
    return None


def is_compatible(route: Route) -> bool:
    """An OpenAI-format request to a host the registry does not know."""
    return route.provider == OPENAI_COMPATIBLE
