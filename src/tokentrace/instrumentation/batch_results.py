"""Batch API results: recorded once each, when the application retrieves them, at batch prices.

- OpenAI ``batches.retrieve`` of a completed batch: one record for the batch (its ``usage`` and ``model``).
- Anthropic ``messages.batches.results``: one record per succeeded result, as the caller iterates the results
  (errored, canceled and expired requests are not billed and not recorded).

Each record has operation ``batch``, the served tier ``batch`` (priced by ``pricing.tiers``: the model's Batch
rates), and as ``response_id`` the batch id (OpenAI) or ``batch id/custom id`` (Anthropic); the ledger keeps
one row per ``response_id`` whoever retrieves it, in any process, after any restart. The attribution is the one in
force when the batch was *created*: kept in this process and in the ledger's ``llm_batches`` table by batch id.
Budgets count a result when it lands; a block budget never refuses one (the batch was submitted already).

Everything here runs inside the application's call and never raises into it: a failure is counted and logged.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import wrapt

from .._support import errors as _errors
from .._usage import RequestInfo, ResponseInfo
from ..context import attributes, current_attributes
from . import wrappers as _wrappers

MAX_REMEMBERED = 10_000
"""Batches (their attribution) and recorded result keys kept in this process; the ledger keeps them all."""

_attribution: OrderedDict[str, dict[str, str]] = OrderedDict()
_recorded: OrderedDict[str, None] = OrderedDict()
ledger_location: Any = None
_written: OrderedDict[str, Any] = OrderedDict()
"""batch id -> the keys of its results already in the ledger when this process first looked (bounded)."""
"""Where the ledger is (set by ``instrument()``): the batch attribution table lives there."""


def _remember(table: OrderedDict[str, Any], key: str, value: Any) -> None:
    table[key] = value
    table.move_to_end(key)
    if len(table) > MAX_REMEMBERED:
        table.popitem(last=False)


# --------------------------------------------------------------------------- attribution, by batch id


def created(provider: str, batch: Any) -> None:
    """A batch was created: keep the attribution in force now under its id."""
    batch_id = getattr(batch, "id", None)
    if not isinstance(batch_id, str):
        return
    attrs = dict(current_attributes())
    _remember(_attribution, batch_id, attrs)
    if ledger_location is not None:
        from ..ledger.store import open_db

        db = open_db(ledger_location, create=True, timeout=1.0)
        try:
            with db.transaction():
                db.execute("INSERT INTO llm_batches (batch_id, provider, attributes_json, created_utc) "
                           "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                           (batch_id, provider, json.dumps(attrs, sort_keys=True),
                            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
        finally:
            db.close()


def _attribution_of(batch_id: str) -> Mapping[str, str]:
    """The attribution the batch was created under: this process's memory, else the ledger's, else none."""
    found = _attribution.get(batch_id)
    if found is not None or ledger_location is None:
        return found or {}
    from ..ledger.store import open_db

    db = open_db(ledger_location, create=True, timeout=1.0)
    try:
        row = db.execute("SELECT attributes_json FROM llm_batches WHERE batch_id = ?", (batch_id,)).fetchone()
    finally:
        db.close()
    attrs = json.loads(row[0]) if row else {}
    _remember(_attribution, batch_id, attrs)
    return attrs


def _in_ledger(batch_id: str) -> frozenset[str]:
    """The results of ``batch_id`` the ledger already holds (read once per batch and process): their row was written
    by the process that first retrieved them, which counted them in its metrics; no other process counts them again."""
    found = _written.get(batch_id)
    if found is not None:
        return found  # type: ignore[no-any-return]
    keys: frozenset[str] = frozenset()
    if ledger_location is not None:
        from ..ledger.store import open_db

        db = open_db(ledger_location, create=True, timeout=1.0)
        try:
            prefix = batch_id + "/"  # an Anthropic batch's results are keyed "<batch id>/<custom id>"
            rows = db.execute("SELECT response_id FROM llm_usage WHERE operation = 'batch' AND (response_id = ? OR "
                              "substr(response_id, 1, ?) = ?)", (batch_id, len(prefix), prefix)).fetchall()
        finally:
            db.close()
        keys = frozenset(str(r[0]) for r in rows)
    _remember(_written, batch_id, keys)
    return keys


# --------------------------------------------------------------------------- recording a result


def record(provider: str, batch_id: str, key: str, model: str, usage: Any) -> None:
    """One batch result: a record at batch prices, attributed as its batch was; once per ``key`` here (the
    ledger keeps it once everywhere)."""
    recorder = _wrappers.active.recorder
    if recorder is None or key in _recorded:  # a result whose usage cannot be read still lands: its estimate
        return
    _remember(_recorded, key, None)
    if key in _in_ledger(batch_id):  # another process (or a restart) wrote it: counted there, not again here
        return
    with attributes(**_attribution_of(batch_id)):
        call = recorder.start(RequestInfo(provider=provider, operation="batch", request_model=model))
    call.detach()
    call.stop(ResponseInfo(usage=usage, response_model=model, response_id=key, service_tier="batch"))


def _openai_retrieved(batch: Any) -> None:
    from ..providers.openai import usage_from_response_usage

    if getattr(batch, "status", None) != "completed" or getattr(batch, "usage", None) is None:
        return
    model = getattr(batch, "model", None) or ""
    record("openai", batch.id, batch.id, model, usage_from_response_usage(batch.usage, "openai"))


def _anthropic_result(batch_id: str, item: Any) -> None:
    from ..providers.anthropic import usage_from

    result: Any = getattr(item, "result", None)
    if getattr(result, "type", None) != "succeeded":
        return
    message = result.message
    record("anthropic", batch_id, f"{batch_id}/{item.custom_id}", getattr(message, "model", "") or "",
           usage_from(getattr(message, "usage", None)))


def _safely(stage: str, action: Any, *args: Any) -> None:
    try:
        action(*args)
    except Exception as exc:
        _errors.report(stage, exc, "a batch result could not be recorded")


# --------------------------------------------------------------------------- the SDK methods


Hook = Callable[[Any, Any, Any], Any]
"""(the method's result, its args, its kwargs) -> what the caller gets: the result, or a proxy of it."""


def _after(hook: Hook, is_async: bool) -> Any:
    """A wrapt wrapper that hands an SDK method's result (awaited, for an async method) through ``hook``: the one
    place the sync and async shapes differ."""
    if is_async:
        async def wrapper_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            return hook(await wrapped(*args, **kwargs), args, kwargs)
        return wrapper_async

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return hook(wrapped(*args, **kwargs), args, kwargs)
    return wrapper


def _on_create(provider: str) -> Hook:
    def hook(batch: Any, args: Any, kwargs: Any) -> Any:
        _safely("batch.create", created, provider, batch)
        return batch
    return hook


def _on_openai_retrieve(batch: Any, args: Any, kwargs: Any) -> Any:
    _safely("batch.retrieve", _openai_retrieved, batch)
    return batch


class _Results(wrapt.BaseObjectProxy[Any]):
    """The results decoder, unchanged for the caller; each succeeded result is recorded as it passes."""

    def __init__(self, decoder: Any, batch_id: str) -> None:
        super().__init__(decoder)
        self._self_batch_id = batch_id

    def __iter__(self) -> Any:
        for item in self.__wrapped__:
            _safely("batch.results", _anthropic_result, self._self_batch_id, item)
            yield item

    def __next__(self) -> Any:
        item = next(self.__wrapped__)
        _safely("batch.results", _anthropic_result, self._self_batch_id, item)
        return item

    async def __aiter__(self) -> Any:
        async for item in self.__wrapped__:
            _safely("batch.results", _anthropic_result, self._self_batch_id, item)
            yield item

    async def __anext__(self) -> Any:
        item = await self.__wrapped__.__anext__()
        _safely("batch.results", _anthropic_result, self._self_batch_id, item)
        return item


def _batch_id(args: Any, kwargs: Any) -> str:
    value = kwargs.get("message_batch_id", args[0] if args else "")
    return value if isinstance(value, str) else ""


def _on_anthropic_results(decoder: Any, args: Any, kwargs: Any) -> Any:
    return _Results(decoder, _batch_id(args, kwargs))


_OPENAI = "openai.resources.batches"
_ANTHROPIC = "anthropic.resources.messages.batches"

PATCHES: dict[str, tuple[tuple[str, str, Any], ...]] = {
    "openai": (
        (_OPENAI, "Batches.create", _after(_on_create("openai"), False)),
        (_OPENAI, "AsyncBatches.create", _after(_on_create("openai"), True)),
        (_OPENAI, "Batches.retrieve", _after(_on_openai_retrieve, False)),
        (_OPENAI, "AsyncBatches.retrieve", _after(_on_openai_retrieve, True)),
    ),
    "anthropic": (
        (_ANTHROPIC, "Batches.create", _after(_on_create("anthropic"), False)),
        (_ANTHROPIC, "AsyncBatches.create", _after(_on_create("anthropic"), True)),
        (_ANTHROPIC, "Batches.results", _after(_on_anthropic_results, False)),
        (_ANTHROPIC, "AsyncBatches.results", _after(_on_anthropic_results, True)),
    ),
}
"""Provider -> (module, ``Class.method``, wrapt wrapper function) patched with that provider's SDK."""
