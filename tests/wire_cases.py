"""The wire-layer matrix: raw HTTP clients x provider wire formats x (whole answer, stream), against the simulator.

Each case is a request any client could send, and a reader of the provider's own usage fields in the bytes the
caller got (what the provider says it billed, independent of tokentrace's readers). Used by tests/test_wire.py and
benchmarks/wire_matrix.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

WORDS = "one two three"
USER = [{"role": "user", "content": WORDS}]


@dataclass(frozen=True)
class WireCase:
    name: str
    path: str
    body: dict[str, Any]
    stream: bool
    provider: str
    operation: str

    @property
    def id(self) -> str:
        return f"{self.name}-{'stream' if self.stream else 'value'}"


def _cases() -> list[WireCase]:
    chat = {"model": "gpt-4o-mini", "messages": USER, "max_tokens": 5}
    claude = {"model": "claude-haiku-4-5", "messages": USER, "max_tokens": 5}
    gemini = {"contents": [{"role": "user", "parts": [{"text": WORDS}]}], "generationConfig": {"maxOutputTokens": 5}}
    cohere = {"model": "command-r-plus", "messages": USER, "max_tokens": 5}
    ollama = {"model": "llama3.2", "messages": USER, "options": {"num_predict": 5}}
    converse = {"messages": [{"role": "user", "content": [{"text": WORDS}]}], "inferenceConfig": {"maxTokens": 5}}
    return [
        WireCase("openai-chat", "/v1/chat/completions", chat, False, "openai_compatible", "chat"),
        WireCase("openai-chat", "/v1/chat/completions",
                 {**chat, "stream": True, "stream_options": {"include_usage": True}}, True, "openai_compatible",
                 "chat"),
        WireCase("openai-responses", "/v1/responses", {"model": "gpt-4o-mini", "input": WORDS, "max_output_tokens": 5},
                 False, "openai_compatible", "chat"),
        WireCase("openai-responses", "/v1/responses",
                 {"model": "gpt-4o-mini", "input": WORDS, "max_output_tokens": 5, "stream": True}, True,
                 "openai_compatible", "chat"),
        WireCase("openai-completions", "/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": WORDS,
                                                            "max_tokens": 5}, False, "openai_compatible",
                 "text_completion"),
        WireCase("openai-embeddings", "/v1/embeddings", {"model": "text-embedding-3-small", "input": WORDS}, False,
                 "openai_compatible", "embeddings"),
        WireCase("anthropic", "/v1/messages", claude, False, "anthropic", "chat"),
        WireCase("anthropic", "/v1/messages", {**claude, "stream": True}, True, "anthropic", "chat"),
        WireCase("gemini", "/v1beta/models/gemini-2.5-flash:generateContent", gemini, False, "google",
                 "generate_content"),
        WireCase("gemini", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", gemini, True, "google",
                 "generate_content"),
        WireCase("gemini-embed", "/v1beta/models/text-embedding-004:batchEmbedContents",
                 {"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": WORDS}]}}]},
                 False, "google", "embeddings"),
        WireCase("cohere", "/v2/chat", cohere, False, "cohere", "chat"),
        WireCase("cohere", "/v2/chat", {**cohere, "stream": True}, True, "cohere", "chat"),
        WireCase("cohere-embed", "/v2/embed", {"model": "embed-english-v3.0", "texts": [WORDS],
                                               "input_type": "search_document", "embedding_types": ["float"]},
                 False, "cohere", "embeddings"),
        WireCase("ollama", "/api/chat", {**ollama, "stream": False}, False, "ollama", "chat"),
        WireCase("ollama", "/api/chat", ollama, True, "ollama", "chat"),
        WireCase("ollama-generate", "/api/generate", {"model": "llama3.2", "prompt": WORDS, "stream": False}, False,
                 "ollama", "text_completion"),
        WireCase("bedrock", "/model/anthropic.claude-3-haiku-20240307-v1:0/converse", converse, False, "bedrock",
                 "chat"),
        WireCase("bedrock", "/model/anthropic.claude-3-haiku-20240307-v1:0/converse-stream", converse, True,
                 "bedrock", "chat"),
    ]


CASES = _cases()
CLIENTS = ("httpx", "httpx-async", "httpx2", "requests", "aiohttp", "urllib")


# --------------------------------------------------------------------------- the clients, as an app would use them

def fetch(client: str, url: str, case: WireCase) -> bytes:
    """POST the case with ``client``; the bytes the caller read (streams read piece by piece, as apps do)."""
    if client in ("httpx", "httpx2"):
        import importlib

        module = importlib.import_module(client)
        with module.Client() as http:
            if not case.stream:
                return bytes(http.post(url, json=case.body).content)
            with http.stream("POST", url, json=case.body) as response:
                return b"".join(response.iter_bytes())
    if client == "httpx-async":
        return asyncio.run(_httpx_async(url, case))
    if client == "requests":
        import requests

        if not case.stream:
            return bytes(requests.post(url, json=case.body, timeout=30).content)
        with requests.post(url, json=case.body, stream=True, timeout=30) as response:
            return b"".join(response.iter_content(chunk_size=None))
    if client == "aiohttp":
        return asyncio.run(_aiohttp(url, case))
    if client == "urllib":
        import json
        import urllib.request

        request = urllib.request.Request(url, data=json.dumps(case.body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return b"".join(response) if case.stream else response.read()  # a stream line by line
    raise ValueError(client)


async def _httpx_async(url: str, case: WireCase) -> bytes:
    import httpx

    async with httpx.AsyncClient() as http:
        if not case.stream:
            return bytes((await http.post(url, json=case.body)).content)
        async with http.stream("POST", url, json=case.body) as response:
            return b"".join([chunk async for chunk in response.aiter_bytes()])


async def _aiohttp(url: str, case: WireCase) -> bytes:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.post(url, json=case.body) as response:
        if not case.stream:
            return await response.read()
        return b"".join([chunk async for chunk in response.content.iter_any()])


# --------------------------------------------------------------------------- the provider's own figures

def _payloads(raw: bytes) -> list[Any]:
    """Every JSON value in a body: the body itself, SSE data lines, NDJSON lines or event-stream payloads."""
    text = raw.strip()
    if text.startswith(b"{") and b"\n{" not in text:
        return [json.loads(text)]
    found = []
    for line in raw.split(b"\n"):
        line = line.strip()
        if line.startswith(b"data:"):
            line = line[5:].strip()
        if line.startswith(b"{"):
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    if not found and raw[:1] == b"\x00":  # AWS event-stream, read with botocore's own parser
        from botocore.eventstream import EventStreamBuffer

        buffer = EventStreamBuffer()
        buffer.add_data(raw)
        found = [json.loads(message.payload) for message in buffer if message.payload]
    return found


def _deep(value: Any, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every dict under ``value`` holding any of ``names``."""
    out: list[dict[str, Any]] = []
    if isinstance(value, dict):
        if any(n in value for n in names):
            out.append(value)
        for v in value.values():
            out.extend(_deep(v, names))
    elif isinstance(value, list):
        for v in value:
            out.extend(_deep(v, names))
    return out


