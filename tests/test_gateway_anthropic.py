"""The gateway's Anthropic API, driven by the official anthropic SDK (and raw HTTP where the
bytes matter) against the server under uvicorn; Anthropic's and Bedrock's fakes serve
upstream and check every body as the real APIs do."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import suppress
from decimal import Decimal

import anthropic
import httpx2
import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.db import OperationalError
from django.test import override_settings

from billing.models import UsageRecord, UserBudget
from gateway.calls import REFUSALS
from gateway.tokens import token_mint, token_revoke
from llmadmin.models import LLMModel
from tests.conftest import asgi_serving
from tests.factories import LLMModelFactory, provider_at
from tests.held_mail import mails_within
from tests.providers.anthropic.fake import (
    SIGNATURE,
    TOOL_INPUT,
    MessagesFake,
    answer_events,
    serve_messages,
)
from tests.providers.bedrock.fake import BEDROCK_METRICS, InvokeFake
from tests.providers.hostile import ERROR_STATUSES, serve_hostile
from tests.providers.servers import bearer_token
from tests.stream_servers import Script, anthropic_event, serve_script

ANTHROPIC_KEY = "sk-ant-fake-0001"
BEDROCK_KEY = "bedrock-api-key-0001"
AWS_KEY_ID, AWS_SECRET = "AKIAFAKE000000000001", "aws-secret-fake-0001"
USER_AGENT = "claude-cli/2.1.0 (external, cli)"
WEATHER_TOOL = {
    "name": "weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
HI = [{"role": "user", "content": "Hi"}]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """One server for the module's tests (each brings its own rows): the project's ASGI
    application under uvicorn, as conftest's asgi_server runs it."""
    with override_settings(ALLOWED_HOSTS=["127.0.0.1"]), asgi_serving() as url:
        yield f"{url}/gateway/anthropic"


@pytest.fixture(scope="module")
def anthropic_upstream() -> Iterator[MessagesFake]:
    with serve_messages(MessagesFake(api_key=ANTHROPIC_KEY)) as fake:
        yield fake


@pytest.fixture(scope="module")
def bedrock_upstream() -> Iterator[InvokeFake]:
    fake = InvokeFake(
        api_key=BEDROCK_KEY,
        aws_access_key_id=AWS_KEY_ID,
        aws_secret_access_key=AWS_SECRET,
    )
    with serve_messages(fake):
        yield fake


@pytest.fixture
def upstream(anthropic_upstream: MessagesFake) -> MessagesFake:
    anthropic_upstream.mode = "ok"
    anthropic_upstream.requests.clear()
    anthropic_upstream.hung_up.clear()
    return anthropic_upstream


@pytest.fixture
def bedrock(bedrock_upstream: InvokeFake) -> InvokeFake:
    bedrock_upstream.mode = "ok"
    bedrock_upstream.requests.clear()
    return bedrock_upstream


@pytest.fixture
def developer(django_user_model):
    return django_user_model.objects.create_user("dev")


@pytest.fixture
def secret(developer) -> str:
    return token_mint(user=developer, name="laptop")[1]


def claude_model(url: str, identifier: str = "claude-sonnet-4-6", **fields) -> LLMModel:
    provider = provider_at("anthropic", url, api_key=ANTHROPIC_KEY)
    prices = {"input_price": Decimal(3), "output_price": Decimal(15)}
    prices |= {"cache_read_price": Decimal("0.3"), "cache_write_price": Decimal("3.75")}
    return LLMModelFactory(provider=provider, identifier=identifier, **prices, **fields)


def bedrock_model(url: str, identifier: str = "us.anthropic.claude-sonnet-4-6", **auth) -> LLMModel:
    provider = provider_at("bedrock", url, **(auth or {"api_key": BEDROCK_KEY}))
    return LLMModelFactory(provider=provider, identifier=identifier)


def sdk(server: str, secret: str, **options) -> anthropic.Anthropic:
    """The SDK as Claude Code sets it up (ANTHROPIC_BASE_URL, ANTHROPIC_AUTH_TOKEN)."""
    return anthropic.Anthropic(
        base_url=server,
        auth_token=secret,
        default_headers={"User-Agent": USER_AGENT},
        **{"max_retries": 0, **options},
    )


def post(server: str, path: str, body: dict, secret: str, **headers: str) -> httpx2.Response:
    return httpx2.post(
        f"{server}{path}",
        json=body,
        headers={"x-api-key": secret, "anthropic-version": "2023-06-01", **headers},
        timeout=10,
    )


# --- review findings: the gateway's endpoints ---------------------------------------------


