"""The normalized usage partition and the per-call record every sink speaks; stdlib only."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping, NamedTuple

TOKEN_TYPES: tuple[str, ...] = ("input", "cache_read", "cache_write", "output", "reasoning")
"""The five token types; together they partition the tokens a provider bills. The one list: everything else
(ledger columns, report fields, CLI headers, Prometheus ``token_type`` values) derives from it."""

TOKEN_COLUMNS: tuple[str, ...] = tuple(f"{t}_tokens" for t in TOKEN_TYPES)
"""The ledger's (and reports') column of each token type, in ``TOKEN_TYPES`` order."""

_EMPTY: Mapping[str, str] = MappingProxyType({})

build = tuple.__new__
"""``build(UsageRecord, (every field, in order))``: one of these NamedTuples without the call of its Python-level
``__new__`` (the hot path builds several per LLM call). Every field must be given, defaults included."""


class Usage(NamedTuple):
    """Billed tokens of one call, split so that no token is counted twice.

    ``input`` excludes cached input, ``output`` excludes hidden reasoning; the five fields
    sum to what the provider bills. Immutable (a NamedTuple: one is built per call, so it must be cheap to build);
    ``+`` adds field by field.
    """

    input: int = 0
    cache_read: int = 0
    cache_write: int = 0
    output: int = 0
    reasoning: int = 0
    cache_write_1h: int = 0
    """Of ``cache_write``, the tokens written with a 1-hour TTL (Anthropic); priced at their own rate."""
    web_search_requests: int = 0
    """Server-side web searches the provider ran and bills per search (Anthropic ``server_tool_use``, OpenAI
    Responses ``web_search_call`` items); not tokens, so not in the partition, but priced into the call's fees."""
    file_search_requests: int = 0
    """Server-side file (vector store) searches billed per call (OpenAI Responses ``file_search_call`` items)."""
    input_audio: int = 0
    """Of ``input``, the audio tokens (OpenAI ``prompt_tokens_details.audio_tokens``, Gemini's AUDIO modality):
    still counted as input, priced at the model's audio input rate."""
    output_audio: int = 0
    """Of ``output``, the audio tokens (OpenAI ``completion_tokens_details.audio_tokens``, Gemini's AUDIO
    modality of the candidates): still counted as output, priced at the model's audio output rate."""
    input_image: int = 0
    """Of ``input``, the image tokens where the provider reports them (Gemini's IMAGE modality): still counted as
    input, priced at the model's image input rate where it has one."""
    output_image: int = 0
    """Of ``output``, the image tokens (Gemini image models' IMAGE modality of the candidates): still counted as
    output, priced at the model's image output rate (gemini-2.5-flash-image: $30 per million, not $2.50)."""
    cache_read_audio: int = 0
    """Of ``cache_read``, the audio tokens (Gemini's ``cache_tokens_details`` AUDIO modality): still counted as
    cache reads, priced at the model's cached-audio rate where it has one."""

    @property
    def total(self) -> int:
        return self.input + self.cache_read + self.cache_write + self.output + self.reasoning

    @property
    def all_input(self) -> int:
        """Every input token, cached or not (``gen_ai.usage.input_tokens``)."""
        return self.input + self.cache_read + self.cache_write

    @property
    def all_output(self) -> int:
        """Every output token, reasoning included (``gen_ai.usage.output_tokens``)."""
        return self.output + self.reasoning

    def counts(self) -> tuple[int, ...]:
        """The five counts in ``TOKEN_TYPES`` order."""
        return self[:5]

    def by_type(self) -> tuple[tuple[str, int], ...]:
        """(token type, count) in ``TOKEN_TYPES`` order."""
        return tuple(zip(TOKEN_TYPES, self[:5], strict=True))

    def __add__(self, other: Usage) -> Usage:  # type: ignore[override]
        return Usage(
            self.input + other.input,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
            self.output + other.output,
            self.reasoning + other.reasoning,
            self.cache_write_1h + other.cache_write_1h,
            self.web_search_requests + other.web_search_requests,
            self.file_search_requests + other.file_search_requests,
            self.input_audio + other.input_audio,
            self.output_audio + other.output_audio,
            self.input_image + other.input_image,
            self.output_image + other.output_image,
            self.cache_read_audio + other.cache_read_audio,
        )


