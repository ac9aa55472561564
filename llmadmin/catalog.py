"""The curated catalog of current models that `seed_defaults` creates, per provider type."""

from __future__ import annotations

from typing import NamedTuple


class CatalogModel(NamedTuple):
    identifier: str
    display_name: str
    context_limit: int
    max_output_tokens: int


CATALOG: dict[str, tuple[CatalogModel, ...]] = {
    "anthropic": (
        CatalogModel("claude-opus-4-6", "Claude Opus 4.6", 1_000_000, 128_000),
        CatalogModel("claude-sonnet-4-6", "Claude Sonnet 4.6", 1_000_000, 128_000),
        CatalogModel("claude-haiku-4-5", "Claude Haiku 4.5", 200_000, 64_000),
    ),
    "openai": (
        CatalogModel("gpt-5", "GPT-5", 400_000, 128_000),
        CatalogModel("gpt-5-mini", "GPT-5 mini", 400_000, 128_000),
        CatalogModel("gpt-4.1", "GPT-4.1", 1_047_576, 32_768),
    ),
    "google": (
        CatalogModel("gemini-2.5-pro", "Gemini 2.5 Pro", 1_048_576, 65_536),
        CatalogModel("gemini-2.5-flash", "Gemini 2.5 Flash", 1_048_576, 65_536),
    ),
    # Azure calls models by deployment name: these are the usual names; rename to yours.
    "azure": (CatalogModel("gpt-5", "GPT-5 (Azure)", 400_000, 128_000),),
    "bedrock": (
        CatalogModel(
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "Claude Sonnet 4.5 (Bedrock)",
            200_000,
            64_000,
        ),
        CatalogModel(
            "us.anthropic.claude-haiku-4-5-20251001-v1:0",
            "Claude Haiku 4.5 (Bedrock)",
            200_000,
            64_000,
        ),
    ),
    # A compatible server's models depend on the server: the admin adds them.
    "openai-compat": (),
    "openrouter": (
        CatalogModel(
            "anthropic/claude-sonnet-4.5", "Claude Sonnet 4.5 (OpenRouter)", 200_000, 64_000
        ),
        CatalogModel("openai/gpt-5", "GPT-5 (OpenRouter)", 400_000, 128_000),
        CatalogModel("google/gemini-2.5-pro", "Gemini 2.5 Pro (OpenRouter)", 1_048_576, 65_536),
    ),
    "vercel": (
        CatalogModel("anthropic/claude-sonnet-4.5", "Claude Sonnet 4.5 (Vercel)", 200_000, 64_000),
        CatalogModel("openai/gpt-5", "GPT-5 (Vercel)", 400_000, 128_000),
    ),
}

# The model marked default on the first seed: (provider type, identifier).
DEFAULT_MODEL = ("anthropic", "claude-sonnet-4-6")
