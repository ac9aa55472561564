"""The chat-completions family's side of a translated gateway request: an OpenAI client's
Chat Completions body read into the neutral Conversation (and what it refuses, by field),
a translated answer's events written as the chunks or the completion the client reads, and a
Conversation of a client of another API sent to a model of this family (converse), against
the loopback fake, which refuses what OpenAI refuses."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import pytest

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
    ThinkingDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolResult,
    Usage,
)
from llmadmin.providers.errors import ProviderError, RequestRefused
from llmadmin.providers.openai import CHAT_COMPLETIONS_API

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
    pytest.param({"messages": [*HI, {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "g", "input": "x"}}]}]}, "messages[1].tool_calls[0].type", id="a custom tool call"),  # noqa: E501
    pytest.param({"messages": [*HI, {"role": "tool", "tool_call_id": "call_9", "content": "x"}]}, "messages[1].tool_call_id", id="a result of no call"),  # noqa: E501
    pytest.param({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role", id="a legacy function message"),  # noqa: E501
    pytest.param({"messages": [*HI, {"role": "assistant", "content": "x", "audio": {"id": "a"}}]}, "messages[1].audio", id="an assistant's audio"),  # noqa: E501
    pytest.param({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}, *HI]}, "messages[0].content[0].type", id="an image in the system"),  # noqa: E501
    pytest.param({"messages": HI, "tools": [{"type": "custom", "custom": {"name": "g"}}]}, "tools[0].type", id="a custom tool"),  # noqa: E501
    pytest.param({"messages": HI, "tools": [WEATHER], "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}}, "tool_choice", id="allowed tools"),  # noqa: E501
    pytest.param({"messages": HI, "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "time"}}}, "tool_choice.function.name", id="a choice of no tool"),  # noqa: E501
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
    # Our words, naming the field; nothing of the client's values echoed.
    assert param in str(refused.value)


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
