"""Google's Gemini API: options, rules, request mapping and stream parsing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx2

from llmadmin.providers.base import (
    PENALTIES,
    SAMPLING,
    BoolOption,
    ChoiceOption,
    IntOption,
    MappingOption,
    ModelSettings,
    ProviderType,
    set_options,
)
from llmadmin.providers.catalog import ModelFacts
from llmadmin.providers.contract import (
    ChatInput,
    Finish,
    OtherOutput,
    RemoteModel,
    StopReason,
    StreamEvent,
    TextDelta,
    Usage,
)
from llmadmin.providers.errors import cut_off, error_kind, malformed, mid_stream_error
from llmadmin.providers.sse import json_data, reported, sse_events, token_count, token_total
from llmadmin.providers.transport import MAX_PAGES, ProviderClient, set_if

# The SDK's HarmCategory (google-genai 3.6) that the Gemini API takes; the image categories
# are Vertex-only.
SAFETY_CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_JAILBREAK",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
)
# "Deprecated: Election filter is not longer supported" (the SDK's docstring).
DEPRECATED_CATEGORIES = ("HARM_CATEGORY_CIVIC_INTEGRITY",)
SAFETY_THRESHOLDS = (
    "BLOCK_LOW_AND_ABOVE",
    "BLOCK_MEDIUM_AND_ABOVE",
    "BLOCK_ONLY_HIGH",
    "BLOCK_NONE",
    "OFF",
)


def category_label(category: str) -> str:
    """HARM_CATEGORY_HATE_SPEECH -> Hate speech."""
    label = category.removeprefix("HARM_CATEGORY_").replace("_", " ").capitalize()
    return f"{label} (deprecated)" if category in DEPRECATED_CATEGORIES else label


def safety_settings(thresholds: Mapping[str, str]) -> list[dict[str, str]]:
    """The request's safetySettings, in the categories' own order: a stored mapping's order is
    the database's (jsonb sorts keys), and the request should not depend on it."""
    return [
        {"category": category, "threshold": thresholds[category]}
        for category in SAFETY_CATEGORIES
        if category in thresholds
    ]


# Thinking options are named as the SDK sends them (the API reads both spellings); levels are
# enum names.
OPTIONS = (
    IntOption(
        name="thinking_budget",
        label="Thinking budget",
        path="generationConfig.thinkingConfig.thinking_budget",
        help_text="Tokens for thinking (Gemini 2.5): 0 turns thinking off, -1 lets the model "
        "decide. Ranges differ by model (2.5 Pro 128-32768, 2.5 Flash 0-24576, "
        "2.5 Flash-Lite 512-24576).",
        min=-1,
        max=32768,
        reasoning=True,
    ),
    ChoiceOption(
        name="thinking_level",
        label="Thinking level",
        path="generationConfig.thinkingConfig.thinking_level",
        to_request=str.upper,
        help_text="How much the model thinks (Gemini 3 and later); not together with a "
        "thinking budget. Not every model has every level.",
        # The SDK's ThinkingLevel (google-genai 3.6).
        choices=("minimal", "low", "medium", "high", "xhigh"),
        reasoning=True,
    ),
    BoolOption(
        name="include_thoughts",
        label="Include thoughts",
        path="generationConfig.thinkingConfig.include_thoughts",
        help_text="Return thought summaries with the answer.",
        reasoning=True,
    ),
    MappingOption(
        name="safety_settings",
        label="Safety settings",
        path="safetySettings",
        to_request=safety_settings,
        help_text="Blocking threshold per harm category; unset categories keep Google's default.",
        keys=SAFETY_CATEGORIES,
        choices=SAFETY_THRESHOLDS,
        key_label=category_label,
    ),
)


