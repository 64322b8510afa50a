"""OpenTelemetry GenAI semantic-convention names (semconv v1.41), kept in one place so a rename is one edit."""

from __future__ import annotations

SEMCONV_VERSION = "1.41.0"

# span attributes
OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
SYSTEM = "gen_ai.system"  # deprecated alias of gen_ai.provider.name, still read by many backends
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_STREAM = "gen_ai.request.stream"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"  # the newer name (semconv-genai #440)
CONVERSATION_ID = "gen_ai.conversation.id"
AGENT_NAME = "gen_ai.agent.name"
TOKEN_TYPE = "gen_ai.token.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
INPUT_MESSAGES = "gen_ai.input.messages"  # only with content capture on
OUTPUT_MESSAGES = "gen_ai.output.messages"
USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"  # v1.41; of the output tokens
RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"  # stream spans, seconds
OPENAI_RESPONSE_SERVICE_TIER = "openai.response.service_tier"
CONTENT_EVENT = "gen_ai.client.inference.operation.details"
"""The event that carries captured messages when content goes to events (EVENT_ONLY, SPAN_AND_EVENT)."""
EVENT_NAMES = frozenset({CONTENT_EVENT})
"""Event names: the semantic conventions define them in YAML only (the Python package has no constants)."""

# metrics
METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
METRIC_TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"

# advisory bucket boundaries from the semantic conventions
DURATION_BUCKETS: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)
TOKEN_BUCKETS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)

# names backends read beside the GenAI ones (Langfuse, Phoenix, PostHog, Agenta)
USAGE_COST = "gen_ai.usage.cost"  # USD, de facto: Langfuse, PostHog and Agenta read it
USER_ID = "user.id"
SESSION_ID = "session.id"
ATTRIBUTION_ALIASES: dict[str, tuple[str, ...]] = {
    "user_id": (USER_ID,), "session_id": (SESSION_ID, CONVERSATION_ID), "agent_id": (AGENT_NAME,)}
"""Attribution keys also set under the names backends read (beside ``tokentrace.<key>``)."""
COST_AMOUNT = "gen_ai.usage.cost.amount"  # the proposed trio (semconv-genai #443, open): only when opted in
COST_CURRENCY = "gen_ai.usage.cost.currency"
COST_SOURCE = "gen_ai.usage.cost.source"
COST_TRIO_OPT_IN = "gen_ai_latest_experimental"
"""A value of ``OTEL_SEMCONV_STABILITY_OPT_IN`` (comma-separated) that turns the proposed cost trio on."""
BEYOND_RELEASE = frozenset({USAGE_CACHE_WRITE_INPUT_TOKENS, USAGE_COST, COST_AMOUNT, COST_CURRENCY, COST_SOURCE})
"""The ``gen_ai.*`` names set here that the followed semconv release does not have yet (de facto or proposed)."""

# tokentrace's own span attributes
COST_USD = "tokentrace.cost_usd"
COST_TOKENS_USD = "tokentrace.cost.tokens_usd"
COST_FEES_USD = "tokentrace.cost.fees_usd"
SERVICE_TIER = "tokentrace.service_tier"  # providers semconv has no attribute for
REASONING_TOKENS = "tokentrace.usage.reasoning_tokens"
INPUT_AUDIO_TOKENS = "tokentrace.usage.input_audio_tokens"  # of the input tokens
OUTPUT_AUDIO_TOKENS = "tokentrace.usage.output_audio_tokens"  # of the output tokens
INPUT_IMAGE_TOKENS = "tokentrace.usage.input_image_tokens"  # of the input tokens
OUTPUT_IMAGE_TOKENS = "tokentrace.usage.output_image_tokens"  # of the output tokens
TIME_TO_FIRST_TOKEN = "tokentrace.time_to_first_token_s"
PRICE_SOURCE = "tokentrace.price_source"
USAGE_REPORTED = "tokentrace.usage.reported"
ATTRIBUTE_PREFIX = "tokentrace."
