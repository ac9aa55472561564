"""The chat-completions family: OpenAI, Azure OpenAI, OpenAI Compatible, OpenRouter, Vercel.

Options, rules, request mapping and stream parsing of each, together.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from functools import partial
from types import UnionType
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
    Option,
    ProviderType,
    set_options,
    value_at,
    with_defaults,
    with_value,
)
from llmadmin.providers.catalog import ModelFacts
from llmadmin.providers.contract import (
    ChatInput,
    Conversation,
    Finish,
    Image,
    Message,
    OtherOutput,
    Part,
    Raw,
    Relay,
    RelayApi,
    RemoteModel,
    StopReason,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolChoice,
    ToolResult,
    Usage,
)
from llmadmin.providers.errors import (
    NO_COUNTERPART,
    cut_off,
    error_kind,
    failed_mid_answer,
    field_refused,
    malformed,
    mid_stream_error,
)
from llmadmin.providers.sse import json_data, reported, sse_event, sse_events, token_count
from llmadmin.providers.transport import ProviderClient, body_of, set_if

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

    async def converse(
        self, model: ModelSettings, conversation: Conversation
    ) -> AsyncIterator[StreamEvent]:
        async with self.open_stream(
            self.chat_url, conversation_body(self, model, conversation)
        ) as response:
            async for event in parse_stream(response):
                yield event

    def speaks(self, api: RelayApi, identifier: str) -> bool:
        return api in (RelayApi.CHAT_COMPLETIONS, RelayApi.RESPONSES)

    @property
    def responses_url(self) -> str:
        return f"{self.base_url}/responses"

    async def relay(self, model: ModelSettings, request: Relay) -> AsyncIterator[StreamEvent]:
        body, usage_asked = relay_body(self, model, request)
        responses = request.api is RelayApi.RESPONSES
        url = self.responses_url if responses else self.chat_url
        async with self.open_stream(url, body, stream=request.streamed) as response:
            # What each event says, then the event itself: checked before it goes out.
            if not request.streamed:
                answer = await body_of(response)
                for event in answer_events(request.api, json_data(answer)):
                    yield event
                yield Raw(answer)
            elif responses:
                async for name, data, events in responses_events(response):
                    for event in events:
                        yield event
                    yield Raw(sse_event(name, data))
            else:
                async for data, events in chat_chunks(response):
                    for event in events:
                        yield event
                    # The usage chunk we asked for, which the client did not: kept from it.
                    if usage_asked or not is_usage_chunk(data, events):
                        yield Raw(sse_event("", data))


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
    async for _, events in chat_chunks(response):
        for event in events:
            yield event


async def chat_chunks(response: httpx2.Response) -> AsyncIterator[tuple[str, list[StreamEvent]]]:
    """Each event of a chat completions stream: its data as sent, and what it says (a Finish
    at `[DONE]`). A mid-stream error raises our own error; an end without `[DONE]` cut_off()."""
    stop_reason = StopReason.COMPLETE
    started: set[int] = set()
    async for _, data in sse_events(response):
        if data == "[DONE]":
            yield data, [Finish(stop_reason)]
            return
        chunk = json_data(data)
        if "error" in chunk:
            raise mid_stream_error(error_kind(chunk["error"]))
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise malformed()
        events: list[StreamEvent] = []
        for choice in choices:
            if not isinstance(choice, dict):
                raise malformed()
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise malformed()
            events += message_output(delta, started)
            reason = choice.get("finish_reason")
            if reason == "error":  # OpenRouter: the upstream failed mid-answer
                raise failed_mid_answer()
            if isinstance(reason, str):
                stop_reason = FINISH_REASONS.get(reason, StopReason.OTHER)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            events.append(chat_usage(usage))
        yield data, events
    raise cut_off()


def message_output(message: Mapping[str, Any], started: set[int]) -> list[StreamEvent]:
    """The output of a chat completion's message, or of a delta of one: its content and its
    refusal (what the model said, so the answer's text: a client of another API has no field
    for it), then what is output but no answer text: thinking (OpenRouter's and vLLM's
    reasoning, DeepSeek's reasoning_content), tool calls. A tool call's first sight (its index
    not yet in `started`, which this adds to) is its start; its arguments follow as deltas."""
    events: list[StreamEvent] = []
    for name in ("content", "refusal"):
        text = message.get(name)
        if not isinstance(text, str | None):
            raise malformed()
        if text:
            events.append(TextDelta(text))
    # Another shape of these (a server's own) is no text we know how to read: left unread.
    for name in ("reasoning", "reasoning_content"):
        text = message.get(name)
        if isinstance(text, str) and text:
            events.append(ThinkingDelta(text))
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise malformed()
    for position, call in enumerate(calls):
        if not isinstance(call, dict):
            raise malformed()
        # A delta's index says which call it continues; a whole message's calls are in order.
        index = call.get("index", position)
        function = call.get("function") or {}
        if not isinstance(index, int) or not isinstance(function, dict):
            raise malformed()
        if index not in started:
            started.add(index)
            # Some servers leave these out, or give an id other APIs refuse: an id of our own,
            # no name (the client's to judge).
            name, call_id = function.get("name"), call.get("id")
            name = name if isinstance(name, str) else ""
            if not isinstance(call_id, str) or not CALL_ID.fullmatch(call_id):
                call_id = new_call_id()
            events.append(ToolCallStart(index=index, id=call_id, name=name))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            events.append(ToolCallDelta(arguments, index=index))
    return events


# The ids every API takes (Anthropic's tool_use id); Kimi's servers say functions.<name>:<n>.
CALL_ID = re.compile(r"[A-Za-z0-9_-]+")


def new_call_id() -> str:
    """An id for a tool call its server sent none for, or one other APIs refuse (some
    compatible servers)."""
    return f"call_{uuid.uuid4().hex}"


def chat_usage(usage: Mapping[str, Any]) -> Usage:
    # prompt_tokens holds the cached ones (read and written), completion_tokens the reasoning
    # ones. cache_write_tokens: OpenRouter's, and the SDK's since 2.45.
    return Usage(
        token_count(usage, "prompt_tokens"),
        token_count(usage, "completion_tokens"),
        cache_read_tokens=reported(usage, "prompt_tokens_details", "cached_tokens"),
        cache_write_tokens=reported(usage, "prompt_tokens_details", "cache_write_tokens"),
        reasoning_tokens=reported(usage, "completion_tokens_details", "reasoning_tokens"),
    )


class AzureClient(OpenAIClient):
    """Azure OpenAI's v1 API; the model is the deployment name (deployments are ARM-only)."""

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.connection.api_key}

    @property
    def responses_url(self) -> str:
        return f"{self.base_url}/openai/v1/responses"

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

