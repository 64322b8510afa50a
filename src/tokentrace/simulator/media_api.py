"""OpenAI's media endpoints, simulated: images (generations, edits, variations), audio (transcriptions,
translations, speech) and moderations, with deterministic usage (``docs/simulator.md``):

- images: ``n`` images (default 1) of ``b64_json``; gpt-image models report ``usage``: the prompt's words as text
  input tokens, ``x-sim-image-input-tokens`` (default 0; an edit's image: 323) as image input tokens and
  ``x-sim-image-output-tokens`` (default 1,056, OpenAI's figure for a medium 1024x1024 image) per image as output;
  DALL-E models report none (billed per image);
- transcriptions / translations: the audio lasts ``x-sim-audio-seconds`` (default: the file's bytes / 16,000);
  whisper-1 reports ``usage`` of type ``duration`` (transcriptions; translations say ``duration`` only in
  ``verbose_json``), the gpt-4o transcribe models of type ``tokens`` (10 audio tokens a second, the prompt's words
  as text tokens, the transcript's words as output); ``response_format=text`` answers plain text, no usage;
- speech: audio bytes (``audio/mpeg``), 100 a character of input, no usage;
- moderations: one unflagged result per input, the model ``omni-moderation-2024-09-26``.
Multipart bodies are read with the standard library's email parser (the simulator needs no multipart package).
"""

from __future__ import annotations

import base64
import itertools
import math
from email import message_from_bytes
from email.policy import HTTP
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

_ids = itertools.count(1)
EDIT_IMAGE_TOKENS = 323
OUTPUT_IMAGE_TOKENS = 1056
AUDIO_TOKENS_PER_SECOND = 10
BYTES_PER_SECOND = 16_000
_PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()


async def _form(request: Request) -> dict[str, Any]:
    """The fields of a JSON or multipart body (a file's bytes as ``bytes``, other fields as text)."""
    body = await request.body()
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/"):
        import json

        parsed = json.loads(body or b"{}")
        return parsed if isinstance(parsed, dict) else {}
    message = message_from_bytes(f"Content-Type: {kind}\r\n\r\n".encode() + body, policy=HTTP)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        fields[name] = data if part.get_filename() else data.decode("utf-8", "replace")
    return fields


def _words(text: Any) -> int:
    return len(str(text or "").split())


def _header_int(request: Request, name: str, default: int) -> int:
    value = request.headers.get(name)
    return int(value) if value is not None and value.isdigit() else default


async def images(request: Request) -> Response:
    fields = await _form(request)
    model = str(fields.get("model") or "dall-e-2")
    count = int(fields.get("n") or 1)
    answer: dict[str, Any] = {"created": 1_700_000_000, "data": [{"b64_json": _PIXEL} for _ in range(count)]}
    if model.startswith("gpt-image"):
        edit = request.url.path.endswith("/edits")
        text, image = _words(fields.get("prompt")), _header_int(request, "x-sim-image-input-tokens",
                                                                   EDIT_IMAGE_TOKENS if edit else 0)
        output = count * _header_int(request, "x-sim-image-output-tokens", OUTPUT_IMAGE_TOKENS)
        answer["usage"] = {"input_tokens": text + image, "output_tokens": output, "total_tokens": text + image + output,
                           "input_tokens_details": {"text_tokens": text, "image_tokens": image},
                           "output_tokens_details": {"text_tokens": 0, "image_tokens": output}}
        answer["size"], answer["quality"] = fields.get("size") or "1024x1024", fields.get("quality") or "medium"
    return JSONResponse(answer)


async def _audio(request: Request, translation: bool) -> Response:
    fields = await _form(request)
    model = str(fields.get("model") or "")
    sent = fields.get("file")
    audio = sent if isinstance(sent, bytes) else b""
    seconds = _header_int(request, "x-sim-audio-seconds", math.ceil(len(audio) / BYTES_PER_SECOND))
    text = "the simulated transcript of the audio"
    answer_format = str(fields.get("response_format") or "json")
    if answer_format in ("text", "srt", "vtt"):
        return PlainTextResponse(text)
    answer: dict[str, Any] = {"text": text}
    if model.startswith("whisper"):
        if answer_format == "verbose_json":
            answer.update({"duration": float(seconds), "language": "english", "segments": []})
        if not translation:
            answer["usage"] = {"type": "duration", "seconds": seconds}
    else:
        audio_tokens, prompt = seconds * AUDIO_TOKENS_PER_SECOND, _words(fields.get("prompt"))
        output = _words(text)
        answer["usage"] = {"type": "tokens", "input_tokens": audio_tokens + prompt, "output_tokens": output,
                           "total_tokens": audio_tokens + prompt + output,
                           "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": prompt}}
    return JSONResponse(answer)


async def transcriptions(request: Request) -> Response:
    return await _audio(request, translation=False)


async def translations(request: Request) -> Response:
    return await _audio(request, translation=True)


async def speech(request: Request) -> Response:
    fields = await _form(request)
    return Response(b"ID3" + b"\x00" * (100 * len(str(fields.get("input") or ""))), media_type="audio/mpeg")


async def moderations(request: Request) -> Response:
    fields = await _form(request)
    inputs = fields.get("input")
    count = len(inputs) if isinstance(inputs, list) else 1
    return JSONResponse({"id": f"modr-sim{next(_ids)}", "model": "omni-moderation-2024-09-26",
                         "results": [{"flagged": False, "categories": {}, "category_scores": {}}] * count})


HANDLERS = {"/images/generations": images, "/images/edits": images, "/images/variations": images,
            "/audio/transcriptions": transcriptions, "/audio/translations": translations, "/audio/speech": speech,
            "/moderations": moderations}
