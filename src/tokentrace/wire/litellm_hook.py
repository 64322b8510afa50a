"""LiteLLM: its calls are measured on the wire (its own httpx clients, or the openai SDK it drives); this adapter
only keeps a block budget's refusal what it is. LiteLLM maps every exception its HTTP client raises to one of its
own (a refused request became ``litellm.InternalServerError``); ``completion``, ``acompletion``, ``embedding`` and
``aembedding`` re-raise the ``BudgetExceeded`` (or ``BudgetUnavailable``) found in that exception's chain.
"""

from __future__ import annotations

from typing import Any

from ..budgets.refusal import CallRefused

MODULE = "litellm"


def _refusal_in(exc: BaseException) -> BaseException | None:
    """The CallRefused behind ``exc`` (its cause/context chain, or LiteLLM's ``original_exception``), if any."""
    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, CallRefused):
            return current
        pending += [current.__cause__, current.__context__, getattr(current, "original_exception", None)]
    return None


def sync_call(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        return wrapped(*args, **kwargs)
    except Exception as exc:
        refused = _refusal_in(exc)
        if refused is None:
            raise
        raise refused from None


async def async_call(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        return await wrapped(*args, **kwargs)
    except Exception as exc:
        refused = _refusal_in(exc)
        if refused is None:
            raise
        raise refused from None


PATCHES = (("completion", sync_call), ("acompletion", async_call), ("embedding", sync_call),
           ("aembedding", async_call), ("text_completion", sync_call), ("atext_completion", async_call))
