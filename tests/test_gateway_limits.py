"""Limits per developer through the gateway, both API families, driven by the official SDKs
against the server under uvicorn: a refusal is the SDK's RateLimitError with Retry-After and
our words, an SDK that retries gets through once the limit frees up, a call frees its slot
however it ends, and tokens per minute count the gateway's calls as the ledger does."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from typing import Any
from unittest.mock import patch

import anthropic
import openai
import pytest
from django.contrib.auth.models import User
from django.db import OperationalError
from django.test import override_settings
from django.utils import timezone

import chat.metered
from billing.models import CallTokens, DeveloperLimits, TurnLease, UsageRecord
from chat.metered import call_admit
from gateway.tokens import token_mint
from llmadmin.models import LLMModel
from tests.conftest import asgi_serving
from tests.factories import LLMModelFactory, provider_at
from tests.gateway_sdks import HI, answer_text, asked, said, sdk
from tests.providers.anthropic import fake as anthropic_fake
from tests.providers.anthropic.fake import MessagesFake, serve_messages
from tests.providers.fakes import FakeProvider, serve
from tests.stream_servers import Script, openai_delta, serve_script

OPENAI_KEY = "sk-UPSTREAM-limits-7"
ANTHROPIC_KEY = "sk-ant-fake-limits-7"
FAMILIES = ["openai", "anthropic"]
# Each family's model on its fake.
IDENTIFIERS = {"openai": "gpt-4.1", "anthropic": "claude-sonnet-4-6"}

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_blocker) -> Iterator[str]:
    """One server for the module's tests (each brings its own rows, and waits for the
    server's writes of its calls to end)."""
    with (
        django_db_blocker.unblock(),
        override_settings(ALLOWED_HOSTS=["127.0.0.1"]),
        asgi_serving() as url,
    ):
        yield url


@pytest.fixture
def developer() -> User:
    return User.objects.create_user("dev")


@pytest.fixture
def secret(developer) -> str:
    return token_mint(user=developer, name="laptop")[1]


@contextmanager
def upstream(family: str, mode: str = "ok") -> Iterator[FakeProvider | MessagesFake]:
    """The family's fake provider, failing as `mode` says (see each fake)."""
    if family == "openai":
        with serve(FakeProvider("openai", OPENAI_KEY, mode=mode)) as fake:
            yield fake
    else:
        with serve_messages(MessagesFake(api_key=ANTHROPIC_KEY, mode=mode)) as fake:
            yield fake


def model_at(family: str, url: str) -> LLMModel:
    key = OPENAI_KEY if family == "openai" else ANTHROPIC_KEY
    provider = provider_at(family, url, api_key=key)
    return LLMModelFactory(provider=provider, identifier=IDENTIFIERS[family])


def lease_of(user: User, tokens: tuple[float, int] | None = None, **moments: float) -> TurnLease:
    """A lease of the developer's, its moments given in seconds ago; `tokens`: its call's,
    recorded so many seconds ago."""
    at = {name: timezone.now() - timedelta(seconds=ago) for name, ago in moments.items()}
    if tokens:
        recorded_at = timezone.now() - timedelta(seconds=tokens[0])
        CallTokens.objects.create(user=user, recorded_at=recorded_at, tokens=tokens[1])
    return TurnLease.objects.create(user=user, **at)


# --- Refused: the SDK's RateLimitError, with when to retry ------------------------------------


LIMITS = [
    pytest.param(
        {"concurrent_turns": 1},
        {"started_at": 10, "expires_at": -50},
        "5",
        "You have reached your limit of 1 turn at once: try again when one ends.",
        id="turns at once",
    ),
    pytest.param(
        {"requests_per_minute": 1},
        {"started_at": 30, "expires_at": -30, "ended_at": 29},
        "30",
        "You have reached your limit of 1 request per minute: try again in 30 seconds.",
        id="requests per minute",
    ),
    pytest.param(
        {"tokens_per_minute": 100},
        {"started_at": 30, "expires_at": -30, "ended_at": 20, "tokens": (20, 100)},
        "40",
        "You have reached your limit of 100 tokens per minute (100 in the last minute): try "
        "again in 40 seconds.",
        id="tokens per minute",
    ),
]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("limit", "lease", "retry_after", "detail"), LIMITS)
def test_a_call_past_a_limit_is_the_sdks_rate_limit_error_with_when_to_retry(
    server, secret, developer, family, limit, lease, retry_after, detail
):
    DeveloperLimits.objects.create(user=developer, **limit)
    lease_of(developer, **lease)
    with upstream(family) as fake:
        model_at(family, fake.url)
        with pytest.raises((openai.RateLimitError, anthropic.RateLimitError)) as refused:
            asked(sdk(family, server, secret))

    assert refused.value.status_code == 429
    assert refused.value.response.headers["retry-after"] == retry_after
    assert said(refused.value) == detail
    assert fake.requests == []
    assert not UsageRecord.objects.exists()
    assert TurnLease.objects.count() == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_an_sdk_refused_for_requests_per_minute_gets_through_after_waiting(
    server, secret, developer, family
):
    DeveloperLimits.objects.create(user=developer, requests_per_minute=1)
    # A minute old in half a second: Retry-After says 1.
    lease_of(developer, started_at=59.5, expires_at=0, ended_at=59)
    sent: list = []
    with upstream(family) as fake:
        model_at(family, fake.url)
        started = time.monotonic()
        text = answer_text(sdk(family, server, secret, max_retries=2, sent=sent))

    assert text == "Hello world"
    assert 1 <= time.monotonic() - started < 5
    assert len(sent) == 2
    assert len(fake.requests) == 1


