"""OpenAI's media endpoints (issue 41): images, transcriptions, translations, speech and moderations through the
real openai SDK (sync, async, with_raw_response) against the simulator: each call counted under its operation, its
units (seconds, characters, images) and tokens as the response says them, priced by the unit it is billed by, in
the ledger's columns; what the caller reads unchanged."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import tokentrace
from tokentrace._usage import Media, Usage
from tokentrace.testing import capture_usage

from .conftest import Telemetry, make_telemetry, openai_async_client, openai_client
from .ledger_helpers import query_ledger

SECOND = 0.36 / 3600  # whisper-1: $0.36 an hour of audio (genai-prices)
CHARACTER = 15 / 1e6  # tts-1: $15 a million characters
AUDIO = b"\0" * 48_000  # 3 seconds by the simulator's rule (16,000 bytes a second)


def _calls(client: Any) -> list[tuple[str, Any]]:
    return [
        ("dall-e-3 hd", lambda: client.images.generate(model="dall-e-3", prompt="a cat", size="1024x1792",
                                                      quality="hd")),
        ("dall-e-2 x2", lambda: client.images.generate(prompt="a cat", n=2, size="512x512")),
        ("gpt-image-1", lambda: client.images.generate(model="gpt-image-1", prompt="a cat on a mat", n=2)),
        ("gpt-image-1 edit", lambda: client.images.edit(model="gpt-image-1", image=("a.png", b"\x89PNG"),
                                                        prompt="add a hat")),
        ("whisper-1", lambda: client.audio.transcriptions.create(model="whisper-1", file=("a.wav", AUDIO))),
        ("gpt-4o-transcribe", lambda: client.audio.transcriptions.create(model="gpt-4o-transcribe",
                                                                         file=("a.wav", AUDIO))),
        ("translation", lambda: client.audio.translations.create(model="whisper-1", file=("a.wav", AUDIO),
                                                                 response_format="verbose_json")),
        ("tts-1", lambda: client.audio.speech.create(model="tts-1", voice="alloy", input="hello there")),
        ("moderation", lambda: client.moderations.create(input=["hi", "there"])),
    ]


EXPECTED: dict[str, tuple[str, str, Usage, Media | None, float]] = {
    "dall-e-3 hd": ("image_generation", "dall-e-3", Usage(), Media(images=1, image_size="1024x1792",
                                                                   image_quality="hd"), 0.120),
    "dall-e-2 x2": ("image_generation", "dall-e-2", Usage(), Media(images=2, image_size="512x512"), 2 * 0.018),
    "gpt-image-1": ("image_generation", "gpt-image-1", Usage(input=5, output=2112, output_image=2112), None,
                    (5 * 5 + 2112 * 40) / 1e6),
    "gpt-image-1 edit": ("image_generation", "gpt-image-1", Usage(input=3 + 323, input_image=323, output=1056,
                                                                  output_image=1056), None,
                         (3 * 5 + 323 * 10 + 1056 * 40) / 1e6),
    "whisper-1": ("transcription", "whisper-1", Usage(), Media(audio_seconds=3.0), 3 * SECOND),
    "gpt-4o-transcribe": ("transcription", "gpt-4o-transcribe", Usage(input=30, input_audio=30, output=6), None,
                          (30 * 6 + 6 * 10) / 1e6),
    "translation": ("translation", "whisper-1", Usage(), Media(audio_seconds=3.0), 3 * SECOND),
    "tts-1": ("speech", "tts-1", Usage(), Media(characters=11), 11 * CHARACTER),
    "moderation": ("moderation", "omni-moderation-2024-09-26", Usage(), None, 0.0),
}


def test_each_media_call_is_counted_with_its_units_and_priced_by_them(simulator: Any, telemetry: Telemetry) -> None:
    with openai_client(simulator) as client, capture_usage() as records:
        answers = {name: call() for name, call in _calls(client)}
    assert len(records) == len(EXPECTED)
    for name, record in zip(answers, records, strict=True):
        operation, model, usage, media, cost = EXPECTED[name]
        assert (record.operation, record.model, record.status, record.usage_reported) == (operation, model, "ok",
                                                                                          True), name
        assert record.usage == usage and record.media == media, name
        assert record.cost_usd == pytest.approx(cost, rel=1e-12, abs=1e-15), name
    assert answers["tts-1"].content == b"ID3" + b"\0" * 1100  # the caller's bytes, whole
    assert len(answers["dall-e-2 x2"].data) == 2
    labels = {"provider": "openai", "model": "dall-e-3", "operation": "image_generation", "feature": ""}
    assert telemetry.sample("chat_cost_usd_total", **labels) == pytest.approx(0.12)
    assert telemetry.sample("llm_requests_total", **labels, status="ok") == 1


def test_async_and_raw_response_forms_are_counted_alike(simulator: Any, telemetry: Telemetry) -> None:
    async def run() -> Any:
        async with openai_async_client(simulator) as client:
            await client.audio.transcriptions.create(model="whisper-1", file=("a.wav", AUDIO))
            return await client.audio.speech.create(model="tts-1", voice="alloy", input="hello there")

    with capture_usage() as records:
        spoken = asyncio.run(run())
        with openai_client(simulator) as client:
            raw = client.images.with_raw_response.generate(model="dall-e-3", prompt="a cat")
            assert len(raw.parse().data) == 1
    assert spoken.content.startswith(b"ID3")
    assert [(r.operation, r.media) for r in records] == [
        ("transcription", Media(audio_seconds=3.0)), ("speech", Media(characters=11)),
        ("image_generation", Media(images=1))]
    assert records[-1].cost_usd == pytest.approx(0.04)  # standard 1024x1024, the API's defaults


def test_a_size_the_table_does_not_list_is_unpriced_with_its_reason_and_text_answers_unreported(
        simulator: Any, telemetry: Telemetry) -> None:
    with openai_client(simulator) as client, capture_usage() as records:
        client.images.generate(model="dall-e-3", prompt="a cat", size="256x256")
        text = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", AUDIO), response_format="text")
    assert text == "the simulated transcript of the audio"
    sized, plain = records
    assert sized.cost_usd is None and "no rate for its images (default quality, 256x256 size)" in sized.price_source
    assert plain.cost_usd is None and not plain.usage_reported  # a text answer says nothing of the audio's length


def test_a_unit_billed_with_no_rate_for_it_is_unpriced_not_free(simulator: Any) -> None:
    """A speech model billed by characters and an image model billed per image (no token usage in their answers),
    priced by the app with token rates only: nothing prices what they were billed by, so the calls are unpriced
    with the reason, never $0."""
    tokentrace.uninstrument()
    make_telemetry(prices={"tts-1-custom": {"input": 1.0, "output": 2.0}, "dall-e-9": {"input": 1.0, "output": 2.0}})
    try:
        with openai_client(simulator) as client, capture_usage() as records:
            client.audio.speech.create(model="tts-1-custom", voice="alloy", input="hello there")
            client.images.generate(model="dall-e-9", prompt="a cat")
    finally:
        tokentrace.uninstrument()
    spoken, drawn = records
    assert spoken.media == Media(characters=11) and drawn.media == Media(images=1)
    assert spoken.cost_usd is None and "no rate for its characters" in (spoken.price_source or "")
    assert drawn.cost_usd is None and "no rate for its images" in (drawn.price_source or "")


def test_media_units_are_ledger_columns_and_reports_show_operations(simulator: Any, tmp_path: Path) -> None:
    tokentrace.uninstrument()
    make_telemetry(ledger=tmp_path / "usage.db")
    try:
        with openai_client(simulator) as client:
            for _, call in _calls(client):
                call()
        tokentrace.flush()
        rows = query_ledger(str(tmp_path / "usage.db"), "SELECT model, operation, audio_seconds, characters, images "
                                                        "FROM llm_usage ORDER BY id")
        assert rows[0] == ("dall-e-3", "image_generation", None, None, 1)
        assert ("whisper-1", "transcription", 3.0, None, None) in rows
        assert ("tts-1", "speech", None, 11, None) in rows
        report = tokentrace.report(since="1d", by="operation", ledger=tmp_path / "usage.db")
        by_operation = {row["key"]: (row["calls"], row["cost_usd"]) for row in report["rows"]}
        assert by_operation["image_generation"] == (4, pytest.approx(0.12 + 0.036 + (25 + 84480) / 1e6 + (
            15 + 3230 + 42240) / 1e6))
        assert by_operation["moderation"] == (1, 0.0)
    finally:
        tokentrace.uninstrument()


def test_media_calls_on_the_wire_raw_httpx_multipart_json_and_audio_bytes(simulator: Any,
                                                                          telemetry: Telemetry) -> None:
    """A raw HTTP client: the multipart upload's model read from httpx's own field list (the file never read), the
    speech answer's audio bytes passed through unread, each call priced as through the SDK."""
    import httpx

    from tokentrace.simulator import sync_client

    with sync_client(simulator.port, httpx) as http, capture_usage() as records:
        heard = http.post("https://api.openai.com/v1/audio/transcriptions", data={"model": "whisper-1"},
                          files={"file": ("a.wav", AUDIO)}, headers={"Authorization": "Bearer sk-test"})
        drawn = http.post("https://api.openai.com/v1/images/generations", json={
            "model": "dall-e-3", "prompt": "a cat", "size": "1792x1024"})
        spoken = http.post("https://api.openai.com/v1/audio/speech", json={
            "model": "tts-1", "voice": "alloy", "input": "hello there"})
    assert heard.json()["usage"] == {"type": "duration", "seconds": 3} and drawn.status_code == 200
    assert spoken.content == b"ID3" + b"\0" * 1100
    assert [(r.operation, r.model, r.media, r.cost_usd) for r in records] == [
        ("transcription", "whisper-1", Media(audio_seconds=3.0), pytest.approx(3 * SECOND)),
        ("image_generation", "dall-e-3", Media(images=1, image_size="1792x1024"), pytest.approx(0.08)),
        ("speech", "tts-1", Media(characters=11), pytest.approx(11 * CHARACTER))]