# --- The gateway: a client's own request, relayed ----------------------------------------
#
# The client's body goes on as sent but for the model and what the admin's model settings
# decide: the sampling fields and options are defaults (set where the client set none, and
# left out where the client's own values make them invalid), max output tokens a cap (a
# larger client value is lowered to it), and values the type's rules refuse for this model
# are refused before anything is sent.

FAMILY_TYPES = (OPENAI, AZURE, OPENAI_COMPATIBLE, OPENROUTER, VERCEL)
# The general fields a request of each API takes (the SDK's chat/completion_create_params.py
# and responses/response_create_params.py): Responses has no penalties nor top K.
RELAY_SAMPLING = {
    RelayApi.CHAT_COMPLETIONS: (
        "temperature",
        "top_p",
        "top_k",
        "presence_penalty",
        "frequency_penalty",
    ),
    RelayApi.RESPONSES: ("temperature", "top_p"),
}
# Where a client asks for at most so many output tokens, in each API.
RELAY_MAX_TOKENS = {
    RelayApi.CHAT_COMPLETIONS: ("max_completion_tokens", "max_tokens"),
    RelayApi.RESPONSES: ("max_output_tokens",),
}
# Where an option goes in a Responses request, where it differs from chat completions'.
RESPONSES_PATHS = {"reasoning_effort": "reasoning.effort"}
# Where a client's request would name other models to answer it: OpenRouter's fallbacks
# (models), Vercel's (providerOptions.gateway.models, also the admin's fallback_models option),
# LiteLLM's (fallbacks). A developer is answered only by a model an admin lets them use, and a
# call is priced as its own model: refused, from every type's request (OpenAI's and Azure's
# APIs refuse them anyway; a compatible server may be any of these gateways).
OTHER_MODELS = ("models", "fallbacks", "providerOptions.gateway.models")


def family_type(client: OpenAIClient) -> ProviderType:
    return next(each for each in FAMILY_TYPES if each.client is type(client))


def relay_body(
    client: OpenAIClient, model: ModelSettings, request: Relay
) -> tuple[dict[str, Any], bool]:
    """The body to send for a client's request, and whether the client asked for the usage
    chunk of a streamed chat completion (it is asked for upstream either way); raises
    RequestRefused naming the request's field the model's settings refuse."""
    provider_type = family_type(client)
    responses = request.api is RelayApi.RESPONSES
    for path in OTHER_MODELS:
        if value_at(request.body, path) is not None:
            raise field_refused(path, "names other models: a call is answered by its own only.")
    body = {**request.body, "model": model.identifier}
    sampling = RELAY_SAMPLING[request.api]
    # The options but the one that caps the answer, each where this API takes it.
    options = {
        option: RESPONSES_PATHS.get(option.path, option.path) if responses else option.path
        for option in client.options
        if option.name != provider_type.answer_cap_option
    }
    body, refused = with_model_settings(provider_type, model, body, sampling, options)
    if refused:
        param, message = next(iter(refused.items()))
        raise field_refused(param, message)
    cap = model.options.get(provider_type.answer_cap_option) or model.max_output_tokens
    unset = "max_output_tokens" if responses else client.max_tokens_field
    apply_cap(body, RELAY_MAX_TOKENS[request.api], cap, unset)
    stream_options = body.get("stream_options")
    usage_asked = isinstance(stream_options, dict) and stream_options.get("include_usage") is True
    if request.api is RelayApi.CHAT_COMPLETIONS and request.streamed and not usage_asked:
        extra = stream_options if isinstance(stream_options, dict) else {}
        body["stream_options"] = {**extra, "include_usage": True}
    return body, usage_asked