# --- A call frees its slot however it ends ------------------------------------------------------


def leases_ended() -> bool:
    """Whether the calls' leases have all ended within 10 seconds: the server ends a call's
    in its own thread, before a complete answer's end reaches the client, and just after a
    call cut short or refused."""
    until = time.monotonic() + 10
    while time.monotonic() < until:
        with suppress(OperationalError):  # SQLite's shared in-memory database: locked a moment
            if TurnLease.objects.exists() and not TurnLease.objects.filter(ended_at=None).exists():
                return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    ("mode", "stream", "raised"),
    [
        pytest.param("ok", False, None, id="complete"),
        pytest.param("ok", True, None, id="complete, streamed"),
        pytest.param(
            "rate429", False, (openai.RateLimitError, anthropic.RateLimitError), id="refused"
        ),
        pytest.param(
            "rate429",
            True,
            (openai.RateLimitError, anthropic.RateLimitError),
            id="refused, streamed",
        ),
        pytest.param("drop", True, (openai.APIError, anthropic.APIError), id="cut, streamed"),
    ],
)
def test_a_gateway_call_frees_its_slot_however_it_ends(
    server, secret, developer, family, mode, stream, raised
):
    DeveloperLimits.objects.create(user=developer, concurrent_turns=1)
    client = sdk(family, server, secret)
    with upstream(family, mode) as fake:
        model_at(family, fake.url)
        if raised:
            with pytest.raises(raised):
                answer_text(client, stream)
        else:
            answer_text(client, stream)
        assert leases_ended()

        fake.mode = "ok"  # the next call is let through at once
        assert answer_text(client, stream) == "Hello world"
        assert leases_ended()


@contextmanager
def endless_upstream(family: str) -> Iterator[tuple[str, Callable[[], bool]]]:
    """An upstream whose answer streams until its caller hangs up: its URL, and whether the
    caller hung up (waited for up to 15 seconds)."""
    if family == "openai":
        script = Script([openai_delta("Hel")], forever=openai_delta("lo"))
        with serve_script(script) as url:
            yield url, lambda: script.wait_for_close() is not None
    else:
        # Quiet until the caller hangs up, however loaded the machine (the fake waits 3 s).
        with patch.object(anthropic_fake, "STALL_SECONDS", 15), upstream(family, "stall") as fake:
            yield fake.url, lambda: fake.hung_up.wait(15)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_gateway_client_that_leaves_mid_stream_frees_its_slot_at_once(
    server, secret, developer, family
):
    DeveloperLimits.objects.create(user=developer, concurrent_turns=1)
    with endless_upstream(family) as (url, hung_up):
        model = model_at(family, url)
        answer = asked(sdk(family, server, secret), stream=True)
        next(iter(answer))
        answer.close()
        assert hung_up()

    assert leases_ended()
    call_admit(user=developer, model_id=model.pk)  # the next call is let through


def test_a_gateway_client_that_times_out_on_a_whole_answer_frees_its_slot_at_once(
    server, secret, developer
):
    DeveloperLimits.objects.create(user=developer, concurrent_turns=1)
    client = sdk("openai", server, secret).with_options(timeout=1)
    with upstream("openai", "slow") as fake:  # answers after 2 s
        model_at("openai", fake.url)
        with pytest.raises(openai.APITimeoutError):
            answer_text(client)
        left_at = time.monotonic()
        assert leases_ended()
        assert time.monotonic() - left_at < 1  # not when the provider answers