def test_a_token_count_passes_on_the_count_only(server, secret):
    answer = {"input_tokens": 3, "notice": "PROVIDER WORDS"}
    with serve_script(Script([json.dumps(answer).encode()])) as url:
        claude_model(url)
        response = post(
            server,
            "/v1/messages/count_tokens",
            {"model": "claude-sonnet-4-6", "messages": HI},
            secret,
        )

    assert response.json() == {"input_tokens": 3}


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_a_request_body_over_ours_is_a_413_in_anthropics_shape(
    server, upstream, secret, monkeypatch, path
):
    monkeypatch.setattr("gateway.calls.MAX_REQUEST_BYTES", 10_000)
    claude_model(upstream.url)
    big = [{"role": "user", "content": "x" * 20_000}]

    response = post(server, path, {"model": "claude-sonnet-4-6", "messages": big}, secret)

    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"
    assert not upstream.requests


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/v1/messages", 405, id="GET on messages"),
        pytest.param("GET", "/v1/messages/count_tokens", 405, id="GET on count_tokens"),
        pytest.param("POST", "/v1/models", 405, id="POST on models (CSRF page)"),
        pytest.param("POST", "/v1/complete", 404, id="an endpoint we don't serve"),
        pytest.param("GET", "/v2/models", 404, id="a path outside v1"),
    ],
)
def test_every_refusal_of_the_anthropic_api_is_in_its_error_shape(
    server, secret, method, path, status
):
    response = httpx2.request(method, f"{server}{path}", headers={"x-api-key": secret}, json={})

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json", response.text[:100]
    assert response.json()["type"] == "error"
    assert response.json()["error"]["message"]


# --- The SDK, end to end ------------------------------------------------------------------


def test_a_tool_use_round_trip_streams_through_the_sdk(server, upstream, secret):
    claude_model(upstream.url)
    client = sdk(server, secret)
    with client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=1024, messages=HI, tools=[WEATHER_TOOL]
    ) as stream:
        first = stream.get_final_message()

    [tool_use] = [block for block in first.content if block.type == "tool_use"]
    # Streamed as input_json_delta fragments, the input arrives whole.
    assert (tool_use.name, tool_use.input) == ("weather", TOOL_INPUT)
    assert first.stop_reason == "tool_use"
    result = {"type": "tool_result", "tool_use_id": tool_use.id, "content": "18 °C, sunny"}
    turns = [*HI, {"role": "assistant", "content": first.content}]
    with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=1024,
        messages=[*turns, {"role": "user", "content": [result]}],
        tools=[WEATHER_TOOL],
    ) as stream:
        final = stream.get_final_message()

    assert final.content[0].text == "Hello world"
    assert upstream.requests[-1].body["messages"][-1]["content"] == [result]


def test_thinking_blocks_come_back_and_go_back_signed(server, upstream, secret):
    claude_model(upstream.url)
    client = sdk(server, secret)
    thinking = {"type": "enabled", "budget_tokens": 2048}
    first = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=4096, messages=HI, thinking=thinking
    )
    assert first.content[0].type == "thinking"
    assert first.content[0].signature == SIGNATURE

    turns = [*HI, {"role": "assistant", "content": first.content}, *HI]
    second = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=4096, messages=turns, thinking=thinking
    )

    assert second.content[-1].text == "Hello world"
    assert upstream.requests[0].body["thinking"] == thinking
    assert upstream.requests[-1].body["messages"][1]["content"][0]["signature"] == SIGNATURE


def test_count_tokens_checks_access_and_records_nothing(server, upstream, bedrock, secret):
    claude_model(upstream.url)
    bedrock_model(bedrock.url)
    client = sdk(server, secret)

    counted = client.messages.count_tokens(model="claude-sonnet-4-6", messages=HI)
    on_bedrock = client.messages.count_tokens(
        model="us.anthropic.claude-sonnet-4-6", messages=HI, tools=[WEATHER_TOOL]
    )

    assert counted.input_tokens == on_bedrock.input_tokens == 42
    assert upstream.requests[-1].path == "/v1/messages/count_tokens"
    assert bedrock.requests[-1].path.endswith("/count-tokens")
    assert not UsageRecord.objects.exists()
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="claude-opus-9", messages=HI)


