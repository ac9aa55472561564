"""The chat-completions family: OpenAI, Azure OpenAI, OpenAI Compatible, OpenRouter, Vercel.

Options, rules, request mapping and stream parsing of each, together.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import replace
from typing import Any

import httpx2

from llmadmin.providers import anthropic
from llmadmin.providers.base import (
    MODEL_ID_PATTERN,
    PENALTIES,
    SAMPLING,
    SLUG_PATTERN,
    BoolOption,
    ChoiceOption,
    IntOption,
    ListOption,
    ModelSettings,
    ProviderType,
    set_options,
)
from llmadmin.providers.catalog import ModelFacts
from llmadmin.providers.contract import (
    ChatInput,
    Finish,
    RemoteModel,
    StopReason,
    StreamEvent,
    TextDelta,
    Thinking,
    Usage,
)
from llmadmin.providers.errors import (
    cut_off,
    error_kind,
    failed_mid_answer,
    malformed,
    mid_stream_error,
)
from llmadmin.providers.sse import json_data, reported, sse_events, token_count
from llmadmin.providers.transport import ProviderClient, set_if

# The SDK's types/shared/reasoning_effort.py; OpenRouter's reasoning.effort takes the same.
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
# Vercel's documented reasoning.effort stops at xhigh.
VERCEL_REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")

REASONING_EFFORT = ChoiceOption(
    name="reasoning_effort",
    label="Reasoning effort",
    path="reasoning_effort",
    help_text="For reasoning models; support varies by model.",
    choices=REASONING_EFFORTS,
    reasoning=True,
)
OPENAI_OPTIONS = (
    REASONING_EFFORT,
    IntOption(
        name="max_completion_tokens",
        label="Max completion tokens",
        path="max_completion_tokens",
        help_text="Upper bound on generated tokens, reasoning tokens included.",
        min=1,
    ),
)
COMPATIBLE_OPTIONS = (REASONING_EFFORT,)

REASONING_ENABLED = BoolOption(
    name="reasoning_enabled",
    label="Reasoning enabled",
    path="reasoning.enabled",
    help_text="Turn reasoning on or off for models that support it.",
    reasoning=True,
)
# OpenRouter's and Vercel's reasoning object.
GATEWAY_REASONING_EFFORT = ChoiceOption(
    name="reasoning_effort",
    label="Reasoning effort",
    path="reasoning.effort",
    help_text="How much the model reasons.",
    choices=REASONING_EFFORTS,
    reasoning=True,
)
VERCEL_REASONING_EFFORT = replace(GATEWAY_REASONING_EFFORT, choices=VERCEL_REASONING_EFFORTS)
SLUG_ITEMS = {
    "item_pattern": SLUG_PATTERN,
    "item_description": "a provider slug (lower-case letters, digits, '.', '_', '-')",
}

OPENROUTER_OPTIONS = (
    REASONING_ENABLED,
    GATEWAY_REASONING_EFFORT,
    ListOption(
        name="provider_order",
        label="Provider order",
        path="provider.order",
        help_text="Upstream providers to try first, in order (slugs such as anthropic, openai).",
        **SLUG_ITEMS,
    ),
    BoolOption(
        name="allow_fallbacks",
        label="Allow fallbacks",
        path="provider.allow_fallbacks",
        help_text="Let OpenRouter use other providers when the preferred ones fail (default: yes).",
    ),
)

VERCEL_OPTIONS = (
    REASONING_ENABLED,
    VERCEL_REASONING_EFFORT,
    ListOption(
        name="provider_order",
        label="Provider order",
        path="providerOptions.gateway.order",
        help_text="Upstream providers to try first, in order (gateway providerOptions order).",
        **SLUG_ITEMS,
    ),
    ListOption(
        name="provider_only",
        label="Only these providers",
        path="providerOptions.gateway.only",
        help_text="Restrict routing to these upstream providers (gateway providerOptions only).",
        **SLUG_ITEMS,
    ),
    ListOption(
        name="fallback_models",
        label="Fallback models",
        path="providerOptions.gateway.models",
        help_text="Models to try when this one fails, such as openai/gpt-5 "
        "(gateway providerOptions models).",
        item_pattern=MODEL_ID_PATTERN,
        item_description="a model id such as openai/gpt-5",
    ),
)


# Sampling beyond max tokens and temperature. OpenAI's reasoning models (GPT-5 family,
# o-series) refuse top P and the penalties as unsupported parameters (the reasoning guide);
# the catalog marks them with temperature false.
NON_DEFAULT_SAMPLING = ("top_p", "presence_penalty", "frequency_penalty")


# The reasoning efforts each model line takes, first match wins; a model none names (a
# deployment named otherwise, a later line) is left to the API. Sources:
# - o-series: low to high (OpenAI's reasoning guide).
# - gpt-5-pro: high only; before gpt-5.1 no none; gpt-5.1 defaults to none and takes none to
#   high; xhigh on every model after gpt-5.1-codex-max (the API reference's reasoning_effort,
#   as Azure's SDK carries it: learn.microsoft.com/javascript/api/@azure/ai-projects/
#   reasoningeffort).
# - gpt-5, -mini, -nano: "Supported values are: 'minimal', 'low', 'medium', and 'high'"
#   (OpenAI's 400, microsoft/vscode#301045).
# - Codex: never none nor minimal. gpt-5-codex and gpt-5.1-codex(-mini) take low to high
#   ("'none' is not supported with the 'gpt-5.1-codex' model. Supported values are: 'low',
#   'medium', and 'high'", openai/codex#6647); gpt-5.1-codex-max and later Codex add xhigh.
# - gpt-5.2 to gpt-5.5: none to xhigh; max arrives with gpt-5.6 (../shared/PROVIDERS.md; the
#   SDK's types/shared/reasoning_effort.py lists max without saying which model takes it).
FULL_EFFORTS = ("none", "low", "medium", "high", "xhigh")
EFFORTS_BY_MODEL = (
    (re.compile(r"^o\d"), ("low", "medium", "high")),
    (re.compile(r"^gpt-5-pro"), ("high",)),
    (re.compile(r"^gpt-5(-mini|-nano)?(-\d{4}-\d\d-\d\d)?$"), ("minimal", "low", "medium", "high")),
    (re.compile(r"^gpt-5(\.1)?-codex(-mini)?$"), ("low", "medium", "high")),
    (re.compile(r"^gpt-5\.\d+-codex"), ("low", "medium", "high", "xhigh")),
    (re.compile(r"^gpt-5\.1(\D|$)"), ("none", "low", "medium", "high")),
    (re.compile(r"^gpt-5\.[2-5](\D|$)"), FULL_EFFORTS),
    (re.compile(r"^gpt-5\.\d"), (*FULL_EFFORTS, "max")),
)

# OpenAI's reasoning models (the catalog: reasoning, no temperature) answer any other
# temperature with 400 "Unsupported value: 'temperature' does not support 0.5 with this model.
# Only the default (1) value is supported." (the reasoning guide's limitations).
DEFAULT_TEMPERATURE = 1
# GPT-5.1 and 5.2 take temperature and top P at reasoning effort none, and refuse them at any
# other effort (OpenAI's GPT-5.2 guide, "parameter compatibility"; vercel/ai#10932). Only
# effort none set here counts: the default effort may change, the setting says what is sent.
SAMPLING_AT_NO_EFFORT = re.compile(r"^gpt-5\.[12](-\d{4}-\d\d-\d\d)?$")


def efforts_of(identifier: str) -> tuple[str, ...] | None:
    """The reasoning efforts a model takes; None when no rule names it."""
    for pattern, efforts in EFFORTS_BY_MODEL:
        if pattern.search(identifier):
            return efforts
    return None


def reasoning_sampling_rules(
    general: Mapping[str, Any], options: Mapping[str, Any], facts: ModelFacts
) -> Iterator[tuple[str, str]]:
    """A reasoning model's sampling: the default temperature, or more at effort none."""
    takes_sampling = SAMPLING_AT_NO_EFFORT.search(general.get("identifier") or "")
    if takes_sampling and options.get("reasoning_effort") == "none":
        refused: tuple[str, ...] = ("presence_penalty", "frequency_penalty")
    else:
        refused = NON_DEFAULT_SAMPLING
        temperature = general.get("temperature")
        if temperature is not None and temperature != DEFAULT_TEMPERATURE:
            more = " or set reasoning effort none" if takes_sampling else ""
            yield (
                "temperature",
                f"{facts.name} takes only its default temperature, 1: leave it empty{more}.",
            )
    for name in refused:
        if general.get(name) is not None:
            more = " or set reasoning effort none" if takes_sampling and name == "top_p" else ""
            yield name, f"{facts.name} takes only the default sampling: leave it empty{more}."


