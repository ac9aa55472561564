"""The chat-completions family's side of a translated gateway request: an OpenAI client's
Chat Completions body read into the neutral Conversation (and what it refuses, by field),
a translated answer's events written as the chunks or the completion the client reads, and a
Conversation of a client of another API sent to a model of this family (converse), against
the loopback fake, which refuses what OpenAI refuses."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from llmadmin.providers import PROVIDER_TYPES
from llmadmin.providers.base import ModelSettings
from llmadmin.providers.contract import (
    Conversation,
    Finish,
    Image,
    Message,
    Raw,
    Relay,
    RelayApi,
    StopReason,
    StreamEvent,
    TextDelta,
    Thinking,
    ThinkingDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolResult,
    Usage,
)
from llmadmin.providers.errors import ProviderError, RequestRefused
from llmadmin.providers.openai import CHAT_COMPLETIONS_API, answer_events
from tests.providers.fakes import FAKES, fake_for, serve
from tests.providers.hostile import serve_hostile
from tests.providers.openai.fake import body_errors
from tests.providers.openai.scripted import ScriptedFake

HI = [{"role": "user", "content": "Hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALL = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
PNG = "iVBORw0KGgo="


def conversation(**body) -> Conversation:
    return CHAT_COMPLETIONS_API.conversation(
        Relay(RelayApi.CHAT_COMPLETIONS, {"model": "claude-sonnet-4-6", **body})
    )


# --- A client's body, read -------------------------------------------------------------------

# fmt: off
READ = [
    pytest.param(
        {"messages": HI},
        Conversation(system="", messages=(Message("user", ("Hi",)),)),
        id="a user's text",
    ),
    pytest.param(
        {"messages": [{"role": "system", "content": "Be brief."},
                      {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
                      *HI]},
        Conversation(system="Be brief.\n\nUse tools.", messages=(Message("user", ("Hi",)),)),
        id="system and developer messages joined by blank lines",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}},  # noqa: E501
            {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}]}]},
        Conversation(system="", messages=(Message("user", (
            "What is this?", Image(media_type="image/png", data=PNG),
            Image(url="https://example.com/a.jpg"))),)),
        id="images: a data URL and an http URL",
    ),
    pytest.param(
        {"messages": [*HI,
                      {"role": "assistant", "content": "Let me look.", "tool_calls": [CALL]},
                      {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
                      {"role": "user", "content": "And tomorrow?"}],
         "tools": [WEATHER]},
        Conversation(
            system="",
            messages=(
                Message("user", ("Hi",)),
                Message("assistant", ("Let me look.", ToolCall("call_1", "weather", "{}"))),
                Message("user", (ToolResult("call_1", "weather", ("Sunny",)), "And tomorrow?")),
            ),
            tools=(Tool("weather", "The weather in a city.",
                        WEATHER["function"]["parameters"]),),
            params={"tools": "tools"},
        ),
        id="a tool loop: results and the user's next words are one turn",
    ),
    pytest.param(
        {"messages": [*HI,
                      {"role": "assistant", "content": None, "tool_calls": [
                          CALL, {**CALL, "id": "call_2", "function": {"name": "time", "arguments": '{"tz": "UTC"}'}}]},  # noqa: E501
                      {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},  # noqa: E501
                      {"role": "tool", "tool_call_id": "call_1", "content": ""}],
         "tools": [{"type": "function", "function": {"name": "weather", "strict": True}},
                   {"type": "function", "function": {"name": "time"}}]},
        Conversation(
            system="",
            messages=(
                Message("user", ("Hi",)),
                Message("assistant", (ToolCall("call_1", "weather", "{}"),
                                      ToolCall("call_2", "time", '{"tz": "UTC"}'))),
                Message("user", (ToolResult("call_2", "time", ("noon",)),
                                 ToolResult("call_1", "weather", ()))),
            ),
            tools=(Tool("weather", "", {"type": "object", "properties": {}}),
                   Tool("time", "", {"type": "object", "properties": {}})),
            params={"tools": "tools"},
        ),
        id="parallel calls, results in any order, strict dropped, parameters defaulted",
    ),
    pytest.param(
        {"messages": [*HI, {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},  # noqa: E501
                      {"role": "user", "content": "Please."}, {"role": "user", "content": "Now."}]},
        Conversation(system="", messages=(Message("user", ("Hi",)), Message("assistant", ("No.",)),
                                          Message("user", ("Please.", "Now.")))),
        id="an earlier refusal is the assistant's text; a user's messages in a row one turn",
    ),
    pytest.param(
        {"messages": HI, "stream": True, "max_completion_tokens": 500, "stop": "END",
         "temperature": 0.5, "top_p": 1, "presence_penalty": 0.1, "frequency_penalty": -0.1,
         "reasoning_effort": "high", "tools": [WEATHER], "tool_choice": "required",
         "parallel_tool_calls": False},
        Conversation(
            system="", messages=(Message("user", ("Hi",)),), streamed=True,
            tools=(Tool("weather", "The weather in a city.", WEATHER["function"]["parameters"]),),
            tool_choice="any", parallel_tool_calls=False, max_tokens=500, stop=("END",),
            temperature=0.5, top_p=1, presence_penalty=0.1, frequency_penalty=-0.1,
            effort="high",
            params={"tools": "tools", "tool_choice": "tool_choice", "max_tokens": "max_completion_tokens",  # noqa: E501
                    "stop": "stop", "effort": "reasoning_effort", "temperature": "temperature",
                    "top_p": "top_p", "presence_penalty": "presence_penalty",
                    "frequency_penalty": "frequency_penalty",
                    "parallel_tool_calls": "parallel_tool_calls", "streamed": "stream"},
        ),
        id="every setting, each with the client's field name",
    ),
    pytest.param(
        {"messages": HI, "max_tokens": 100, "stop": ["a", "b"], "tools": [WEATHER],
         "tool_choice": {"type": "function", "function": {"name": "weather"}}},
        Conversation(
            system="", messages=(Message("user", ("Hi",)),),
            tools=(Tool("weather", "The weather in a city.", WEATHER["function"]["parameters"]),),
            tool_choice="tool", tool_name="weather", max_tokens=100, stop=("a", "b"),
            params={"tools": "tools", "tool_choice": "tool_choice", "max_tokens": "max_tokens",
                    "stop": "stop"},
        ),
        id="max_tokens, a stop list, a named tool",
    ),
    pytest.param(
        {"messages": HI, "tool_choice": "none", "user": "u-1", "seed": 7, "store": False,
         "metadata": {"a": "b"}, "service_tier": "auto", "stream_options": {"include_usage": True},
         "prompt_cache_key": "k", "safety_identifier": "s", "n": 1, "logprobs": False,
         "response_format": {"type": "text"}, "modalities": ["text"], "logit_bias": None},
        Conversation(system="", messages=(Message("user", ("Hi",)),), tool_choice="none",
                     params={"tool_choice": "tool_choice"}),
        id="advisory fields dropped, neutral values and nulls taken",
    ),
    pytest.param(
        {"messages": [{"role": "system", "content": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]},  # noqa: E501
                      {"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]}]},  # noqa: E501
        Conversation(system="Be brief.", messages=(Message("user", ("Hi",)),)),
        id="a text part's cache_control (Cline's) dropped",
    ),
]

REFUSED = [
    pytest.param({"messages": []}, "messages", id="no messages"),
    pytest.param({"messages": HI, "n": 2}, "n", id="n above 1"),
    pytest.param({"messages": HI, "logprobs": True}, "logprobs", id="logprobs"),
    pytest.param({"messages": HI, "top_logprobs": 2}, "top_logprobs", id="top logprobs"),
    pytest.param({"messages": HI, "logit_bias": {"50256": -100}}, "logit_bias", id="logit bias"),
    pytest.param({"messages": HI, "response_format": {"type": "json_object"}}, "response_format", id="json mode"),  # noqa: E501
    pytest.param({"messages": HI, "modalities": ["text", "audio"]}, "modalities", id="audio out"),
    pytest.param({"messages": HI, "audio": {"voice": "alloy", "format": "mp3"}}, "audio", id="audio"),  # noqa: E501
    pytest.param({"messages": HI, "prediction": {"type": "content", "content": "x"}}, "prediction", id="prediction"),  # noqa: E501
    pytest.param({"messages": HI, "web_search_options": {}}, "web_search_options", id="web search"),
    pytest.param({"messages": HI, "functions": [{"name": "f"}]}, "functions", id="legacy functions"),  # noqa: E501
    pytest.param({"messages": HI, "function_call": "auto"}, "function_call", id="legacy function call"),  # noqa: E501
    pytest.param({"messages": HI, "verbosity": "low"}, "verbosity", id="verbosity"),
    pytest.param({"messages": HI, "frobnicate": 1}, "frobnicate", id="an unknown field"),
    pytest.param({"messages": HI, "reasoning_effort": "extreme"}, "reasoning_effort", id="an unknown effort"),  # noqa: E501
    pytest.param({"messages": HI, "temperature": "hot"}, "temperature", id="a temperature of text"),
    pytest.param({"messages": HI, "max_completion_tokens": 0}, "max_completion_tokens", id="no tokens"),  # noqa: E501
    pytest.param({"messages": HI, "stop": [1]}, "stop", id="a stop that is no text"),
    pytest.param({"messages": HI, "stream": "yes"}, "stream", id="stream of text"),
    pytest.param({"messages": [{"role": "user", "content": [{"type": "text", "text": "Hear"}, {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]}]}, "messages[0].content[1].type", id="audio in"),  # noqa: E501
    pytest.param({"messages": [*HI, {"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]}, "messages[1].content[0].type", id="a file"),  # noqa: E501
    pytest.param({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/a.png"}}]}]}, "messages[0].content[0].image_url.url", id="an image at no http URL"),  # noqa: E501
    pytest.param({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": 7}]}]}, "messages[0].content[1].text", id="a text part of no text"),  # noqa: E501
    pytest.param({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:application/pdf;base64,JVBE"}}]}]}, "messages[0].content[0].image_url.url", id="a data URL of no image"),  # noqa: E501
    pytest.param({"messages": [*HI, {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "g", "input": "x"}}]}]}, "messages[1].tool_calls[0].type", id="a custom tool call"),  # noqa: E501
    pytest.param({"messages": [*HI, {"role": "tool", "tool_call_id": "call_9", "content": "x"}]}, "messages[1].tool_call_id", id="a result of no call"),  # noqa: E501
    pytest.param({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role", id="a legacy function message"),  # noqa: E501
    pytest.param({"messages": [*HI, {"role": "assistant", "content": "x", "audio": {"id": "a"}}]}, "messages[1].audio", id="an assistant's audio"),  # noqa: E501
    pytest.param({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}, *HI]}, "messages[0].content[0].type", id="an image in the system"),  # noqa: E501
    pytest.param({"messages": HI, "tools": [{"type": "custom", "custom": {"name": "g"}}]}, "tools[0].type", id="a custom tool"),  # noqa: E501
    pytest.param({"messages": HI, "tools": [{**WEATHER, "cache": True}]}, "tools[0].cache", id="an unknown field of a tool"),  # noqa: E501
    pytest.param({"messages": HI, "tools": [{"type": "function", "function": {"name": "f", "examples": []}}]}, "tools[0].function.examples", id="an unknown field of a function"),  # noqa: E501
    pytest.param({"messages": HI, "tools": [WEATHER], "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}}, "tool_choice", id="allowed tools"),  # noqa: E501
    pytest.param({"messages": HI, "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "time"}}}, "tool_choice.function.name", id="a choice of no tool"),  # noqa: E501
    pytest.param({"messages": HI, "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": ["weather"]}}}, "tool_choice.function.name", id="a choice's name a list"),  # noqa: E501
    pytest.param({"messages": HI, "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "weather", "strict": True}}}, "tool_choice.function.strict", id="an unknown field of the chosen function"),  # noqa: E501
    pytest.param({"messages": [*HI, {"role": "assistant", "tool_calls": [CALL]}, {"role": "tool", "tool_call_id": ["call_1"], "content": "x"}]}, "messages[2].tool_call_id", id="a result's call id a list"),  # noqa: E501
    pytest.param({"messages": [*HI, {"role": "assistant", "tool_calls": [{**CALL, "function": {**CALL["function"], "lang": "fr"}}]}]}, "messages[1].tool_calls[0].function.lang", id="an unknown field of a called function"),  # noqa: E501
    pytest.param({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "size": 2}}]}]}, "messages[0].content[0].image_url.size", id="an unknown field of an image's URL"),  # noqa: E501
    pytest.param({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,abc"}}]}]}, "messages[0].content[0].image_url.url", id="an image's data not base64"),  # noqa: E501
    pytest.param({"messages": [{"role": "system", "content": "Be brief."}]}, "messages", id="no turn: a system message only"),  # noqa: E501
    pytest.param({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": []}]}, "messages", id="no turn: messages of no content"),  # noqa: E501
]
# fmt: on


@pytest.mark.parametrize(("body", "read"), READ)
def test_a_clients_body_becomes_the_exact_conversation(body, read):
    assert conversation(**body) == read


@pytest.mark.parametrize(("body", "param"), REFUSED)
def test_what_has_no_counterpart_is_refused_naming_the_field(body, param):
    with pytest.raises(RequestRefused) as refused:
        conversation(**body)
    assert refused.value.param == param
    # Our words; the gateway's error names the field (errors.field_refused).
    assert str(refused.value) and not str(refused.value).startswith(param)


# --- A translated answer, written ------------------------------------------------------------


async def source(events: list, error: Exception | None = None) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event
    if error is not None:
        raise error


def answered(events: list, **body) -> tuple[list[StreamEvent], bytes]:
    """What the answer passes on (its events, Raw left out) and the bytes the client reads,
    ids and creation times normalised."""
    request = Relay(RelayApi.CHAT_COMPLETIONS, {"model": "my-claude", "messages": HI, **body})

    async def run() -> list[StreamEvent]:
        return [event async for event in CHAT_COMPLETIONS_API.answer(source(events), request)]

    out = asyncio.run(run())
    raw = b"".join(event.data for event in out if isinstance(event, Raw))
    return [event for event in out if not isinstance(event, Raw)], normalised(raw)


def normalised(raw: bytes) -> bytes:
    """An answer's bytes with its id and creation time made fixed."""
    raw = re.sub(rb'"chatcmpl-[0-9a-f]{32}"', b'"ID"', raw)
    return re.sub(rb'"created": \d+', b'"created": 0', raw)