def with_model_settings(
    provider_type: ProviderType,
    model: ModelSettings,
    body: dict[str, Any],
    sampling: tuple[str, ...],
    options: Mapping[Option, str],
) -> tuple[dict[str, Any], dict[str, str]]:
    """A client's body with the admin's sampling fields and `options` (each at its path in
    this body) as defaults, and what the model's settings refuse of it, by request field."""
    paths = {option.name: path for option, path in options.items()}
    defaults = [
        (name, getattr(model, name))
        for name in sampling
        if name in provider_type.general_fields
        and body.get(name) is None
        and getattr(model, name) is not None
    ]
    defaults += [
        (path, option.to_request(model.options[option.name]))
        for option, path in options.items()
        if model.options.get(option.name) is not None and value_at(body, path) is None
    ]
    return with_defaults(
        body,
        defaults,
        partial(relay_errors, provider_type, model, sampling=sampling, paths=paths),
    )


def relay_errors(
    provider_type: ProviderType,
    model: ModelSettings,
    body: Mapping[str, Any],
    *,
    sampling: tuple[str, ...],
    paths: Mapping[str, str],
) -> dict[str, str]:
    """A message for each of the request's fields (sampling fields and options) that the
    admin's model settings would refuse: the type's checks, the catalog's facts and its
    rules. Options are read back from the request as stored (this family's send them
    unchanged)."""
    general: dict[str, Any] = {"identifier": model.identifier}
    for name in sampling:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            return {name: f"{name} must be a number."}
        general[name] = value
    options = {name: value_at(body, path) for name, path in paths.items()}
    _, errors = provider_type.check_model(
        general, {name: value for name, value in options.items() if value is not None}
    )
    return {paths.get(name, name): messages[0] for name, messages in errors.items()}


def apply_cap(body: dict[str, Any], fields: tuple[str, ...], cap: int | None, unset: str) -> None:
    """The client's max output tokens (in any of `fields`) lowered to the model's cap; the
    cap in `unset` where the client set none."""
    asked = [name for name in fields if body.get(name) is not None]
    for name in asked:
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise field_refused(name, "must be a whole number of at least 1.")
        if cap is not None and value > cap:
            body[name] = cap
    if cap is not None and not asked:
        body[unset] = cap


def is_usage_chunk(data: str, events: list[StreamEvent]) -> bool:
    """The last chunk stream_options.include_usage adds: the usage, and no choices."""
    return any(isinstance(event, Usage) for event in events) and not json_data(data).get("choices")


# A Responses answer's incomplete_details.reason (the SDK's responses/response.py).
INCOMPLETE_REASONS = {
    "max_output_tokens": StopReason.MAX_TOKENS,
    "content_filter": StopReason.CONTENT_FILTER,
}
# Responses stream events that are progress but no answer text: reasoning, a tool call's
# arguments, a refusal (the SDK's responses/*_event.py).
RESPONSES_PROGRESS = (
    "response.reasoning_text.delta",
    "response.reasoning_summary_text.delta",
    "response.function_call_arguments.delta",
    "response.custom_tool_call_input.delta",
    "response.refusal.delta",
)


async def responses_events(
    response: httpx2.Response,
) -> AsyncIterator[tuple[str, str, list[StreamEvent]]]:
    """Each event of a Responses stream: its name and data as sent, and what it says; its end
    is response.completed or response.incomplete (with the usage). response.failed and error
    raise our own error; an end without either, cut_off()."""
    async for name, data in sse_events(response):
        event = json_data(data)
        kind = event.get("type")
        events: list[StreamEvent] = []
        if kind == "response.output_text.delta":
            text = event.get("delta")
            if not isinstance(text, str):
                raise malformed()
            events.append(TextDelta(text))
        elif kind in RESPONSES_PROGRESS:
            text = event.get("delta")
            if not isinstance(text, str):
                raise malformed()
            events.append(OtherOutput(text))
        elif kind == "error":
            # Its code at the top (the SDK's ResponseErrorEvent), or in an error object.
            raise mid_stream_error(error_kind(event.get("error")) or str(event.get("code") or ""))
        elif kind == "response.failed":
            answer = event.get("response")
            raise mid_stream_error(
                error_kind(answer.get("error")) if isinstance(answer, dict) else ""
            )
        elif kind in ("response.completed", "response.incomplete"):
            yield name, data, response_end(event.get("response"))
            return
        yield name, data, events
    raise cut_off()


def response_end(answer: Any) -> list[StreamEvent]:
    """A Responses answer's usage and why it ended."""
    if not isinstance(answer, dict):
        raise malformed()
    events: list[StreamEvent] = []
    usage = answer.get("usage")
    if isinstance(usage, dict):
        events.append(
            Usage(
                token_count(usage, "input_tokens"),
                token_count(usage, "output_tokens"),
                cache_read_tokens=reported(usage, "input_tokens_details", "cached_tokens"),
                cache_write_tokens=reported(usage, "input_tokens_details", "cache_write_tokens"),
                reasoning_tokens=reported(usage, "output_tokens_details", "reasoning_tokens"),
            )
        )
    reason = StopReason.COMPLETE
    if answer.get("status") == "incomplete":
        details = answer.get("incomplete_details")
        why = details.get("reason") if isinstance(details, dict) else None
        reason = INCOMPLETE_REASONS.get(why, StopReason.OTHER)
    return [*events, Finish(reason)]


