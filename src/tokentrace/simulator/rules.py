"""The simulator's deterministic usage rules: request -> token counts, the same on every run. Pure functions.

Rules (documented in docs/simulator.md):
- prompt tokens: the ``x-sim-prompt-tokens`` header, else a message costs 4 tokens of framing plus one token
  per whitespace-separated word of its text; a plain-string prompt costs one token per word (at least 1);
- visible output is the request's max tokens (``max_tokens``/``max_completion_tokens``/``max_output_tokens``/
  ``maxOutputTokens``) when given, capped at 64, else 8;
- reasoning tokens: the ``x-sim-reasoning-tokens`` header, else for reasoning models (o1/o3/o4, gpt-5,
  grok-3-mini, grok-4, or any request with ``reasoning_effort``/``reasoning``) two thirds of the max tokens
  (the cap covers reasoning and visible output, as OpenAI's does) or twice the default visible output, else 0;
- cached input: the ``x-sim-cached-tokens`` header, else half the prompt when ``prompt_cache_key`` is given;
  cache writes: the ``x-sim-cache-write-tokens`` header (of which ``x-sim-cache-write-1h-tokens`` with a 1-hour
  TTL), else 0 (all capped at the prompt); Gemini tool-use prompt tokens: ``x-sim-tool-use-tokens``;
- served tier: the ``x-sim-served-tier`` header, else the tier the request asked for, as the provider names the
  one it served (OpenAI: ``auto`` -> ``default``, ``fast`` -> ``priority``; Anthropic: ``auto``/``standard_only``
  -> ``standard``), else the provider's standard name;
- server-side tool calls (OpenAI Responses): ``x-sim-web-search-calls: N`` and ``x-sim-file-search-calls: N``
  add that many ``web_search_call`` / ``file_search_call`` items to the output; ``x-sim-tool-call: NAME`` makes a
  non-streamed response a ``function_call`` of NAME with ``{}`` arguments instead of a message (an agent handing off);
- audio: ``x-sim-audio-tokens: IN,OUT`` says that many of the prompt's and the visible output's tokens were audio
  (OpenAI ``audio_tokens`` details, Gemini's AUDIO modality), capped at them; images: ``x-sim-image-tokens: IN,OUT``
  likewise (Gemini's IMAGE modality; image models such as gemini-2.5-flash-image answer with image tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

DEFAULT_OUTPUT_TOKENS = 8
MAX_OUTPUT_TOKENS = 64
MESSAGE_FRAMING_TOKENS = 4
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "grok-3-mini", "grok-4")
# request model -> the dated snapshot the provider reports back
SNAPSHOTS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06"}


@dataclass(frozen=True)
class SimUsage:
    prompt: int
    cached: int
    cache_write: int
    visible_output: int
    reasoning: int
    cache_write_1h: int = 0
    tool_use_prompt: int = 0


SERVED_AS = {"auto": "default", "fast": "priority", "standard_only": "standard"}
"""A requested tier -> the one a provider reports serving it (OpenAI reports fast mode as priority)."""


def served_tier(requested: Any, headers: Mapping[str, str], standard: str) -> str:
    """The tier a response says served the call (see the module's rules)."""
    forced = headers.get("x-sim-served-tier")
    if forced:
        return forced
    if isinstance(requested, str) and requested:
        served = SERVED_AS.get(requested, requested)
        return standard if served in ("default", "standard") else served
    return standard


def modality_tokens(headers: Mapping[str, str], prompt: int, output: int, kind: str = "audio") -> tuple[int, int]:
    """(input, output) tokens of a modality (``audio``, ``image``) its ``x-sim-<kind>-tokens`` header asks for,
    capped at the totals."""
    value = headers.get(f"x-sim-{kind}-tokens")
    if not value:
        return 0, 0
    audio_in, _, audio_out = value.partition(",")
    return min(int(audio_in or 0), prompt), min(int(audio_out or 0), output)


def _words(text: Any) -> int:
    if isinstance(text, str):
        return len(text.split())
    if isinstance(text, list):  # content parts / blocks
        return sum(_words(part.get("text", "")) for part in text if isinstance(part, Mapping))
    if isinstance(text, Mapping):  # a Gemini Content or an Anthropic block
        return _words(text.get("parts", text.get("text", "")))
    return 0


def prompt_tokens(body: Mapping[str, Any]) -> int:
    requests = body.get("requests")  # Gemini batchEmbedContents
    if isinstance(requests, list):
        return sum(max(_words(r.get("content")), 1) for r in requests if isinstance(r, Mapping))
    messages = body.get("messages", body.get("contents"))
    if isinstance(messages, list):
        system = body.get("system", body.get("systemInstruction"))
        return sum(MESSAGE_FRAMING_TOKENS + _words(m.get("content", m.get("parts")))
                   for m in messages if isinstance(m, Mapping)) + _words(system)
    prompt = body.get("input", body.get("prompt", body.get("texts")))
    if isinstance(prompt, str):
        return max(_words(prompt), 1) + _words(body.get("instructions"))
    if isinstance(prompt, list):
        if all(isinstance(p, str) for p in prompt):
            return sum(max(_words(p), 1) for p in prompt)
        return sum(
            MESSAGE_FRAMING_TOKENS + _words(m.get("content")) for m in prompt if isinstance(m, Mapping)
        ) + _words(body.get("instructions"))
    return 1


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return max(int(value), 0)
    except ValueError:
        return None


def is_reasoning(body: Mapping[str, Any]) -> bool:
    model = str(body.get("model", ""))
    thinking = body.get("thinking") or (body.get("generationConfig") or {}).get("thinkingConfig") or {}
    budget = thinking.get("budget_tokens", thinking.get("thinkingBudget", 1)) if isinstance(thinking, Mapping) else 0
    return (model.startswith(REASONING_PREFIXES) or "reasoning_effort" in body or "reasoning" in body
            or bool(thinking and budget))


def usage_for(body: Mapping[str, Any], headers: Mapping[str, str], embeddings: bool = False) -> SimUsage:
    prompt = _header_int(headers, "x-sim-prompt-tokens") or prompt_tokens(body)
    if embeddings:
        return SimUsage(prompt, 0, 0, 0, 0)
    generation = body.get("generationConfig") or {}
    max_out = next(
        (v for k in ("max_completion_tokens", "max_tokens", "max_output_tokens", "maxOutputTokens")
         if isinstance(v := body.get(k, generation.get(k)), int) and v > 0),
        None,
    )
    if max_out is not None:
        max_out = min(max_out, MAX_OUTPUT_TOKENS)
    visible = max_out if max_out is not None else DEFAULT_OUTPUT_TOKENS
    reasoning = _header_int(headers, "x-sim-reasoning-tokens")
    if reasoning is None and is_reasoning(body):
        if max_out is not None and max_out > 1:  # the cap covers reasoning and visible output together
            reasoning = (2 * max_out) // 3
            visible = max_out - reasoning
        else:
            reasoning = 2 * visible
    reasoning = reasoning or 0
    cached = _header_int(headers, "x-sim-cached-tokens")
    if cached is None:
        cached = prompt // 2 if body.get("prompt_cache_key") or body.get("cachedContent") else 0
    cached = min(cached, prompt)
    write = min(_header_int(headers, "x-sim-cache-write-tokens") or 0, prompt - cached)
    write_1h = min(_header_int(headers, "x-sim-cache-write-1h-tokens") or 0, write)
    tool_use = _header_int(headers, "x-sim-tool-use-tokens") or 0
    return SimUsage(prompt, cached, write, visible, reasoning, write_1h, tool_use)


def response_model(model: str) -> str:
    return SNAPSHOTS.get(model, model)


def output_pieces(text: str, count: int) -> list[str]:
    """Split ``text`` into ``count`` consecutive non-empty-when-possible pieces (one per streamed chunk)."""
    count = max(count, 1)
    size, extra = divmod(len(text), count)
    pieces, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def sample_json(schema: Mapping[str, Any]) -> Any:
    """A minimal value that satisfies a simple JSON schema (objects, strings, numbers, booleans, arrays)."""
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {name: sample_json(sub) for name, sub in schema.get("properties", {}).items()}
    if kind == "integer":
        return 42
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if "enum" in schema:
        return schema["enum"][0]
    return "simulated"
