"""Bedrock as a translation target: a gateway client's Conversation becomes this exact
ConverseStream body (through BedrockClient.converse against the loopback fake, which checks it
as Converse does), the Converse stream's tool calls and thinking become these neutral events, a
two-step tool loop runs, and what has no counterpart is refused naming the client's field with
nothing sent."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx2
import pytest

from llmadmin.providers.base import ModelSettings
from llmadmin.providers.bedrock import BEDROCK
from llmadmin.providers.contract import (
    Conversation,
    Finish,
    Image,
    Message,
    OtherOutput,
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
from llmadmin.providers.errors import ChatError, RequestRefused
from tests.providers.bedrock.fake import (
    KEY,
    SIGNATURE,
    THOUGHT,
    TOOL_INPUT,
    TOOL_USE_ID_SENT,
    aws_message,
    botocore_client,
)
from tests.providers.fakes import FakeProvider, serve

SONNET_45 = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
OPUS_46 = "us.anthropic.claude-opus-4-6-v1"
OPUS_47 = "us.anthropic.claude-opus-4-7"
NOVA = "amazon.nova-pro-v1:0"
LLAMA = "meta.llama3-3-70b-instruct-v1:0"

# botocore talks to the HTTPS fake's self-signed certificate with verify=False.
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n-an-image").decode()
HI = Message("user", ("Hi",))
WEATHER = Tool(
    "weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
WEATHER_SPEC = {
    "toolSpec": {
        "name": "weather",
        "description": "The weather in a city.",
        "inputSchema": {"json": dict(WEATHER.parameters)},
    }
}
CALL = ToolCall("toolu_01A", "weather", '{"city": "Paris"}')
CALLED = Message("assistant", ("Let me look.", CALL))
ANSWERED = Message("user", (ToolResult("toolu_01A", "weather", ("18°C", Image("image/png", PNG))),))
TOOL_LOOP = (HI, CALLED, ANSWERED)
# What OpenAI's and Anthropic's clients name the fields they set.
OPENAI = {
    "max_tokens": "max_completion_tokens",
    "effort": "reasoning_effort",
    "stop": "stop",
    "temperature": "temperature",
    "top_p": "top_p",
    "presence_penalty": "presence_penalty",
}
ANTHROPIC = {"effort": "thinking", "top_k": "top_k", "max_tokens": "max_tokens"}


def conversation(*messages: Message, **fields) -> Conversation:
    return Conversation("", messages or (HI,), streamed=True, **fields)


def converse(server: FakeProvider, model: ModelSettings, asked: Conversation) -> list:
    """The neutral events of BedrockClient.converse against the fake."""
    client = BEDROCK.connect(base_url=server.url, region="us-east-1", api_key=KEY)

    async def events() -> list[StreamEvent]:
        return [event async for event in client.converse(model, asked)]

    return asyncio.run(events())


def user(*content: dict) -> dict:
    return {"role": "user", "content": list(content)}


def assistant(*content: dict) -> dict:
    return {"role": "assistant", "content": list(content)}


def text(value: str) -> dict:
    return {"text": value}


IMAGE = {"image": {"format": "png", "source": {"bytes": PNG}}}
TOOL_USE = {"toolUse": {"toolUseId": "toolu_01A", "name": "weather", "input": {"city": "Paris"}}}
TOOL_RESULT = {"toolResult": {"toolUseId": "toolu_01A", "content": [text("18°C"), IMAGE]}}
LOOP_MESSAGES = [user(text("Hi")), assistant(text("Let me look."), TOOL_USE), user(TOOL_RESULT)]
UNSIGNED = Thinking("Weather needs the tool.")
SIGNED = Thinking("Weather needs the tool.", SIGNATURE)
REASONING = {
    "reasoningContent": {
        "reasoningText": {"text": "Weather needs the tool.", "signature": SIGNATURE}
    }
}

# fmt: off
REQUESTS = [  # (the admin's settings, the client's Conversation, the exact body sent)
    pytest.param(
        ModelSettings(SONNET_45, max_output_tokens=4096, temperature=0.5),
        Conversation("Be brief.", (HI,)),
        {"messages": [user(text("Hi"))], "system": [text("Be brief.")],
         "inferenceConfig": {"maxTokens": 4096, "temperature": 0.5}},
        id="Claude: a system prompt, the admin's settings where the client set none"),
    pytest.param(
        ModelSettings(SONNET_45, max_output_tokens=4096, temperature=0.5),
        conversation(max_tokens=10_000, temperature=0.2, stop=("END",), params=OPENAI),
        {"messages": [user(text("Hi"))],
         "inferenceConfig": {"maxTokens": 4096, "temperature": 0.2, "stopSequences": ["END"]}},
        id="Claude: the client's values win, its max tokens lowered to the admin's cap"),
    pytest.param(
        ModelSettings(SONNET_45, temperature=0.5),
        conversation(top_p=0.9, params=OPENAI),
        {"messages": [user(text("Hi"))], "inferenceConfig": {"topP": 0.9}},
        id="Claude: the admin's temperature left out, Sonnet 4.5 refusing it with a top P"),
    pytest.param(
        ModelSettings(SONNET_45),
        conversation(*TOOL_LOOP, Message("user", ("Thanks",)), tools=(WEATHER,)),
        {"messages": [*LOOP_MESSAGES[:2], user(TOOL_RESULT, text("Thanks"))],
         "toolConfig": {"tools": [WEATHER_SPEC]}},
        id="Claude: a tool call and its result (text and an image), tools on auto"),
    pytest.param(
        ModelSettings(SONNET_45),
        conversation(HI, CALLED, Message("user", (
            ToolResult("toolu_01A", "weather", ("No such city.",), is_error=True),)),
            tools=(WEATHER, Tool("clock")), tool_choice="tool", tool_name="weather"),
        {"messages": [*LOOP_MESSAGES[:2], user({"toolResult": {
            "toolUseId": "toolu_01A", "content": [text("No such city.")], "status": "error"}})],
         "toolConfig": {"tools": [WEATHER_SPEC, {"toolSpec": {
             "name": "clock", "inputSchema": {"json": {}}}}],
             "toolChoice": {"tool": {"name": "weather"}}}},
        id="Claude: a failed tool's result, and one tool chosen"),
    pytest.param(
        ModelSettings(SONNET_45),
        conversation(effort="high", params=OPENAI),
        {"messages": [user(text("Hi"))], "inferenceConfig": {"maxTokens": 16384 + 8192},
         "additionalModelRequestFields": {
             "thinking": {"type": "enabled", "budget_tokens": 16384}}},
        id="Sonnet 4.5, effort high: a thinking budget, max tokens raised to hold it"),
    pytest.param(
        ModelSettings(SONNET_45, max_output_tokens=17_000),
        conversation(effort="high", max_tokens=1000, params=OPENAI),
        {"messages": [user(text("Hi"))], "inferenceConfig": {"maxTokens": 17_000},
         "additionalModelRequestFields": {
             "thinking": {"type": "enabled", "budget_tokens": 16384}}},
        id="Sonnet 4.5, effort high: max tokens raised no further than the admin's cap"),
    pytest.param(
        ModelSettings(SONNET_45, max_output_tokens=8000,
                      options={"thinking": "enabled", "thinking_budget_tokens": 2048}),
        conversation(tools=(WEATHER,), tool_choice="any"),
        {"messages": [user(text("Hi"))], "inferenceConfig": {"maxTokens": 8000},
         "additionalModelRequestFields": {"thinking": {"type": "disabled"}},
         "toolConfig": {"tools": [WEATHER_SPEC], "toolChoice": {"any": {}}}},
        id="Sonnet 4.5: the admin's budgeted thinking off where a tool must be called"),
    pytest.param(
        ModelSettings(SONNET_45),
        conversation(tools=(WEATHER,), tool_choice="any", effort="low", params=OPENAI),
        {"messages": [user(text("Hi"))],
         "additionalModelRequestFields": {"thinking": {"type": "disabled"}},
         "toolConfig": {"tools": [WEATHER_SPEC], "toolChoice": {"any": {}}}},
        id="Sonnet 4.5: the client's effort, thinking off where a tool must be called"),
    pytest.param(
        ModelSettings(OPUS_46, options={"thinking": "adaptive"}),
        conversation(tools=(WEATHER,), tool_choice="tool", tool_name="weather"),
        {"messages": [user(text("Hi"))],
         "additionalModelRequestFields": {"thinking": {"type": "disabled"}},
         "toolConfig": {"tools": [WEATHER_SPEC], "toolChoice": {"tool": {"name": "weather"}}}},
        id="Opus 4.6: adaptive thinking off where a tool must be called"),
    pytest.param(
        ModelSettings(OPUS_46, options={"effort": "low"}),
        conversation(effort="medium", params=OPENAI),
        {"messages": [user(text("Hi"))], "outputConfig": {"effort": "medium"},
         "additionalModelRequestFields": {"thinking": {"type": "adaptive"}}},
        id="Opus 4.6, effort medium: adaptive thinking at that effort, over the admin's"),
    pytest.param(
        ModelSettings(OPUS_47),
        conversation(effort="xhigh", params=OPENAI),
        {"messages": [user(text("Hi"))], "outputConfig": {"effort": "xhigh"},
         "additionalModelRequestFields": {"thinking": {"type": "adaptive"}}},
        id="Opus 4.7, effort xhigh: adaptive thinking at that effort"),
    pytest.param(
        ModelSettings(SONNET_45, max_output_tokens=8000,
                      options={"thinking": "enabled", "thinking_budget_tokens": 2048}),
        conversation(effort="none", temperature=0.3, params=OPENAI),
        {"messages": [user(text("Hi"))],
         "inferenceConfig": {"maxTokens": 8000, "temperature": 0.3},
         "additionalModelRequestFields": {"thinking": {"type": "disabled"}}},
        id="Sonnet 4.5, effort none: thinking disabled over the admin's, a temperature taken"),
    pytest.param(
        ModelSettings(OPUS_46, options={"thinking": "adaptive", "effort": "high"}),
        conversation(HI, Message("assistant", (UNSIGNED, CALL)), ANSWERED, tools=(WEATHER,)),
        {"messages": [LOOP_MESSAGES[0], assistant(TOOL_USE), LOOP_MESSAGES[2]],
         "additionalModelRequestFields": {"thinking": {"type": "disabled"}},
         "outputConfig": {"effort": "high"}, "toolConfig": {"tools": [WEATHER_SPEC]}},
        id="Opus 4.6: thinking off where the last tool call has no signed thinking; effort kept"),
    pytest.param(
        ModelSettings(OPUS_46),
        conversation(HI, Message("assistant", (SIGNED, "Let me look.", CALL)), ANSWERED,
                     tools=(WEATHER,), effort="high", params=OPENAI),
        {"messages": [LOOP_MESSAGES[0], assistant(REASONING, text("Let me look."), TOOL_USE),
                      LOOP_MESSAGES[2]],
         "toolConfig": {"tools": [WEATHER_SPEC]}, "outputConfig": {"effort": "high"},
         "additionalModelRequestFields": {"thinking": {"type": "adaptive"}}},
        id="Opus 4.6: Claude's signed thinking sent back, and thinking stays on"),
    pytest.param(
        ModelSettings(NOVA, max_output_tokens=2048),
        conversation(Message("user", ("What is this?", Image("image/png", PNG))),
                     Message("assistant", (SIGNED, "Let me look.", CALL)), ANSWERED,
                     tools=(WEATHER,), tool_choice="any", parallel_tool_calls=False,
                     effort="high", params=ANTHROPIC),
        {"messages": [user(text("What is this?"), IMAGE), *LOOP_MESSAGES[1:]],
         "inferenceConfig": {"maxTokens": 2048},
         "toolConfig": {"tools": [WEATHER_SPEC], "toolChoice": {"any": {}}}},
        id="Nova: an image, any tool; thinking, an Anthropic client's effort and the "
           "parallel switch dropped"),
    pytest.param(
        ModelSettings(NOVA),
        conversation(top_k=20, params=ANTHROPIC),
        {"messages": [user(text("Hi"))],
         "additionalModelRequestFields": {"inferenceConfig": {"topK": 20}}},
        id="Nova: top K where Nova reads it"),
    pytest.param(
        ModelSettings(LLAMA, temperature=0.4),
        conversation(HI, Message("assistant", (UNSIGNED,)), Message("user", ("  ", "Again")),
                     tools=(WEATHER,), tool_choice="none", effort="none", params=OPENAI),
        {"messages": [user(text("Hi"), text("Again"))], "inferenceConfig": {"temperature": 0.4}},
        id="Llama: effort none, tool choice none leaves the tools out; a turn left empty "
           "and blank text dropped"),
]
# fmt: on


@pytest.mark.parametrize(("model", "asked", "body"), REQUESTS)
def test_a_conversation_becomes_this_converse_stream_body(model, asked, body):
    with serve(FakeProvider("bedrock", KEY)) as server:
        events = converse(server, model, asked)

    (request,) = server.requests
    assert request.path == f"/model/{model.identifier.replace(':', '%3A')}/converse-stream"
    assert request.body == body
    assert events[-1] == Finish(StopReason.COMPLETE)  # the fake took it


def botocore_arguments(value):
    """A body as botocore's converse_stream takes it: an image's bytes as bytes (botocore
    writes a blob in base64 itself)."""
    if isinstance(value, list):
        return [botocore_arguments(item) for item in value]
    if not isinstance(value, dict):
        return value
    arguments = {name: botocore_arguments(item) for name, item in value.items()}
    if "image" in value:
        data = value["image"]["source"]["bytes"]
        arguments["image"]["source"] = {"bytes": base64.b64decode(data)}
    return arguments


@pytest.mark.parametrize(("model", "asked", "body"), REQUESTS)
def test_botocore_sends_the_same_body_and_reads_the_fakes_answer(model, asked, body):
    with serve(FakeProvider("bedrock", KEY), tls=True) as sdk_server:
        client = botocore_client("bedrock-runtime", sdk_server)
        answer = client.converse_stream(modelId=model.identifier, **botocore_arguments(body))
        events = list(answer["stream"])

    (theirs,) = sdk_server.requests
    assert theirs.path == f"/model/{model.identifier.replace(':', '%3A')}/converse-stream"
    assert theirs.body == body
    assert events[-2]["messageStop"]["stopReason"] in ("end_turn", "tool_use")


LIST_ARGUMENTS = ToolCall("toolu_01A", "weather", "[1, 2]")
NESTED_ARGUMENTS = ToolCall("toolu_01A", "weather", "[" * 100_000 + "]" * 100_000)
LONG_ID = "toolu_" + "x" * 59
# fmt: off
REFUSALS = [  # (the admin's settings, the client's Conversation, the field named, our message)
    pytest.param(ModelSettings(NOVA), conversation(presence_penalty=0.5, params=OPENAI),
                 "presence_penalty", "Presence penalty is not supported by AWS Bedrock.",
                 id="a penalty"),
    pytest.param(ModelSettings(NOVA), conversation(temperature=1.5, params=OPENAI),
                 "temperature", "AWS Bedrock accepts a temperature from 0 to 1.",
                 id="a temperature above Bedrock's 1"),
    pytest.param(ModelSettings(SONNET_45), conversation(temperature=0.5, top_p=0.9, params=OPENAI),
                 "top_p", "Claude Sonnet 4.5 takes a temperature or a top P, not both: clear one.",
                 id="Claude's own rule on the client's sampling"),
    pytest.param(ModelSettings(LLAMA), conversation(top_k=40, params=ANTHROPIC),
                 "top_k", "Only Claude and Nova models on Bedrock take top K.",
                 id="top K on Llama"),
    pytest.param(ModelSettings(NOVA), conversation(effort="low", params=OPENAI),
                 "reasoning_effort", "This model takes no reasoning effort: leave it out, or ask "
                 "none.", id="an OpenAI client's effort on Nova"),
    pytest.param(ModelSettings(OPUS_46), conversation(effort="xhigh", params=OPENAI),
                 "reasoning_effort", "Claude Opus 4.6 has no xhigh effort.",
                 id="an effort the Claude model lacks"),
    pytest.param(ModelSettings(SONNET_45, max_output_tokens=8000),
                 conversation(effort="high", params=OPENAI),
                 "reasoning_effort", "thinking at effort high takes 16384 tokens, and this model "
                 "writes at most 8000: ask a lower effort.",
                 id="an effort's thinking budget above the admin's cap"),
    pytest.param(ModelSettings(NOVA),
                 conversation(Message("user", (Image(url="https://example.com/a.png"),))),
                 "messages", "Bedrock takes an image's data, not its URL: send the image itself "
                 "(base64).", id="an image by URL"),
    pytest.param(ModelSettings(NOVA),
                 conversation(Message("user", (Image("image/bmp", PNG),))),
                 "messages", "Bedrock takes PNG, JPEG, GIF and WebP images only.",
                 id="an image format Converse lacks"),
    pytest.param(ModelSettings(NOVA), conversation(*TOOL_LOOP, tools=(WEATHER,),
                                                   tool_choice="none"),
                 "tool_choice", "Bedrock can't forbid tool calls in a conversation that holds "
                 "some: ask auto.", id="tool choice none after tool calls"),
    pytest.param(ModelSettings(NOVA), conversation(*TOOL_LOOP),
                 "tools", "Bedrock needs the tools of this conversation's tool calls: send them.",
                 id="tool calls and no tools"),
    pytest.param(ModelSettings(NOVA),
                 conversation(HI, Message("assistant", (ToolCall(LONG_ID, "weather", "{}"),)),
                              tools=(WEATHER,)),
                 "messages", "A tool call's id Bedrock can't take: letters, digits, _ . : - and "
                 "at most 64 characters.", id="a tool call id longer than Converse's 64"),
    pytest.param(ModelSettings(NOVA),
                 conversation(HI, Message("assistant", (LIST_ARGUMENTS,)), tools=(WEATHER,)),
                 "messages", "a tool call's arguments must be a JSON object.",
                 id="tool call arguments that are no JSON object"),
    pytest.param(ModelSettings(NOVA),
                 conversation(HI, Message("assistant", (NESTED_ARGUMENTS,)), tools=(WEATHER,)),
                 "messages", "a tool call's arguments must be a JSON object.",
                 id="tool call arguments nested past Python's limit"),
    pytest.param(ModelSettings(NOVA),
                 conversation(HI, Message("assistant", (ToolCall("t1", "web search", "{}"),)),
                              Message("user", (ToolResult("t1", "web search", ("x",)),)),
                              tools=(WEATHER,)),
                 "messages", "A tool's name Bedrock can't take: letters, digits, _ - and at most "
                 "64 characters.", id="a tool call's name outside Converse's pattern"),
    pytest.param(ModelSettings(NOVA), conversation(tools=(Tool("web.search"),)),
                 "tools", "A tool's name Bedrock can't take: letters, digits, _ - and at most 64 "
                 "characters.", id="a tool name outside Converse's pattern"),
    pytest.param(ModelSettings(NOVA), conversation(stop=("END", ""), params=OPENAI),
                 "stop", "Bedrock takes stop sequences that are not empty.",
                 id="an empty stop sequence"),
    pytest.param(ModelSettings(NOVA), conversation(Message("assistant", ("Hello.",)), HI),
                 "messages", "Bedrock takes a conversation that begins with a user's message.",
                 id="a conversation beginning with the assistant"),
    pytest.param(ModelSettings(NOVA), conversation(Message("user", (" ",)), Message(
                     "assistant", ("Hello.",)), HI),
                 "messages", "Bedrock takes a conversation that begins with a user's message.",
                 id="a conversation whose user turn before the assistant's is blank"),
]
# fmt: on


@pytest.mark.parametrize(("model", "asked", "param", "message"), REFUSALS)
def test_what_bedrock_cannot_take_is_refused_naming_the_clients_field(model, asked, param, message):
    with serve(FakeProvider("bedrock", KEY)) as server, pytest.raises(RequestRefused) as refused:
        converse(server, model, asked)

    assert (refused.value.param, str(refused.value)) == (param, message)
    assert server.requests == []  # nothing sent


class StreamedBedrock(FakeProvider):
    """Converse's answer as these event stream messages."""

    def __init__(self, messages: list[bytes]) -> None:
        super().__init__("bedrock", KEY)
        self.messages = messages

    def stream_bedrock(self) -> list[bytes]:
        return self.messages