# Per-model refusals the catalog has no field for (Google's thinking docs and API answers,
# ../shared/PROVIDERS.md): Gemini 2.5 and later answer "Penalty is not enabled for this model"
# to a presence or frequency penalty; thinking levels are Gemini 3's, budgets 2.5's, each 2.5
# model with its own range.
PENALTIES_REFUSED = re.compile(r"gemini-(2\.5|[3-9])|gemini-(flash|flash-lite|pro)-latest")
THINKING_LEVELS_FROM_3 = re.compile(r"gemini-([3-9]|\d\d)")
# Gemini 3 Pro takes low and high, 3.1 Pro all but minimal, the Flash models minimal to high
# (Google's thinking docs); a model not listed may take any level, xhigh included. Gemini 3
# Pro can't turn thinking off.
LEVELS_BY_MODEL = (
    (re.compile(r"gemini-3-pro"), ("low", "high")),
    (re.compile(r"gemini-3\.1-pro"), ("low", "medium", "high")),
    (re.compile(r"gemini-3(\.\d+)?-flash"), ("minimal", "low", "medium", "high")),
)
GEMINI_3_PRO = re.compile(r"gemini-3(\.\d+)?-pro")
BUDGET_RANGES = (
    # (id pattern, lowest budget above 0, highest, whether 0 turns thinking off)
    (re.compile(r"gemini-2\.5-flash-lite"), 512, 24576, True),
    (re.compile(r"gemini-2\.5-flash"), 1, 24576, True),
    (re.compile(r"gemini-2\.5-pro"), 128, 32768, False),
)


