"""The wire layer: LLM calls seen in the HTTP clients themselves (httpx, httpx2, requests, aiohttp), under the SDKs.

A call that no patched SDK method made (LiteLLM, raw HTTP, an SDK tokentrace does not patch) is measured from its
request and response on the wire, with the same provider rules, sinks and budgets as an SDK-level call. A call a
patched SDK method is measuring is never measured again here. ``install`` / ``uninstall`` are called by
``instrument()`` / ``uninstrument()``; ``instrument(http=False)`` or ``TOKENTRACE_HTTP=0`` leaves the clients alone.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from dataclasses import dataclass
from typing import Any, Callable

import wrapt

from .exchange import switch

logger = logging.getLogger("tokentrace")

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]


@dataclass
class _Hooked:
    owner: Any
    name: str
    original: Any
    wrapper: Any


_hooked: dict[str, list[_Hooked]] = {}
_import_hooks: set[str] = set()


def _clients() -> dict[str, tuple[tuple[str, Any], ...]]:
    """Module -> (``Class.method``, wrapper) to hook in it."""
    from . import aiohttp_hook, httpx_hook, litellm_hook, requests_hook

    table: dict[str, tuple[tuple[str, Any], ...]] = {module: httpx_hook.PATCHES for module in httpx_hook.MODULES}
    table[requests_hook.MODULE] = requests_hook.PATCHES
    table[aiohttp_hook.MODULE] = aiohttp_hook.PATCHES
    table[litellm_hook.MODULE] = litellm_hook.PATCHES
    return table


def _hook_module(module_name: str) -> None:
    if _hooked.get(module_name) or not switch.on:
        return
    applied: list[_Hooked] = []
    for attribute, wrapper in _clients()[module_name]:
        try:
            owner: Any = importlib.import_module(module_name)
            *path, name = attribute.split(".")
            for part in path:
                owner = getattr(owner, part)
            original = vars(owner)[name]
        except (ImportError, AttributeError, KeyError):
            logger.debug("tokentrace: %s.%s not found; calls through it are not seen on the wire", module_name,
                         attribute)
            continue
        if isinstance(original, wrapt.FunctionWrapper):
            continue
        hooked = wrapt.FunctionWrapper(original, wrapper)
        setattr(owner, name, hooked)
        applied.append(_Hooked(owner, name, original, hooked))
    _hooked[module_name] = applied


def _on_import(module_name: str) -> Callable[[Any], None]:
    def hook(_module: Any) -> None:
        try:
            _hook_module(module_name)
        except Exception as exc:  # never break the application's import
            logger.warning("tokentrace: could not hook %s: %s", module_name, exc)

    return hook


def install() -> None:
    """Hook every installed HTTP client now, or when it is first imported."""
    switch.on = True
    for module_name in _clients():
        if module_name in sys.modules:
            _hook_module(module_name)
        elif module_name not in _import_hooks and _installed(module_name):
            _import_hooks.add(module_name)
            wrapt.register_post_import_hook(_on_import(module_name), module_name)


def uninstall() -> None:
    """Put every hooked method back (calls in flight finish into the sinks they started with)."""
    switch.on = False
    for applied in _hooked.values():
        for hooked in applied:
            if vars(hooked.owner).get(hooked.name) is hooked.wrapper:
                setattr(hooked.owner, hooked.name, hooked.original)
    _hooked.clear()


def _installed(module_name: str) -> bool:
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False
