"""Anthropic's Messages API: options, rules, request mapping and stream parsing.

Bedrock runs the same Claude models and reuses the rules here, and the options it declares;
for the gateway, also the relayed Messages body (relay_body) and stream reader (relay_stream).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import aclosing
from functools import partial
from typing import Any, NamedTuple

import httpx2
from django.core.exceptions import ValidationError

from llmadmin.providers.base import (
    GENERAL_LABELS,
    ChoiceOption,
    IntOption,
    ModelSettings,
    ProviderType,
    set_options,
    value_at,
    with_defaults,
)
from llmadmin.providers.catalog import ModelFacts
from llmadmin.providers.contract import (
    ChatInput,
    Conversation,
    Effort,
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
    Thinking,
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
    RequestRefused,
    cut_off,
    error_kind,
    field_refused,
    malformed,
    mid_stream_error,
)
from llmadmin.providers.sse import (
    json_data,
    reported,
    sse_event,
    sse_events,
    token_count,
    token_total,
    tool_arguments,
)
from llmadmin.providers.transport import MAX_PAGES, ProviderClient, body_of, set_if

# What the official SDK (2.14) sends: the key as a Bearer token and this API version.
# PROVIDERS.md says x-api-key and 2023-06-01; the API takes both, and the SDK wins.
API_VERSION = "2026-10-21"
# API version 2026-10-21 removed the sampling parameters: temperature, top_p or top_k in a
# request answers 400, even at their default values (Anthropic's versioning page,
# platform.claude.com/docs/en/api/versioning, and the 2026-10-21 migration guide). The SDK
# 2.14, which sends this version, has none of them (anthropic/types/message_create_params.py).
# Bedrock is another API with its own versions: Converse still takes them (bedrock.py).
REMOVED_IN_API_VERSION = ("temperature", "top_p", "top_k")
# The API requires max_tokens; used when the model leaves max output tokens unset.
DEFAULT_MAX_TOKENS = 8192

THINKING_MODES = ("adaptive", "enabled", "disabled")
THINKING = ChoiceOption(
    name="thinking",
    label="Thinking",
    path="thinking.type",
    help_text="adaptive: the model decides when and how much to think (Claude 4.6 and "
    "later; the only kind Opus 4.7 and later take, which can't turn it off). enabled: "
    "extended thinking with the budget below. disabled: no thinking.",
    choices=THINKING_MODES,
    reasoning=True,
)
THINKING_BUDGET_TOKENS = IntOption(
    name="thinking_budget_tokens",
    label="Thinking budget tokens",
    path="thinking.budget_tokens",
    help_text="For enabled thinking: this many tokens for reasoning, at least 1024 and "
    "below max output tokens.",
    min=1024,
    reasoning=True,
)
EFFORT = ChoiceOption(
    name="effort",
    label="Effort",
    path="output_config.effort",
    help_text="How much effort the model spends (the API's default is high): Opus 4.5 and "
    "later, Sonnet 4.6 and later; max from 4.6, xhigh from 4.7.",
    choices=("low", "medium", "high", "xhigh", "max"),
    reasoning=True,
)
OPTIONS = (THINKING, THINKING_BUDGET_TOKENS, EFFORT)


class ClaudeVersion(NamedTuple):
    line: str  # opus, sonnet, haiku, or a later line (fable, mythos…)
    number: tuple[int, int]


def claude_version(identifier: str) -> ClaudeVersion | None:
    """Claude's line and version from a model id in any of its spellings: claude-opus-4-7,
    claude-sonnet-4-20250514, claude-3-7-sonnet-…, us.anthropic.claude-…-v1:0, a gateway's
    anthropic/claude-sonnet-4.6. None for an id that names no version."""
    name = identifier.rsplit("/", 1)[-1]
    # A trailing 8-digit date is not a minor version: minors have one or two digits.
    match = re.search(r"claude-([a-z]+)-(\d)(?:[-.](\d{1,2}))?(?!\d)", name)
    if match:
        line, major, minor = match.groups()
    else:
        match = re.search(r"claude-(\d)(?:[-.](\d))?-([a-z]+)", name)
        if not match:
            return None
        major, minor, line = match.groups()
    return ClaudeVersion(line, (int(major), int(minor or 0)))


def thinking_mode(options: Mapping[str, Any]) -> str | None:
    """The thinking type to send; a budget alone (as stored before the mode existed) means
    enabled."""
    if options.get("thinking") is not None:
        return options["thinking"]
    return "enabled" if options.get("thinking_budget_tokens") is not None else None


# Thinking budgets for a translated request's effort, on a Claude model with no effort
# setting (enabled thinking): about what Anthropic's docs suggest per depth of task.
EFFORT_BUDGETS = {"low": 2048, "medium": 8192, "high": 16384, "xhigh": 32000, "max": 32000}
THINKING_OPTIONS = ("thinking", "thinking_budget_tokens", "effort")


def effort_options(
    identifier: str, effort: Effort | None, options: Mapping[str, Any]
) -> dict[str, Any]:
    """Claude's options (as stored) for a translated request asking `effort`: the admin's
    where it asks none; none or minimal turn thinking off; else adaptive thinking at that
    effort where the model takes both, else enabled thinking with a budget for it. What the
    model's rules refuse of the result (xhigh before 4.7…) they refuse."""
    if effort is None:
        return dict(options)
    rest = {name: value for name, value in options.items() if name not in THINKING_OPTIONS}
    if effort in ("none", "minimal"):
        return thinking_off(identifier, rest)
    version = claude_version(identifier)
    since = EFFORT_FROM.get(version.line, (0, 0)) if version else None
    if version and version.number >= ADAPTIVE_FROM and since and version.number >= since:
        return {**rest, "thinking": "adaptive", "effort": effort}
    return {**rest, "thinking": "enabled", "thinking_budget_tokens": EFFORT_BUDGETS[effort]}


