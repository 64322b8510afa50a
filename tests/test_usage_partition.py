"""Each provider's usage partition, table-driven: usage payloads shaped as the providers document them -> Usage.

Every row also checks the partition against the provider's own total, where the payload carries one.
The end-to-end suites prove the same rules through the real SDKs; these pin each rule in isolation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tokentrace import Usage
from tokentrace.providers import anthropic, google_genai, openai

Row = tuple[str, Callable[[Any], Usage | None], dict[str, Any], Usage, int | None]


def _chat(provider: str) -> Callable[[Any], Usage | None]:
    return lambda usage: openai.usage_from_completion_usage(usage, provider)


def _responses(provider: str) -> Callable[[Any], Usage | None]:
    return lambda usage: openai.usage_from_response_usage(usage, provider)


ROWS: list[Row] = [
    ("openai chat, plain", _chat("openai"),
     {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29},
     Usage(input=19, output=10), 29),
    ("openai chat, cached prompt and reasoning inside completion", _chat("openai"),
     {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
      "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
      "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0}},
     Usage(input=86, cache_read=1920, output=44, reasoning=256), 2306),
    ("openai chat, cache writes split from input", _chat("openai"),
     {"prompt_tokens": 1200, "completion_tokens": 20, "total_tokens": 1220,
      "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 1024}},
     Usage(input=176, cache_write=1024, output=20), 1220),
    ("xai chat, reasoning billed on top (total says so)", _chat("xai"),
     {"prompt_tokens": 32, "completion_tokens": 9, "total_tokens": 176,
      "prompt_tokens_details": {"cached_tokens": 6},
      "completion_tokens_details": {"reasoning_tokens": 135}},
     Usage(input=26, cache_read=6, output=9, reasoning=135), 176),
    ("xai chat, no total: the host's rule (on top)", _chat("xai"),
     {"prompt_tokens": 32, "completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 135}},
     Usage(input=32, output=9, reasoning=135), None),
    ("openai-compatible host, reasoning inside (total says so)", _chat("openai_compatible"),
     {"prompt_tokens": 10, "completion_tokens": 50, "total_tokens": 60,
      "completion_tokens_details": {"reasoning_tokens": 30}},
     Usage(input=10, output=20, reasoning=30), 60),
    ("openai embeddings", _chat("openai"),
     {"prompt_tokens": 8, "total_tokens": 8}, Usage(input=8), 8),
    ("openai responses, cached input and reasoning", _responses("openai"),
     {"input_tokens": 328, "output_tokens": 52, "total_tokens": 380,
      "input_tokens_details": {"cached_tokens": 256}, "output_tokens_details": {"reasoning_tokens": 40}},
     Usage(input=72, cache_read=256, output=12, reasoning=40), 380),
    ("anthropic, cache read and 5m/1h writes (input already excludes both)", anthropic.usage_from,
     {"input_tokens": 50, "cache_read_input_tokens": 100_000, "cache_creation_input_tokens": 2_048,
      "cache_creation": {"ephemeral_5m_input_tokens": 1_024, "ephemeral_1h_input_tokens": 1_024},
      "output_tokens": 503},
     Usage(input=50, cache_read=100_000, cache_write=2_048, output=503, cache_write_1h=1_024), None),
    ("anthropic, plain", anthropic.usage_from,
     {"input_tokens": 2095, "output_tokens": 503}, Usage(input=2095, output=503), None),
    ("gemini, cached content, thoughts and tool-use prompt", google_genai.usage_from,
     {"prompt_token_count": 1200, "cached_content_token_count": 1000, "tool_use_prompt_token_count": 30,
      "candidates_token_count": 80, "thoughts_token_count": 400, "total_token_count": 1710},
     Usage(input=230, cache_read=1000, output=80, reasoning=400), 1710),
    ("gemini, plain", google_genai.usage_from,
     {"prompt_token_count": 7, "candidates_token_count": 5, "total_token_count": 12},
     Usage(input=7, output=5), 12),
]


@pytest.mark.parametrize(("name", "extract", "payload", "expected", "provider_total"), ROWS,
                         ids=[row[0] for row in ROWS])
def test_usage_payload_is_partitioned_and_sums_to_the_providers_total(
        name: str, extract: Callable[[Any], Usage | None], payload: dict[str, Any], expected: Usage,
        provider_total: int | None) -> None:
    usage = extract(payload)
    assert usage == expected
    if provider_total is not None:
        assert usage.total == provider_total


@pytest.mark.parametrize("extract", [_chat("openai"), _responses("openai"), anthropic.usage_from,
                                     google_genai.usage_from])
def test_missing_fields_count_zero_and_odd_ones_mean_usage_not_reported(
        extract: Callable[[Any], Usage | None]) -> None:
    """A missing or null count is 0; a count that is negative, a string, a boolean or a list cannot be one, and a
    usage that counts nothing at all (empty, a list) was not reported: never 0 tokens and $0 (issue 38, finding 6)."""
    assert extract(None) is None
    assert extract({}) is None and extract([]) is None  # type: ignore[arg-type]
    for odd in ({"prompt_tokens": "12", "input_tokens": "12", "prompt_token_count": "12"},
                {"prompt_tokens": -3, "input_tokens": -3, "prompt_token_count": -3},
                {"prompt_tokens": True, "input_tokens": True, "prompt_token_count": True},
                {"prompt_tokens": [1], "input_tokens": [1], "prompt_token_count": [1]},
                {"prompt_tokens": None, "input_tokens": None, "prompt_token_count": None}):
        assert extract(odd) is None, odd
    present = extract({"prompt_tokens": 3, "input_tokens": 3, "prompt_token_count": 3, "completion_tokens": None,
                       "output_tokens": None, "candidates_token_count": None})
    assert present is not None and present.total == 3


def test_usage_fields_start_with_the_five_token_types_in_order() -> None:
    """``Usage.counts()`` slices the first five fields: they must be TOKEN_TYPES, in that order."""
    from tokentrace._usage import TOKEN_TYPES, Usage

    assert Usage._fields[:5] == TOKEN_TYPES
    assert Usage(1, 2, 3, 4, 5, 6, 7).counts() == (1, 2, 3, 4, 5)
    assert Usage(1, 2, 3, 4, 5, 6, 7) + Usage(1, 1, 1, 1, 1, 1, 1) == Usage(2, 3, 4, 5, 6, 7, 8)
