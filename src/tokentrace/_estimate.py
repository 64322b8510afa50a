"""The high estimate of a call from its request alone: what a budget reserves before the call is sent, and what
it charges an answered call whose provider never reported usage.

Prompt characters / 3 tokens (+ 8 per message) plus the request's max output tokens (``DEFAULT_OUTPUT_ESTIMATE``
when none is given), priced at the model's highest rates; $0 for a model without a price.
"""

from __future__ import annotations

import math

from ._usage import RequestInfo
from .pricing import PriceTable

DEFAULT_OUTPUT_ESTIMATE = 4096
CHARS_PER_TOKEN_ESTIMATE = 3


def estimate_tokens(request: RequestInfo) -> tuple[int, int]:
    """(input, output) token estimates for a request, on the high side."""
    input_estimate = math.ceil(request.input_chars / CHARS_PER_TOKEN_ESTIMATE) + 8 * max(request.input_messages, 1)
    output_estimate = request.max_tokens if request.max_tokens is not None else DEFAULT_OUTPUT_ESTIMATE
    return input_estimate, output_estimate


def estimate(request: RequestInfo, prices: PriceTable) -> tuple[float, int]:
    """(USD, tokens) of the request at its worst: every input token at the highest input or cache-write rate,
    every output token at the highest output or reasoning rate, over the model's base and tier rates."""
    input_tokens, output_tokens = estimate_tokens(request)
    price = prices.lookup(request.provider, request.request_model) if request.request_model else None
    if price is None:
        return 0.0, input_tokens + output_tokens
    rates = [price.base, *(r for _, r in price.tiers)]
    usd = max((input_tokens * max(r.input, r.cache_write) + output_tokens * max(r.output, r.reasoning)) / 1e6
              for r in rates)
    return usd, input_tokens + output_tokens