def start(index: int, tool_id: str, name: str) -> bytes:
    payload = {
        "contentBlockIndex": index,
        "start": {"toolUse": {"toolUseId": tool_id, "name": name}},
    }
    return aws_message("contentBlockStart", payload)


def delta(index: int, **fields) -> bytes:
    return aws_message("contentBlockDelta", {"contentBlockIndex": index, "delta": fields})


def stopped(reason: str) -> list[bytes]:
    usage = {"inputTokens": 3, "outputTokens": 5, "totalTokens": 8}
    return [
        aws_message("messageStop", {"stopReason": reason}),
        aws_message("metadata", {"usage": usage, "metrics": {"latencyMs": 9}}),
    ]


ENDED = [Usage(3, 5), Finish(StopReason.COMPLETE)]
# fmt: off
STREAMS = [  # (the event stream's messages, the neutral events read)
    pytest.param(
        [delta(0, text="Let me look."), start(1, "tooluse_a1", "weather"),
         delta(1, toolUse={"input": '{"ci'}), delta(1, toolUse={"input": 'ty": "Paris"}'}),
         *stopped("tool_use")],
        [TextDelta("Let me look."), ToolCallStart(index=0, id="tooluse_a1", name="weather"),
         ToolCallDelta('{"ci', index=0), ToolCallDelta('ty": "Paris"}', index=0), *ENDED],
        id="text, then a tool call in fragments; tool_use completes the answer"),
    pytest.param(
        [start(0, "tooluse_a1", "weather"), start(1, "tooluse:b.2", "clock"),
         delta(1, toolUse={"input": "{}"}), delta(0, toolUse={"input": '{"city": "Oslo"}'}),
         *stopped("tool_use")],
        [ToolCallStart(index=0, id="tooluse_a1", name="weather"),
         ToolCallStart(index=1, id="tooluse:b.2", name="clock"),
         ToolCallDelta("{}", index=1), ToolCallDelta('{"city": "Oslo"}', index=0), *ENDED],
        id="two tool calls, indexed by the answer's calls, their ids as Converse gave them"),
    pytest.param(
        [delta(0, reasoningContent={"text": "Hmm."}),
         delta(0, reasoningContent={"signature": "c2ln"}),
         delta(1, reasoningContent={"redactedContent": "cmVk"}), delta(2, text="Hi"),
         *stopped("end_turn")],
        [ThinkingDelta("Hmm."), ThinkingDelta(signature="c2ln"), OtherOutput(), TextDelta("Hi"),
         *ENDED],
        id="thinking and its signature; redacted thinking as progress"),
    pytest.param(
        [start(0, "tooluse_a1", "weather"), delta(0, toolUse={"input": '{"city": "Pa'}),
         *stopped("max_tokens")],
        [ToolCallStart(index=0, id="tooluse_a1", name="weather"),
         ToolCallDelta('{"city": "Pa', index=0), Usage(3, 5), Finish(StopReason.MAX_TOKENS)],
        id="a tool call cut short by max tokens says so"),
]
# fmt: on