@pytest.mark.parametrize(
    ("provider_type", "identifier"),
    [
        pytest.param("openai", "gpt-5", id="an OpenAI model"),
        pytest.param("bedrock", "amazon.nova-pro-v1:0", id="a Bedrock model that is not Claude"),
    ],
)
def test_count_tokens_on_a_model_that_is_not_claude_is_refused_truly(
    server, bedrock, secret, provider_type, identifier
):
    # Messages reaches these models translated (tests/test_gateway_translation.py); a count
    # is Claude's own, which no other family's API gives.
    LLMModelFactory(provider=provider_at(provider_type, bedrock.url), identifier=identifier)

    with pytest.raises(anthropic.BadRequestError) as refused:
        sdk(server, secret).messages.count_tokens(model=identifier, messages=HI)

    assert refused.value.body["error"]["message"] == REFUSALS["other_api"][2]
    assert not bedrock.requests


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param({"api_key": BEDROCK_KEY}, id="Bedrock API key"),
        pytest.param(
            {
                "api_key": None,
                "auth": "aws_keys",
                "aws_access_key_id": AWS_KEY_ID,
                "aws_secret_access_key": AWS_SECRET,
            },
            id="SigV4",
        ),
    ],
)
def test_claude_on_bedrock_streams_and_answers_whole_through_the_sdk(server, bedrock, secret, auth):
    bedrock_model(bedrock.url, **auth)
    client = sdk(server, secret)
    arguments = {"model": "us.anthropic.claude-sonnet-4-6", "max_tokens": 1024}

    with client.messages.stream(messages=HI, tools=[WEATHER_TOOL], **arguments) as stream:
        streamed = stream.get_final_message()
    whole = client.messages.create(messages=HI, **arguments)

    assert streamed.content[0].input == TOOL_INPUT
    assert whole.content[0].text == "Hello world"
    assert [request.path.rsplit("/", 1)[1] for request in bedrock.requests] == [
        "invoke-with-response-stream",
        "invoke",
    ]


def test_the_model_list_is_every_model_of_the_developer(server, upstream, bedrock, secret):
    claude_model(upstream.url, display_name="Claude Sonnet 4.6")
    bedrock_model(bedrock.url)
    # Not Claude: Messages reaches them translated.
    bedrock_model(bedrock.url, identifier="amazon.nova-pro-v1:0")
    LLMModelFactory(provider=provider_at("openai", "http://127.0.0.1:9"), identifier="gpt-5")
    LLMModelFactory(
        provider=provider_at("openai", "http://127.0.0.1:9"), identifier="o3", restricted=True
    )

    listed = sdk(server, secret).models.list()

    assert sorted(model.id for model in listed.data) == [
        "amazon.nova-pro-v1:0",
        "claude-sonnet-4-6",
        "gpt-5",
        "us.anthropic.claude-sonnet-4-6",
    ]
    assert listed.data[0].display_name == "Claude Sonnet 4.6"


def test_two_anthropic_accounts_models_are_named_by_account_and_reach_their_own(
    server, upstream, secret
):
    eu_key = "sk-ant-fake-eu-0002"
    with serve_messages(MessagesFake(api_key=eu_key)) as eu_upstream:
        claude_model(upstream.url)
        eu = provider_at("anthropic", eu_upstream.url, api_key=eu_key, name="Anthropic EU")
        LLMModelFactory(provider=eu, identifier="claude-sonnet-4-6")
        client = sdk(server, secret)

        names = sorted(model.id for model in client.models.list().data)
        for name in names:
            client.messages.create(model=name, max_tokens=100, messages=HI)

    assert names == ["anthropic-eu/claude-sonnet-4-6", "anthropic/claude-sonnet-4-6"]
    # Each account's server got the identifier alone, with that account's key.
    for fake, key in [(upstream, ANTHROPIC_KEY), (eu_upstream, eu_key)]:
        assert [(r.body["model"], bearer_token(r.headers)) for r in fake.requests] == [
            ("claude-sonnet-4-6", key)
        ]


# --- What reaches the provider ------------------------------------------------------------

FULL_BODY = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 1000,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {
                    "type": "text",
                    "text": "What is this?",
                    "cache_control": {"type": "ephemeral", "ttl": "1h"},
                },
            ],
        }
    ],
    "tools": [WEATHER_TOOL],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "metadata": {"user_id": "u-1"},
    "stop_sequences": ["END"],
    "stream": True,
}


