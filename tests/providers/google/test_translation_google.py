"""Gemini as a translation target: a Conversation in, the exact streamGenerateContent body out
(through GoogleClient.converse against the fake, which refuses what the API refuses); Gemini's
stream in, the exact neutral events out; a two-step tool loop, with Gemini 3's thought
signature carried in the call's id and sent back."""

from __future__ import annotations

import asyncio
import base64
import re

import pytest
from google.genai import errors as genai_errors
from google.genai import types

from llmadmin.providers.base import ModelSettings
from llmadmin.providers.contract import (
    Conversation,
    Finish,
    Image,
    Message,
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
from llmadmin.providers.google import GOOGLE
from tests.providers.fakes import FakeProvider, serve
from tests.providers.google.fake import SIGNATURE
from tests.providers.google.test_provider_google import (
    KEY,
    ScriptedGemini,
    as_json,
    sdk_client,
)
from tests.providers.hostile import ERROR_STATUSES, serve_hostile

# The fake's signature (bytes whose base64 is "+/+/c2lnbmVkIHRob3VnaHQ=") in a call's id, and
# as google-genai sends it back (base64url, padded).
SIGNED_ID = "call_sig_-_-_c2lnbmVkIHRob3VnaHQ"
SENT_SIGNATURE = "-_-_c2lnbmVkIHRob3VnaHQ="
OUR_ID = re.compile(r"call_[0-9a-f]{32}")
PNG = "iVBORw0KGgo="
WEATHER = Tool(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
DECLARED = {
    "functionDeclarations": [
        {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters_json_schema": dict(WEATHER.parameters),
        }
    ]
}
HI = Message("user", ("Hi",))
ASKED = Message("user", ("Weather in Paris?",))
CALLED = Message(
    "assistant", ("Let me look.", ToolCall("call_1", "get_weather", '{"city": "Paris"}'))
)
ANSWERED = Message("user", (ToolResult("call_1", "get_weather", ("18C",)),))
USER_HI = {"role": "user", "parts": [{"text": "Hi"}]}
USER_ASKED = {"role": "user", "parts": [{"text": "Weather in Paris?"}]}
CALL = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
MODEL_CALLED = {"role": "model", "parts": [{"text": "Let me look."}, CALL]}
RESULT = {"functionResponse": {"name": "get_weather", "response": {"output": "18C"}}}
USER_ANSWERED = {"role": "user", "parts": [RESULT]}
# The params of a Chat Completions client's request, as its API reads them.
OPENAI_PARAMS = {
    "max_tokens": "max_completion_tokens",
    "effort": "reasoning_effort",
    "stop": "stop",
    "temperature": "temperature",
    "presence_penalty": "presence_penalty",
}


def conversation(*messages: Message, **fields) -> Conversation:
    return Conversation(fields.pop("system", ""), messages, params=OPENAI_PARAMS, **fields)


def conversed(server: FakeProvider, model: ModelSettings, talk: Conversation) -> list:
    """The events of a translated request through GoogleClient.converse."""
    client = GOOGLE.connect(base_url=server.url, region="", api_key=KEY)

    async def answer() -> list[StreamEvent]:
        return [event async for event in client.converse(model, talk)]

    return asyncio.run(answer())


def sent(model: ModelSettings, talk: Conversation) -> dict:
    """The body converse sent for it (the fake took it)."""
    with serve(FakeProvider("google", KEY)) as server:
        conversed(server, model, talk)
    return server.requests[-1].body


# --- 1. Conversation in, request out ---------------------------------------------------------

PRO, FLASH, LITE = "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"
PRO_3, FLASH_3, NEWER = "gemini-3-pro-preview", "gemini-3-flash-preview", "gemini-3.5-pro-preview"
# fmt: off
REQUESTS = [
    pytest.param(
        ModelSettings(FLASH), conversation(HI, system="Be brief."),
        {"contents": [USER_HI],
         "systemInstruction": {"role": "user", "parts": [{"text": "Be brief."}]}},
        id="text and system"),
    pytest.param(
        ModelSettings(FLASH, max_output_tokens=4096, temperature=0.5, top_k=40,
                      options={"thinking_budget": 512}),
        conversation(HI, temperature=1.0, max_tokens=10_000, top_p=0.9),
        {"contents": [USER_HI],
         "generationConfig": {"maxOutputTokens": 4096, "temperature": 1.0, "topP": 0.9,
                              "topK": 40.0, "thinkingConfig": {"thinking_budget": 512}}},
        id="the client's values win, the admin's fill in, max tokens at the admin's cap"),
    pytest.param(
        ModelSettings(FLASH), conversation(HI, stop=("END", "STOP")),
        {"contents": [USER_HI], "generationConfig": {"stopSequences": ["END", "STOP"]}},
        id="stop sequences"),
    pytest.param(
        ModelSettings(FLASH),
        conversation(ASKED, CALLED, ANSWERED, tools=(WEATHER,)),
        {"contents": [USER_ASKED, MODEL_CALLED, USER_ANSWERED], "tools": [DECLARED]},
        id="a tool call and its result, tools as JSON Schema, auto choice sent as nothing"),
    pytest.param(
        ModelSettings(FLASH),
        conversation(
            ASKED,
            Message("assistant", (Thinking("Hmm.", "c2ln"), ToolCall("call_1", "get_weather", ""),
                                  ToolCall("call_2", "get_weather", '{"city": "Rome"}'))),
            Message("user", (ToolResult("call_1", "get_weather", ("no such city",),
                                        is_error=True),)),
            Message("user", (ToolResult("call_2", "get_weather", ("20C", Image("image/png", PNG),
                                                                  "sunny")),
                             "And tomorrow?")),
            tools=(Tool("get_weather"),), tool_choice="any"),
        {"contents": [
            USER_ASKED,
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {}}},
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather",
                                      "response": {"error": "no such city"}}},
                {"functionResponse": {"name": "get_weather",
                                      "response": {"output": "20C\nsunny"}}},
                {"inlineData": {"data": PNG, "mime_type": "image/png"}},
                {"text": "And tomorrow?"}]}],
         "tools": [{"functionDeclarations": [{"name": "get_weather"}]}],
         "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}},
        id="parallel calls, thinking dropped, an error result, a result's image after the "
           "results, result turns in a row as one"),
    pytest.param(
        ModelSettings(FLASH),
        conversation(Message("user", ("What is this?", Image("image/png", PNG))),
                     tools=(WEATHER,), tool_choice="tool", tool_name="get_weather"),
        {"contents": [{"role": "user", "parts": [
            {"text": "What is this?"}, {"inlineData": {"data": PNG, "mime_type": "image/png"}}]}],
         "tools": [DECLARED],
         "toolConfig": {"functionCallingConfig": {"mode": "ANY",
                                                  "allowedFunctionNames": ["get_weather"]}}},
        id="an image, a named tool"),
    pytest.param(
        ModelSettings(FLASH), conversation(HI, tools=(WEATHER,), tool_choice="none",
                                           parallel_tool_calls=False),
        {"contents": [USER_HI], "tools": [DECLARED],
         "toolConfig": {"functionCallingConfig": {"mode": "NONE"}}},
        id="no tool calls; parallel_tool_calls has no switch: dropped"),
    pytest.param(
        ModelSettings(FLASH_3),
        conversation(ASKED, Message("assistant", (ToolCall(SIGNED_ID, "get_weather", "{}"),)),
                     Message("user", (ToolResult(SIGNED_ID, "get_weather", ("18C",)),)),
                     tools=(WEATHER,)),
        {"contents": [
            USER_ASKED,
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}},
                                         "thoughtSignature": SENT_SIGNATURE}]},
            USER_ANSWERED],
         "tools": [DECLARED]},
        id="Gemini 3: the signature a call's id carries sent back"),
    pytest.param(
        ModelSettings(FLASH_3),
        conversation(ASKED, Message("assistant", (
            ToolCall("toolu_1", "get_weather", "{}"), ToolCall("toolu_2", "get_weather", "{}"))),
            Message("user", (ToolResult("toolu_1", "get_weather", ("18C",)),
                             ToolResult("toolu_2", "get_weather", ("18C",)))),
            tools=(WEATHER,)),
        {"contents": [
            USER_ASKED,
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {}},
                 "thoughtSignature": "skip_thought_signature_validator"},
                {"functionCall": {"name": "get_weather", "args": {}}}]},
            {"role": "user", "parts": [RESULT, RESULT]}],
         "tools": [DECLARED]},
        id="Gemini 3: another model's calls, the first with Google's stand-in signature"),
    pytest.param(
        ModelSettings(PRO_3, options={"thinking_level": "low", "include_thoughts": True}),
        conversation(HI, effort="medium"),
        {"contents": [USER_HI],
         "generationConfig": {"thinkingConfig": {"thinking_level": "HIGH",
                                                 "include_thoughts": True}}},
        id="effort on Gemini 3 Pro: the nearest level it takes, above; the admin's replaced"),
    pytest.param(
        ModelSettings(FLASH_3), conversation(HI, effort="none"),
        {"contents": [USER_HI],
         "generationConfig": {"thinkingConfig": {"thinking_level": "MINIMAL"}}},
        id="effort none on Gemini 3 Flash: minimal"),
    pytest.param(
        ModelSettings(NEWER), conversation(HI, effort="max"),
        {"contents": [USER_HI],
         "generationConfig": {"thinkingConfig": {"thinking_level": "XHIGH"}}},
        id="effort max on a later Gemini: xhigh"),
    pytest.param(
        ModelSettings(FLASH, options={"include_thoughts": True}),
        conversation(HI, effort="none"),
        {"contents": [USER_HI], "generationConfig": {"thinkingConfig": {"thinking_budget": 0}}},
        id="effort none on 2.5 Flash: budget 0, the admin's thoughts left out"),
    pytest.param(
        ModelSettings(PRO), conversation(HI, effort="minimal"),
        {"contents": [USER_HI],
         "generationConfig": {"thinkingConfig": {"thinking_budget": 128}}},
        id="effort minimal on 2.5 Pro, which can't turn thinking off: its lowest budget"),
    pytest.param(
        ModelSettings(LITE), conversation(HI, effort="low"),
        {"contents": [USER_HI],
         "generationConfig": {"thinkingConfig": {"thinking_budget": 1024}}},
        id="effort low on 2.5: 1024"),
    pytest.param(
        ModelSettings(PRO), conversation(HI, effort="medium"),
        {"contents": [USER_HI],
         "generationConfig": {"thinkingConfig": {"thinking_budget": 8192}}},
        id="effort medium on 2.5: 8192"),
    pytest.param(
        ModelSettings(FLASH), conversation(HI, effort="xhigh"),
        {"contents": [USER_HI],
         "generationConfig": {"thinkingConfig": {"thinking_budget": 24576}}},
        id="effort xhigh on 2.5 Flash: its highest budget"),
    pytest.param(
        ModelSettings("gemini-2.0-flash", temperature=0.3), conversation(HI, effort="none"),
        {"contents": [USER_HI], "generationConfig": {"temperature": 0.3}},
        id="effort none on a model that doesn't think: nothing to send"),
    pytest.param(
        ModelSettings(FLASH), conversation(HI, max_tokens=100_000),
        {"contents": [USER_HI], "generationConfig": {"maxOutputTokens": 65536}},
        id="max tokens over the model's output limit (no admin cap): lowered to it"),
    pytest.param(
        ModelSettings("gemini-2.0-flash"),
        Conversation("", (HI,), effort="low", params={"effort": "thinking"}),
        {"contents": [USER_HI]},
        id="an Anthropic client's thinking on a model that doesn't think: dropped (advice)"),
]
# fmt: on


