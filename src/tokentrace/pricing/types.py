"""The shape of a price: ``Rates`` (USD per million tokens of each type), ``ModelPrice`` (a model's rates, prompt-size
tiers and per-request fees) and reading a genai-prices price into them. Stdlib only; no lookups (``pricing``) and
no tier rules (``pricing.tiers``) here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._usage import Media, Usage


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens, one rate per token type."""

    input: float
    cache_read: float
    cache_write: float
    output: float
    reasoning: float
    cache_write_1h: float | None = None
    """Rate of cache writes with a 1-hour TTL; None: the cache_write rate."""
    input_audio: float | None = None
    """Rate of audio input tokens (``Usage.input_audio``); None: the input rate."""
    output_audio: float | None = None
    """Rate of audio output tokens (``Usage.output_audio``); None: the output rate."""
    input_image: float | None = None
    """Rate of image input tokens (``Usage.input_image``); None: the input rate."""
    output_image: float | None = None
    """Rate of image output tokens (``Usage.output_image``); None: the output rate."""
    cache_read_audio: float | None = None
    """Rate of cached audio input tokens (``Usage.cache_read_audio``); None: the cache_read rate."""

    @classmethod
    def filled(cls, inp: float | None, out: float | None, read: float | None, write: float | None,
               reasoning: float | None, write_1h: float | None, input_audio: float | None = None,
               output_audio: float | None = None, input_image: float | None = None,
               output_image: float | None = None, cache_read_audio: float | None = None) -> Rates | None:
        """Rates from a price list's entries, where a missing cache rate is the input rate and a missing reasoning
        rate the output rate; None when neither input nor output has a rate."""
        if inp is None and out is None:
            return None
        inp, out = inp or 0.0, out or 0.0
        return cls(input=inp, cache_read=inp if read is None else read, cache_write=inp if write is None else write,
                   output=out, reasoning=out if reasoning is None else reasoning, cache_write_1h=write_1h,
                   input_audio=input_audio, output_audio=output_audio, input_image=input_image,
                   output_image=output_image, cache_read_audio=cache_read_audio)

    def cost(self, usage: Usage) -> float:
        inp, read, write, out, reasoning, write_1h = usage[:6]
        rate_1h = self.cache_write if self.cache_write_1h is None else self.cache_write_1h
        tokens = (
            inp * self.input
            + read * self.cache_read
            + (write - write_1h) * self.cache_write
            + write_1h * rate_1h
            + out * self.output
            + reasoning * self.reasoning
        )
        audio_in, audio_out, image_in, image_out, cached_audio = usage[8:13]
        if audio_in and self.input_audio is not None:  # audio and images at their own rates, not the text rates
            tokens += audio_in * (self.input_audio - self.input)
        if audio_out and self.output_audio is not None:
            tokens += audio_out * (self.output_audio - self.output)
        if image_in and self.input_image is not None:
            tokens += image_in * (self.input_image - self.input)
        if image_out and self.output_image is not None:
            tokens += image_out * (self.output_image - self.output)
        if cached_audio and self.cache_read_audio is not None:
            tokens += cached_audio * (self.cache_read_audio - self.cache_read)
        return tokens / 1_000_000


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """The rates of one model, possibly tiered by prompt size, and where they came from."""

    base: Rates
    tiers: tuple[tuple[int, Rates], ...] = ()
    """(threshold, rates), ascending: applies to the whole call when all input exceeds threshold."""
    source: str = ""
    web_search_usd: float = 0.0
    """USD per server-side web search (``Usage.web_search_requests``)."""
    file_search_usd: float = 0.0
    """USD per server-side file search (``Usage.file_search_requests``)."""
    entry: Any = field(default=None, compare=False, repr=False)
    """The genai-prices model entry the price came from (its tier variants price a served tier); None otherwise."""
    audio_second_usd: float = 0.0
    """USD per second of audio a transcription or translation is billed by (genai-prices ``audio_hours`` / 3,600)."""
    character_usd: float = 0.0
    """USD per character of input a speech call is billed by (genai-prices ``input_mchars`` / 1,000,000)."""
    per_image: bool = False
    """Billed per image by size and quality (``pricing.images``), not by tokens."""
    priced_as: str = ""
    """The tokentrace provider whose price this is, when it is not the call's own (a price inferred at an unknown
    host from OpenAI's entry: ``openai``): its tier and modifier rules price the served tier. Empty: the call's."""

    def rates_for(self, usage: Usage) -> Rates:
        rates = self.base
        if self.tiers:
            all_input = usage.all_input
            for threshold, tier_rates in self.tiers:
                if all_input > threshold:
                    rates = tier_rates
        return rates

    def cost(self, usage: Usage) -> float:
        """Tokens and fees: what the call is billed."""
        tokens = (self.rates_for(usage) if self.tiers else self.base).cost(usage)
        return tokens + self.fees(usage) if usage.web_search_requests or usage.file_search_requests else tokens

    def cache_effect(self, usage: Usage) -> tuple[float, float]:
        """(what the call's cache reads saved: their tokens at the uncached input price minus what they cost, what
        its cache writes cost beyond the uncached input price), in USD; net saving = the first minus the second."""
        if not (usage.cache_read or usage.cache_write):
            return 0.0, 0.0
        rates = self.rates_for(usage)  # the tier is chosen by all input, which moving tokens does not change
        cost = rates.cost(usage)
        reads_uncached = usage._replace(input=usage.input + usage.cache_read, cache_read=0, cache_read_audio=0,
                                        input_audio=usage.input_audio + usage.cache_read_audio)
        reads_uncached_cost = rates.cost(reads_uncached)
        nothing_cached = reads_uncached._replace(input=reads_uncached.input + usage.cache_write, cache_write=0,
                                                 cache_write_1h=0)
        return reads_uncached_cost - cost, reads_uncached_cost - rates.cost(nothing_cached)

    def media_cost(self, model: str, media: Media) -> float | None:
        """What a media call's units besides tokens cost (audio seconds, characters, images); None when a unit it
        was billed by has no rate here (the call is then unpriced: never $0 because a rate was not listed)."""
        total = 0.0
        if media.audio_seconds:
            if not self.audio_second_usd:
                return None
            total += media.audio_seconds * self.audio_second_usd
        if media.characters:
            if not self.character_usd:
                return None
            total += media.characters * self.character_usd
        if media.images:
            from .images import per_image

            rate = per_image(model, media.image_quality, media.image_size) if self.per_image else None
            if rate is None:
                return None
            total += media.images * rate
        return total

    def fees(self, usage: Usage) -> float:
        """The per-request fees of a call (web and file searches), on top of its tokens."""
        return usage.web_search_requests * self.web_search_usd + usage.file_search_requests * self.file_search_usd


