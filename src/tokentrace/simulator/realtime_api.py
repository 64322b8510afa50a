"""OpenAI's Realtime API over WebSocket, simulated (any path; the model from ``?model=``), with deterministic usage
(``docs/simulator.md``):

- ``session.created`` on connect (its ``id`` is the session id); ``session.update`` answers ``session.updated``
  (``turn_detection: {"type": "server_vad"}`` makes the server start a response itself on each audio commit);
- ``conversation.item.create`` adds its text (a word a token) to the conversation; ``input_audio_buffer.append``
  adds audio (4,800 bytes a token: 10 tokens a second of 24 kHz 16-bit audio), ``.commit`` commits it;
- ``response.create`` answers ``response.created``, 4 ``response.output_text.delta`` events (and 2
  ``response.output_audio.delta`` when the session's modalities have audio) and ``response.done`` whose
  ``response.usage`` counts the whole conversation so far as input (as the API does each turn), with what an earlier
  response already read as cached, 8 text output tokens and 20 audio output tokens when audio is on;
- ``response.create`` with ``response.metadata.sim``: ``cancelled`` (``status: cancelled``, half the output),
  ``xai`` (``response.usage`` empty, the usage at the top level of ``response.done`` with
  ``output_audio_seconds``, as xAI's voice API does), ``bad-usage`` (usage fields of the wrong type), ``no-done``
  (deltas, then nothing), ``drop`` (the connection closed after the deltas), ``tool`` (a ``function_call`` output
  item, its arguments done, then ``response.done`` with usage as usual).
"""

from __future__ import annotations

import base64
import itertools
import json
import math
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

BYTES_PER_AUDIO_TOKEN = 4800
TEXT_OUTPUT, AUDIO_OUTPUT = 8, 20
_ids = itertools.count(1)