@pytest.mark.parametrize(
    ("admin", "sent", "expected"),
    [
        pytest.param({}, FULL_BODY, FULL_BODY, id="the client's body as sent"),
        pytest.param(
            {"max_output_tokens": 500},
            FULL_BODY,
            {**FULL_BODY, "max_tokens": 500},
            id="max_tokens lowered to the admin's cap",
        ),
        pytest.param(
            {
                "max_output_tokens": 4000,
                "provider_options": {
                    "thinking": "enabled",
                    "thinking_budget_tokens": 2000,
                    "effort": "low",
                },
            },
            {
                **FULL_BODY,
                "max_tokens": 3000,
                "output_config": {"format": {"type": "json_schema", "schema": {}}},
            },
            {
                **FULL_BODY,
                "max_tokens": 3000,
                "thinking": {"type": "enabled", "budget_tokens": 2000},
                "output_config": {"effort": "low", "format": {"type": "json_schema", "schema": {}}},
            },
            id="the admin's thinking and effort where the client set none",
        ),
        pytest.param(
            {
                "max_output_tokens": 4000,
                "provider_options": {
                    "thinking": "enabled",
                    "thinking_budget_tokens": 2000,
                    "effort": "low",
                },
            },
            {
                **FULL_BODY,
                "max_tokens": 3000,
                "thinking": {"type": "disabled"},
                "output_config": {"effort": "high"},
            },
            {
                **FULL_BODY,
                "max_tokens": 3000,
                "thinking": {"type": "disabled"},
                "output_config": {"effort": "high"},
            },
            id="the client's own thinking and effort win",
        ),
        pytest.param(
            {
                "max_output_tokens": 4000,
                "provider_options": {"thinking": "enabled", "thinking_budget_tokens": 2000},
            },
            {**FULL_BODY, "max_tokens": 3000, "temperature": 0.5},
            {**FULL_BODY, "max_tokens": 3000, "temperature": 0.5},
            id="the admin's thinking left out where the client's temperature refuses it",
        ),
    ],
)
def test_anthropic_receives_the_clients_body_but_for_the_model_and_the_admins_settings(
    server, upstream, secret, admin, sent, expected
):
    claude_model(upstream.url, **admin)
    betas = "interleaved-thinking-2025-05-14,files-api-2025-04-14"

    # Named as the model list would name it were two providers to have the model.
    named = {**sent, "model": "anthropic/claude-sonnet-4-6"}

    response = post(server, "/v1/messages", named, secret, **{"anthropic-beta": betas})

    assert response.status_code == 200, response.text
    [request] = upstream.requests
    assert request.body == {**expected, "model": "claude-sonnet-4-6"}
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["anthropic-beta"] == betas


def test_anthropic_gets_our_api_version_when_the_client_names_none(server, upstream, secret):
    claude_model(upstream.url)
    response = httpx2.post(
        f"{server}/v1/messages", json={**FULL_BODY, "stream": False}, headers={"x-api-key": secret}
    )
    assert response.status_code == 200, response.text
    assert upstream.requests[0].headers["anthropic-version"] == "2026-10-21"
    assert "anthropic-beta" not in upstream.requests[0].headers


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "whole"])
def test_bedrock_receives_claudes_invoke_body(server, bedrock, secret, streamed):
    bedrock_model(bedrock.url)
    sent = {**FULL_BODY, "model": "us.anthropic.claude-sonnet-4-6", "stream": streamed}

    response = post(server, "/v1/messages", sent, secret, **{"anthropic-beta": "a-1, b-2"})

    assert response.status_code == 200, response.text
    [request] = bedrock.requests
    action = "invoke-with-response-stream" if streamed else "invoke"
    assert request.path == f"/model/us.anthropic.claude-sonnet-4-6/{action}"
    expected = {name: value for name, value in FULL_BODY.items() if name not in ("model", "stream")}
    assert request.body == {
        **expected,
        "anthropic_version": "bedrock-2023-05-31",
        "anthropic_beta": ["a-1", "b-2"],
    }


@pytest.mark.parametrize("family", ["anthropic", "bedrock"])
def test_claudes_events_reach_the_client_byte_for_byte_as_anthropics_sse(
    server, upstream, bedrock, secret, family
):
    claude_model(upstream.url) if family == "anthropic" else bedrock_model(bedrock.url)
    model = "claude-sonnet-4-6" if family == "anthropic" else "us.anthropic.claude-sonnet-4-6"
    sent = {"model": model, "max_tokens": 100, "messages": HI, "stream": True}

    response = post(server, "/v1/messages", sent, secret)

    events = answer_events(sent, model, ("Hello", " world"), 20)
    if family == "bedrock":
        # Claude's JSON as Bedrock carried it: its invocation metrics kept.
        events[-1]["amazon-bedrock-invocationMetrics"] = BEDROCK_METRICS
    expected = "".join(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n" for event in events)
    assert response.text == expected


# --- Refusals --------------------------------------------------------------------------------


@pytest.fixture
def revoked(developer) -> str:
    token, secret = token_mint(user=developer, name="old")
    token_revoke(token=token)
    return secret


@pytest.mark.parametrize(
    ("credential", "header"),
    [
        pytest.param("llma_0123456789ab_wrong", "x-api-key", id="wrong token, x-api-key"),
        pytest.param("llma_0123456789ab_wrong", "authorization", id="wrong token, Bearer"),
        pytest.param("revoked", "x-api-key", id="revoked token, x-api-key"),
        pytest.param("revoked", "authorization", id="revoked token, Bearer"),
    ],
)
def test_a_request_without_a_usable_token_is_refused_401(
    server, upstream, revoked, credential, header
):
    claude_model(upstream.url)
    secret = revoked if credential == "revoked" else credential
    auth = {"api_key": secret} if header == "x-api-key" else {"auth_token": secret}
    client = anthropic.Anthropic(base_url=server, max_retries=0, **auth)

    with pytest.raises(anthropic.AuthenticationError) as refused:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=HI)

    assert refused.value.body["error"]["type"] == "authentication_error"
    assert not upstream.requests


