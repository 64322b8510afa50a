"""The calls the suite drives through the six further SDKs: groq, mistralai, cohere v2, ollama, boto3 Bedrock
runtime and xai-sdk (gRPC), each in every mode the SDK offers."""

from __future__ import annotations

import json
from typing import Any

from tokentrace import Usage

from .cases import MAX, MESSAGES, Case, adrain, drain

CHAT_USAGE = Usage(input=7, output=MAX)
EMBED_USAGE = Usage(input=3)

# ---- groq
LLAMA = "llama-3.3-70b-versatile"
GROQ_KW: dict[str, Any] = {"model": LLAMA, "messages": MESSAGES, "max_tokens": MAX}


async def _groq_async(c: Any) -> Any:
    return await c.chat.completions.create(**GROQ_KW)


async def _groq_astream(c: Any) -> Any:
    return await adrain(await c.chat.completions.create(**GROQ_KW, stream=True))


# ---- mistralai
MISTRAL = "mistral-small-latest"
MISTRAL_KW: dict[str, Any] = {"model": MISTRAL, "messages": MESSAGES, "max_tokens": MAX}


async def _mistral_async(c: Any) -> Any:
    return await c.chat.complete_async(**MISTRAL_KW)


async def _mistral_astream(c: Any) -> Any:
    return await adrain(await c.chat.stream_async(**MISTRAL_KW))


async def _mistral_embed_async(c: Any) -> Any:
    return await c.embeddings.create_async(model="mistral-embed", inputs=["one two three"])


# ---- cohere v2
COMMAND = "command-r-08-2024"
NO_RETRIES = {"max_retries": 0}
COHERE_KW: dict[str, Any] = {"model": COMMAND, "messages": MESSAGES, "max_tokens": MAX, "request_options": NO_RETRIES}
COHERE_EMBED_KW: dict[str, Any] = {"model": "embed-english-v3.0", "texts": ["one two three"],
                                   "input_type": "search_document", "embedding_types": ["float"],
                                   "request_options": NO_RETRIES}


async def _cohere_async(c: Any) -> Any:
    return await c.chat(**COHERE_KW)


async def _cohere_astream(c: Any) -> Any:
    return await adrain(c.chat_stream(**COHERE_KW))


async def _cohere_embed_async(c: Any) -> Any:
    return await c.embed(**COHERE_EMBED_KW)


# ---- ollama (positional model and prompt, as its README writes them)
OLLAMA = "llama3.2"
OPTIONS = {"num_predict": MAX}


async def _ollama_async(c: Any) -> Any:
    return await c.chat(OLLAMA, MESSAGES, options=OPTIONS)


async def _ollama_astream(c: Any) -> Any:
    return await adrain(await c.chat(OLLAMA, MESSAGES, options=OPTIONS, stream=True))


async def _ollama_generate_async(c: Any) -> Any:
    return await c.generate(OLLAMA, "one two three", options=OPTIONS)


async def _ollama_generate_astream(c: Any) -> Any:
    return await adrain(await c.generate(OLLAMA, "one two three", options=OPTIONS, stream=True))


async def _ollama_embed_async(c: Any) -> Any:
    return await c.embed(model="nomic-embed-text", input="one two three")


# ---- boto3 bedrock-runtime (no async client)
CLAUDE_ON_BEDROCK = "anthropic.claude-3-5-haiku-20241022-v1:0"
CONVERSE_KW: dict[str, Any] = {"modelId": CLAUDE_ON_BEDROCK, "inferenceConfig": {"maxTokens": MAX},
                               "messages": [{"role": "user", "content": [{"text": "one two three"}]}]}
INVOKE_KW: dict[str, Any] = {"modelId": CLAUDE_ON_BEDROCK, "body": json.dumps(
    {"anthropic_version": "bedrock-2023-05-31", "max_tokens": MAX, "messages": MESSAGES})}


def _invoke(c: Any) -> Any:
    response = c.invoke_model(**INVOKE_KW)
    answer = json.loads(response["body"].read())  # the caller still reads the whole body
    assert answer["usage"]["output_tokens"] == MAX
    return answer


# ---- xai-sdk (gRPC)
GROK = "grok-3-mini"  # a reasoning model: xAI bills reasoning on top of completion tokens