ZERO_USAGE = Usage()


class RequestInfo(NamedTuple):
    """What is known about a call before it is sent (a NamedTuple: built on every call, so cheap to build)."""

    provider: str
    """tokentrace provider id (``openai``, ``xai``, ``azure_openai``, ...)."""
    operation: str
    """GenAI operation name: ``chat``, ``text_completion``, ``embeddings``, ``generate_content``."""
    request_model: str
    stream: bool = False
    server_address: str | None = None
    server_port: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    input_chars: int = 0
    """Characters of prompt text (for budget estimates before the call is sent)."""
    input_messages: int = 0
    cached: bool = False
    """An app-level response-cache hit (record_cache_hit): nothing is sent, nothing is spent."""
    captured_input: str | None = None
    """Prompt messages as JSON, only when content capture is on."""
    choices: int = 1
    """Completions asked for (OpenAI ``n``): the output estimate counts each."""
    max_searches: int = 0
    """Server-side web searches the call may run (a web-search tool's ``max_uses``, else ``DEFAULT_SEARCHES``):
    priced per search into the estimate."""
    requested_tier: str | None = None
    """The tier or modifiers the request asks for (``tier_label``: ``priority``, ``standard+speed=fast``): a
    budget estimates the call at the dearer of it and the standard price."""
    endpoint_modifiers: str | None = None
    """Modifiers the endpoint itself implies, whatever the response says (``endpoint=regional``: Claude through a
    regional Vertex AI endpoint): added to the served tier label."""
    priced_at: str | None = None
    """The genai-prices provider whose prices apply when the endpoint names one other than the call's provider (the
    Hugging Face router's ``/novita/v1/...`` path: ``huggingface_novita``); None: the provider's own."""

    @property
    def price_provider(self) -> str:
        """Who the call's price is looked up at: ``priced_at``, else the provider."""
        return self.priced_at or self.provider

    def priced_name(self, model: str) -> str:
        """The name ``model`` is priced by: a router's ``:backend`` suffix is not part of it."""
        return model.rsplit(":", 1)[0] if self.priced_at is not None and ":" in model else model


class Media(NamedTuple):
    """What a media call is billed by besides tokens (all optional): seconds of audio (transcription, translation),
    characters of input (speech), images made, and the size and quality asked for (per-image prices)."""

    audio_seconds: float = 0.0
    characters: int = 0
    images: int = 0
    image_size: str | None = None
    image_quality: str | None = None


class ResponseInfo(NamedTuple):
    """What a provider's response says about a call (all optional)."""

    usage: Usage | None = None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()
    output_text: str | None = None
    """Completion text, only when content capture is on."""
    reported_cost_usd: float | None = None
    """The cost the provider itself reported for the call (OpenRouter's ``usage.cost``); wins over price tables."""
    service_tier: str | None = None
    """The tier that served the call as the response says it (``tier_label``: ``flex``, ``priority``,
    ``standard+speed=fast``, ...); None when the provider did not say."""
    media: Media | None = None
    """A media call's units besides tokens (audio seconds, characters, images)."""


def tier_label(tier: Any, **modifiers: Any) -> str | None:
    """A record's tier label: the provider's tier name (lower-cased), then each modifier the response names that
    is not its provider's standard (``speed="fast"``, ``inference_geo="us"``) as ``+key=value``.

    None when the response names no tier and no modifier. A modifier equal to ``standard``/``global`` is left out:
    ``tier_label("standard", speed="standard")`` is ``standard``. Read on every response: a plain tier name with no
    modifier (the usual case) is looked up, not rebuilt.
    """
    if type(tier) is str and not any(modifiers.values()):
        if tier in _PLAIN_LABELS:
            return _PLAIN_LABELS[tier]
        label = _text(tier) or None
        if len(_PLAIN_LABELS) < 256:  # the names providers use; anything stranger is just not kept
            _PLAIN_LABELS[tier] = label
        return label
    name = _text(tier)
    parts = [name or "standard"] if name or any(_text(v) for v in modifiers.values()) else []
    for key, value in modifiers.items():
        text = _text(value)
        if text and text not in _DEFAULT_MODIFIER_VALUES:
            parts.append(f"{key}={text}")
    return "+".join(parts) if parts else None


