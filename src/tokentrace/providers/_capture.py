"""Opt-in content capture: prompt and completion text as semconv ``gen_ai.*.messages`` JSON, truncated."""

from __future__ import annotations

import json
from typing import Any

from ._fields import field

MAX_CAPTURED_CHARS = 32_768


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, (list, tuple)):
        parts: list[dict[str, Any]] = []
        for part in content:
            text = part if isinstance(part, str) else field(part, "text")
            if isinstance(text, str):
                parts.append({"type": "text", "content": text})
            else:
                parts.append({"type": str(field(part, "type") or "other")})
        return parts
    nested = field(content, "parts")
    return _parts(nested) if nested is not None else [{"type": "other"}]


def capture_messages(messages: Any, system: Any = None) -> str | None:
    """Prompt messages as semconv ``gen_ai.input.messages`` JSON (truncated); only called when capture is on."""
    try:
        out: list[dict[str, Any]] = []
        if system is not None:
            out.append({"role": "system", "parts": _parts(system)})
        items = [messages] if isinstance(messages, str) or not isinstance(messages, (list, tuple)) else messages
        for message in items:
            if isinstance(message, str):
                out.append({"role": "user", "parts": _parts(message)})
            else:
                role = field(message, "role") or "user"
                content = field(message, "content")
                out.append({"role": str(role), "parts": _parts(content if content is not None
                                                               else field(message, "parts"))})
        return json.dumps(out, default=str, ensure_ascii=False)[:MAX_CAPTURED_CHARS]
    except Exception:
        return None


def capture_output(text: str | None, finish_reasons: tuple[str, ...] = ()) -> str | None:
    if text is None:
        return None
    message: dict[str, Any] = {"role": "assistant", "parts": [{"type": "text", "content": text}]}
    if finish_reasons:
        message["finish_reason"] = finish_reasons[0]
    return json.dumps([message], ensure_ascii=False)[:MAX_CAPTURED_CHARS]
