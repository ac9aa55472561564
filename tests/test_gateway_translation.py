"""Any model through either gateway API: an `openai` client on Anthropic's, Gemini's and
Bedrock's models, an `anthropic` client on OpenAI's, Gemini's and Nova's, through the official
SDKs against the server under uvicorn, with the loopback fakes of tests/providers/ upstream.

The fakes refuse what the real APIs refuse (a body translated wrong fails there) and answer a
tool loop: a call of the request's first tool when tools are offered and no result came yet,
then text (quoting the result, but Anthropic's).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from django.contrib.auth.models import User
from django.db import OperationalError
from django.test import override_settings

from billing.models import UsageRecord, UserBudget
from gateway.calls import REFUSALS
from gateway.tokens import token_mint
from llmadmin.models import LLMModel
from tests.conftest import asgi_serving
from tests.factories import LLMModelFactory, provider_at
from tests.providers.anthropic.fake import MessagesFake, serve_messages
from tests.providers.bedrock.fake import aws_message
from tests.providers.fakes import FakeProvider, fake_for, serve
from tests.providers.google.fake import SIGNATURE as GEMINI_SIGNATURE
from tests.providers.hostile import serve_hostile
from tests.providers.servers import sse
from tests.stream_servers import KEEP_ALIVE, Script, openai_delta, serve_script

KEY = "sk-UPSTREAM-translated-9"
USER_AGENT = "translation-test/1.0"
SYSTEM = "Answer in one sentence."
ASK = "What is the weather in Paris?"
RESULT = "18 degrees and sunny"
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
    "required": ["city"],
}
OPENAI_TOOL = {
    "type": "function",
    "function": {"name": "weather", "description": "The weather in a city.", "parameters": SCHEMA},
}
ANTHROPIC_TOOL = {
    "name": "weather",
    "description": "The weather in a city.",
    "input_schema": SCHEMA,
}
PRICES = {
    "input_price": Decimal(3),
    "output_price": Decimal(15),
    "cache_read_price": Decimal(1),
    "cache_write_price": Decimal(4),
}
# A tool call's id, as every API takes it back (Anthropic's tool_use id pattern).
CALL_ID = re.compile(r"[A-Za-z0-9_-]+")

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    """One server for the module: no test here changes how it serves."""
    with override_settings(ALLOWED_HOSTS=["127.0.0.1"]), asgi_serving() as url:
        yield f"{url}/gateway"


@pytest.fixture
def developer() -> User:
    return User.objects.create_user("dev")


@pytest.fixture
def secret(developer) -> str:
    return token_mint(user=developer, name="laptop")[1]


@pytest.fixture
def openai_sdk(gateway, secret) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{gateway}/openai/v1",
        api_key=secret,
        max_retries=0,
        default_headers={"User-Agent": USER_AGENT},
    )


@pytest.fixture
def anthropic_sdk(gateway, secret) -> anthropic.Anthropic:
    """As Claude Code sets it up (ANTHROPIC_BASE_URL, ANTHROPIC_AUTH_TOKEN)."""
    return anthropic.Anthropic(
        base_url=f"{gateway}/anthropic",
        auth_token=secret,
        max_retries=0,
        default_headers={"User-Agent": USER_AGENT},
    )


def model_at(
    url: str, provider_type: str, identifier: str, api_key: str = KEY, **fields: Any
) -> LLMModel:
    provider = provider_at(provider_type, url, api_key=api_key)
    return LLMModelFactory(provider=provider, identifier=identifier, **PRICES, **fields)


@contextmanager
def upstream(
    provider_type: str, identifier: str, **fields: Any
) -> Iterator[FakeProvider | MessagesFake]:
    """The fake of this provider type, serving one model of the developer's; `fields`: the
    admin's settings of the model. Anthropic's is the Messages fake of the gateway's tests,
    which takes what a gateway sends (tools, blocks; FakeProvider's takes a chat's body)."""
    served = (
        serve_messages(MessagesFake(api_key=KEY))
        if provider_type == "anthropic"
        else serve(fake_for(provider_type, KEY))
    )
    with served as fake:
        model_at(fake.url, provider_type, identifier, **fields)
        yield fake


CHAT_PATHS = {"openai": "/openai/v1/chat/completions", "anthropic": "/anthropic/v1/messages"}


def post(gateway: str, path: str, body: dict, secret: str) -> httpx2.Response:
    """Raw HTTP, as either SDK would send it, where the bytes or the status matter."""
    headers = {"Authorization": f"Bearer {secret}", "anthropic-version": "2023-06-01"}
    return httpx2.post(f"{gateway}{path}", json=body, headers=headers, timeout=10)


def asked(api: str, identifier: str, streamed: bool) -> dict[str, Any]:
    """The simplest request of the API: one question."""
    body = {"model": identifier, "messages": [{"role": "user", "content": ASK}], "stream": streamed}
    return {**body, "max_tokens": 100} if api == "anthropic" else body


def records(count: int) -> list[UsageRecord]:
    """The ledger once it holds `count` rows: a streamed call is recorded just after its last
    byte reached the client (on SQLite, while the server writes, its table may be locked)."""
    until = time.monotonic() + 5
    while time.monotonic() < until:
        with suppress(OperationalError):
            if UsageRecord.objects.count() >= count:
                break
        time.sleep(0.01)
    return list(UsageRecord.objects.order_by("pk"))


# --- An OpenAI client's tool loop on another family's model ----------------------------------


@dataclass
class Turn:
    """One answer as an OpenAI client reads it: streamed chunks put together, or whole."""

    text: str = ""
    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    # How many pieces the tool calls' arguments came in.
    fragments: int = 0
    finish: str | None = None
    usage: Any = None


def openai_turn(client: openai.OpenAI, model: str, messages: list[dict], streamed: bool) -> Turn:
    sent = {"model": model, "messages": messages, "tools": [OPENAI_TOOL]}
    if not streamed:
        answer = client.chat.completions.create(**sent)
        choice = answer.choices[0]
        calls = {
            index: {"id": call.id, "name": call.function.name, "arguments": call.function.arguments}
            for index, call in enumerate(choice.message.tool_calls or [])
        }
        return Turn(
            choice.message.content or "", calls, len(calls), choice.finish_reason, answer.usage
        )
    turn = Turn()
    chunks = client.chat.completions.create(
        **sent, stream=True, stream_options={"include_usage": True}
    )
    for chunk in chunks:
        turn.usage = chunk.usage or turn.usage
        for choice in chunk.choices:
            turn.text += choice.delta.content or ""
            turn.finish = choice.finish_reason or turn.finish
            for call in choice.delta.tool_calls or []:
                held = turn.calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                held["id"] += call.id or ""
                held["name"] += call.function.name or ""
                if call.function.arguments:
                    held["arguments"] += call.function.arguments
                    turn.fragments += 1
    return turn


def openai_loop(client: openai.OpenAI, model: str, streamed: bool) -> tuple[Turn, Turn]:
    """A coding agent's two steps: the model calls the tool; given its result, it answers."""
    asked = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}]
    first = openai_turn(client, model, asked, streamed)
    called = [
        {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": call["arguments"]},
        }
        for call in first.calls.values()
    ]
    answered = [
        {"role": "assistant", "content": first.text or None, "tool_calls": called},
        *({"role": "tool", "tool_call_id": call["id"], "content": RESULT} for call in called),
    ]
    return first, openai_turn(client, model, [*asked, *answered], streamed)