_DEFAULT_MODIFIER_VALUES = frozenset({"standard", "global", "default", "not_available"})
"""Modifier values that name no surcharge (Anthropic's ``inference_geo: "not_available"`` on models without data
residency pricing is billed at standard): left out of the label."""
_PLAIN_LABELS: dict[str, str | None] = {}


def _text(value: Any) -> str:
    value = getattr(value, "value", value)  # an SDK enum
    return value.strip().lower()[:40] if isinstance(value, str) else ""


def with_modifier(label: str | None, modifier: str) -> str:
    """A tier label with one more ``key=value`` modifier (after ``standard`` when it named no tier)."""
    return f"{label or 'standard'}+{modifier}"


def at_endpoint(request: RequestInfo, modifier: str) -> RequestInfo:
    """``request`` sent to an endpoint billed apart (``endpoint=regional``): the served tier will carry the modifier
    whatever the response says, and a budget estimates the call with it."""
    return request._replace(endpoint_modifiers=modifier, requested_tier=with_modifier(request.requested_tier, modifier))


ASKED_PREFIX = "asked:"
"""A tier label of a call whose response does not say which tier served it, after the tier it asked for."""


def asked_tier(requested: Any) -> str | None:
    """``asked:<tier>`` for a non-standard requested tier (flex, priority); None for a standard or no tier."""
    name = tier_label(requested)
    return None if name is None or name in ("standard", "default", "unspecified", "auto") else ASKED_PREFIX + name


class UsageRecord(NamedTuple):
    """One finished call: what every sink receives, and what the ledger stores (immutable; a NamedTuple, as one
    is built per call)."""

    ts_utc: float
    """Start of the call, seconds since the epoch (UTC)."""
    provider: str
    model: str
    """The model the provider reported, else the requested one."""
    request_model: str
    operation: str
    usage: Usage
    cost_usd: float | None
    """None when the model has no known price (never a silent 0)."""
    price_source: str | None
    latency_s: float
    status: str
    """``ok``, ``error``, ``blocked`` or ``cached``."""
    stream: bool = False
    ttft_s: float | None = None
    error_type: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()
    usage_reported: bool = True
    """False when the provider sent no usage (stream abandoned early, odd response)."""
    attributes: Mapping[str, str] = _EMPTY
    """Attribution keys in effect for the call (feature, session_id, user_id, ...)."""
    trace_id: str | None = None
    output_text: str | None = None
    """Completion text, only when content capture is on (never written to the ledger)."""
    charged_usd: float | None = None
    """What budgets count for an answered call whose usage was not reported: its (high) estimate. None otherwise."""
    charged_tokens: int | None = None
    """Tokens budgets count for such a call (its estimate). None otherwise."""
    service_tier: str | None = None
    """The served tier (``ResponseInfo.service_tier``); None when the provider did not say."""
    fees_usd: float | None = None
    """Of ``cost_usd``, the per-request fees (web and file searches); None when unpriced or reported whole."""
    cache_effect_usd: tuple[float, float] | None = None
    """(what prompt-cache reads saved against the uncached input price, what cache writes cost beyond it), USD;
    None when the call was not priced from a price table. Net saving: the first minus the second."""
    media: Media | None = None
    """A media call's units besides tokens (``Media``); None for other calls."""

    def charged(self) -> tuple[float, int]:
        """(USD, tokens) the call counts against budgets: its cost and total, or its estimate without usage."""
        if self.charged_usd is not None:
            return self.charged_usd, self.charged_tokens or 0
        return self.cost_usd or 0.0, self.usage.total

    @property
    def feature(self) -> str:
        return self.attributes.get("feature", "")