@pytest.mark.parametrize(("model", "talk", "body"), REQUESTS)
def test_a_conversation_is_sent_as_this_gemini_body(model, talk, body):
    assert sent(model, talk) == body


def test_a_tool_loop_is_sent_as_google_genai_sends_it():
    signed_call = ToolCall(SIGNED_ID, "get_weather", '{"city": "Paris"}')
    talk = conversation(
        Message("user", ("Weather here?", Image("image/png", PNG))),
        Message("assistant", ("Let me look.", signed_call)),
        Message("user", (ToolResult(SIGNED_ID, "get_weather", ("18C",)),)),
        system="Be brief.",
        tools=(WEATHER,),
        tool_choice="tool",
        tool_name="get_weather",
        stop=("END",),
        max_tokens=100,
    )
    with serve(FakeProvider("google", KEY)) as theirs, sdk_client(theirs) as sdk:
        ours = sent(ModelSettings(FLASH), talk)
        list(
            sdk.models.generate_content_stream(
                model=FLASH,
                contents=[
                    types.Content(role="user", parts=[
                        types.Part(text="Weather here?"),
                        types.Part.from_bytes(data=base64.b64decode(PNG), mime_type="image/png"),
                    ]),
                    types.Content(role="model", parts=[
                        types.Part(text="Let me look."),
                        types.Part(
                            function_call=types.FunctionCall(name="get_weather",
                                                             args={"city": "Paris"}),
                            thought_signature=base64.b64decode(SIGNATURE),
                        ),
                    ]),
                    types.Content(role="user", parts=[
                        types.Part.from_function_response(
                            name="get_weather", response={"output": "18C"}
                        )
                    ]),
                ],
                config=types.GenerateContentConfig(
                    system_instruction="Be brief.",
                    tools=[types.Tool(function_declarations=[types.FunctionDeclaration(
                        name=WEATHER.name,
                        description=WEATHER.description,
                        parameters_json_schema=WEATHER.parameters,
                    )])],
                    tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
                        mode="ANY", allowed_function_names=["get_weather"]
                    )),
                    stop_sequences=["END"],
                    max_output_tokens=100,
                ),
            )
        )  # fmt: skip

    assert as_json(ours) == as_json(theirs.requests[-1].body)


