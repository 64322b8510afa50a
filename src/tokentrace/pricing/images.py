"""Per-image prices the genai-prices table does not have (OpenAI's DALL-E models, billed per image by size and
quality), dated and sourced; genai-prices prices the token-billed image models (gpt-image-*) itself.

Source: OpenAI's API pricing page (platform.openai.com/docs/pricing, "Image generation"), unchanged since DALL-E 3's
launch on 2023-11-06; checked 2026-12-07. A size or quality not listed here leaves the call unpriced, with the
reason.
"""

from __future__ import annotations

from types import MappingProxyType

TABLE_DATE = "2026-12-07"
SOURCE = f"OpenAI pricing page (images), tokentrace table of {TABLE_DATE}"

PER_IMAGE: MappingProxyType[str, MappingProxyType[tuple[str, str], float]] = MappingProxyType({
    "dall-e-3": MappingProxyType({
        ("standard", "1024x1024"): 0.040, ("standard", "1024x1792"): 0.080, ("standard", "1792x1024"): 0.080,
        ("hd", "1024x1024"): 0.080, ("hd", "1024x1792"): 0.120, ("hd", "1792x1024"): 0.120,
    }),
    "dall-e-2": MappingProxyType({
        ("standard", "256x256"): 0.016, ("standard", "512x512"): 0.018, ("standard", "1024x1024"): 0.020,
    }),
})
"""model -> (quality, size) -> USD per image."""
DEFAULTS = MappingProxyType({"dall-e-3": ("standard", "1024x1024"), "dall-e-2": ("standard", "1024x1024")})
"""What the API uses when the request names no quality or size."""


def per_image(model: str, quality: str | None, size: str | None) -> float | None:
    """USD per image of ``model`` at this quality and size (the API's defaults for what is not given); None when the
    table does not list it."""
    table = PER_IMAGE.get(model)
    if table is None:
        return None
    default_quality, default_size = DEFAULTS[model]
    quality = default_quality if quality in (None, "auto") else quality
    return table.get((quality or default_quality, size or default_size))