# What each fake answers once it has the tool's result: the result quoted; Anthropic's
# Messages fake, its own words (that it read the result is in what it received).
ANSWERS = {"anthropic": "Hello world", "openai": RESULT, "google": RESULT, "bedrock": RESULT}


@pytest.mark.parametrize(
    ("provider_type", "identifier", "streamed", "in_pieces"),
    [
        pytest.param("anthropic", "claude-sonnet-4-6", True, True, id="Claude"),
        pytest.param("google", "gemini-2.5-flash", True, False, id="Gemini 2.5"),
        # Gemini 3 refuses a call sent back without its thought signature: the id carries it.
        pytest.param("google", "gemini-3-pro-preview", True, False, id="Gemini 3"),
        pytest.param("bedrock", "amazon.nova-pro-v1:0", True, True, id="Nova on Bedrock"),
        pytest.param(
            "bedrock", "us.anthropic.claude-sonnet-4-6", True, True, id="Claude on Bedrock"
        ),
        pytest.param("anthropic", "claude-sonnet-4-6", False, False, id="Claude, whole"),
        pytest.param("google", "gemini-2.5-flash", False, False, id="Gemini, whole"),
        pytest.param("bedrock", "amazon.nova-pro-v1:0", False, False, id="Nova, whole"),
    ],
)
def test_an_openai_client_runs_a_tool_loop_on_another_familys_model(
    openai_sdk, provider_type, identifier, streamed, in_pieces
):
    with upstream(provider_type, identifier) as fake:
        first, second = openai_loop(openai_sdk, identifier, streamed)

    [call] = first.calls.values()
    assert first.finish == "tool_calls"
    assert call["name"] == "weather"
    assert CALL_ID.fullmatch(call["id"])
    # Claude and Converse stream the arguments in pieces (Gemini sends them whole): put
    # together, they are the model's JSON object.
    assert (first.fragments > 1) == in_pieces
    assert isinstance(json.loads(call["arguments"]), dict)
    assert second.finish == "stop"
    assert ANSWERS[provider_type] in second.text
    assert RESULT in json.dumps(fake.requests[-1].body)
    assert [record.kind for record in records(2)] == ["gateway"] * 2


def test_gemini_3s_signature_goes_back_with_its_call_carried_in_the_calls_id(openai_sdk):
    # The fake takes Google's stand-in for a signature too: the signature it made must be the
    # one that came back.
    with upstream("google", "gemini-3-pro-preview") as fake:
        first, _ = openai_loop(openai_sdk, "gemini-3-pro-preview", streamed=True)

    [call] = first.calls.values()
    assert call["id"].startswith("call_sig_")
    [sent_back] = [
        part
        for content in fake.requests[-1].body["contents"]
        for part in content["parts"]
        if "functionCall" in part
    ]
    signature = sent_back["thoughtSignature"]
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == base64.b64decode(
        GEMINI_SIGNATURE
    )
    assert len(records(2)) == 2


# --- An Anthropic client's tool loop on another family's model -------------------------------


def anthropic_turn(
    client: anthropic.Anthropic, model: str, messages: list[dict], streamed: bool
) -> tuple[anthropic.types.Message, int]:
    """The answer, and how many pieces its tool input came in (streamed: with the SDK's
    stream helper, as Claude Code reads it)."""
    sent = {
        "model": model,
        "max_tokens": 1024,
        "system": SYSTEM,
        "messages": messages,
        "tools": [ANTHROPIC_TOOL],
    }
    if not streamed:
        return client.messages.create(**sent), 0
    with client.messages.stream(**sent) as stream:
        pieces = sum(event.type == "input_json" for event in stream)
        return stream.get_final_message(), pieces


def block_param(block: Any) -> dict[str, Any]:
    """An answer's block as the client sends it back."""
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    return {"type": "text", "text": block.text}


@pytest.mark.parametrize(
    ("provider_type", "identifier", "streamed", "in_pieces"),
    [
        pytest.param("openai", "gpt-4.1", True, True, id="GPT-4.1"),
        pytest.param("google", "gemini-2.5-flash", True, False, id="Gemini 2.5"),
        pytest.param("google", "gemini-3-pro-preview", True, False, id="Gemini 3"),
        pytest.param("bedrock", "amazon.nova-pro-v1:0", True, True, id="Nova on Bedrock"),
        pytest.param("openai", "gpt-4.1", False, False, id="GPT-4.1, whole"),
        pytest.param("google", "gemini-2.5-flash", False, False, id="Gemini, whole"),
    ],
)
def test_an_anthropic_client_runs_a_tool_loop_on_another_familys_model(
    anthropic_sdk, provider_type, identifier, streamed, in_pieces
):
    asked = [{"role": "user", "content": ASK}]
    with upstream(provider_type, identifier) as fake:
        first, pieces = anthropic_turn(anthropic_sdk, identifier, asked, streamed)
        [use] = [block for block in first.content if block.type == "tool_use"]
        answered = [
            {"role": "assistant", "content": [block_param(block) for block in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": RESULT}],
            },
        ]
        second, _ = anthropic_turn(anthropic_sdk, identifier, [*asked, *answered], streamed)

    assert first.stop_reason == "tool_use"
    assert use.name == "weather"
    assert CALL_ID.fullmatch(use.id)
    assert isinstance(use.input, dict)
    assert (pieces > 1) == in_pieces
    assert second.stop_reason == "end_turn"
    said = "".join(block.text for block in second.content if block.type == "text")
    assert ANSWERS[provider_type] in said
    assert RESULT in json.dumps(fake.requests[-1].body)
    assert [record.kind for record in records(2)] == ["gateway"] * 2


# --- What the provider receives --------------------------------------------------------------

# The admin's settings of each model below: a cap under what the clients ask.
CAPPED = {"max_output_tokens": 1000}
OPENAI_ASKS = {
    "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}],
    "tools": [OPENAI_TOOL],
    "tool_choice": "required",
    "max_completion_tokens": 5000,
    "stop": ["END"],
}
ANTHROPIC_ASKS = {
    "system": SYSTEM,
    "messages": [{"role": "user", "content": ASK}],
    "tools": [ANTHROPIC_TOOL],
    "tool_choice": {"type": "any"},
    "max_tokens": 5000,
    "stop_sequences": ["END"],
}


# A 1x1 PNG, as a client sends an image: OpenAI's data URL, Anthropic's base64 block.
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5Er"
    "kJggg=="
)
IMAGE_URL_PART = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
IMAGE_BLOCK = {
    "type": "image",
    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
}


def at(body: Any, path: str) -> Any:
    """The value at a dotted path of a JSON body ("tools.0.name")."""
    for name in path.split("."):
        body = body[int(name)] if isinstance(body, list) else body[name]
    return body


