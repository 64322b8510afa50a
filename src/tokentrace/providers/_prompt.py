"""Prompt sizing for budget estimates: characters of text in any provider's prompt shape."""

from __future__ import annotations

from typing import Any

from ._fields import field


def text_length(value: Any) -> int:
    """Characters of text in a prompt of any provider's shape: strings, lists of parts or messages, and objects
    or dicts with ``text``, ``content`` or ``parts`` (for budget estimates; never raises on odd shapes)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(text_length(item) for item in value)
    if value is None:
        return 0
    for name in ("text", "content", "parts"):
        inner = field(value, name)
        if inner is not None:
            return text_length(inner)
    return 0