def _grok_chat(c: Any) -> Any:
    from xai_sdk.chat import user

    chat = c.chat.create(model=GROK, max_tokens=MAX)
    chat.append(user("one two three"))
    return chat


async def _grok_async(c: Any) -> Any:
    return await _grok_chat(c).sample()


async def _grok_astream(c: Any) -> Any:
    return await adrain(_grok_chat(c).stream())


CASES = (
    Case("groq", "chat.completions.create", "chat", LLAMA, LLAMA, CHAT_USAGE, {
        "sync": lambda c: c.chat.completions.create(**GROQ_KW),
        "async": _groq_async,
        "stream": lambda c: drain(c.chat.completions.create(**GROQ_KW, stream=True)),
        "async_stream": _groq_astream,
    }),
    Case("mistral", "chat.complete/stream", "chat", MISTRAL, MISTRAL, CHAT_USAGE, {
        "sync": lambda c: c.chat.complete(**MISTRAL_KW),
        "async": _mistral_async,
        "stream": lambda c: drain(c.chat.stream(**MISTRAL_KW)),
        "async_stream": _mistral_astream,
    }),
    Case("mistral", "embeddings.create", "embeddings", "mistral-embed", "mistral-embed", EMBED_USAGE, {
        "sync": lambda c: c.embeddings.create(model="mistral-embed", inputs=["one two three"]),
        "async": _mistral_embed_async,
    }),
    Case("cohere", "chat/chat_stream", "chat", COMMAND, COMMAND, CHAT_USAGE, {
        "sync": lambda c: c.chat(**COHERE_KW),
        "async": _cohere_async,
        "stream": lambda c: drain(c.chat_stream(**COHERE_KW)),
        "async_stream": _cohere_astream,
    }),
    Case("cohere", "embed", "embeddings", "embed-english-v3.0", "embed-english-v3.0", EMBED_USAGE, {
        "sync": lambda c: c.embed(**COHERE_EMBED_KW),
        "async": _cohere_embed_async,
    }),
    Case("ollama", "chat", "chat", OLLAMA, OLLAMA, CHAT_USAGE, {
        "sync": lambda c: c.chat(OLLAMA, MESSAGES, options=OPTIONS),
        "async": _ollama_async,
        "stream": lambda c: drain(c.chat(OLLAMA, MESSAGES, options=OPTIONS, stream=True)),
        "async_stream": _ollama_astream,
    }),
    Case("ollama", "generate", "text_completion", OLLAMA, OLLAMA, Usage(input=3, output=MAX), {
        "sync": lambda c: c.generate(OLLAMA, "one two three", options=OPTIONS),
        "async": _ollama_generate_async,
        "stream": lambda c: drain(c.generate(OLLAMA, "one two three", options=OPTIONS, stream=True)),
        "async_stream": _ollama_generate_astream,
    }),
    Case("ollama", "embed", "embeddings", "nomic-embed-text", "nomic-embed-text", EMBED_USAGE, {
        "sync": lambda c: c.embed(model="nomic-embed-text", input="one two three"),
        "async": _ollama_embed_async,
    }),
    Case("bedrock", "converse/converse_stream", "chat", CLAUDE_ON_BEDROCK, CLAUDE_ON_BEDROCK, CHAT_USAGE, {
        "sync": lambda c: c.converse(**CONVERSE_KW),
        "stream": lambda c: drain(c.converse_stream(**CONVERSE_KW)["stream"]),
    }),
    Case("bedrock", "invoke_model(+with_response_stream)", "chat", CLAUDE_ON_BEDROCK, CLAUDE_ON_BEDROCK, CHAT_USAGE, {
        "sync": _invoke,
        "stream": lambda c: drain(c.invoke_model_with_response_stream(**INVOKE_KW)["body"]),
    }),
    Case("xai", "chat.sample/stream (gRPC)", "chat", GROK, GROK, Usage(input=7, output=2, reasoning=3), {
        "sync": lambda c: _grok_chat(c).sample(),
        "async": _grok_async,
        "stream": lambda c: drain(_grok_chat(c).stream()),
        "async_stream": _grok_astream,
    }),
)