@pytest.mark.parametrize(
    ("api", "provider_type", "identifier", "asked", "received"),
    [
        pytest.param(
            "openai",
            "anthropic",
            "claude-sonnet-4-6",
            {"reasoning_effort": "low", "tool_choice": "auto"},
            {
                "max_tokens": 1000,
                "system": SYSTEM,
                "tools.0.name": "weather",
                "tools.0.input_schema": SCHEMA,
                "stop_sequences": ["END"],
                # Sonnet 4.6 takes an effort: adaptive thinking at the client's.
                "thinking.type": "adaptive",
                "output_config.effort": "low",
                "messages.0.content.0.text": ASK,
            },
            id="OpenAI to Claude",
        ),
        pytest.param(
            "openai",
            "anthropic",
            "claude-sonnet-4-6",
            {"reasoning_effort": "low"},
            # Claude thinks with no forced tool (the API's 400): thinking off.
            {"tool_choice.type": "any", "thinking.type": "disabled"},
            id="OpenAI to Claude, a tool forced",
        ),
        pytest.param(
            "openai",
            "google",
            "gemini-2.5-flash",
            {"reasoning_effort": "low"},
            {
                "generationConfig.maxOutputTokens": 1000,
                "generationConfig.stopSequences": ["END"],
                "generationConfig.thinkingConfig.thinking_budget": 1024,
                "tools.0.functionDeclarations.0.name": "weather",
                "toolConfig.functionCallingConfig.mode": "ANY",
                "systemInstruction.parts.0.text": SYSTEM,
                "contents.0.parts.0.text": ASK,
            },
            id="OpenAI to Gemini 2.5",
        ),
        pytest.param(
            "openai",
            "anthropic",
            "claude-sonnet-4-6",
            {"messages": [{"role": "user", "content": [IMAGE_URL_PART]}], "tool_choice": "auto"},
            {
                "messages.0.content.0.source": {
                    "type": "base64",
                    "media_type": "image/png",
                    "data": PNG,
                }
            },
            id="OpenAI to Claude, an image",
        ),
        pytest.param(
            "openai",
            "google",
            "gemini-3-pro-preview",
            {"reasoning_effort": "low"},
            {"generationConfig.thinkingConfig.thinking_level": "LOW"},
            id="OpenAI to Gemini 3",
        ),
        pytest.param(
            "openai",
            "bedrock",
            "amazon.nova-pro-v1:0",
            {},
            {
                "inferenceConfig.maxTokens": 1000,
                "inferenceConfig.stopSequences": ["END"],
                "system.0.text": SYSTEM,
                "toolConfig.tools.0.toolSpec.name": "weather",
                "toolConfig.tools.0.toolSpec.inputSchema.json": SCHEMA,
                "toolConfig.toolChoice": {"any": {}},
                "messages.0.content.0.text": ASK,
            },
            id="OpenAI to Nova on Bedrock",
        ),
        pytest.param(
            "openai",
            "bedrock",
            "us.anthropic.claude-sonnet-4-6",
            # A forced tool would turn thinking off (a row above): the effort is seen with auto.
            {"reasoning_effort": "medium", "tool_choice": "auto"},
            {
                "inferenceConfig.maxTokens": 1000,
                "additionalModelRequestFields.thinking.type": "adaptive",
                "outputConfig.effort": "medium",
            },
            id="OpenAI to Claude on Bedrock",
        ),
        pytest.param(
            "anthropic",
            "openai",
            "gpt-5",
            {"thinking": {"type": "enabled", "budget_tokens": 2048}},
            {
                "max_completion_tokens": 1000,
                "messages.0": {"role": "system", "content": SYSTEM},
                "tools.0.function.name": "weather",
                "tools.0.function.parameters": SCHEMA,
                "tool_choice": "required",
                "stop": ["END"],
                # A budget up to 4096 is a low effort.
                "reasoning_effort": "low",
            },
            id="Anthropic to GPT-5",
        ),
        pytest.param(
            "anthropic",
            "google",
            "gemini-2.5-flash",
            {"thinking": {"type": "enabled", "budget_tokens": 8000}},
            {
                "generationConfig.maxOutputTokens": 1000,
                "generationConfig.thinkingConfig.thinking_budget": 8192,
                "systemInstruction.parts.0.text": SYSTEM,
                "tools.0.functionDeclarations.0.name": "weather",
                "toolConfig.functionCallingConfig.mode": "ANY",
            },
            id="Anthropic to Gemini 2.5",
        ),
        pytest.param(
            "anthropic",
            "google",
            "gemini-2.5-flash",
            {
                "messages": [{"role": "user", "content": [IMAGE_BLOCK]}],
                "tool_choice": {"type": "auto"},
            },
            {"contents.0.parts.0.inlineData": {"data": PNG, "mime_type": "image/png"}},
            id="Anthropic to Gemini, an image",
        ),
    ],
)
def test_the_provider_receives_the_clients_request_in_its_own_api_within_the_admins_cap(
    gateway, secret, api, provider_type, identifier, asked, received
):
    path, sent = (
        ("/openai/v1/chat/completions", OPENAI_ASKS)
        if api == "openai"
        else ("/anthropic/v1/messages", ANTHROPIC_ASKS)
    )
    body = {"model": identifier, **sent, **asked, "stream": True}
    with upstream(provider_type, identifier, **CAPPED) as fake:
        answer = post(gateway, path, body, secret)

    assert answer.status_code == 200, answer.text
    [request] = fake.requests
    assert {path: at(request.body, path) for path in received} == received
    assert len(records(1)) == 1


# --- Stop reasons -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "provider_type", "identifier", "stop", "said"),
    [
        pytest.param(
            "openai", "google", "gemini-2.5-flash", "MAX_TOKENS", "length", id="Gemini's max tokens"
        ),
        pytest.param(
            "openai",
            "google",
            "gemini-2.5-flash",
            "SAFETY",
            "content_filter",
            id="Gemini's safety block",
        ),
        pytest.param(
            "openai",
            "bedrock",
            "amazon.nova-pro-v1:0",
            "max_tokens",
            "length",
            id="Converse's max tokens",
        ),
        pytest.param(
            "anthropic", "openai", "gpt-4.1", "length", "max_tokens", id="OpenAI's length"
        ),
        pytest.param(
            "anthropic", "openai", "gpt-4.1", "content_filter", "refusal", id="OpenAI's filter"
        ),
        pytest.param(
            "anthropic",
            "google",
            "gemini-2.5-flash",
            "MAX_TOKENS",
            "max_tokens",
            id="Gemini's max tokens to Anthropic",
        ),
    ],
)
def test_a_providers_stop_reason_reaches_the_client_in_its_apis_words(
    gateway, secret, api, provider_type, identifier, stop, said
):
    with upstream(provider_type, identifier) as fake:
        fake.stop = stop
        answer = post(gateway, CHAT_PATHS[api], asked(api, identifier, streamed=False), secret)

    assert answer.status_code == 200, answer.text
    ended = answer.json()
    assert (
        ended["choices"][0]["finish_reason"] if api == "openai" else ended["stop_reason"]
    ) == said


# --- Thinking -----------------------------------------------------------------------------------


def data_of(stream: str) -> list[dict[str, Any]]:
    """The JSON of each `data:` line of a stream, but [DONE]."""
    return [
        json.loads(line.removeprefix("data: "))
        for line in stream.splitlines()
        if line.startswith("data: {")
    ]