# fmt: off
REFUSED = [
    pytest.param(
        ModelSettings(FLASH), conversation(Message("user", (Image(url="https://x.test/a.png"),))),
        "messages", "Gemini takes images as data, not by URL.", id="image by URL"),
    pytest.param(
        ModelSettings(FLASH), conversation(HI, stop=tuple("abcdef")),
        "stop", "Gemini takes at most 5 stop sequences.", id="six stop sequences"),
    pytest.param(
        ModelSettings("gemini-2.0-flash"), conversation(HI, effort="low"),
        "reasoning_effort", "gemini-2.0-flash doesn't think.",
        id="effort on a model that doesn't think"),
    pytest.param(
        ModelSettings("gemini-2.0-flash"), conversation(HI, effort="minimal"),
        "reasoning_effort", "gemini-2.0-flash doesn't think.",
        id="effort minimal on a model that doesn't think (none only)"),
    pytest.param(
        ModelSettings(PRO), conversation(HI, presence_penalty=0.5),
        "presence_penalty", "gemini-2.5-pro has no penalties: leave it empty.",
        id="a penalty the model refuses (the type's rules)"),
    pytest.param(
        ModelSettings(FLASH), conversation(HI, temperature=2.5),
        "temperature", "Google (Gemini) accepts a temperature from 0 to 2.",
        id="temperature over Gemini's range"),
    pytest.param(
        ModelSettings(FLASH), conversation(HI, tools=(Tool("9lives"),)),
        "tools", "Gemini takes tool names of letters, digits, _ . : and -, starting "
        "with a letter or _, at most 128 characters.", id="a tool name Gemini refuses"),
    pytest.param(
        ModelSettings(FLASH),
        conversation(ASKED, Message("assistant", (ToolCall("c", "get_weather", "[1]"),))),
        "messages", "a tool call's arguments must be a JSON object.",
        id="a call's arguments not an object"),
]
# fmt: on