def test_a_request_with_no_token_is_refused_401(server, upstream):
    claude_model(upstream.url)
    sent = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": HI}

    answers = [
        httpx2.post(f"{server}/v1/messages", json=sent),
        httpx2.post(f"{server}/v1/messages/count_tokens", json=sent),
        httpx2.get(f"{server}/v1/models"),
    ]

    assert [answer.status_code for answer in answers] == [401, 401, 401]
    assert {answer.json()["error"]["type"] for answer in answers} == {"authentication_error"}
    assert not upstream.requests


THINKING_ON = {
    "max_output_tokens": 4000,
    "provider_options": {"thinking": "enabled", "thinking_budget_tokens": 2000},
}


@pytest.mark.parametrize(
    ("setup", "sent", "error", "words"),
    [
        pytest.param(
            {},
            {"model": "claude-opus-9"},
            anthropic.NotFoundError,
            "No such model",
            id="not theirs",
        ),
        pytest.param(
            {},
            {
                "max_tokens": 3000,
                "temperature": 0.5,
                "thinking": {"type": "enabled", "budget_tokens": 2000},
            },
            anthropic.BadRequestError,
            "temperature: Temperature can't be changed while thinking is on.",
            id="temperature with thinking on",
        ),
        pytest.param(
            THINKING_ON,
            {"max_tokens": 8000, "thinking": {"type": "enabled", "budget_tokens": 5000}},
            anthropic.BadRequestError,
            "thinking.budget_tokens: Must be below max output tokens",
            id="a thinking budget above the admin's cap",
        ),
        pytest.param(
            {},
            {"max_tokens": "lots"},
            anthropic.BadRequestError,
            "max_tokens: must be a whole number.",
            id="max_tokens not a number",
        ),
        pytest.param(
            {},
            {"thinking": {"type": "sometimes"}},
            anthropic.BadRequestError,
            "thinking.type: 'sometimes' is not one of: adaptive, enabled, disabled.",
            id="an unknown thinking type",
        ),
        pytest.param(
            {},
            {"fallbacks": [{"model": "claude-opus-4-1"}]},
            anthropic.BadRequestError,
            "fallbacks: names other models",
            id="models to fall back to (OpenRouter's Messages API)",
        ),
    ],
)
def test_a_request_the_developer_may_not_make_is_refused_before_the_provider(
    server, upstream, bedrock, secret, setup, sent, error, words
):
    claude_model(upstream.url, **setup)
    model = sent.get("model", "claude-sonnet-4-6")
    # The rest as extra_body: the SDK has no temperature, and reads max_tokens itself.
    extra = {name: value for name, value in sent.items() if name != "model"}

    with pytest.raises(error) as refused:
        sdk(server, secret).messages.create(
            model=model, max_tokens=10, messages=HI, extra_body=extra
        )

    assert refused.value.body["error"]["message"].startswith(words)
    assert not upstream.requests and not bedrock.requests
    assert not UsageRecord.objects.exists()


def test_a_spent_budget_is_not_retried_by_the_sdk(server, upstream, developer, secret):
    claude_model(upstream.url)
    UserBudget.objects.create(user=developer, monthly_allowance=Decimal(0))
    sent = []
    http_client = anthropic.DefaultHttpxClient(event_hooks={"request": [sent.append]})
    client = sdk(server, secret, max_retries=2, http_client=http_client)

    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=HI)

    assert refused.value.response.headers["x-should-retry"] == "false"
    assert refused.value.body["error"]["type"] == "rate_limit_error"
    assert len(sent) == 1 and not upstream.requests


# --- The ledger ------------------------------------------------------------------------------