def answer_events(api: RelayApi, answer: dict[str, Any]) -> list[StreamEvent]:
    """What a whole (non-streamed) answer says: its output, usage and end. An answer that is
    the provider's error (a 200 with an `error`, a failed response) raises our own: its words
    are the provider's."""
    if answer.get("error") is not None and api is RelayApi.CHAT_COMPLETIONS:
        raise mid_stream_error(error_kind(answer["error"]))
    if api is RelayApi.RESPONSES:
        return response_output(answer)
    choices = answer.get("choices")
    if not isinstance(choices, list):
        raise malformed()
    events: list[StreamEvent] = []
    stop_reason = StopReason.COMPLETE
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise malformed()
        events += message_output(message, set())
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            stop_reason = FINISH_REASONS.get(reason, StopReason.OTHER)
    usage = answer.get("usage")
    if isinstance(usage, dict):
        events.append(chat_usage(usage))
    return [*events, Finish(stop_reason)]


# Where the text of each kind of a Responses answer's output is (the SDK's
# responses/response.py's output items): the answer's own, and the rest of the model's output.
RESPONSES_TEXT = {
    "output_text": "text",
    "refusal": "refusal",
    "function_call": "arguments",
    "custom_tool_call": "input",
    "reasoning_text": "text",
    "summary_text": "text",
}


def response_output(answer: dict[str, Any]) -> list[StreamEvent]:
    """A whole Responses answer's output, usage and end; a failed one raises our error."""
    if answer.get("status") == "failed" or answer.get("error") is not None:
        raise mid_stream_error(error_kind(answer.get("error")))
    output = answer.get("output")
    if not isinstance(output, list):
        raise malformed()
    events: list[StreamEvent] = []
    # An output item, or its parts (a message's content, reasoning's summary and content).
    parts = [
        part
        for item in output
        if isinstance(item, dict)
        for part in [item, *parts_of(item, "content"), *parts_of(item, "summary")]
    ]
    for part in parts:
        field = RESPONSES_TEXT.get(part.get("type"))
        text = part.get(field) if field else ""
        if not isinstance(text, str):
            raise malformed()
        if text:
            answered = part["type"] == "output_text"
            events.append(TextDelta(text) if answered else OtherOutput(text))
    return [*events, *response_end(answer)]


def parts_of(item: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    parts = item.get(name)
    return [part for part in parts if isinstance(part, dict)] if isinstance(parts, list) else []


# --- The gateway: a translated request -----------------------------------------------------
#
# An OpenAI client's Chat Completions request for a model of another family is read into the
# neutral Conversation (ChatCompletionsApi.conversation) and the answer's neutral events are
# written back as chat completion chunks, or one chat completion (ChatCompletionsApi.answer).

# Fields read by the gateway (model), or hints the API documents as such that change nothing
# we can honour on another family's model: dropped (the answer reads stream_options).
ADVISORY_FIELDS = frozenset(
    {
        "model",
        "user",
        "seed",
        "store",
        "metadata",
        "service_tier",
        "stream_options",
        "prompt_cache_key",
        "safety_identifier",
    }
)
# Fields whose one value asks nothing of the model: taken at that value, refused at any other.
NEUTRAL_VALUES: dict[str, Any] = {
    "n": 1,
    "logprobs": False,
    "response_format": {"type": "text"},
    "modalities": ["text"],
}
# The sampling fields a Conversation keeps under the request's own names.
CONVERSATION_SAMPLING = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
READ_FIELDS = frozenset(
    {
        "messages",
        "stream",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_completion_tokens",
        "max_tokens",
        "stop",
        "reasoning_effort",
        *CONVERSATION_SAMPLING,
    }
)
# The fields each role's message may have (the SDK's chat_completion_*_message_param.py);
# `name` (a participant's name) is a hint no other family has: dropped.
MESSAGE_FIELDS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "refusal"},
    "tool": {"role", "content", "tool_call_id"},
}
# The fields of each kind of content part. Hints dropped (tabled): a text part's cache_control
# (Cline sends it; a Conversation holds no cache breakpoints), and an image_url's detail.
PART_FIELDS = {
    "text": ("type", "text", "cache_control"),
    "refusal": ("type", "refusal"),
    "image_url": ("type", "image_url"),
}
TOOL_CHOICES = {"none": "none", "auto": "auto", "required": "any"}
DATA_URL = re.compile(r"data:(image/[\w.+-]+);base64,([A-Za-z0-9+/=\s]+)")


