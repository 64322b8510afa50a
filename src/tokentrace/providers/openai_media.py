"""OpenAI's media endpoints on the SDK layer: images (generate, edit, variations), audio (transcriptions,
translations, speech) and moderations, sync and async (``with_raw_response`` goes through the same methods).

What each is billed by (``_usage.Media`` beside the token partition, priced in ``pricing``):
- images: gpt-image models by tokens (``usage``: text and image input tokens, image output tokens); DALL-E per
  image by size and quality (``pricing.images``), the count from the response's ``data``;
- transcriptions: ``usage`` of type ``duration`` (whisper-1: seconds of audio) or ``tokens`` (gpt-4o-transcribe:
  audio and text input tokens, output tokens); a ``text``/``srt``/``vtt`` answer carries none (unreported);
- translations: whisper-1, by seconds: a ``verbose_json`` answer says them (``duration``), the others do not;
- speech: tts-1 by characters of ``input``; the token-billed models (gpt-4o-mini-tts) return audio bytes with no
  usage, so they are recorded unreported;
- moderations: free (priced $0), counted as calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._usage import Media, RequestInfo, ResponseInfo, Usage
from ._contract import Endpoint, Options, Prepared, ResultKind, StreamAccumulator, client_pair
from ._fields import fields_of, int_or_none, number_or_none, text_or_none
from ._stainless import client_target
from .openai import classify

DEFAULT_MODELS = {"image_generation": "dall-e-2", "moderation": "omni-moderation-latest"}
"""The model the API uses when the request names none."""


def _prepare(operation: str) -> Any:
    def prepare(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
        provider, address, port = client_target(instance)
        model = kwargs.get("model") or DEFAULT_MODELS.get(operation, "")
        stream = kwargs.get("stream") is True
        return Prepared(RequestInfo(provider, operation, str(model), stream, address, port), kwargs)

    return prepare


def _token_usage(usage: Any) -> Usage | None:
    """A gpt-image or gpt-4o-transcribe ``usage``: input tokens (of them audio or image), output tokens."""
    values = fields_of(usage)
    inp, out = int_or_none(values.get("input_tokens")), int_or_none(values.get("output_tokens"))
    if inp is None or out is None:
        return None
    details = fields_of(values.get("input_tokens_details") or values.get("input_token_details")) or {}
    out_details = fields_of(values.get("output_tokens_details")) or {}
    return Usage(input=inp, output=out, input_audio=int_or_none(details.get("audio_tokens")) or 0,
                 input_image=int_or_none(details.get("image_tokens")) or 0,
                 output_image=int_or_none(out_details.get("image_tokens")) or 0)


def _images(result: Any, prepared: Prepared) -> ResponseInfo:
    values = fields_of(result) or {}
    data = values.get("data")
    count = len(data) if isinstance(data, (list, tuple)) else 0
    kwargs = prepared.kwargs
    media = Media(images=count, image_size=text_or_none(values.get("size")) or text_or_none(kwargs.get("size")),
                  image_quality=text_or_none(values.get("quality")) or text_or_none(kwargs.get("quality")))
    usage = _token_usage(values.get("usage"))
    return ResponseInfo(usage=usage, response_model=prepared.request.request_model,
                        media=media if usage is None else None)  # token-billed: the tokens are the bill


def _transcription(result: Any, prepared: Prepared) -> ResponseInfo:
    model = prepared.request.request_model
    if isinstance(result, str):  # text, srt, vtt: a plain string, no usage
        return ResponseInfo(response_model=model)
    values = fields_of(result)
    usage = fields_of(values.get("usage")) or {}
    seconds = number_or_none(usage.get("seconds")) if usage.get("type") == "duration" else None
    if seconds is None and prepared.request.operation == "translation":
        seconds = number_or_none(values.get("duration"))  # verbose_json
    if seconds is not None:
        return ResponseInfo(response_model=model, media=Media(audio_seconds=float(seconds)))
    return ResponseInfo(usage=_token_usage(usage) if usage else None, response_model=model)


def _speech(result: Any, prepared: Prepared) -> ResponseInfo:
    text = prepared.kwargs.get("input")
    characters = len(text) if isinstance(text, str) else 0
    model = prepared.request.request_model
    if model.startswith("tts-1"):  # billed per character of input
        return ResponseInfo(response_model=model, media=Media(characters=characters))
    return ResponseInfo(response_model=model)  # token-billed, and the audio bytes carry no usage


def _moderation(result: Any, prepared: Prepared) -> ResponseInfo:
    values = fields_of(result) or {}
    return ResponseInfo(usage=Usage(), response_model=text_or_none(values.get("model")) or
                        prepared.request.request_model, response_id=text_or_none(values.get("id")))


class _UsageEvents(StreamAccumulator):
    """A streamed image generation or transcription: the event that carries ``usage`` (the last one) is the bill."""

    __slots__ = ("_prepared", "_usage")

    def __init__(self, prepared: Prepared) -> None:
        self._prepared = prepared
        self._usage: Any = None

    def chunk(self, item: Any) -> bool:
        found = getattr(item, "usage", None)
        if found is not None:
            self._usage = found
        return False

    def result(self) -> ResponseInfo:
        return ResponseInfo(usage=_token_usage(self._usage) if self._usage is not None else None,
                            response_model=self._prepared.request.request_model)


def _classify(result: Any) -> ResultKind:
    """As openai's, and speech's audio bytes (``HttpxBinaryResponseContent``, no model object) are a value too."""
    kind = classify(result)
    return "value" if kind == "opaque" else kind


def _endpoint(operation: str, extract: Any) -> Endpoint:
    return Endpoint(_prepare(operation), extract, _UsageEvents, _classify)


IMAGES = _endpoint("image_generation", _images)
TRANSCRIPTION = _endpoint("transcription", _transcription)
TRANSLATION = _endpoint("translation", _transcription)
SPEECH = _endpoint("speech", _speech)
MODERATION = _endpoint("moderation", _moderation)

PATCHES = (
    *client_pair("openai.resources.images", "Images", "AsyncImages",
                 {"generate": IMAGES, "edit": IMAGES, "create_variation": IMAGES}),
    *client_pair("openai.resources.audio.transcriptions", "Transcriptions", "AsyncTranscriptions",
                 {"create": TRANSCRIPTION}),
    *client_pair("openai.resources.audio.translations", "Translations", "AsyncTranslations", {"create": TRANSLATION}),
    *client_pair("openai.resources.audio.speech", "Speech", "AsyncSpeech", {"create": SPEECH}),
    *client_pair("openai.resources.moderations", "Moderations", "AsyncModerations", {"create": MODERATION}),
)