def openai_rules(
    general: Mapping[str, Any], options: Mapping[str, Any], facts: ModelFacts | None
) -> Iterator[tuple[str, str]]:
    effort = options.get("reasoning_effort")
    efforts = efforts_of(general.get("identifier") or "")
    if effort is not None and efforts is not None and effort not in efforts:
        yield "reasoning_effort", f"This model takes the efforts {', '.join(efforts)}."
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
    if facts is None:
        return
    limit = None if general.get("override_catalog_limit") else facts.output_limit
    if None not in (both[0], limit) and both[0] > limit:
        yield (
            "max_completion_tokens",
            f"{facts.name} writes at most {limit} tokens (models.dev).",
        )
    if facts.reasoning and facts.temperature is False:
        yield from reasoning_sampling_rules(general, options, facts)


def gateway_rules(
    general: Mapping[str, Any], options: Mapping[str, Any], facts: ModelFacts | None
) -> Iterator[tuple[str, str]]:
    # Claude through a gateway still refuses its sampling by version (users report
    # Anthropic's 400 coming back through OpenAI-style proxies).
    identifier = general.get("identifier") or ""
    version = anthropic.claude_version(identifier) if identifier.startswith("anthropic/") else None
    if version is not None:
        yield from anthropic.sampling_rules(version, general)
    if options.get("reasoning_effort") is not None and options.get("reasoning_enabled") is False:
        yield "reasoning_effort", "A reasoning effort needs reasoning enabled."


