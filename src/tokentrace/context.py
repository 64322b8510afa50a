"""Attribution of calls (feature, session, user, agent, ...) on contextvars: threads and tasks each see their own."""

from __future__ import annotations

import functools
import inspect
from contextvars import ContextVar, Token
from types import MappingProxyType, TracebackType
from typing import Any, Callable, Mapping, TypeVar

from ._support.text import bounded
from .frameworks import _scope as _framework

_F = TypeVar("_F", bound=Callable[..., Any])

_EMPTY: Mapping[str, str] = MappingProxyType({})
_current: ContextVar[Mapping[str, str]] = ContextVar("tokentrace_attributes", default=_EMPTY)


def current_attributes() -> Mapping[str, str]:
    """The attribution in effect here (an immutable mapping; cheap to call): the app's, over what an agent
    framework says is running (``tokentrace.frameworks``)."""
    app = _current.get()
    if not _framework.active:
        return app
    framework = _framework.attributes()
    return MappingProxyType({**framework, **app}) if framework else app


class attributes:  # noqa: N801 - used like a function: `with tokentrace.attributes(...)`
    """Attribute the LLM calls made inside to a feature, session, user, agent or any key.

    Works as a context manager (``with``/``async with``) and as a decorator of sync and
    async functions. Nested blocks merge: inner keys win, outer keys stay. Values are
    stored as strings; ``None`` leaves a key as the outer block set it.
    """

    __slots__ = ("_tokens", "_values")

    def __init__(
        self,
        feature: str | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        **extra: Any,
    ) -> None:
        given = {"feature": feature, "session_id": session_id, "user_id": user_id, "agent_id": agent_id}
        given.update(extra)
        for key in given:
            if not key.isidentifier():
                raise ValueError(f"attribute key {key!r} must be an identifier")
        self._values = {k: bounded(str(v)) for k, v in given.items() if v is not None}
        self._tokens: list[Token[Mapping[str, str]]] = []

    def __enter__(self) -> attributes:
        merged = dict(_current.get())
        merged.update(self._values)
        self._tokens.append(_current.set(MappingProxyType(merged)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _current.reset(self._tokens.pop())

    async def __aenter__(self) -> attributes:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: _F) -> _F:
        values = self._values

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with attributes(**values):
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with attributes(**values):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]