def read_chat_request(body: Mapping[str, Any]) -> Conversation:
    """A Chat Completions body read into a Conversation; RequestRefused names the field it
    cannot take. A null field is an unset one, as the API takes it."""
    for name, value in body.items():
        if value is None or name in READ_FIELDS or name in ADVISORY_FIELDS:
            continue
        neutral = NEUTRAL_VALUES.get(name)
        if neutral is None or value != neutral or type(value) is not type(neutral):
            raise field_refused(name, NO_COUNTERPART)
    params: dict[str, str] = {}

    def read(name: str, into: str, kind: type | UnionType, what: str) -> Any:
        """The client's value of `name` (a Conversation's `into`), if it is of `kind`."""
        value = body.get(name)
        if value is None:
            return None
        if isinstance(value, bool) is not (kind is bool) or not isinstance(value, kind):
            raise field_refused(name, f"must be {what}.")
        params[into] = name
        return value

    system, messages = read_messages(body.get("messages"))
    tools = read_tools(read("tools", "tools", list, "a list of tools") or [])
    choice, tool_name = read_tool_choice(body.get("tool_choice"), tools)
    if body.get("tool_choice") is not None:
        params["tool_choice"] = "tool_choice"
    cap_field = (
        "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    )
    max_tokens = read(cap_field, "max_tokens", int, "a whole number of at least 1")
    if max_tokens is not None and max_tokens < 1:
        raise field_refused(cap_field, "must be a whole number of at least 1.")
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else stop
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(each, str) for each in stop):
            raise field_refused("stop", "must be a string or a list of strings.")
        params["stop"] = "stop"
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in REASONING_EFFORTS:
            raise field_refused(
                "reasoning_effort",
                f"must be one of: {', '.join(REASONING_EFFORTS)}.",
            )
        params["effort"] = "reasoning_effort"
    sampling = {name: read(name, name, int | float, "a number") for name in CONVERSATION_SAMPLING}
    parallel = read("parallel_tool_calls", "parallel_tool_calls", bool, "true or false")
    streamed = read("stream", "streamed", bool, "true or false")
    return Conversation(
        system=system,
        messages=messages,
        streamed=bool(streamed),
        tools=tools,
        tool_choice=choice,
        tool_name=tool_name,
        parallel_tool_calls=parallel is not False,
        max_tokens=max_tokens,
        stop=tuple(stop or ()),
        effort=effort,
        params=params,
        **sampling,
    )


def read_messages(messages: Any) -> tuple[str, tuple[Message, ...]]:
    """The system text (system and developer messages, joined by blank lines) and the turns
    (tool results are the user's; messages of one role in a row are one turn)."""
    if not isinstance(messages, list) or not messages:
        raise field_refused("messages", "must be a list of at least one message.")
    system: list[str] = []
    turns: list[Message] = []
    calls: dict[str, str] = {}
    for number, message in enumerate(messages):
        where = f"messages[{number}]"
        role = message.get("role") if isinstance(message, dict) else None
        if not isinstance(role, str) or role not in MESSAGE_FIELDS:
            raise field_refused(f"{where}.role", NO_COUNTERPART)
        for name, value in message.items():
            if name not in MESSAGE_FIELDS[role] and value is not None:
                raise field_refused(f"{where}.{name}", NO_COUNTERPART)
        content = message.get("content")
        if role in ("system", "developer"):
            system += text_parts(content, where)
            continue
        if role == "user":
            parts: list[Part] = user_parts(content, where)
        elif role == "assistant":
            parts = [*text_parts(content, where, refusal=True), *tool_calls(message, where)]
            refusal = message.get("refusal")
            if isinstance(refusal, str) and refusal:
                parts.insert(0, refusal)
            calls |= {part.id: part.name for part in parts if isinstance(part, ToolCall)}
        else:
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in calls:
                raise field_refused(
                    f"{where}.tool_call_id",
                    "answers no tool call of an earlier message.",
                )
            result = ToolResult(call_id, calls[call_id], tuple(text_parts(content, where)))
            parts, role = [result], "user"
        if not parts:
            continue
        if turns and turns[-1].role == role:
            turns[-1] = Message(role, (*turns[-1].parts, *parts))
        else:
            turns.append(Message(role, tuple(parts)))
    if not turns:  # every family's API refuses a conversation of no turns
        raise field_refused("messages", "must hold a user or assistant message with content.")
    return "\n\n".join(system), tuple(turns)


def text_parts(content: Any, where: str, *, refusal: bool = False) -> list[str]:
    """A message's text: a string, or text parts (an assistant's refusal parts with them)."""
    if content is None or isinstance(content, str):
        return [content] if content else []
    if not isinstance(content, list):
        raise field_refused(f"{where}.content", "must be a string or a list of parts.")
    texts = []
    for number, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        key = "refusal" if refusal and kind == "refusal" else "text"
        if kind != key:
            raise field_refused(f"{where}.content[{number}].type", NO_COUNTERPART)
        only_fields(part, PART_FIELDS[key], f"{where}.content[{number}]")
        texts += text_of(part, f"{where}.content[{number}]", key)
    return texts


def only_fields(item: Mapping[str, Any], names: tuple[str, ...], where: str) -> None:
    """Refuses a field of `item` not among `names`, naming it (a null one is unset)."""
    for name, value in item.items():
        if name not in names and value is not None:
            raise field_refused(f"{where}.{name}", NO_COUNTERPART)


def text_of(part: Mapping[str, Any], where: str, key: str = "text") -> list[str]:
    """A text part's text, unless empty."""
    text = part.get(key)
    if not isinstance(text, str):
        raise field_refused(f"{where}.{key}", "must be a string.")
    return [text] if text else []


def user_parts(content: Any, where: str) -> list[Part]:
    """A user message's text and images (data URLs, or http(s) URLs)."""
    if not isinstance(content, list):
        return list(text_parts(content, where))
    parts: list[Part] = []
    for number, part in enumerate(content):
        at = f"{where}.content[{number}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            only_fields(part, PART_FIELDS["text"], at)
            parts += text_of(part, at)
        elif kind == "image_url":
            only_fields(part, PART_FIELDS["image_url"], at)
            image = part.get("image_url")
            if isinstance(image, dict):
                only_fields(image, ("url", "detail"), f"{at}.image_url")
            url = image.get("url") if isinstance(image, dict) else None
            parts.append(image_of(url, f"{at}.image_url.url"))
        else:
            raise field_refused(f"{at}.type", NO_COUNTERPART)
    return parts


