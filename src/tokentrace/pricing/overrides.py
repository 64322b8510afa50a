"""User price overrides: TOML/JSON/YAML files or mappings (tokentrace's USD-per-million-token names, or LiteLLM's
per-token file) read and checked into ``{(provider or None, model): ModelPrice}``; ``PriceError`` when they cannot be.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from .._registry import BY_ID, LITELLM_ALIASES
from . import ModelPrice, Rates
from . import tiers as tier_prices


class PriceError(ValueError):
    """A price override file or mapping that cannot be read."""


MAX_PRICE_MTOK = 1_000_000.0
"""No model costs more than this many USD per million tokens: a larger price is a typo (``1e308`` would refuse every
call under a block budget as costing infinity)."""
MAX_FILE_BYTES = 32 * 1024 * 1024
"""A prices file larger than this is refused before it is read (LiteLLM's whole table is about 1 MB)."""


def _num(entry: Mapping[str, Any], *names: str, scale: float = 1.0) -> float | None:
    for name in names:
        value = entry.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PriceError(f"price {name!r} must be a number (not quoted), got {value!r}")
            number = float(value) * scale
            if not math.isfinite(number) or number < 0 or number > MAX_PRICE_MTOK:
                raise PriceError(f"price {name!r} must be a finite number from 0 to {MAX_PRICE_MTOK:,.0f} USD per "
                                 f"million tokens, got {value!r}")
            return number
    return None


OVERRIDE_KEYS = frozenset({"input_audio", "input_audio_mtok", "output_audio", "output_audio_mtok",
                           "input_image", "input_image_mtok", "output_image", "output_image_mtok",
                           "input", "input_mtok", "output", "output_mtok", "cache_read", "cache_read_mtok",
                           "cache_write", "cache_write_mtok", "reasoning", "output_reasoning_mtok", "reasoning_mtok",
                           "cache_write_1h", "cache_write_1h_mtok", "provider", "currency"})
"""The keys of a tokentrace-style override entry (USD per million tokens); LiteLLM-style entries are read by their
``*_cost_per_token`` names and may carry LiteLLM's other fields."""


def _check_currency(where: Mapping[str, Any], label: str) -> None:
    currency = where.get("currency", "USD")
    if not isinstance(currency, str) or currency.upper() != "USD":
        raise PriceError(f"{label}: prices must be in USD (currency = \"USD\"), not {currency!r}")


def _rates_from_entry(entry: Mapping[str, Any], suffix: str = "") -> Rates | None:
    """Read one override entry: tokentrace/genai-prices names (USD per MTok) or LiteLLM's (USD per token)."""
    if any(str(key).endswith(("cost_per_token", "token_cost")) for key in entry):
        per_token = 1_000_000.0
        inp = _num(entry, f"input_cost_per_token{suffix}", scale=per_token)
        out = _num(entry, f"output_cost_per_token{suffix}", scale=per_token)
        read = _num(entry, f"cache_read_input_token_cost{suffix}", scale=per_token)
        write = _num(entry, f"cache_creation_input_token_cost{suffix}", scale=per_token)
        reasoning = _num(entry, f"output_cost_per_reasoning_token{suffix}", scale=per_token)
        write_1h = _num(entry, f"cache_creation_input_token_cost_above_1hr{suffix}", scale=per_token)
        audio = (_num(entry, f"input_cost_per_audio_token{suffix}", scale=per_token),
                 _num(entry, f"output_cost_per_audio_token{suffix}", scale=per_token),
                 _num(entry, f"input_cost_per_image_token{suffix}", scale=per_token),
                 _num(entry, f"output_cost_per_image_token{suffix}", scale=per_token))
    else:
        unknown = sorted(str(key) for key in entry if key not in OVERRIDE_KEYS)
        if unknown:
            raise PriceError(f"unknown price field(s) {unknown}; use {', '.join(sorted(OVERRIDE_KEYS))}")
        inp = _num(entry, "input", "input_mtok")
        out = _num(entry, "output", "output_mtok")
        read = _num(entry, "cache_read", "cache_read_mtok")
        write = _num(entry, "cache_write", "cache_write_mtok")
        reasoning = _num(entry, "reasoning", "output_reasoning_mtok", "reasoning_mtok")
        write_1h = _num(entry, "cache_write_1h", "cache_write_1h_mtok")
        audio = (_num(entry, "input_audio", "input_audio_mtok"), _num(entry, "output_audio", "output_audio_mtok"),
                 _num(entry, "input_image", "input_image_mtok"), _num(entry, "output_image", "output_image_mtok"))
    return Rates.filled(inp, out, read, write, reasoning, write_1h, *audio)


def _price_from_entry(entry: Mapping[str, Any], source: str) -> ModelPrice | None:
    base = _rates_from_entry(entry)
    if base is None:
        return None
    tiers: tuple[tuple[int, Rates], ...] = ()
    above = None
    if "input_cost_per_token_above_200k_tokens" in entry:
        above = _rates_from_entry(entry, "_above_200k_tokens")
    if above is not None:
        tiers = ((200_000, above),)
    return ModelPrice(base=base, tiers=tiers, source=source)


def _load_file(path: Path) -> Mapping[str, Any]:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PriceError(f"price file {path} is {size >> 20} MiB, larger than {MAX_FILE_BYTES >> 20} MiB; refused")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceError(f"cannot read price file {path}: {exc.strerror}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        if suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise PriceError(f"{path}: YAML price files need PyYAML (pip install pyyaml)") from None
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except PriceError:
        raise
    except Exception as exc:
        raise PriceError(f"cannot parse price file {path}: {exc}") from None
    if not isinstance(data, Mapping):
        raise PriceError(f"price file {path} must hold a mapping of model names to prices")
    return data


class Overrides(dict[tuple[str | None, str], ModelPrice]):
    """{(provider or None, lower-case model): price}, and the file's tier ``modifiers`` (``pricing.tiers``)."""

    modifiers: dict[tier_prices.ModifierKey, tier_prices.Modifier]

    def __init__(self) -> None:
        super().__init__()
        self.modifiers = {}


def parse_overrides(source: str | os.PathLike[str] | Mapping[str, Any]) -> Overrides:
    """Read overrides into {(provider or None, lower-case model): price}.

    Accepted shapes: ``{model: {input, output, cache_read, cache_write, reasoning}}`` in USD per
    million tokens (optionally under a ``models`` key, each entry optionally with ``provider``),
    and LiteLLM's ``model_prices_and_context_window.json`` (USD per token; known fields only). A top-level
    ``modifiers`` list prices served tiers (``pricing.tiers.parse_user_modifiers``).
    """
    if isinstance(source, Mapping):
        data, label = source, "override:mapping"
    else:
        path = Path(source)
        data, label = _load_file(path), f"override:{path.name}"
    _check_currency(data, label)
    models = data.get("models", data)
    if not isinstance(models, Mapping):
        raise PriceError("'models' must be a mapping of model names to prices")
    table = Overrides()
    if "modifiers" in data:
        try:
            table.modifiers = tier_prices.parse_user_modifiers(data["modifiers"])
        except ValueError as exc:
            raise PriceError(f"{label}: {exc}") from None
    for name, entry in models.items():
        if name == "sample_spec" or (models is data and name in ("modifiers", "currency")):
            continue  # LiteLLM's documentation entry, or metadata (such as a file-wide currency)
        if not isinstance(entry, Mapping):
            raise PriceError(f"{label}: model {name!r} must be a table of prices such as {{input = 0.3, output = "
                             f"1.2}} (USD per million tokens), not {entry!r}")
        _check_currency(entry, f"{label} {name}")
        try:
            price = _price_from_entry(entry, label)
        except PriceError as exc:
            raise PriceError(f"{label}: model {name!r}: {exc}") from None
        if price is None:
            continue
        provider = entry.get("provider") or entry.get("litellm_provider")
        if entry.get("provider") is not None and entry["provider"] not in BY_ID:
            close = difflib.get_close_matches(str(entry["provider"]), list(BY_ID), n=1)
            raise PriceError(f"{label}: model {name!r}: unknown provider {entry['provider']!r}"
                             + (f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(BY_ID)}"))
        provider = LITELLM_ALIASES.get(str(provider), str(provider)) if provider else None
        model = str(name).lower()
        if provider and model.startswith(f"{entry.get('litellm_provider', '')}/"):
            model = model.split("/", 1)[1]
        table[(provider, model)] = price
    return table