def test_a_gateway_client_that_leaves_while_it_is_let_through_frees_its_slot(
    server, secret, developer, monkeypatch
):
    # The developer's row stays locked by another admission of theirs for a second.
    lease = chat.metered.turn_lease
    monkeypatch.setattr(
        chat.metered, "turn_lease", lambda *args, **kwargs: time.sleep(1) or lease(*args, **kwargs)
    )
    DeveloperLimits.objects.create(user=developer, concurrent_turns=1)
    client = sdk("openai", server, secret).with_options(timeout=0.5)
    with upstream("openai") as fake:
        model_at("openai", fake.url)
        with pytest.raises(openai.APITimeoutError):
            answer_text(client)
        assert leases_ended()

    assert fake.requests == []


@pytest.mark.parametrize(
    ("family", "model_family"),
    [
        pytest.param("openai", "openai", id="openai"),
        pytest.param("anthropic", "anthropic", id="anthropic"),
        pytest.param("openai", "anthropic", id="openai, translated"),
    ],
)
def test_a_streams_end_reaches_the_client_once_the_call_is_recorded_and_its_slot_free(
    server, secret, developer, family, model_family
):
    # One turn at once: a client calling again as soon as it reads an answer's end (the
    # openai SDK hangs up at [DONE]) must not be refused for the call that just ended.
    DeveloperLimits.objects.create(user=developer, concurrent_turns=1)
    client = sdk(family, server, secret)
    with upstream(model_family) as fake:
        model_at(model_family, fake.url)
        for calls in (1, 2, 3):
            with streamed(client, IDENTIFIERS[model_family]) as answer:
                for event in answer:
                    if getattr(event, "type", None) == "message_stop":
                        break
                # Read as the end arrives, before the client reads anything after it.
                assert UsageRecord.objects.count() == calls
                assert not TurnLease.objects.filter(ended_at=None).exists()


def streamed(client: openai.OpenAI | anthropic.Anthropic, model: str) -> Any:
    """A streamed chat call to `model` in the client's own API: the SDK's stream, unread."""
    if isinstance(client, openai.OpenAI):
        return client.chat.completions.create(model=model, messages=HI, stream=True)
    return client.messages.create(model=model, max_tokens=100, messages=HI, stream=True)


# --- Tokens per minute count the gateway's calls ------------------------------------------------


@pytest.mark.parametrize(
    ("family", "tokens"),
    [
        # 12 in with 4 of them cached, 5 out with 3 of them reasoning: OpenAI counts the parts
        # within the whole.
        pytest.param("openai", 17, id="openai"),
        # 20 in, 4 read from the cache and 2 written to it besides; 9 out.
        pytest.param("anthropic", 35, id="anthropic"),
    ],
)
def test_tokens_per_minute_count_a_gateway_calls_tokens_as_reported(
    server, secret, developer, family, tokens
):
    DeveloperLimits.objects.create(user=developer, tokens_per_minute=tokens)
    client = sdk(family, server, secret)
    with upstream(family) as fake:
        if family == "openai":
            fake.cached_tokens, fake.reasoning_tokens = 4, 3
        model_at(family, fake.url)
        answer_text(client)
        with pytest.raises((openai.RateLimitError, anthropic.RateLimitError)) as refused:
            answer_text(client)

    assert said(refused.value).startswith(f"You have reached your limit of {tokens} tokens")
    record = UsageRecord.objects.get()
    assert CallTokens.objects.get().tokens == record.input_tokens + record.output_tokens == tokens
    assert len(fake.requests) == 1


def test_count_tokens_past_requests_per_minute_is_refused_before_the_provider_is_called(
    server, secret, developer
):
    DeveloperLimits.objects.create(user=developer, requests_per_minute=1)
    lease_of(developer, started_at=10, expires_at=-50, ended_at=9)
    client = sdk("anthropic", server, secret)
    with upstream("anthropic") as fake:
        model_at("anthropic", fake.url)
        with pytest.raises(anthropic.RateLimitError) as refused:
            client.messages.count_tokens(model="claude-sonnet-4-6", messages=HI)

    assert said(refused.value).startswith("You have reached your limit of 1 request per minute")
    assert fake.requests == []


def test_count_tokens_counts_as_a_request_but_takes_no_slot(server, secret, developer):
    DeveloperLimits.objects.create(user=developer, concurrent_turns=1, requests_per_minute=2)
    lease_of(developer, started_at=1, expires_at=-59)  # a turn running
    client = sdk("anthropic", server, secret)
    with upstream("anthropic") as fake:
        model_at("anthropic", fake.url)
        client.messages.count_tokens(model="claude-sonnet-4-6", messages=HI)
        with pytest.raises(anthropic.RateLimitError):
            client.messages.count_tokens(model="claude-sonnet-4-6", messages=HI)

    assert len(fake.requests) == 1