@pytest.mark.parametrize(("model", "talk", "param", "message"), REFUSED)
def test_what_gemini_cannot_take_is_refused_naming_the_clients_field(model, talk, param, message):
    with serve(FakeProvider("google", KEY)) as server, pytest.raises(RequestRefused) as refused:
        conversed(server, model, talk)

    assert (refused.value.param, str(refused.value)) == (param, message)
    assert server.requests == []  # refused here: nothing sent, nothing to pay


# --- 2. Gemini's stream in, events out --------------------------------------------------------


def chunk(*parts: dict, **fields) -> dict:
    return {"candidates": [{"content": {"role": "model", "parts": list(parts)}, **fields}]}


USAGE = {"promptTokenCount": 10, "candidatesTokenCount": 4, "thoughtsTokenCount": 3}
SIGNED_CALL = {**CALL, "thoughtSignature": SIGNATURE}
# fmt: off
STREAMS = [
    pytest.param(
        [chunk({"text": "Let me look."}),
         {**chunk(SIGNED_CALL, finishReason="STOP"), "usageMetadata": USAGE}],
        [TextDelta("Let me look."),
         ToolCallStart(index=0, id=SIGNED_ID, name="get_weather"),
         ToolCallDelta(index=0, text='{"city": "Paris"}'),
         Usage(10, 7, reasoning_tokens=3), Finish(StopReason.COMPLETE)],
        id="a signed call: its signature in the id; STOP after a call is complete"),
    pytest.param(
        [chunk({"functionCall": {"name": "get_weather", "args": {"city": "Rome"},
                                 "id": "fc-7_a"}}),
         chunk({"functionCall": {"name": "get_time"}}, {"functionCall": {
             "name": "get_weather", "id": "not an id!", "args": {"city": "Zürich"}}},
               finishReason="STOP")],
        [ToolCallStart(index=0, id="fc-7_a", name="get_weather"),
         ToolCallDelta(index=0, text='{"city": "Rome"}'),
         ToolCallStart(index=1, id="call_<uuid>", name="get_time"),
         ToolCallDelta(index=1, text="{}"),
         ToolCallStart(index=2, id="call_<uuid>", name="get_weather"),
         ToolCallDelta(index=2, text='{"city": "Zürich"}'),
         Finish(StopReason.COMPLETE)],
        id="parallel calls over chunks: Gemini's own id where usable, else ours"),
    pytest.param(
        [chunk({"functionCall": {"name": "get_weather", "args": {}},
                "thoughtSignature": "not base64!"}, finishReason="STOP")],
        [ToolCallStart(index=0, id="call_<uuid>", name="get_weather"),
         ToolCallDelta(index=0, text="{}"), Finish(StopReason.COMPLETE)],
        id="a signature that is not base64: not carried"),
    pytest.param(
        [chunk({**CALL, "thoughtSignature": "-_-_c2lnbmVkIHRob3VnaHQ"}, finishReason="STOP")],
        [ToolCallStart(index=0, id=SIGNED_ID, name="get_weather"),
         ToolCallDelta(index=0, text='{"city": "Paris"}'), Finish(StopReason.COMPLETE)],
        id="a signature in base64url, unpadded: the same id"),
    pytest.param(
        [chunk({"text": "Hm, ", "thought": True}, {"text": "rain?", "thought": True}),
         chunk({"text": "Rain.", "thoughtSignature": SIGNATURE}, finishReason="STOP")],
        [ThinkingDelta("Hm, "), ThinkingDelta("rain?"), TextDelta("Rain."),
         Finish(StopReason.COMPLETE)],
        id="thoughts as thinking; a text part's signature not passed on"),
    pytest.param(
        [chunk({"text": "Rain"}, finishReason="MAX_TOKENS")],
        [TextDelta("Rain"), Finish(StopReason.MAX_TOKENS)], id="max tokens"),
    pytest.param(
        [chunk({"text": "Rain"}, finishReason="SAFETY")],
        [TextDelta("Rain"), Finish(StopReason.BLOCKED)], id="blocked by safety"),
    pytest.param(
        [{"promptFeedback": {"blockReason": "SAFETY"},
          "usageMetadata": {"promptTokenCount": 10}}],
        [Usage(10, 0), Finish(StopReason.BLOCKED)], id="blocked prompt"),
]
# fmt: on


