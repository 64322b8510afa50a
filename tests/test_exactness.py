"""Issue 15's rules, each through the real SDK against the simulator: Anthropic compaction iterations, thinking
details and web searches; OpenAI cache writes; prices inferred for unknown hosts; the refreshed price table."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

import tokentrace
from tokentrace import Usage
from tokentrace.pricing import WEB_SEARCH_USD, PriceTable
from tokentrace.testing import capture_usage

from .anthropic_cases import CLAUDE
from .cases import MESSAGES, sync_client
from .conftest import TEST_PRICES, Telemetry, make_telemetry, openai_client
from .test_cli import run_cli

A_KW: dict[str, Any] = {"model": CLAUDE, "max_tokens": 6, "messages": MESSAGES}
P = TEST_PRICES[CLAUDE]


def _cost(u: Usage) -> float:
    write_5m = u.cache_write - u.cache_write_1h
    return (u.input * P["input"] + u.cache_read * P["cache_read"] + write_5m * P["cache_write"]
            + u.cache_write_1h * P["cache_write_1h"] + (u.output + u.reasoning) * P["output"]) / 1e6


@pytest.mark.parametrize("mode", ["value", "stream", "helper"])
def test_anthropic_compaction_bills_the_sum_of_every_iteration(simulator: Any, telemetry: Telemetry,
                                                               mode: str) -> None:
    headers = {"x-sim-compaction": "100,55096,130", "x-sim-cache-write-tokens": "0"}
    with sync_client("anthropic", simulator) as client, capture_usage() as records:
        if mode == "value":
            final = client.beta.messages.create(**A_KW, extra_headers=headers)
            usage = final.usage
        elif mode == "stream":
            events = list(client.beta.messages.create(**A_KW, stream=True, extra_headers=headers))
            usage = next(e for e in events if e.type == "message_delta").usage
        else:
            with client.beta.messages.stream(**A_KW, extra_headers=headers) as stream:
                usage = stream.get_final_message().usage
    (record,) = records
    passes = usage.iterations
    assert [p.type for p in passes] == ["compaction", "message"]  # the SDK's own types carry them
    billed_input = sum(p.input_tokens for p in passes)
    assert billed_input == usage.input_tokens + 100  # the top level holds only the last pass
    assert record.usage == Usage(input=billed_input, cache_write=55096, output=6 + 130)
    assert record.usage.total == sum(p.input_tokens + p.cache_read_input_tokens + p.cache_creation_input_tokens
                                     + p.output_tokens for p in passes)
    assert record.cost_usd == pytest.approx(_cost(record.usage), rel=1e-12)


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_thinking_details_split_reasoning_out_of_output(simulator: Any, telemetry: Telemetry,
                                                                  stream: bool) -> None:
    kwargs = {**A_KW, "max_tokens": 9, "thinking": {"type": "adaptive"},
              "extra_headers": {"x-sim-thinking-details": "1"}}
    with sync_client("anthropic", simulator) as client, capture_usage() as records:
        if stream:
            with client.messages.stream(**kwargs) as s:
                usage = s.get_final_message().usage
        else:
            usage = client.messages.create(**kwargs).usage
    (record,) = records
    thinking = usage.output_tokens_details.thinking_tokens
    assert thinking == 6
    assert record.usage == Usage(input=7, output=9 - thinking, reasoning=thinking)
    assert record.usage.output + record.usage.reasoning == usage.output_tokens  # the sum stays output_tokens
    span = telemetry.finished_spans()[0]
    assert span.attributes["tokentrace.usage.reasoning_tokens"] == thinking


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_web_searches_are_priced_per_search(simulator: Any, telemetry: Telemetry, stream: bool) -> None:
    headers = {"x-sim-web-searches": "3"}
    with sync_client("anthropic", simulator) as client, capture_usage() as records:
        if stream:
            with client.messages.stream(**A_KW, extra_headers=headers) as s:
                usage = s.get_final_message().usage
        else:
            usage = client.messages.create(**A_KW, extra_headers=headers).usage
    (record,) = records
    assert usage.server_tool_use.web_search_requests == 3
    assert record.usage.web_search_requests == 3 and record.usage.total == 7 + 6  # not tokens
    assert record.cost_usd == pytest.approx(_cost(record.usage) + 3 * WEB_SEARCH_USD["anthropic"], rel=1e-12)


def test_openai_cache_writes_are_priced_at_the_cache_write_rate(simulator: Any) -> None:
    rates = {"provider": "openai", "input": 1.0, "cache_read": 0.5, "cache_write": 2.0, "output": 4.0}
    prices = {"gpt-4o-mini": rates, "gpt-4o-mini-2024-07-18": rates}  # the simulator answers with the dated name
    make_telemetry(prices=prices)
    headers = {"x-sim-cached-tokens": "2", "x-sim-cache-write-tokens": "3"}
    client = openai_client(simulator)
    with capture_usage() as records:
        chat = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5,
                                              extra_headers=headers)
        responses = client.responses.create(model="gpt-4o-mini", input="one two three four five six seven eight",
                                            max_output_tokens=5,
                                            extra_headers=headers)
    chat_record, responses_record = records
    assert chat.usage.prompt_tokens_details.cache_write_tokens == 3
    assert responses.usage.input_tokens_details.cache_write_tokens == 3
    for record, prompt in ((chat_record, chat.usage.prompt_tokens), (responses_record, responses.usage.input_tokens)):
        u = record.usage
        assert (u.cache_read, u.cache_write, u.input) == (2, 3, prompt - 5)
        assert record.cost_usd == pytest.approx((u.input * 1.0 + 2 * 0.5 + 3 * 2.0 + u.output * 4.0) / 1e6, rel=1e-12)


GATEWAY = "http://llm-gateway.internal:4000/v1"


@pytest.mark.parametrize(("model", "priced"), [("gpt-4o-mini", True), ("text-embedding-3-small", True),
                                               ("claude-haiku-4-5", False), ("acme-private-7b", False)])
def test_unknown_host_known_model_is_priced_and_marked_inferred(simulator: Any, model: str, priced: bool) -> None:
    telemetry = make_telemetry(prices=None)
    client = openai_client(simulator, base_url=GATEWAY)
    with capture_usage() as records:
        if model.startswith("text-embedding"):
            client.embeddings.create(model=model, input="one two three")
        else:
            client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=4)
    (record,) = records
    assert record.provider == "openai_compatible"
    if not priced:  # no entry, or entries that disagree (two resellers price claude-haiku-4-5 differently)
        assert record.cost_usd is None and (record.price_source or "").startswith("unpriced: no override names")
        return
    assert record.price_source is not None and record.price_source.startswith("inferred from genai-prices")
    assert "openai/" + model in record.price_source
    reference = PriceTable(infer=False).lookup("openai", model)
    assert reference is not None and record.cost_usd == pytest.approx(reference.cost(record.usage), rel=1e-12)
    span = telemetry.finished_spans()[0]
    assert span.attributes["tokentrace.price_source"] == record.price_source


def test_price_inference_can_be_turned_off(simulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENTRACE_INFER_PRICES", "0")
    make_telemetry(prices=None)
    with capture_usage() as records:
        openai_client(simulator, base_url=GATEWAY).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert records[0].cost_usd is None
    tokentrace.uninstrument()
    make_telemetry(prices=None, infer_prices=False)
    with capture_usage() as records:
        openai_client(simulator, base_url=GATEWAY).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert records[0].cost_usd is None


def _raw_table(input_price: float, when: str) -> list[dict[str, Any]]:
    return [{"id": "openai", "name": "OpenAI", "api_pattern": r"https://api\.openai\.com",
             "models": [{"id": "gpt-4o-mini", "match": {"equals": "gpt-4o-mini"},
                         "prices": [{"constraint": {"start_date": when}, "prices": {"input_mtok": input_price,
                                                                                    "output_mtok": 0.4}}]}]}]


def test_prices_refresh_is_explicit_and_then_used(tmp_path: Path, httpserver: Any) -> None:
    httpserver.expect_request("/prices.json").respond_with_json(_raw_table(0.11, "2026-11-01"))
    before = run_cli("prices", "gpt-4o-mini", tmp=tmp_path)
    assert "bundled" in before.stdout and "$0.15" in before.stdout  # nothing fetched unless asked
    refreshed = run_cli("prices", "gpt-4o-mini", "--refresh", "--url", httpserver.url_for("/prices.json"),
                        "--allow-http", tmp=tmp_path)
    assert refreshed.returncode == 0, refreshed.stderr
    stored = tmp_path / "tokentrace" / "prices.json"
    assert f"stored 1 model prices in {stored}" in refreshed.stderr.replace("\n", "")
    assert "refreshed" in refreshed.stdout and "$0.11" in refreshed.stdout
    table = PriceTable(refreshed=stored)
    price = table.lookup("openai", "gpt-4o-mini")
    assert price is not None and price.base.input == 0.11 and "refreshed" in price.source
    bad = run_cli("prices", "--refresh", "--url", httpserver.url_for("/missing"), "--allow-http", tmp=tmp_path)
    assert bad.returncode == 2 and "cannot refresh prices" in bad.stderr
    assert json.loads(stored.read_text())[0]["models"][0]["id"] == "gpt-4o-mini"  # a failed refresh keeps the last


def test_a_price_older_than_a_year_is_warned_about_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stored = tmp_path / "prices.json"
    stored.write_text(json.dumps(_raw_table(0.2, "2024-01-01")))
    table = PriceTable(refreshed=stored)
    with caplog.at_level(logging.WARNING, logger="tokentrace"):
        assert table.lookup("openai", "gpt-4o-mini") is not None
        table._cache.clear()
        assert table.lookup("openai", "gpt-4o-mini") is not None
    warnings = [r for r in caplog.records if "over a year ago" in r.getMessage()]
    assert len(warnings) == 1 and "2024-01-01" in warnings[0].getMessage()
    fresh = tmp_path / "fresh.json"
    fresh.write_text(json.dumps(_raw_table(0.2, "2026-11-01")))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tokentrace"):
        PriceTable(refreshed=fresh).lookup("openai", "gpt-4o-mini")
    assert not [r for r in caplog.records if "over a year ago" in r.getMessage()]


@pytest.mark.parametrize(("body", "problem"), [
    (json.dumps(_raw_table(-1000, "2026-11-01")), "must be finite, >= 0"),
    (json.dumps(_raw_table(0.11, "2026-11-01")).replace("0.11", "1" + "0" * 400), "must be finite, >= 0"),
    (json.dumps(_raw_table(0.11, "2026-11-01")).replace("0.11", "1e999"), "must be finite, >= 0"),
    (json.dumps(_raw_table(0.11, "2026-11-01")) + " " * (33 * 1024 * 1024), "larger than 32 MiB"),
])
def test_a_refreshed_table_out_of_bounds_is_refused_and_the_last_one_kept(tmp_path: Path, httpserver: Any,
                                                                            body: str, problem: str) -> None:
    from tokentrace.pricing.refresh import RefreshError, refresh_table

    stored = tmp_path / "data" / "prices.json"
    httpserver.expect_request("/good.json").respond_with_json(_raw_table(0.11, "2026-11-01"))
    refresh_table(httpserver.url_for("/good.json"), stored, allow_http=True)
    assert oct(stored.parent.stat().st_mode & 0o777) == "0o700"  # the data directory is the owner's only
    httpserver.expect_request("/bad.json").respond_with_data(body, content_type="application/json")
    with pytest.raises(RefreshError, match=problem):
        refresh_table(httpserver.url_for("/bad.json"), stored, allow_http=True)
    assert PriceTable(refreshed=stored).lookup("openai", "gpt-4o-mini").base.input == 0.11  # type: ignore[union-attr]


def test_a_refresh_over_plain_http_is_refused_unless_asked(tmp_path: Path) -> None:
    from tokentrace.pricing.refresh import RefreshError, refresh_table

    for url in ("http://prices.example/data.json", "file:///etc/passwd", "ftp://x/y"):
        with pytest.raises(RefreshError, match="https://"):
            refresh_table(url, tmp_path / "prices.json")
    assert not (tmp_path / "prices.json").exists()
