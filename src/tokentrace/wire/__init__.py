"""The wire layer: LLM calls seen in the HTTP clients themselves (httpx, httpx2, requests, aiohttp, lm15,
http.client and so urllib), under the SDKs, and realtime sessions in the ``websockets`` client.

A call that no patched SDK method made (LiteLLM, raw HTTP, an SDK tokentrace does not patch) is measured from its
request and response on the wire, with the same provider rules, sinks and budgets as an SDK-level call. A call a
patched SDK method is measuring is never measured again here. ``install`` / ``uninstall`` are called by
``instrument()`` / ``uninstrument()``; ``instrument(http=False)`` or ``TOKENTRACE_HTTP=0`` leaves the clients alone.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable

import wrapt

from ..instrumentation import patching as _patching
from .exchange import switch

logger = logging.getLogger("tokentrace")



_hooked: dict[str, list[_patching.Applied]] = {}
_import_hooks: set[str] = set()


def _clients() -> dict[str, tuple[tuple[str, Any], ...]]:
    """Module -> (``Class.method``, wrapper) to hook in it."""
    from . import (
        aiohttp_hook,
        aiohttp_ws_hook,
        http_client_hook,
        httpx_hook,
        litellm_hook,
        lm15_hook,
        requests_hook,
        websockets_hook,
    )

    table: dict[str, tuple[tuple[str, Any], ...]] = {module: httpx_hook.PATCHES for module in httpx_hook.MODULES}
    table[requests_hook.MODULE] = requests_hook.PATCHES
    table[aiohttp_hook.MODULE] = aiohttp_hook.PATCHES + aiohttp_ws_hook.PATCHES
    table[litellm_hook.MODULE] = litellm_hook.PATCHES
    table.update(lm15_hook.PATCHES)
    table[http_client_hook.MODULE] = http_client_hook.PATCHES
    table.update(websockets_hook.PATCHES)
    return table


def _hook_module(module_name: str) -> None:
    if _hooked.get(module_name) or not switch.on:
        return
    applied: list[_patching.Applied] = []
    for attribute, wrapper in _clients()[module_name]:
        target = _patching.find(module_name, attribute)
        if target is None:
            logger.debug("%s.%s not found; calls through it are not seen on the wire", module_name,
                         attribute)
            continue
        done = _patching.apply(*target, wrapper)
        if done is not None:
            applied.append(done)
    _hooked[module_name] = applied


def _on_import(module_name: str) -> Callable[[Any], None]:
    def hook(_module: Any) -> None:
        try:
            _hook_module(module_name)
        except Exception as exc:  # never break the application's import
            logger.warning("could not hook %s: %s", module_name, exc)

    return hook


def install() -> None:
    """Hook every installed HTTP client now, or when it is first imported."""
    switch.on = True
    for module_name in _clients():
        if module_name in sys.modules:
            _hook_module(module_name)
        elif module_name not in _import_hooks and _patching.installed(module_name):
            _import_hooks.add(module_name)
            wrapt.register_post_import_hook(_on_import(module_name), module_name)


def uninstall() -> None:
    """Put every hooked method back (calls in flight finish into the sinks they started with)."""
    switch.on = False
    for applied in _hooked.values():
        _patching.restore(applied)
    _hooked.clear()