def chunk(delta: dict | None = None, finish: str | None = None, **fields) -> bytes:
    choices = [{"index": 0, "delta": delta, "finish_reason": finish}] if delta is not None else []
    body = {"id": "ID", "object": "chat.completion.chunk", "created": 0, "model": "my-claude",
            "choices": choices, **fields}  # fmt: skip
    return f"data: {json.dumps(body)}\n\n".encode()


ROLE = chunk({"role": "assistant", "content": ""})
DONE = b"data: [DONE]\n\n"
USAGE = Usage(100, 20, cache_read_tokens=60, cache_write_tokens=10, reasoning_tokens=5)
USAGE_SHAPE = {
    "prompt_tokens": 100,
    "completion_tokens": 20,
    "total_tokens": 120,
    "prompt_tokens_details": {"cached_tokens": 60},
    "completion_tokens_details": {"reasoning_tokens": 5},
}
ZERO_USAGE = {
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "total_tokens": 0,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}
# A tool call whose arguments come in many fragments, after some thinking and text.
TOOL_LOOP = [
    ThinkingDelta("The user wants "),
    ThinkingDelta("the weather."),
    ThinkingDelta(signature="c2ln"),
    TextDelta("Let me look."),
    ToolCallStart(index=0, id="toolu_01", name="weather"),
    *(ToolCallDelta(part, index=0) for part in ('{"ci', 'ty": ', '"Par', 'is"}')),
    ToolCallStart(index=1, id="toolu_02", name="time"),
    ToolCallDelta("{}", index=1),
    USAGE,
    Finish(StopReason.COMPLETE),
]