def image_of(url: Any, where: str) -> Image:
    data = DATA_URL.fullmatch(url) if isinstance(url, str) else None
    encoded = re.sub(r"\s", "", data[2]) if data else ""
    if data and is_base64(encoded):
        return Image(media_type=data[1], data=encoded)
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return Image(url=url)
    raise field_refused(where, "must be an image's base64 data: URL or an http(s) URL.")


def is_base64(text: str) -> bool:
    """Whether the text is base64 of some bytes (the providers refuse other image data)."""
    try:
        return bool(base64.b64decode(text, validate=True))
    except binascii.Error:
        return False


def tool_calls(message: Mapping[str, Any], where: str) -> list[ToolCall]:
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise field_refused(f"{where}.tool_calls", "must be a list.")
    read = []
    for number, call in enumerate(calls):
        at = f"{where}.tool_calls[{number}]"
        if not isinstance(call, dict) or call.get("type", "function") != "function":
            raise field_refused(f"{at}.type", NO_COUNTERPART)
        only_fields(call, ("id", "type", "function"), at)
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        only_fields(function, ("name", "arguments"), f"{at}.function")
        fields = (call.get("id"), function.get("name"), function.get("arguments"))
        if not all(isinstance(value, str) for value in fields) or not fields[0]:
            raise field_refused(at, "must have an id, a function name and its arguments.")
        read.append(ToolCall(*fields))
    return read


def read_tools(tools: list[Any]) -> tuple[Tool, ...]:
    """The request's functions; `strict` is a hint only OpenAI's models take: dropped."""
    read = []
    for number, tool in enumerate(tools):
        at = f"tools[{number}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise field_refused(f"{at}.type", NO_COUNTERPART)
        only_fields(tool, ("type", "function"), at)
        function = tool.get("function")
        if not isinstance(function, dict):
            raise field_refused(f"{at}.function", "must be an object.")
        only_fields(function, ("name", "description", "parameters", "strict"), f"{at}.function")
        name = function.get("name")
        description = function.get("description") or ""
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(name, str) or not name:
            raise field_refused(f"{at}.function.name", "must be a name.")
        if not isinstance(description, str) or not isinstance(parameters, dict):
            raise field_refused(at, "must have a text description and a JSON Schema object.")
        read.append(Tool(name, description, parameters))
    return tuple(read)


def read_tool_choice(choice: Any, tools: tuple[Tool, ...]) -> tuple[ToolChoice, str]:
    if choice is None:
        return "auto", ""
    if isinstance(choice, str) and choice in TOOL_CHOICES:
        return TOOL_CHOICES[choice], ""
    function = choice.get("function") if isinstance(choice, dict) else None
    if not isinstance(function, dict) or choice.get("type") != "function":
        raise field_refused("tool_choice", NO_COUNTERPART)
    only_fields(choice, ("type", "function"), "tool_choice")
    only_fields(function, ("name",), "tool_choice.function")
    name = function.get("name")
    if not isinstance(name, str) or name not in {tool.name for tool in tools}:
        raise field_refused("tool_choice.function.name", "names no tool of the request.")
    return "tool", name


# finish_reason for each way a translated answer ends; a complete one says tool_calls where
# the answer called tools. PAUSED and OTHER: stop.
CHAT_FINISH_REASONS = {
    StopReason.MAX_TOKENS: "length",
    StopReason.CONTEXT_FULL: "length",
    StopReason.REFUSED: "content_filter",
    StopReason.BLOCKED: "content_filter",
    StopReason.CONTENT_FILTER: "content_filter",
}


