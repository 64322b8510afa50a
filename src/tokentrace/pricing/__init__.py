"""Prices: the dated genai-prices table plus user overrides, resolved once per (provider, model); cost of a Usage.

Reading override files and mappings into ``ModelPrice`` is ``pricing.overrides``' job.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from dataclasses import replace
from datetime import UTC
from pathlib import Path
from typing import Any, Mapping

from .._registry import GENAI_PRICES_IDS, LOCAL, MAKER_PROVIDERS
from .._registry import MODEL_MAKERS as MODEL_MAKER_IDS
from .._support import forksafe as _forksafe
from . import refresh as price_refresh
from . import tiers as tier_prices
from .types import ModelPrice, Rates, from_genai_prices

__all__ = ["LOCAL_PRICE", "ModelPrice", "PriceTable", "Rates", "clock"]

logger = logging.getLogger("tokentrace")
FORK_WAIT_S = 10.0
"""How long a fork waits for the price table to finish loading before the child loads its own."""

WEB_SEARCH_USD: dict[str, float] = {"anthropic": 10.0 / 1000}
"""USD per server-side web search by provider, where genai-prices' model entry has no ``web_searches_kcount``:
Anthropic bills $10 per 1,000 searches on top of tokens (anthropic.com/pricing, web search tool; checked 2026-11)."""
INFERRED_HOSTS = frozenset({"openai_compatible"})
"""Providers whose host is unknown: a model name that one price-table entry matches is priced from it."""
MODEL_MAKERS = tuple(genai for p in MODEL_MAKER_IDS if (genai := GENAI_PRICES_IDS.get(p)) is not None)
"""genai-prices ids of the companies that make models; an inferred price names one of them when it can."""
STALE_AFTER_DAYS = 365
"""A price table whose newest price change is older than this gets a warning (once per model)."""

clock = time.time
"""The time prices are chosen by (Unix seconds): the one clock of this module, so tests can pin it."""


def _time_of_day_changes(genai_model: Any, now: Any) -> list[float]:
    """When the time-of-day prices of a genai-prices model (DeepSeek's off-peak hours) next start or end after
    ``now`` (a UTC datetime), as Unix times: a price resolved now holds until the first of them."""
    from datetime import datetime, timedelta

    found: list[float] = []
    prices = getattr(genai_model, "prices", None)
    for conditional in prices if isinstance(prices, list) else ():
        constraint = getattr(conditional, "constraint", None)
        for moment in (getattr(constraint, "start_time", None), getattr(constraint, "end_time", None)):
            if moment is None or constraint is None or hasattr(constraint, "start_date"):
                continue
            change = datetime.combine(now.date(), moment if moment.tzinfo else moment.replace(tzinfo=UTC))
            while change <= now:
                change += timedelta(days=1)
            while change - timedelta(days=1) > now:
                change -= timedelta(days=1)
            found.append(change.timestamp())
    return found


LOCAL_PRICE = ModelPrice(base=Rates(0.0, 0.0, 0.0, 0.0, 0.0), source="local")
"""The price of a model running on the user's own machine (Ollama): nothing is billed per token."""


# --------------------------------------------------------------------------- genai-prices


MAX_CACHED_PRICES = 4096
"""(provider, model) prices kept; one more forgets the oldest, so memory stays bounded whatever names arrive."""


_SNAPSHOT_SUFFIXES = (
    re.compile(r"-v\d+(?::\d+)?$"),  # Bedrock's version: anthropic.claude-3-haiku-20240307-v1:0
    re.compile(r"(?:-|@)(?:19|20)\d\d-?[01]\d-?[0-3]\d$"),  # -2024-07-18, -20241022, @20250929
    re.compile(r"-(?:0[1-9]|1[0-2]|2[3-9])\d\d$"),  # -0613 (MMDD), -2407 (YYMM)
    re.compile(r"-[01]\d-[0-3]\d$"),  # -05-20 (a preview's MM-DD)
)
"""Date and version suffixes of model snapshots, stripped one after another to find an undated name. Each pattern
is anchored and has no nested repetition (linear time on any name)."""


def undated_names(model: str) -> list[str]:
    """The names a dated snapshot is also known by, most specific first: ``anthropic.claude-3-haiku-20240307-v1:0``
    -> [``anthropic.claude-3-haiku-20240307``, ``anthropic.claude-3-haiku``]; an undated name -> []."""
    found: list[str] = []
    name = model[:200]
    for pattern in _SNAPSHOT_SUFFIXES:
        shorter = pattern.sub("", name)
        if shorter != name and shorter:
            found.append(shorter)
            name = shorter
    return found


def _project_price(provider: str, model: str) -> ModelPrice | None:
    """A price genai-prices has not: a model billed per image (``pricing.images``: OpenAI's DALL-E), or OpenAI's
    moderation models, which are free."""
    from . import images

    name = model.lower()
    if provider not in ("openai", "azure_openai"):
        return None
    free = Rates.filled(0.0, 0.0, None, None, None, None)
    assert free is not None
    if name in images.PER_IMAGE:
        return ModelPrice(base=free, source=images.SOURCE, per_image=True)
    if name.startswith(("omni-moderation", "text-moderation")):
        return ModelPrice(base=free, source="OpenAI: moderation is free of charge")
    return None


def _bounded_put(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Store in a cache of at most MAX_CACHED_PRICES entries (names without end: the oldest is forgotten)."""
    if len(cache) >= MAX_CACHED_PRICES:
        with contextlib.suppress(StopIteration, KeyError, RuntimeError):
            del cache[next(iter(cache))]
    cache[key] = value


class PriceTable:
    """Looks prices up once per (provider, model) and per UTC day; thread-safe; never raises on lookup."""

    def __init__(self, overrides: Mapping[tuple[str | None, str], ModelPrice] | None = None, *,
                 infer: bool = True, refreshed: Path | None = None,
                 modifiers: Mapping[tier_prices.ModifierKey, tier_prices.Modifier] | None = None) -> None:
        self._overrides = dict(overrides or {})
        self._modifiers = dict(modifiers if modifiers is not None else getattr(overrides, "modifiers", None) or {})
        self._served: dict[tuple[str, str, str], tuple[float, ModelPrice | None, str | None]] = {}
        """(provider, model, tier label) -> (Unix time until which it holds, price at that tier, why unpriced)."""
        self._infer = infer
        self._refreshed = refreshed if refreshed is not None else price_refresh.refreshed_table_path()
        self.table_source = "bundled"
        self._stale_warned: set[tuple[str, str]] = set()
        self._dated: tuple[Any, str | None] | None = None
        self._cache: dict[tuple[str, str], tuple[float, ModelPrice | None]] = {}
        """(provider, model) -> (Unix time until which the price holds, price)."""
        self._snapshot: Any = None
        self._matches: list[tuple[Any, Any, Any]] | None = None
        self._snapshot_lock = threading.Lock()
        self._held_for_fork = False
        self.genai_prices_version = "unavailable"
        _forksafe.register(self)

    def _before_fork(self) -> None:
        """Let a load in progress finish first: a child must not inherit the lock held, or a half-read table."""
        self._held_for_fork = self._snapshot_lock.acquire(timeout=FORK_WAIT_S)

    def _after_fork_in_parent(self) -> None:
        if self._held_for_fork:
            self._held_for_fork = False
            self._snapshot_lock.release()

    def _after_fork_in_child(self) -> None:
        self._held_for_fork = False
        self._snapshot_lock = threading.Lock()

    def warm(self) -> None:
        """Load the genai-prices table now (call from a background thread at start-up)."""
        self._load_snapshot()

    def _load_snapshot(self) -> Any:
        if self._snapshot is None:
            with self._snapshot_lock:
                if self._snapshot is None:
                    try:
                        import genai_prices
                        from genai_prices import data_snapshot

                        self.genai_prices_version = genai_prices.__version__
                        self._snapshot = self._refreshed_snapshot() or data_snapshot.get_snapshot()
                    except Exception as exc:  # pragma: no cover - genai-prices is a core dependency
                        logger.warning("genai-prices unavailable (%s); only overrides are priced", exc)
                        self._snapshot = False
        return self._snapshot

    def _refreshed_snapshot(self) -> Any:
        """The table ``tokentrace prices --refresh`` stored, if any (a local file: never a network call)."""
        if not self._refreshed.is_file():
            return None
        try:
            snapshot = price_refresh.snapshot_from_raw(json.loads(self._refreshed.read_text(encoding="utf-8")))
        except Exception as exc:
            logger.warning("ignoring the refreshed price table %s (%s); using the bundled one",
                           self._refreshed, exc)
            return None
        modified = time.strftime("%Y-%m-%d", time.gmtime(self._refreshed.stat().st_mtime))
        self.table_source = f"refreshed {modified} ({self._refreshed})"
        return snapshot

    def table_date(self) -> str | None:
        """The newest past price-change date in the bundled table (ISO date): how current its prices are.

        Scheduled changes (later dates) are applied on their day by ``lookup``; they are not counted here.
        """
        from datetime import date

        today = date.today()
        if self._dated is not None and self._dated[0] == today:
            return self._dated[1]
        snapshot = self._load_snapshot()
        newest: Any = None
        for provider in getattr(snapshot, "providers", None) or ():
            for model in provider.models:
                for conditional in model.prices if isinstance(model.prices, list) else ():
                    start = getattr(getattr(conditional, "constraint", None), "start_date", None)
                    if start is not None and start <= today and (newest is None or start > newest):
                        newest = start
        self._dated = (today, newest.isoformat() if newest is not None else None)
        return self._dated[1]

    def models(self, provider: str) -> list[tuple[str, ModelPrice]]:
        """Every model the bundled table prices for ``provider`` (plus overrides), with its current rates."""
        found: dict[str, ModelPrice] = {}
        snapshot = self._load_snapshot()
        provider_id = GENAI_PRICES_IDS.get(provider, provider)
        for candidate in getattr(snapshot, "providers", None) or ():
            if candidate.id != provider_id:
                continue
            for model in candidate.models:
                price = self.lookup(provider, model.id)
                if price is not None:
                    found[model.id] = price
        for (owner, model_name), price in self._overrides.items():
            if owner in (None, provider):
                found[model_name] = price
        return sorted(found.items())

    def lookup(self, provider: str, model: str) -> ModelPrice | None:
        now = clock()
        key = (provider, model)
        cached = self._cache.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        from datetime import datetime

        moment = datetime.fromtimestamp(now, tz=UTC)
        changes: list[float] = [(now // 86400 + 1) * 86400]  # prices are resolved again each UTC day
        price = self._resolve(provider, model, moment, changes)
        if price is None and self._infer and provider in INFERRED_HOSTS:
            price = self._infer_price(model, moment, changes)
        if price is not None and price.source.startswith(("genai-prices", "inferred")):
            self._warn_if_stale(provider, model)
        searches = WEB_SEARCH_USD.get(provider, 0.0)
        if price is not None and searches and not price.web_search_usd:  # genai-prices has none: the provider's
            price = replace(price, web_search_usd=searches)
        _bounded_put(self._cache, key, (min(changes), price))
        return price

    def price_for(self, provider: str, model: str, tier: str | None = None) -> tuple[ModelPrice | None, str | None]:
        """What a call of ``model`` at ``provider``, served at ``tier``, is charged by: (price, None), or (None, why
        no price applies). The one path of a real call (the recorder) and of ``tokentrace prices --explain``."""
        if tier:
            price, reason = self.lookup_served(provider, model, tier)
            return (price, None) if price is not None else (None, reason or self.why_unpriced(provider, model))
        price = self.lookup(provider, model)
        if price is None:
            return None, self.why_unpriced(provider, model)
        return price, None

    def why_unpriced(self, provider: str, model: str) -> str:
        """Why no price applies to ``model`` at ``provider`` (no override, no table entry, no single inference)."""
        provider_id = GENAI_PRICES_IDS.get(provider, provider)
        where = (f"no genai-prices {self.genai_prices_version} entry of {provider_id} matches it"
                 if provider_id is not None else
                 "the host is unknown and no single genai-prices entry prices the name" if self._infer else
                 "the host is unknown")
        return f"unpriced: no override names {model!r} and {where}; add it with instrument(prices=...)"

    def lookup_served(self, provider: str, model: str, tier: str | None) -> tuple[ModelPrice | None, str | None]:
        """The price of ``model`` at the tier that served the call (``pricing.tiers``): (price, None), or (None, why
        it is unpriced). A standard or unnamed tier is ``lookup``'s price."""
        price = self.lookup(provider, model)
        if price is None or tier is None or price.source == "local":
            return price, None
        now = clock()
        key = (provider, model, tier)
        cached = self._served.get(key)
        if cached is not None and now < cached[0]:
            return cached[1], cached[2]
        from datetime import datetime

        served, reason = tier_prices.served_price(price, price.priced_as or provider, tier,
                                                  datetime.fromtimestamp(now, tz=UTC), self._modifiers, model)
        _bounded_put(self._served, key, ((now // 86400 + 1) * 86400, served, reason))
        return served, reason

    def _infer_price(self, model: str, now: Any, changes: list[float]) -> ModelPrice | None:
        """The price of ``model`` at an unknown host: the one price every matching table entry agrees on.

        gpt-4o-mini matches OpenAI's entry (and a subscription entry without token prices, which is skipped);
        a name that entries with different prices match (claude-haiku-4-5 at two resellers) stays unpriced.
        """
        found: dict[tuple[Rates, tuple[tuple[int, Rates], ...]], list[tuple[str, str]]] = {}
        found_price: dict[tuple[Rates, tuple[tuple[int, Rates], ...]], ModelPrice] = {}
        lowered = model.lower()
        for provider, candidate, matches in self._compiled_matches():
            try:
                if not matches(lowered):
                    continue
                price = from_genai_prices(candidate.get_prices(now), "", candidate)
                changes.extend(_time_of_day_changes(candidate, now))
            except Exception:
                continue
            if price is not None:
                found.setdefault((price.base, price.tiers), []).append((provider.id, candidate.id))
                found_price.setdefault((price.base, price.tiers), price)
        if len(found) != 1:
            return None
        ((base, tiers), entries), = found.items()
        def rank(entry: tuple[str, str]) -> tuple[int, tuple[str, str]]:  # name the model's maker (openai, not azure)
            return (MODEL_MAKERS.index(entry[0]) if entry[0] in MODEL_MAKERS else len(MODEL_MAKERS), entry)

        provider_id, model_id = min(entries, key=rank)
        source = f"inferred from genai-prices {self.genai_prices_version}:{provider_id}/{model_id} (host unknown)"
        searches = WEB_SEARCH_USD.get(provider_id, 0.0)
        return replace(found_price[(base, tiers)], source=source, priced_as=MAKER_PROVIDERS.get(provider_id, ""),
                       web_search_usd=found_price[(base, tiers)].web_search_usd or searches)

    def _compiled_matches(self) -> list[tuple[Any, Any, Any]]:
        """Every model entry of the table with its name match compiled once (``pricing.model_match``)."""
        compiled = self._matches
        if compiled is None:
            from .model_match import compile_snapshot

            compiled = self._matches = compile_snapshot(self._load_snapshot())
        return compiled

    def _warn_if_stale(self, provider: str, model: str) -> None:
        from datetime import date

        dated = self.table_date()
        if dated is None or (date.today() - date.fromisoformat(dated)).days <= STALE_AFTER_DAYS:
            return
        if (provider, model) not in self._stale_warned:
            self._stale_warned.add((provider, model))
            logger.warning("the price of %s model %r comes from a table whose newest price is from %s, "
                           "over a year ago; run `tokentrace prices --refresh` or upgrade genai-prices",
                           provider, model, dated)

    def override_for(self, provider: str, model: str) -> tuple[ModelPrice, str] | None:
        """The user's override that prices ``model`` at ``provider``, with the name it was given under: the exact
        name first (this provider's, then any provider's), then the undated name of a dated snapshot
        (``gpt-4o-mini`` prices ``gpt-4o-mini-2024-07-18``), so a dated override wins over an undated one."""
        if not self._overrides:
            return None
        for name in (model, *undated_names(model.lower())):
            for key in ((provider, name), (provider, name.lower()), (None, name), (None, name.lower())):
                found = self._overrides.get(key)
                if found is not None:
                    return found, key[1]
        return None

    def _resolve(self, provider: str, model: str, now: Any, changes: list[float]) -> ModelPrice | None:
        """The price in effect at ``now`` (a UTC datetime); adds to ``changes`` when a time-of-day price ends."""
        override = self.override_for(provider, model)
        if override is not None:
            price, name = override
            return price if name == model.lower() or name == model else replace(
                price, source=f"{price.source} ({name!r} covers {model!r})")
        if provider in LOCAL:  # a model on the user's own machine: no bill, unless an override prices it
            return LOCAL_PRICE
        snapshot = self._load_snapshot()
        if not snapshot:
            return None
        provider_id = GENAI_PRICES_IDS.get(provider, provider)
        if provider_id is None:  # an unknown host: only an unambiguous match prices it (``_infer_price``)
            return None
        try:
            found_provider, found_model = snapshot.find_provider_model(model, None, provider_id, None)
            model_price = found_model.get_prices(now)
            changes.extend(_time_of_day_changes(found_model, now))
        except LookupError:
            return _project_price(provider, model)
        table = "" if self.table_source == "bundled" else " refreshed"
        source = f"genai-prices {self.genai_prices_version}{table}:{found_provider.id}/{found_model.id}"
        return from_genai_prices(model_price, source, found_model) or _project_price(provider, model)