# fmt: off
STREAMED = [
    pytest.param(
        [TextDelta("Hello"), TextDelta(" world"), Usage(12, 5), Finish(StopReason.COMPLETE)], {},
        ROLE + chunk({"content": "Hello"}) + chunk({"content": " world"}) + chunk({}, "stop") + DONE,  # noqa: E501
        id="text, usage not asked",
    ),
    pytest.param(
        [TextDelta("Hi"), USAGE, Finish(StopReason.COMPLETE)],
        {"stream_options": {"include_usage": True}},
        ROLE + chunk({"content": "Hi"}) + chunk({}, "stop") + chunk(usage=USAGE_SHAPE) + DONE,
        id="usage asked: cache and reasoning counts in OpenAI's shape",
    ),
    pytest.param(
        [Finish(StopReason.COMPLETE)], {"stream_options": {"include_usage": True}},
        ROLE + chunk({}, "stop") + chunk(usage=ZERO_USAGE) + DONE,
        id="no usage reported: zeros",
    ),
    pytest.param(
        TOOL_LOOP, {"stream_options": {"include_usage": True}},
        ROLE
        + chunk({"reasoning_content": "The user wants "})
        + chunk({"reasoning_content": "the weather."})
        + chunk({"content": "Let me look."})
        + chunk({"tool_calls": [{"index": 0, "id": "toolu_01", "type": "function",
                                 "function": {"name": "weather", "arguments": ""}}]})
        + b"".join(chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
                   for part in ('{"ci', 'ty": ', '"Par', 'is"}'))
        + chunk({"tool_calls": [{"index": 1, "id": "toolu_02", "type": "function",
                                 "function": {"name": "time", "arguments": ""}}]})
        + chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]})
        + chunk({}, "tool_calls") + chunk(usage=USAGE_SHAPE) + DONE,
        id="thinking, text and two tool calls in fragments",
    ),
    pytest.param(
        [ToolCallStart(index=0, id="toolu_01", name="now"), ToolCallDelta("", index=0),
         Finish(StopReason.COMPLETE)], {},
        ROLE
        + chunk({"tool_calls": [{"index": 0, "id": "toolu_01", "type": "function",
                                 "function": {"name": "now", "arguments": ""}}]})
        + chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})
        + chunk({}, "tool_calls") + DONE,
        id="a call without arguments: {} before the end",
    ),
    pytest.param(
        [TextDelta("Once upon"), Finish(StopReason.MAX_TOKENS)], {},
        ROLE + chunk({"content": "Once upon"}) + chunk({}, "length") + DONE,
        id="max tokens: length",
    ),
    pytest.param(
        [Finish(StopReason.CONTEXT_FULL)], {}, ROLE + chunk({}, "length") + DONE,
        id="context full: length",
    ),
    pytest.param(
        [Finish(StopReason.REFUSED)], {}, ROLE + chunk({}, "content_filter") + DONE,
        id="refused: content_filter",
    ),
    pytest.param(
        [Finish(StopReason.BLOCKED)], {}, ROLE + chunk({}, "content_filter") + DONE,
        id="blocked: content_filter",
    ),
    pytest.param(
        [Finish(StopReason.CONTENT_FILTER)], {}, ROLE + chunk({}, "content_filter") + DONE,
        id="content filter",
    ),
    pytest.param(
        [TextDelta("Part"), Finish(StopReason.PAUSED)], {},
        ROLE + chunk({"content": "Part"}) + chunk({}, "stop") + DONE, id="paused: stop",
    ),
    pytest.param(
        [Finish(StopReason.OTHER)], {}, ROLE + chunk({}, "stop") + DONE, id="other: stop",
    ),
]
# fmt: on