class OpenAIClient(ProviderClient):
    """Bearer auth; GET {base}/models answering {"data": [{"id": ...}]}; chat completions."""

    max_tokens_field = "max_completion_tokens"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.connection.api_key}"}

    @property
    def models_url(self) -> str:
        return f"{self.base_url}/models"

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def verify_key(self) -> None:
        self.get_json(self.models_url)

    def fetch_models(self) -> list[RemoteModel]:
        return [
            RemoteModel(item["id"], context_limit_of(item))
            for item in self.items(self.get_json(self.models_url), "data")
        ]

    def chat_body(self, model: ModelSettings, chat: ChatInput) -> dict[str, Any]:
        system = [{"role": "system", "content": chat.system}] if chat.system else []
        body: dict[str, Any] = {
            "model": model.identifier,
            "messages": system + chat.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        set_if(body, self.max_tokens_field, model.max_output_tokens)
        for name in ("temperature", "top_p", "top_k", "presence_penalty", "frequency_penalty"):
            set_if(body, name, getattr(model, name))
        set_options(body, self.options, model.options)
        return body

    async def stream(self, model: ModelSettings, chat: ChatInput) -> AsyncIterator[StreamEvent]:
        async with self.open_stream(self.chat_url, self.chat_body(model, chat)) as response:
            async for event in parse_stream(response):
                yield event


def context_limit_of(item: Mapping[str, Any]) -> int | None:
    # OpenRouter says context_length, vLLM max_model_len, Vercel context_window.
    for name in ("context_length", "max_model_len", "context_window"):
        value = token_count(item, name)
        if value:
            return value
    return None


# A choice's finish_reason (the SDK's chat_completion_chunk.py); stop, tool_calls and
# function_call end a complete answer. OpenRouter and Vercel pass the same words on.
FINISH_REASONS = {
    "stop": StopReason.COMPLETE,
    "tool_calls": StopReason.COMPLETE,
    "function_call": StopReason.COMPLETE,
    "length": StopReason.MAX_TOKENS,
    "content_filter": StopReason.CONTENT_FILTER,
}


async def parse_stream(response: httpx2.Response) -> AsyncIterator[StreamEvent]:
    stop_reason = StopReason.COMPLETE
    async for _, data in sse_events(response):
        if data == "[DONE]":
            yield Finish(stop_reason)
            return
        chunk = json_data(data)
        if "error" in chunk:
            raise mid_stream_error(error_kind(chunk["error"]))
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise malformed()
        for choice in choices:
            if not isinstance(choice, dict):
                raise malformed()
            delta = choice.get("delta") or {}
            text = delta.get("content") if isinstance(delta, dict) else None
            if not isinstance(delta, dict) or not isinstance(text, str | None):
                raise malformed()
            if text:
                yield TextDelta(text)
            elif delta.get("reasoning") or delta.get("reasoning_content"):
                # OpenRouter's and vLLM's (and DeepSeek's) reasoning text.
                yield Thinking()
            reason = choice.get("finish_reason")
            if reason == "error":  # OpenRouter: the upstream failed mid-answer
                raise failed_mid_answer()
            if isinstance(reason, str):
                stop_reason = FINISH_REASONS.get(reason, StopReason.OTHER)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            # prompt_tokens holds the cached ones (read and written), completion_tokens the
            # reasoning ones. cache_write_tokens: OpenRouter's, and the SDK's since 2.45.
            yield Usage(
                token_count(usage, "prompt_tokens"),
                token_count(usage, "completion_tokens"),
                cache_read_tokens=reported(usage, "prompt_tokens_details", "cached_tokens"),
                cache_write_tokens=reported(usage, "prompt_tokens_details", "cache_write_tokens"),
                reasoning_tokens=reported(usage, "completion_tokens_details", "reasoning_tokens"),
            )
    raise cut_off()


class AzureClient(OpenAIClient):
    """Azure OpenAI's v1 API; the model is the deployment name (deployments are ARM-only)."""

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.connection.api_key}

    @property
    def models_url(self) -> str:
        return f"{self.base_url}/openai/v1/models"

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/openai/v1/chat/completions"