def test_claudes_thinking_reaches_an_openai_client_as_reasoning_content(gateway, secret):
    body = {
        "model": "claude-sonnet-4-6",
        "messages": [{"role": "user", "content": ASK}],
        "reasoning_effort": "low",
    }
    with upstream("anthropic", "claude-sonnet-4-6"):
        streamed = post(gateway, "/openai/v1/chat/completions", {**body, "stream": True}, secret)
        whole = post(gateway, "/openai/v1/chat/completions", body, secret)

    deltas = [chunk["choices"][0]["delta"] for chunk in data_of(streamed.text) if chunk["choices"]]
    # The Messages fake thinks "Let me see." (signed) before its answer.
    assert "".join(delta.get("reasoning_content") or "" for delta in deltas) == "Let me see."
    assert "".join(delta.get("content") or "" for delta in deltas) == "Hello world"
    message = whole.json()["choices"][0]["message"]
    assert (message["reasoning_content"], message["content"]) == ("Let me see.", "Hello world")
    assert len(records(2)) == 2


def openai_chunks(*deltas: dict[str, Any], finish: str = "stop") -> list[bytes]:
    """A chat completions stream of these deltas, ended by `finish`."""
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    return [
        *(sse({**chunk, "choices": [{"index": 0, "delta": delta}]}) for delta in deltas),
        sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}),
        sse("[DONE]"),
    ]


def test_an_openai_models_reasoning_reaches_an_anthropic_client_as_an_unsigned_thinking_block(
    gateway, secret, anthropic_sdk
):
    said = openai_chunks(
        {"role": "assistant", "content": ""},
        {"reasoning_content": "Paris in May: "},
        {"reasoning_content": "mild."},
        {"content": "Sunny."},
    )
    sent = {
        "model": "qwen3-coder",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": ASK}],
    }
    with serve_script(Script(said)) as url:  # the same answer to every request
        model_at(url, "openai-compat", "qwen3-coder")
        raw = post(gateway, "/anthropic/v1/messages", {**sent, "stream": True}, secret)
        with anthropic_sdk.messages.stream(**sent) as stream:
            message = stream.get_final_message()

    thinking, text = message.content
    assert (thinking.type, thinking.thinking) == ("thinking", "Paris in May: mild.")
    assert (text.type, text.text) == ("text", "Sunny.")
    # No signature: the provider gave none, and none is made up.
    assert "signature_delta" not in raw.text
    assert len(records(2)) == 2


# --- The ledger, the budget, and what is refused ---------------------------------------------


def test_a_translated_call_is_in_the_ledger_with_the_providers_counts(
    openai_sdk, anthropic_sdk, developer
):
    with upstream("anthropic", "claude-sonnet-4-6") as claude:
        streamed = openai_turn(
            openai_sdk, "claude-sonnet-4-6", [{"role": "user", "content": ASK}], True
        )
    # The stream's record is written before its end reaches the client: read once it is.
    records(1)
    with upstream("openai", "gpt-4.1") as gpt:
        gpt.cached_tokens = 4
        whole = anthropic_sdk.messages.create(
            model="gpt-4.1", max_tokens=100, messages=[{"role": "user", "content": ASK}]
        )

    via_openai, via_anthropic = records(2)
    assert claude.requests and gpt.requests
    for record in (via_openai, via_anthropic):
        assert (record.kind, record.client) == ("gateway", USER_AGENT)
        assert record.token.user == developer
        assert record.cost > 0
    # The Anthropic fake's counts: 20 input, 4 read from the cache, 2 written; 9 output.
    assert (
        via_openai.input_tokens,
        via_openai.cache_read_tokens,
        via_openai.cache_write_tokens,
        via_openai.output_tokens,
    ) == (26, 4, 2, 9)
    assert (streamed.usage.prompt_tokens, streamed.usage.completion_tokens) == (26, 9)
    assert streamed.usage.prompt_tokens_details.cached_tokens == 4
    # The OpenAI fake's: 12 prompt tokens, 4 of them cached; 5 completion.
    assert (via_anthropic.input_tokens, via_anthropic.cache_read_tokens) == (12, 4)
    assert via_anthropic.output_tokens == 5
    assert (whole.usage.input_tokens, whole.usage.cache_read_input_tokens) == (8, 4)
    assert whole.usage.output_tokens == 5


def test_a_spent_budget_refuses_a_translated_call_before_anything_is_sent(
    openai_sdk, anthropic_sdk, developer
):
    UserBudget.objects.create(user=developer, monthly_allowance=Decimal(0))
    with (
        upstream("anthropic", "claude-sonnet-4-6") as claude,
        upstream("google", "gemini-2.5-flash") as gemini,
    ):
        with pytest.raises(openai.RateLimitError):
            openai_turn(openai_sdk, "claude-sonnet-4-6", [{"role": "user", "content": ASK}], True)
        with pytest.raises(anthropic.RateLimitError):
            anthropic_turn(
                anthropic_sdk, "gemini-2.5-flash", [{"role": "user", "content": ASK}], True
            )

    assert not claude.requests and not gemini.requests
    assert not UsageRecord.objects.exists()


@pytest.mark.parametrize(
    ("provider_type", "identifier", "asked", "param"),
    [
        pytest.param(
            "anthropic", "claude-sonnet-4-6", {"logprobs": True}, "logprobs", id="logprobs"
        ),
        pytest.param("google", "gemini-2.5-flash", {"n": 2}, "n", id="more than one choice"),
        pytest.param(
            "bedrock",
            "amazon.nova-pro-v1:0",
            {"reasoning_effort": "high"},
            "reasoning_effort",
            id="an effort on a model that does not reason",
        ),
        pytest.param(
            "anthropic",
            "claude-sonnet-4-6",
            {"response_format": {"type": "json_object"}},
            "response_format",
            id="a response format",
        ),
        pytest.param(
            "anthropic",
            "claude-sonnet-4-6",
            {"temperature": 0.5},
            "temperature",
            id="a temperature (Anthropic's API version 2026-10-21 takes none)",
        ),
        pytest.param(
            "google",
            "gemini-2.5-flash",
            {"stop": ["a", "b", "c", "d", "e", "f"]},
            "stop",
            id="more stop sequences than Gemini takes",
        ),
    ],
)
def test_an_openai_feature_with_no_counterpart_is_a_400_naming_it_and_nothing_is_sent(
    openai_sdk, provider_type, identifier, asked, param
):
    with (
        upstream(provider_type, identifier) as fake,
        pytest.raises(openai.BadRequestError) as refused,
    ):
        openai_sdk.chat.completions.create(
            model=identifier, messages=[{"role": "user", "content": ASK}], extra_body=asked
        )

    assert refused.value.body["param"] == param
    assert refused.value.body["type"] == "invalid_request_error"
    assert not fake.requests
    assert not UsageRecord.objects.exists()


WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search"}