@pytest.mark.parametrize(("events", "body", "sent"), STREAMED)
def test_a_streamed_answer_is_the_exact_chunks_the_client_reads(events, body, sent):
    passed, raw = answered(events, stream=True, **body)
    assert passed == events
    assert raw == sent


# fmt: off
WHOLE = [
    pytest.param(
        [TextDelta("Hello"), TextDelta(" world"), Usage(12, 5), Finish(StopReason.COMPLETE)],
        {"role": "assistant", "content": "Hello world", "refusal": None}, "stop",
        {**ZERO_USAGE, "prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
        id="text",
    ),
    pytest.param(
        TOOL_LOOP,
        {"role": "assistant", "content": "Let me look.", "refusal": None,
         "reasoning_content": "The user wants the weather.",
         "tool_calls": [
             {"id": "toolu_01", "type": "function",
              "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
             {"id": "toolu_02", "type": "function", "function": {"name": "time", "arguments": "{}"}},  # noqa: E501
         ]},
        "tool_calls", USAGE_SHAPE,
        id="thinking, text and tool calls whole",
    ),
    pytest.param(
        [ToolCallStart(index=0, id="call_1", name="weather"), ToolCallDelta("{}", index=0),
         Finish(StopReason.MAX_TOKENS)],
        {"role": "assistant", "content": None, "refusal": None,
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "weather", "arguments": "{}"}}]},
        "length", ZERO_USAGE,
        id="no text: content null; cut at max tokens",
    ),
    pytest.param(
        [ToolCallStart(index=0, id="toolu_01", name="now"), Finish(StopReason.COMPLETE)],
        {"role": "assistant", "content": None, "refusal": None,
         "tool_calls": [{"id": "toolu_01", "type": "function",
                         "function": {"name": "now", "arguments": "{}"}}]},
        "tool_calls", ZERO_USAGE,
        id="a call without arguments: {}",
    ),
]
# fmt: on


@pytest.mark.parametrize(("events", "message", "finish", "usage"), WHOLE)
def test_a_whole_answer_is_one_exact_completion(events, message, finish, usage):
    passed, raw = answered(events)
    assert passed == events
    assert json.loads(raw) == {
        "id": "ID",
        "object": "chat.completion",
        "created": 0,
        "model": "my-claude",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }


@pytest.mark.parametrize(
    ("streamed", "sent"),
    [
        pytest.param(True, ROLE + chunk({"content": "Hel"}), id="streamed: what was said"),
        pytest.param(False, b"", id="whole: nothing"),
    ],
)
def test_a_provider_error_mid_answer_is_raised_and_the_source_closed(streamed, sent):
    closed = []

    async def failing() -> AsyncIterator[StreamEvent]:
        try:
            yield TextDelta("Hel")
            raise ProviderError("The provider reported an error mid-answer.")
        finally:
            closed.append(True)

    request = Relay(RelayApi.CHAT_COMPLETIONS, {"model": "my-claude", "stream": streamed})
    out: list[StreamEvent] = []

    async def run() -> None:
        async for event in CHAT_COMPLETIONS_API.answer(failing(), request):
            out.append(event)

    with pytest.raises(ProviderError):
        asyncio.run(run())
    # No finish chunk, no [DONE], no whole answer: never a clean end.
    assert normalised(b"".join(event.data for event in out if isinstance(event, Raw))) == sent
    assert closed == [True]


def test_a_source_that_ends_without_its_finish_is_no_clean_end():
    with pytest.raises(ProviderError):
        answered([TextDelta("Hel")], stream=True)


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_an_argument_fragment_of_a_call_that_never_began_is_raised(stream):
    with pytest.raises(ProviderError, match="malformed"):
        answered([ToolCallDelta("{}", index=3), Finish(StopReason.COMPLETE)], stream=stream)


def test_a_client_that_leaves_closes_the_source():
    closed = []

    async def endless() -> AsyncIterator[StreamEvent]:
        try:
            while True:
                yield TextDelta("x")
        finally:
            closed.append(True)

    request = Relay(RelayApi.CHAT_COMPLETIONS, {"model": "m", "messages": HI, "stream": True})

    async def run() -> None:
        answer = CHAT_COMPLETIONS_API.answer(endless(), request)
        await anext(answer)
        await answer.aclose()

    asyncio.run(run())
    assert closed == [True]


# --- A Conversation sent to a model of this family (converse) -----------------------------

KEY = "sk-OPENAI-TRANSLATION-0042"
PARAMETERS = WEATHER["function"]["parameters"]
ASKED = Message("user", ("What's the weather in Paris?",))
CALLED = Message(
    "assistant",
    (
        Thinking("The user wants the weather.", signature="c2lnbmVk"),
        "Let me check.",
        ToolCall("call_1", "weather", '{"city": "Paris"}'),
    ),
)
FIRST_STEP = Conversation(
    system="You are a coding agent.",
    messages=(ASKED,),
    streamed=True,
    tools=(Tool("weather", "The weather in a city.", PARAMETERS),),
    params={"tools": "tools"},
)
SECOND_STEP = replace(
    FIRST_STEP,
    messages=(ASKED, CALLED, Message("user", (ToolResult("call_1", "weather", ("Sunny",)),))),
)
SYSTEM = {"role": "system", "content": "You are a coding agent."}
USER = {"role": "user", "content": "What's the weather in Paris?"}
ASSISTANT = {
    "role": "assistant",
    "content": "Let me check.",
    "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
    ],
}  # fmt: skip
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "The weather in a city.",
            "parameters": PARAMETERS,
        },
    }
]
STREAMED_BODY = {"stream": True, "stream_options": {"include_usage": True}}
# A Gemini call's signed id, and the one OpenAI is sent in its place (call_ + its sha256's start).
LONG_ID = "call_sig_" + "A" * 120
SHORT_ID = "call_3025ce31c86dc2ff05aa0cb40f5daa7e"


def client_at(server, provider_type: str):
    base_url = server.url + FAKES[provider_type][1]
    return PROVIDER_TYPES[provider_type].connect(base_url=base_url, region="", api_key=KEY)


def conversed(provider_type: str, model: ModelSettings, conversation: Conversation):
    """The events of a converse() against the type's fake, and the body the fake was sent."""
    with serve(fake_for(provider_type, KEY)) as server:
        client = client_at(server, provider_type)

        async def run() -> list[StreamEvent]:
            return [event async for event in client.converse(model, conversation)]

        events = asyncio.run(run())
    return events, server.requests[-1].body


def test_a_two_step_tool_loop_through_converse():
    model = ModelSettings("gpt-5.5")
    called, first = conversed("openai", model, FIRST_STEP)
    answered_, second = conversed("openai", model, SECOND_STEP)

    assert first == {"model": "gpt-5.5", "messages": [SYSTEM, USER], "tools": TOOLS,
                     **STREAMED_BODY}  # fmt: skip
    assert called == [
        ToolCallStart(index=0, id="call_1", name="weather"),
        ToolCallDelta('{"city":', index=0),
        ToolCallDelta(' "Paris"}', index=0),
        Usage(12, 5),
        Finish(StopReason.COMPLETE),
    ]
    # The thinking of another family is dropped; the result answers the call right after it.
    assert second["messages"] == [
        SYSTEM,
        USER,
        ASSISTANT,
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
    ]
    assert answered_ == [
        TextDelta("The tool said: "),
        TextDelta("Sunny"),
        Usage(12, 5),
        Finish(StopReason.COMPLETE),
    ]


PNG_PART = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}

