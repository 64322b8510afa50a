"""The tier that served a call and what it does to its price.

Owns the bundled *modifier table* (each entry dated, with the provider's pricing page) and the price of a model
at a served tier. Providers write the tier *label* on a record with ``_usage.tier_label`` (``flex``, ``priority``,
``batch``, ``standard+speed=fast``, ``standard+inference_geo=us``); ``parse`` reads it back here.

Which price wins, first to last:

1. a user's modifier entry (the prices file's ``modifiers`` table, or ``instrument(prices={"modifiers": ...})``);
2. genai-prices' own price for that tier and model (its ``price_variants``: ``service_tier``, ``processing=batch``,
   ``speed=fast``), from the bundled or the refreshed table;
3. this module's ``BUNDLED`` table: a standard value, another genai-prices variant that bills the same (OpenAI flex
   is billed at Batch rates), or a multiplier on the standard rates;
4. nothing: the call is unpriced, and its ``price_source`` says why (never a silent standard price).

Stdlib only; genai-prices objects are read through their attributes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .._registry import AZURE_OPENAI
from .._usage import ASKED_PREFIX
from .types import ModelPrice, Rates, from_genai_prices

TIER_KEY = "service_tier"
"""The modifier key of the tier name itself (the label's first part)."""
BATCH = ("processing", "batch")
"""genai-prices' key for Batch API prices; a tier named ``batch`` (Anthropic message batches) is priced by it."""


def parse(tier_label: str) -> list[tuple[str, str]]:
    """The (key, value) modifiers of a label: ``standard+speed=fast`` -> [(service_tier, standard), (speed, fast)];
    a tier named ``batch`` -> (processing, batch), genai-prices' spelling."""
    first, *rest = tier_label.split("+")
    pairs = [BATCH if first == "batch" else (TIER_KEY, first)]
    for part in rest:
        key, _, value = part.partition("=")
        pairs.append((key, value))
    return pairs


@dataclass(frozen=True, slots=True)
class Modifier:
    """How one provider's modifier value is billed relative to the model's standard price."""

    provider: str
    """tokentrace provider id, or ``*`` for any provider."""
    key: str
    value: str
    multiplier: float | None = None
    """Every token rate times this (fees are not multiplied); None: no multiplier."""
    same_as: tuple[str, str] | None = None
    """Billed like this genai-prices variant of the model, when it has one (then ``multiplier`` is not used)."""
    unpriced: str = ""
    """Why a call at this value cannot be priced (when neither genai-prices nor the user prices it)."""
    models: str = ""
    """A regular expression the model name must match for this entry to apply (else the value bills standard);
    empty: every model."""
    source: str = ""
    """The provider's pricing page this entry was read from."""
    checked: str = ""
    """The date (ISO) the page was read."""

    @property
    def standard(self) -> bool:
        return self.multiplier == 1.0 and self.same_as is None


def _standard(provider: str, key: str, value: str, source: str, checked: str) -> Modifier:
    return Modifier(provider, key, value, multiplier=1.0, source=source, checked=checked)


_OPENAI = "https://developers.openai.com/api/docs/pricing"
_OPENAI_FLEX = "https://developers.openai.com/api/docs/guides/flex-processing"
_ANTHROPIC = "https://platform.claude.com/docs/en/about-claude/pricing"
_ANTHROPIC_GEO = "https://platform.claude.com/docs/en/manage-claude/data-residency"
_ANTHROPIC_FAST = "https://platform.claude.com/docs/en/build-with-claude/fast-mode"
_ANTHROPIC_VERTEX = "https://platform.claude.com/docs/en/build-with-claude/claude-on-vertex-ai"
CLAUDE_4_5_AND_LATER = r"^claude-[a-z]+-(?:[5-9]|[1-9]\d+|4-[5-9])(?:[-@]|$)"
"""Claude Sonnet 4.5 and every later model (``claude-sonnet-4-5@20250929``, ``claude-opus-5``), whose regional
Vertex AI endpoints are billed 10% over the global one; not ``claude-sonnet-4``, ``claude-opus-4-1``, ``claude-3``."""
_GEMINI = "https://ai.google.dev/gemini-api/docs/pricing"
_BEDROCK = "https://aws.amazon.com/bedrock/pricing/"
_GROQ_FLEX = "https://console.groq.com/docs/flex-processing"
_VERTEX_FLEX = "https://docs.cloud.google.com/vertex-ai/generative-ai/docs/flex-paygo"
_GEMINI_FLEX = "https://ai.google.dev/gemini-api/docs/flex-inference"
_CHECKED = "2026-12-02"

BUNDLED: tuple[Modifier, ...] = (
    _standard("openai", TIER_KEY, "default", _OPENAI, _CHECKED),
    _standard("openai", TIER_KEY, "auto", _OPENAI, _CHECKED),
    Modifier("openai", TIER_KEY, "flex", multiplier=0.5, same_as=BATCH, source=_OPENAI_FLEX, checked=_CHECKED),
    Modifier("openai", TIER_KEY, "priority", unpriced="no priority price is known for this model",
             source=_OPENAI, checked=_CHECKED),
    Modifier("openai", TIER_KEY, "scale", unpriced="Scale Tier is billed by reserved units, not per token",
             source=_OPENAI, checked=_CHECKED),
    Modifier("openai", *BATCH, multiplier=0.5, source=_OPENAI, checked=_CHECKED),
    _standard(AZURE_OPENAI, TIER_KEY, "default", _OPENAI, _CHECKED),
    _standard(AZURE_OPENAI, TIER_KEY, "auto", _OPENAI, _CHECKED),
    _standard("anthropic", TIER_KEY, "standard", _ANTHROPIC, _CHECKED),
    Modifier("anthropic", *BATCH, multiplier=0.5, source=_ANTHROPIC, checked=_CHECKED),
    Modifier("anthropic", TIER_KEY, "priority", unpriced="Priority Tier is billed by a capacity commitment",
             source=_ANTHROPIC, checked=_CHECKED),
    Modifier("anthropic", "speed", "fast", unpriced="fast mode has a per-model price and none is known for this "
             "model", source=_ANTHROPIC_FAST, checked=_CHECKED),
    Modifier("anthropic", "inference_geo", "us", multiplier=1.1, source=_ANTHROPIC_GEO, checked=_CHECKED),
    Modifier("anthropic", "endpoint", "regional", multiplier=1.1, models=CLAUDE_4_5_AND_LATER,
             source=_ANTHROPIC_VERTEX, checked="2026-12-03"),
    _standard("anthropic", "inference_geo", "global", _ANTHROPIC_GEO, "2026-12-06"),
    _standard("anthropic", "inference_geo", "not_available", _ANTHROPIC_GEO, "2026-12-06"),
    _standard("google", TIER_KEY, "standard", _GEMINI, _CHECKED),
    Modifier("google", TIER_KEY, "flex", multiplier=0.5, same_as=BATCH, source=_GEMINI_FLEX, checked="2026-12-06"),
    Modifier("vertex_ai", TIER_KEY, "flex", multiplier=0.5, same_as=BATCH, source=_VERTEX_FLEX,
             checked="2026-12-06"),
    Modifier("vertex_ai", TIER_KEY, "provisioned_throughput", unpriced="provisioned throughput is billed by its "
             "commitment", source=_VERTEX_FLEX, checked="2026-12-06"),
    _standard("google", TIER_KEY, "unspecified", _GEMINI, _CHECKED),
    _standard("vertex_ai", TIER_KEY, "standard", _GEMINI, _CHECKED),
    _standard("vertex_ai", TIER_KEY, "unspecified", _GEMINI, _CHECKED),
    _standard("bedrock", TIER_KEY, "default", _BEDROCK, _CHECKED),
    Modifier("bedrock", TIER_KEY, "reserved", unpriced="reserved capacity is billed by its commitment",
             source=_BEDROCK, checked=_CHECKED),
    _standard("groq", TIER_KEY, "on_demand", _GROQ_FLEX, _CHECKED),
    _standard("groq", TIER_KEY, "flex", _GROQ_FLEX, _CHECKED),
    _standard("*", TIER_KEY, "standard", "", _CHECKED),
    _standard("*", TIER_KEY, "default", "", _CHECKED),
    _standard("*", TIER_KEY, "on_demand", "", "2026-12-06"),
)
"""The bundled modifier table. A value not here (Gemini flex, Bedrock priority, ...) is priced only where
genai-prices or the user prices it; else the call is unpriced, with the reason."""

ModifierKey = tuple[str, str, str]


def table(entries: tuple[Modifier, ...] = BUNDLED) -> dict[ModifierKey, Modifier]:
    return {(m.provider, m.key, m.value): m for m in entries}


_BUNDLED_TABLE = table()


def _find(modifiers: Mapping[ModifierKey, Modifier], provider: str, key: str, value: str) -> Modifier | None:
    return modifiers.get((provider, key, value)) or modifiers.get(("*", key, value))


def _variant_context(entry: Any, key: str, value: str) -> bool:
    """Whether genai-prices' model entry has a price variant for exactly this modifier."""
    return any(variant.when == {key: value} for variant in getattr(entry, "price_variants", None) or ())


def served_price(price: ModelPrice, provider: str, tier_label: str, now: Any,
                 user: Mapping[ModifierKey, Modifier], model: str = "") -> tuple[ModelPrice | None, str | None]:
    """``price`` (``model``'s standard price) at the served ``tier_label``: (price, None), or (None, why not)."""
    if tier_label.startswith(ASKED_PREFIX):
        return None, (f"unpriced: the response does not say which tier served the call (it asked for "
                      f"{tier_label[len(ASKED_PREFIX):]})")
    context: dict[str, str] = {}
    multiplier = 1.0
    notes: list[str] = []
    entry = price.entry
    for key, value in parse(tier_label):
        mine = _find(user, provider, key, value)
        bundled = _find(_BUNDLED_TABLE, provider, key, value)
        if mine is not None:
            rule: Modifier | None = mine
            origin = "your modifiers"
        elif bundled is not None and bundled.standard:
            continue
        elif entry is not None and _variant_context(entry, key, value):
            context[key] = value
            notes.append(f"{key}={value} (genai-prices)")
            continue
        else:
            rule, origin = bundled, f"modifier table, {bundled.source}, checked {bundled.checked}" if bundled else ""
        if rule is None:
            return None, (f"unpriced: {provider} {key}={value} is not in the modifier table; price it in the "
                          f"prices file's modifiers")
        if rule.standard or (rule.models and not re.search(rule.models, model)):
            continue
        if rule.same_as is not None and entry is not None and _variant_context(entry, *rule.same_as):
            context[rule.same_as[0]] = rule.same_as[1]
            notes.append(f"{key}={value} as {rule.same_as[0]}={rule.same_as[1]} (genai-prices)")
        elif rule.multiplier is not None:
            multiplier *= rule.multiplier
            notes.append(f"{key}={value} x{rule.multiplier:g} ({origin})")
        else:
            return None, f"unpriced: {provider} {key}={value}: {rule.unpriced or 'no price known'}"
    if not notes:
        return price, None
    if context:
        resolved = from_genai_prices(entry.get_prices(now, context), price.source)
        if resolved is None:
            return None, f"unpriced: genai-prices has no rates for {tier_label}"
        price = replace(resolved, web_search_usd=price.web_search_usd, file_search_usd=price.file_search_usd,
                        entry=entry)
    if multiplier != 1.0:
        price = replace(price, base=_scaled(price.base, multiplier),
                        tiers=tuple((limit, _scaled(rates, multiplier)) for limit, rates in price.tiers))
    return replace(price, source=f"{price.source} @ {'; '.join(notes)}"), None


def _scaled(rates: Rates, factor: float) -> Rates:
    return replace(rates, input=rates.input * factor, cache_read=rates.cache_read * factor,
                   cache_write=rates.cache_write * factor, output=rates.output * factor,
                   reasoning=rates.reasoning * factor,
                   cache_write_1h=None if rates.cache_write_1h is None else rates.cache_write_1h * factor,
                   input_audio=None if rates.input_audio is None else rates.input_audio * factor,
                   output_audio=None if rates.output_audio is None else rates.output_audio * factor,
                   input_image=None if rates.input_image is None else rates.input_image * factor,
                   output_image=None if rates.output_image is None else rates.output_image * factor,
                   cache_read_audio=None if rates.cache_read_audio is None else rates.cache_read_audio * factor)


def parse_user_modifiers(entries: Any) -> dict[ModifierKey, Modifier]:
    """The prices file's ``modifiers``: a list of {provider, key, value, multiplier | same_as_batch} (or a mapping
    ``"provider:key=value" -> multiplier``). Raises ValueError with what is wrong."""
    import math

    if isinstance(entries, Mapping):
        entries = [{"modifier": name, "multiplier": value} for name, value in entries.items()]
    if not isinstance(entries, (list, tuple)):
        raise ValueError("'modifiers' must be a list of {provider, key, value, multiplier} entries")
    found: dict[ModifierKey, Modifier] = {}
    for item in entries:
        if not isinstance(item, Mapping):
            raise ValueError(f"a modifier must be a table, not {item!r}")
        item = dict(item)
        if "modifier" in item:  # "openai:service_tier=priority"
            text = str(item.pop("modifier"))
            provider, _, pair = text.partition(":")
            key, _, value = pair.partition("=")
            item.update(provider=provider, key=key, value=value)
        unknown = sorted(set(item) - {"provider", "key", "value", "multiplier", "source", "checked"})
        if unknown:
            raise ValueError(f"unknown modifier field(s) {unknown}; use provider, key, value, multiplier")
        provider, key, value = (str(item.get(name) or "").strip().lower() for name in ("provider", "key", "value"))
        if not (provider and key and value):
            raise ValueError(f"a modifier needs provider, key and value (e.g. openai, service_tier, priority): {item}")
        multiplier = item.get("multiplier")
        if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) \
                or not math.isfinite(multiplier) or not 0 <= multiplier <= 100:
            raise ValueError(f"modifier {provider}:{key}={value}: multiplier must be a number from 0 to 100, "
                             f"not {multiplier!r}")
        found[(provider, key, value)] = Modifier(provider, key, value, multiplier=float(multiplier),
                                                 source=str(item.get("source", "")),
                                                 checked=str(item.get("checked", "")))
    return found