@pytest.mark.parametrize(
    ("provider_type", "identifier", "asked", "named"),
    [
        pytest.param("openai", "gpt-4.1", {"tools": [WEB_SEARCH]}, "tools[0]", id="a server tool"),
        pytest.param(
            "google",
            "gemini-2.5-flash",
            {"mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}]},
            "mcp_servers",
            id="MCP servers",
        ),
        pytest.param(
            "openai",
            "gpt-4.1",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "document",
                                "source": {"type": "text", "media_type": "text/plain", "data": "x"},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0]",
            id="a document",
        ),
    ],
)
def test_an_anthropic_feature_with_no_counterpart_is_a_400_naming_it_and_nothing_is_sent(
    gateway, secret, provider_type, identifier, asked, named
):
    body = {"model": identifier, "max_tokens": 100, "messages": [{"role": "user", "content": ASK}]}
    with upstream(provider_type, identifier) as fake:
        answer = post(gateway, "/anthropic/v1/messages", {**body, **asked}, secret)

    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert named in answer.json()["error"]["message"]
    assert not fake.requests
    assert not UsageRecord.objects.exists()


def test_a_refusal_an_anthropic_client_gets_names_the_field_in_its_message(gateway, secret):
    # Converse's refusal says its field in `param` only, which Anthropic's error has no room
    # for.
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    body = {
        "model": "amazon.nova-pro-v1:0",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [image, {"type": "text", "text": ASK}]}],
    }
    with upstream("bedrock", "amazon.nova-pro-v1:0") as fake:
        answer = post(gateway, "/anthropic/v1/messages", body, secret)

    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith("messages: Bedrock takes an image's data")
    assert not fake.requests


@pytest.mark.parametrize(
    ("provider_type", "identifier"),
    [
        pytest.param("openai", "gpt-4.1", id="GPT-4.1"),
        pytest.param("bedrock", "amazon.nova-pro-v1:0", id="Nova"),
    ],
)
def test_an_anthropic_clients_thinking_is_dropped_on_a_model_that_does_not_reason(
    anthropic_sdk, provider_type, identifier
):
    # Claude Code asks for thinking by default: advisory there, unlike an OpenAI client's
    # reasoning_effort, which is refused.
    with upstream(provider_type, identifier) as fake:
        answer = anthropic_sdk.messages.create(
            model=identifier,
            max_tokens=4096,
            thinking={"type": "enabled", "budget_tokens": 2048},
            messages=[{"role": "user", "content": ASK}],
        )

    assert answer.stop_reason == "end_turn"
    [request] = fake.requests
    assert not {"reasoning_effort", "additionalModelRequestFields"} & set(request.body)


def test_anthropics_cache_control_is_dropped_on_another_familys_model(anthropic_sdk):
    # Advisory (a hint to cache, which OpenAI's API does by itself): the fake refuses any
    # field the real API doesn't take, so it must not arrive.
    cached = {"type": "ephemeral"}
    with upstream("openai", "gpt-4.1") as fake:
        answer = anthropic_sdk.messages.create(
            model="gpt-4.1",
            max_tokens=100,
            system=[{"type": "text", "text": SYSTEM, "cache_control": cached}],
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": ASK, "cache_control": cached}],
                }
            ],
        )

    assert answer.stop_reason == "end_turn"
    assert "cache_control" not in json.dumps(fake.requests[-1].body)


@pytest.mark.parametrize(
    ("api", "provider_type", "identifier", "path", "body"),
    [
        pytest.param(
            "openai",
            "anthropic",
            "claude-sonnet-4-6",
            "/openai/v1/responses",
            {"input": ASK},
            id="Responses on Claude",
        ),
        pytest.param(
            "anthropic",
            "openai",
            "gpt-4.1",
            "/anthropic/v1/messages/count_tokens",
            {"messages": [{"role": "user", "content": ASK}]},
            id="count_tokens on GPT-4.1",
        ),
        pytest.param(
            "anthropic",
            "google",
            "gemini-2.5-flash",
            "/anthropic/v1/messages/count_tokens",
            {"messages": [{"role": "user", "content": ASK}]},
            id="count_tokens on Gemini",
        ),
    ],
)
def test_responses_and_count_tokens_reach_their_own_familys_models_only(
    gateway, secret, api, provider_type, identifier, path, body
):
    with upstream(provider_type, identifier) as fake:
        answer = post(gateway, path, {"model": identifier, **body}, secret)

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["message"] == REFUSALS["other_api"][2]
    assert error["type"] == "invalid_request_error"
    assert not fake.requests


# --- Failures mid-stream ---------------------------------------------------------------------


def events_of(text: str) -> list[str]:
    return [event for event in text.split("\n\n") if event.strip()]


@pytest.mark.parametrize(
    ("provider_type", "identifier", "mode"),
    [
        pytest.param(
            "anthropic", "claude-sonnet-4-6", "midstream_error", id="Claude's error event"
        ),
        pytest.param("anthropic", "claude-sonnet-4-6", "drop", id="Claude cut short"),
        pytest.param("google", "gemini-2.5-flash", "drop", id="Gemini cut short"),
        pytest.param("bedrock", "amazon.nova-pro-v1:0", "drop", id="Converse cut short"),
    ],
)
def test_a_translated_stream_failing_midway_ends_with_openais_error_chunk(
    gateway, openai_sdk, secret, provider_type, identifier, mode
):
    body = {"model": identifier, "messages": [{"role": "user", "content": ASK}], "stream": True}
    with upstream(provider_type, identifier) as fake:
        fake.mode = mode
        answer = post(gateway, "/openai/v1/chat/completions", body, secret)
        with pytest.raises(openai.APIError):
            for _ in openai_sdk.chat.completions.create(**body):
                pass

    assert answer.status_code == 200
    assert "[DONE]" not in answer.text
    last = json.loads(events_of(answer.text)[-1].removeprefix("data: "))
    assert last["error"]["type"] == "server_error"
    assert KEY not in answer.text
    # What the provider read is charged, both times.
    assert len(records(2)) == 2


@pytest.mark.parametrize(
    ("provider_type", "identifier", "mode"),
    [
        pytest.param("openai", "gpt-4.1", "midstream_error", id="OpenAI's error chunk"),
        pytest.param("openai", "gpt-4.1", "drop", id="OpenAI cut short"),
        pytest.param("google", "gemini-2.5-flash", "drop", id="Gemini cut short"),
        pytest.param("bedrock", "amazon.nova-pro-v1:0", "drop", id="Converse cut short"),
    ],
)
def test_a_translated_stream_failing_midway_ends_with_anthropics_error_event(
    gateway, anthropic_sdk, secret, provider_type, identifier, mode
):
    body = {"model": identifier, "max_tokens": 100, "messages": [{"role": "user", "content": ASK}]}
    with upstream(provider_type, identifier) as fake:
        fake.mode = mode
        answer = post(gateway, "/anthropic/v1/messages", {**body, "stream": True}, secret)
        with (
            pytest.raises(anthropic.APIStatusError),
            anthropic_sdk.messages.stream(**body) as stream,
        ):
            for _ in stream:
                pass

    assert answer.status_code == 200
    last = events_of(answer.text)[-1]
    assert last.startswith("event: error\n")
    assert "message_stop" not in answer.text
    assert KEY not in answer.text
    assert len(records(2)) == 2