def test_each_call_is_in_the_ledger_with_its_tokens_token_and_client(server, upstream, developer):
    claude_model(upstream.url)
    token, secret = token_mint(user=developer, name="ci")
    client = sdk(server, secret)
    thinking = {"type": "enabled", "budget_tokens": 2048}
    arguments = {"model": "claude-sonnet-4-6", "max_tokens": 4096, "messages": HI}
    with client.messages.stream(thinking=thinking, **arguments) as stream:
        stream.get_final_message()
    client.messages.create(**arguments)

    streamed, whole = UsageRecord.objects.order_by("id")
    for record in (streamed, whole):
        assert (record.kind, record.token_id, record.client) == ("gateway", token.pk, USER_AGENT)
        # 20 input, 4 read from the cache and 2 written to it; 9 output.
        assert (record.input_tokens, record.cache_read_tokens, record.cache_write_tokens) == (
            26,
            4,
            2,
        )
        assert record.output_tokens == 9
        assert record.cost > 0
    assert (streamed.reasoning_tokens, whole.reasoning_tokens) == (3, None)


# --- Failures --------------------------------------------------------------------------------


def read_stream(client: anthropic.Anthropic, **arguments) -> None:
    with client.messages.stream(max_tokens=100, messages=HI, **arguments) as stream:
        for _ in stream:
            pass


@pytest.mark.parametrize(
    ("mode", "error_type", "words"),
    [
        pytest.param("drop", "api_error", "The provider's answer was cut off", id="cut"),
        pytest.param("garbled", "api_error", "The provider sent a malformed answer", id="garbled"),
        pytest.param("stall", "timeout_error", "The provider sent no", id="stalled"),
        pytest.param(
            "midstream_error", "overloaded_error", "The provider is overloaded", id="error"
        ),
    ],
)
def test_a_stream_broken_midway_ends_with_an_error_event_never_a_clean_end(
    server, upstream, secret, settings, mode, error_type, words
):
    settings.PROVIDER_STREAM_IDLE_TIMEOUT = settings.PROVIDER_READ_TIMEOUT = 0.3
    upstream.mode = mode
    claude_model(upstream.url)

    with pytest.raises(anthropic.APIStatusError) as ended:
        read_stream(sdk(server, secret), model="claude-sonnet-4-6")

    assert ended.value.body["error"]["type"] == error_type
    assert ended.value.body["error"]["message"].startswith(words)
    # What the provider read is charged.
    [record] = UsageRecord.objects.all()
    assert record.input_tokens == 26


@pytest.mark.parametrize(
    ("mode", "error_type", "words"),
    [
        pytest.param("drop", "api_error", "The provider's answer was cut off", id="cut"),
        pytest.param("garbled", "api_error", "The provider sent a malformed answer", id="garbled"),
        pytest.param(
            "midstream_error", "rate_limit_error", "The provider's rate limit was", id="throttled"
        ),
    ],
)
def test_a_bedrock_stream_broken_midway_ends_with_an_error_event(
    server, bedrock, secret, mode, error_type, words
):
    bedrock.mode = mode
    bedrock_model(bedrock.url)

    with pytest.raises(anthropic.APIStatusError) as ended:
        read_stream(sdk(server, secret), model="us.anthropic.claude-sonnet-4-6")

    assert ended.value.body["error"]["type"] == error_type
    assert ended.value.body["error"]["message"].startswith(words)
    # What the provider read is charged, as with Anthropic's own stream.
    assert recorded().input_tokens == 26


@pytest.mark.parametrize(
    ("family", "mode", "status", "error_type"),
    [
        pytest.param("anthropic", "rate429", 429, "rate_limit_error", id="429"),
        pytest.param("anthropic", "overloaded529", 503, "overloaded_error", id="529"),
        pytest.param("anthropic", "error500", 502, "api_error", id="500"),
        pytest.param("anthropic", "unauthorized", 503, "api_error", id="401: the admin's key"),
        pytest.param("bedrock", "rate429", 429, "rate_limit_error", id="Bedrock throttled"),
        pytest.param("bedrock", "overloaded529", 503, "overloaded_error", id="Bedrock unavailable"),
    ],
)
def test_a_refusal_before_the_answer_is_anthropics_error_in_our_words(
    server, upstream, bedrock, secret, family, mode, status, error_type
):
    fake = upstream if family == "anthropic" else bedrock
    fake.mode = mode
    claude_model(upstream.url) if family == "anthropic" else bedrock_model(bedrock.url)
    model = "claude-sonnet-4-6" if family == "anthropic" else "us.anthropic.claude-sonnet-4-6"

    with pytest.raises(anthropic.APIStatusError) as refused:
        sdk(server, secret).messages.create(model=model, max_tokens=100, messages=HI, stream=True)

    assert refused.value.status_code == status
    assert refused.value.body["error"]["type"] == error_type
    # The fakes' refusals quote the key: none of their words comes back.
    assert "refused;" not in refused.value.response.text
    assert fake.requests


