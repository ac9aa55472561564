"""Anthropic's Messages API: options, rules, request mapping and stream parsing.

Bedrock runs the same Claude models and reuses the rules here, and the options it declares;
for the gateway, also the relayed Messages body (relay_body) and stream reader (relay_stream).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
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
    Message,
    OtherOutput,
    Raw,
    Relay,
    RelayApi,
    RemoteModel,
    StopReason,
    StreamEvent,
    TextDelta,
    Thinking,
    ToolCall,
    Usage,
)
from llmadmin.providers.errors import (
    RequestRefused,
    cut_off,
    error_kind,
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
        return {**rest, "thinking": "disabled"}
    version = claude_version(identifier)
    since = EFFORT_FROM.get(version.line, (0, 0)) if version else None
    if version and version.number >= ADAPTIVE_FROM and since and version.number >= since:
        return {**rest, "thinking": "adaptive", "effort": effort}
    return {**rest, "thinking": "enabled", "thinking_budget_tokens": EFFORT_BUDGETS[effort]}


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


def relay_body(model: ModelSettings, body: Mapping[str, Any]) -> dict[str, Any]:
    """A gateway client's Messages body for this model (Bedrock's too): the client's fields
    as sent, the model's id, max_tokens at most the admin's cap, and the admin's settings
    where the client set none (but one the client's own values make invalid: the admin's
    temperature with the client's thinking is left out). Raises RequestRefused, naming the
    field, where the client's values are ones the model's rules refuse: refused here, it
    costs nothing."""
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

    async def stream(self, model: ModelSettings, chat: ChatInput) -> AsyncIterator[StreamEvent]:
        async with self.open_stream(
            f"{self.base_url}/v1/messages", self.chat_body(model, chat)
        ) as response:
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


# The content deltas that are output but no answer text, each with the field of its text
# (the SDK's types/raw_content_block_delta.py): a tool call's input as JSON text, thinking; a
# signature and a citation are progress with no output of their own.
OTHER_OUTPUT = {
    "input_json_delta": "partial_json",
    "thinking_delta": "thinking",
    "signature_delta": None,
    "citations_delta": None,
}


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

    def read(self, event: str, payload: Mapping[str, Any]) -> Iterator[StreamEvent]:
        if event == "error":
            raise mid_stream_error(error_event_kind(payload))
        if event == "message_start":
            message = payload.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            self.counts = dict(usage) if isinstance(usage, dict) else {}
            # The input is known (and billed) from here: an answer cut short still has it.
            yield usage_of(self.counts, token_count(self.counts, "output_tokens"))
        elif event == "content_block_delta":
            delta = payload.get("delta")
            kind = delta.get("type") if isinstance(delta, dict) else None
            if kind == "text_delta":
                yield TextDelta(text_of(delta, "text"))
            elif kind in OTHER_OUTPUT:
                yield OtherOutput(text_of(delta, OTHER_OUTPUT[kind]) if OTHER_OUTPUT[kind] else "")
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


class MessagesApi:
    """The Messages side of a translation (contract.ClientApi): an Anthropic client's request
    read into a Conversation, and a translated answer written as Messages events, or one
    message."""

    def conversation(self, request: Relay) -> Conversation:
        raise NotImplementedError

    def answer(
        self, events: AsyncIterator[StreamEvent], request: Relay
    ) -> AsyncIterator[StreamEvent]:
        raise NotImplementedError


MESSAGES_API = MessagesApi()
