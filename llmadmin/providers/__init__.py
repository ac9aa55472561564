"""The registry of provider types, in the order the admin and the model list show them.

Each API family's module holds its types' options, rules, request mapping and stream parsing;
this registry is the only place that lists them. Nothing in this package imports the models.
"""

from __future__ import annotations

from llmadmin.providers.anthropic import ANTHROPIC
from llmadmin.providers.base import GENERAL_FIELDS, ProviderType
from llmadmin.providers.bedrock import BEDROCK
from llmadmin.providers.google import GOOGLE
from llmadmin.providers.openai import AZURE, OPENAI, OPENAI_COMPATIBLE, OPENROUTER, VERCEL

PROVIDER_TYPES: dict[str, ProviderType] = {
    provider_type.slug: provider_type
    for provider_type in (
        ANTHROPIC,
        OPENAI,
        GOOGLE,
        AZURE,
        BEDROCK,
        OPENAI_COMPATIBLE,
        OPENROUTER,
        VERCEL,
    )
}


def provider_type_choices() -> list[tuple[str, str]]:
    """Provider.type's choices, read from the registry when validating: a migration names this
    function rather than freezing the list, so a new type needs none."""
    return [(slug, provider_type.label) for slug, provider_type in PROVIDER_TYPES.items()]


__all__ = ["GENERAL_FIELDS", "PROVIDER_TYPES", "ProviderType", "provider_type_choices"]