def version_rules(
    identifier: str, general: Mapping[str, Any], options: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    if PENALTIES_REFUSED.search(identifier):
        for name in PENALTIES:
            if general.get(name):
                yield name, f"{identifier} has no penalties: leave it empty."
    level = options.get("thinking_level")
    if level is not None and not THINKING_LEVELS_FROM_3.search(identifier):
        yield "thinking_level", "Thinking levels are for Gemini 3 and later: use a budget."
    for pattern, levels in LEVELS_BY_MODEL:
        if level is not None and pattern.search(identifier) and level not in levels:
            yield "thinking_level", f"{identifier} takes the levels {', '.join(levels)}."
            break
    budget = options.get("thinking_budget")
    if budget == 0 and GEMINI_3_PRO.search(identifier):
        yield "thinking_budget", f"{identifier} can't turn thinking off."
    for pattern, lowest, highest, can_turn_off in BUDGET_RANGES:
        if budget is None or budget == -1 or not pattern.search(identifier):
            continue
        if budget == 0 and not can_turn_off:
            yield "thinking_budget", f"{identifier} can't turn thinking off: use -1 or {lowest}+."
        elif budget != 0 and not lowest <= budget <= highest:
            yield "thinking_budget", f"{identifier} takes a budget from {lowest} to {highest}."
        break


def rules(
    general: Mapping[str, Any], options: Mapping[str, Any], facts: ModelFacts | None
) -> Iterator[tuple[str, str]]:
    if options.get("thinking_level") is not None and options.get("thinking_budget") is not None:
        yield "thinking_level", "Set either a thinking level (Gemini 3) or a thinking budget."
    if options.get("include_thoughts") and options.get("thinking_budget") == 0:
        yield "include_thoughts", "Thoughts can't be included with thinking off (budget 0)."
    yield from version_rules(general.get("identifier") or "", general, options)


GENERATION_CONFIG = (
    ("max_output_tokens", "maxOutputTokens"),
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
)
ROLES = {"user": "user", "assistant": "model"}
# The official SDK's (google-genai 3.6) default API version.
API_VERSION = "v1"
# finishReason (the SDK's FinishReason): why a candidate ended. Safety, recitation and
# blocklist checks block it; anything unlisted is the provider's own reason.
FINISH_REASONS = {
    "STOP": StopReason.COMPLETE,
    "MAX_TOKENS": StopReason.MAX_TOKENS,
    "SAFETY": StopReason.BLOCKED,
    "RECITATION": StopReason.BLOCKED,
    "BLOCKLIST": StopReason.BLOCKED,
    "PROHIBITED_CONTENT": StopReason.BLOCKED,
    "SPII": StopReason.BLOCKED,
    "IMAGE_SAFETY": StopReason.BLOCKED,
    "IMAGE_PROHIBITED_CONTENT": StopReason.BLOCKED,
    "IMAGE_RECITATION": StopReason.BLOCKED,
}


class GoogleClient(ProviderClient):
    def auth_headers(self) -> dict[str, str]:
        # The header form, never ?key=: URLs end up in logs.
        return {"x-goog-api-key": self.connection.api_key}

    def is_rejected(self, status: int, body: str) -> bool:
        # Gemini answers a bad key with 400 and the reason API_KEY_INVALID.
        return super().is_rejected(status, body) or (status == 400 and "API_KEY_INVALID" in body)

    def verify_key(self) -> None:
        self.get_json(f"{self.base_url}/{API_VERSION}/models", {"pageSize": 1})

    def fetch_models(self) -> list[RemoteModel]:
        models: list[RemoteModel] = []
        params: dict[str, Any] = {"pageSize": 1000}
        for _ in range(MAX_PAGES):
            payload = self.get_json(f"{self.base_url}/{API_VERSION}/models", params)
            models += [
                RemoteModel(
                    item["name"].removeprefix("models/"),
                    token_count(item, "inputTokenLimit") or None,
                )
                for item in self.items(payload, "models", id_field="name")
                if "generateContent" in (item.get("supportedGenerationMethods") or [])
            ]
            token = payload.get("nextPageToken")
            # A page that points at itself would repeat the list: stop there.
            if not isinstance(token, str) or not token or token == params.get("pageToken"):
                break
            params = {"pageSize": 1000, "pageToken": payload["nextPageToken"]}
        return models

    def chat_body(self, model: ModelSettings, chat: ChatInput) -> dict[str, Any]:
        body: dict[str, Any] = {
            "contents": [
                {"role": ROLES[message["role"]], "parts": [{"text": message["content"]}]}
                for message in chat.messages
            ]
        }
        if chat.system:
            # The SDK sends the system text with the user role.
            body["systemInstruction"] = {"role": "user", "parts": [{"text": chat.system}]}
        config: dict[str, Any] = {}
        for name, key in GENERATION_CONFIG:
            set_if(config, key, getattr(model, name))
        if model.top_k is not None:
            config["topK"] = float(model.top_k)  # as the SDK types it: 40.0
        if config:
            body["generationConfig"] = config
        # An empty safety mapping is Google's defaults: nothing to send.
        safety = model.options.get("safety_settings") or None
        set_options(body, self.options, {**model.options, "safety_settings": safety})
        return body

    async def stream(self, model: ModelSettings, chat: ChatInput) -> AsyncIterator[StreamEvent]:
        url = (
            f"{self.base_url}/{API_VERSION}/models/{quote(model.identifier, safe='')}"
            ":streamGenerateContent?alt=sse"
        )
        async with self.open_stream(url, self.chat_body(model, chat)) as response:
            async for event in parse_stream(response):
                yield event


async def parse_stream(response: httpx2.Response) -> AsyncIterator[StreamEvent]:
    usage, stop_reason = None, None
    async for _, data in sse_events(response):
        chunk = json_data(data)
        if "error" in chunk:
            raise mid_stream_error(error_kind(chunk["error"]))
        metadata = chunk.get("usageMetadata")
        if isinstance(metadata, dict):
            # Thinking tokens are not part of candidatesTokenCount but are output all the same;
            # promptTokenCount holds the cached tokens. Gemini reports no cache writes.
            usage = Usage(
                token_count(metadata, "promptTokenCount"),
                token_total(metadata, "candidatesTokenCount", "thoughtsTokenCount"),
                cache_read_tokens=reported(metadata, "cachedContentTokenCount"),
                reasoning_tokens=reported(metadata, "thoughtsTokenCount"),
            )
        feedback = chunk.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            # A blocked prompt gets no candidates: the answer ends here.
            stop_reason = StopReason.BLOCKED
            break
        candidates = chunk.get("candidates")
        for candidate in candidates if isinstance(candidates, list) else []:
            if not isinstance(candidate, dict):
                raise malformed()
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            for part in parts if isinstance(parts, list) else []:
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str) and text:
                    yield OtherOutput(text) if part.get("thought") else TextDelta(text)
            reason = candidate.get("finishReason")
            if isinstance(reason, str) and reason:
                stop_reason = FINISH_REASONS.get(reason, StopReason.OTHER)
    if stop_reason is None:
        raise cut_off()
    if usage:
        yield usage
    yield Finish(stop_reason)


GOOGLE = ProviderType(
    slug="google",
    key_env_var="GEMINI_API_KEY",
    label="Google (Gemini)",
    default_base_url="https://generativelanguage.googleapis.com",
    base_url_example="https://generativelanguage.googleapis.com",
    region_required=False,
    temperature_max=2,
    general_fields=SAMPLING | PENALTIES | {"top_k"},
    client=GoogleClient,
    options=OPTIONS,
    rules=rules,
    catalog="google",
    seeded_models=("gemini-3.1-pro-preview", "gemini-3.5-flash", "gemini-2.5-pro"),
)
