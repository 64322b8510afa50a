"""The provider registry: everything tokentrace knows about each provider and each patched SDK, in one table.

Every other table (semconv names, genai-prices ids, LiteLLM aliases, OpenAI-compatible hosts, stream-usage and
reasoning rules, which SDK module patches what) derives from ``PROVIDERS`` and ``SDKS``. Adding an
OpenAI-compatible host is one ``Provider`` entry; adding an SDK is one provider module plus one ``SDK`` entry.
Stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class SDK:
    """A provider SDK tokentrace patches: ``instrument(providers=[name])`` selects it."""

    name: str
    """The name users pass to ``instrument(providers=...)``."""
    import_name: str
    """The SDK's top-level module; its import triggers patching."""
    support_module: str
    """The tokentrace module with the SDK's ``PATCHES`` table."""
    more_modules: tuple[str, ...] = ()
    """Further modules with ``PATCHES`` of the same SDK (openai's media endpoints)."""


@dataclass(frozen=True, slots=True)
class Provider:
    """One provider id as it appears in metrics, the ledger and the CLI."""

    id: str
    semconv_name: str
    """``gen_ai.provider.name`` on spans and OpenTelemetry metrics."""
    sdks: tuple[str, ...]
    """The ``SDK.name`` of every SDK whose patches measure this provider's calls."""
    genai_prices_id: str | None
    """The provider's id in genai-prices; None: genai-prices finds the provider from the model name."""
    litellm_aliases: tuple[str, ...] = ()
    """``litellm_provider`` values in LiteLLM price files that mean this provider."""
    hosts: tuple[str, ...] = ()
    """Host names (a leading dot: any subdomain) of the provider's OpenAI-compatible endpoint."""
    accepts_stream_options: bool = False
    """Known to accept ``stream_options.include_usage`` (others send stream usage unasked, or may reject it)."""
    reasoning_on_top: bool = False
    """``completion_tokens`` excludes reasoning when ``total_tokens`` cannot tell (xAI)."""
    local: bool = False
    """Models run on the user's own machine (Ollama): priced at $0 with price source ``local`` unless an override
    file prices them (e.g. to charge GPU time)."""


SDKS: tuple[SDK, ...] = (
    SDK("openai", "openai", "tokentrace.providers.openai", ("tokentrace.providers.openai_media",)),
    SDK("anthropic", "anthropic", "tokentrace.providers.anthropic"),
    SDK("google", "google.genai", "tokentrace.providers.google_genai"),
    SDK("xai", "xai_sdk", "tokentrace.providers.xai_sdk"),
    SDK("bedrock", "botocore", "tokentrace.providers.bedrock"),
    SDK("mistral", "mistralai.client", "tokentrace.providers.mistral"),
    SDK("groq", "groq", "tokentrace.providers.groq"),
    SDK("cohere", "cohere", "tokentrace.providers.cohere"),
    SDK("ollama", "ollama", "tokentrace.providers.ollama"),
)

_OPENAI = ("openai",)
AZURE_OPENAI = "azure_openai"
"""The provider id of Azure OpenAI (an AzureOpenAI client whose host the registry does not name is one too)."""
MODEL_MAKERS: tuple[str, ...] = ("openai", "anthropic", "google", "xai", "mistral", "deepseek", "cohere")
"""Providers that make models: a name several providers price is shown at (and inferred from) its maker first."""

PROVIDERS: tuple[Provider, ...] = (
    Provider("openai", "openai", _OPENAI, "openai", ("openai", "text-completion-openai"),
             hosts=("api.openai.com",), accepts_stream_options=True),
    Provider("xai", "x_ai", ("openai", "xai"), "x-ai", ("xai",), hosts=("api.x.ai",), accepts_stream_options=True,
             reasoning_on_top=True),
    Provider(AZURE_OPENAI, "azure.ai.openai", _OPENAI, "azure", ("azure",),
             hosts=(".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com"),
             accepts_stream_options=True),
    Provider("groq", "groq", ("openai", "groq"), "groq", ("groq",), hosts=("api.groq.com",),
             accepts_stream_options=True),
    Provider("deepseek", "deepseek", _OPENAI, "deepseek", ("deepseek",), hosts=("api.deepseek.com",),
             accepts_stream_options=True),
    Provider("openrouter", "openrouter", _OPENAI, "openrouter", ("openrouter",), hosts=("openrouter.ai",)),
    Provider("mistral", "mistral_ai", ("openai", "mistral"), "mistral", ("mistral",), hosts=("api.mistral.ai",)),
    Provider("together", "together_ai", _OPENAI, "together", ("together_ai",),
             hosts=("api.together.xyz", "api.together.ai")),
    Provider("openai_compatible", "openai_compatible", _OPENAI, None, accepts_stream_options=True),
    Provider("anthropic", "anthropic", ("anthropic",), "anthropic", ("anthropic",)),
    Provider("google", "gcp.gemini", ("google",), "google", ("gemini",)),
    Provider("vertex_ai", "gcp.vertex_ai", ("google",), "google", ("vertex_ai-language-models",)),
    Provider("bedrock", "aws.bedrock", ("bedrock",), "aws", ("bedrock", "bedrock_converse")),
    Provider("cohere", "cohere", ("cohere",), "cohere", ("cohere", "cohere_chat")),
    Provider("ollama", "ollama", ("ollama",), None, ("ollama", "ollama_chat"), local=True),
)