# fmt: off
SENT = [
    pytest.param(
        "openai", ModelSettings("gpt-5.5", max_output_tokens=32000),
        replace(
            SECOND_STEP,
            messages=(ASKED, CALLED, Message("user", (
                ToolResult("call_1", "weather", ("Sunny", Image("image/png", PNG)), is_error=True),
                "Thanks", Image(url="https://example.com/map.png")))),
            tool_choice="tool", tool_name="weather", parallel_tool_calls=False,
            max_tokens=64000, stop=("END",), effort="high",
            params={"tools": "tools", "effort": "thinking", "max_tokens": "max_tokens"},
        ),
        {"model": "gpt-5.5", **STREAMED_BODY, "tools": TOOLS,
         "messages": [SYSTEM, USER, ASSISTANT,
                      {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
                      {"role": "user", "content": [
                          PNG_PART, {"type": "text", "text": "Thanks"},
                          {"type": "image_url", "image_url": {"url": "https://example.com/map.png"}}]}],
         "tool_choice": {"type": "function", "function": {"name": "weather"}},
         "parallel_tool_calls": False, "stop": ["END"], "reasoning_effort": "high",
         "max_completion_tokens": 32000},
        id="openai: images of a result after it, a named tool, max tokens capped, effort",
    ),
    pytest.param(
        "azure", ModelSettings("gpt-5"),
        replace(FIRST_STEP, tool_choice="any", effort="none", params={"effort": "thinking"}),
        {"model": "gpt-5", **STREAMED_BODY, "messages": [SYSTEM, USER], "tools": TOOLS,
         "tool_choice": "required", "reasoning_effort": "minimal"},
        id="azure: thinking off is GPT-5's least effort, minimal",
    ),
    pytest.param(
        "openai-compat",
        ModelSettings("qwen", max_output_tokens=1000, temperature=0.3, options={"reasoning_effort": "low"}),  # noqa: E501
        replace(FIRST_STEP, tools=(), tool_choice="none", top_p=0.9, max_tokens=200),
        {"model": "qwen", **STREAMED_BODY, "messages": [SYSTEM, USER], "temperature": 0.3,
         "top_p": 0.9, "reasoning_effort": "low", "max_tokens": 200},
        id="compat: the admin's settings as defaults; the client's max tokens under the cap",
    ),
    pytest.param(
        "openrouter", ModelSettings("openai/gpt-5.5", options={"provider_order": ["openai"]}),
        replace(FIRST_STEP, top_k=40, effort="max", params={"effort": "output_config.effort"}),
        {"model": "openai/gpt-5.5", **STREAMED_BODY, "messages": [SYSTEM, USER],
         "tools": TOOLS, "top_k": 40, "reasoning": {"effort": "max"},
         "provider": {"order": ["openai"]}},
        id="openrouter: top K, reasoning.effort, the admin's routing",
    ),
    pytest.param(
        "vercel", ModelSettings("openai/gpt-5.5", max_output_tokens=4000),
        replace(FIRST_STEP, effort="max", params={"effort": "output_config.effort"}),
        {"model": "openai/gpt-5.5", **STREAMED_BODY, "messages": [SYSTEM, USER],
         "tools": TOOLS, "reasoning": {"effort": "xhigh"}, "max_tokens": 4000},
        id="vercel: effort max is its highest, xhigh; the admin's cap",
    ),
    pytest.param(
        "openai", ModelSettings("gpt-4.1"),
        replace(FIRST_STEP, effort="medium", params={"effort": "thinking"}),
        {"model": "gpt-4.1", **STREAMED_BODY, "messages": [SYSTEM, USER], "tools": TOOLS},
        id="openai: an anthropic client's thinking on a model that doesn't reason is dropped",
    ),
    pytest.param(
        "openai", ModelSettings("gpt-4o"), replace(FIRST_STEP, max_tokens=32_000),
        {"model": "gpt-4o", **STREAMED_BODY, "messages": [SYSTEM, USER], "tools": TOOLS,
         "max_completion_tokens": 16384},
        id="openai: max tokens above the model's output limit (no admin cap): lowered to it",
    ),
    pytest.param(
        "openai", ModelSettings("gpt-4.1"),
        replace(SECOND_STEP, messages=(
            ASKED, Message("assistant", (ToolCall(LONG_ID, "weather", "{}"),)),
            Message("user", (ToolResult(LONG_ID, "weather", ("Sunny",)),)))),
        {"model": "gpt-4.1", **STREAMED_BODY, "tools": TOOLS,
         "messages": [SYSTEM, USER,
                      {"role": "assistant", "content": None, "tool_calls": [
                          {"id": SHORT_ID, "type": "function",
                           "function": {"name": "weather", "arguments": "{}"}}]},
                      {"role": "tool", "tool_call_id": SHORT_ID, "content": "Sunny"}]},
        id="openai: a call id longer than its 40 characters is a short one derived from it",
    ),
]

NOT_SENT = [
    pytest.param("openai", "gpt-4.1", replace(FIRST_STEP, top_k=40, params={"top_k": "top_k"}), "top_k", id="openai: top K"),  # noqa: E501
    pytest.param("azure", "gpt-5", replace(FIRST_STEP, top_k=40, params={"top_k": "top_k"}), "top_k", id="azure: top K"),  # noqa: E501
    pytest.param("openai", "gpt-4.1", replace(FIRST_STEP, effort="high", params={"effort": "output_config.effort"}), "output_config.effort", id="an effort on a model that doesn't reason"),  # noqa: E501
    pytest.param("openai", "gpt-5.5", replace(FIRST_STEP, temperature=0.5, params={"temperature": "temperature"}), "temperature", id="a temperature a reasoning model refuses"),  # noqa: E501
    pytest.param("openrouter", "openai/gpt-5.5", replace(FIRST_STEP, stop=tuple("abcde"), params={"stop": "stop_sequences"}), "stop_sequences", id="five stop sequences"),  # noqa: E501
    pytest.param("openai", "gpt-4.1", replace(FIRST_STEP, tools=(Tool("mcp__" + "s" * 60, "", PARAMETERS),)), "tools", id="a tool name longer than 64 characters"),  # noqa: E501
    pytest.param("openai", "gpt-4.1", replace(FIRST_STEP, tools=(Tool("fs.read", "", PARAMETERS),)), "tools", id="a tool name with a dot"),  # noqa: E501
]
# fmt: on


@pytest.mark.parametrize(("provider_type", "model", "conversation", "body"), SENT)
def test_a_conversation_becomes_the_exact_request_the_provider_takes(
    provider_type, model, conversation, body
):
    events, sent = conversed(provider_type, model, conversation)
    assert sent == body
    # The fake took it, as the real API would (a refused body answers 400).
    assert events[-1] == Finish(StopReason.COMPLETE)


@pytest.mark.parametrize(("provider_type", "identifier", "conversation", "param"), NOT_SENT)
def test_what_the_model_refuses_is_refused_naming_the_clients_field(
    provider_type, identifier, conversation, param
):
    with serve(fake_for(provider_type, KEY)) as server:
        client = client_at(server, provider_type)

        async def run() -> None:
            async for _ in client.converse(ModelSettings(identifier), conversation):
                pass

        with pytest.raises(RequestRefused) as refused:
            asyncio.run(run())
    assert refused.value.param == param
    assert server.requests == []


def provider_chunk(delta: dict | None = None, finish: str | None = None, **fields) -> dict:
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1754000000,
            "model": "m", "choices": [choice], **fields}  # fmt: skip