def our_ids(events: list[StreamEvent]) -> list[StreamEvent]:
    """The events, the ids the translation made (call_<uuid4 hex>) named alike."""
    return [
        ToolCallStart(index=event.index, id="call_<uuid>", name=event.name)
        if isinstance(event, ToolCallStart) and OUR_ID.fullmatch(event.id)
        else event
        for event in events
    ]


@pytest.mark.parametrize(("chunks", "events"), STREAMS)
def test_gemini_stream_is_read_as_these_events(chunks, events):
    with serve(ScriptedGemini(chunks=chunks)) as server:
        answer = conversed(server, ModelSettings(FLASH), conversation(HI, tools=(WEATHER,)))

    assert our_ids(answer) == events


# fmt: off
FAILURES = [
    pytest.param(
        [chunk({"text": "Rain"}),
         {"error": {"code": 503, "message": "x", "status": "UNAVAILABLE"}}],
        "The provider is overloaded", id="mid-stream error"),
    pytest.param(
        [chunk({"text": "Let me look."}, finishReason="MALFORMED_FUNCTION_CALL")],
        "The model made a malformed tool call: the answer was ended there.",
        id="malformed function call"),
    pytest.param(
        [chunk({"functionCall": {"name": "get_weather", "args": ["Paris"]}})],
        "The provider sent a malformed answer.", id="a call's arguments not an object"),
    pytest.param([chunk({"text": "Rain"})], "The provider's answer was cut off",
                 id="no finish reason"),
]
# fmt: on


