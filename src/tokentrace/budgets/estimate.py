"""The high estimate of a call from its request alone: what a budget reserves before the call is sent, and what
it charges an answered call whose provider never reported usage.

Prompt characters / 3 tokens (+ 8 per message) plus the request's max output tokens (``DEFAULT_OUTPUT_ESTIMATE``
when none is given) for each completion asked for, priced at the model's highest rates, plus the web searches its
tools allow, at the dearer of the standard price and the tier the request asks for (priority, fast mode); a floor
(``UNPRICED_ESTIMATE_USD``) for a model without a price, never $0.
"""

from __future__ import annotations

import math

from .._usage import RequestInfo
from ..pricing import ModelPrice, PriceTable

DEFAULT_OUTPUT_ESTIMATE = 4096
UNPRICED_ESTIMATE_USD = 0.10
"""A budget's estimate of a call to a model without a known price (a host that reports its own cost afterwards, an
unknown name): a floor, overridable with TOKENTRACE_UNPRICED_ESTIMATE_USD."""
CHARS_PER_TOKEN_ESTIMATE = 3


def estimate_tokens(request: RequestInfo) -> tuple[int, int]:
    """(input, output) token estimates for a request, on the high side (output once per completion asked for)."""
    input_estimate = math.ceil(request.input_chars / CHARS_PER_TOKEN_ESTIMATE) + 8 * max(request.input_messages, 1)
    output_estimate = request.max_tokens if request.max_tokens is not None else DEFAULT_OUTPUT_ESTIMATE
    return input_estimate, output_estimate * max(request.choices, 1)


def estimate_parts(request: RequestInfo) -> str:
    """What a refused call's estimate is made of, in words: the prompt, the output it may ask for, the searches."""
    input_tokens, output_tokens = estimate_tokens(request)
    asked = "the request's max_tokens" if request.max_tokens is not None else "no max_tokens given: the default"
    choices = f" for each of {request.choices} completions" if request.choices > 1 else ""
    searches = f" + {request.max_searches} web searches" if request.max_searches else ""
    return (f"the estimate: {input_tokens:,} prompt tokens from {request.input_chars:,} characters + "
            f"{output_tokens:,} output tokens, {asked}{choices}{searches}; a lower max_tokens lowers it")


def unpriced_estimate_usd() -> float:
    """What a budget reserves for a call to a model without a known price (``TOKENTRACE_UNPRICED_ESTIMATE_USD``,
    default UNPRICED_ESTIMATE_USD): never $0, so such calls cannot pass a USD limit unseen. ``instrument()`` refuses
    a value that is not a positive finite number (``check_unpriced_estimate``); here a bad one falls back."""
    try:
        return check_unpriced_estimate()
    except ValueError:
        return UNPRICED_ESTIMATE_USD


def check_unpriced_estimate() -> float:
    """``TOKENTRACE_UNPRICED_ESTIMATE_USD`` (default UNPRICED_ESTIMATE_USD), or ValueError naming the bad value."""
    import os

    text = os.environ.get("TOKENTRACE_UNPRICED_ESTIMATE_USD", "").strip()
    if not text:
        return UNPRICED_ESTIMATE_USD
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0 or value > 1000:
        raise ValueError(f"TOKENTRACE_UNPRICED_ESTIMATE_USD must be a number of dollars above 0 (at most 1000), "
                         f"not {text[:40]!r}")
    return value


def estimate(request: RequestInfo, prices: PriceTable) -> tuple[float, int]:
    """(USD, tokens) of the request at its worst: every input token at the highest input or cache-write rate,
    every output token at the highest output or reasoning rate, over the model's base and tier rates, plus every
    web search its tools allow at the per-search fee. A model without a price: ``unpriced_estimate_usd()``."""
    input_tokens, output_tokens = estimate_tokens(request)
    model = request.priced_name(request.request_model)
    price = prices.lookup(request.price_provider, model) if model else None
    if price is None:
        return unpriced_estimate_usd(), input_tokens + output_tokens
    usd = _worst(price, input_tokens, output_tokens)
    if request.requested_tier is not None:  # a dearer tier asked for (priority, fast mode): never below standard
        served, reason = prices.lookup_served(request.price_provider, model, request.requested_tier)
        usd = max(usd, _worst(served, input_tokens, output_tokens) if served is not None
                  else unpriced_estimate_usd() if reason else usd)
    return usd + request.max_searches * price.web_search_usd, input_tokens + output_tokens


def _worst(price: ModelPrice, input_tokens: int, output_tokens: int) -> float:
    """USD of the tokens at the price's highest input and output rates, over its base and prompt-size tiers."""
    rates = [price.base, *(r for _, r in price.tiers)]
    return max((input_tokens * max(r.input, r.cache_write, r.input_audio or 0.0, r.input_image or 0.0)
                + output_tokens * max(r.output, r.reasoning, r.output_audio or 0.0, r.output_image or 0.0)) / 1e6
               for r in rates)