def thinking_off(identifier: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Claude's options (as stored) with thinking off: disabled, or left unset on a model that
    takes adaptive thinking only (it refuses "disabled"; unset, it does not think)."""
    rest = {
        name: value
        for name, value in options.items()
        if name not in ("thinking", "thinking_budget_tokens")
    }
    version = claude_version(identifier)
    if version and version.number >= ADAPTIVE_ONLY_FROM:
        return rest
    return {**rest, "thinking": "disabled"}


def thinking_replayable(messages: Sequence[Message]) -> bool:
    """Whether Claude may think on this conversation: with thinking on, it refuses a last
    assistant turn whose tool calls come without its signed thinking before them (which a
    client of another API cannot send back)."""
    assistant = [message for message in messages if message.role == "assistant"]
    if not assistant or not any(isinstance(part, ToolCall) for part in assistant[-1].parts):
        return True
    first = assistant[-1].parts[0]
    return isinstance(first, Thinking) and bool(first.signature)


# Per-model refusals the catalog has no field for, from Anthropic's answers and docs
# (../shared/PROVIDERS.md): since Claude Opus 4.1, "`temperature` and `top_p` cannot both be
# specified"; Opus 4.7 and later refuse any non-default sampling, and take adaptive thinking
# only (AWS's adaptive-thinking page: budget and "disabled" answer 400); adaptive thinking
# came with 4.6; effort came with Opus 4.5 and Sonnet 4.6, max with 4.6, xhigh with 4.7, and
# Haiku takes none. A later line (fable, mythos) is taken to follow the newest rules.
BOTH_SAMPLERS_REFUSED_FROM = (4, 1)
ADAPTIVE_FROM = (4, 6)
ADAPTIVE_ONLY_FROM = (4, 7)
EFFORT_FROM = {"opus": (4, 5), "sonnet": (4, 6), "haiku": None}
EFFORT_LEVEL_FROM = {"max": (4, 6), "xhigh": (4, 7)}


def model_name(version: ClaudeVersion) -> str:
    return f"Claude {version.line.capitalize()} {'.'.join(map(str, version.number))}"


def sampling_rules(version: ClaudeVersion, general: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """What Claude refuses of sampling, by version: also through a gateway."""
    model = model_name(version)
    if version.number >= ADAPTIVE_ONLY_FROM:
        for name in ("temperature", "top_p", "top_k"):
            if general.get(name) is not None:
                yield name, f"{model} refuses any non-default sampling: leave it empty."
    elif version.number >= BOTH_SAMPLERS_REFUSED_FROM and None not in (
        general.get("temperature"),
        general.get("top_p"),
    ):
        yield "top_p", f"{model} takes a temperature or a top P, not both: clear one."


def version_rules(
    version: ClaudeVersion, general: Mapping[str, Any], options: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    model = model_name(version)
    mode = thinking_mode(options)
    yield from sampling_rules(version, general)
    if version.number >= ADAPTIVE_ONLY_FROM and mode in ("enabled", "disabled"):
        # On the field the admin set: the mode, or a budget alone.
        field = "thinking" if options.get("thinking") else "thinking_budget_tokens"
        yield field, f"{model} takes adaptive thinking only: leave Thinking at adaptive."
    if mode == "adaptive" and version.number < ADAPTIVE_FROM:
        yield "thinking", f"{model} has no adaptive thinking: use enabled, with a budget."
    effort = options.get("effort")
    if effort is not None:
        known_line = version.line in EFFORT_FROM
        since = EFFORT_FROM.get(version.line)
        if known_line and (since is None or version.number < since):
            yield "effort", f"{model} takes no effort level: leave it at Default."
        elif version.number < EFFORT_LEVEL_FROM.get(effort, (0, 0)):
            yield "effort", f"{model} has no {effort} effort."


def rules(
    general: Mapping[str, Any], options: Mapping[str, Any], facts: ModelFacts | None
) -> Iterator[tuple[str, str]]:
    mode = thinking_mode(options)
    budget = options.get("thinking_budget_tokens")
    if mode == "enabled":
        max_output = general.get("max_output_tokens")
        if budget is None:
            yield "thinking_budget_tokens", "Enabled thinking needs a budget."
        elif max_output is None or budget >= max_output:
            yield (
                "thinking_budget_tokens",
                "Must be below max output tokens: set max output tokens above the budget.",
            )
    elif budget is not None:
        yield "thinking_budget_tokens", "A budget goes with enabled thinking only."
    # With thinking on, sampling is fixed (Anthropic's extended-thinking docs).
    if mode in ("enabled", "adaptive"):
        if general.get("temperature") is not None:
            yield "temperature", "Temperature can't be changed while thinking is on."
        if general.get("top_k") is not None:
            yield "top_k", "Top K can't be changed while thinking is on."
        top_p = general.get("top_p")
        if top_p is not None and top_p < 0.95:
            yield "top_p", "With thinking on, top P must be between 0.95 and 1."
    version = claude_version(general.get("identifier") or "")
    if version is not None:
        yield from version_rules(version, general, options)


def api_rules(
    general: Mapping[str, Any], options: Mapping[str, Any], facts: ModelFacts | None
) -> Iterator[tuple[str, str]]:
    """Claude's rules on Anthropic's own API, which requires max_tokens (Converse does not).

    Its sampling fields never reach the rules: the API version refuses them first."""
    yield from rules(general, options, facts)
    # Left empty, the request says max_tokens 8192, which a model that writes less refuses.
    output_limit = facts.output_limit if facts else None
    if general.get("max_output_tokens") is None and (output_limit or 0) in range(
        1, DEFAULT_MAX_TOKENS
    ):
        yield "max_output_tokens", f"Set it: the model writes at most {output_limit} tokens."


def sent_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Claude's options as a request sends them (Bedrock's too): the thinking mode spelled out,
    and a budget with enabled thinking only."""
    mode = thinking_mode(options)
    budget = options.get("thinking_budget_tokens") if mode == "enabled" else None
    return {**options, "thinking": mode, "thinking_budget_tokens": budget}


# The request's own fields for Claude's general settings, by the names its rules use.
GENERAL_PARAMS = {
    "max_output_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
}
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
# A thinking configuration is one choice: the admin's applies only where the client's has none.
TAKEN_WHOLE = ("thinking",)
WHOLE_NUMBERS = ("max_output_tokens", "top_k")


# Where a client's Messages request would name other models to answer it, at a gateway behind
# the account's address (OpenRouter's fallbacks; models, as its chat API): a developer is
# answered only by a model an admin lets them use, priced as its own. Anthropic's API refuses
# them anyway.
OTHER_MODELS = ("fallbacks", "models")


def relay_body(model: ModelSettings, body: Mapping[str, Any]) -> dict[str, Any]:
    """A gateway client's Messages body for this model (Bedrock's too): the client's fields
    as sent, the model's id, max_tokens at most the admin's cap, and the admin's settings
    where the client set none (but one the client's own values make invalid: the admin's
    temperature with the client's thinking is left out). Raises RequestRefused, naming the
    field, where the client's values are ones the model's rules refuse: refused here, it
    costs nothing."""
    for name in OTHER_MODELS:
        if body.get(name) is not None:
            raise field_refused(name, "names other models: a call is answered by its own only.")
    sent = {**body, "model": model.identifier}
    cap = model.max_output_tokens
    max_tokens = sent.get("max_tokens")
    if max_tokens is None:
        set_if(sent, "max_tokens", cap)
    elif cap and is_whole(max_tokens):
        sent["max_tokens"] = min(max_tokens, cap)
    defaults = [(name, getattr(model, name)) for name in SAMPLING_PARAMS]
    options: dict[str, Any] = {}
    set_options(options, OPTIONS, sent_options(model.options))
    for name, value in options.items():
        if name in TAKEN_WHOLE:
            defaults.append((name, value))
        else:  # an object (output_config): the admin's fields where the client's has none
            defaults += [(f"{name}.{key}", leaf) for key, leaf in value.items()]
    sent, refused = with_defaults(
        sent,
        [
            (path, value)
            for path, value in defaults
            if value is not None and value_at(sent, path) is None
        ],
        partial(relay_refusals, model.identifier),
    )
    if refused:
        raise RequestRefused(" ".join(f"{param}: {message}" for param, message in refused.items()))
    return sent


def relay_refusals(identifier: str, body: Mapping[str, Any]) -> dict[str, str]:
    """What Claude's rules (and its options' own checks) refuse of a request's values: a
    message by the request's field."""
    refusals = {}
    general: dict[str, Any] = {"identifier": identifier}
    for name, param in GENERAL_PARAMS.items():
        value = general[name] = body.get(param)
        whole = name in WHOLE_NUMBERS
        if value is not None and not (is_whole(value) if whole else is_number(value)):
            refusals[param] = f"must be a {'whole ' if whole else ''}number."
    options: dict[str, Any] = {}
    for option in OPTIONS:
        value = value_at(body, option.path)
        if value is not None:
            try:
                options[option.name] = option.clean(value)
            except ValidationError as error:
                refusals[option.path] = " ".join(error.messages)
    if refusals:  # the rules read valid values only
        return refusals
    paths = {option.name: option.path for option in OPTIONS} | GENERAL_PARAMS
    # Claude's rules read no catalog facts; a field's first refusal is its reason.
    for name, message in rules(general, options, None):
        refusals.setdefault(paths[name], message)
    return refusals


def is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
        # Refused on save under API_VERSION; a row stored past that is sent as it is, and
        # its 400 says so, rather than the answer quietly sampling otherwise.
        set_if(body, "temperature", model.temperature)
        set_if(body, "top_p", model.top_p)
        set_if(body, "top_k", model.top_k)
        set_options(body, self.options, sent_options(model.options))
        return body

    def stream(self, model: ModelSettings, chat: ChatInput) -> AsyncIterator[StreamEvent]:
        return self.messages_stream(self.chat_body(model, chat))

    async def converse(
        self, model: ModelSettings, conversation: Conversation
    ) -> AsyncIterator[StreamEvent]:
        # Built, and refused, before anything is sent.
        body = converse_body(model, conversation)
        async for event in self.messages_stream(body):
            yield event

    async def messages_stream(self, body: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        async with self.open_stream(f"{self.base_url}/v1/messages", body) as response:
            async for event in parse_stream(response):
                yield event

    def speaks(self, api: RelayApi, identifier: str) -> bool:
        return api in (RelayApi.MESSAGES, RelayApi.COUNT_TOKENS)

    def relay(self, model: ModelSettings, request: Relay) -> AsyncIterator[StreamEvent]:
        if request.api is RelayApi.COUNT_TOKENS:
            return self.relay_count(model, request)
        return self.relay_messages(model, request)

    async def relay_messages(
        self, model: ModelSettings, request: Relay
    ) -> AsyncIterator[StreamEvent]:
        url = f"{self.base_url}/v1/messages"
        body = relay_body(model, request.body)
        # The client's anthropic-version and anthropic-beta, as sent (ours where it sent none).
        async with self.open_stream(
            url, body, stream=request.streamed, headers=request.headers
        ) as response:
            if request.streamed:
                async for event in relay_stream(sse_events(response)):
                    yield event
                return
            answer = await body_of(response)
        for event in message_events(json_data(answer)):
            yield event
        yield Raw(answer)

    async def relay_count(self, model: ModelSettings, request: Relay) -> AsyncIterator[StreamEvent]:
        # count_tokens takes no max_tokens nor sampling: only the model is ours.
        body = {**request.body, "model": model.identifier}
        async with self.open_stream(
            f"{self.base_url}/v1/messages/count_tokens", body, stream=False, headers=request.headers
        ) as response:
            count = json_data(await body_of(response)).get("input_tokens")
        if not is_whole(count):
            raise malformed()
        # The count only, as Bedrock's: the rest of the provider's answer is not ours to pass on.
        yield Raw(json.dumps({"input_tokens": count}).encode())


# message_delta's stop_reason (the SDK's types/stop_reason.py); end_turn, stop_sequence and
# tool_use end a complete answer. pause_turn: "we paused a long-running turn", which the
# conversation sent back as is lets the model continue (the SDK's types/message.py).
STOP_REASONS = {
    "max_tokens": StopReason.MAX_TOKENS,
    "model_context_window_exceeded": StopReason.CONTEXT_FULL,
    "refusal": StopReason.REFUSED,
    "pause_turn": StopReason.PAUSED,
}
COMPLETE = ("end_turn", "stop_sequence", "tool_use")


def stop_reason_of(value: Any) -> StopReason:
    if value in COMPLETE:
        return StopReason.COMPLETE
    return STOP_REASONS.get(value, StopReason.OTHER) if isinstance(value, str) else StopReason.OTHER


# What the model read: input_tokens leaves out the cache reads and writes.
INPUT_COUNTS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def usage_of(counts: Mapping[str, Any] | None, output_tokens: int | None) -> Usage:
    """The turn's usage; None for the counts of a stream without a message_start."""
    return Usage(
        token_total(counts, *INPUT_COUNTS) if counts is not None else None,
        output_tokens,
        cache_read_tokens=reported(counts, "cache_read_input_tokens"),
        cache_write_tokens=reported(counts, "cache_creation_input_tokens"),
        # A part of output_tokens (the SDK's OutputTokensDetails).
        reasoning_tokens=reported(counts, "output_tokens_details", "thinking_tokens"),
    )


def text_of(delta: Mapping[str, Any], name: str) -> str:
    text = delta.get(name)
    if not isinstance(text, str):
        raise malformed()
    return text


class MessageStream:
    """Reads a streamed Messages answer one event at a time (Anthropic's own stream, and
    Claude's on Bedrock): the neutral events each says, and whether the answer has ended."""

    def __init__(self) -> None:
        self.counts: dict[str, Any] | None = None
        self.output_tokens: int | None = None
        self.stop_reason = StopReason.COMPLETE
        self.ended = False
        # The answer's tool calls so far, by the index of their content block.
        self.tool_calls: dict[Any, int] = {}

    def read(self, event: str, payload: Mapping[str, Any]) -> Iterator[StreamEvent]:
        if event == "error":
            raise mid_stream_error(error_event_kind(payload))
        if event == "message_start":
            message = payload.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            self.counts = dict(usage) if isinstance(usage, dict) else {}
            # The input is known (and billed) from here: an answer cut short still has it.
            yield usage_of(self.counts, token_count(self.counts, "output_tokens"))
        elif event == "content_block_start":
            block = payload.get("content_block")
            if isinstance(block, dict) and block.get("type") == "tool_use":
                index = self.tool_calls[payload.get("index")] = len(self.tool_calls)
                yield ToolCallStart(
                    index=index, id=text_of(block, "id"), name=text_of(block, "name")
                )
        elif event == "content_block_delta":
            yield from self.delta(payload)
        elif event == "message_delta":
            usage = payload.get("usage")
            if isinstance(usage, dict) and "output_tokens" in usage:
                self.output_tokens = token_count(usage, "output_tokens")
            if isinstance(usage, dict) and self.counts is not None:
                # message_delta's counts are cumulative: those it has replace message_start's
                # (as the SDK's stream does); one left out or null keeps message_start's.
                self.counts |= {name: value for name, value in usage.items() if value is not None}
            delta = payload.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason") is not None:
                self.stop_reason = stop_reason_of(delta["stop_reason"])
        elif event == "message_stop":
            self.ended = True
            yield usage_of(self.counts, self.output_tokens)
            yield Finish(self.stop_reason)

    def delta(self, payload: Mapping[str, Any]) -> Iterator[StreamEvent]:
        """A content block's delta (the SDK's types/raw_content_block_delta.py): text, thinking
        and its signature, a tool call's input as JSON text; a citation is progress with no
        output of its own."""
        delta = payload.get("delta")
        kind = delta.get("type") if isinstance(delta, dict) else None
        if kind == "text_delta":
            yield TextDelta(text_of(delta, "text"))
        elif kind == "thinking_delta":
            yield ThinkingDelta(text_of(delta, "thinking"))
        elif kind == "signature_delta":
            yield ThinkingDelta(signature=text_of(delta, "signature"))
        elif kind == "input_json_delta":
            text, index = text_of(delta, "partial_json"), self.tool_calls.get(payload.get("index"))
            # A server tool's input (server_tool_use: web search…) is no call of the client's.
            yield OtherOutput(text) if index is None else ToolCallDelta(text, index=index)
        elif kind == "citations_delta":
            yield OtherOutput()


async def parse_stream(response: httpx2.Response) -> AsyncIterator[StreamEvent]:
    stream = MessageStream()
    async for event, data in sse_events(response):
        for item in stream.read(event, json_data(data)):
            yield item
        if stream.ended:
            return
    raise cut_off()


async def relay_stream(events: AsyncIterator[tuple[str, str]]) -> AsyncIterator[StreamEvent]:
    """A streamed Messages answer for a gateway client, from its (event name, data) pairs:
    what each event says, then the event as Anthropic's SSE. An error event is not passed on (its
    text is the provider's): it raises, and the gateway ends the answer with its own."""
    stream = MessageStream()
    async for event, data in events:
        for item in stream.read(event, json_data(data)):
            yield item
        yield Raw(sse_event(event, data))
        if stream.ended:
            return
    raise cut_off()


def message_events(message: Mapping[str, Any]) -> Iterator[StreamEvent]:
    """The output, usage and end of a whole (not streamed) Messages answer."""
    content = message.get("content")
    if message.get("type") != "message" or not isinstance(content, list):
        raise malformed()
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            yield TextDelta(text_of(block, "text"))
        elif kind == "thinking":
            yield OtherOutput(text_of(block, "thinking"))
        elif kind == "tool_use":
            yield OtherOutput(json.dumps(block.get("input"), ensure_ascii=False))
    usage = message.get("usage")
    counts = dict(usage) if isinstance(usage, dict) else {}
    yield usage_of(counts, token_count(counts, "output_tokens"))
    yield Finish(stop_reason_of(message.get("stop_reason")))


ANTHROPIC = ProviderType(
    slug="anthropic",
    key_env_var="ANTHROPIC_API_KEY",
    label="Anthropic",
    default_base_url="https://api.anthropic.com",
    base_url_example="https://api.anthropic.com",
    region_required=False,
    temperature_max=1,
    general_fields=frozenset({"max_output_tokens"}),
    refused_fields={
        name: f"Anthropic's API version {API_VERSION} no longer takes {GENERAL_LABELS[name]}."
        for name in REMOVED_IN_API_VERSION
    },
    client=AnthropicClient,
    options=OPTIONS,
    rules=api_rules,
    catalog="anthropic",
    seeded_models=("claude-opus-4-7", "claude-sonnet-4-6", "claude-haiku-4-5"),
    seeded_default="claude-sonnet-4-6",
)


# --- Translation: Anthropic's Messages for any model, and any API for Claude ---------------


def checked_fields(
    body: Mapping[str, Any], where: str, read: Sequence[str], dropped: Sequence[str] = ()
) -> None:
    """Refuses a set field of `body` that is neither read nor dropped as advisory; null is
    taken as not set (the SDK's Optional fields)."""
    for name, value in body.items():
        if value is not None and name not in read and name not in dropped:
            raise field_refused(f"{where}{name}", NO_COUNTERPART)


def string_at(body: Mapping[str, Any], name: str, where: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise field_refused(f"{where}{name}", "must be a string.")
    return value


def whole_at(body: Mapping[str, Any], name: str, *, least: int = 0) -> int | None:
    value = body.get(name)
    if value is not None and not (is_whole(value) and value >= least):
        raise field_refused(name, f"must be a whole number of at least {least}.")
    return value


def number_at(body: Mapping[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is not None and not is_number(value):
        raise field_refused(name, "must be a number.")
    return value


# The Messages fields a translation reads (the SDK's MessageCreateParams), and those dropped
# as advisory (the README's table): metadata and the service tier ask nothing of the answer,
# and cache_control (here and on any block or tool) is a hint to Anthropic's own cache. Any
# other field (output_config.format, container, mcp_servers, context_management,
# inference_geo, speed…) is refused by name.
READ_FIELDS = (
    "model",
    "messages",
    "system",
    "max_tokens",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "thinking",
    "output_config",
    "tools",
    "tool_choice",
)
ADVISORY_FIELDS = ("metadata", "service_tier", "cache_control")
# The content blocks of each role that have a counterpart, and each one's fields (the SDK's
# *_block_param.py). redacted_thinking is read to be dropped: it is only valid at Anthropic.
BLOCK_FIELDS = {
    "user": {
        "text": ("type", "text", "citations"),
        "image": ("type", "source"),
        "tool_result": ("type", "tool_use_id", "content", "is_error"),
    },
    "assistant": {
        "text": ("type", "text", "citations"),
        "thinking": ("type", "thinking", "signature"),
        "redacted_thinking": ("type", "data"),
        "tool_use": ("type", "id", "name", "input"),
    },
}
RESULT_BLOCKS = ("text", "image")
TOOL_FIELDS = ("type", "name", "description", "input_schema")
# thinking.budget_tokens up to these asks for this effort (the README's table); above, high.
BUDGET_EFFORTS = ((4096, "low"), (16384, "medium"))
TOOL_CHOICES = ("auto", "any", "tool", "none")


class ReadConversation:
    """One client's Messages body read into a Conversation, field by field; each refusal
    names the field as the client sent it (messages[0].content[2].type)."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        # The tool_use blocks of earlier assistant messages: the tool's name by call id.
        self.calls: dict[str, str] = {}

    def conversation(self) -> Conversation:
        body = self.body
        checked_fields(body, "", READ_FIELDS, ADVISORY_FIELDS)
        if body.get("stream") not in (None, True, False):
            raise field_refused("stream", "must be true or false.")
        params = {
            name: param
            for name, param in (
                ("max_tokens", "max_tokens"),
                ("stop", "stop_sequences"),
                ("temperature", "temperature"),
                ("top_p", "top_p"),
                ("top_k", "top_k"),
                ("tools", "tools"),
                ("tool_choice", "tool_choice"),
            )
            if body.get(param) is not None
        }
        tools = self.tools()
        choice = self.tool_choice(tools)
        effort = self.effort()
        return Conversation(
            system=self.system(),
            messages=self.messages(),
            streamed=body.get("stream") is True,
            tools=tools,
            tool_choice=choice[0],
            tool_name=choice[1],
            parallel_tool_calls=choice[2],
            max_tokens=whole_at(body, "max_tokens", least=1),
            stop=self.stop_sequences(),
            temperature=number_at(body, "temperature"),
            top_p=number_at(body, "top_p"),
            top_k=whole_at(body, "top_k"),
            effort=effort,
            # Thinking asked for, whichever field said it: the OpenAI side drops it on a
            # model that doesn't reason (the README's table).
            params=params | ({"effort": "thinking"} if effort is not None else {}),
        )

    def system(self) -> str:
        system = self.body.get("system")
        if system is None or isinstance(system, str):
            return system or ""
        if not isinstance(system, list):
            raise field_refused("system", "must be a string or a list of text blocks.")
        texts = []
        for index, block in enumerate(system):
            where = f"system[{index}]"
            if not isinstance(block, dict) or block.get("type") != "text":
                raise field_refused(f"{where}.type", "must be text.")
            texts.append(self.text(block, where))
        return "\n\n".join(texts)

    def messages(self) -> tuple[Message, ...]:
        messages = self.body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise field_refused("messages", "must be a list of messages.")
        read = []
        for index, message in enumerate(messages):
            where = f"messages[{index}]"
            if not isinstance(message, dict):
                raise field_refused(where, "must be an object.")
            checked_fields(message, f"{where}.", ("role", "content"))
            role = message.get("role")
            if not isinstance(role, str) or role not in BLOCK_FIELDS:
                raise field_refused(f"{where}.role", "must be user or assistant.")
            parts = self.content(message.get("content"), role, where)
            if parts:  # one left empty held only redacted thinking or empty text
                read.append(Message(role, parts))
        if not read:  # else the target gets no turns, and its 400 names no field
            raise field_refused("messages", "must hold something to send: every message is empty.")
        return tuple(read)

    def content(self, content: Any, role: str, where: str) -> tuple[Part, ...]:
        if isinstance(content, str):
            return (content,) if content else ()
        if not isinstance(content, list):
            raise field_refused(f"{where}.content", "must be a string or a list of blocks.")
        parts = (
            self.block(block, role, f"{where}.content[{index}]")
            for index, block in enumerate(content)
        )
        return tuple(part for part in parts if part is not None)

    def block(self, block: Any, role: str, where: str) -> Part | None:
        kind = block.get("type") if isinstance(block, dict) else None
        fields = BLOCK_FIELDS[role].get(kind) if isinstance(kind, str) else None
        if fields is None:
            raise field_refused(f"{where}.type", NO_COUNTERPART)
        checked_fields(block, f"{where}.", fields, ("cache_control",))
        if kind == "text":
            return self.text(block, where) or None
        if kind == "image":
            return self.image(block, where)
        if kind == "tool_result":
            return self.tool_result(block, where)
        if kind == "thinking":
            return Thinking(
                string_at(block, "thinking", f"{where}."),
                string_at(block, "signature", f"{where}."),
            )
        if kind == "tool_use":
            call_id = string_at(block, "id", f"{where}.")
            name = self.calls[call_id] = string_at(block, "name", f"{where}.")
            arguments = block.get("input")
            if not isinstance(arguments, dict):
                raise field_refused(f"{where}.input", "must be an object.")
            return ToolCall(call_id, name, json.dumps(arguments, ensure_ascii=False))
        return None  # redacted_thinking

    def text(self, block: Mapping[str, Any], where: str) -> str:
        if block.get("citations"):
            raise field_refused(f"{where}.citations", NO_COUNTERPART)
        return string_at(block, "text", f"{where}.")

    def image(self, block: Mapping[str, Any], where: str) -> Image:
        source = block.get("source")
        kind = source.get("type") if isinstance(source, dict) else None
        if kind == "base64":
            checked_fields(source, f"{where}.source.", ("type", "media_type", "data"))
            data = string_at(source, "data", f"{where}.source.")
            try:
                base64.b64decode(data, validate=True)
            except ValueError:  # binascii.Error, or a character outside ASCII
                raise field_refused(f"{where}.source.data", "must be base64 data.") from None
            media_type = string_at(source, "media_type", f"{where}.source.")
            return Image(media_type=media_type, data=data)
        if kind == "url":
            checked_fields(source, f"{where}.source.", ("type", "url"))
            url = string_at(source, "url", f"{where}.source.")
            if not url.startswith(("https://", "http://")):
                raise field_refused(f"{where}.source.url", "must be an http or https URL.")
            return Image(url=url)
        raise field_refused(f"{where}.source.type", NO_COUNTERPART)

    def tool_result(self, block: Mapping[str, Any], where: str) -> ToolResult:
        call_id = string_at(block, "tool_use_id", f"{where}.")
        if call_id not in self.calls:
            raise field_refused(
                f"{where}.tool_use_id", "names no tool_use of an earlier assistant message."
            )
        if block.get("is_error") not in (None, True, False):
            raise field_refused(f"{where}.is_error", "must be true or false.")
        content = block.get("content")
        if content is None or isinstance(content, str):
            parts: tuple[str | Image, ...] = (content,) if content else ()
        elif isinstance(content, list):
            parts = tuple(
                self.result_part(item, f"{where}.content[{index}]")
                for index, item in enumerate(content)
            )
        else:
            raise field_refused(f"{where}.content", "must be a string or a list of blocks.")
        return ToolResult(call_id, self.calls[call_id], parts, block.get("is_error") is True)

    def result_part(self, block: Any, where: str) -> str | Image:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in RESULT_BLOCKS:
            raise field_refused(f"{where}.type", NO_COUNTERPART)
        checked_fields(block, f"{where}.", BLOCK_FIELDS["user"][kind], ("cache_control",))
        return self.text(block, where) if kind == "text" else self.image(block, where)

    def tools(self) -> tuple[Tool, ...]:
        tools = self.body.get("tools")
        if tools is None:
            return ()
        if not isinstance(tools, list):
            raise field_refused("tools", "must be a list of tools.")
        read = []
        for index, tool in enumerate(tools):
            where = f"tools[{index}]"
            # A typed tool (web_search_…, bash_…, text_editor_…) runs at Anthropic's servers.
            if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
                raise field_refused(where, "a server tool has no counterpart on this model.")
            checked_fields(tool, f"{where}.", TOOL_FIELDS, ("cache_control",))
            schema = tool.get("input_schema")
            if not isinstance(schema, dict):
                raise field_refused(f"{where}.input_schema", "must be an object.")
            description = tool.get("description")
            if description is not None and not isinstance(description, str):
                raise field_refused(f"{where}.description", "must be a string.")
            read.append(Tool(string_at(tool, "name", f"{where}."), description or "", schema))
        return tuple(read)

    def tool_choice(self, tools: tuple[Tool, ...]) -> tuple[ToolChoice, str, bool]:
        """The choice, the tool it names, and whether the model may call several at once."""
        choice = self.body.get("tool_choice")
        if choice is None:
            return "auto", "", True
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind not in TOOL_CHOICES:
            raise field_refused("tool_choice.type", f"must be one of: {', '.join(TOOL_CHOICES)}.")
        checked_fields(choice, "tool_choice.", ("type", "name", "disable_parallel_tool_use"))
        name = string_at(choice, "name", "tool_choice.") if kind == "tool" else ""
        if kind == "tool" and name not in {tool.name for tool in tools}:
            raise field_refused("tool_choice.name", "names no tool of the request.")
        single = choice.get("disable_parallel_tool_use")
        if single not in (None, True, False):
            raise field_refused("tool_choice.disable_parallel_tool_use", "must be true or false.")
        return kind, name, single is not True

    def stop_sequences(self) -> tuple[str, ...]:
        stop = self.body.get("stop_sequences")
        if stop is None:
            return ()
        if not isinstance(stop, list) or not all(isinstance(item, str) for item in stop):
            raise field_refused("stop_sequences", "must be a list of strings.")
        return tuple(stop)

    def effort(self) -> Effort | None:
        """How hard to think, in OpenAI's words, from thinking and output_config.effort."""
        config = self.body.get("output_config")
        if config is not None and not isinstance(config, dict):
            raise field_refused("output_config", "must be an object.")
        config = config or {}
        checked_fields(config, "output_config.", ("effort",))
        effort = config.get("effort")
        if effort is not None and effort not in EFFORT.choices:
            raise field_refused(
                "output_config.effort", f"must be one of: {', '.join(EFFORT.choices)}."
            )
        thinking = self.body.get("thinking")
        if thinking is None:
            return effort
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind not in THINKING_MODES:
            raise field_refused("thinking.type", f"must be one of: {', '.join(THINKING_MODES)}.")
        checked_fields(thinking, "thinking.", ("type", "budget_tokens", "display"))
        # Thinking is shown as it comes: "omitted" has no counterpart.
        if thinking.get("display") not in (None, "summarized"):
            raise field_refused("thinking.display", NO_COUNTERPART)
        if kind == "disabled":
            return "none"
        if kind == "adaptive":
            return effort or "medium"
        budget = thinking.get("budget_tokens")
        if not is_whole(budget) or budget < THINKING_BUDGET_TOKENS.min:
            raise field_refused(
                "thinking.budget_tokens", "must be a whole number of at least 1024."
            )
        return next((level for most, level in BUDGET_EFFORTS if budget <= most), "high")


# Why a translated answer stopped, as Messages says it (the README's table); a complete
# answer stopped for its tool calls where it made some, else at the end of its turn.
STOP_REASON_NAMES = {
    StopReason.MAX_TOKENS: "max_tokens",
    StopReason.CONTEXT_FULL: "model_context_window_exceeded",
    StopReason.REFUSED: "refusal",
    StopReason.BLOCKED: "refusal",
    StopReason.CONTENT_FILTER: "refusal",
    StopReason.PAUSED: "pause_turn",
}


def usage_counts(usage: Usage | None) -> dict[str, int]:
    """A translated answer's usage as Messages counts it: input_tokens leaves out the cache
    reads and writes; a count the provider did not report is 0."""
    read = (usage and usage.cache_read_tokens) or 0
    written = (usage and usage.cache_write_tokens) or 0
    return {
        "input_tokens": max(0, ((usage and usage.input_tokens) or 0) - read - written),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "output_tokens": (usage and usage.output_tokens) or 0,
    }


class MessageWriter:
    """A translated answer's events as the Messages events (their JSON payloads) a stream of
    Anthropic's says them in: a message_start first, content blocks opened and closed as the
    answer goes from text to thinking to tool calls, the stop reason and usage at its end."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.started = False
        self.blocks = 0  # the content blocks opened so far
        # The open block's kind (text, thinking, tool_use) and, of a tool call, its index.
        self.open: tuple[str, int] | None = None
        self.usage: Usage | None = None
        self.called_tools = False

    def write(self, event: StreamEvent) -> list[dict[str, Any]]:
        payloads = [] if self.started else [self.message_start()]
        self.started = True
        if isinstance(event, TextDelta) and event.text:
            payloads += self.opened(("text", 0), {"type": "text", "text": ""})
            payloads.append(self.delta({"type": "text_delta", "text": event.text}))
        elif isinstance(event, ThinkingDelta) and (event.text or event.signature):
            block = {"type": "thinking", "thinking": "", "signature": ""}
            payloads += self.opened(("thinking", 0), block)
            if event.text:
                payloads.append(self.delta({"type": "thinking_delta", "thinking": event.text}))
            if event.signature:
                # A signature seals its block: more thinking is another block.
                payloads.append(
                    self.delta({"type": "signature_delta", "signature": event.signature})
                )
                payloads += self.closed()
        elif isinstance(event, ToolCallStart):
            self.called_tools = True
            payloads += self.closed()
            block = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            payloads += self.opened(("tool_use", event.index), block)
        elif isinstance(event, ToolCallDelta) and event.text:
            if self.open != ("tool_use", event.index):  # its block is closed, or never began
                raise malformed()
            payloads.append(self.delta({"type": "input_json_delta", "partial_json": event.text}))
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Finish):
            payloads += self.closed()
            stop_reason = STOP_REASON_NAMES.get(event.reason) or (
                "tool_use" if self.called_tools else "end_turn"
            )
            payloads += [
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": usage_counts(self.usage),
                },
                {"type": "message_stop"},
            ]
        return payloads

    def message_start(self) -> dict[str, Any]:
        message = {
            "id": f"msg_{uuid.uuid4().hex}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_counts(None),
        }
        return {"type": "message_start", "message": message}

    def opened(self, kind: tuple[str, int], block: dict[str, Any]) -> list[dict[str, Any]]:
        """The events that open a block of this kind, unless one is open: none, or the open
        block's end and this one's start."""
        if self.open == kind:
            return []
        payloads = self.closed()
        self.open = kind
        self.blocks += 1
        return [
            *payloads,
            {"type": "content_block_start", "index": self.index, "content_block": block},
        ]

    def closed(self) -> list[dict[str, Any]]:
        if self.open is None:
            return []
        self.open = None
        return [{"type": "content_block_stop", "index": self.index}]

    def delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": self.index, "delta": delta}

    @property
    def index(self) -> int:
        """The index of the last block opened."""
        return self.blocks - 1


# Where each delta's text goes in its block.
DELTA_FIELDS = {
    "text_delta": ("text", "text"),
    "thinking_delta": ("thinking", "thinking"),
    "signature_delta": ("signature", "signature"),
    "input_json_delta": ("partial_json", "input"),
}


def whole_message(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """A whole (not streamed) answer: the message its Messages events say, a tool call's input
    read from its JSON fragments (malformed() where they are no JSON object)."""
    message = dict(payloads[0]["message"])
    content: list[dict[str, Any]] = []
    pieces: dict[str, list[str]] = {}
    for payload in payloads[1:]:
        kind = payload["type"]
        if kind == "content_block_start":
            content.append(dict(payload["content_block"]))
            pieces = {}
        elif kind == "content_block_delta":
            delta = payload["delta"]
            source, target = DELTA_FIELDS[delta["type"]]
            pieces.setdefault(target, []).append(delta[source])
        elif kind == "content_block_stop":
            block = content[-1]
            if block["type"] == "tool_use":
                block["input"] = tool_input("".join(pieces.pop("input", [])) or "{}")
            for target, texts in pieces.items():
                block[target] = "".join(texts)
        elif kind == "message_delta":
            message |= payload["delta"] | {"usage": payload["usage"]}
    return {**message, "content": content}


def tool_input(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments)
    except (ValueError, RecursionError):
        raise malformed() from None
    if not isinstance(value, dict):
        raise malformed()
    return value


# What Claude's settings are refused on, as the Conversation's fields (a refusal names the
# client's own field, from Conversation.params).
SETTING_FIELDS = {
    "max_output_tokens": "max_tokens",
    "thinking": "effort",
    "thinking_budget_tokens": "effort",
    "effort": "effort",
}
# Our words to a client for what its effort makes of Claude's thinking options that the
# model refuses (the rules' own speak to the admin).
EFFORT_REFUSALS = {"thinking": "this model doesn't reason: ask no effort, or none."}
SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "presence_penalty", "frequency_penalty")
# The image types Claude reads (the SDK's Base64ImageSourceParam).
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def conversation_options(
    identifier: str, conversation: Conversation, options: Mapping[str, Any]
) -> dict[str, Any]:
    """Claude's options (as stored) for a translated request, on Anthropic's API or Bedrock's:
    the client's effort as Claude's thinking (effort_options), the admin's options where it
    asked none; thinking off where Claude refuses it (Anthropic's extended-thinking docs, and
    AWS's for Claude): a tool forced, or a last tool call without its signed thinking. A
    forced tool wins over the client's effort: the call it must make is kept, its thinking
    lost (the effort itself stays where the model takes one)."""
    options = effort_options(identifier, conversation.effort, options)
    forced = bool(conversation.tools) and conversation.tool_choice in ("any", "tool")
    thinking = thinking_mode(options) in ("enabled", "adaptive")
    if thinking and (forced or not thinking_replayable(conversation.messages)):
        return thinking_off(identifier, options)
    return options


def thinking_room(
    max_tokens: int | None, budget: int | None, conversation: Conversation, ceiling: int | None
) -> int | None:
    """Max tokens raised, within `ceiling`, to hold a thinking budget (part of them) and
    after it the answer the client asked for (else DEFAULT_MAX_TOKENS); as they are where
    they already hold the budget. RequestRefused naming the client's effort where the
    ceiling leaves its budget no room; the admin's budget is left to the rules."""
    if budget is None or (max_tokens or 0) > budget:
        return max_tokens
    if conversation.effort is not None and ceiling is not None and ceiling <= budget:
        raise field_refused(
            conversation.param("effort"),
            f"thinking at effort {conversation.effort} takes {budget} tokens, and this model "
            f"writes at most {ceiling}: ask a lower effort.",
        )
    room = budget + (conversation.max_tokens or DEFAULT_MAX_TOKENS)
    return min(room, ceiling) if ceiling else room


def converse_body(model: ModelSettings, conversation: Conversation) -> dict[str, Any]:
    """The Messages request for a client's Conversation on this Claude model: the options of
    conversation_options, the admin's cap on max_tokens (raised for a thinking budget by
    thinking_room), checked as the model's settings are. Raises RequestRefused naming the
    client's field."""
    options = conversation_options(model.identifier, conversation, model.options)
    max_tokens = answer_cap(model, conversation, sent_options(options)["thinking_budget_tokens"])
    # The client's sampling too: the API version refuses it, in the type's words.
    general = {
        "identifier": model.identifier,
        "max_output_tokens": max_tokens,
        **{name: getattr(conversation, name) for name in SAMPLING_FIELDS},
    }
    options, errors = ANTHROPIC.check_model(general, options)
    for name, messages in errors.items():
        field = SETTING_FIELDS.get(name, name)
        message = EFFORT_REFUSALS.get(name) if conversation.effort else None
        raise field_refused(conversation.param(field), message or " ".join(messages))
    body: dict[str, Any] = {
        "model": model.identifier,
        "max_tokens": max_tokens,
        "messages": claude_messages(conversation),
        "stream": True,
    }
    set_if(body, "system", conversation.system or None)
    if conversation.tools:
        body["tools"] = [
            {
                "name": tool.name,
                **({"description": tool.description} if tool.description else {}),
                # Claude requires an object schema; OpenAI's functions may leave it out.
                "input_schema": {"type": "object", **tool.parameters},
            }
            for tool in conversation.tools
        ]
        set_if(body, "tool_choice", tool_choice_param(conversation))
    if conversation.stop:
        body["stop_sequences"] = list(conversation.stop)
    set_options(body, OPTIONS, sent_options(options))
    return body


def answer_cap(model: ModelSettings, conversation: Conversation, budget: int | None) -> int:
    """max_tokens: the client's, else the admin's cap, else the API's default; at most the
    answer's ceiling (the admin's cap, else the model's output limit). With a thinking
    budget, raised by thinking_room within the ceiling."""
    ceiling = ANTHROPIC.answer_ceiling(model)
    asked = conversation.max_tokens or model.max_output_tokens or DEFAULT_MAX_TOKENS
    max_tokens = min(asked, ceiling) if ceiling else asked
    return thinking_room(max_tokens, budget, conversation, ceiling) or DEFAULT_MAX_TOKENS


def claude_messages(conversation: Conversation) -> list[dict[str, Any]]:
    """The Conversation's messages as Messages takes them: consecutive turns of one role in
    one message (the results of one answer's calls together), a user's tool results before
    its other blocks, no empty text (both refused by the API), thinking only where signed."""
    field = conversation.param("messages")
    turns: list[dict[str, Any]] = []
    for message in conversation.messages:
        blocks = [block for part in message.parts if (block := content_block(part, field))]
        if not blocks:
            continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": message.role, "content": blocks})
    for turn in turns:
        turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return turns


def content_block(part: Part, field: str) -> dict[str, Any] | None:
    if isinstance(part, str):
        return {"type": "text", "text": part} if part else None
    if isinstance(part, Image):
        return image_block(part, field)
    if isinstance(part, Thinking):
        # Unsigned thinking is another provider's (the README's table): Claude refuses it.
        if not part.signature:
            return None
        return {"type": "thinking", "thinking": part.text, "signature": part.signature}
    if isinstance(part, ToolCall):
        arguments = tool_arguments(part.arguments, field)
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": arguments}
    blocks = [
        image_block(item, field) if isinstance(item, Image) else {"type": "text", "text": item}
        for item in part.content
        if item
    ]
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.call_id}
    set_if(block, "content", blocks or None)
    set_if(block, "is_error", part.is_error or None)
    return block


def image_block(image: Image, field: str) -> dict[str, Any]:
    if image.url:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    if image.media_type not in IMAGE_TYPES:
        raise field_refused(field, "Claude reads JPEG, PNG, GIF and WebP images only.")
    source = {"type": "base64", "media_type": image.media_type, "data": image.data}
    return {"type": "image", "source": source}


def tool_choice_param(conversation: Conversation) -> dict[str, Any] | None:
    """Messages' tool_choice; None for the API's default (auto, calls in parallel)."""
    choice: dict[str, Any] = {"type": conversation.tool_choice}
    if conversation.tool_choice == "tool":
        choice["name"] = conversation.tool_name
    if not conversation.parallel_tool_calls and conversation.tool_choice != "none":
        choice["disable_parallel_tool_use"] = True
    return None if choice == {"type": "auto"} else choice


class MessagesApi:
    """The Messages side of a translation (contract.ClientApi): an Anthropic client's request
    read into a Conversation, and a translated answer written as Messages events, or one
    message."""

    def conversation(self, request: Relay) -> Conversation:
        return ReadConversation(request.body).conversation()

    async def answer(
        self, events: AsyncIterator[StreamEvent], request: Relay
    ) -> AsyncIterator[StreamEvent]:
        writer = MessageWriter(str(request.body.get("model") or ""))
        said: list[dict[str, Any]] = []  # a whole answer's events, put together at its end
        finished = False
        async with aclosing(events) as source:
            async for event in source:
                yield event
                for payload in writer.write(event):
                    if request.streamed:
                        yield Raw(sse_event(payload["type"], json.dumps(payload)))
                    else:
                        said.append(payload)
                if isinstance(event, Finish):
                    finished = True
                    if not request.streamed:
                        yield Raw(json.dumps(whole_message(said)).encode())
        if not finished:  # a family ends its answer or raises: never a clean end
            raise cut_off()


MESSAGES_API = MessagesApi()
