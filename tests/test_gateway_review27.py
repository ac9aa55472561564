"""Hostile review of issue 27: defects proven by failing tests."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import httpx2
import pytest
from django.contrib.auth.models import User
from django.db import OperationalError
from django.test import override_settings

from billing.models import UsageRecord
from gateway.tokens import token_mint
from tests.conftest import asgi_serving
from tests.factories import LLMModelFactory, provider_at
from tests.stream_servers import (
    OPENAI_END,
    Script,
    openai_delta,
    serve_script,
)

KEY = "sk-HOSTILE-0123456789abcdef0123456789abcdef"
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def gateway_server(django_db_blocker) -> Iterator[str]:
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
def secret() -> str:
    return token_mint(user=User.objects.create_user("dev"), name="laptop")[1]


def records(count: int) -> list[UsageRecord]:
    """The ledger once it holds `count` rows (a streamed call is recorded after its end)."""
    until = time.monotonic() + 5
    while time.monotonic() < until:
        with contextlib.suppress(OperationalError):
            if UsageRecord.objects.count() >= count:
                break
        time.sleep(0.01)
    return list(UsageRecord.objects.order_by("pk"))


def test_a_request_body_over_django_s_upload_limit_but_under_ours_is_served(base_url, secret):
    # A long coding session with a screenshot: 3 MB, under MAX_REQUEST_BYTES (32 MB).
    big = [{"role": "user", "content": "x" * 3_000_000}]
    with serve_script(Script([openai_delta("Hi"), OPENAI_END])) as url:
        LLMModelFactory(provider=provider_at("openai", url, api_key=KEY), identifier="gpt-4.1")
        response = httpx2.post(
            f"{base_url}/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": "gpt-4.1", "messages": big, "stream": True},
            timeout=30,
        )

    assert response.status_code == 200, response.text[:200]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "chat/completions", id="GET on chat completions"),
        pytest.param("GET", "responses", id="GET on responses"),
        pytest.param("POST", "models", id="POST on models (CSRF page)"),
        pytest.param("POST", "embeddings", id="an endpoint we don't serve"),
    ],
)
def test_every_refusal_of_the_openai_api_is_in_its_error_shape(base_url, secret, method, path):
    response = httpx2.request(
        method, f"{base_url}/{path}", headers={"Authorization": f"Bearer {secret}"}, json={}
    )

    assert response.headers["content-type"] == "application/json", response.text[:100]
    assert response.json()["error"]["message"]


def test_a_token_count_passes_on_the_count_only(gateway_server, transactional_db, secret):
    answer = {"input_tokens": 3, "notice": "PROVIDER WORDS"}
    with serve_script(Script([json.dumps(answer).encode()])) as url:
        LLMModelFactory(
            provider=provider_at("anthropic", url, api_key=KEY), identifier="claude-sonnet-4-6"
        )
        response = httpx2.post(
            f"{gateway_server}/gateway/anthropic/v1/messages/count_tokens",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": "claude-sonnet-4-6", "messages": HI},
        )

    assert response.json() == {"input_tokens": 3}


def test_a_vendor_prefixed_id_the_list_gives_is_callable(base_url, secret):
    # OpenRouter's (and Vercel's) ids name the vendor, which is also a provider type here.
    with serve_script(Script([openai_delta("Hi"), OPENAI_END])) as url:
        LLMModelFactory(provider=provider_at("openai", url, api_key=KEY), identifier="gpt-4.1")
        LLMModelFactory(
            provider=provider_at("openrouter", url, api_key=KEY), identifier="openai/gpt-4.1"
        )
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