def test_a_client_that_goes_away_closes_the_upstream_and_is_charged(server, upstream, secret):
    upstream.mode = "stall"
    claude_model(upstream.url)
    sent = {"model": "claude-sonnet-4-6", "max_tokens": 100, "messages": HI, "stream": True}
    headers = {"x-api-key": secret}

    with httpx2.stream("POST", f"{server}/v1/messages", json=sent, headers=headers) as response:
        next(response.iter_bytes())

    # Long before the provider's stall would end (3 s): the upstream was let go at once.
    assert upstream.hung_up.wait(1.5)
    assert recorded().input_tokens == 26


def recorded() -> UsageRecord:
    """The one call in the ledger, once its write (after the upstream closed) is done."""
    until = time.monotonic() + 2
    while time.monotonic() < until:
        with suppress(OperationalError):  # SQLite's table lock while the server writes
            if record := UsageRecord.objects.first():
                return record
        time.sleep(0.02)
    raise AssertionError("the call was not recorded")


# --- Hostile providers ---------------------------------------------------------------------


# Every way the hostile suite's servers answer a chat request (tests/providers/hostile.py).
HOSTILE_MODES = [
    *(("error_body", status) for status in ERROR_STATUSES),
    *((mode, 200) for mode in ("reason_phrase", "bad_header", "bad_charset")),
    *((mode, None) for mode in ("redirect", "bad_location", "bad_encoding", "odd_shapes")),
    *((mode, None) for mode in ("midstream", "not_json", "finish")),
]


@pytest.fixture
def every_log(caplog) -> Iterator[pytest.LogCaptureFixture]:
    """Every record at DEBUG, the "django" loggers' too (they don't propagate to the root)."""
    caplog.set_level(logging.DEBUG)
    django_logger = logging.getLogger("django")
    django_logger.addHandler(caplog.handler)
    yield caplog
    django_logger.removeHandler(caplog.handler)


@pytest.mark.parametrize("family", ["anthropic", "bedrock"])
def test_a_hostile_provider_never_gets_the_key_to_the_client_or_the_log(
    server, secret, every_log, family
):
    key = "sk-hostile-" + "k" * 24
    identifier = "claude-sonnet-4-6" if family == "anthropic" else "us.anthropic.claude-sonnet-4-6"
    sent = {"model": identifier, "max_tokens": 100, "messages": HI, "stream": True}
    for mode, status in HOSTILE_MODES:
        with serve_hostile(family, mode, status=status) as hostile:
            provider = provider_at(family, hostile.url, api_key=key)
            LLMModelFactory(provider=provider, identifier=identifier)
            answers = [
                post(server, "/v1/messages", sent, secret),
                post(server, "/v1/messages", {**sent, "stream": False}, secret),
                post(
                    server,
                    "/v1/messages/count_tokens",
                    {"model": identifier, "messages": HI},
                    secret,
                ),
            ]
            LLMModel.objects.filter(provider=provider).delete()

        assert key in hostile.credentials, mode
        for answer in answers:
            assert answer.status_code != 500, mode
            assert key not in answer.text, mode
    assert key not in every_log.text


# --- review findings: the provider layer


def tool_input_delta(partial: str) -> bytes:
    delta = {"type": "input_json_delta", "partial_json": partial}
    return anthropic_event("content_block_delta", {"index": 0, "delta": delta})


TOOL_USE_START = anthropic_event(
    "message_start", {"message": {"usage": {"input_tokens": 5, "output_tokens": 1}}}
) + anthropic_event(
    "content_block_start",
    {"index": 0, "content_block": {"type": "tool_use", "id": "t1", "name": "w", "input": {}}},
)
TOOL_USE_END = (
    anthropic_event("content_block_stop", {"index": 0})
    + anthropic_event(
        "message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 400}}
    )
    + anthropic_event("message_stop", {})
)


def test_a_client_that_leaves_mid_tool_use_is_charged_for_what_was_streamed(server, secret):
    first = TOOL_USE_START + tool_input_delta('{"path": "a.py", "content": "')
    script = Script([first], forever=tool_input_delta("x = 1\\n" * 50), every=0.01)
    body = {"model": "claude-sonnet-4-6", "max_tokens": 64000, "messages": HI, "stream": True}
    with serve_script(script) as url:
        claude_model(url)
        with httpx2.stream(
            "POST", f"{server}/v1/messages", headers={"x-api-key": secret}, json=body
        ) as response:
            received = b""
            for chunk in response.iter_bytes():
                received += chunk
                if len(received) > 20_000:  # some thousands of tokens of a file being written
                    break
        script.wait_for_close()

    assert recorded().output_tokens >= 1000


