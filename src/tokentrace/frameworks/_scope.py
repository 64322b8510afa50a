"""What a framework adapter says about the code running now (its agent, run, step), on a contextvar: ``pushed``
sets it for the length of a call of the framework's own function, and ``around`` makes a wrapt wrapper that does
so for sync functions, coroutines, generators and async generators alike (a generator's values are pushed only
while it runs, step by step, so nothing leaks into its caller between two steps)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from .._support import errors as _errors
from .._support.text import bounded

_EMPTY: Mapping[str, str] = MappingProxyType({})
current: ContextVar[Mapping[str, str]] = ContextVar("tokentrace_framework_attributes", default=_EMPTY)
"""The framework's attribution here: inner frameworks' values over outer ones'."""

readers: list[Callable[[], Mapping[str, Any] | None]] = []
"""Adapters that read a framework's own context at each call (LangChain's runnable config) rather than push."""
active = False
"""Whether any adapter is installed: ``attributes`` is not consulted otherwise (one module global read a call)."""


def attributes() -> Mapping[str, str]:
    """The framework attribution in force here: what readers see, under what adapters pushed."""
    values = current.get()
    for reader in readers:
        try:
            read = reader()
        except Exception as exc:
            _errors.report("framework.read", exc, "a framework's context could not be read")
            continue
        if read:
            values = {**{k: bounded(str(v)) for k, v in read.items() if v is not None and v != ""}, **values}
    return values


Extract = Callable[[Any, tuple[Any, ...], dict[str, Any]], Mapping[str, Any]]
"""(instance, args, kwargs) of the framework's call -> attribution values (None or "" values are left out)."""


@contextmanager
def pushed(values: Mapping[str, Any]) -> Iterator[None]:
    clean = {key: bounded(str(value)) for key, value in values.items() if value is not None and value != ""}
    if not clean:
        yield
        return
    token = current.set(MappingProxyType({**current.get(), **clean}))
    try:
        yield
    finally:
        current.reset(token)


def around(framework: str, extract: Extract, entered: bool = False) -> Callable[..., Any]:
    """A wrapt wrapper pushing ``extract``'s values while the wrapped function runs. A failing ``extract`` (a version
    of the framework shaped otherwise) pushes nothing and is counted; the call itself is never touched.

    ``entered``: the function returns an async context manager (pydantic-ai's ``Agent.iter``), and the values are
    pushed from its ``__aenter__`` to its ``__aexit__``, ``extract`` getting what it entered as ``kwargs["entered"]``.
    """

    def values(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
        try:
            return extract(instance, args, kwargs)
        except Exception as exc:
            _errors.report(f"framework.{framework}", exc, f"{framework}: could not read what is running; its calls "
                           "are measured without the framework's attribution")
            return _EMPTY

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if entered:
            return _PushedWhileEntered(wrapped(*args, **kwargs),
                                       lambda value: values(instance, args, {**kwargs, "entered": value}))
        if inspect.iscoroutinefunction(wrapped):
            return _coroutine(wrapped(*args, **kwargs), lambda: values(instance, args, kwargs))
        if inspect.isasyncgenfunction(wrapped):
            return _async_generator(wrapped(*args, **kwargs), lambda: values(instance, args, kwargs))
        if inspect.isgeneratorfunction(wrapped):
            return _generator(wrapped(*args, **kwargs), lambda: values(instance, args, kwargs))
        with pushed(values(instance, args, kwargs)):
            return wrapped(*args, **kwargs)

    return wrapper


class _PushedWhileEntered:
    """An async context manager, with the values pushed while it is entered (in the task that entered it)."""

    def __init__(self, manager: Any, values: Callable[[Any], Mapping[str, Any]]) -> None:
        self._manager = manager
        self._values = values
        self._pushed: Any = None

    async def __aenter__(self) -> Any:
        value = await self._manager.__aenter__()
        self._pushed = pushed(self._values(value))
        self._pushed.__enter__()
        return value

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self._manager.__aexit__(*exc_info)
        finally:
            if self._pushed is not None:
                self._pushed.__exit__(None, None, None)


async def _coroutine(coroutine: Any, values: Callable[[], Mapping[str, Any]]) -> Any:
    with pushed(values()):
        return await coroutine


def _generator(inner: Generator[Any, Any, Any], values: Callable[[], Mapping[str, Any]]) -> Generator[Any, Any, Any]:
    """``inner``, each step run with the values pushed (read again each step: a step number moves)."""
    method: Callable[[Any], Any] = inner.send
    argument: Any = None
    while True:
        with pushed(values()):
            try:
                item = method(argument)
            except StopIteration as stop:
                return stop.value
        try:
            argument = yield item
            method = inner.send
        except GeneratorExit:
            inner.close()
            raise
        except BaseException as exc:  # thrown in by the caller: into ``inner``, as it would have been
            method, argument = inner.throw, exc


async def _async_generator(inner: AsyncGenerator[Any, Any], values: Callable[[], Mapping[str, Any]]
                           ) -> AsyncGenerator[Any, Any]:
    method: Callable[[Any], Any] = inner.asend
    argument: Any = None
    while True:
        with pushed(values()):
            try:
                item = await method(argument)
            except StopAsyncIteration:
                return
        try:
            argument = yield item
            method = inner.asend
        except GeneratorExit:
            await inner.aclose()
            raise
        except BaseException as exc:
            method, argument = inner.athrow, exc
