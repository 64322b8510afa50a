"""Each wire format's request and response, read through the same provider rules the SDK layer uses.

A request's JSON becomes the keyword arguments the provider's ``prepare`` reads (for OpenAI, Anthropic, Cohere and
Ollama they are the same names; Gemini and Bedrock name the model in the path and Gemini spells fields in
camelCase), and a response's JSON (or each stream payload) becomes the object its ``extract`` / accumulator read
(dicts are read like SDK objects by ``providers._fields``). No second copy of any usage rule lives here.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from .._usage import ResponseInfo, at_endpoint
from ..providers import Endpoint, Options, Prepared, StreamAccumulator
from .routes import MEDIA_APIS, Route, regional_vertex

Shape = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


@functools.lru_cache(maxsize=512)
def _snake_name(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


def snake(value: Any) -> Any:
    """Gemini's REST JSON (camelCase keys) as the google-genai SDK's field names (snake_case), recursively."""
    if isinstance(value, dict):
        return {_snake_name(k) if isinstance(k, str) else k: snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake(v) for v in value]
    return value


def _bedrock_event(value: Any) -> Any:
    """An invoke stream's ``chunk`` event carries base64 JSON on the wire; botocore hands its callers the bytes."""
    if isinstance(value, dict) and isinstance(chunk := value.get("chunk"), dict) and isinstance(
            data := chunk.get("bytes"), str):
        try:
            return {"chunk": {"bytes": base64.b64decode(data)}}
        except ValueError:
            return value
    return value


class Format(NamedTuple):
    """How one API's requests and responses are read."""

    endpoint: Endpoint
    kwargs: Callable[[Route, Mapping[str, Any]], Mapping[str, Any]]
    """Request JSON -> the keyword arguments the endpoint's ``prepare`` reads."""
    shape: Shape = _same
    """Response JSON (or one stream payload) -> what the endpoint's ``extract`` / accumulator read."""
    stream: bool | None = None
    """The API always streams (True), never (False), or as the body's ``stream`` says (None)."""


def _body(route: Route, body: Mapping[str, Any]) -> Mapping[str, Any]:
    return body


def _gemini(route: Route, body: Mapping[str, Any]) -> Mapping[str, Any]:
    config = snake(body.get("generationConfig") or body.get("generation_config") or {})
    if isinstance(config, dict) and "systemInstruction" in body:
        config["system_instruction"] = body["systemInstruction"]
    contents = body.get("contents", body.get("content", body.get("requests")))
    return {"model": route.path_model, "contents": contents, "config": config}


def _vertex_anthropic(route: Route, body: Mapping[str, Any]) -> Mapping[str, Any]:
    return {**body, "model": route.path_model}  # Vertex takes the model from the path, not the body


def _bedrock(route: Route, body: Mapping[str, Any]) -> Mapping[str, Any]:
    return {"modelId": route.path_model, **body}


@functools.cache
def _formats() -> dict[tuple[str, str], Format]:
    """Imported on the first recognised request: the provider modules import no SDK at module level."""
    from ..providers import anthropic, cohere, google_genai, ollama, openai, openai_media

    return {
        ("openai", "images"): Format(openai_media.IMAGES, _body, stream=False),
        ("openai", "transcription"): Format(openai_media.TRANSCRIPTION, _body),
        ("openai", "translation"): Format(openai_media.TRANSLATION, _body, stream=False),
        ("openai", "speech"): Format(openai_media.SPEECH, _body, stream=False),
        ("openai", "moderation"): Format(openai_media.MODERATION, _body, stream=False),
        ("openai", "chat"): Format(openai.CHAT, _body),
        ("openai", "responses"): Format(openai.RESPONSES, _body),
        ("openai", "completions"): Format(openai.COMPLETIONS, _body),
        ("openai", "embeddings"): Format(openai.EMBEDDINGS, _body, stream=False),
        ("anthropic", "messages"): Format(anthropic.MESSAGES, _body),
        ("anthropic", "vertex_messages"): Format(anthropic.MESSAGES, _vertex_anthropic),
        ("gemini", "generate"): Format(google_genai.GENERATE, _gemini, snake, stream=False),
        ("gemini", "stream"): Format(google_genai.GENERATE_STREAM, _gemini, snake, stream=True),
        ("gemini", "embed"): Format(google_genai.EMBED, _gemini, snake, stream=False),
        ("gemini", "batch_embed"): Format(google_genai.EMBED, _gemini, snake, stream=False),
        ("cohere", "chat"): Format(cohere.CHAT, _body),
        ("cohere", "embed"): Format(cohere.EMBED, _body, stream=False),
        ("ollama", "ollama_chat"): Format(ollama.CHAT, _body),
        ("ollama", "ollama_generate"): Format(ollama.GENERATE, _body),
        ("ollama", "ollama_embed"): Format(ollama.EMBED, _body, stream=False),
    }


