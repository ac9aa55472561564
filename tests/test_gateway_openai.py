"""The gateway's OpenAI API (/gateway/openai/v1), driven by the official openai SDK against the
server under uvicorn, with the loopback fakes of tests/providers/ as the providers upstream.

The fakes refuse what the real APIs refuse (tests/providers/openai/fake.py): a body the
gateway sent wrong fails there, not only here.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx2
import openai
import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.db import OperationalError
from django.forms.models import model_to_dict
from django.test import override_settings
from django.utils import timezone

import chat.metered
from billing.models import UsageRecord, UserBudget
from gateway.calls import REFUSALS, UNAVAILABLE
from gateway.models import PersonalAccessToken
from gateway.tokens import token_mint, token_revoke
from llmadmin.models import LLMModel
from llmadmin.providers.errors import (
    failed_mid_answer,
    malformed,
    rate_limited,
    refused,
    sent_credentials,
)
from tests.conftest import asgi_serving
from tests.factories import LLMModelFactory, provider_at
from tests.held_mail import mails_within
from tests.providers.fakes import FAKES, FakeProvider, fake_for, serve
from tests.providers.hostile import serve_hostile
from tests.stream_servers import KEEP_ALIVE, OPENAI_END, Script, data, openai_delta, serve_script

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
    """The ledger once it holds `count` rows: a call that ended is recorded before its end
    reaches the client, one cut short just after (on SQLite, while the server writes, its
    table may be locked)."""
    until = time.monotonic() + 5
    while time.monotonic() < until:
        with contextlib.suppress(OperationalError):
            if UsageRecord.objects.count() >= count:
                break
        time.sleep(0.01)
    return list(UsageRecord.objects.order_by("pk"))


def model_at(
    url: str, provider_type: str = "openai", api_key: str = KEY, **fields: Any
) -> LLMModel:
    fields = {"identifier": "gpt-4.1", **PRICES, **fields}
    return LLMModelFactory(provider=provider_at(provider_type, url, api_key=api_key), **fields)


# --- review findings: the gateway's endpoints -------------------------------------------------


def test_a_request_body_over_django_s_upload_limit_but_under_ours_is_served(base_url, secret):
    # A long coding session with a screenshot: 3 MB, over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB),
    # under MAX_REQUEST_BYTES (32 MB).
    big = [{"role": "user", "content": "x" * 3_000_000}]
    with serve_script(Script([openai_delta("Hi"), OPENAI_END])) as url:
        model_at(url)
        response = httpx2.post(
            f"{base_url}/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": "gpt-4.1", "messages": big, "stream": True},
            timeout=30,
        )

    assert response.status_code == 200, response.text[:200]


def chunks(body: bytes) -> Iterator[bytes]:
    yield from (body[start : start + 1000] for start in range(0, len(body), 1000))


@pytest.mark.parametrize(
    "chunked", [pytest.param(False, id="its Content-Length"), pytest.param(True, id="chunked")]
)
def test_a_request_body_over_ours_is_a_413_in_openais_shape(
    base_url, secret, fake, monkeypatch, chunked
):
    monkeypatch.setattr("gateway.calls.MAX_REQUEST_BYTES", 10_000)
    model_at(fake.url)
    body = json.dumps({"model": "gpt-4.1", "messages": [{"role": "user", "content": "x" * 20_000}]})
    response = httpx2.post(
        f"{base_url}/chat/completions",
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        content=chunks(body.encode()) if chunked else body.encode(),
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "chat/completions", 405, id="GET on chat completions"),
        pytest.param("GET", "responses", 405, id="GET on responses"),
        pytest.param("POST", "models", 405, id="POST on models (CSRF page)"),
        pytest.param("POST", "embeddings", 404, id="an endpoint we don't serve"),
        pytest.param("GET", "../v2/models", 404, id="a path outside v1"),
    ],
)
def test_every_refusal_of_the_openai_api_is_in_its_error_shape(
    base_url, secret, method, path, status
):
    response = httpx2.request(
        method, f"{base_url}/{path}", headers={"Authorization": f"Bearer {secret}"}, json={}
    )

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json", response.text[:100]
    assert response.json()["error"]["message"]


def test_a_vendor_prefixed_id_the_list_gives_is_callable(base_url, secret):
    # OpenRouter's (and Vercel's) ids name the vendor, which is also a provider type here.
    with serve_script(Script([openai_delta("Hi"), OPENAI_END])) as url:
        model_at(url, identifier="gpt-4.1")
        model_at(url, "openrouter", identifier="openai/gpt-4.1")
        auth = {"Authorization": f"Bearer {secret}"}
        listed = httpx2.get(f"{base_url}/models", headers=auth).json()["data"]
        names = sorted(model["id"] for model in listed)
        statuses = [
            httpx2.post(
                f"{base_url}/chat/completions",
                headers=auth,
                json={"model": name, "messages": HI, "stream": True},
            ).status_code
            for name in names
        ]

    assert names == ["gpt-4.1", "openai/gpt-4.1"]
    assert statuses == [200, 200]


def test_each_name_the_list_gives_is_one_models_own(base_url, secret):
    # Identifiers that collide every way: shared across types, and one type's id shaped as
    # another type's prefixed name (OpenRouter's and Vercel's ids start with a vendor).
    colliding = [
        ("openai", "gpt-4.1"),
        ("azure", "gpt-4.1"),
        ("openrouter", "openai/gpt-4.1"),
        ("vercel", "azure/gpt-4.1"),
        ("vercel", "gpt-4.1"),
        ("openai-compat", "openrouter/openai/gpt-4.1"),
    ]
    auth = {"Authorization": f"Bearer {secret}"}
    with serve_script(Script([openai_delta("Hi"), OPENAI_END])) as url:
        models = [model_at(url, type_, identifier=id_) for type_, id_ in colliding]
        names = [model.id for model in sdk(base_url, secret).models.list()]
        for name in names:
            sent = {"model": name, "messages": HI, "stream": True}
            httpx2.post(f"{base_url}/chat/completions", headers=auth, json=sent)

    assert len(set(names)) == len(models)
    # Each name reached its own model: each one is in the ledger once.
    assert sorted(record.model_id for record in records(len(models))) == sorted(
        model.pk for model in models
    )


def test_responses_on_a_model_of_another_family_is_refused_truly(base_url, secret):
    # Chat completions reach it translated (tests/test_gateway_translation.py); Responses
    # reaches OpenAI's family's models only.
    LLMModelFactory(provider=provider_at("google", "http://127.0.0.1:9"), identifier="gemini-2.5")

    with pytest.raises(openai.BadRequestError) as refused:
        sdk(base_url, secret).responses.create(model="gemini-2.5", input="Hi")

    assert refused.value.body["message"] == REFUSALS["other_api"][2]
    assert "other API" not in refused.value.body["message"]
    assert not UsageRecord.objects.exists()


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


def test_a_whole_answer_slower_than_the_read_timeout_is_waited_for(base_url, secret, fake):
    # A whole answer's first byte comes when it is done: the read timeout between two reads
    # of a stream (1.5 s here) would end every long one.
    fake.mode = "slow"
    model_at(fake.url)

    answer = sdk(base_url, secret).chat.completions.create(model="gpt-4.1", messages=HI)

    assert answer.choices[0].message.content == "Hello world"


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
    records(1)  # recorded after the last byte: before the test's database goes


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
    assert len(records(2)) == 2


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


def test_the_model_list_holds_every_model_of_this_developer(base_url, secret, developer):
    url = "http://127.0.0.1:9"  # never called: a list reads only the configuration
    model_at(url, identifier="gpt-4.1")
    model_at(url, "openrouter", identifier="gpt-4.1")
    model_at(url, "azure", identifier="support-bot")
    # Another family's: chat completions reach it translated.
    model_at(url, "anthropic", identifier="claude-sonnet-4-5")
    model_at(url, identifier="gpt-5", restricted=True)  # kept from everyone

    listed = sdk(base_url, secret).models.list()

    assert sorted((model.id, model.owned_by) for model in listed) == [
        ("claude-sonnet-4-5", "anthropic"),
        ("openai/gpt-4.1", "openai"),
        ("openrouter/gpt-4.1", "openrouter"),
        ("support-bot", "azure"),
    ]
    assert {model.object for model in listed} == {"model"}


def test_a_name_the_list_gives_reaches_its_own_provider(base_url, secret):
    with serve(FakeProvider("openrouter", KEY)) as openrouter:
        model_at("http://127.0.0.1:9", identifier="gpt-4.1")
        model_at(openrouter.url, "openrouter", identifier="gpt-4.1")

        answer = sdk(base_url, secret).chat.completions.create(
            model="openrouter/gpt-4.1", messages=HI
        )

    assert answer.choices[0].message.content == "Hello world"
    assert [request.body["model"] for request in openrouter.requests] == ["gpt-4.1"]


@pytest.mark.parametrize("provider_type", ["azure", "openai-compat", "openrouter", "vercel"])
def test_each_type_of_the_family_is_called_at_its_own_paths(base_url, secret, provider_type):
    with serve(fake_for(provider_type, KEY)) as fake:
        model_at(fake.url, provider_type, identifier="support-bot")
        client = sdk(base_url, secret)
        chat = client.chat.completions.create(model="support-bot", messages=HI)
        answer = client.responses.create(model="support-bot", input="Hi")

    assert (chat.choices[0].message.content, answer.output_text) == ("Hello world",) * 2
    prefix = FAKES[provider_type][1] or "/openai/v1"  # Azure's v1 API
    assert [request.path for request in fake.requests] == [
        f"{prefix}/chat/completions",
        f"{prefix}/responses",
    ]


# --- What reaches the provider: the client's body, but for the model and the admin's rules ------

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
RICH = {
    "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE]},
    ],
    "tools": [WEATHER],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False,
    "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {}}},
    "seed": 7,
    "stop": ["\n\n"],
    "user": "dev-42",
    "metadata": {"ticket": "27"},
}
CHAT = "chat/completions"


def row(name, sent, expected, *, api=CHAT, provider_type="openai", identifier="gpt-4.1", **admin):
    return pytest.param(provider_type, identifier, admin, api, sent, expected, id=name)


BYTE_ROWS = [
    row("everything the client sent is kept", RICH, RICH),
    row(
        "the admin's sampling is a default",
        {"messages": HI},
        {"messages": HI, "temperature": 0.2, "top_p": 0.9},
        temperature=0.2,
        top_p=0.9,
    ),
    row(
        "the client's sampling wins over the default",
        {"messages": HI, "temperature": 1.5},
        {"messages": HI, "temperature": 1.5},
        temperature=0.2,
    ),
    row(
        "the admin's options are defaults",
        {"messages": HI},
        {"messages": HI, "reasoning_effort": "low"},
        identifier="gpt-5",
        provider_options={"reasoning_effort": "low"},
    ),
    row(
        "the admin's temperature left out where the client's effort refuses it",
        {"messages": HI, "reasoning_effort": "high"},
        {"messages": HI, "reasoning_effort": "high"},
        identifier="gpt-5.1",
        temperature=0.5,
        provider_options={"reasoning_effort": "none"},
    ),
    row(
        "the admin's effort kept where it lets the client's temperature be",
        {"messages": HI, "temperature": 0.5},
        {"messages": HI, "temperature": 0.5, "reasoning_effort": "none"},
        identifier="gpt-5.1",
        provider_options={"reasoning_effort": "none"},
    ),
    row(
        "a larger max tokens is lowered to the cap",
        {"messages": HI, "max_completion_tokens": 5000},
        {"messages": HI, "max_completion_tokens": 1000},
        max_output_tokens=1000,
    ),
    row(
        "the cap is set where the client set none",
        {"messages": HI},
        {"messages": HI, "max_completion_tokens": 800},
        identifier="gpt-5",
        provider_options={"max_completion_tokens": 800},
    ),
    row(
        "a compatible server's cap is max_tokens",
        {"messages": HI},
        {"messages": HI, "max_tokens": 1000},
        provider_type="openai-compat",
        identifier="qwen2.5-coder:32b",
        max_output_tokens=1000,
    ),
    row(
        "a stream asks for its usage, the client's stream options kept",
        {"messages": HI, "stream": True, "stream_options": {"include_obfuscation": False}},
        {
            "messages": HI,
            "stream": True,
            "stream_options": {"include_obfuscation": False, "include_usage": True},
        },
    ),
    row(
        "an option joins the client's own object",
        {"messages": HI, "provider": {"allow_fallbacks": False}},
        {"messages": HI, "provider": {"allow_fallbacks": False, "order": ["anthropic"]}},
        provider_type="openrouter",
        identifier="openai/gpt-4.1",
        provider_options={"provider_order": ["anthropic"]},
    ),
    row(
        "Responses: the effort and the cap where Responses takes them",
        {"input": "Hi", "max_output_tokens": 4000, "reasoning": {"summary": "auto"}},
        {
            "input": "Hi",
            "max_output_tokens": 2000,
            "reasoning": {"summary": "auto", "effort": "high"},
        },
        api="responses",
        identifier="gpt-5",
        max_output_tokens=2000,
        provider_options={"reasoning_effort": "high"},
    ),
]


@pytest.mark.parametrize(
    ("provider_type", "identifier", "admin", "api", "sent", "expected"), BYTE_ROWS
)
def test_the_provider_gets_the_clients_body_but_for_the_model_and_the_admins_rules(
    base_url, secret, provider_type, identifier, admin, api, sent, expected
):
    with serve(fake_for(provider_type, KEY)) as fake:
        model_at(fake.url, provider_type, identifier=identifier, **admin)
        response = httpx2.post(
            f"{base_url}/{api}",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": identifier, **sent},
        )
        response.read()

    assert response.status_code == 200, response.text
    [request] = fake.requests
    assert request.body == {"model": identifier, **expected}
    records(1)  # read as the server's write allows (SQLite locks the table meanwhile)


# --- Refused before anything is sent -----------------------------------------------------------


def expire(secret: str) -> None:
    PersonalAccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))


def revoke(secret: str) -> None:
    token_revoke(token=PersonalAccessToken.objects.get())


@pytest.mark.parametrize(
    ("header", "value", "spoil"),
    [
        pytest.param("Authorization", "", None, id="no token"),
        pytest.param("Authorization", "Bearer llma_000000000000_wrong", None, id="wrong token"),
        pytest.param("Authorization", "Bearer {secret}", revoke, id="revoked"),
        pytest.param("x-api-key", "{secret}", expire, id="expired, as x-api-key"),
    ],
)
def test_a_request_without_a_usable_token_is_refused_with_401(
    base_url, secret, fake, header, value, spoil
):
    model_at(fake.url)
    if spoil:
        spoil(secret)

    responses = [
        httpx2.request(
            method,
            f"{base_url}/{path}",
            headers={header: value.format(secret=secret)},
            json={"model": "gpt-4.1", "messages": HI, "input": "Hi"},
        )
        for method, path in (("GET", "models"), ("POST", CHAT), ("POST", "responses"))
    ]

    assert [response.status_code for response in responses] == [401] * 3
    assert {response.json()["error"]["code"] for response in responses} == {"invalid_api_key"}
    assert fake.requests == []


def test_the_same_token_as_x_api_key_is_accepted(base_url, secret, fake):
    model_at(fake.url)

    response = httpx2.post(
        f"{base_url}/{CHAT}",
        headers={"x-api-key": secret},
        json={"model": "gpt-4.1", "messages": HI},
    )

    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Hello world"


@pytest.mark.parametrize(
    ("model", "body", "status", "error", "param"),
    [
        pytest.param(
            {"restricted": True}, {}, 404, openai.NotFoundError, None, id="a model kept from them"
        ),
        pytest.param(
            {"provider_type": "anthropic", "identifier": "claude-sonnet-4-5"},
            # Translated for Claude: a field Anthropic's API has no counterpart of.
            {"model": "claude-sonnet-4-5", "logprobs": True},
            400,
            openai.BadRequestError,
            "logprobs",
            id="a field another family's model has no counterpart of",
        ),
        pytest.param(
            {"identifier": "gpt-5"},
            {"model": "gpt-5", "temperature": 0.5},
            400,
            openai.BadRequestError,
            "temperature",
            id="a temperature the model refuses",
        ),
        pytest.param(
            {"provider_type": "openrouter", "identifier": "openai/gpt-4.1"},
            {"model": "openai/gpt-4.1", "provider": {"order": ["Not A Slug"]}},
            400,
            openai.BadRequestError,
            "provider.order",
            id="an option value the type refuses",
        ),
        pytest.param(
            {},
            {"temperature": "hot"},
            400,
            openai.BadRequestError,
            "temperature",
            id="a sampling field that is no number",
        ),
        pytest.param(
            {},
            {"top_k": 40},
            400,
            openai.BadRequestError,
            "top_k",
            id="a field the type does not take",
        ),
        # Models to fall back to, each gateway's way: a model kept from the developer would
        # answer, priced as the one asked for.
        pytest.param(
            {"provider_type": "vercel", "identifier": "openai/gpt-4.1"},
            {"model": "openai/gpt-4.1", "providerOptions": {"gateway": {"models": ["x/opus"]}}},
            400,
            openai.BadRequestError,
            "providerOptions.gateway.models",
            id="Vercel's fallback models",
        ),
        pytest.param(
            {"provider_type": "openrouter", "identifier": "openai/gpt-4.1"},
            {"model": "openai/gpt-4.1", "models": ["x/opus"], "route": "fallback"},
            400,
            openai.BadRequestError,
            "models",
            id="OpenRouter's fallback models",
        ),
        pytest.param(
            {"provider_type": "openai-compat", "identifier": "gpt-4.1"},
            {"fallbacks": ["opus"]},
            400,
            openai.BadRequestError,
            "fallbacks",
            id="LiteLLM's fallbacks",
        ),
    ],
)
def test_a_request_the_rules_refuse_never_reaches_the_provider(
    base_url, secret, model, body, status, error, param
):
    provider_type = model.pop("provider_type", "openai")
    with serve(fake_for(provider_type, KEY)) as fake:
        model_at(fake.url, provider_type, **model)

        with pytest.raises(error) as refused:
            sdk(base_url, secret).chat.completions.create(
                model="gpt-4.1", messages=HI, extra_body=body
            )

    assert refused.value.status_code == status
    assert refused.value.body["param"] == param
    assert fake.requests == []
    # Nothing was sent: no call to record.
    assert not UsageRecord.objects.exists()


def test_a_spent_budget_is_a_429_the_sdk_does_not_retry(base_url, secret, fake, developer):
    UserBudget.objects.create(user=developer, monthly_allowance=Decimal(0))
    model_at(fake.url)
    sent = []
    client = openai.OpenAI(
        base_url=base_url,
        api_key=secret,
        max_retries=2,
        http_client=httpx2.Client(event_hooks={"request": [sent.append]}),
    )

    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-4.1", messages=HI)

    assert refused.value.response.headers["x-should-retry"] == "false"
    assert refused.value.code == refused.value.type == "insufficient_quota"
    assert refused.value.body["message"].startswith("Your monthly budget of $0.00 is spent")
    assert len(sent) == 1
    assert fake.requests == []


@pytest.mark.parametrize("api", [CHAT, "responses"])
def test_a_streams_end_does_not_wait_for_the_budget_alert_mail(
    base_url, secret, fake, developer, held_mail, api
):
    budget_of_a_cent(developer)
    # 12 tokens in and 5 out at $1,000 a million each: $0.017, the whole budget and more.
    model_at(fake.url, input_price=Decimal(1000), output_price=Decimal(1000))

    client = sdk(base_url, secret)
    if api == CHAT:  # the SDK hangs up at [DONE]
        stream = client.chat.completions.create(model="gpt-4.1", messages=HI, stream=True)
    else:  # the SDK reads to the response's end
        stream = client.responses.create(model="gpt-4.1", input="Hi", stream=True)
    assert list(stream)
    # The end came while the alert's mail was still waiting on its server.
    assert mail.outbox == []

    held_mail.set()
    [alert] = mails_within()
    assert alert.subject == "[llmadmin] Monthly LLM budget spent"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="not JSON"),
        pytest.param(b'{"messages": []}', id="no model"),
    ],
)
def test_a_body_that_is_no_request_is_refused_with_400(base_url, secret, fake, body):
    model_at(fake.url)

    response = httpx2.post(
        f"{base_url}/{CHAT}", headers={"Authorization": f"Bearer {secret}"}, content=body
    )

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert fake.requests == []


# --- An answer that fails ends with the API's error, never a clean end -------------------------


def raw_stream(base_url: str, secret: str, api: str = CHAT) -> str:
    body = {"model": "gpt-4.1", "stream": True, "messages": HI, "input": "Hi"}
    if api == "responses":
        del body["messages"]
    else:
        del body["input"]
    with httpx2.stream(
        "POST", f"{base_url}/{api}", headers={"Authorization": f"Bearer {secret}"}, json=body
    ) as response:
        assert response.status_code == 200
        return response.read().decode()


def last_event(body: str) -> dict[str, Any]:
    return json.loads(body.strip().split("\n\n")[-1].split("data: ", 1)[1])


@pytest.mark.parametrize(
    ("steps", "forever", "limits", "code"),
    [
        pytest.param([openai_delta("Hel")], None, {}, None, id="cut"),
        pytest.param([openai_delta("Hel"), b"data: {not json\n\n"], None, {}, None, id="garbled"),
        pytest.param(
            [openai_delta("Hel")],
            KEEP_ALIVE,
            {"PROVIDER_STREAM_IDLE_TIMEOUT": 0.3},
            "timeout",
            id="stalled: idle limit",
        ),
        pytest.param(
            [],
            openai_delta("lo"),
            {"PROVIDER_STREAM_TIMEOUT": 0.4},
            "timeout",
            id="past the deadline",
        ),
    ],
)
def test_a_stream_that_fails_midway_ends_with_the_error_chunk_the_sdk_raises(
    base_url, secret, settings, steps, forever, limits, code
):
    for name, value in limits.items():
        setattr(settings, name, value)
    with serve_script(Script([*steps], forever=forever)) as url:
        model_at(url)
        body = raw_stream(base_url, secret)
        with pytest.raises(openai.APIError):
            for _ in sdk(base_url, secret).chat.completions.create(
                model="gpt-4.1", messages=HI, stream=True
            ):
                pass

    assert "[DONE]" not in body
    error = last_event(body)["error"]
    assert (error["type"], error["code"]) == ("server_error", code)
    assert len(records(2)) == 2


def responses_event(name: str, **data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


def test_a_responses_stream_cut_short_ends_with_the_error_event(base_url, secret):
    delta = {"item_id": "msg_1", "output_index": 0, "content_index": 0, "logprobs": []}
    steps = [
        responses_event("response.created", response={"id": "resp_1", "status": "in_progress"}),
        responses_event("response.output_text.delta", delta="Hel", **delta),
    ]
    with serve_script(Script(steps)) as url:
        model_at(url)
        body = raw_stream(base_url, secret, "responses")
        with pytest.raises(openai.APIError) as failed:
            for _ in sdk(base_url, secret).responses.create(
                model="gpt-4.1", input="Hi", stream=True
            ):
                pass

    assert body.split("\n\n")[-2].startswith("event: error\n")
    assert last_event(body)["type"] == "error"
    assert "response.completed" not in body
    assert str(failed.value) == "The provider's answer was cut off before it finished."
    records(2)


def test_a_responses_stream_the_provider_fails_ends_with_our_error_event(base_url, secret):
    with serve(FakeProvider("openai", KEY, mode="midstream_error")) as fake:
        model_at(fake.url)
        with pytest.raises(openai.APIError) as failed:
            for _ in sdk(base_url, secret).responses.create(
                model="gpt-4.1", input="Hi", stream=True
            ):
                pass

    assert str(failed.value) == str(failed_mid_answer())
    records(1)


def leave_at_the_first_bytes(base_url: str, secret: str) -> None:
    """A streamed call whose client reads its first bytes, then hangs up."""
    with httpx2.stream(
        "POST",
        f"{base_url}/{CHAT}",
        headers={"Authorization": f"Bearer {secret}"},
        json={"model": "gpt-4.1", "messages": HI, "stream": True},
    ) as response:
        next(response.iter_bytes())


def budget_of_a_cent(developer: User) -> None:
    """An address for the developer's alerts, and a budget of $0.01 for a call to spend."""
    developer.email = "dev@example.com"
    developer.save()
    UserBudget.objects.create(user=developer, monthly_allowance=Decimal("0.01"))


