"""The red team's review of limits per developer (issue 30): each test states a behaviour that
should hold and does not yet (xfail, strict: the fix removes the mark)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import suppress
from datetime import datetime, timedelta

import anthropic
import httpx2
import pytest
from django.contrib.auth.models import User
from django.db import OperationalError
from django.test import override_settings
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

import billing.limits
import chat.metered
from billing.limits import LimitReached, lease_end, lease_tokens
from billing.models import DeveloperLimits, TurnLease
from chat.metered import call_admit
from gateway.tokens import token_mint
from tests.conftest import asgi_serving
from tests.factories import LLMModelFactory, provider_at
from tests.providers.anthropic.fake import MessagesFake, serve_messages
from tests.providers.fakes import FakeProvider, serve

ANTHROPIC_KEY = "sk-ant-fake-review-30"
OPENAI_KEY = "sk-UPSTREAM-review-30"
CSRF = "c" * 32
HI = [{"role": "user", "content": "Hi"}]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_blocker) -> Iterator[str]:
    with (
        django_db_blocker.unblock(),
        override_settings(ALLOWED_HOSTS=["127.0.0.1"]),
        asgi_serving() as url,
    ):
        yield url


def lease_of(user: User, tokens: int = 0, **moments: float) -> TurnLease:
    """A lease of the developer's, its moments given in seconds ago."""
    at = {name: timezone.now() - timedelta(seconds=ago) for name, ago in moments.items()}
    return TurnLease.objects.create(user=user, tokens=tokens, **at)


@pytest.mark.xfail(
    strict=True,
    reason="count_tokens is relayed to the provider on the shared key without any limit: a "
    "developer past requests per minute can still flood the provider's rate limit",
)
def test_count_tokens_past_requests_per_minute_is_refused_before_the_provider_is_called(
    server, developer
):
    DeveloperLimits.objects.create(user=developer, requests_per_minute=1)
    lease_of(developer, started_at=10, expires_at=-50, ended_at=9)
    secret = token_mint(user=developer, name="laptop")[1]
    client = anthropic.Anthropic(
        base_url=f"{server}/gateway/anthropic", api_key=secret, max_retries=0
    )
    with serve_messages(MessagesFake(api_key=ANTHROPIC_KEY)) as fake:
        provider = provider_at("anthropic", fake.url, api_key=ANTHROPIC_KEY)
        LLMModelFactory(provider=provider, identifier="claude-sonnet-4-6")
        with pytest.raises(anthropic.RateLimitError):
            client.messages.count_tokens(model="claude-sonnet-4-6", messages=HI)

    assert fake.requests == []


def leases_ended() -> bool:
    """Whether the developer's leases have all ended within 5 seconds (the server ends each in
    its own thread)."""
    until = time.monotonic() + 5
    while time.monotonic() < until:
        with suppress(OperationalError):  # SQLite's shared in-memory database: locked a moment
            if TurnLease.objects.exists() and not TurnLease.objects.filter(ended_at=None).exists():
                return True
        time.sleep(0.02)
    return False


@pytest.mark.xfail(
    strict=True,
    reason="the chat's turn never runs when its client leaves while it is let through: its "
    "lease holds one of the developer's turns at once until it expires (the gateway frees it)",
)
def test_a_chat_client_that_leaves_while_it_is_let_through_frees_its_slot(
    server, client, developer, monkeypatch
):
    # The developer's row stays locked by another admission of theirs for a second.
    lease = chat.metered.turn_lease
    monkeypatch.setattr(
        chat.metered, "turn_lease", lambda *args, **kwargs: time.sleep(1) or lease(*args, **kwargs)
    )
    DeveloperLimits.objects.create(user=developer, concurrent_turns=1)
    cookies = {"sessionid": client.cookies["sessionid"].value, "csrftoken": CSRF}
    with serve(FakeProvider("openai", OPENAI_KEY)) as fake:
        provider = provider_at("openai", fake.url, api_key=OPENAI_KEY)
        model = LLMModelFactory(provider=provider, identifier="gpt-4.1")
        with (
            httpx2.Client(
                base_url=server, cookies=cookies, headers={"X-CSRFToken": CSRF}, timeout=0.5
            ) as http,
            pytest.raises(httpx2.TimeoutException),
        ):
            http.post("/api/v1/chat/", json={"model_id": model.pk, "message": "Hi"})
        assert leases_ended()

    assert fake.requests == []


class Moment:
    """django.utils.timezone as billing.limits reads it, `seconds` ago."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def now(self) -> datetime:
        return timezone.now() - timedelta(seconds=self.seconds)


@pytest.mark.xfail(
    strict=True,
    reason="a lease keeps one tokens_at for all its calls: a call recorded 70 s ago counts "
    "again for a minute from the turn's next call (a chat answer after its summary), against "
    "the docstring's and the README's 'tokens of the calls recorded in the last 60 seconds'",
)
def test_tokens_per_minute_count_each_call_for_the_minute_after_it_was_recorded(
    developer, monkeypatch
):
    DeveloperLimits.objects.create(user=developer, tokens_per_minute=100)
    model = LLMModelFactory()
    lease_id = call_admit(user=developer, model_id=model.pk).lease_id
    # The turn's first call (a chat turn's summary) was recorded 70 seconds ago...
    monkeypatch.setattr(billing.limits, "timezone", Moment(70))
    lease_tokens(lease_id, 100)
    monkeypatch.undo()
    # ... its answer now, with 5 tokens: 5 recorded in the last minute.
    lease_tokens(lease_id, 5)
    lease_end(lease_id)

    try:
        call_admit(user=developer, model_id=model.pk)
    except LimitReached as refused:
        pytest.fail(refused.detail)


@pytest.mark.xfail(
    strict=True,
    reason="the chat's 429 says Retry-After only in its description: a client generated from "
    "the schema has no header to read",
)
def test_the_chats_429_in_the_schema_declares_its_retry_after_header():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    refusal = schema["paths"]["/api/v1/chat/"]["post"]["responses"]["429"]

    assert refusal.get("headers", {})["Retry-After"]["schema"]["type"] == "integer"


@pytest.mark.xfail(
    strict=True,
    reason="an expired lease whose turn still runs (its renewals failed while the database was "
    "down) is purged by the next admission: the turn's tokens, recorded later, update no row "
    "and count for nothing",
)
def test_a_turn_whose_lease_lapsed_while_it_ran_still_counts_its_tokens(developer):
    DeveloperLimits.objects.create(user=developer, tokens_per_minute=100)
    model = LLMModelFactory()
    running = call_admit(user=developer, model_id=model.pk).lease_id
    # Started 61 seconds ago; its renewals failed (the database down): expired a moment ago.
    TurnLease.objects.filter(pk=running).update(
        started_at=timezone.now() - timedelta(seconds=61),
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    lease_end(call_admit(user=developer, model_id=model.pk).lease_id)  # the database is back
    # The running turn ends: its call recorded with 100 tokens.
    lease_tokens(running, 100)
    lease_end(running)

    with pytest.raises(LimitReached, match="100 tokens per minute"):
        call_admit(user=developer, model_id=model.pk)