def _decimal_at(value: Any, threshold: int) -> float | None:
    """The rate of a genai-prices value (Decimal or TieredPrices) for calls above ``threshold``."""
    if value is None:
        return None
    tiers = getattr(value, "tiers", None)
    if tiers is None:
        return float(value)
    rate = value.base
    for tier in tiers:
        if threshold >= tier.start:
            rate = tier.price
    return float(rate)


def from_genai_prices(model_price: Any, source: str, entry: Any = None) -> ModelPrice | None:
    """A genai-prices ``ModelPrice`` (rates per million tokens, per thousand searches) as tokentrace's."""
    keys = ("input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok", "output_reasoning_mtok",
            "cache_write_1h_mtok", "input_audio_mtok", "output_audio_mtok", "input_image_mtok", "output_image_mtok",
            "cache_audio_read_mtok")
    values = {key: getattr(model_price, key, None) for key in keys}
    if values["cache_write_mtok"] is None:
        values["cache_write_mtok"] = getattr(model_price, "cache_write_5m_mtok", None)
    starts = sorted({t.start for v in values.values() for t in (getattr(v, "tiers", None) or ())})

    def rates(threshold: int) -> Rates | None:
        got = {key: _decimal_at(value, threshold) for key, value in values.items()}
        return Rates.filled(got["input_mtok"], got["output_mtok"], got["cache_read_mtok"], got["cache_write_mtok"],
                            got["output_reasoning_mtok"], got["cache_write_1h_mtok"], got["input_audio_mtok"],
                            got["output_audio_mtok"], got["input_image_mtok"], got["output_image_mtok"],
                            got["cache_audio_read_mtok"])

    base = rates(-1)
    audio_hours = getattr(model_price, "input_audio_hours", None) or getattr(model_price, "audio_hours", None)
    mchars = getattr(model_price, "input_mchars", None)
    if base is None:
        if audio_hours is None and mchars is None:
            return None
        base = Rates.filled(0.0, 0.0, None, None, None, None)  # billed by its media units only
        assert base is not None
    tiers = tuple((start, r) for start in starts if (r := rates(start)) is not None)
    searches = getattr(model_price, "web_searches_kcount", None)
    file_searches = getattr(model_price, "storage_searches_kcount", None)
    return ModelPrice(base=base, tiers=tiers, source=source,
                      web_search_usd=float(searches) / 1000 if searches is not None else 0.0,
                      file_search_usd=float(file_searches) / 1000 if file_searches is not None else 0.0, entry=entry,
                      audio_second_usd=float(audio_hours) / 3600 if audio_hours is not None else 0.0,
                      character_usd=float(mchars) / 1_000_000 if mchars is not None else 0.0)