def test_a_tool_call_streaming_steadily_is_not_ended_as_idle(server, secret, settings):
    settings.PROVIDER_STREAM_IDLE_TIMEOUT = 0.3
    # A file written through a tool: its arguments stream steadily, longer than the idle limit.
    steps = [TOOL_USE_START]
    for _ in range(10):
        steps += [tool_input_delta("x = 1\\n"), 0.1]
    body = {"model": "claude-sonnet-4-6", "max_tokens": 1000, "messages": HI, "stream": True}
    with serve_script(Script([*steps, TOOL_USE_END])) as url:
        claude_model(url)
        response = post(server, "/v1/messages", body, secret)

    assert "event: error" not in response.text
    assert response.text.rstrip().endswith('"message_stop"}')


def test_a_key_written_in_a_tool_calls_json_escapes_never_reaches_the_client(server, secret):
    # The client's JSON parser decodes the tool's input back into the key.
    escaped = "".join(f"\\u{ord(char):04x}" for char in ANTHROPIC_KEY)
    answer = TOOL_USE_START + tool_input_delta('{"note": "' + escaped + '"}') + TOOL_USE_END
    body = {"model": "claude-sonnet-4-6", "max_tokens": 1000, "messages": HI, "stream": True}
    with serve_script(Script([answer])) as url:
        claude_model(url)
        response = post(server, "/v1/messages", body, secret)

    assert "input_json_delta" not in response.text
    assert response.text.strip().split("\n\n")[-1].startswith("event: error")


def test_the_admins_default_temperature_does_not_refuse_a_client_that_turns_thinking_on(
    server, secret
):
    # The admin's Claude: a default temperature (valid: thinking is off in its settings).
    # Claude Code turns thinking on and sends no temperature.
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 20000,
        "thinking": {"type": "enabled", "budget_tokens": 10000},
        "messages": HI,
        "stream": True,
    }
    with serve_script(Script([TOOL_USE_START + TOOL_USE_END])) as url:
        claude_model(url, temperature=0.5)
        response = post(server, "/v1/messages", body, secret)

    assert response.status_code == 200, response.text


def test_a_streams_end_does_not_wait_for_the_budget_alert_mail(
    server, upstream, developer, secret, held_mail
):
    developer.email = "dev@example.com"
    developer.save()
    UserBudget.objects.create(user=developer, monthly_allowance=Decimal("0.01"))
    # $0.01 a token: the answer's tokens spend the whole budget and more.
    kinds = ("input", "output", "cache_read", "cache_write")
    dear = {f"{kind}_price": Decimal(10_000) for kind in kinds}
    provider = provider_at("anthropic", upstream.url, api_key=ANTHROPIC_KEY)
    LLMModelFactory(provider=provider, identifier="claude-sonnet-4-6", **dear)

    # The SDK reads the stream to the response's end, past message_stop.
    stream = sdk(server, secret).messages.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=HI, stream=True
    )
    assert [event.type for event in stream][-1] == "message_stop"
    # The end came while the alert's mail was still waiting on its server.
    assert mail.outbox == []

    held_mail.set()
    [alert] = mails_within()
    assert alert.subject == "[llmadmin] Monthly LLM budget spent"


def test_a_bedrock_answer_does_not_wait_for_other_calls_alert_mails(
    server, upstream, bedrock, held_mail
):
    kinds = ("input", "output", "cache_read", "cache_write")
    dear = {f"{kind}_price": Decimal(10_000) for kind in kinds}  # $0.01 a token
    provider = provider_at("anthropic", upstream.url, api_key=ANTHROPIC_KEY)
    LLMModelFactory(provider=provider, identifier="claude-sonnet-4-6", **dear)
    bedrock_model(bedrock.url)
    # As many developers as asyncio has threads by default (Bedrock's requests are signed
    # there), each crossing their budget: each alert's check waits on the mail server.
    spenders = min(32, (os.cpu_count() or 1) + 4)
    for number in range(spenders):
        spender = User.objects.create_user(f"spender{number}", email=f"s{number}@example.com")
        UserBudget.objects.create(user=spender, monthly_allowance=Decimal("0.01"))
        spender_secret = token_mint(user=spender, name="laptop")[1]
        sdk(server, spender_secret).messages.create(
            model="claude-sonnet-4-6", max_tokens=100, messages=HI
        )
    assert mail.outbox == []

    # Another developer's call to Claude on Bedrock is answered meanwhile.
    other = User.objects.create_user("other")
    answer = sdk(server, token_mint(user=other, name="laptop")[1], timeout=2).messages.create(
        model="us.anthropic.claude-sonnet-4-6", max_tokens=100, messages=HI
    )
    assert answer.stop_reason == "end_turn"

    held_mail.set()  # every check done before the test's rows go
    until = time.monotonic() + 10
    while len(mail.outbox) < spenders and time.monotonic() < until:
        time.sleep(0.01)
    assert len(mail.outbox) == spenders