def test_a_whole_translated_answer_whose_provider_goes_quiet_ends_at_the_idle_limit(
    gateway, anthropic_sdk, settings
):
    # Translated, a whole answer streams upstream: a provider that stops sending is ended at
    # the idle limit, not held until the deadline.
    settings.PROVIDER_STREAM_IDLE_TIMEOUT = 0.3
    settings.PROVIDER_STREAM_TIMEOUT = 3
    with serve_script(Script([openai_delta("Hel")], forever=KEEP_ALIVE)) as url:
        model_at(url, "openai", "gpt-4.1")
        with pytest.raises(anthropic.APIStatusError) as ended:
            anthropic_sdk.messages.create(**asked("anthropic", "gpt-4.1", streamed=False))

    assert ended.value.status_code == 504
    assert "sent no answer text for 0.3 s" in ended.value.message


# --- Hostile providers -----------------------------------------------------------------------

# The hostile suite's answers (tests/providers/hostile.py) that a translation reads: an
# error's body, and answers that begin. Its other attacks (statuses, headers, redirects,
# encodings) end a call before any answer is read, the same way translated or not: the
# relayed and chat suites meet them (tests/test_gateway_*.py, tests/test_hostile_providers.py).
HOSTILE_MODES = [
    ("error_body", 400),
    *((mode, None) for mode in ("odd_shapes", "midstream", "echo_text", "not_json", "finish")),
]
# The translated paths: (the client's API, the provider's family, its model).
TRANSLATED = [
    pytest.param("openai", "anthropic", "claude-sonnet-4-6", id="OpenAI to Claude"),
    pytest.param("openai", "google", "gemini-2.5-flash", id="OpenAI to Gemini"),
    pytest.param("openai", "bedrock", "amazon.nova-pro-v1:0", id="OpenAI to Converse"),
    pytest.param("anthropic", "openai", "gpt-4.1", id="Anthropic to OpenAI"),
    pytest.param("anthropic", "google", "gemini-2.5-flash", id="Anthropic to Gemini"),
    pytest.param("anthropic", "bedrock", "amazon.nova-pro-v1:0", id="Anthropic to Converse"),
]
HOSTILE_KEY = "sk-hostile-" + "k" * 24


@pytest.fixture
def every_log(caplog) -> Iterator[pytest.LogCaptureFixture]:
    """Every record at DEBUG, the "django" loggers' too (they don't propagate to the root)."""
    caplog.set_level(logging.DEBUG)
    django_logger = logging.getLogger("django")
    django_logger.addHandler(caplog.handler)
    yield caplog
    django_logger.removeHandler(caplog.handler)


@pytest.mark.parametrize(("api", "family", "identifier"), TRANSLATED)
def test_a_hostile_provider_never_gets_the_key_to_a_translated_client_or_the_log(
    gateway, secret, every_log, api, family, identifier
):
    for mode, status in HOSTILE_MODES:
        with serve_hostile(family, mode, status=status) as hostile:
            model = model_at(hostile.url, family, identifier, api_key=HOSTILE_KEY)
            answers = [
                post(gateway, CHAT_PATHS[api], asked(api, identifier, streamed), secret)
                for streamed in (True, False)
            ]
            model.delete()

        assert HOSTILE_KEY in hostile.credentials, mode
        for answer in answers:
            assert answer.status_code != 500, mode
            assert HOSTILE_KEY not in answer.text, mode
    assert HOSTILE_KEY not in every_log.text


def anthropic_sse(name: str, **payload: Any) -> bytes:
    return sse({"type": name, **payload}, name)


def anthropic_block(block: dict[str, Any], *deltas: dict[str, Any]) -> list[bytes]:
    start = {"usage": {"input_tokens": 3, "output_tokens": 1}, "content": [], "role": "assistant"}
    return [
        anthropic_sse("message_start", message={"id": "msg_1", "type": "message", **start}),
        anthropic_sse("content_block_start", index=0, content_block=block),
        *(anthropic_sse("content_block_delta", index=0, delta=delta) for delta in deltas),
        anthropic_sse("content_block_stop", index=0),
        anthropic_sse(
            "message_delta", delta={"stop_reason": "tool_use"}, usage={"output_tokens": 5}
        ),
        anthropic_sse("message_stop"),
    ]


def gemini_parts(*parts: dict[str, Any]) -> list[bytes]:
    usage = {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4}
    candidate = {"content": {"role": "model", "parts": list(parts)}, "finishReason": "STOP"}
    return [sse({"candidates": [{**candidate, "index": 0}], "usageMetadata": usage})]


def converse_block(start: dict[str, Any], delta: dict[str, Any]) -> list[bytes]:
    usage = {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4}
    return [
        aws_message("messageStart", {"role": "assistant"}),
        aws_message("contentBlockStart", {"contentBlockIndex": 0, "start": start}),
        aws_message("contentBlockDelta", {"contentBlockIndex": 0, "delta": delta}),
        aws_message("contentBlockStop", {"contentBlockIndex": 0}),
        aws_message("messageStop", {"stopReason": "tool_use"}),
        aws_message("metadata", {"usage": usage, "metrics": {"latencyMs": 1}}),
    ]


def said(key: str) -> str:
    return json.dumps({"note": f"the key is {key}"})


# Each family's answer saying the key in a tool call's arguments, and in its thinking.
ECHOES = {
    ("anthropic", "tool call"): lambda key: anthropic_block(
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
        {"type": "input_json_delta", "partial_json": said(key)[:9]},
        {"type": "input_json_delta", "partial_json": said(key)[9:]},
    ),
    ("anthropic", "thinking"): lambda key: anthropic_block(
        {"type": "thinking", "thinking": "", "signature": ""},
        {"type": "thinking_delta", "thinking": f"The key is {key}"},
    ),
    ("google", "tool call"): lambda key: gemini_parts(
        {"functionCall": {"name": "weather", "args": json.loads(said(key))}}
    ),
    ("google", "thinking"): lambda key: gemini_parts(
        {"text": f"The key is {key}", "thought": True}
    ),
    ("bedrock", "tool call"): lambda key: converse_block(
        {"toolUse": {"toolUseId": "tooluse_1", "name": "weather"}},
        {"toolUse": {"input": said(key)}},
    ),
    ("bedrock", "thinking"): lambda key: converse_block(
        {}, {"reasoningContent": {"text": f"The key is {key}"}}
    ),
    ("openai", "tool call"): lambda key: openai_chunks(
        {"role": "assistant", "content": ""},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": said(key)}}]},
        finish="tool_calls",
    ),
    ("openai", "thinking"): lambda key: openai_chunks(
        {"role": "assistant", "content": ""}, {"reasoning_content": f"The key is {key}"}
    ),
}


@pytest.mark.parametrize("echoed", ["tool call", "thinking"])
@pytest.mark.parametrize(("api", "family", "identifier"), TRANSLATED)
def test_a_key_a_provider_says_in_a_tool_call_or_its_thinking_never_reaches_a_translated_client(
    gateway, secret, api, family, identifier, echoed
):
    answers = []
    for streamed in (True, False):
        with serve_script(Script(ECHOES[family, echoed](HOSTILE_KEY))) as url:
            model = model_at(url, family, identifier, api_key=HOSTILE_KEY)
            answers.append(post(gateway, CHAT_PATHS[api], asked(api, identifier, streamed), secret))
            model.delete()

    streamed, whole = answers
    assert HOSTILE_KEY not in streamed.text and HOSTILE_KEY not in whole.text
    # Ended with our error: the event of the API's stream, the error answer of a whole one.
    assert "error" in events_of(streamed.text)[-1]
    assert whole.status_code >= 400 and "error" in whole.json()


