"""Fork safety: everything tokentrace owns stays usable in a child made by ``fork`` (multiprocessing, gunicorn).

Objects with locks, threads or connections register here. Before a fork the parent waits (bounded) for work that
must not be copied half-done (the price table loading); after it the child gets fresh locks, its own writer
threads and connections, and the parent carries on. Hooks never raise into ``os.fork``.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from contextlib import suppress
from typing import Any

_objects: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
_child_hooks: list[Callable[[], None]] = []


def register(obj: Any) -> None:
    """Call ``obj._before_fork()``, ``obj._after_fork_in_parent()`` and ``obj._after_fork_in_child()`` (those it
    has) around every fork while ``obj`` is alive."""
    _objects[id(obj)] = obj


def in_child(hook: Callable[[], None]) -> None:
    """Run ``hook`` in every forked child (module-level state: fresh locks)."""
    _child_hooks.append(hook)


def _each(method: str) -> None:
    for obj in list(_objects.values()):
        hook = getattr(obj, method, None)
        if hook is not None:
            with suppress(Exception):  # a fork must go on; the object reports its own failures
                hook()


def _after_fork_in_child() -> None:
    for hook in _child_hooks:
        with suppress(Exception):
            hook()
    _each("_after_fork_in_child")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=lambda: _each("_before_fork"), after_in_parent=lambda: _each("_after_fork_in_parent"),
                        after_in_child=_after_fork_in_child)