@pytest.mark.parametrize(("chunks", "message"), FAILURES)
def test_a_failing_gemini_stream_raises_our_error(chunks, message):
    with serve(ScriptedGemini(chunks=chunks)) as server, pytest.raises(ChatError) as failed:
        conversed(server, ModelSettings(FLASH), conversation(HI, tools=(WEATHER,)))

    assert str(failed.value).startswith(message)


# --- 3. The tool loop -------------------------------------------------------------------------


def answered_call(events: list[StreamEvent]) -> ToolCall:
    """The one tool call of an answer, as a client sends it back."""
    (start,) = [event for event in events if isinstance(event, ToolCallStart)]
    arguments = "".join(event.text for event in events if isinstance(event, ToolCallDelta))
    return ToolCall(start.id, start.name, arguments)


@pytest.mark.parametrize("identifier", [FLASH, FLASH_3])
def test_a_two_step_tool_loop_runs_and_gemini_3_gets_its_signature_back(identifier):
    model = ModelSettings(identifier)
    with serve(FakeProvider("google", KEY)) as server:
        first = conversed(server, model, conversation(ASKED, tools=(WEATHER,)))
        call = answered_call(first)
        result = ToolResult(call.id, call.name, ("18C",))
        second = conversed(
            server,
            model,
            conversation(
                ASKED, Message("assistant", (call,)), Message("user", (result,)), tools=(WEATHER,)
            ),
        )

    assert (call.name, call.arguments) == ("get_weather", '{"city": "Paris", "days": 2}')
    assert first[-1] == Finish(StopReason.COMPLETE)
    sent_back = server.requests[-1].body["contents"][1]["parts"][0]
    if identifier == FLASH_3:
        assert call.id == SIGNED_ID
        assert sent_back["thoughtSignature"] == SENT_SIGNATURE
    else:
        assert OUR_ID.fullmatch(call.id)
        assert "thoughtSignature" not in sent_back
    text = "".join(event.text for event in second if isinstance(event, TextDelta))
    assert (text, second[-1]) == ("The tool said: 18C", Finish(StopReason.COMPLETE))


