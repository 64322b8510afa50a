"""Attribution: context manager and decorator, sync and async, nesting merges, isolation across threads/tasks."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tokentrace import attributes
from tokentrace.context import current_attributes


def test_nested_blocks_merge_and_restore() -> None:
    with attributes(feature="chat", user_id="u1"):
        with attributes(feature="search", session_id="s1"):
            assert dict(current_attributes()) == {"feature": "search", "user_id": "u1", "session_id": "s1"}
        assert dict(current_attributes()) == {"feature": "chat", "user_id": "u1"}
    assert dict(current_attributes()) == {}


def test_extra_keys_and_non_string_values_become_strings() -> None:
    with attributes(tenant="acme", priority=3):
        assert dict(current_attributes()) == {"tenant": "acme", "priority": "3"}


def test_decorator_on_sync_and_async_functions() -> None:
    @attributes(feature="sync")
    def sync_fn() -> dict[str, str]:
        return dict(current_attributes())

    @attributes(feature="async")
    async def async_fn() -> dict[str, str]:
        await asyncio.sleep(0)
        return dict(current_attributes())

    assert sync_fn() == {"feature": "sync"}
    assert asyncio.run(async_fn()) == {"feature": "async"}
    assert dict(current_attributes()) == {}


def test_async_with_and_task_isolation() -> None:
    async def task(name: str) -> str:
        async with attributes(feature=name):
            await asyncio.sleep(0.01)
            return current_attributes()["feature"]

    async def main() -> list[str]:
        return await asyncio.gather(*(task(f"t{i}") for i in range(10)))

    assert asyncio.run(main()) == [f"t{i}" for i in range(10)]


def test_threads_do_not_see_each_others_attributes() -> None:
    seen: dict[int, str] = {}
    barrier = threading.Barrier(4)

    def worker(i: int) -> None:
        with attributes(feature=f"w{i}"):
            barrier.wait()
            seen[i] = current_attributes()["feature"]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {i: f"w{i}" for i in range(4)}


def test_invalid_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="identifier"):
        attributes(**{"not valid": "x"})
