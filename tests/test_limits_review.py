"""The red team's review of limits per developer (issue 30): each test states a behaviour that
should hold and does not yet (xfail, strict: the fix removes the mark)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import anthropic
import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from django.utils import timezone

from billing.models import DeveloperLimits, TurnLease
from gateway.tokens import token_mint
from tests.conftest import asgi_serving
from tests.factories import LLMModelFactory, provider_at
from tests.providers.anthropic.fake import MessagesFake, serve_messages

ANTHROPIC_KEY = "sk-ant-fake-review-30"
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


@pytest.fixture
def developer() -> User:
    return User.objects.create_user("dev")


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