def test_gemini_3_refuses_a_call_sent_back_with_a_signature_it_did_not_give():
    tampered = ToolCall("call_sig_AAAA", "get_weather", "{}")
    talk = conversation(
        ASKED,
        Message("assistant", (tampered,)),
        Message("user", (ToolResult(tampered.id, "get_weather", ("18C",)),)),
        tools=(WEATHER,),
    )
    with serve(FakeProvider("google", KEY)) as server, pytest.raises(ChatError):
        conversed(server, ModelSettings(FLASH_3), talk)

    assert server.requests[-1].body["contents"][1]["parts"][0]["thoughtSignature"] == "AAAA"


# --- 4. A hostile Gemini ----------------------------------------------------------------------

# (mode, status) of tests/providers/hostile.py that a chat request meets.
# fmt: off
ATTACKS = [
    ("redirect", None), *(("error_body", status) for status in ERROR_STATUSES),
    ("reason_phrase", 200), ("reason_phrase", 401), ("midstream", None), ("not_json", None),
    ("finish", None), ("bad_location", None), ("bad_header", None), ("bad_charset", None),
    ("bad_encoding", None), ("odd_shapes", None),
]
# fmt: on


@pytest.mark.parametrize(("mode", "status"), ATTACKS, ids=lambda value: str(value))
def test_a_hostile_geminis_answers_to_a_translated_request_are_told_in_our_words(
    mode, status, caplog
):
    caplog.set_level("DEBUG")
    talk = conversation(ASKED, tools=(WEATHER,))
    with serve_hostile("google", mode, status) as server:
        try:
            told = repr(conversed(server, ModelSettings(FLASH), talk))
        except ProviderError as error:
            told = str(error)

    assert server.credentials == {KEY}
    assert KEY not in told
    assert KEY not in caplog.text


# --- 5. The fake refuses what Gemini refuses (sent by google-genai) ---------------------------

SDK_ASKED = types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])
SDK_CALL = types.Part.from_function_call(name="get_weather", args={})
SDK_RESULT = types.Content(
    role="user",
    parts=[types.Part.from_function_response(name="get_weather", response={"output": "18C"})],
)
SDK_TOOLS = [types.Tool(function_declarations=[types.FunctionDeclaration(name="get_weather")])]
# fmt: off
GEMINI_REFUSES = [
    pytest.param(
        FLASH_3, [SDK_ASKED, types.Content(role="model", parts=[SDK_CALL]), SDK_RESULT], {},
        "missing a thought_signature", id="Gemini 3: the current turn's call unsigned"),
    pytest.param(
        FLASH, [SDK_ASKED, types.Content(role="model", parts=[types.Part(text="Hm")]), SDK_RESULT],
        {}, "number of function response parts", id="a result answering no call"),
    pytest.param(
        FLASH, [SDK_ASKED], {"stop_sequences": list("abcdef")}, "at most 5",
        id="six stop sequences"),
    pytest.param(
        FLASH, [SDK_ASKED],
        {"tool_config": types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
            mode="AUTO", allowed_function_names=["get_weather"]))},
        "only with mode ANY", id="allowed names under AUTO"),
]
# fmt: on


@pytest.mark.parametrize(("identifier", "contents", "config", "error"), GEMINI_REFUSES)
def test_the_fake_refuses_what_gemini_refuses(identifier, contents, config, error):
    config = types.GenerateContentConfig(tools=SDK_TOOLS, **config)
    with (
        serve(FakeProvider("google", KEY)) as server,
        sdk_client(server) as sdk,
        pytest.raises(genai_errors.ClientError) as refused,
    ):
        list(sdk.models.generate_content_stream(model=identifier, contents=contents, config=config))

    assert refused.value.code == 400
    assert error in refused.value.message