def tool_delta(index: int, **call) -> dict:
    return provider_chunk({"tool_calls": [{"index": index, **call}]})


START = provider_chunk({"role": "assistant", "content": ""})
USAGE_CHUNK = provider_chunk(
    choices=[],
    usage={"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
           "prompt_tokens_details": {"cached_tokens": 3},
           "completion_tokens_details": {"reasoning_tokens": 2}},
)  # fmt: skip
READ_USAGE = Usage(10, 7, cache_read_tokens=3, reasoning_tokens=2)

# fmt: off
READ_STREAMS = [
    pytest.param(
        (START, provider_chunk({"reasoning": "Let me think."}),
         provider_chunk({"reasoning_content": "Hmm."}), provider_chunk({"content": "Hi"}),
         tool_delta(0, id="call_a", type="function", function={"name": "weather", "arguments": ""}),
         *(tool_delta(0, function={"arguments": part}) for part in ('{"ci', 'ty": ', '"Par', 'is"}')),  # noqa: E501
         tool_delta(1, id="call_b", type="function", function={"name": "time", "arguments": "{}"}),
         provider_chunk(finish="tool_calls"), USAGE_CHUNK, "[DONE]"),
        [ThinkingDelta("Let me think."), ThinkingDelta("Hmm."), TextDelta("Hi"),
         ToolCallStart(index=0, id="call_a", name="weather"),
         *(ToolCallDelta(part, index=0) for part in ('{"ci', 'ty": ', '"Par', 'is"}')),
         ToolCallStart(index=1, id="call_b", name="time"), ToolCallDelta("{}", index=1),
         READ_USAGE, Finish(StopReason.COMPLETE)],
        id="thinking, text, a call in many fragments, a call in one",
    ),
    pytest.param(
        (START, tool_delta(0, id="call_a", type="function", function={"name": "f", "arguments": "{"}),  # noqa: E501
         tool_delta(0, id="call_a", function={"arguments": "}"}), provider_chunk(finish="length"),
         "[DONE]"),
        [ToolCallStart(index=0, id="call_a", name="f"), ToolCallDelta("{", index=0),
         ToolCallDelta("}", index=0), Finish(StopReason.MAX_TOKENS)],
        id="a server that repeats the id: one start; length is max tokens",
    ),
    pytest.param(
        (provider_chunk({"refusal": "I can't."}), provider_chunk(finish="content_filter"), "[DONE]"),  # noqa: E501
        [TextDelta("I can't."), Finish(StopReason.CONTENT_FILTER)],
        id="a refusal is the answer's text (a client of another API has no field for it); content filter",  # noqa: E501
    ),
]
# fmt: on


@pytest.mark.parametrize(("chunks", "events"), READ_STREAMS)
def test_a_provider_stream_becomes_the_exact_neutral_events(chunks, events):
    assert scripted_events(chunks) == events


# fmt: off
READ_COMPLETIONS = [  # (a whole chat completion's message and finish reason, the events)
    pytest.param({"role": "assistant", "content": "Hi", "refusal": None}, "stop",
                 [TextDelta("Hi"), Finish(StopReason.COMPLETE)], id="text"),
    pytest.param({"role": "assistant", "content": None, "refusal": "I can't."}, "content_filter",
                 [TextDelta("I can't."), Finish(StopReason.CONTENT_FILTER)],
                 id="a refusal is the answer's text"),
]
# fmt: on


