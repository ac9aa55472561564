"""The gateway's OpenAI API (/gateway/openai/v1), driven by the official openai SDK against the
server under uvicorn, with the loopback fakes of tests/providers/ as the providers upstream.

The fakes refuse what the real APIs refuse (tests/providers/openai/fake.py): a body the
gateway sent wrong fails there, not only here.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx2
import openai
import pytest
from django.contrib.auth.models import User
from django.db import OperationalError
from django.test import override_settings

from billing.models import UsageRecord
from gateway.models import PersonalAccessToken
from gateway.tokens import token_mint
from llmadmin.models import LLMModel
from tests.conftest import asgi_serving
from tests.factories import LLMModelFactory, provider_at
from tests.providers.fakes import FakeProvider, serve

KEY = "sk-UPSTREAM-gateway-7"
PRICES = {"input_price": Decimal(3), "output_price": Decimal(15), "cache_read_price": Decimal(1)}
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def gateway_server(django_db_blocker) -> Iterator[str]:
    """One server for the module: no test here changes how it serves. Its threads may touch
    the database after a test's end (a streamed answer's request closing)."""
    with (
        django_db_blocker.unblock(),
        override_settings(ALLOWED_HOSTS=["127.0.0.1"]),
        asgi_serving() as url,
    ):
        yield url


@pytest.fixture
def base_url(gateway_server, transactional_db) -> str:
    return f"{gateway_server}/gateway/openai/v1"


@pytest.fixture
def developer() -> User:
    return User.objects.create_user("dev")


@pytest.fixture
def secret(developer) -> str:
    return token_mint(user=developer, name="laptop")[1]


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with serve(FakeProvider("openai", KEY)) as server:
        yield server


def sdk(base_url: str, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=secret, max_retries=0)


def records(count: int) -> list[UsageRecord]:
    """The ledger once it holds `count` rows: a streamed call is recorded just after its last
    byte reached the client (on SQLite, while the server writes, its table may be locked)."""
    until = time.monotonic() + 5
    while time.monotonic() < until:
        with contextlib.suppress(OperationalError):
            if UsageRecord.objects.count() >= count:
                break
        time.sleep(0.01)
    return list(UsageRecord.objects.order_by("pk"))


def model_at(url: str, provider_type: str = "openai", **fields: Any) -> LLMModel:
    fields = {"identifier": "gpt-4.1", **PRICES, **fields}
    return LLMModelFactory(provider=provider_at(provider_type, url, api_key=KEY), **fields)


# --- The official SDK, start to end -----------------------------------------------------------


def test_a_chat_completion_is_answered_whole_and_recorded(base_url, secret, fake, developer):
    fake.cached_tokens, fake.reasoning_tokens = 4, 2
    model = model_at(fake.url)

    answer = sdk(base_url, secret).chat.completions.create(model="gpt-4.1", messages=HI)

    assert answer.choices[0].message.content == "Hello world"
    assert answer.usage.prompt_tokens_details.cached_tokens == 4
    [sent] = fake.requests
    assert sent.body == {"model": "gpt-4.1", "messages": HI}
    [record] = UsageRecord.objects.all()
    assert (record.user_id, record.model_id, record.kind) == (developer.pk, model.pk, "gateway")
    assert (record.input_tokens, record.output_tokens) == (12, 5)
    assert (record.cache_read_tokens, record.reasoning_tokens) == (4, 2)
    # 8 uncached input tokens at $3, 4 cached at $1 and 5 output at $15 per million.
    assert record.cost == Decimal("0.000103")
    assert record.token_id == PersonalAccessToken.objects.get(user=developer).pk
    assert record.client.startswith("OpenAI/Python ")


def test_a_streamed_chat_completion_passes_each_chunk_and_ends_with_done(base_url, secret, fake):
    model_at(fake.url)

    with httpx2.stream(
        "POST",
        f"{base_url}/chat/completions",
        headers={"Authorization": f"Bearer {secret}"},
        json={"model": "gpt-4.1", "messages": HI, "stream": True},
    ) as response:
        body = response.read().decode()
    stream = sdk(base_url, secret).chat.completions.create(
        model="gpt-4.1", messages=HI, stream=True
    )
    texts = [chunk.choices[0].delta.content for chunk in stream if chunk.choices]

    assert response.headers["content-type"].startswith("text/event-stream")
    assert texts == ["", "Hello", " world", None]
    # The usage chunk the gateway asked for is not the client's: it did not ask.
    assert body.endswith("data: [DONE]\n\n")
    assert '"usage": {' not in body
    assert [request.body["stream_options"] for request in fake.requests] == [
        {"include_usage": True}
    ] * 2
    assert [(r.input_tokens, r.output_tokens) for r in records(2)] == [(12, 5)] * 2


def test_a_client_that_asks_for_the_usage_chunk_gets_it(base_url, secret, fake):
    model_at(fake.url)

    stream = sdk(base_url, secret).chat.completions.create(
        model="gpt-4.1", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    usage = [chunk.usage for chunk in stream if chunk.usage]

    assert [(u.prompt_tokens, u.completion_tokens) for u in usage] == [(12, 5)]


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_a_tool_call_round_trip_streams_the_call_and_takes_its_result(base_url, secret, fake):
    model_at(fake.url)
    client = sdk(base_url, secret)

    stream = client.chat.completions.create(
        model="gpt-4.1", messages=HI, tools=[WEATHER], stream=True
    )
    fragments = [
        call
        for chunk in stream
        if chunk.choices
        for call in chunk.choices[0].delta.tool_calls or []
    ]
    arguments = "".join(fragment.function.arguments or "" for fragment in fragments)
    call = {"id": fragments[0].id, "type": "function",
            "function": {"name": fragments[0].function.name, "arguments": arguments}}  # fmt: skip
    messages = [
        *HI,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 21 °C"},
    ]
    answer = client.chat.completions.create(
        model="gpt-4.1", messages=messages, tools=[WEATHER], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in answer if chunk.choices)

    assert len(fragments) == 3  # the call came in fragments, each passed on
    assert json.loads(arguments) == {"city": "Paris"}
    assert text == "The tool said: Sunny, 21 °C"
    # The provider got the tool result as the client sent it.
    assert fake.requests[1].body["messages"] == messages
    assert fake.requests[1].body["tools"] == [WEATHER]


def test_a_responses_call_is_answered_streamed_and_whole(base_url, secret, fake, developer):
    fake.cached_tokens, fake.reasoning_tokens = 3, 1
    model_at(fake.url)
    client = sdk(base_url, secret)

    whole = client.responses.create(model="gpt-4.1", input="Hi")
    events = list(client.responses.create(model="gpt-4.1", input="Hi", stream=True))

    assert whole.output_text == "Hello world"
    assert [event.type for event in events] == [
        "response.created",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.completed",
    ]
    assert events[-1].response.output_text == "Hello world"
    assert [request.path for request in fake.requests] == ["/v1/responses"] * 2
    assert [(r.input_tokens, r.cache_read_tokens, r.reasoning_tokens) for r in records(2)] == [
        (12, 3, 1)
    ] * 2
