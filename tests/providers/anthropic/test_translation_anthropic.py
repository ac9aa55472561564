"""Anthropic's side of a translated gateway request: an Anthropic client's Messages body read
into the neutral Conversation (MessagesApi.conversation), a model's neutral events written as
Messages events or one message (MessagesApi.answer), and a Conversation sent to a Claude model
(AnthropicClient.converse) against the loopback fake that checks bodies as the API does."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator

import anthropic
import httpx2
import pytest

from llmadmin.providers.anthropic import ANTHROPIC, MESSAGES_API
from llmadmin.providers.base import ModelSettings
from llmadmin.providers.contract import (
    Conversation,
    Finish,
    Image,
    Message,
    OtherOutput,
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
from llmadmin.providers.errors import ChatError, ProviderError, RequestRefused
from tests.providers.anthropic.fake import (
    SIGNATURE,
    TOOL_INPUT,
    TOOL_USE_ID,
    MessagesFake,
    serve_messages,
)
from tests.providers.hostile import ERROR_STATUSES, serve_hostile
from tests.stream_servers import Script, anthropic_event, serve_script

HI = [{"role": "user", "content": "Hi"}]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {"name": "weather", "description": "The weather in a city.", "input_schema": SCHEMA}
CALL = {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}
ASKED = [*HI, {"role": "assistant", "content": [CALL]}]


def result(**fields) -> dict:
    block = {"type": "tool_result", "tool_use_id": "toolu_1", **fields}
    return {"role": "user", "content": [block]}


def read(body: dict) -> Conversation:
    return MESSAGES_API.conversation(Relay(RelayApi.MESSAGES, {"model": "gpt-5", **body}))


USER_HI = Message("user", ("Hi",))
WEATHER_CALL = ToolCall("toolu_1", "weather", '{"city": "Paris"}')
ASKED_READ = (USER_HI, Message("assistant", (WEATHER_CALL,)))

# fmt: off
READ = [  # (the client's body, the Conversation read)
    pytest.param({"messages": HI, "max_tokens": 1024},
                 Conversation("", (USER_HI,), max_tokens=1024,
                              params={"max_tokens": "max_tokens"}),
                 id="a question"),
    pytest.param({"messages": HI, "stream": True, "system": "Be brief."},
                 Conversation("Be brief.", (USER_HI,), streamed=True), id="streamed, a system"),
    pytest.param({"messages": HI, "system": [
                     {"type": "text", "text": "You are a coder.",
                      "cache_control": {"type": "ephemeral"}},
                     {"type": "text", "text": "Be brief."}]},
                 Conversation("You are a coder.\n\nBe brief.", (USER_HI,)),
                 id="system text blocks, cache_control dropped"),
    pytest.param({"messages": [{"role": "user", "content": [
                     {"type": "text", "text": "What is this?"},
                     {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                  "data": "iVBORw0KGgo="}},
                     {"type": "image", "source": {"type": "url",
                                                  "url": "https://example.com/a.png"}}]}]},
                 Conversation("", (Message("user", (
                     "What is this?", Image("image/png", "iVBORw0KGgo="),
                     Image(url="https://example.com/a.png"))),)),
                 id="text and images, base64 and by URL"),
    pytest.param({"messages": [*ASKED, result(content="18 °C")], "tools": [WEATHER],
                  "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
                 Conversation("", (*ASKED_READ, Message("user", (
                     ToolResult("toolu_1", "weather", ("18 °C",)),))),
                     tools=(Tool("weather", "The weather in a city.", SCHEMA),),
                     parallel_tool_calls=False,
                     params={"tools": "tools", "tool_choice": "tool_choice"}),
                 id="a tool loop: tools, a call, its result, one call at a time"),
    pytest.param({"messages": [*ASKED, result(is_error=True, content=[
                     {"type": "text", "text": "No such city."},
                     {"type": "image", "source": {"type": "base64", "media_type": "image/gif",
                                                  "data": "R0lG"}}])]},
                 Conversation("", (*ASKED_READ, Message("user", (
                     ToolResult("toolu_1", "weather",
                                ("No such city.", Image("image/gif", "R0lG")), is_error=True),
                 ))),),
                 id="an error result of text and an image"),
    pytest.param({"messages": [*ASKED, result()]},
                 Conversation("", (*ASKED_READ, Message("user", (
                     ToolResult("toolu_1", "weather", ()),)))),
                 id="a result without content"),
    pytest.param({"messages": [*HI, {"role": "assistant", "content": [
                     {"type": "thinking", "thinking": "Hmm.", "signature": "c2ln"},
                     {"type": "redacted_thinking", "data": "b3BhcXVl"},
                     {"type": "text", "text": "Hello", "citations": None}]},
                  {"role": "assistant", "content": [{"type": "redacted_thinking",
                                                     "data": "eA"}]}]},
                 Conversation("", (USER_HI, Message("assistant", (
                     Thinking("Hmm.", "c2ln"), "Hello")))),
                 id="thinking kept signed, redacted thinking dropped"),
    pytest.param({"messages": [{"role": "user", "content": [
                     {"type": "text", "text": ""}, {"type": "text", "text": "Hi"}]},
                  {"role": "assistant", "content": ""}]},
                 Conversation("", (USER_HI,)), id="empty text dropped"),
    pytest.param({"messages": HI, "tools": [{**WEATHER, "type": "custom"}],
                  "tool_choice": {"type": "tool", "name": "weather"}},
                 Conversation("", (USER_HI,), tools=(
                     Tool("weather", "The weather in a city.", SCHEMA),),
                     tool_choice="tool", tool_name="weather",
                     params={"tools": "tools", "tool_choice": "tool_choice"}),
                 id="a custom tool, named as the one to call"),
    pytest.param({"messages": HI, "tool_choice": {"type": "any"}},
                 Conversation("", (USER_HI,), tool_choice="any",
                              params={"tool_choice": "tool_choice"}),
                 id="any tool"),
    pytest.param({"messages": HI, "tool_choice": {"type": "none"}},
                 Conversation("", (USER_HI,), tool_choice="none",
                              params={"tool_choice": "tool_choice"}),
                 id="no tool"),
    pytest.param({"messages": HI, "stop_sequences": ["END"], "temperature": 0.2,
                  "top_p": 0.9, "top_k": 40},
                 Conversation("", (USER_HI,), stop=("END",), temperature=0.2, top_p=0.9,
                              top_k=40,
                              params={"stop": "stop_sequences", "temperature": "temperature",
                                      "top_p": "top_p", "top_k": "top_k"}),
                 id="stop sequences and sampling"),
    pytest.param({"messages": HI, "metadata": {"user_id": "u1"}, "service_tier": "auto",
                  "cache_control": {"type": "ephemeral"}, "container": None},
                 Conversation("", (USER_HI,)), id="advisory fields dropped, null ones unset"),
]
# fmt: on


@pytest.mark.parametrize(("body", "conversation"), READ)
def test_a_messages_body_is_read_into_this_conversation(body, conversation):
    assert read(body) == conversation


def effort_of(thinking: dict | None, config: dict | None = None) -> tuple:
    body = {"messages": HI, "thinking": thinking, "output_config": config}
    conversation = read(body)
    return conversation.effort, conversation.params.get("effort")


# fmt: off
EFFORTS = [  # (thinking, output_config, the effort read)
    pytest.param(None, None, None, id="nothing asked: the admin's options apply"),
    pytest.param({"type": "disabled"}, None, "none", id="disabled: none"),
    pytest.param({"type": "enabled", "budget_tokens": 1024}, None, "low", id="1024: low"),
    pytest.param({"type": "enabled", "budget_tokens": 4096}, None, "low", id="4096: low"),
    pytest.param({"type": "enabled", "budget_tokens": 4097}, None, "medium",
                 id="4097: medium"),
    pytest.param({"type": "enabled", "budget_tokens": 16384}, None, "medium",
                 id="16384: medium"),
    pytest.param({"type": "enabled", "budget_tokens": 16385}, None, "high", id="16385: high"),
    pytest.param({"type": "adaptive"}, None, "medium", id="adaptive: medium"),
    pytest.param({"type": "adaptive", "display": "summarized"}, {"effort": "max"}, "max",
                 id="adaptive at effort max: max"),
    pytest.param(None, {"effort": "low"}, "low", id="output_config.effort alone"),
    pytest.param({"type": "disabled"}, {"effort": "high"}, "none",
                 id="disabled whatever the effort"),
]
# fmt: on


@pytest.mark.parametrize(("thinking", "config", "effort"), EFFORTS)
def test_thinking_asked_for_is_read_as_an_effort_named_after_thinking(thinking, config, effort):
    assert effort_of(thinking, config) == (effort, "thinking" if effort else None)


TOOL_USE_IN = {"type": "tool_use", "id": "t", "name": "w", "input": {}}

# fmt: off
REFUSED = [  # (the client's body, the field named)
    pytest.param({"messages": HI, "output_config": {"format": {"type": "json_schema"}}},
                 "output_config.format", id="structured output"),
    pytest.param({"messages": HI, "container": "c1"}, "container", id="a container"),
    pytest.param({"messages": HI, "mcp_servers": [{"type": "url"}]}, "mcp_servers",
                 id="MCP servers"),
    pytest.param({"messages": HI, "context_management": {}}, "context_management",
                 id="context management"),
    pytest.param({"messages": HI, "inference_geo": "us"}, "inference_geo",
                 id="inference geography"),
    pytest.param({"messages": HI, "speed": "fast"}, "speed", id="fast mode"),
    pytest.param({"messages": [{"role": "user", "content": [
                     {"type": "text", "text": "Read this"},
                     {"type": "text", "text": "and this"},
                     {"type": "document", "source": {"type": "text", "data": "x"}}]}]},
                 "messages[0].content[2].type", id="a document"),
    pytest.param({"messages": [{"role": "user", "content": [
                     {"type": "search_result", "source": "s", "title": "t", "content": []}]}]},
                 "messages[0].content[0].type", id="a search result"),
    pytest.param({"messages": [*HI, {"role": "assistant", "content": [
                     {"type": "server_tool_use", "id": "s", "name": "web_search",
                      "input": {}}]}]},
                 "messages[1].content[0].type", id="a server tool's use"),
    pytest.param({"messages": [{"role": "user", "content": [
                     {"type": "container_upload", "file_id": "f"}]}]},
                 "messages[0].content[0].type", id="a container upload"),
    pytest.param({"messages": [{"role": "user", "content": [TOOL_USE_IN]}]},
                 "messages[0].content[0].type", id="a tool use in a user message"),
    pytest.param({"messages": [{"role": "user", "content": [
                     {"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
                 "messages[0].content[0].source.type", id="an image by file id"),
    pytest.param({"messages": [{"role": "user", "content": [
                     {"type": "image", "source": {"type": "url", "url": "file:///etc"}}]}]},
                 "messages[0].content[0].source.url", id="an image URL that is no web URL"),
    pytest.param({"messages": [{"role": "user", "content": [
                     {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                  "data": "iVBORw0K%%%"}}]}]},
                 "messages[0].content[0].source.data", id="image data not base64"),
    pytest.param({"messages": [{"role": "user", "content": [
                     {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                  "data": "iVBORw0"}}]}]},
                 "messages[0].content[0].source.data", id="image data cut short"),
    pytest.param({"messages": [{"role": "user", "content": [
                     {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                  "data": "iVBORw0é"}}]}]},
                 "messages[0].content[0].source.data", id="image data not ASCII"),
    pytest.param({"messages": [{"role": "user", "content": [
                     {"type": "text", "text": "x", "citations": [{"type": "char_location"}]}]}]},
                 "messages[0].content[0].citations", id="citations"),
    pytest.param({"messages": [*HI, result(content="18")]},
                 "messages[1].content[0].tool_use_id", id="a result of no call"),
    pytest.param({"messages": [*ASKED, result(content=[
                     {"type": "search_result", "source": "s", "title": "t", "content": []}])]},
                 "messages[2].content[0].content[0].type", id="a search result in a result"),
    pytest.param({"messages": [{"role": "system", "content": "Be brief."}, *HI]},
                 "messages[0].role", id="a system message"),
    pytest.param({"messages": [{"role": "user", "content": "Hi", "name": "ann"}]},
                 "messages[0].name", id="an unknown message field"),
    pytest.param({"messages": [{"role": "user", "content": 5}]}, "messages[0].content",
                 id="content neither text nor blocks"),
    pytest.param({"messages": []}, "messages", id="no messages"),
    pytest.param({"messages": [{"role": "user", "content": []}]}, "messages",
                 id="a message with no content"),
    pytest.param({"messages": [{"role": "user", "content": ""}]}, "messages",
                 id="a message of empty text"),
    pytest.param({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
                 "messages", id="a message of an empty text block"),
    pytest.param({"messages": [{"role": "assistant", "content": [
                     {"type": "redacted_thinking", "data": "eA"}]}]},
                 "messages", id="a message of redacted thinking only"),
    pytest.param({"messages": HI, "tools": [WEATHER, {"type": "web_search_20250305",
                                                      "name": "web_search"}]},
                 "tools[1]", id="a server tool: web search"),
    pytest.param({"messages": HI, "tools": [{"type": "bash_20250124", "name": "bash"}]},
                 "tools[0]", id="a server tool: bash"),
    pytest.param({"messages": HI, "tools": [{"type": "text_editor_20250728",
                                             "name": "str_replace_based_edit_tool"}]},
                 "tools[0]", id="a server tool: the text editor"),
    pytest.param({"messages": HI, "tools": [{**WEATHER, "defer_loading": True}]},
                 "tools[0].defer_loading", id="a deferred tool"),
    pytest.param({"messages": HI, "tools": [{"name": "w"}]}, "tools[0].input_schema",
                 id="a tool without a schema"),
    pytest.param({"messages": HI, "tool_choice": {"type": "some"}}, "tool_choice.type",
                 id="an unknown tool choice"),
    pytest.param({"messages": HI, "tools": [WEATHER],
                  "tool_choice": {"type": "tool", "name": "forecast"}},
                 "tool_choice.name", id="a forced tool not among the tools"),
    pytest.param({"messages": HI, "tool_choice": {"type": "tool", "name": "weather"}},
                 "tool_choice.name", id="a forced tool and no tools"),
    pytest.param({"messages": HI, "thinking": {"type": "between_tools"}}, "thinking.type",
                 id="an unknown thinking type"),
    pytest.param({"messages": HI, "thinking": {"type": "enabled"}}, "thinking.budget_tokens",
                 id="enabled thinking without a budget"),
    pytest.param({"messages": HI, "thinking": {"type": "adaptive", "display": "omitted"}},
                 "thinking.display", id="thinking omitted"),
    pytest.param({"messages": HI, "output_config": {"effort": "extreme"}},
                 "output_config.effort", id="an unknown effort"),
    pytest.param({"messages": HI, "max_tokens": 0}, "max_tokens", id="max_tokens 0"),
    pytest.param({"messages": HI, "max_tokens": "many"}, "max_tokens", id="max_tokens text"),
    pytest.param({"messages": HI, "temperature": "hot"}, "temperature", id="temperature text"),
    pytest.param({"messages": HI, "stop_sequences": "END"}, "stop_sequences",
                 id="a stop sequence not in a list"),
]
# fmt: on


@pytest.mark.parametrize(("body", "field"), REFUSED)
def test_what_has_no_counterpart_is_refused_naming_the_clients_field(body, field):
    with pytest.raises(RequestRefused) as refused:
        read(body)

    assert refused.value.param == field
    # The gateway's error names the field (errors.field_refused): our words say what's wrong.
    assert str(refused.value) and not str(refused.value).startswith(field)


# --- The answer, written as Messages ------------------------------------------------------


def answered(events: list[StreamEvent], *, streamed: bool = True) -> list[StreamEvent]:
    async def source() -> AsyncIterator[StreamEvent]:
        for event in events:
            yield event

    async def answer() -> list[StreamEvent]:
        relay = Relay(RelayApi.MESSAGES, {"model": "gpt-5", "messages": HI, "stream": streamed})
        return [event async for event in MESSAGES_API.answer(source(), relay)]

    return asyncio.run(answer())


MESSAGE_ID = re.compile(r'"msg_[0-9a-f]{32}"')


def said(events: list[StreamEvent]) -> list[tuple[str, dict]]:
    """The server-sent events written for a streamed answer: (event name, data), the message
    id normalised."""
    raws = [event for event in events if isinstance(event, Raw)]
    text = MESSAGE_ID.sub('"msg_ID"', b"".join(raw.data for raw in raws).decode())
    frames = [frame.split("\n") for frame in text.split("\n\n") if frame]
    assert all(len(lines) == 2 for lines in frames)
    return [
        (name.removeprefix("event: "), json.loads(data.removeprefix("data: ")))
        for name, data in frames
    ]


def start() -> tuple[str, dict]:
    usage = {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }
    message = {
        "id": "msg_ID",
        "type": "message",
        "role": "assistant",
        "model": "gpt-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    return "message_start", {"type": "message_start", "message": message}


def block_start(index: int, block: dict) -> tuple[str, dict]:
    return "content_block_start", {
        "type": "content_block_start",
        "index": index,
        "content_block": block,
    }


def delta(index: int, **fields) -> tuple[str, dict]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": fields}


def stop(index: int) -> tuple[str, dict]:
    return "content_block_stop", {"type": "content_block_stop", "index": index}


def end(stop_reason: str, input_tokens=0, output_tokens=0, read=0, written=0) -> list:
    usage = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "output_tokens": output_tokens,
    }
    return [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": usage,
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


TEXT = {"type": "text", "text": ""}
THINKING = {"type": "thinking", "thinking": "", "signature": ""}
DONE = Finish(StopReason.COMPLETE)


def tool_use(call_id: str, name: str) -> dict:
    return {"type": "tool_use", "id": call_id, "name": name, "input": {}}


# fmt: off
STREAMS = [  # (the model's events, the server-sent events written)
    pytest.param([Usage(10, 0), TextDelta("Hel"), TextDelta("lo"), Usage(10, 5), DONE],
                 [start(), block_start(0, TEXT), delta(0, type="text_delta", text="Hel"),
                  delta(0, type="text_delta", text="lo"), stop(0), *end("end_turn", 10, 5)],
                 id="text: end_turn, the last usage"),
    pytest.param([ThinkingDelta("Let me "), ThinkingDelta("see."),
                  ThinkingDelta(signature="c2ln"), ThinkingDelta("More."),
                  TextDelta("Hi"), DONE],
                 [start(), block_start(0, THINKING),
                  delta(0, type="thinking_delta", thinking="Let me "),
                  delta(0, type="thinking_delta", thinking="see."),
                  delta(0, type="signature_delta", signature="c2ln"), stop(0),
                  block_start(1, THINKING), delta(1, type="thinking_delta", thinking="More."),
                  stop(1), block_start(2, TEXT), delta(2, type="text_delta", text="Hi"),
                  stop(2), *end("end_turn")],
                 id="thinking signed, then unsigned thinking (reasoning), then text"),
    pytest.param([TextDelta("Let me look."), ToolCallStart(index=0, id="call_1", name="weather"),
                  ToolCallDelta('{"ci', index=0), ToolCallDelta('ty": ', index=0),
                  ToolCallDelta('"Paris"}', index=0),
                  ToolCallStart(index=1, id="call_2", name="time"), ToolCallDelta("", index=1),
                  ToolCallDelta("{}", index=1), Usage(30, 12), DONE],
                 [start(), block_start(0, TEXT),
                  delta(0, type="text_delta", text="Let me look."), stop(0),
                  block_start(1, tool_use("call_1", "weather")),
                  delta(1, type="input_json_delta", partial_json='{"ci'),
                  delta(1, type="input_json_delta", partial_json='ty": '),
                  delta(1, type="input_json_delta", partial_json='"Paris"}'), stop(1),
                  block_start(2, tool_use("call_2", "time")),
                  delta(2, type="input_json_delta", partial_json="{}"), stop(2),
                  *end("tool_use", 30, 12)],
                 id="two tool calls, in fragments: tool_use"),
    pytest.param([Usage(100, 20, cache_read_tokens=30, cache_write_tokens=10,
                        reasoning_tokens=5), TextDelta("Hi"), DONE],
                 [start(), block_start(0, TEXT), delta(0, type="text_delta", text="Hi"),
                  stop(0), *end("end_turn", 60, 20, read=30, written=10)],
                 id="cache counts apart from the input"),
    pytest.param([Usage(None, 7, cache_read_tokens=3), DONE],
                 [start(), *end("end_turn", 0, 7, read=3)],
                 id="no text, an input not reported: 0"),
]
# fmt: on


@pytest.mark.parametrize(("events", "sse"), STREAMS)
def test_a_streamed_answer_is_written_as_these_messages_events(events, sse):
    written = answered(events)

    assert said(written) == sse
    assert [event for event in written if not isinstance(event, Raw)] == events


# fmt: off
STOPS = [  # (ours, Messages')
    pytest.param(StopReason.COMPLETE, "end_turn", id="complete: end_turn"),
    pytest.param(StopReason.MAX_TOKENS, "max_tokens", id="max_tokens"),
    pytest.param(StopReason.CONTEXT_FULL, "model_context_window_exceeded",
                 id="context full: model_context_window_exceeded"),
    pytest.param(StopReason.REFUSED, "refusal", id="refused: refusal"),
    pytest.param(StopReason.BLOCKED, "refusal", id="blocked: refusal"),
    pytest.param(StopReason.CONTENT_FILTER, "refusal", id="content filter: refusal"),
    pytest.param(StopReason.PAUSED, "pause_turn", id="paused: pause_turn"),
    pytest.param(StopReason.OTHER, "end_turn", id="other: end_turn"),
]
# fmt: on


@pytest.mark.parametrize(("reason", "stop_reason"), STOPS)
def test_why_the_answer_stopped_is_said_as_messages_says_it(reason, stop_reason):
    written = said(answered([TextDelta("Hi"), Finish(reason)]))

    assert written[-2][1]["delta"]["stop_reason"] == stop_reason


def whole(events: list[StreamEvent]) -> dict:
    written = answered(events, streamed=False)
    [raw] = [event for event in written if isinstance(event, Raw)]
    assert written[-1] is raw
    return json.loads(MESSAGE_ID.sub('"msg_ID"', raw.data.decode()))


def test_a_whole_answer_is_one_message_with_each_tool_calls_input_read():
    events = [
        Usage(50, 0),
        ThinkingDelta("Hmm."),
        ThinkingDelta(signature="c2ln"),
        TextDelta("Let me "),
        TextDelta("look."),
        ToolCallStart(index=0, id="call_1", name="weather"),
        ToolCallDelta('{"city": ', index=0),
        ToolCallDelta('"Paris"}', index=0),
        ToolCallStart(index=1, id="call_2", name="time"),
        Usage(50, 9, cache_read_tokens=20),
        DONE,
    ]

    assert whole(events) == {
        "id": "msg_ID",
        "type": "message",
        "role": "assistant",
        "model": "gpt-5",
        "content": [
            {"type": "thinking", "thinking": "Hmm.", "signature": "c2ln"},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "time", "input": {}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 30,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 20,
            "output_tokens": 9,
        },
    }


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param('{"city": ', id="cut short"),
        pytest.param('["Paris"]', id="a list"),
    ],
)
def test_a_whole_answers_tool_call_whose_arguments_are_no_json_object_is_malformed(arguments):
    events = [ToolCallStart(index=0, id="c", name="w"), ToolCallDelta(arguments, index=0), DONE]

    with pytest.raises(ChatError, match="malformed"):
        answered(events, streamed=False)


def test_a_tool_call_delta_after_its_block_closed_is_malformed():
    events = [
        ToolCallStart(index=0, id="c", name="w"),
        TextDelta("x"),
        ToolCallDelta("{}", index=0),
    ]

    with pytest.raises(ChatError, match="malformed"):
        answered(events)


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "whole"])
def test_a_source_that_ends_without_its_finish_is_no_clean_end(streamed):
    # As the Chat Completions side has it (ClientApi.answer): a stream with no message_stop
    # and no error event, or a whole answer of nothing, is a clean end to the client.
    with pytest.raises(ProviderError):
        answered([TextDelta("Hel")], streamed=streamed)


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "whole"])
def test_a_provider_error_mid_answer_is_raised_and_the_source_closed(streamed):
    closed = []

    async def source() -> AsyncIterator[StreamEvent]:
        try:
            yield TextDelta("Hel")
            raise ChatError("The provider is overloaded: try again in a moment.")
        finally:
            closed.append(True)

    async def answer() -> list[StreamEvent]:
        relay = Relay(RelayApi.MESSAGES, {"model": "gpt-5", "stream": streamed})
        return [event async for event in MESSAGES_API.answer(source(), relay)]

    with pytest.raises(ChatError, match="overloaded"):
        asyncio.run(answer())
    assert closed == [True]


def test_a_client_that_leaves_closes_the_source():
    closed = []

    async def source() -> AsyncIterator[StreamEvent]:
        try:
            yield TextDelta("Hel")
            yield TextDelta("lo")
        finally:
            closed.append(True)

    async def first() -> None:
        relay = Relay(RelayApi.MESSAGES, {"model": "gpt-5", "stream": True})
        answer = MESSAGES_API.answer(source(), relay)
        await anext(answer)
        await answer.aclose()

    asyncio.run(first())
    assert closed == [True]


# --- A Conversation sent to Claude (an OpenAI client's, say) -----------------------------


KEY = "sk-ant-fake-0001"


def conversed(
    fake: MessagesFake,
    conversation: Conversation,
    identifier: str = "claude-sonnet-4-6",
    **settings,
) -> list[StreamEvent]:
    client = ANTHROPIC.connect(base_url=fake.url, region="", api_key=KEY)
    model = ModelSettings(identifier, **settings)

    async def events() -> list[StreamEvent]:
        return [event async for event in client.converse(model, conversation)]

    return asyncio.run(events())


@pytest.fixture
def fake() -> Iterator[MessagesFake]:
    with serve_messages(MessagesFake(api_key=KEY)) as fake:
        yield fake


def sent(
    fake: MessagesFake,
    conversation: Conversation,
    identifier: str = "claude-sonnet-4-6",
    **settings,
) -> dict:
    conversed(fake, conversation, identifier, **settings)
    [request] = fake.requests
    assert request.headers["anthropic-version"] == "2026-10-21"
    return request.body


def text(value: str) -> dict:
    return {"type": "text", "text": value}


def user(*blocks: dict) -> dict:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict) -> dict:
    return {"role": "assistant", "content": list(blocks)}


def body(*messages: dict, max_tokens: int = 8192, **fields) -> dict:
    return {"model": "claude-sonnet-4-6", "max_tokens": max_tokens,
            "messages": list(messages), "stream": True, **fields}  # fmt: skip


ASK = Message("user", ("Weather in Paris?",))
CALLED = Message("assistant", ("Let me look.", ToolCall("call_1", "weather", '{"city":"Paris"}'),
                               ToolCall("call_2", "time", "")))  # fmt: skip
PNG = Image("image/png", "iVBORw0")
RESULTS = (
    Message("user", (ToolResult("call_1", "weather", ("18 °C", PNG)),)),
    Message("user", (ToolResult("call_2", "time", ("no clock",), is_error=True), "Thanks.")),
)
TOOLS = (Tool("weather", "The weather in a city.", SCHEMA), Tool("time"))
LOOP = Conversation("Be brief.", (ASK, CALLED, *RESULTS), tools=TOOLS, parallel_tool_calls=False,
                    stop=("END",), max_tokens=50_000)  # fmt: skip
LOOP_SENT = body(
    user(text("Weather in Paris?")),
    assistant(text("Let me look."),
              {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
              {"type": "tool_use", "id": "call_2", "name": "time", "input": {}}),
    user({"type": "tool_result", "tool_use_id": "call_1", "content": [
              text("18 °C"),
              {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                           "data": "iVBORw0"}}]},
         {"type": "tool_result", "tool_use_id": "call_2", "content": [text("no clock")],
          "is_error": True},
         text("Thanks.")),
    max_tokens=32_000,
    system="Be brief.",
    tools=[{"name": "weather", "description": "The weather in a city.", "input_schema": SCHEMA},
           {"name": "time", "input_schema": {"type": "object"}}],
    tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    stop_sequences=["END"],
)  # fmt: skip
SIGNED = Thinking("Let me see.", SIGNATURE)
ADAPTIVE_HIGH = {"thinking": "adaptive", "effort": "high"}


def asked(*messages: Message, **fields) -> Conversation:
    return Conversation("", messages or (USER_HI,), **fields)


# fmt: off
SENT = [  # (the model's settings, the Conversation, the body sent)
    pytest.param({}, asked(USER_HI), body(user(text("Hi"))),
                 id="a question: the API's default max_tokens"),
    pytest.param({}, asked(max_tokens=100_000), body(user(text("Hi")), max_tokens=64_000),
                 id="max tokens above the model's output limit: lowered to it"),
    pytest.param({"max_output_tokens": 32_000}, LOOP, LOOP_SENT,
                 id="a tool loop: results together and first, the client's max_tokens capped"),
    pytest.param({"max_output_tokens": 4000}, asked(), body(user(text("Hi")), max_tokens=4000),
                 id="the admin's cap where the client set none"),
    pytest.param({"options": ADAPTIVE_HIGH}, asked(),
                 body(user(text("Hi")), thinking={"type": "adaptive"},
                      output_config={"effort": "high"}),
                 id="the admin's options where the client asked no effort"),
    pytest.param({"options": ADAPTIVE_HIGH}, asked(effort="low"),
                 body(user(text("Hi")), thinking={"type": "adaptive"},
                      output_config={"effort": "low"}),
                 id="the client's effort wins: adaptive where the model takes it"),
    pytest.param({"options": ADAPTIVE_HIGH}, asked(effort="none"),
                 body(user(text("Hi")), thinking={"type": "disabled"}),
                 id="effort none: thinking disabled"),
    pytest.param({"identifier": "claude-sonnet-4-5"}, asked(effort="medium"),
                 body(user(text("Hi")), model="claude-sonnet-4-5", max_tokens=8192 + 8192,
                      thinking={"type": "enabled", "budget_tokens": 8192}),
                 id="effort medium on Sonnet 4.5: a budget, max_tokens raised past it"),
    pytest.param({"identifier": "claude-haiku-4-5", "max_output_tokens": 3000},
                 asked(effort="low"),
                 body(user(text("Hi")), model="claude-haiku-4-5", max_tokens=3000,
                      thinking={"type": "enabled", "budget_tokens": 2048}),
                 id="effort low on Haiku 4.5: a budget below the admin's cap"),
    pytest.param({"identifier": "claude-opus-4-1", "max_output_tokens": 20_000},
                 asked(effort="high", max_tokens=1000),
                 body(user(text("Hi")), model="claude-opus-4-1", max_tokens=16384 + 1000,
                      thinking={"type": "enabled", "budget_tokens": 16384}),
                 id="effort high, max_tokens 1000: raised by the budget"),
    pytest.param({"identifier": "claude-opus-4-1", "max_output_tokens": 20_000},
                 asked(effort="high", max_tokens=5000),
                 body(user(text("Hi")), model="claude-opus-4-1", max_tokens=20_000,
                      thinking={"type": "enabled", "budget_tokens": 16384}),
                 id="effort high, max_tokens 5000: raised, within the admin's cap"),
    pytest.param({"identifier": "claude-opus-4-7", "options": {"thinking": "adaptive"}},
                 asked(effort="minimal"),
                 body(user(text("Hi")), model="claude-opus-4-7"),
                 id="effort minimal on Opus 4.7: no thinking (it refuses disabled)"),
    pytest.param({"options": ADAPTIVE_HIGH},
                 asked(tools=TOOLS[1:], tool_choice="tool", tool_name="time"),
                 body(user(text("Hi")), tools=[{"name": "time",
                                                "input_schema": {"type": "object"}}],
                      tool_choice={"type": "tool", "name": "time"},
                      thinking={"type": "disabled"}, output_config={"effort": "high"}),
                 id="a forced tool: thinking off"),
    pytest.param({}, asked(ASK, Message("assistant", (ToolCall("call_1", "time", "{}"),)),
                           Message("user", (ToolResult("call_1", "time", ("noon",)),)),
                           effort="high"),
                 body(user(text("Weather in Paris?")),
                      assistant({"type": "tool_use", "id": "call_1", "name": "time",
                                 "input": {}}),
                      user({"type": "tool_result", "tool_use_id": "call_1",
                            "content": [text("noon")]}),
                      thinking={"type": "disabled"}, output_config={"effort": "high"}),
                 id="a last tool call without signed thinking: thinking off, effort kept"),
    pytest.param({}, asked(ASK, Message("assistant", (SIGNED, ToolCall("call_1", "time", "{}"))),
                           Message("user", (ToolResult("call_1", "time", ("noon",)),)),
                           effort="high"),
                 body(user(text("Weather in Paris?")),
                      assistant({"type": "thinking", "thinking": "Let me see.",
                                 "signature": SIGNATURE},
                                {"type": "tool_use", "id": "call_1", "name": "time",
                                 "input": {}}),
                      user({"type": "tool_result", "tool_use_id": "call_1",
                            "content": [text("noon")]}),
                      thinking={"type": "adaptive"}, output_config={"effort": "high"}),
                 id="a last tool call after its signed thinking: thinking on"),
    pytest.param({}, asked(USER_HI, Message("assistant", (Thinking("unsigned"), "", "Hello")),
                           Message("user", (Image(url="https://example.com/a.png"),))),
                 body(user(text("Hi")), assistant(text("Hello")),
                      user({"type": "image", "source": {"type": "url",
                                                        "url": "https://example.com/a.png"}})),
                 id="unsigned thinking and empty text left out; an image by URL"),
]
# fmt: on


@pytest.mark.parametrize(("model", "conversation", "expected"), SENT)
def test_a_conversation_becomes_this_messages_request(fake, model, conversation, expected):
    assert sent(fake, conversation, **model) == expected


# fmt: off
CONVERSE_REFUSED = [  # (the model's settings, the Conversation, "field: the refusal")
    pytest.param({}, asked(temperature=0.5, params={"temperature": "temperature"}),
                 "temperature: Anthropic's API version 2026-10-21 no longer takes temperature.",
                 id="temperature: the API version's"),
    pytest.param({}, asked(top_p=0.5),
                 "top_p: Anthropic's API version 2026-10-21 no longer takes top P.",
                 id="top P, named as the Conversation's"),
    pytest.param({}, asked(presence_penalty=0.5,
                           params={"presence_penalty": "presence_penalty"}),
                 "presence_penalty: Presence penalty is not supported by Anthropic.",
                 id="a penalty"),
    pytest.param({}, asked(effort="xhigh", params={"effort": "reasoning_effort"}),
                 "reasoning_effort: Claude Sonnet 4.6 has no xhigh effort.",
                 id="an effort the model lacks"),
    pytest.param({"identifier": "claude-3-5-haiku-20241022"},
                 asked(effort="low", params={"effort": "reasoning_effort"}),
                 "reasoning_effort: this model doesn't reason: ask no effort, or none.",
                 id="an effort on a model that doesn't reason"),
    pytest.param({"identifier": "claude-opus-4-1", "max_output_tokens": 16_000},
                 asked(effort="high", params={"effort": "thinking"}),
                 "thinking: thinking at effort high takes 16384 tokens, and this model writes "
                 "at most 16000: ask a lower effort.",
                 id="a budget the admin's cap leaves no room for"),
    pytest.param({}, asked(Message("user", (Image("image/bmp", "Qk0"),))),
                 "messages: Claude reads JPEG, PNG, GIF and WebP images only.",
                 id="an image type Claude can't read"),
    pytest.param({}, asked(USER_HI, Message("assistant", (ToolCall("c", "w", "[1]"),))),
                 "messages: a tool call's arguments must be a JSON object.",
                 id="tool call arguments that are no object"),
]
# fmt: on


@pytest.mark.parametrize(("model", "conversation", "message"), CONVERSE_REFUSED)
def test_what_claude_would_refuse_is_refused_naming_the_clients_field_before_sending(
    fake, model, conversation, message
):
    with pytest.raises(RequestRefused) as refused:
        conversed(fake, conversation, **model)

    field, message = message.split(": ", 1)
    assert (refused.value.param, str(refused.value)) == (field, message)
    assert refused.value.http_status == 400
    assert fake.requests == []


def arguments_of(events: list[StreamEvent]) -> dict[int, str]:
    calls: dict[int, str] = {}
    for event in events:
        if isinstance(event, ToolCallDelta):
            calls[event.index] = calls.get(event.index, "") + event.text
    return calls


@pytest.mark.parametrize("effort", [None, "high"], ids=["no thinking", "thinking"])
def test_a_two_step_tool_loop_runs_with_its_arguments_whole(fake, effort):
    tools = (Tool("weather", "The weather in a city.", SCHEMA),)
    first = conversed(fake, asked(ASK, tools=tools, effort=effort))

    starts = [event for event in first if isinstance(event, ToolCallStart)]
    assert starts == [ToolCallStart(index=0, id=TOOL_USE_ID, name="weather")]
    assert len([event for event in first if isinstance(event, ToolCallDelta)]) > 1
    assert json.loads(arguments_of(first)[0]) == TOOL_INPUT
    thinking = [event for event in first if isinstance(event, ThinkingDelta)]
    assert thinking == ([ThinkingDelta("Let me see."), ThinkingDelta(signature=SIGNATURE)]
                        if effort else [])  # fmt: skip
    assert first[-1] == Finish(StopReason.COMPLETE)

    said_thinking = (Thinking("Let me see.", SIGNATURE),) if effort else ()
    call = ToolCall(TOOL_USE_ID, "weather", arguments_of(first)[0])
    second = conversed(fake, asked(
        ASK, Message("assistant", (*said_thinking, call)),
        Message("user", (ToolResult(TOOL_USE_ID, "weather", ("18 °C, sunny",)),)),
        tools=tools, effort=effort,
    ))  # fmt: skip

    assert [event.text for event in second if isinstance(event, TextDelta)] == ["Hello", " world"]
    assert second[-2:] == [
        Usage(20 + 4 + 2, 9, cache_read_tokens=4, cache_write_tokens=2,
              reasoning_tokens=3 if effort else None),
        Finish(StopReason.COMPLETE),
    ]  # fmt: skip
    # Thinking stays on where Claude's own signed thinking went back.
    assert ("thinking" in fake.requests[-1].body) == bool(effort)


# --- The fake refuses what the API refuses ------------------------------------------------

CALL_BLOCK = {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}
RESULT_BLOCK = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18"}
ON = {"thinking": {"type": "enabled", "budget_tokens": 2048}}

# fmt: off
FAKE_REFUSES = [  # (the body, a piece of the API's message)
    pytest.param(body(user(text("Hi")), assistant(CALL_BLOCK), user(RESULT_BLOCK), **ON),
                 "must start with a thinking block",
                 id="thinking on, a last tool use without its thinking"),
    pytest.param(body(user(text("Hi")), tools=[WEATHER], tool_choice={"type": "any"}, **ON),
                 "forces tool use", id="thinking on, a tool forced"),
    pytest.param(body(user(text("Hi")), assistant(CALL_BLOCK), user(text("x"), RESULT_BLOCK)),
                 "must come first", id="a tool result after text"),
    pytest.param(body(user(text("Hi")), assistant(CALL_BLOCK), user(text("x"))),
                 "without `tool_result` blocks", id="a tool use left unanswered"),
    pytest.param(body(user(text("Hi")), assistant(text("x")), user(RESULT_BLOCK)),
                 "unexpected `tool_use_id`", id="a result of no call just before"),
    pytest.param(body(user(text(""))), "must be non-empty", id="an empty text block"),
    pytest.param(body(user()), "non-empty content", id="an empty message"),
    pytest.param(body(user(text("Hi")), tools=[{"name": "w", "input_schema": {}}]),
                 "Input should be 'object'", id="a schema without type object"),
    pytest.param(body(user(text("Hi")), tools=[WEATHER],
                      tool_choice={"type": "tool", "name": "time"}),
                 "Tool not found", id="a forced tool that is not offered"),
    pytest.param(body(user({"type": "image", "source": {"type": "base64",
                                                        "media_type": "image/bmp",
                                                        "data": "Qk0"}})),
                 "source", id="an image type Claude can't read"),
]
# fmt: on


@pytest.mark.parametrize(("refused", "message"), FAKE_REFUSES)
def test_the_fake_refuses_what_the_api_refuses(fake, refused, message):
    response = httpx2.post(
        f"{fake.url}/v1/messages",
        json=refused,
        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        timeout=5,
    )

    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


# --- A hostile Claude, translated ---------------------------------------------------------

# (mode, status): what tests/providers/hostile.py's Anthropic server does with the key.
ATTACKS = [
    pytest.param("redirect", None, id="redirect"),
    *(pytest.param("error_body", status, id=f"error body {status}") for status in ERROR_STATUSES),
    pytest.param("reason_phrase", 200, id="reason phrase"),
    pytest.param("midstream", None, id="midstream error"),
    pytest.param("not_json", None, id="not JSON"),
    pytest.param("finish", None, id="the key as stop reason"),
    pytest.param("bad_location", None, id="bad location"),
    pytest.param("bad_header", None, id="bad header"),
    pytest.param("odd_shapes", None, id="odd shapes"),
]


@pytest.mark.parametrize(("mode", "status"), ATTACKS)
@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "whole"])
def test_a_hostile_claudes_key_reaches_no_translated_answer_error_or_log(
    mode, status, streamed, caplog
):
    caplog.set_level(logging.DEBUG)
    relay = Relay(RelayApi.MESSAGES, {"model": "gpt-5", "messages": HI, "stream": streamed})
    said, failure = [], None
    with serve_hostile("anthropic", mode, status) as hostile:
        client = ANTHROPIC.connect(base_url=hostile.url, region="", api_key=KEY)

        async def answer() -> None:
            calls = client.relay_call(ModelSettings("claude-sonnet-4-6"), relay,
                                      translation=MESSAGES_API)  # fmt: skip
            async for event in calls:
                said.append(event)

        try:
            asyncio.run(answer())
        except ProviderError as error:
            failure = str(error)

    assert hostile.credentials == {KEY}
    raws = b"".join(event.data for event in said if isinstance(event, Raw)).decode()
    assert KEY not in raws + (failure or "") + caplog.text
    assert "sk-ant" not in raws + (failure or "")


def test_the_sdk_reads_the_streamed_answer_as_the_whole_answer():
    events = [
        Usage(50, 0),
        ThinkingDelta("Hmm."),
        ThinkingDelta(signature="c2ln"),
        TextDelta("Let me "),
        TextDelta("look."),
        ToolCallStart(index=0, id="call_1", name="weather"),
        *(ToolCallDelta(piece, index=0) for piece in ('{"ci', 'ty": "Pa', 'ris"}')),
        Usage(50, 9, cache_read_tokens=20, cache_write_tokens=5),
        Finish(StopReason.COMPLETE),
    ]
    streamed = b"".join(event.data for event in answered(events) if isinstance(event, Raw))
    with serve_script(Script([streamed])) as url:
        sdk = anthropic.Anthropic(api_key=KEY, base_url=url, max_retries=0)
        with sdk.messages.stream(model="gpt-5", max_tokens=1024, messages=HI) as stream:
            final = stream.get_final_message()

    read = json.loads(MESSAGE_ID.sub('"msg_ID"', final.model_dump_json(exclude_none=True)))
    assert read == {name: value for name, value in whole(events).items() if value is not None}
    assert final.content[2].input == {"city": "Paris"}


# --- What Claude's stream says, as neutral events ----------------------------------------


def claude_said(*events: tuple[str, dict]) -> list[StreamEvent]:
    """The neutral events converse reads from this Messages stream (a scripted Claude)."""
    frames = [
        anthropic_event("message_start", {"message": {"usage": {"input_tokens": 5}}}),
        *(anthropic_event(name, payload) for name, payload in events),
        anthropic_event("message_delta", {"delta": {"stop_reason": "tool_use"},
                                          "usage": {"output_tokens": 7}}),
        anthropic_event("message_stop", {}),
    ]  # fmt: skip
    with serve_script(Script(frames)) as url:
        client = ANTHROPIC.connect(base_url=url, region="", api_key=KEY)

        async def events_read() -> list[StreamEvent]:
            model = ModelSettings("claude-sonnet-4-6")
            return [event async for event in client.converse(model, asked())]

        return asyncio.run(events_read())[1:-2]  # but the usage and end


def started(index: int, block: dict) -> tuple[str, dict]:
    return "content_block_start", {"index": index, "content_block": block}


def delta_of(index: int, **fields) -> tuple[str, dict]:
    return "content_block_delta", {"index": index, "delta": fields}


# fmt: off
CLAUDE_STREAMS = [  # (Claude's content events, the neutral events read)
    pytest.param([started(0, THINKING), delta_of(0, type="thinking_delta", thinking="Hm"),
                  delta_of(0, type="signature_delta", signature="c2ln"),
                  started(1, TEXT), delta_of(1, type="text_delta", text="Hi")],
                 [ThinkingDelta("Hm"), ThinkingDelta(signature="c2ln"), TextDelta("Hi")],
                 id="thinking, its signature, text"),
    pytest.param([started(0, tool_use("toolu_a", "weather")),
                  delta_of(0, type="input_json_delta", partial_json='{"city"'),
                  delta_of(0, type="input_json_delta", partial_json=': "Paris"}'),
                  started(1, tool_use("toolu_b", "time")),
                  delta_of(1, type="input_json_delta", partial_json="{}")],
                 [ToolCallStart(index=0, id="toolu_a", name="weather"),
                  ToolCallDelta('{"city"', index=0), ToolCallDelta(': "Paris"}', index=0),
                  ToolCallStart(index=1, id="toolu_b", name="time"),
                  ToolCallDelta("{}", index=1)],
                 id="two tool calls, counted from 0"),
    pytest.param([started(0, TEXT), delta_of(0, type="text_delta", text="Looking"),
                  started(1, {"type": "server_tool_use", "id": "srvtoolu_1",
                              "name": "web_search", "input": {}}),
                  delta_of(1, type="input_json_delta", partial_json='{"query": "x"}'),
                  started(2, tool_use("toolu_a", "weather"))],
                 [TextDelta("Looking"), OtherOutput('{"query": "x"}'),
                  ToolCallStart(index=0, id="toolu_a", name="weather")],
                 id="a server tool's input: output, no call of the client's"),
]
# fmt: on


@pytest.mark.parametrize(("events", "read_events"), CLAUDE_STREAMS)
def test_claudes_thinking_and_tool_calls_are_read_as_neutral_events(events, read_events):
    assert claude_said(*events) == read_events


@pytest.mark.parametrize(
    "block",
    [
        pytest.param({"type": "tool_use", "id": 5, "name": "w", "input": {}}, id="id a number"),
        pytest.param({"type": "tool_use", "id": "t", "input": {}}, id="no name"),
    ],
)
def test_a_tool_use_without_its_id_or_name_is_malformed(block):
    with pytest.raises(ChatError, match="malformed"):
        claude_said(started(0, block))