@dataclass
class ChatAnswer:
    """What a translated answer has said so far, for its chunks and its whole completion."""

    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))
    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    # By index: the call's id, its tool's name and its arguments' fragments.
    calls: dict[int, tuple[str, str, list[str]]] = field(default_factory=dict)
    usage: Usage | None = None
    reason: StopReason | None = None
    # Whether the role chunk that begins a streamed answer went out.
    began: bool = False

    def read(self, event: StreamEvent) -> dict[str, Any] | None:
        """The chunk's delta that says the event, if it says anything; kept for the end."""
        if isinstance(event, TextDelta):
            self.text.append(event.text)
            return {"content": event.text}
        if isinstance(event, ThinkingDelta) and event.text:
            self.thinking.append(event.text)
            return {"reasoning_content": event.text}
        if isinstance(event, ToolCallStart):
            self.calls[event.index] = (event.id, event.name, [])
            function = {"name": event.name, "arguments": ""}
            call = {"index": event.index, "id": event.id, "type": "function", "function": function}
            return {"tool_calls": [call]}
        if isinstance(event, ToolCallDelta) and event.text:
            if event.index not in self.calls:  # a fragment of a call that never began
                raise malformed()
            self.calls[event.index][2].append(event.text)
            call = {"index": event.index, "function": {"arguments": event.text}}
            return {"tool_calls": [call]}
        if isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Finish):
            self.reason = event.reason
        return None

    def chunk(self, choices: list[dict[str, Any]], **fields: Any) -> Raw:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                 "model": self.model, "choices": choices, **fields}  # fmt: skip
        return Raw(sse_event("", json.dumps(chunk)))

    def unsaid_arguments(self) -> dict[str, Any] | None:
        """The delta giving "{}" (no arguments, as OpenAI's models say it) to each call that
        got no fragment: an OpenAI client parses a call's arguments as JSON."""
        calls = [
            {"index": index, "function": {"arguments": "{}"}}
            for index, (_, _, arguments) in self.calls.items()
            if not arguments
        ]
        return {"tool_calls": calls} if calls else None

    @property
    def finish_reason(self) -> str:
        if self.reason is StopReason.COMPLETE and self.calls:
            return "tool_calls"
        return CHAT_FINISH_REASONS.get(self.reason, "stop")

    def usage_shape(self) -> dict[str, Any]:
        """The usage in OpenAI's shape; counts not reported are 0."""
        usage = self.usage or Usage(None, None)
        prompt, completion = usage.input_tokens or 0, usage.output_tokens or 0
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens or 0},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        }

    def completion(self) -> bytes:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.text) or None,
            "refusal": None,
        }
        if self.thinking:
            message["reasoning_content"] = "".join(self.thinking)
        if self.calls:
            message["tool_calls"] = [
                {"id": call_id, "type": "function",
                 "function": {"name": name, "arguments": "".join(arguments) or "{}"}}
                for call_id, name, arguments in self.calls.values()
            ]  # fmt: skip
        choice = {"index": 0, "message": message, "finish_reason": self.finish_reason}
        completion = {"id": self.id, "object": "chat.completion", "created": self.created,
                      "model": self.model, "choices": [choice],
                      "usage": self.usage_shape()}  # fmt: skip
        return json.dumps(completion).encode()


class ChatCompletionsApi:
    """The Chat Completions side of a translation (contract.ClientApi): an OpenAI client's
    request read into a Conversation, and a translated answer written as chat completion
    chunks, or one chat completion."""

    def conversation(self, request: Relay) -> Conversation:
        return read_chat_request(request.body)

    async def answer(
        self, events: AsyncIterator[StreamEvent], request: Relay
    ) -> AsyncIterator[StreamEvent]:
        said = ChatAnswer(model=str(request.body.get("model") or ""))
        async with aclosing(events) as source:
            async for event in source:
                yield event
                delta = said.read(event)
                if not request.streamed:
                    continue
                if not said.began:
                    said.began = True
                    role = {"role": "assistant", "content": ""}
                    yield said.chunk([{"index": 0, "delta": role, "finish_reason": None}])
                if delta is not None:
                    yield said.chunk([{"index": 0, "delta": delta, "finish_reason": None}])
        if said.reason is None:  # a family ends its answer or raises: never a clean end
            raise cut_off()
        if not request.streamed:
            yield Raw(said.completion())
            return
        arguments = said.unsaid_arguments()
        if arguments is not None:
            yield said.chunk([{"index": 0, "delta": arguments, "finish_reason": None}])
        end = {"index": 0, "delta": {}, "finish_reason": said.finish_reason}
        yield said.chunk([end])
        stream_options = request.body.get("stream_options")
        if isinstance(stream_options, dict) and stream_options.get("include_usage") is True:
            yield said.chunk([], usage=said.usage_shape())
        yield Raw(sse_event("", "[DONE]"))


CHAT_COMPLETIONS_API = ChatCompletionsApi()


# --- A client of another API calling a model of this family (OpenAIClient.converse) ---

# The request fields a Conversation's values go to, where the field of the Conversation has
# another name: the type's reasoning option (and what goes with it) is its effort.
CONVERSATION_FIELDS = {
    "reasoning_effort": "effort",
    "reasoning.effort": "effort",
    "reasoning.enabled": "effort",
}
# "Up to 4 sequences where the API will stop generating" (the SDK's completion_create_params).
MAX_STOP_SEQUENCES = 4
# A function's name (the SDK's FunctionDefinition), and the longest tool call id OpenAI takes.
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
MAX_CALL_ID = 40


