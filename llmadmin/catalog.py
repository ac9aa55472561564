"""The current models `seed_defaults` creates, per provider type: a curated list of ids.

Everything else about them (display name, limits, prices) comes from the models.dev
snapshot (llmadmin.providers.catalog), so a newer snapshot updates what gets seeded.
"""

from __future__ import annotations

SEEDED_MODELS: dict[str, tuple[str, ...]] = {
    "anthropic": ("claude-opus-4-7", "claude-sonnet-4-6", "claude-haiku-4-5"),
    "openai": ("gpt-5.5", "gpt-5.4", "gpt-5.4-mini"),
    "google": ("gemini-3.1-pro-preview", "gemini-3.5-flash", "gemini-2.5-pro"),
    # Azure calls models by deployment name: these are the usual names; rename to yours.
    "azure": ("gpt-5.4", "gpt-5.4-mini"),
    "bedrock": (
        "us.anthropic.claude-sonnet-4-6",
        "us.anthropic.claude-haiku-4-5-20251001-v1:0",
    ),
    # A compatible server's models depend on the server: the admin adds them.
    "openai-compat": (),
    "openrouter": (
        "anthropic/claude-sonnet-4.6",
        "openai/gpt-5.5",
        "google/gemini-3.1-pro-preview",
    ),
    "vercel": ("anthropic/claude-sonnet-4.6", "openai/gpt-5.5"),
}

# The model marked default on the first seed: (provider type, identifier).
DEFAULT_MODEL = ("anthropic", "claude-sonnet-4-6")