READERS: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any]], int]]] = {
    "prompt_tokens": (("prompt_tokens",), lambda u: u.get("prompt_tokens", 0) + u.get("completion_tokens", 0)),
    "input_tokens": (("input_tokens", "output_tokens"),
                     lambda u: u.get("input_tokens", 0) + u.get("output_tokens", 0)
                     + u.get("cache_read_input_tokens", 0) + u.get("cache_creation_input_tokens", 0)),
    "promptTokenCount": (("promptTokenCount",), lambda u: u.get("promptTokenCount", 0)
                         + u.get("candidatesTokenCount", 0) + u.get("thoughtsTokenCount", 0)),
    "billed_units": (("billed_units",), lambda u: u["billed_units"].get("input_tokens", 0)
                     + u["billed_units"].get("output_tokens", 0)),
    "prompt_eval_count": (("prompt_eval_count",), lambda u: u.get("prompt_eval_count", 0) + u.get("eval_count", 0)),
    "inputTokens": (("inputTokens",), lambda u: u.get("inputTokens", 0) + u.get("outputTokens", 0)),
}
_FORMAT_READER = {"openai-chat": "prompt_tokens", "openai-completions": "prompt_tokens",
                  "openai-embeddings": "prompt_tokens", "openai-responses": "input_tokens", "anthropic": "input_tokens",
                  "gemini": "promptTokenCount", "gemini-embed": "promptTokenCount", "cohere": "billed_units",
                  "cohere-embed": "billed_units", "ollama": "prompt_eval_count", "ollama-generate": "prompt_eval_count",
                  "bedrock": "inputTokens"}


def provider_total(case: WireCase, raw: bytes) -> int | None:
    """The tokens the provider says it billed, from the last usage it sent in ``raw`` (cumulative in every
    format here), or None when it sent none."""
    names, total = READERS[_FORMAT_READER[case.name]]
    found = [u for p in _payloads(raw) for u in _deep(p, names)]
    return total(found[-1]) if found else None


_VARYING = [(re.compile(rb"(sim-?|sim_|-emb-|-)(\d+)\""), rb"\1N\""),
            (re.compile(rb'"created(_at)?":\s*("[^"]*"|\d+)'), b'"c":0'),
            (re.compile(rb'"(created_at|completed_at)":\s*\d+'), b'"c":0')]


def normalized(raw: bytes) -> bytes:
    """The bytes with what differs between any two answers (sequence numbers in ids, clocks) masked."""
    for pattern, replacement in _VARYING:
        raw = pattern.sub(replacement, raw)
    return raw
