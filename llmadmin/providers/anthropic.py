"""Anthropic's Messages API: options, rules, request mapping and stream parsing.

Bedrock runs the same Claude models and reuses the options, rules and fields here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import requests

from llmadmin.providers.base import SAMPLING, ChoiceOption, IntOption, ModelSettings, ProviderType
from llmadmin.providers.http import (
    MAX_PAGES,
    ChatInput,
    ProviderClient,
    RemoteModel,
    StreamEvent,
    TextDelta,
    Usage,
    cut_off,
    error_kind,
    json_data,
    mid_stream_error,
    set_if,
    sse_events,
    token_count,
)

# What the official SDK (2.14) sends: the key as a Bearer token and this API version.
# PROVIDERS.md says x-api-key and 2023-06-01; the API takes both, and the SDK wins.
API_VERSION = "2026-10-21"
# The API requires max_tokens; used when the model leaves max output tokens unset.
DEFAULT_MAX_TOKENS = 8192

OPTIONS = (
    IntOption(
        name="thinking_budget_tokens",
        label="Thinking budget tokens",
        help_text="Turns on extended thinking with this many tokens for reasoning: at least 1024 "
        "and below max output tokens. The newest models accept only adaptive thinking.",
        min=1024,
    ),
    ChoiceOption(
        name="effort",
        label="Effort",
        help_text="How much effort the model spends (the API's default is high). "
        "Not every model supports every level.",
        choices=("low", "medium", "high", "xhigh", "max"),
    ),
)


def rules(general: Mapping[str, Any], options: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    # Extended thinking: the budget is part of max_tokens, and sampling is fixed while it is on
    # (Anthropic's extended-thinking docs).
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


def thinking_field(options: Mapping[str, Any]) -> dict[str, Any] | None:
    """Claude's thinking object (Bedrock sends it in additionalModelRequestFields)."""
    if options.get("thinking_budget_tokens") is None:
        return None
    return {"type": "enabled", "budget_tokens": options["thinking_budget_tokens"]}


def error_event_kind(payload: Mapping[str, Any]) -> str:
    return error_kind(payload.get("error"))


class AnthropicClient(ProviderClient):
    def auth_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.connection.api_key}",
            "anthropic-version": API_VERSION,
        }

    def verify_key(self) -> None:
        self.get_json(f"{self.base_url}/v1/models", {"limit": 1})

    def fetch_models(self) -> list[RemoteModel]:
        models: list[RemoteModel] = []
        params: dict[str, Any] = {"limit": 1000}
        for _ in range(MAX_PAGES):
            payload = self.get_json(f"{self.base_url}/v1/models", params)
            models += [
                RemoteModel(item["id"], token_count(item, "max_input_tokens") or None)
                for item in self.items(payload, "data")
            ]
            last_id = payload.get("last_id")
            # A page that points at itself would repeat the list: stop there.
            if not payload.get("has_more") or not isinstance(last_id, str):
                break
            if last_id == params.get("after_id"):
                break
            params = {"limit": 1000, "after_id": payload["last_id"]}
        return models

    def chat_body(self, model: ModelSettings, chat: ChatInput) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model.identifier,
            "max_tokens": model.max_output_tokens or DEFAULT_MAX_TOKENS,
            "messages": chat.messages,
            "stream": True,
        }
        set_if(body, "system", chat.system or None)
        set_if(body, "temperature", model.temperature)
        set_if(body, "top_p", model.top_p)
        set_if(body, "top_k", model.top_k)
        set_if(body, "thinking", thinking_field(model.options))
        if model.options.get("effort") is not None:
            body["output_config"] = {"effort": model.options["effort"]}
        return body

    def stream(self, model: ModelSettings, chat: ChatInput) -> Iterator[StreamEvent]:
        response = self.post_stream(f"{self.base_url}/v1/messages", self.chat_body(model, chat))
        with response:
            yield from parse_stream(response)


def parse_stream(response: requests.Response) -> Iterator[StreamEvent]:
    input_tokens = output_tokens = 0
    for event, data in sse_events(response):
        payload = json_data(data)
        if event == "error":
            raise mid_stream_error(error_event_kind(payload))
        if event == "message_start":
            usage = (payload.get("message") or {}).get("usage") or {}
            # Everything the model read: cache reads and writes count towards the context.
            input_tokens = sum(
                token_count(usage, name)
                for name in (
                    "input_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                )
            )
        elif event == "content_block_delta":
            delta = payload.get("delta") or {}
            text = delta.get("text") if delta.get("type") == "text_delta" else None
            if isinstance(text, str) and text:
                yield TextDelta(text)
        elif event == "message_delta":
            output_tokens = (
                token_count(payload.get("usage") or {}, "output_tokens") or output_tokens
            )
        elif event == "message_stop":
            yield Usage(input_tokens, output_tokens)
            return
    raise cut_off()


ANTHROPIC = ProviderType(
    slug="anthropic",
    key_env_var="ANTHROPIC_API_KEY",
    label="Anthropic",
    default_base_url="https://api.anthropic.com",
    base_url_example="https://api.anthropic.com",
    region_required=False,
    temperature_max=1,
    general_fields=SAMPLING | {"top_k"},
    client=AnthropicClient,
    options=OPTIONS,
    rules=rules,
)