class _Session:
    def __init__(self, model: str) -> None:
        self.id = f"sess_sim{next(_ids)}"
        self.model = model
        self.text_tokens = 0
        self.audio_bytes = 0
        self.read_text = self.read_audio = 0
        """What earlier responses read (cached for the next one)."""
        self.audio_out = False
        self.server_vad = False

    def usage(self, fraction: float = 1.0) -> dict[str, Any]:
        text, audio = self.text_tokens, math.ceil(self.audio_bytes / BYTES_PER_AUDIO_TOKEN)
        cached_text, cached_audio = min(self.read_text, text), min(self.read_audio, audio)
        self.read_text, self.read_audio = text, audio
        out_text = math.ceil(TEXT_OUTPUT * fraction)
        out_audio = math.ceil(AUDIO_OUTPUT * fraction) if self.audio_out else 0
        return {"total_tokens": text + audio + out_text + out_audio, "input_tokens": text + audio,
                "output_tokens": out_text + out_audio,
                "input_token_details": {"text_tokens": text, "audio_tokens": audio, "image_tokens": 0,
                                        "cached_tokens": cached_text + cached_audio,
                                        "cached_tokens_details": {"text_tokens": cached_text,
                                                                  "audio_tokens": cached_audio, "image_tokens": 0}},
                "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio}}


async def realtime(websocket: WebSocket) -> None:
    if "BidiGenerateContent" in websocket.url.path:
        await gemini_live(websocket)
        return
    await websocket.accept()
    session = _Session(websocket.query_params.get("model", "gpt-realtime"))
    await websocket.send_text(json.dumps({"type": "session.created", "event_id": "ev_0", "session": {
        "id": session.id, "object": "realtime.session", "model": session.model}}))
    try:
        while True:
            event = json.loads(await websocket.receive_text())
            kind = event.get("type")
            if kind == "session.update":
                settings = event.get("session") or {}
                session.audio_out = "audio" in (settings.get("output_modalities") or settings.get("modalities") or [])
                session.server_vad = (settings.get("turn_detection") or {}).get("type") == "server_vad"
                await websocket.send_text(json.dumps({"type": "session.updated", "session": {
                    "id": session.id, "model": session.model}}))
            elif kind == "conversation.item.create":
                for part in (event.get("item") or {}).get("content") or []:
                    session.text_tokens += len(str(part.get("text") or "").split())
            elif kind == "input_audio_buffer.append":
                session.audio_bytes += len(base64.b64decode(event.get("audio") or ""))
            elif kind == "input_audio_buffer.commit":
                await websocket.send_text(json.dumps({"type": "input_audio_buffer.committed"}))
                if session.server_vad:
                    await _respond(websocket, session, {})
            elif kind == "response.create" and not await _respond(websocket, session, event.get("response") or {}):
                await websocket.close()
                return
    except WebSocketDisconnect:
        return


async def _respond(websocket: WebSocket, session: _Session, options: dict[str, Any]) -> bool:
    """One response; False when the connection is to be dropped."""
    sim = str((options.get("metadata") or {}).get("sim") or "")
    ident = f"resp_sim{next(_ids)}"
    base: dict[str, Any] = {"id": ident, "object": "realtime.response", "status": "in_progress", "output": []}
    await websocket.send_text(json.dumps({"type": "response.created", "response": base}))
    for word in ("the", "simulated", "realtime", "answer"):
        await websocket.send_text(json.dumps({"type": "response.output_text.delta", "response_id": ident,
                                              "delta": word + " "}))
    if session.audio_out:
        for _ in range(2):
            await websocket.send_text(json.dumps({"type": "response.output_audio.delta", "response_id": ident,
                                                  "delta": base64.b64encode(b"\0" * 960).decode()}))
    if sim == "tool":  # the model calls a function instead of answering: its arguments stream, then the item is done
        call = {"type": "function_call", "id": f"item_{ident}", "call_id": f"call_{ident}", "name": "lookup",
                "arguments": "{}"}
        await websocket.send_text(json.dumps({"type": "response.function_call_arguments.done", "response_id": ident,
                                              "call_id": call["call_id"], "arguments": "{}"}))
        base = {**base, "output": [call]}
    if sim == "no-done":
        return True
    if sim == "drop":
        return False
    usage = session.usage(0.5 if sim == "cancelled" else 1.0)
    done: dict[str, Any] = {"type": "response.done", "event_id": f"ev_{ident}", "response": {
        **base, "status": "cancelled" if sim == "cancelled" else "completed", "usage": usage}}
    if sim == "xai":
        done["response"]["usage"] = None
        done["usage"] = {**usage, "output_audio_seconds": 1.5, "billable_audio_seconds": 1.5}
    if sim == "bad-usage":
        done["response"]["usage"] = {"input_tokens": "many", "output_tokens": None}
    await websocket.send_text(json.dumps(done))
    return True


GEMINI_OUTPUT, GEMINI_THOUGHTS = 6, 2


async def gemini_live(websocket: WebSocket) -> None:
    """Gemini Live: ``setupComplete`` after ``setup``; each client turn (``clientContent`` with ``turnComplete``)
    answers two ``serverContent`` messages and a last one with ``turnComplete`` and ``usageMetadata`` for the turn:
    the whole context so far re-counted as the prompt (every client word and every earlier answer's tokens), 6
    response tokens (AUDIO when the setup asked for audio, else TEXT), 2 thoughts tokens that ``totalTokenCount``
    leaves out. Frames are binary, as Google's are."""
    await websocket.accept()
    context, modality = 0, "TEXT"

    async def send(message: dict[str, Any]) -> None:
        await websocket.send_bytes(json.dumps(message).encode())

    try:
        while True:
            message = json.loads(await websocket.receive_text())
            if "setup" in message:
                config = message["setup"].get("generationConfig") or {}
                modality = "AUDIO" if "AUDIO" in (config.get("responseModalities") or []) else "TEXT"
                await send({"setupComplete": {}})
                continue
            content = message.get("clientContent") or message.get("client_content") or {}
            for turn in content.get("turns") or []:
                for part in turn.get("parts") or []:
                    context += len(str(part.get("text") or "").split())
            if not (content.get("turnComplete") or content.get("turn_complete")):
                continue
            for word in ("simulated", "live"):
                await send({"serverContent": {"modelTurn": {"parts": [{"text": word + " "}]}}})
            prompt = context
            context += GEMINI_OUTPUT
            await send({"serverContent": {"turnComplete": True}, "usageMetadata": {
                "promptTokenCount": prompt, "responseTokenCount": GEMINI_OUTPUT,
                "thoughtsTokenCount": GEMINI_THOUGHTS, "totalTokenCount": prompt + GEMINI_OUTPUT,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
                "responseTokensDetails": [{"modality": modality, "tokenCount": GEMINI_OUTPUT}]}})
    except WebSocketDisconnect:
        return