# --- The model lists -------------------------------------------------------------------------


def test_both_model_lists_hold_every_model_of_the_developer_whatever_its_family(
    gateway, secret, openai_sdk, anthropic_sdk
):
    url = "http://127.0.0.1:9"  # never called: a list reads only the configuration
    for provider_type, identifier in [
        ("openai", "gpt-4.1"),
        ("anthropic", "claude-sonnet-4-6"),
        ("google", "gemini-2.5-flash"),
        ("bedrock", "amazon.nova-pro-v1:0"),
        ("bedrock", "us.anthropic.claude-sonnet-4-6"),
    ]:
        model_at(url, provider_type, identifier)
    model_at(url, "openai", "gpt-5", restricted=True)  # kept from everyone

    via_openai = sorted(model.id for model in openai_sdk.models.list())
    via_anthropic = sorted(model.id for model in anthropic_sdk.models.list())

    assert (
        via_openai
        == via_anthropic
        == [
            "amazon.nova-pro-v1:0",
            "claude-sonnet-4-6",
            "gemini-2.5-flash",
            "gpt-4.1",
            "us.anthropic.claude-sonnet-4-6",
        ]
    )


# --- Bad client input: a 400 naming the field, before anything is sent -----------------------

# An assistant's call of the weather tool, for a tool result to answer.
OPENAI_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    ],
}
ANTHROPIC_CALL = {
    "role": "assistant",
    "content": [{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}],
}


@pytest.mark.parametrize(
    ("provider_type", "identifier", "asked", "param"),
    [
        pytest.param(
            "anthropic",
            "claude-sonnet-4-6",
            {
                "messages": [
                    {"role": "user", "content": ASK},
                    OPENAI_CALL,
                    {"role": "tool", "tool_call_id": ["call_1"], "content": RESULT},
                ]
            },
            "messages[2].tool_call_id",
            id="a tool result's call id a list",
        ),
        pytest.param(
            "google",
            "gemini-2.5-flash",
            {
                "messages": [{"role": "user", "content": ASK}],
                "tools": [OPENAI_TOOL],
                "tool_choice": {"type": "function", "function": {"name": ["weather"]}},
            },
            "tool_choice.function.name",
            id="the forced tool's name a list",
        ),
        pytest.param(
            "google",
            "gemini-2.5-flash",
            {"messages": [{"role": "system", "content": SYSTEM}]},
            "messages",
            id="a system message only",
        ),
        pytest.param(
            "google",
            "gemini-2.5-flash",
            {"messages": [{"role": "user", "content": []}]},
            "messages",
            id="a user message with no content",
        ),
        pytest.param(
            "bedrock",
            "amazon.nova-pro-v1:0",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/png;base64,abc"},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
            id="an image's data not base64",
        ),
        pytest.param(
            "bedrock",
            "amazon.nova-pro-v1:0",
            {"messages": [{"role": "user", "content": ASK}], "stop": [""]},
            "stop",
            id="an empty stop sequence",
        ),
        pytest.param(
            "anthropic",
            "claude-sonnet-4-6",
            {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": ASK, "lang": "fr"}]}
                ]
            },
            "messages[0].content[0].lang",
            id="an unknown field of a content part",
        ),
        pytest.param(
            "anthropic",
            "claude-sonnet-4-6",
            {
                "messages": [
                    {"role": "user", "content": ASK},
                    {**OPENAI_CALL, "tool_calls": [{**OPENAI_CALL["tool_calls"][0], "lang": "fr"}]},
                    {"role": "tool", "tool_call_id": "call_1", "content": RESULT},
                ]
            },
            "messages[1].tool_calls[0].lang",
            id="an unknown field of a tool call",
        ),
        pytest.param(
            "google",
            "gemini-2.5-flash",
            {
                "messages": [{"role": "user", "content": ASK}],
                "tools": [OPENAI_TOOL],
                "tool_choice": {"type": "function", "function": {"name": "weather"}, "lang": "fr"},
            },
            "tool_choice.lang",
            id="an unknown field of the tool choice",
        ),
        pytest.param(
            "google",
            "gemini-2.0-flash",
            {"messages": [{"role": "user", "content": ASK}], "reasoning_effort": "minimal"},
            "reasoning_effort",
            id="an effort but none on a Gemini that doesn't think (as on GPT-4.1 and Nova)",
        ),
        pytest.param(
            "anthropic",
            "claude-sonnet-4-6",
            {"messages": [{"role": ["user"], "content": ASK}]},
            "messages[0].role",
            id="a message's role a list",
        ),
    ],
)
def test_bad_openai_input_is_a_400_naming_the_field_and_nothing_is_sent(
    gateway, secret, provider_type, identifier, asked, param
):
    with upstream(provider_type, identifier) as fake:
        answer = post(gateway, CHAT_PATHS["openai"], {"model": identifier, **asked}, secret)

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param
    assert not fake.requests
    assert not UsageRecord.objects.exists()


@pytest.mark.parametrize(
    ("provider_type", "identifier", "asked", "named"),
    [
        pytest.param(
            "openai",
            "gpt-4.1",
            {"messages": [{"role": "user", "content": []}]},
            "messages",
            id="a user message with no content",
        ),
        pytest.param(
            "google",
            "gemini-2.5-flash",
            {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
            "messages",
            id="a user message of empty text",
        ),
        pytest.param(
            "google",
            "gemini-2.5-flash",
            {
                "messages": [{"role": "user", "content": ASK}],
                "tools": [ANTHROPIC_TOOL],
                "tool_choice": {"type": "tool", "name": "forecast"},
            },
            "tool_choice.name",
            id="the forced tool not among the tools",
        ),
        pytest.param(
            "google",
            "gemini-2.5-flash",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": "%%%",
                                },
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0].source.data",
            id="an image's data not base64",
        ),
        pytest.param(
            "openai",
            "gpt-4.1",
            {
                "messages": [{"role": "user", "content": ASK}],
                # Claude Code's MCP tools are named mcp__<server>__<tool>: Messages takes
                # up to 128 characters, Chat Completions 64 (the SDK's FunctionDefinition).
                "tools": [{**ANTHROPIC_TOOL, "name": f"mcp__{'s' * 40}__{'t' * 40}"}],
            },
            "tools",
            id="a tool name longer than OpenAI takes",
        ),
        pytest.param(
            "openai",
            "gpt-4.1",
            {"messages": [{"role": ["user"], "content": ASK}]},
            "messages[0].role",
            id="a message's role a list",
        ),
        pytest.param(
            "google",
            "gemini-2.5-flash",
            {"messages": [{"role": "user", "content": [{"type": {}, "text": ASK}]}]},
            "messages[0].content[0].type",
            id="a block's type an object",
        ),
    ],
)
def test_bad_anthropic_input_is_a_400_naming_the_field_and_nothing_is_sent(
    gateway, secret, provider_type, identifier, asked, named
):
    body = {"model": identifier, "max_tokens": 100, **asked}
    with upstream(provider_type, identifier) as fake:
        answer = post(gateway, CHAT_PATHS["anthropic"], body, secret)

    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith(named)
    assert not fake.requests
    assert not UsageRecord.objects.exists()


