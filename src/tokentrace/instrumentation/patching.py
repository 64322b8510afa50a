"""Putting wrapt wrappers on methods and taking them off again: the one mechanism both layers patch with (the SDK
layer's provider methods, the wire layer's HTTP client methods). Never wraps a method twice."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import wrapt


@dataclass
class Applied:
    """One method replaced by a wrapper; ``restore`` puts ``original`` back if the wrapper is still there."""

    owner: Any
    name: str
    original: Any
    wrapper: Any


def find(module_name: str, attribute: str) -> tuple[Any, str] | None:
    """(the class or module that defines ``attribute`` = ``"Class.method"`` or ``"function"``, its last name), or
    None when the module or the attribute is missing (never raises for that)."""
    try:
        owner: Any = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
    except (ImportError, AttributeError):
        return None
    return (owner, name) if name in vars(owner) else None


def apply(owner: Any, name: str, wrapper: Any) -> Applied | None:
    """Wrap ``owner.name`` with the wrapt wrapper function ``wrapper``; None when it is wrapped already (by us or
    another instrumentation)."""
    original = vars(owner)[name]
    if isinstance(original, wrapt.FunctionWrapper):
        return None
    wrapped = wrapt.FunctionWrapper(original, wrapper)
    setattr(owner, name, wrapped)
    return Applied(owner, name, original, wrapped)


def restore(applied: Iterable[Applied]) -> None:
    """Put the originals back (a method someone re-patched since is left to them)."""
    for one in applied:
        if vars(one.owner).get(one.name) is one.wrapper:
            setattr(one.owner, one.name, one.original)


def installed(module_name: str) -> bool:
    """The module's top-level package can be imported (found without importing anything: the spec of a submodule
    would import its parent packages, e.g. all of ``dspy`` for ``dspy._vendor.lm15``)."""
    try:
        return importlib.util.find_spec(module_name.partition(".")[0]) is not None
    except (ImportError, ValueError):
        return False