def conversation_body(
    client: OpenAIClient, model: ModelSettings, conversation: Conversation
) -> dict[str, Any]:
    """The chat completions request for a client of another API: its conversation, with the
    admin's settings as for a relayed request (sampling and options as defaults, max output
    tokens a cap); RequestRefused names the client's field (conversation.params)."""
    provider_type = family_type(client)
    body: dict[str, Any] = {
        "model": model.identifier,
        "messages": chat_messages(conversation),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if conversation.tools:
        body |= chat_tools(conversation)
    if len(conversation.stop) > MAX_STOP_SEQUENCES:
        raise field_refused(
            conversation.param("stop"),
            f"This model takes at most {MAX_STOP_SEQUENCES} stop sequences.",
        )
    set_if(body, "stop", list(conversation.stop) or None)
    sampling = RELAY_SAMPLING[RelayApi.CHAT_COMPLETIONS]
    for name in sampling:
        set_if(body, name, getattr(conversation, name))
    body = with_effort(body, provider_type, model.identifier, conversation)
    options = {
        option: option.path
        for option in client.options
        if option.name != provider_type.answer_cap_option
    }
    body, refused = with_model_settings(provider_type, model, body, sampling, options)
    if refused:
        path, message = next(iter(refused.items()))
        field = CONVERSATION_FIELDS.get(path, path)
        raise field_refused(conversation.param(field), message)
    cap = model.options.get(provider_type.answer_cap_option) or model.max_output_tokens
    asked, ceiling = conversation.max_tokens, provider_type.answer_ceiling(model)
    set_if(body, client.max_tokens_field, min(asked, ceiling) if asked and ceiling else asked)
    apply_cap(body, (client.max_tokens_field,), cap, client.max_tokens_field)
    return body


def with_effort(
    body: dict[str, Any], provider_type: ProviderType, identifier: str, conversation: Conversation
) -> dict[str, Any]:
    """The body with the conversation's effort in the type's reasoning option, as the nearest
    effort the model takes (an Anthropic client's thinking off is none, which GPT-5 lacks: its
    least). A model that doesn't reason (the catalog's word) takes none as no effort, and an
    Anthropic client's thinking as the advice it is (tabled); it refuses any other."""
    effort = conversation.effort
    if effort is None:
        return body
    facts = provider_type.facts(identifier)
    if facts is not None and not facts.reasoning:
        if effort == "none" or conversation.effort_advisory:
            return body
        raise field_refused(
            conversation.param("effort"), f"{facts.name} doesn't reason: leave it out."
        )
    option = next(
        each
        for each in provider_type.options
        if isinstance(each, ChoiceOption) and each.name == "reasoning_effort"
    )
    taken = efforts_of(identifier) or option.choices
    rank = REASONING_EFFORTS.index
    nearest = min(
        (each for each in option.choices if each in taken),
        key=lambda each: abs(rank(each) - rank(effort)),
    )
    return with_value(body, option.path, nearest)


def chat_tools(conversation: Conversation) -> dict[str, Any]:
    """The request's tools, tool_choice (auto, the API's default, unsaid) and whether the
    model may call several at once (unsaid where it may)."""
    fields: dict[str, Any] = {
        "tools": [chat_tool(tool, conversation.param("tools")) for tool in conversation.tools]
    }
    if conversation.tool_choice == "tool":
        fields["tool_choice"] = {"type": "function", "function": {"name": conversation.tool_name}}
    elif conversation.tool_choice != "auto":
        fields["tool_choice"] = {"any": "required", "none": "none"}[conversation.tool_choice]
    if not conversation.parallel_tool_calls:
        fields["parallel_tool_calls"] = False
    return fields


def chat_tool(tool: Tool, param: str) -> dict[str, Any]:
    if not TOOL_NAME.fullmatch(tool.name):
        raise field_refused(
            param, "OpenAI takes tool names of letters, digits, _ and -, at most 64 characters."
        )
    function = {"name": tool.name, "parameters": dict(tool.parameters)}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def chat_messages(conversation: Conversation) -> list[dict[str, Any]]:
    """The system message, then each turn's messages; thinking of another family is dropped
    (its signature is only valid at its own provider)."""
    system = [{"role": "system", "content": conversation.system}] if conversation.system else []
    messages = [
        message
        for turn in conversation.messages
        for message in (
            assistant_messages(turn.parts)
            if turn.role == "assistant"
            else user_messages(turn.parts)
        )
    ]
    return system + messages


def user_messages(parts: tuple[Part, ...]) -> list[dict[str, Any]]:
    """A user's turn: its tool results as tool messages (which must come right after the
    calls), then its text and images, the results' images first (a tool message holds text
    only)."""
    results = [part for part in parts if isinstance(part, ToolResult)]
    messages = [
        {
            "role": "tool",
            "tool_call_id": chat_call_id(result.call_id),
            "content": content_of([part for part in result.content if isinstance(part, str)]),
        }
        for result in results
    ]
    images = [part for result in results for part in result.content if isinstance(part, Image)]
    rest = images + [part for part in parts if isinstance(part, str | Image)]
    if rest:
        messages.append({"role": "user", "content": content_of(rest)})
    return messages


def assistant_messages(parts: tuple[Part, ...]) -> list[dict[str, Any]]:
    texts = [part for part in parts if isinstance(part, str)]
    calls = [
        {"id": chat_call_id(part.id), "type": "function",
         "function": {"name": part.name, "arguments": part.arguments}}
        for part in parts
        if isinstance(part, ToolCall)
    ]  # fmt: skip
    if not texts and not calls:  # thinking only
        return []
    message: dict[str, Any] = {"role": "assistant", "content": content_of(texts) if texts else None}
    return [message | ({"tool_calls": calls} if calls else {})]


def chat_call_id(call_id: str) -> str:
    """The call's id, or where OpenAI would refuse it (longer than it takes, as a Gemini
    call's signed id is) one derived from it: the same in the call and in its result."""
    if len(call_id) <= MAX_CALL_ID and CALL_ID.fullmatch(call_id):
        return call_id
    return "call_" + hashlib.sha256(call_id.encode()).hexdigest()[:32]


def content_of(parts: list[str | Image]) -> str | list[dict[str, Any]]:
    """A message's content: one text as a string, else text and image parts."""
    if len(parts) == 1 and isinstance(parts[0], str):
        return parts[0]
    if not parts:
        return ""
    return [
        {"type": "text", "text": part}
        if isinstance(part, str)
        else {
            "type": "image_url",
            "image_url": {"url": part.url or f"data:{part.media_type};base64,{part.data}"},
        }
        for part in parts
    ]