class CompatibleClient(OpenAIClient):
    # Ollama's and llama.cpp's servers ignore max_completion_tokens; they read max_tokens.
    max_tokens_field = "max_tokens"


class OpenRouterClient(OpenAIClient):
    max_tokens_field = "max_tokens"

    def verify_key(self) -> None:
        # The model list may answer without checking the key; /key always checks it.
        self.get_json(f"{self.base_url}/key")


class VercelClient(OpenAIClient):
    max_tokens_field = "max_tokens"

    def verify_key(self) -> None:
        # The model list seems public; the credits balance needs a valid key.
        self.get_json(f"{self.base_url}/credits")


OPENAI = ProviderType(
    slug="openai",
    key_env_var="OPENAI_API_KEY",
    label="OpenAI",
    default_base_url="https://api.openai.com/v1",
    base_url_example="https://api.openai.com/v1",
    region_required=False,
    temperature_max=2,
    general_fields=SAMPLING | PENALTIES,
    client=OpenAIClient,
    options=OPENAI_OPTIONS,
    rules=openai_rules,
    temperature_by_rules=True,
    catalog="openai",
    seeded_models=("gpt-5.5", "gpt-5.4", "gpt-5.4-mini"),
    answer_cap_option="max_completion_tokens",
)
AZURE = ProviderType(
    slug="azure",
    key_env_var="AZURE_OPENAI_API_KEY",
    label="Azure OpenAI",
    default_base_url="",
    base_url_example="https://my-resource.openai.azure.com",
    region_required=False,
    temperature_max=2,
    general_fields=SAMPLING | PENALTIES,
    client=AzureClient,
    options=OPENAI_OPTIONS,
    rules=openai_rules,
    temperature_by_rules=True,
    catalog="azure",
    # Azure calls models by deployment name: these are the usual names; rename to yours.
    seeded_models=("gpt-5.4", "gpt-5.4-mini"),
    answer_cap_option="max_completion_tokens",
)
OPENAI_COMPATIBLE = ProviderType(
    slug="openai-compat",
    key_env_var="OPENAI_COMPATIBLE_API_KEY",
    label="OpenAI Compatible",
    default_base_url="",
    base_url_example="http://litellm:4000/v1",
    region_required=False,
    temperature_max=2,
    general_fields=SAMPLING | PENALTIES,
    client=CompatibleClient,
    options=COMPATIBLE_OPTIONS,
    # A compatible server's models depend on the server: the admin adds them.
    seeded_models=(),
)
OPENROUTER = ProviderType(
    slug="openrouter",
    key_env_var="OPENROUTER_API_KEY",
    label="OpenRouter",
    default_base_url="https://openrouter.ai/api/v1",
    base_url_example="https://openrouter.ai/api/v1",
    region_required=False,
    temperature_max=2,
    general_fields=SAMPLING | PENALTIES | {"top_k"},
    client=OpenRouterClient,
    options=OPENROUTER_OPTIONS,
    rules=gateway_rules,
    catalog="openrouter",
    seeded_models=(
        "anthropic/claude-sonnet-4.6",
        "openai/gpt-5.5",
        "google/gemini-3.1-pro-preview",
    ),
)
VERCEL = ProviderType(
    slug="vercel",
    key_env_var="AI_GATEWAY_API_KEY",
    label="Vercel AI Gateway",
    default_base_url="https://ai-gateway.vercel.sh/v1",
    base_url_example="https://ai-gateway.vercel.sh/v1",
    region_required=False,
    temperature_max=2,
    general_fields=SAMPLING | PENALTIES,
    client=VercelClient,
    options=VERCEL_OPTIONS,
    rules=gateway_rules,
    catalog="vercel",
    seeded_models=("anthropic/claude-sonnet-4.6", "openai/gpt-5.5"),
)
