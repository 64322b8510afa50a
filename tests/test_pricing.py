"""Prices: genai-prices resolution agrees with its own calculator; overrides in every accepted shape; unknowns."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import genai_prices
import pytest

from tokentrace import Usage
from tokentrace.pricing import PriceTable
from tokentrace.pricing.overrides import PriceError, parse_overrides
from tokentrace.testing import capture_usage

from .conftest import make_telemetry, openai_client

CROSS_CHECK = [
    ("openai", "gpt-4o", Usage(input=10, cache_read=20, output=5)),
    ("openai", "gpt-4o-mini-2024-07-18", Usage(input=1000, cache_read=500, output=250)),
    ("openai", "o3-mini", Usage(input=100, output=40, reasoning=300)),
    ("xai", "grok-3-mini", Usage(input=100, cache_read=20, output=40, reasoning=300)),
    ("anthropic", "claude-sonnet-4-5", Usage(input=1000, cache_read=300, cache_write=200, output=500)),
    ("anthropic", "claude-sonnet-4-5", Usage(input=250_000, cache_read=300, cache_write=200, output=500)),
    ("anthropic", "claude-sonnet-4-5", Usage(input=100, cache_read=50, cache_write=300, output=20, cache_write_1h=100)),
    ("google", "gemini-2.5-pro", Usage(input=150_000, output=100, reasoning=50)),
    ("google", "gemini-2.5-pro", Usage(input=210_000, cache_read=1000, output=100, reasoning=50)),
    ("deepseek", "deepseek-chat", Usage(input=100, cache_read=900, output=50)),
]


@pytest.mark.parametrize(("provider", "model", "usage"), CROSS_CHECK)
def test_resolved_rates_agree_with_genai_prices_own_calculator(provider: str, model: str, usage: Usage) -> None:
    from tokentrace._registry import GENAI_PRICES_IDS

    theirs = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=usage.all_input, cache_read_tokens=usage.cache_read,
                           cache_write_tokens=usage.cache_write, cache_write_1h_tokens=usage.cache_write_1h,
                           output_tokens=usage.all_output),
        model, provider_id=GENAI_PRICES_IDS[provider],
    )
    price = PriceTable().lookup(provider, model)
    assert price is not None
    assert price.cost(usage) == pytest.approx(float(theirs.total_price), rel=1e-9)
    assert price.source.startswith(f"genai-prices {genai_prices.__version__}:")


def test_tiered_prices_apply_to_the_whole_call_above_the_threshold() -> None:
    price = PriceTable().lookup("google", "gemini-2.5-pro")
    assert price is not None and price.tiers
    threshold, above = price.tiers[0]
    below_usage, above_usage = Usage(input=threshold), Usage(input=threshold + 1)
    assert price.rates_for(below_usage) == price.base
    assert price.rates_for(above_usage) == above
    assert above.input > price.base.input


def test_unknown_model_is_cost_unknown_and_counted(simulator: Any, caplog: pytest.LogCaptureFixture) -> None:
    telemetry = make_telemetry(prices={})
    caplog.set_level(logging.WARNING, logger="tokentrace")
    with openai_client(simulator) as client, capture_usage() as records:
        for _ in range(3):
            client.chat.completions.create(model="acme-private-7b", messages=[{"role": "user", "content": "hi"}])
    assert [r.cost_usd for r in records] == [None, None, None]
    assert records[0].price_source.startswith("unpriced: ")  # says why no price applies
    assert telemetry.sample("llm_unpriced_requests_total", provider="openai", model="acme-private-7b") == 3
    assert telemetry.sample("chat_cost_usd_total", provider="openai", model="acme-private-7b", operation="chat",
                            feature="") == 0
    warnings = [r for r in caplog.records if "acme-private-7b" in r.getMessage()]
    assert len(warnings) == 1


def test_overrides_from_toml_json_and_mapping_agree(tmp_path: Path) -> None:
    toml = tmp_path / "prices.toml"
    toml.write_text('[models."ft:gpt-4o-mini:acme"]\nprovider = "openai"\ninput = 0.3\noutput = 1.2\n'
                    'cache_read = 0.15\n')
    js = tmp_path / "prices.json"
    js.write_text(json.dumps({"ft:gpt-4o-mini:acme": {"provider": "openai", "input": 0.3, "output": 1.2,
                                                      "cache_read": 0.15}}))
    mapping = {"models": {"ft:gpt-4o-mini:acme": {"provider": "openai", "input_mtok": 0.3, "output_mtok": 1.2,
                                                  "cache_read_mtok": 0.15}}}
    usage = Usage(input=1000, cache_read=1000, output=1000)
    costs = set()
    for source in (toml, js, mapping):
        price = PriceTable(parse_overrides(source)).lookup("openai", "ft:gpt-4o-mini:acme")
        assert price is not None
        costs.add(round(price.cost(usage), 15))
    assert costs == {round((0.3 + 0.15 + 1.2) * 1000 / 1e6, 15)}
    assert PriceTable(parse_overrides(toml)).lookup("openai", "ft:gpt-4o-mini:acme").source == "override:prices.toml"


def test_overrides_win_over_the_bundled_table() -> None:
    price = PriceTable(parse_overrides({"gpt-4o": {"input": 1, "output": 2}})).lookup("openai", "gpt-4o")
    assert price is not None and price.base.input == 1 and price.source == "override:mapping"


def test_litellm_price_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "model_prices_and_context_window.json"
    path.write_text(json.dumps({
        "sample_spec": {"input_cost_per_token": 0, "litellm_provider": "one of https://docs.litellm.ai"},
        "xai/grok-private": {
            "litellm_provider": "xai", "mode": "chat", "max_tokens": 1000,
            "input_cost_per_token": 3e-7, "output_cost_per_token": 5e-7, "cache_read_input_token_cost": 7.5e-8,
            "output_cost_per_reasoning_token": 5e-7, "supports_reasoning": True,
        },
        "gemini/gemini-private": {
            "litellm_provider": "gemini", "input_cost_per_token": 1.25e-6, "output_cost_per_token": 1e-5,
            "input_cost_per_token_above_200k_tokens": 2.5e-6, "output_cost_per_token_above_200k_tokens": 1.5e-5,
        },
    }))
    table = PriceTable(parse_overrides(path))
    grok = table.lookup("xai", "grok-private")
    assert grok is not None and grok.base.input == pytest.approx(0.3) and grok.base.cache_read == pytest.approx(0.075)
    gemini = table.lookup("google", "gemini-private")
    assert gemini is not None
    assert gemini.cost(Usage(input=300_000)) == pytest.approx(300_000 * 2.5e-6)
    assert gemini.cost(Usage(input=100_000)) == pytest.approx(100_000 * 1.25e-6)


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("not json", ".json", "cannot parse price file"),
        ('{"m": {"input": "cheap"}}', ".json", "must be a number"),
        ("[1, 2]", ".json", "must hold a mapping"),
    ],
)
def test_bad_override_files_raise_a_clear_error(tmp_path: Path, content: str, suffix: str, message: str) -> None:
    path = tmp_path / f"prices{suffix}"
    path.write_text(content)
    with pytest.raises(PriceError, match=message):
        parse_overrides(path)


def test_missing_override_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PriceError, match="cannot read price file"):
        parse_overrides(tmp_path / "nope.toml")


def test_a_time_of_day_price_changes_at_its_hour_not_at_the_next_day(monkeypatch: Any) -> None:
    """DeepSeek's off-peak prices (16:30-00:30 UTC in genai-prices) apply from the minute they start: a price
    resolved before 16:30 is not kept past it, and the peak price comes back at 00:30."""
    from tokentrace import pricing

    day = 20_000 * 86400  # a UTC midnight
    table = PriceTable({})
    seen = []
    for hour in (12.0, 16.4, 16.6, 23.9, 24.4, 24.6):
        monkeypatch.setattr(pricing, "clock", lambda hour=hour: day + hour * 3600)
        price = table.lookup("deepseek", "deepseek-chat")
        assert price is not None
        seen.append(price.base.input)
    peak, off_peak = seen[0], seen[2]
    assert off_peak < peak
    assert seen == [peak, peak, off_peak, off_peak, off_peak, peak]


def test_compiled_model_matches_answer_as_genai_prices_does_for_every_entry() -> None:
    """The inference scan uses name matches compiled once (``_model_match``): for every entry of the bundled
    table and a spread of names (every entry's id, upper-cased, with prefixes and suffixes, and unknown names),
    each compiled predicate answers exactly as genai-prices' own ``is_match``."""
    from genai_prices import data_snapshot

    from tokentrace.pricing.model_match import compile_snapshot

    compiled = compile_snapshot(data_snapshot.get_snapshot())
    ids = sorted({candidate.id for _, candidate, _ in compiled})
    names = [*ids, *(i.upper() for i in ids[::7]), *(f"{i}-2026-01-01" for i in ids[::5]),
             *(f"vendor/{i}" for i in ids[::9]), "zz-unknown", "", "gpt", "claude", "LLAMA-3"]
    mismatches = [(candidate.id, name) for _, candidate, matches in compiled for name in names
                  if matches(name.lower()) != candidate.is_match(name)]
    assert len(compiled) > 500 and mismatches == []