def test_a_client_that_leaves_closes_the_upstream_at_once_and_is_charged(base_url, secret):
    script = Script([openai_delta("Hel")], forever=openai_delta("lo"))
    with serve_script(script) as url:
        model_at(url)
        leave_at_the_first_bytes(base_url, secret)
        left_at = time.monotonic()
        closed_at = script.wait_for_close()

    assert closed_at is not None and closed_at - left_at < 1
    [record] = records(1)
    assert record.output_tokens > 0
    assert record.pricing == "estimated"


def test_a_client_that_leaves_past_its_budget_is_alerted_all_the_same(base_url, secret, developer):
    budget_of_a_cent(developer)
    script = Script([openai_delta("Hel")], forever=openai_delta("lo"))
    with serve_script(script) as url:
        # $0.01 a token: what it sent and received, estimated, is more than the budget.
        model_at(url, input_price=Decimal(10_000), output_price=Decimal(10_000))
        leave_at_the_first_bytes(base_url, secret)
        assert script.wait_for_close() is not None

    [record] = records(1)
    assert record.cost > Decimal("0.01")
    [alert] = mails_within()
    assert alert.subject == "[llmadmin] Monthly LLM budget spent"


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole answer"])
def test_a_client_gone_while_its_call_is_recorded_is_alerted_all_the_same(
    base_url, secret, fake, developer, monkeypatch, stream
):
    budget_of_a_cent(developer)
    model_at(fake.url, input_price=Decimal(1000), output_price=Decimal(1000))  # $0.017
    # The call's record waits until the client has gone.
    recording, gone = threading.Event(), threading.Event()
    record = chat.metered.usage_record
    monkeypatch.setattr(
        chat.metered,
        "usage_record",
        lambda **arguments: (recording.set(), gone.wait(5), record(**arguments))[-1],
    )
    body = json.dumps({"model": "gpt-4.1", "messages": HI, "stream": stream}).encode()
    address = urlsplit(base_url)
    request = (
        f"POST {address.path}/{CHAT} HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    # A raw connection: the client leaves while the call is recorded, whether or not the
    # answer had begun.
    with socket.create_connection((address.hostname, address.port)) as client:
        client.sendall(request + body)
        assert recording.wait(5)
    time.sleep(0.3)  # the server sees the client gone
    gone.set()

    [call] = records(1)
    assert call.cost > Decimal("0.01")
    [alert] = mails_within()
    assert alert.subject == "[llmadmin] Monthly LLM budget spent"


# --- A hostile provider: its refusals in our words, the key never passed on --------------------


@pytest.mark.parametrize(
    ("mode", "status", "answered", "message"),
    [
        # A refused key is the admin's to fix: the developer hears the model is unavailable.
        pytest.param("error_body", 401, 503, UNAVAILABLE, id="key refused"),
        pytest.param("reason_phrase", 401, 503, UNAVAILABLE, id="key refused, in the status"),
        pytest.param("error_body", 429, 429, rate_limited(), id="rate limited"),
        pytest.param("error_body", 500, 502, refused(500), id="provider failed"),
        pytest.param("midstream", None, 200, failed_mid_answer(), id="error mid-stream"),
        pytest.param("echo_text", None, 200, sent_credentials(), id="the key in the answer"),
        pytest.param("not_json", None, 502, malformed(), id="garbage from the start"),
    ],
)
def test_a_hostile_providers_answers_reach_the_client_in_our_words_without_the_key(
    base_url, secret, every_log, mode, status, answered, message
):
    key = "sk-HOSTILE-" + secrets.token_hex(16)
    with serve_hostile("openai", mode, status=status) as server:
        model_at(server.url, api_key=key)
        answers = [
            httpx2.post(
                f"{base_url}/{api}",
                headers={"Authorization": f"Bearer {secret}"},
                json={"model": "gpt-4.1", "stream": stream, **body},
            )
            for api, body in ((CHAT, {"messages": HI}), ("responses", {"input": "Hi"}))
            for stream in (True, False)
        ]
        ledger = [str(model_to_dict(record)) for record in records(4)]

    assert key in server.credentials
    streamed, whole = answers[0], answers[1]
    assert streamed.status_code == answered
    error = last_event(streamed.text) if answered == 200 else streamed.json()
    assert error["error"]["message"] == str(message)
    if answered == 200:  # what came before the failure came through
        assert "Hello" in streamed.text and "[DONE]" not in streamed.text
    else:  # the whole answer: the same refusal (garbage that holds the key may be told apart)
        assert whole.status_code == answered
    surfaces = [
        *(answer.text + str(answer.headers) for answer in answers),
        every_log.text,
        *(f"{r.getMessage()} {r.args}" for r in every_log.records),
        *ledger,
    ]
    assert not any(key in text or key.removeprefix("sk-HOSTILE-") in text for text in surfaces)


# --- review findings: the provider layer

HOSTILE_KEY = "sk-HOSTILE-0123456789abcdef0123456789abcdef"


def said(text: str) -> str:
    """What an OpenAI client assembles from a stream: its content deltas, JSON-decoded."""
    parts = []
    for event in text.split("\n\n"):
        line = event.partition("data: ")[2]
        if line and line != "[DONE]":
            for choice in json.loads(line).get("choices") or []:
                parts.append(choice.get("delta", {}).get("content") or "")
    return "".join(parts)


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param(
            [
                openai_delta("Your key is " + HOSTILE_KEY[:20]),
                openai_delta(HOSTILE_KEY[20:] + "."),
            ],
            id="split over two content deltas",
        ),
        pytest.param(
            # The same key, JSON-escaped: no byte run equals it, every JSON parser decodes it.
            [
                data(
                    {"choices": [{"index": 0, "delta": {"content": "Your key is " + HOSTILE_KEY}}]}
                ).replace(b"sk-", b"\\u0073k-")
            ],
            id="json-escaped",
        ),
    ],
)
def test_a_provider_that_says_its_key_never_gets_it_to_the_client(base_url, secret, steps):
    with serve_script(Script([*steps, OPENAI_END])) as url:
        LLMModelFactory(
            provider=provider_at("openai", url, api_key=HOSTILE_KEY), identifier="gpt-4.1"
        )
        with httpx2.stream(
            "POST",
            f"{base_url}/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": "gpt-4.1", "messages": HI, "stream": True},
        ) as response:
            body = response.read().decode()

    assert HOSTILE_KEY not in said(body)