_BEDROCK_OPERATIONS = {"converse": "Converse", "converse_stream": "ConverseStream", "invoke": "InvokeModel",
                       "invoke_stream": "InvokeModelWithResponseStream"}


def prepare(route: Route, body: Any, host: str | None, port: int | None, options: Options) -> Prepared:
    """What is known of the call before it is sent; a body that is not a JSON object still makes a call (with
    no model, usage to come from the response)."""
    body = body if isinstance(body, dict) else {}
    if route.format == "bedrock":
        from ..providers import bedrock

        operation = _BEDROCK_OPERATIONS[route.api]
        params = {"modelId": route.path_model, **body} if operation.startswith("Converse") else {
            "modelId": route.path_model, "body": body}
        prepared = bedrock.prepare_operation(operation, params, host, port, options, {})
    else:
        wire_format = _formats()[(route.format, route.api)]
        made = wire_format.endpoint.prepare(None, wire_format.kwargs(route, body), options)
        assert made is not None  # only bedrock's prepare declines (another AWS service), and it is not here
        prepared = made
        if wire_format.stream is not None:
            stream = wire_format.stream
        elif route.format == "ollama":  # Ollama streams unless told not to
            stream = body.get("stream") is not False
        else:
            stream = body.get("stream") is True
        request = prepared.request._replace(provider=route.provider, stream=stream, server_address=host,
                                            server_port=port)
        if route.api == "vertex_messages" and regional_vertex(host):  # billed apart from the global endpoint
            request = at_endpoint(request, "endpoint=regional")
        # a media call's extract reads its request (an image's size, speech's input): its fields stay
        kwargs = prepared.kwargs if route.api in MEDIA_APIS else {}
        return Prepared(request, kwargs, False, False, prepared.capture_content)
    request = prepared.request._replace(provider=route.provider, server_address=host, server_port=port)
    return prepared._replace(request=request, kwargs={}, hide_usage_only_chunk=False, body_left_to_caller=False)


def accumulator(route: Route, prepared: Prepared) -> tuple[StreamAccumulator, Shape]:
    """The accumulator for the payloads of a streamed answer, and how each payload is shaped for it."""
    if route.format == "bedrock":
        from ..providers import bedrock

        return bedrock.EventAccumulator(prepared), _bedrock_event
    wire_format = _formats()[(route.format, route.api)]
    return wire_format.endpoint.accumulator(prepared), wire_format.shape


def extract(route: Route, prepared: Prepared, value: Any, headers: Mapping[str, str]) -> ResponseInfo:
    """What a whole (non-streamed) JSON answer says about the call."""
    if route.format == "bedrock":
        from ..providers import bedrock

        if not isinstance(value, dict):
            return ResponseInfo()
        if route.api == "converse":
            return bedrock.extract(value, prepared)
        return bedrock.invoke_response(value, {"ResponseMetadata": {"HTTPHeaders": dict(headers)}})
    wire_format = _formats()[(route.format, route.api)]
    return wire_format.endpoint.extract(wire_format.shape(value), prepared)