# A request of each client API using what its translation reads: messages of each role and
# kind of part, tools, a forced tool, stop sequences.
EVERY_PART = {
    "openai": {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": [{"type": "text", "text": ASK}]},
            OPENAI_CALL,
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": [{"type": "text", "text": RESULT}],
            },
        ],
        "tools": [OPENAI_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "stop": ["END"],
        "max_completion_tokens": 100,
    },
    "anthropic": {
        "system": [{"type": "text", "text": SYSTEM}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": ASK}]},
            ANTHROPIC_CALL,
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": RESULT}],
                    }
                ],
            },
        ],
        "tools": [ANTHROPIC_TOOL],
        "tool_choice": {"type": "tool", "name": "weather"},
        "stop_sequences": ["END"],
        "max_tokens": 100,
    },
}


def every_value_replaced(body: Any, by: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(path, the body with the value there replaced `by`) for every value within it."""
    items = body.items() if isinstance(body, dict) else enumerate(body)
    for key, value in items:
        copy = dict(body) if isinstance(body, dict) else list(body)
        copy[key] = by
        yield (*path, key), copy
        if isinstance(value, dict | list):
            for deeper, replaced in every_value_replaced(value, by, (*path, key)):
                copy = dict(body) if isinstance(body, dict) else list(body)
                copy[key] = replaced
                yield deeper, copy


@pytest.mark.parametrize(
    ("api", "provider_type", "identifier"),
    [
        pytest.param("openai", "anthropic", "claude-sonnet-4-6", id="OpenAI to Claude"),
        pytest.param("anthropic", "openai", "gpt-4.1", id="Anthropic to OpenAI"),
    ],
)
def test_a_list_or_object_anywhere_in_a_translated_request_is_answered_in_the_apis_shape(
    gateway, secret, api, provider_type, identifier
):
    body = {"model": identifier, **EVERY_PART[api]}
    with upstream(provider_type, identifier):
        whole = post(gateway, CHAT_PATHS[api], body, secret)
        answers = {
            (path, type(by).__name__): post(gateway, CHAT_PATHS[api], replaced, secret)
            for by in ([], {})
            for path, replaced in every_value_replaced(body, by)
        }

    assert whole.status_code == 200
    # Refused (400, 404 for the model), or sent on: never Django's page of a server error.
    not_json = {
        where: answer.status_code
        for where, answer in answers.items()
        if answer.headers["content-type"] != "application/json"
    }
    assert not_json == {}
    assert {answer.status_code for answer in answers.values()} <= {200, 400, 404}


def test_an_anthropic_clients_failed_tool_results_own_text_reaches_an_openai_model_unchanged(
    gateway, secret
):
    # A tool message has no error flag: is_error is dropped (tabled), and no words of ours are
    # added; the model reads the failure in the result's own text.
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": RESULT, "is_error": True}
    body = {
        "model": "gpt-4.1",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": ASK},
            ANTHROPIC_CALL,
            {"role": "user", "content": [result]},
        ],
    }
    with upstream("openai", "gpt-4.1") as fake:
        post(gateway, CHAT_PATHS["anthropic"], body, secret)

    assert fake.requests[0].body["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "toolu_1",
        "content": RESULT,
    }


@pytest.mark.parametrize(
    "deltas",
    [
        pytest.param((), id="no input delta"),
        pytest.param(({"type": "input_json_delta", "partial_json": ""},), id="an empty one"),
    ],
)
def test_claudes_call_of_a_tool_without_arguments_reaches_an_openai_client_as_a_json_object(
    gateway, secret, deltas
):
    # Claude streams a call with no arguments as its block's input {} and no JSON text; an
    # OpenAI client parses function.arguments, which OpenAI's models say as "{}".
    said = anthropic_block(
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}, *deltas
    )
    body = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": ASK}]}
    with serve_script(Script(said)) as url:
        model_at(url, "anthropic", "claude-sonnet-4-6")
        streamed = post(gateway, CHAT_PATHS["openai"], {**body, "stream": True}, secret)
        whole = post(gateway, CHAT_PATHS["openai"], body, secret)

    calls = [
        call
        for chunk in data_of(streamed.text)
        for choice in chunk["choices"]
        for call in choice["delta"].get("tool_calls") or []
    ]
    assert "".join(call["function"].get("arguments") or "" for call in calls) == "{}"
    assert whole.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "{}"


def test_a_conversation_converse_receives_begins_with_a_user_message(gateway, secret):
    # Bedrock's Converse refuses a conversation that begins with the assistant ("A
    # conversation must start with a user message"); Chat Completions takes one.
    messages = [{"role": "assistant", "content": "Hello."}, {"role": "user", "content": ASK}]
    with upstream("bedrock", "amazon.nova-pro-v1:0") as fake:
        answer = post(
            gateway,
            CHAT_PATHS["openai"],
            {"model": "amazon.nova-pro-v1:0", "messages": messages},
            secret,
        )

    if fake.requests:  # sent: as Converse takes it
        assert fake.requests[0].body["messages"][0]["role"] == "user"
    else:  # or refused, naming the messages
        assert (answer.status_code, answer.json()["error"]["param"]) == (400, "messages")


def test_a_tool_calls_arguments_nested_past_pythons_limit_are_a_400_on_converse(gateway, secret):
    # Claude's and Gemini's translations catch the RecursionError json.loads raises; Converse's
    # (bedrock.tool_input) catches ValueError only: a 502 that blames the provider.
    nested = "[" * 100_000 + "]" * 100_000
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "weather", "arguments": nested},
    }
    body = {
        "model": "amazon.nova-pro-v1:0",
        "messages": [
            {"role": "user", "content": ASK},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": RESULT},
        ],
        "tools": [OPENAI_TOOL],
    }
    with upstream("bedrock", "amazon.nova-pro-v1:0") as fake:
        answer = post(gateway, CHAT_PATHS["openai"], body, secret)

    assert (answer.status_code, answer.json()["error"]["param"]) == (400, "messages")
    assert not fake.requests


def test_a_call_id_longer_than_openai_takes_reaches_it_within_its_limit(gateway, secret):
    # OpenAI refuses a tool call id over 40 characters ("string too long. Expected a string
    # with maximum length 40"); a Gemini call's id carries its signature (call_sig_…), far
    # longer: Claude Code switched from a Gemini model to GPT-4.1 sends it back.
    call_id = "call_sig_" + "A" * 120
    call = {"type": "tool_use", "id": call_id, "name": "weather", "input": {"city": "Paris"}}
    body = {
        "model": "gpt-4.1",
        "max_tokens": 100,
        "tools": [ANTHROPIC_TOOL],
        "messages": [
            {"role": "user", "content": ASK},
            {"role": "assistant", "content": [call]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call_id, "content": RESULT}],
            },
        ],
    }
    with upstream("openai", "gpt-4.1") as fake:
        post(gateway, CHAT_PATHS["anthropic"], body, secret)

    _, assistant, result = fake.requests[0].body["messages"]
    sent_id = assistant["tool_calls"][0]["id"]
    assert len(sent_id) <= 40
    assert result["tool_call_id"] == sent_id