def tool_delta(arguments: str) -> bytes:
    call = {"index": 0, "function": {"arguments": arguments}}
    return data({"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]})


def test_a_client_that_leaves_mid_tool_call_is_charged_for_what_was_streamed(base_url, secret):
    script = Script(
        [tool_delta('{"path": "a.py", "content": "')],
        forever=tool_delta("x = 1\\n" * 50),
        every=0.01,
    )
    with serve_script(script) as url:
        LLMModelFactory(provider=provider_at("openai", url, api_key=KEY), identifier="gpt-4.1")
        with httpx2.stream(
            "POST",
            f"{base_url}/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": "gpt-4.1", "messages": HI, "stream": True},
        ) as response:
            received = b""
            for chunk in response.iter_bytes():
                received += chunk
                if len(received) > 20_000:  # some thousands of tokens of a file being written
                    break
        script.wait_for_close()

    [record] = records(1)
    assert record.output_tokens >= 1000, (record.output_tokens, record.pricing)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"error": {"message": "PROVIDER WORDS", "code": 502}}, id="chat: error"),
        pytest.param(
            {
                "object": "response",
                "status": "failed",
                "error": {"code": "server_error", "message": "PROVIDER WORDS"},
                "output": [],
            },
            id="responses: failed",
        ),
    ],
)
def test_a_whole_answer_that_is_the_providers_error_is_told_in_our_words(base_url, secret, answer):
    with serve_script(Script([json.dumps(answer).encode()])) as url:
        LLMModelFactory(provider=provider_at("openai", url, api_key=KEY), identifier="gpt-4.1")
        response = httpx2.post(
            f"{base_url}/{'responses' if 'status' in answer else 'chat/completions'}",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": "gpt-4.1", "messages": HI, "input": "Hi"},
        )

    assert "PROVIDER WORDS" not in response.text, (response.status_code, response.text)


def test_a_request_with_no_messages_is_refused_as_the_api_refuses_it(base_url, secret, fake):
    model_at(fake.url)

    with pytest.raises(openai.BadRequestError) as refused:
        sdk(base_url, secret).chat.completions.create(model="gpt-4.1", messages=[])

    assert refused.value.status_code == 400
