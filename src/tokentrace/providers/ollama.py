"""Ollama's SDK: PATCHES for ``chat``, ``generate`` and ``embed`` on ``Client``/``AsyncClient`` and the module-level
functions (``ollama.chat`` is a method of a default client, bound when ollama is imported).

Usage partition: input = ``prompt_eval_count``, output = ``eval_count`` (thinking, when the model thinks, is
inside ``eval_count``: Ollama does not split it), from the response or, in a stream, the final (``done``)
chunk. The models run locally: cost is $0 with price source ``local`` unless a price override names them.
"""

from __future__ import annotations

from typing import Any, Mapping

from .._usage import RequestInfo, ResponseInfo, Usage
from ._capture import capture_messages, capture_output
from ._contract import Endpoint, Options, Patch, Prepared, StreamAccumulator, client_pair
from ._fields import count, field, int_or_none, number_or_none, server_of, text_or_none, usage_reader
from ._kinds import classifier
from ._prompt import text_length

PROVIDER = "ollama"


def _prepare(instance: Any, kwargs: Mapping[str, Any], options: Options, operation: str, prompt_key: str
             ) -> Prepared:
    address, port = server_of(getattr(getattr(instance, "_client", None), "base_url", None))
    prompt = kwargs.get(prompt_key)
    settings = kwargs.get("options")
    model = kwargs.get("model")
    request = RequestInfo(
        provider=PROVIDER,
        operation=operation,
        request_model=model if isinstance(model, str) else "",
        stream=kwargs.get("stream") is True,
        server_address=address,
        server_port=port,
        max_tokens=int_or_none(field(settings, "num_predict")),
        temperature=number_or_none(field(settings, "temperature")),
        top_p=number_or_none(field(settings, "top_p")),
        input_chars=text_length(prompt) + text_length(kwargs.get("system")) if options.measure_prompt else 0,
        input_messages=len(prompt) if isinstance(prompt, (list, tuple)) else int(prompt is not None),
        captured_input=capture_messages(prompt, kwargs.get("system"))
        if options.capture_content and operation != "embeddings" else None,
    )
    return Prepared(request, kwargs, capture_content=options.capture_content)


def prepare_chat(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    return _prepare(instance, kwargs, options, "chat", "messages")


def prepare_generate(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    return _prepare(instance, kwargs, options, "text_completion", "prompt")


def prepare_embed(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    return _prepare(instance, kwargs, options, "embeddings", "input")


@usage_reader
def usage_from(response: Any) -> Usage | None:
    """Partition a final Ollama response (``prompt_eval_count``, ``eval_count``); None when it has neither."""
    if field(response, "prompt_eval_count") is None and field(response, "eval_count") is None:
        return None
    return Usage(input=count(response, "prompt_eval_count", "usage.ollama"),
                 output=count(response, "eval_count", "usage.ollama"))


def _text(response: Any) -> str | None:
    text = field(field(response, "message"), "content")
    if text is None:
        text = field(response, "response")
    return text if isinstance(text, str) else None


def extract(result: Any, prepared: Prepared) -> ResponseInfo:
    reason = text_or_none(field(result, "done_reason"))
    reasons = (reason,) if reason else ()
    return ResponseInfo(
        usage=usage_from(result),
        response_model=text_or_none(field(result, "model")),
        finish_reasons=reasons,
        output_text=capture_output(_text(result), reasons) if prepared.capture_content else None,
    )


class ChunkAccumulator(StreamAccumulator):
    """Streamed responses: the chunk with ``done`` true carries the counts and the reason."""

    __slots__ = ("final", "model", "prepared", "text")

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.final: Any = None
        self.model: str | None = None
        self.text: list[str] | None = [] if prepared.capture_content else None

    def chunk(self, item: Any) -> bool:
        if self.model is None:
            self.model = text_or_none(field(item, "model"))
        if field(item, "done"):
            self.final = item
        if self.text is not None:
            self.text.append(_text(item) or "")
        return False

    def result(self) -> ResponseInfo:
        if self.final is None:
            return ResponseInfo(response_model=self.model)
        info = extract(self.final, self.prepared._replace(capture_content=False))
        if self.text is not None:
            info = info._replace(output_text=capture_output("".join(self.text), info.finish_reasons))
        return info


classify = classifier("pydantic", "BaseModel")


CHAT = Endpoint(prepare_chat, extract, ChunkAccumulator, classify, positional=("model", "messages"))
GENERATE = Endpoint(prepare_generate, extract, ChunkAccumulator, classify, positional=("model", "prompt"))
EMBED = Endpoint(prepare_embed, extract, ChunkAccumulator, classify, positional=("model", "input"))

PATCHES: tuple[Patch, ...] = (
    *client_pair("ollama._client", "Client", "AsyncClient", {"chat": CHAT, "generate": GENERATE, "embed": EMBED}),
    # the module-level functions are the default client's methods, bound before any patch could apply
    Patch("ollama", "chat", CHAT),
    Patch("ollama", "generate", GENERATE),
    Patch("ollama", "embed", EMBED),
)