HF_ROUTER = "router.huggingface.co"
"""Hugging Face's inference router: an OpenAI-compatible host in front of many serving backends."""
STREAM_USAGE_UNASKED_HOSTS: frozenset[str] = frozenset({HF_ROUTER})
"""OpenAI-compatible hosts that end every stream with a usage-only chunk whether or not the request asked: tokentrace
does not add ``stream_options`` there (so it has nothing to hide, and the caller reads what it always read)."""

OPENAI_COMPATIBLE = "openai_compatible"
"""The provider id of an OpenAI-compatible endpoint whose host is not in the registry."""


BY_ID: Mapping[str, Provider] = MappingProxyType({p.id: p for p in PROVIDERS})
SDK_BY_NAME: Mapping[str, SDK] = MappingProxyType({s.name: s for s in SDKS})
SDK_NAMES: tuple[str, ...] = tuple(SDK_BY_NAME)

SEMCONV_NAMES: Mapping[str, str] = MappingProxyType({p.id: p.semconv_name for p in PROVIDERS})
GENAI_PRICES_IDS: Mapping[str, str | None] = MappingProxyType({p.id: p.genai_prices_id for p in PROVIDERS})
LITELLM_ALIASES: Mapping[str, str] = MappingProxyType(
    {alias: p.id for p in PROVIDERS for alias in p.litellm_aliases})
ACCEPTS_STREAM_OPTIONS: frozenset[str] = frozenset(p.id for p in PROVIDERS if p.accepts_stream_options)
REASONING_ON_TOP: frozenset[str] = frozenset(p.id for p in PROVIDERS if p.reasoning_on_top)
MAKER_PROVIDERS: Mapping[str, str] = MappingProxyType(
    {genai: p.id for p in reversed(PROVIDERS) if (genai := p.genai_prices_id) is not None})
"""genai-prices provider id -> the tokentrace provider it is (the first registered: ``google`` -> ``google``)."""
LOCAL: frozenset[str] = frozenset(p.id for p in PROVIDERS if p.local)
HOSTS: tuple[tuple[str, str], ...] = tuple((host, p.id) for p in PROVIDERS for host in p.hosts)


def semconv_name(provider: str) -> str:
    """``gen_ai.provider.name`` of a provider id (the id itself when unknown)."""
    return SEMCONV_NAMES.get(provider, provider)


def provider_for_host(host: str) -> str:
    """The provider id of an OpenAI-compatible endpoint's host name (lower case); unknown hosts are compatible."""
    for suffix, provider in HOSTS:
        if suffix.startswith("."):
            if host.endswith(suffix) or host == suffix[1:]:
                return provider
        elif host == suffix or host.endswith("." + suffix):
            return provider
    return OPENAI_COMPATIBLE


def router_backend(host: str | None, path: str, model: Any) -> str | None:
    """The genai-prices provider of the backend a Hugging Face router call is served by: the path's first part
    (``/novita/v3/openai/chat/completions`` -> ``huggingface_novita``), else the model's ``:backend`` suffix
    (``deepseek-ai/DeepSeek-V3-0324:novita``); None when neither names one (``:fastest`` picks at serving time)."""
    if host != HF_ROUTER:
        return None
    first = path.strip("/").split("/", 1)[0].lower()
    if first and first not in ("v1", "chat", "responses", "completions", "embeddings"):
        return f"huggingface_{first}"
    if isinstance(model, str) and ":" in model:
        suffix = model.rsplit(":", 1)[1].lower()
        if suffix and suffix not in ("fastest", "cheapest", "preferred"):
            return f"huggingface_{suffix}"
    return None