@pytest.mark.parametrize(("messages", "events"), STREAMS)
def test_the_converse_stream_becomes_these_events(messages, events):
    with serve(StreamedBedrock(messages)) as server:
        read = converse(server, ModelSettings(SONNET_45), conversation())

    assert read == events


# fmt: off
MALFORMED = [  # the event stream's messages, each a tool call Converse could not have sent
    pytest.param([start(0, "tool use 1", "weather"), *stopped("tool_use")],
                 id="an id outside Converse's pattern"),
    pytest.param([start(0, "tooluse_a1", "get weather"), *stopped("tool_use")],
                 id="a name outside Converse's pattern"),
    pytest.param([delta(0, toolUse={"input": "{}"}), *stopped("tool_use")],
                 id="arguments of no call started"),
    pytest.param([start(0, "tooluse_a1", "weather"), start(0, "tooluse_b2", "weather"),
                  *stopped("tool_use")], id="two calls started in one block"),
]
# fmt: on


@pytest.mark.parametrize("messages", MALFORMED)
def test_a_tool_call_converse_could_not_send_is_a_malformed_answer(messages):
    with serve(StreamedBedrock(messages)) as server, pytest.raises(ChatError) as error:
        converse(server, ModelSettings(SONNET_45), conversation())

    assert str(error.value) == "The provider sent a malformed answer."


