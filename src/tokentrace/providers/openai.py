"""OpenAI SDK (and every OpenAI-compatible host reached through it): PATCHES and pure SDK-object -> Usage functions."""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

from .._registry import (
    HF_ROUTER,
    REASONING_ON_TOP,
    router_backend,
)
from .._support import errors as _errors
from .._usage import RequestInfo, ResponseInfo, Usage, build, tier_label
from . import stream_usage
from ._capture import capture_messages, capture_output
from ._contract import Endpoint, Options, Patch, Prepared, ResultKind, StreamAccumulator
from ._fields import (
    MAX_COUNT,
    count_in,
    counts_in,
    field,
    fields_of,
    int_or_none,
    number_or_none,
    reported_cost,
    text_or_none,
    usage_reader,
)
from ._fields import reported_in as _reported
from ._prompt import text_length
from ._stainless import classify_result, client_path, client_target, streaming_response_requested
from .openai_one_pass import plain_chat_response
from .stream_usage import caller_asked, should_ask

# --------------------------------------------------------------------------- requests

Target = Callable[[Any], tuple[str, str | None, int | None]]
"""(provider id, server address, server port) of the client a resource method belongs to."""


def prepare_request(
    instance: Any, kwargs: Mapping[str, Any], options: Options, operation: str, max_keys: tuple[str, ...],
    usage_option: bool, target: Target = client_target,
) -> Prepared:
    """An OpenAI-shaped request (also the Groq and Mistral SDKs'): ``usage_option`` says whether the API takes
    ``stream_options.include_usage``."""
    provider, address, port = target(instance)
    stream = kwargs.get("stream") is True
    max_tokens = None
    for key in max_keys:
        value = kwargs.get(key)
        if value is not None:
            max_tokens = int_or_none(value)
            if max_tokens is not None:
                break
    model = kwargs.get("model")
    request = build(RequestInfo, (
        provider,
        operation,
        model if isinstance(model, str) else "",
        stream,
        address,
        port,
        max_tokens,
        None if (temperature := kwargs.get("temperature")) is None else number_or_none(temperature),
        None if (top_p := kwargs.get("top_p")) is None else number_or_none(top_p),
        *(prompt_size(kwargs) if options.measure_prompt else (0, 0)),
        False,
        capture_messages(kwargs.get("messages", kwargs.get("input", kwargs.get("prompt"))),
                         kwargs.get("instructions")) if options.capture_content else None,
        1 if (n := kwargs.get("n")) is None else max(int_or_none(n) or 1, 1),
        0,
        tier_label(tier) if (tier := kwargs.get("service_tier")) is not None else None,
        None,  # endpoint_modifiers
        router_backend(address, client_path(instance), model) if address == HF_ROUTER else None,
    ))
    send: Mapping[str, Any] = kwargs
    hide = False
    left_to_caller = "extra_headers" in kwargs and streaming_response_requested(kwargs)  # nothing can be hidden
    if (stream and usage_option and options.stream_usage and not left_to_caller and not caller_asked(kwargs)
            and should_ask(provider, address)):
        current = kwargs.get("stream_options")
        send = {**kwargs, "stream_options": {**(current if isinstance(current, Mapping) else {}),
                                             "include_usage": True}}
        hide = True
    return build(Prepared, (request, send, hide, left_to_caller, options.capture_content, None))  # every field


def prompt_size(kwargs: Mapping[str, Any]) -> tuple[int, int]:
    """(characters of prompt text, number of messages) of a request; used for budget estimates."""
    prompt = kwargs.get("messages", kwargs.get("input", kwargs.get("prompt")))
    count = len(prompt) if isinstance(prompt, (list, tuple)) else int(prompt is not None)
    return text_length(prompt) + text_length(kwargs.get("instructions")), count


