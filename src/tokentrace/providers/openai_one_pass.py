"""The one-pass reading of the usual openai chat completion (``plain_chat_response``): ``providers.openai`` asks it
first and reads anything it declines field by field. Stdlib only; no SDK import."""

from __future__ import annotations

from typing import Any

from .._usage import ResponseInfo, Usage, build, tier_label
from ._fields import MAX_COUNT, REPORTED_BILL_FIELDS

_BILL_FIELD_NAMES = tuple(name for name, _ in REPORTED_BILL_FIELDS)
"""Where hosts say what they billed (``REPORTED_BILL_FIELDS``): a usage holding any is read field by field."""


def _plain_detail(details: Any, name: str, limit: int) -> int | None:
    """A usage details object's ``name`` count, 0 when absent, for ``plain_chat_response``; None (read it field by
    field) unless the object is a pydantic model without extra fields whose count is a plain int up to ``limit``
    and whose other counts the general reader would take (cache writes, audio) are absent or 0."""
    fields = getattr(details, "__dict__", None)
    if fields is None or getattr(details, "__pydantic_extra__", True):
        return None
    for other in ("cache_write_tokens", "audio_tokens"):
        value = fields.get(other)
        if value is not None and (type(value) is not int or value):
            return None
    value = fields.get(name)
    if value is None:
        return 0
    return value if type(value) is int and 0 <= value <= limit else None


def plain_chat_response(result: Any) -> ResponseInfo | None:
    """The usual answer of the openai SDK read in one pass, on the calling thread right after the SDK built it (a
    reading spread over a dozen small functions costs 2-3 times as much there as in a warm loop): a pydantic model
    without extra fields, one choice, plain int counts that add up to the total, no cache writes, audio or billed
    cost. None for anything else, which ``openai.chat_response_by_fields`` reads (giving what this gives whenever this
    gives anything: ``tests/test_openai.py`` checks the two agree on generated responses)."""
    values = getattr(result, "__dict__", None)
    if values is None or getattr(result, "__pydantic_extra__", True):
        return None
    choices, usage = values.get("choices"), values.get("usage")
    if type(choices) is not list or len(choices) != 1 or usage is None:
        return None
    choice = getattr(choices[0], "__dict__", None)
    counts = getattr(usage, "__dict__", None)
    if choice is None or counts is None or getattr(choices[0], "__pydantic_extra__", True) or \
            getattr(usage, "__pydantic_extra__", True):
        return None
    prompt, completion, total = counts.get("prompt_tokens"), counts.get("completion_tokens"), counts.get("total_tokens")
    if not (type(prompt) is int and type(completion) is int and 0 <= prompt <= MAX_COUNT
            and 0 <= completion <= MAX_COUNT and type(total) is int and total == prompt + completion and total):
        return None
    for name in _BILL_FIELD_NAMES:
        if counts.get(name) is not None:
            return None
    details = counts.get("prompt_tokens_details")
    cached = 0 if details is None else _plain_detail(details, "cached_tokens", prompt)
    details = counts.get("completion_tokens_details")
    reasoning = 0 if details is None else _plain_detail(details, "reasoning_tokens", completion)
    if cached is None or reasoning is None:
        return None
    reason, model, response_id = choice.get("finish_reason"), values.get("model"), values.get("id")
    return build(ResponseInfo, (
        build(Usage, (prompt - cached, cached, 0, completion - reasoning, reasoning, 0, 0, 0, 0, 0, 0, 0, 0)),
        model if isinstance(model, str) and model else None,
        response_id if isinstance(response_id, str) and response_id else None,
        (reason,) if isinstance(reason, str) and reason else (),
        None,
        None,
        tier_label(tier) if (tier := values.get("service_tier")) is not None else None,
        None,  # media
    ))