def test_an_exception_mid_tool_call_is_raised_in_our_words():
    throttled = aws_message("", {"message": "slow down"}, exception="throttlingException")
    messages = [start(0, "tooluse_a1", "weather"), delta(0, toolUse={"input": "{"}), throttled]
    with serve(StreamedBedrock(messages)) as server, pytest.raises(ChatError) as error:
        converse(server, ModelSettings(SONNET_45), conversation())

    assert str(error.value) == "The provider's rate limit was reached: try again in a moment."


def call_of(events: list) -> tuple[ToolCall, Thinking | None]:
    """The tool call an answer made, its arguments joined, and its thinking."""
    (started,) = [event for event in events if isinstance(event, ToolCallStart)]
    arguments = "".join(event.text for event in events if isinstance(event, ToolCallDelta))
    thoughts = [event for event in events if isinstance(event, ThinkingDelta)]
    thinking = Thinking(
        "".join(event.text for event in thoughts), "".join(event.signature for event in thoughts)
    )
    return ToolCall(started.id, started.name, arguments), thinking if thoughts else None


@pytest.mark.parametrize(
    ("model", "thinks"),
    [
        pytest.param(ModelSettings(OPUS_46), True, id="Claude Opus 4.6, thinking"),
        pytest.param(ModelSettings(NOVA, max_output_tokens=1000), False, id="Nova"),
    ],
)
def test_a_two_step_tool_loop_runs_through_converse(model, thinks):
    asked = conversation(HI, tools=(WEATHER,), effort="high" if thinks else None, params=OPENAI)
    with serve(FakeProvider("bedrock", KEY)) as server:
        first = converse(server, model, asked)
        call, thinking = call_of(first)
        said = "".join(event.text for event in first if isinstance(event, TextDelta))
        parts = (thinking, said, call) if thinking else (said, call)
        result = ToolResult(call.id, call.name, ("18°C and sunny",))
        second = converse(
            server,
            model,
            conversation(
                HI,
                Message("assistant", parts),
                Message("user", (result,)),
                tools=(WEATHER,),
                effort=asked.effort,
                params=OPENAI,
            ),
        )

    assert call == ToolCall(TOOL_USE_ID_SENT, "weather", json.dumps(TOOL_INPUT))
    assert len([event for event in first if isinstance(event, ToolCallDelta)]) > 3
    assert thinking == (Thinking("".join(THOUGHT), SIGNATURE) if thinks else None)
    assert first[-1] == Finish(StopReason.COMPLETE)
    assert [event.text for event in second if isinstance(event, TextDelta)] == [
        "The tool said: ",
        "18°C and sunny",
    ]
    assert second[-2:] == [Usage(12, 5), Finish(StopReason.COMPLETE)]
    # The second step thinks on as the first did: the thinking came back signed.
    sent = server.requests[1].body
    assert ("additionalModelRequestFields" in sent) is thinks