def prepare_chat(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    return prepare_request(instance, kwargs, options, "chat", ("max_completion_tokens", "max_tokens"), True)


def prepare_completions(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    return prepare_request(instance, kwargs, options, "text_completion", ("max_tokens",), True)


def prepare_responses(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    return prepare_request(instance, kwargs, options, "chat", ("max_output_tokens",), False)


def prepare_embeddings(instance: Any, kwargs: Mapping[str, Any], options: Options) -> Prepared:
    return prepare_request(instance, kwargs, options, "embeddings", (), False)


# --------------------------------------------------------------------------- usage


def partition(
    prompt: int, cached: int, cache_write: int, completion: int, reasoning: int, total: int | None, provider: str,
    audio_in: int = 0, audio_out: int = 0,
) -> Usage:
    """Split OpenAI-style counts; ``total`` tells whether reasoning is inside completion (OpenAI) or on top (xAI)."""
    if not reasoning or (total is not None and total == prompt + completion + reasoning):
        output = completion
    elif total is not None and total == prompt + completion:
        output = completion - reasoning
    elif provider in REASONING_ON_TOP:
        output = completion
    else:
        output = completion - reasoning
    uncached = prompt - cached - cache_write
    if output < 0 or uncached < 0:
        _errors.report(f"usage.{provider}", None, "provider usage details exceed their totals")
        output, uncached = max(output, 0), max(uncached, 0)
    return build(Usage, (uncached, cached, cache_write, output, reasoning, 0, 0, 0, min(audio_in, uncached),
                         min(audio_out, output), 0, 0, 0))


class _UsageNames(NamedTuple):
    """Where one OpenAI API puts its counts: the totals, and the details objects holding cached and reasoning."""

    totals: tuple[str, str]
    """(prompt, completion) count fields."""
    prompt_details: str
    completion_details: str


_COMPLETION_USAGE = _UsageNames(("prompt_tokens", "completion_tokens"), "prompt_tokens_details",
                                "completion_tokens_details")
_RESPONSE_USAGE = _UsageNames(("input_tokens", "output_tokens"), "input_tokens_details", "output_tokens_details")
_PROMPT_DETAILS = ("cached_tokens", "cache_write_tokens")
_STAGES: dict[str, str] = {}
"""provider -> its usage error stage (``usage.openai``), built once."""


@usage_reader
def _usage(values: Mapping[str, Any], provider: str, names: _UsageNames) -> Usage:
    """The partition of one ``usage`` object's fields (read with ``fields_of``); None when a count is unreadable."""
    stage = _STAGES.get(provider) or _STAGES.setdefault(provider, f"usage.{provider}")
    prompt, completion = counts_in(values, names.totals, stage)
    details = values.get(names.prompt_details)
    if details is not None:
        detail_values = fields_of(details)
        cached, write = counts_in(detail_values, _PROMPT_DETAILS, stage)
        audio_in = count_in(detail_values, "audio_tokens", stage) if detail_values.get("audio_tokens") else 0
    else:
        cached = write = audio_in = 0
    details = values.get(names.completion_details)
    if details is not None:
        detail_values = fields_of(details)
        reasoning = detail_values.get("reasoning_tokens")
        if not (type(reasoning) is int and 0 <= reasoning <= MAX_COUNT):  # the usual plain count is taken as it is
            reasoning = count_in(detail_values, "reasoning_tokens", stage)
        audio_out = count_in(detail_values, "audio_tokens", stage) if detail_values.get("audio_tokens") else 0
    else:
        reasoning = audio_out = 0
    return partition(prompt, cached, write, completion, reasoning, int_or_none(values.get("total_tokens")), provider,
                     audio_in, audio_out)


def usage_from_completion_usage(usage: Any, provider: str) -> Usage | None:
    """Chat / legacy completions / embeddings ``usage`` (prompt_tokens, completion_tokens, ...)."""
    return None if usage is None else _usage(fields_of(usage), provider, _COMPLETION_USAGE)


def usage_from_response_usage(usage: Any, provider: str) -> Usage | None:
    """Responses API ``usage`` (input_tokens, output_tokens and their details)."""
    return None if usage is None else _usage(fields_of(usage), provider, _RESPONSE_USAGE)


_str = text_or_none


def _finish_reasons(choices: Any) -> tuple[str, ...]:
    if not isinstance(choices, (list, tuple)):
        return ()
    if len(choices) == 1:
        reason = _str(fields_of(choices[0]).get("finish_reason"))
        return (reason,) if reason else ()
    return tuple(r for c in choices if (r := _str(fields_of(c).get("finish_reason"))))


def chat_response(result: Any, provider: str, capture: bool = False) -> ResponseInfo:
    """A chat completion (also a legacy completion or an embeddings response)."""
    plain = None if capture else plain_chat_response(result)
    return plain if plain is not None else chat_response_by_fields(result, provider, capture)


def chat_response_by_fields(result: Any, provider: str, capture: bool = False) -> ResponseInfo:
    """``chat_response`` for any shape: each field read by the tolerant readers (dicts, objects, odd values)."""
    values = fields_of(result)
    choices = values.get("choices")
    reasons = _finish_reasons(choices) if choices else ()
    usage = values.get("usage")
    if usage is not None:
        usage_values = fields_of(usage)
        read, cost = _usage(usage_values, provider, _COMPLETION_USAGE), _reported(usage_values)
    else:
        read = cost = None
    return build(ResponseInfo, (
        read,
        _str(values.get("model")),
        _str(values.get("id")),
        reasons,
        capture_output(_choice_text(choices), reasons) if capture else None,
        cost,
        tier_label(tier) if (tier := values.get("service_tier")) is not None else None,
        None,  # media
    ))


def responses_response(result: Any, provider: str, capture: bool = False) -> ResponseInfo:
    """A Responses API response."""
    status = _str(field(result, "status"))
    text = field(result, "output_text") if capture else None
    raw_usage = field(result, "usage")
    usage = usage_from_response_usage(raw_usage, provider)
    if usage is not None:
        usage = _with_tool_calls(usage, field(result, "output"))
    tier = field(result, "service_tier")
    return ResponseInfo(
        usage=usage,
        reported_cost_usd=reported_cost(raw_usage),
        service_tier=tier_label(tier) if tier is not None else None,
        response_model=_str(field(result, "model")),
        response_id=_str(field(result, "id")),
        finish_reasons=(status,) if status else (),
        output_text=capture_output(text if isinstance(text, str) else None) if capture else None,
    )


def _with_tool_calls(usage: Usage, output: Any) -> Usage:
    """Usage plus the server-side searches billed per call: ``web_search_call`` and ``file_search_call`` items."""
    if not isinstance(output, (list, tuple)):
        return usage
    web = files = 0
    for item in output:
        kind = field(item, "type")
        if kind == "web_search_call":
            web += 1
        elif kind == "file_search_call":
            files += 1
    return usage._replace(web_search_requests=web, file_search_requests=files) if web or files else usage


def _choice_text(choices: Any) -> str | None:
    """The first choice's text (chat message content, or a legacy completion's text)."""
    if not isinstance(choices, (list, tuple)) or not choices:
        return None
    text = field(field(choices[0], "message"), "content") or field(choices[0], "text")
    return text if isinstance(text, str) else None


# --------------------------------------------------------------------------- streams


class ChatAccumulator(StreamAccumulator):
    """Chat and legacy completion chunks: id and model from the first, finish reasons, usage from the usage chunk."""

    __slots__ = ("finish", "hide", "learning", "model", "null_usage", "provider", "response_id", "text", "tier",
                 "usage")

    def __init__(self, prepared: Prepared) -> None:
        self.provider = prepared.request.provider
        self.hide = prepared.hide_usage_only_chunk
        host = prepared.request.server_address
        learns = stream_usage.learning(self.provider, host) and not caller_asked(prepared.kwargs)
        self.learning = host if learns else None
        """The host whose stream, sent as written, tells whether it sends usage unasked (``stream_usage``)."""
        self.null_usage = False
        self.response_id: str | None = None
        self.model: str | None = None
        self.finish: dict[int, str] = {}
        self.usage: Any = None
        self.tier: Any = None
        self.text: list[str] | None = [] if prepared.capture_content else None

    def chunk(self, item: Any) -> bool:
        values = fields_of(item)
        if self.response_id is None:
            self.response_id = _str(values.get("id"))
            self.model = _str(values.get("model"))
        tier = values.get("service_tier")
        if tier is not None:
            self.tier = tier
        usage = values.get("usage")
        if usage is None:
            extra = values.get("x_groq")  # Groq puts stream usage here
            usage = field(extra, "usage") if extra is not None else None
        choices = values.get("choices")
        if choices:
            for choice in choices:
                choice_values = fields_of(choice)
                reason = choice_values.get("finish_reason")
                if reason:
                    self.finish[choice_values.get("index") or 0] = reason
            if self.text is not None:
                piece = field(field(choices[0], "delta"), "content") or field(choices[0], "text")
                if isinstance(piece, str):
                    self.text.append(piece)
        if usage is not None:
            self.usage = usage
            return self.hide and not choices
        if self.learning and item.__class__ is dict and "usage" in item:
            self.null_usage = True  # the host's un-asked chunks carry "usage": null (seen on the wire only)
        return False

    def result(self) -> ResponseInfo:
        reasons = tuple(self.finish[i] for i in sorted(self.finish))
        if self.learning and (reasons or self.usage is not None):  # a stream that ended, not one cut short
            stream_usage.learn(self.learning, self.usage is not None, self.null_usage)
        return ResponseInfo(
            usage=usage_from_completion_usage(self.usage, self.provider),
            response_model=self.model,
            response_id=self.response_id,
            finish_reasons=reasons,
            output_text=capture_output("".join(self.text), reasons) if self.text is not None else None,
            reported_cost_usd=reported_cost(self.usage),
            service_tier=tier_label(self.tier) if self.tier is not None else None,
        )


_RESPONSE_END_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesAccumulator(StreamAccumulator):
    """Responses API events: the final response (completed, incomplete or failed) carries usage."""

    __slots__ = ("capture", "created", "final", "provider")

    def __init__(self, prepared: Prepared) -> None:
        self.provider = prepared.request.provider
        self.capture = prepared.capture_content
        self.final: Any = None
        self.created: Any = None

    def chunk(self, item: Any) -> bool:
        kind = field(item, "type")
        if kind in _RESPONSE_END_EVENTS:
            self.final = field(item, "response")
        elif kind == "response.created":
            self.created = field(item, "response")
        return False

    def result(self) -> ResponseInfo:
        if self.final is not None:
            return responses_response(self.final, self.provider, self.capture)
        if self.created is not None:
            return ResponseInfo(response_model=_str(field(self.created, "model")),
                                response_id=_str(field(self.created, "id")))
        return ResponseInfo()


# --------------------------------------------------------------------------- result kinds

_types: dict[str, Any] = {}


def _sdk_types() -> dict[str, Any]:
    if not _types:
        import openai
        from openai import _legacy_response

        _types["streams"] = (openai.Stream, openai.AsyncStream)
        _types["raw"] = _legacy_response.LegacyAPIResponse
        _types["model"] = openai.BaseModel
    return _types


def classify(result: Any) -> ResultKind:
    types = _types or _sdk_types()
    return classify_result(result, types["model"], types["streams"], types["raw"], "_stream")


def extract_chat(result: Any, prepared: Prepared) -> ResponseInfo:
    return chat_response(result, prepared.request.provider, prepared.capture_content)


def _extract_responses(result: Any, prepared: Prepared) -> ResponseInfo:
    return responses_response(result, prepared.request.provider, prepared.capture_content)


CHAT = Endpoint(prepare_chat, extract_chat, ChatAccumulator, classify)
RESPONSES = Endpoint(prepare_responses, _extract_responses, ResponsesAccumulator, classify)
COMPLETIONS = Endpoint(prepare_completions, extract_chat, ChatAccumulator, classify)
EMBEDDINGS = Endpoint(prepare_embeddings, extract_chat, ChatAccumulator, classify)

_CHAT_MODULE = "openai.resources.chat.completions.completions"
_RESPONSES_MODULE = "openai.resources.responses.responses"

PATCHES: tuple[Patch, ...] = (
    Patch(_CHAT_MODULE, "Completions.create", CHAT),
    Patch(_CHAT_MODULE, "Completions.parse", CHAT, optional=True),
    Patch(_CHAT_MODULE, "AsyncCompletions.create", CHAT, is_async=True),
    Patch(_CHAT_MODULE, "AsyncCompletions.parse", CHAT, is_async=True, optional=True),
    Patch("openai.resources.beta.chat.completions", "Completions.parse", CHAT, optional=True),
    Patch("openai.resources.beta.chat.completions", "AsyncCompletions.parse", CHAT, is_async=True, optional=True),
    Patch(_RESPONSES_MODULE, "Responses.create", RESPONSES, optional=True),
    Patch(_RESPONSES_MODULE, "Responses.parse", RESPONSES, optional=True),
    Patch(_RESPONSES_MODULE, "AsyncResponses.create", RESPONSES, is_async=True, optional=True),
    Patch(_RESPONSES_MODULE, "AsyncResponses.parse", RESPONSES, is_async=True, optional=True),
    Patch("openai.resources.completions", "Completions.create", COMPLETIONS),
    Patch("openai.resources.completions", "AsyncCompletions.create", COMPLETIONS, is_async=True),
    Patch("openai.resources.embeddings", "Embeddings.create", EMBEDDINGS),
    Patch("openai.resources.embeddings", "AsyncEmbeddings.create", EMBEDDINGS, is_async=True),
)