@pytest.mark.parametrize(("message", "finish", "events"), READ_COMPLETIONS)
def test_a_whole_completion_becomes_the_exact_neutral_events(message, finish, events):
    completion = {"choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    assert answer_events(RelayApi.CHAT_COMPLETIONS, completion) == events


def scripted_events(chunks: tuple) -> list[StreamEvent]:
    with serve(ScriptedFake("openai", KEY, chunks=chunks)) as server:
        client = client_at(server, "openai")

        async def run() -> list[StreamEvent]:
            return [event async for event in client.converse(ModelSettings("m"), FIRST_STEP)]

        return asyncio.run(run())


def test_a_call_its_server_gave_no_id_gets_one_of_ours():
    chunks = (
        tool_delta(0, function={"name": "f", "arguments": "{}"}),
        provider_chunk(finish="tool_calls"),
        "[DONE]",
    )
    start, *_ = scripted_events(chunks)
    assert re.fullmatch(r"call_[0-9a-f]{32}", start.id)


def test_a_call_id_another_api_would_refuse_is_given_one_it_takes():
    # Kimi K2's servers name a call "functions.<name>:<n>"; Anthropic's API refuses a
    # tool_use id outside [A-Za-z0-9_-], so an Anthropic client's next request would fail
    # wherever it goes to Claude (the README's rule for ids).
    chunks = (
        tool_delta(
            0, id="functions.f:0", type="function", function={"name": "f", "arguments": "{}"}
        ),
        provider_chunk(finish="tool_calls"),
        "[DONE]",
    )
    start, *_ = scripted_events(chunks)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", start.id)


@pytest.mark.parametrize(
    ("chunks", "error"),
    [
        pytest.param(
            (START, provider_chunk({"content": "Hel"}), {"error": {"message": "PROVIDER WORDS"}}),
            "The provider reported an error mid-answer.",
            id="an error event",
        ),
        pytest.param(
            (START, provider_chunk({"content": "Hel"})),
            "The provider's answer was cut off before it finished.",
            id="no [DONE]",
        ),
    ],
)
def test_a_stream_that_fails_mid_answer_raises_our_error(chunks, error):
    with pytest.raises(ProviderError) as raised:
        scripted_events(chunks)
    assert str(raised.value) == error


# What OpenAI answers 400 to of a request's tool messages; the fake does too.
# fmt: off
TOOL_SEQUENCES = [
    pytest.param([USER, {"role": "tool", "tool_call_id": "call_1", "content": "x"}], id="a result of no call"),  # noqa: E501
    pytest.param([USER, ASSISTANT, USER], id="a call not answered before the next message"),
    pytest.param([USER, ASSISTANT], id="a call not answered at the end"),
    pytest.param([USER, ASSISTANT, {"role": "tool", "tool_call_id": "call_1", "content": [PNG_PART]}], id="an image in a tool message"),  # noqa: E501
    pytest.param([USER, {**USER, "name": "bob", "weight": 1}], id="an unknown field"),
    pytest.param([USER, {**ASSISTANT, "tool_calls": [{**ASSISTANT["tool_calls"][0], "id": LONG_ID}]}, {"role": "tool", "tool_call_id": LONG_ID, "content": "x"}], id="a call id over 40 characters"),  # noqa: E501
]
# fmt: on


@pytest.mark.parametrize("messages", TOOL_SEQUENCES)
def test_the_fake_refuses_what_openai_refuses_of_tool_messages(messages):
    assert body_errors({"model": "gpt-5.5", "messages": messages}, "/v1/chat/completions")


def test_the_fake_refuses_a_tool_name_openai_refuses():
    tool = {"type": "function", "function": {"name": "mcp__" + "s" * 60}}
    assert body_errors(
        {"model": "gpt-4.1", "messages": [USER], "tools": [tool]}, "/v1/chat/completions"
    )


def test_the_official_sdk_reads_the_stream_and_the_completion_to_the_same_answer():
    # The openai SDK's own accumulation of the chunks (what the SDK's stream helpers do).
    _, raw = answered(TOOL_LOOP, stream=True, stream_options={"include_usage": True})
    state = ChatCompletionStreamState()
    for line in raw.decode().split("\n\n"):
        data = line.removeprefix("data: ")
        if data and data != "[DONE]":
            state.handle_chunk(ChatCompletionChunk.model_validate_json(data))
    streamed = state.get_final_completion()
    _, whole_raw = answered(TOOL_LOOP)
    whole = ChatCompletion.model_validate_json(whole_raw)

    for completion in (streamed, whole):
        [choice] = completion.choices
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content == "Let me look."
        calls = [(call.id, call.function.name, json.loads(call.function.arguments))
                 for call in choice.message.tool_calls]  # fmt: skip
        assert calls == [("toolu_01", "weather", {"city": "Paris"}), ("toolu_02", "time", {})]
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (100, 20)
        assert completion.usage.prompt_tokens_details.cached_tokens == 60


# --- A hostile provider on the translated path ----------------------------------------------

# The hostile chat-completions server's attacks on a chat answer (tests/providers/hostile.py),
# and whether the answer may end well.
HOSTILE = [
    pytest.param("midstream", None, False, id="an error event mid-answer"),
    pytest.param("echo_text", None, False, id="the model says the key"),
    pytest.param("finish", None, True, id="the key as finish reason"),
    pytest.param("not_json", None, False, id="the key as the stream"),
    pytest.param("odd_shapes", None, False, id="the key where a list belongs"),
    pytest.param("error_body", 400, False, id="the key in a 400"),
    pytest.param("error_body", 401, False, id="the key in a 401"),
    pytest.param("error_body", 500, False, id="the key in a 500"),
    pytest.param("reason_phrase", 200, True, id="the key as the reason phrase of a 200"),
]


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize(("mode", "status", "ends_well"), HOSTILE)
def test_a_hostile_provider_never_gets_the_key_into_a_translated_answer(
    mode, status, ends_well, streamed
):
    key = "sk-HOSTILE-" + secrets.token_hex(16)
    request = Relay(RelayApi.CHAT_COMPLETIONS, {"model": "m", "messages": HI, "stream": streamed})
    out: list[StreamEvent] = []
    with serve_hostile("openai", mode, status=status) as server:
        client = PROVIDER_TYPES["openai"].connect(
            base_url=f"{server.url}/v1", region="", api_key=key
        )

        async def run() -> None:
            translated = client.relay_call(
                ModelSettings("m"), request, translation=CHAT_COMPLETIONS_API
            )
            async for event in translated:
                out.append(event)

        try:
            asyncio.run(run())
            error = ""
        except ProviderError as raised:
            error = str(raised)

    assert server.received("POST")
    said = b"".join(event.data for event in out if isinstance(event, Raw)).decode()
    leaked = key.removeprefix("sk-HOSTILE-") in f"{said} {out!r} {error}"
    assert not leaked  # a boolean, so that a failure never prints the key
    assert (error == "") is ends_well