def fake_refusal(body: dict) -> str:
    """The fake's 400 message for a ConverseStream body, sent as is."""
    with serve(FakeProvider("bedrock", KEY)) as server:
        response = httpx2.post(
            f"{server.url}/model/{OPUS_46}/converse-stream",
            json=body,
            headers={"Authorization": f"Bearer {KEY}"},
        )
    assert response.status_code == 400
    return response.json()["message"]


TOOLS = {"toolConfig": {"tools": [WEATHER_SPEC]}}
THINKING_ON = {"additionalModelRequestFields": {"thinking": {"type": "adaptive"}}}
ANSWER = user({"toolResult": {"toolUseId": "toolu_01A", "content": [text("18°C")]}})
# fmt: off
FAKE_REFUSES = [  # (a body, what the fake answers: Converse's and Claude's refusals)
    pytest.param({"messages": [user(text(" "))]},
                 "The text field in the ContentBlock object at messages.0.content.0 is blank. "
                 "Add text to the text field, and try again.", id="blank text"),
    pytest.param({"messages": [assistant(text("Hello.")), user(text("Hi"))]},
                 "A conversation must start with a user message. Try again with a conversation "
                 "that starts with a user message.", id="the assistant first"),
    pytest.param({"messages": [user(text("Hi"))], "inferenceConfig": {"stopSequences": [""]}},
                 "Invalid length for parameter inferenceConfig.stopSequences[0], value: 0, "
                 "valid min length: 1", id="an empty stop sequence"),
    pytest.param({"messages": LOOP_MESSAGES},
                 "The toolConfig field must be defined when using toolUse and toolResult content "
                 "blocks.", id="tool blocks without toolConfig"),
    pytest.param({"messages": [user(text("Hi")), assistant(text("Hm.")), ANSWER], **TOOLS},
                 "messages.2.content: a toolResult answers no toolUse of the previous turn.",
                 id="a result of no call"),
    pytest.param({"messages": [*LOOP_MESSAGES[:2], user(text("And?"))], **TOOLS},
                 "Expected toolResult blocks at messages.2.content for the following Ids: "
                 "toolu_01A", id="a call left unanswered"),
    pytest.param({"messages": [user(text("Hi")), assistant({"toolUse": {
                     **TOOL_USE["toolUse"], "toolUseId": "x" * 65}})], **TOOLS},
                 "messages.1.content.0.toolUse.toolUseId: does not match the pattern.",
                 id="a tool call id longer than 64"),
    pytest.param({"messages": [user({"image": {"format": "bmp", "source": {"bytes": PNG}}})]},
                 "messages.0.content.0.image.format: not one of png, jpeg, gif, webp.",
                 id="an image format Converse lacks"),
    pytest.param({"messages": [user(text("Hi"))], "toolConfig": {
                     "tools": [WEATHER_SPEC], "toolChoice": {"tool": {"name": "clock"}}}},
                 "toolConfig.toolChoice.tool.name: 'clock' is not a tool.",
                 id="a chosen tool not offered"),
    pytest.param({"messages": [user(text("Hi"))], "toolConfig": {
                     "tools": [WEATHER_SPEC], "toolChoice": {"any": {}}},
                  "additionalModelRequestFields": {"thinking": {"type": "enabled",
                                                                "budget_tokens": 1024}}},
                 "Thinking may not be enabled when tool_choice forces tool use.",
                 id="Claude thinking with a budget and a tool it must call"),
    pytest.param({"messages": LOOP_MESSAGES, **TOOLS, **THINKING_ON},
                 "messages: Expected `thinking` or `redacted_thinking`, but found `tool_use`. "
                 "When `thinking` is enabled, a final `assistant` message must start with a "
                 "thinking block.", id="Claude thinking on a last tool call without its thinking"),
]
# fmt: on


@pytest.mark.parametrize(("body", "message"), FAKE_REFUSES)
def test_the_fake_refuses_what_converse_refuses(body, message):
    assert fake_refusal(body) == message
