"""The registry of provider types: the single source of truth for what each type is and accepts.

Model choices, model validation, admin form fields, the API and the HTTP clients all read it;
no other module branches on a provider type string. Facts come from ../shared/PROVIDERS.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from django.core.exceptions import ValidationError

from llmadmin import clients

OptionKind = Literal["int", "float", "bool", "choice", "list", "mapping"]

# The general sampling fields of a model, as named on LLMModel.
GENERAL_FIELDS = (
    "max_output_tokens",
    "temperature",
    "top_p",
    "top_k",
    "presence_penalty",
    "frequency_penalty",
)
GENERAL_LABELS = {
    "max_output_tokens": "max output tokens",
    "temperature": "temperature",
    "top_p": "top P",
    "top_k": "top K",
    "presence_penalty": "presence penalty",
    "frequency_penalty": "frequency penalty",
}

SLUG_PATTERN = r"[a-z0-9][a-z0-9._-]*"
MODEL_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:/-]*"


@dataclass(frozen=True)
class Option:
    """One provider-specific option, stored under `name` in LLMModel.provider_options."""

    name: str
    label: str
    kind: OptionKind
    help_text: str = ""
    min: int | float | None = None
    max: int | float | None = None
    # Allowed values of a "choice", or of each value of a "mapping".
    choices: tuple[str, ...] = ()
    # Allowed keys of a "mapping".
    keys: tuple[str, ...] = ()
    # What each item of a "list" must look like, and how to say so.
    item_pattern: str = ""
    item_description: str = ""

    def clean(self, value: Any) -> Any:
        """Return the value to store, or raise ValidationError saying what is wrong."""
        cleaner = getattr(self, f"_clean_{self.kind}")
        return cleaner(value)

    def _clean_int(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("Enter a whole number.")
        self._check_range(value)
        return value

    def _clean_float(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError("Enter a number.")
        self._check_range(value)
        return value

    def _check_range(self, value: int | float) -> None:
        if self.min is not None and value < self.min:
            raise ValidationError(f"Must be at least {self.min}.")
        if self.max is not None and value > self.max:
            raise ValidationError(f"Must be at most {self.max}.")

    def _clean_bool(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("Must be true or false.")
        return value

    def _clean_choice(self, value: Any) -> str:
        if value not in self.choices:
            raise ValidationError(f"{value!r} is not one of: {', '.join(self.choices)}.")
        return value

    def _clean_list(self, value: Any) -> list[str]:
        if not isinstance(value, list):
            raise ValidationError("Enter a list.")
        for item in value:
            if not isinstance(item, str) or not re.fullmatch(self.item_pattern, item):
                raise ValidationError(f"{item!r} is not {self.item_description}.")
        if len(set(value)) != len(value):
            raise ValidationError("Each entry may appear only once.")
        return value

    def _clean_mapping(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise ValidationError("Enter a mapping of keys to values.")
        for key, item in value.items():
            if key not in self.keys:
                raise ValidationError(f"{key!r} is not one of: {', '.join(self.keys)}.")
            if item not in self.choices:
                raise ValidationError(
                    f"{item!r} for {key} is not one of: {', '.join(self.choices)}."
                )
        return value


# A rule across fields: given the general fields and the cleaned options, yield
# (field or option name, message) for each conflict.
Rule = Callable[[Mapping[str, Any], Mapping[str, Any]], Iterator[tuple[str, str]]]


def no_rules(general: Mapping[str, Any], options: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    return iter(())


@dataclass(frozen=True)
class ProviderType:
    slug: str
    label: str
    # The environment variable `seed_defaults --keys-from-env` reads the key from.
    key_env_var: str
    # May hold "{region}" (Bedrock); empty when every deployment has its own (Azure, compatible).
    default_base_url: str
    base_url_example: str
    region_required: bool
    temperature_max: float
    general_fields: frozenset[str]
    options: tuple[Option, ...]
    # How to call it: verify a key, list models.
    client: type[clients.ProviderClient]
    rules: Rule = no_rules

    @property
    def base_url_required(self) -> bool:
        return not self.default_base_url

    @property
    def options_by_name(self) -> dict[str, Option]:
        return {option.name: option for option in self.options}

    def check_model(
        self, general: Mapping[str, Any], options: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """Validate a model's general fields and options for this type.

        Returns the options to store (unset ones dropped) and the errors, keyed by general
        field name or option name.
        """
        errors: dict[str, list[str]] = {}
        for name in GENERAL_FIELDS:
            if general.get(name) is not None and name not in self.general_fields:
                label = GENERAL_LABELS[name].capitalize()
                errors.setdefault(name, []).append(f"{label} is not supported by {self.label}.")
        temperature = general.get("temperature")
        if temperature is not None and temperature > self.temperature_max:
            errors.setdefault("temperature", []).append(
                f"{self.label} accepts a temperature from 0 to {self.temperature_max:g}."
            )

        known = self.options_by_name
        cleaned: dict[str, Any] = {}
        for name, value in options.items():
            if name not in known:
                errors.setdefault(name, []).append(f"Unknown option for {self.label}.")
            elif value is not None:
                try:
                    cleaned[name] = known[name].clean(value)
                except ValidationError as error:
                    errors.setdefault(name, []).extend(error.messages)
        if not errors:
            for name, message in self.rules(general, cleaned):
                errors.setdefault(name, []).append(message)
        return cleaned, errors


def anthropic_rules(
    general: Mapping[str, Any], options: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    budget = options.get("thinking_budget_tokens")
    if budget is None:
        return
    max_output = general.get("max_output_tokens")
    if max_output is None or budget >= max_output:
        yield (
            "thinking_budget_tokens",
            "Must be below max output tokens: set max output tokens above the budget.",
        )
    if general.get("temperature") is not None:
        yield "temperature", "Temperature can't be changed while extended thinking is on."
    if general.get("top_k") is not None:
        yield "top_k", "Top K can't be changed while extended thinking is on."
    top_p = general.get("top_p")
    if top_p is not None and top_p < 0.95:
        yield "top_p", "With extended thinking on, top P must be between 0.95 and 1."


def openai_rules(
    general: Mapping[str, Any], options: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    # Both become the request's max_completion_tokens, so only one may be set.
    both = (options.get("max_completion_tokens"), general.get("max_output_tokens"))
    if None not in both:
        yield (
            "max_completion_tokens",
            "Set either this or max output tokens, not both: both set max_completion_tokens.",
        )
    context_limit = general.get("context_limit")
    if None not in (both[0], context_limit) and both[0] > context_limit:
        yield "max_completion_tokens", f"Must be at most the context limit ({context_limit})."


def google_rules(
    general: Mapping[str, Any], options: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    if options.get("thinking_level") is not None and options.get("thinking_budget") is not None:
        yield "thinking_level", "Set either a thinking level (Gemini 3) or a thinking budget."
    if options.get("include_thoughts") and options.get("thinking_budget") == 0:
        yield "include_thoughts", "Thoughts can't be included with thinking off (budget 0)."


def reasoning_rules(
    general: Mapping[str, Any], options: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    if options.get("reasoning_effort") is not None and options.get("reasoning_enabled") is False:
        yield "reasoning_effort", "A reasoning effort needs reasoning enabled."


ANTHROPIC_OPTIONS = (
    Option(
        "thinking_budget_tokens",
        "Thinking budget tokens",
        "int",
        "Turns on extended thinking with this many tokens for reasoning: at least 1024 and "
        "below max output tokens. The newest models accept only adaptive thinking.",
        min=1024,
    ),
    Option(
        "effort",
        "Effort",
        "choice",
        "How much effort the model spends (the API's default is high). "
        "Not every model supports every level.",
        choices=("low", "medium", "high", "xhigh", "max"),
    ),
)

OPENAI_OPTIONS = (
    Option(
        "reasoning_effort",
        "Reasoning effort",
        "choice",
        "For reasoning models; support varies by model.",
        choices=("none", "minimal", "low", "medium", "high", "xhigh"),
    ),
    Option(
        "max_completion_tokens",
        "Max completion tokens",
        "int",
        "Upper bound on generated tokens, reasoning tokens included.",
        min=1,
    ),
    Option(
        "parallel_tool_calls",
        "Parallel tool calls",
        "bool",
        "Whether the model may call several tools in one turn.",
    ),
)

GOOGLE_SAFETY_CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
)
GOOGLE_SAFETY_THRESHOLDS = (
    "BLOCK_LOW_AND_ABOVE",
    "BLOCK_MEDIUM_AND_ABOVE",
    "BLOCK_ONLY_HIGH",
    "BLOCK_NONE",
    "OFF",
)

GOOGLE_OPTIONS = (
    Option(
        "thinking_budget",
        "Thinking budget",
        "int",
        "Tokens for thinking (Gemini 2.5): 0 turns thinking off, -1 lets the model decide. "
        "Ranges differ by model (2.5 Pro 128-32768, 2.5 Flash 0-24576).",
        min=-1,
        max=32768,
    ),
    Option(
        "thinking_level",
        "Thinking level",
        "choice",
        "How much the model thinks (Gemini 3); not together with a thinking budget.",
        choices=("minimal", "low", "medium", "high"),
    ),
    Option(
        "include_thoughts",
        "Include thoughts",
        "bool",
        "Return thought summaries with the answer.",
    ),
    Option(
        "safety_settings",
        "Safety settings",
        "mapping",
        "Blocking threshold per harm category; unset categories keep Google's default.",
        keys=GOOGLE_SAFETY_CATEGORIES,
        choices=GOOGLE_SAFETY_THRESHOLDS,
    ),
)

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")

OPENROUTER_OPTIONS = (
    Option(
        "reasoning_enabled",
        "Reasoning enabled",
        "bool",
        "Turn reasoning on or off for models that support it.",
    ),
    Option(
        "reasoning_effort",
        "Reasoning effort",
        "choice",
        "How much the model reasons.",
        choices=REASONING_EFFORTS,
    ),
    Option(
        "provider_order",
        "Provider order",
        "list",
        "Upstream providers to try first, in order (slugs such as anthropic, openai).",
        item_pattern=SLUG_PATTERN,
        item_description="a provider slug (lower-case letters, digits, '.', '_', '-')",
    ),
    Option(
        "allow_fallbacks",
        "Allow fallbacks",
        "bool",
        "Let OpenRouter use other providers when the preferred ones fail (default: yes).",
    ),
)

VERCEL_OPTIONS = (
    Option(
        "reasoning_enabled",
        "Reasoning enabled",
        "bool",
        "Turn reasoning on or off for models that support it.",
    ),
    Option(
        "reasoning_effort",
        "Reasoning effort",
        "choice",
        "How much the model reasons.",
        choices=REASONING_EFFORTS,
    ),
    Option(
        "provider_order",
        "Provider order",
        "list",
        "Upstream providers to try first, in order (gateway providerOptions order).",
        item_pattern=SLUG_PATTERN,
        item_description="a provider slug (lower-case letters, digits, '.', '_', '-')",
    ),
    Option(
        "provider_only",
        "Only these providers",
        "list",
        "Restrict routing to these upstream providers (gateway providerOptions only).",
        item_pattern=SLUG_PATTERN,
        item_description="a provider slug (lower-case letters, digits, '.', '_', '-')",
    ),
    Option(
        "fallback_models",
        "Fallback models",
        "list",
        "Models to try when this one fails, such as openai/gpt-5 (gateway providerOptions models).",
        item_pattern=MODEL_ID_PATTERN,
        item_description="a model id such as openai/gpt-5",
    ),
)

SAMPLING = frozenset({"max_output_tokens", "temperature", "top_p"})
PENALTIES = frozenset({"presence_penalty", "frequency_penalty"})

PROVIDER_TYPES: dict[str, ProviderType] = {
    provider_type.slug: provider_type
    for provider_type in (
        ProviderType(
            slug="anthropic",
            key_env_var="ANTHROPIC_API_KEY",
            label="Anthropic",
            default_base_url="https://api.anthropic.com",
            base_url_example="https://api.anthropic.com",
            region_required=False,
            temperature_max=1,
            general_fields=SAMPLING | {"top_k"},
            client=clients.AnthropicClient,
            options=ANTHROPIC_OPTIONS,
            rules=anthropic_rules,
        ),
        ProviderType(
            slug="openai",
            key_env_var="OPENAI_API_KEY",
            label="OpenAI",
            default_base_url="https://api.openai.com/v1",
            base_url_example="https://api.openai.com/v1",
            region_required=False,
            temperature_max=2,
            general_fields=SAMPLING | PENALTIES,
            client=clients.ProviderClient,
            options=OPENAI_OPTIONS,
            rules=openai_rules,
        ),
        ProviderType(
            slug="google",
            key_env_var="GEMINI_API_KEY",
            label="Google (Gemini)",
            default_base_url="https://generativelanguage.googleapis.com",
            base_url_example="https://generativelanguage.googleapis.com",
            region_required=False,
            temperature_max=2,
            general_fields=SAMPLING | PENALTIES | {"top_k"},
            client=clients.GoogleClient,
            options=GOOGLE_OPTIONS,
            rules=google_rules,
        ),
        ProviderType(
            slug="azure",
            key_env_var="AZURE_OPENAI_API_KEY",
            label="Azure OpenAI",
            default_base_url="",
            base_url_example="https://my-resource.openai.azure.com",
            region_required=False,
            temperature_max=2,
            general_fields=SAMPLING | PENALTIES,
            client=clients.AzureClient,
            options=OPENAI_OPTIONS,
            rules=openai_rules,
        ),
        ProviderType(
            slug="bedrock",
            key_env_var="AWS_BEARER_TOKEN_BEDROCK",
            label="AWS Bedrock",
            default_base_url="https://bedrock-runtime.{region}.amazonaws.com",
            base_url_example="https://bedrock-runtime.us-east-1.amazonaws.com",
            region_required=True,
            temperature_max=1,
            general_fields=SAMPLING | {"top_k"},
            client=clients.BedrockClient,
            options=ANTHROPIC_OPTIONS,
            rules=anthropic_rules,
        ),
        ProviderType(
            slug="openai-compat",
            key_env_var="OPENAI_COMPATIBLE_API_KEY",
            label="OpenAI Compatible",
            default_base_url="",
            base_url_example="http://litellm:4000/v1",
            region_required=False,
            temperature_max=2,
            general_fields=SAMPLING | PENALTIES,
            client=clients.ProviderClient,
            options=OPENAI_OPTIONS[:1],
        ),
        ProviderType(
            slug="openrouter",
            key_env_var="OPENROUTER_API_KEY",
            label="OpenRouter",
            default_base_url="https://openrouter.ai/api/v1",
            base_url_example="https://openrouter.ai/api/v1",
            region_required=False,
            temperature_max=2,
            general_fields=SAMPLING | PENALTIES | {"top_k"},
            client=clients.OpenRouterClient,
            options=OPENROUTER_OPTIONS,
            rules=reasoning_rules,
        ),
        ProviderType(
            slug="vercel",
            key_env_var="AI_GATEWAY_API_KEY",
            label="Vercel AI Gateway",
            default_base_url="https://ai-gateway.vercel.sh/v1",
            base_url_example="https://ai-gateway.vercel.sh/v1",
            region_required=False,
            temperature_max=2,
            general_fields=SAMPLING | PENALTIES,
            client=clients.VercelClient,
            options=VERCEL_OPTIONS,
            rules=reasoning_rules,
        ),
    )
}

PROVIDER_TYPE_CHOICES = [
    (slug, provider_type.label) for slug, provider_type in PROVIDER_TYPES.items()
]
