"""Limits per developer: turns at once, requests and tokens per minute, per group with a
developer's own override; refused before anything is stored or sent, with when to retry.

The rule and the lease through the metered call (call_admit), then through the chat: its 429,
the slot freed however a turn ends, the lease renewed while a turn runs (the gateway's are in
tests/test_gateway_limits.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace
from typing import Any

import httpx2
import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group, User
from django.db import OperationalError, connection
from django.http import HttpResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import reverse
from django.utils import timezone

import billing.limits
import chat.metered
import chat.services
from billing.limits import LimitReached, Limits, call_tokens, lease_end
from billing.models import CallTokens, DeveloperLimits, GroupLimits, TurnLease, UsageRecord
from chat.metered import Admission, MeteredCall, call_admit
from chat.models import Conversation, Message
from llmadmin.models import LLMModel
from llmadmin.providers.contract import ChatInput
from tests.chat_api import events_of, post_chat, send
from tests.conftest import asgi_serving
from tests.factories import LLMModelFactory, provider_at
from tests.providers.fakes import FakeProvider, serve
from tests.providers.servers import loopback_server
from tests.stream_servers import (
    KEEP_ALIVE,
    OPENAI_END,
    OPENAI_STOP,
    Script,
    data,
    openai_delta,
    serve_script,
)

KEY = "sk-LIMITSSECRET-7"
HELLO = ChatInput(system="", messages=[{"role": "user", "content": "Hi"}])


@pytest.fixture
def user(db) -> User:
    return User.objects.create_user("dev")


@pytest.fixture
def server():
    with serve(FakeProvider("openai", KEY)) as running:
        yield running


def model_at(url: str) -> LLMModel:
    return LLMModelFactory(provider=provider_at("openai", url, api_key=KEY), identifier="gpt-5")


def turn_run(admission: Admission) -> MeteredCall[Any]:
    """One turn of the admission run to its end, as the chat and the gateway run it."""

    async def run() -> MeteredCall[Any]:
        async with admission.held(), admission.call(chat=HELLO) as call:
            async for _ in call:
                pass
        return call

    return async_to_sync(run)()


def limits_of(user: User) -> Limits:
    from billing.budgets import budget_state

    return budget_state(user.pk).limits


@pytest.mark.parametrize(
    ("groups", "own", "expected"),
    [
        pytest.param([], None, Limits(), id="none set"),
        pytest.param([(2, None, 100)], None, Limits(2, None, 100), id="one group"),
        pytest.param([(2, 10, None), (4, 5, None)], None, Limits(4, 10, None), id="highest group"),
        pytest.param([(4, 10, 100)], (1, None, None), Limits(1, 10, 100), id="own per limit"),
    ],
)
def test_a_developers_limits_are_their_own_else_their_groups_highest(user, groups, own, expected):
    for index, values in enumerate(groups):
        group = Group.objects.create(name=f"team {index}")
        group.user_set.add(user)
        GroupLimits.objects.create(group=group, **dict(zip(LIMITS, values, strict=True)))
    if own:
        DeveloperLimits.objects.create(user=user, **dict(zip(LIMITS, own, strict=True)))

    assert limits_of(user) == expected


LIMITS = ("concurrent_turns", "requests_per_minute", "tokens_per_minute")


def test_a_turn_past_the_concurrent_limit_is_refused_until_one_ends(user, server):
    DeveloperLimits.objects.create(user=user, concurrent_turns=1)
    model = model_at(server.url)
    first = call_admit(user=user, model_id=model.pk)

    with pytest.raises(LimitReached) as refused:
        call_admit(user=user, model_id=model.pk)
    assert refused.value.retry_after == 5

    turn_run(first)
    assert TurnLease.objects.get().ended_at is not None
    call_admit(user=user, model_id=model.pk)


def test_a_call_counts_its_tokens_for_the_minute_after_it_was_recorded(user, server, monkeypatch):
    DeveloperLimits.objects.create(user=user, tokens_per_minute=100)
    model = model_at(server.url)
    admission = call_admit(user=user, model_id=model.pk)
    # The turn's first call was recorded 70 seconds ago, its next now with 5 tokens.
    monkeypatch.setattr(billing.limits, "timezone", SimpleNamespace(now=lambda: ago(70)))
    call_tokens(user.pk, 100)
    monkeypatch.undo()
    call_tokens(user.pk, 5)
    lease_end(admission.lease_id)

    call_admit(user=user, model_id=model.pk)


def test_a_turn_whose_lease_lapsed_while_it_ran_keeps_it_and_counts_its_tokens(user, server):
    DeveloperLimits.objects.create(user=user, tokens_per_minute=100)
    model = model_at(server.url)
    running = call_admit(user=user, model_id=model.pk).lease_id
    # Started 61 seconds ago; its renewals failed (the database down): expired a moment ago.
    TurnLease.objects.filter(pk=running).update(started_at=ago(61), expires_at=ago(1))
    lease_end(call_admit(user=user, model_id=model.pk).lease_id)  # the database is back
    assert TurnLease.objects.filter(pk=running).exists()
    call_tokens(user.pk, 100)  # the running turn's call, recorded

    with pytest.raises(LimitReached, match="100 tokens per minute"):
        call_admit(user=user, model_id=model.pk)


def test_a_turn_whose_slot_lapsed_before_it_started_never_runs_beside_the_one_given_it(
    user, server
):
    DeveloperLimits.objects.create(user=user, concurrent_turns=1)
    model = model_at(server.url)
    late = call_admit(user=user, model_id=model.pk)
    # Its view was slow to start streaming (a loaded server): its start window passed.
    TurnLease.objects.filter(pk=late.lease_id).update(expires_at=ago(1))
    call_admit(user=user, model_id=model.pk)  # given the free slot: its turn runs

    async def start_late() -> None:
        async with late.held():
            pytest.fail("the late turn ran")

    with pytest.raises(LimitReached, match="took too long to start"):
        async_to_sync(start_late)()
    assert TurnLease.objects.filter(ended_at=None, expires_at__gt=timezone.now()).count() == 1


def test_a_refusal_never_says_to_wait_more_than_a_minute(user, server, monkeypatch):
    DeveloperLimits.objects.create(user=user, tokens_per_minute=100)
    model = model_at(server.url)
    lease_end(call_admit(user=user, model_id=model.pk).lease_id)
    # A call just recorded by another server, its clock a little ahead of this one's.
    ahead = timezone.now() + timedelta(seconds=0.5)
    monkeypatch.setattr(billing.limits, "timezone", SimpleNamespace(now=lambda: ahead))
    call_tokens(user.pk, 100)
    monkeypatch.undo()

    with pytest.raises(LimitReached) as refused:
        call_admit(user=user, model_id=model.pk)
    assert refused.value.retry_after == 60


def test_a_turn_that_never_runs_loses_its_slot_after_the_lease(user, server, settings):
    settings.TURN_LEASE_SECONDS = 0.5
    DeveloperLimits.objects.create(user=user, concurrent_turns=1)
    model = model_at(server.url)
    call_admit(user=user, model_id=model.pk)  # its worker killed: never held, never ended
    with pytest.raises(LimitReached):
        call_admit(user=user, model_id=model.pk)

    time.sleep(0.5)
    call_admit(user=user, model_id=model.pk)


def test_requests_past_the_minutes_limit_wait_for_the_oldest_to_age(user, server):
    DeveloperLimits.objects.create(user=user, requests_per_minute=2)
    model = model_at(server.url)
    for _ in range(2):
        turn_run(call_admit(user=user, model_id=model.pk))
    TurnLease.objects.filter(pk=TurnLease.objects.earliest("pk").pk).update(
        started_at=timezone.now() - timedelta(seconds=50)
    )

    with pytest.raises(LimitReached) as refused:
        call_admit(user=user, model_id=model.pk)
    assert 9 <= refused.value.retry_after <= 11


def test_tokens_past_the_minutes_limit_refuse_the_next_turn(user, server):
    DeveloperLimits.objects.create(user=user, tokens_per_minute=17)
    model = model_at(server.url)
    turn_run(call_admit(user=user, model_id=model.pk))  # 12 in, 5 out

    with pytest.raises(LimitReached, match="17 tokens"):
        call_admit(user=user, model_id=model.pk)


# --- Through the chat: POST /api/v1/chat/ under Django's ASGI handler --------------------------


def ago(seconds: float) -> datetime:
    return timezone.now() - timedelta(seconds=seconds)


def chat_refusal(client: Client, payload: dict[str, Any]) -> HttpResponse:
    """A turn refused before its answer began, under Django's ASGI handler: its response."""

    async def post() -> HttpResponse:
        http = AsyncClient()
        http.cookies = client.cookies
        return await http.post(reverse("api-chat"), payload, content_type="application/json")

    return async_to_sync(post)()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("limit", "lease", "retry_after", "detail"),
    [
        pytest.param(
            {"concurrent_turns": 1},
            {"started_at": 10, "expires_at": -50},
            5,
            "You have reached your limit of 1 turn at once: try again when one ends.",
            id="turns at once",
        ),
        pytest.param(
            {"requests_per_minute": 1},
            {"started_at": 30, "expires_at": -30, "ended_at": 29},
            30,
            "You have reached your limit of 1 request per minute: try again in 30 seconds.",
            id="requests per minute",
        ),
        pytest.param(
            {"tokens_per_minute": 1000},
            {"started_at": 30, "expires_at": -30, "ended_at": 20, "tokens": (20, 1000)},
            40,
            "You have reached your limit of 1,000 tokens per minute (1,000 in the last "
            "minute): try again in 40 seconds.",
            id="tokens per minute",
        ),
    ],
)
def test_a_chat_turn_past_a_limit_is_a_429_that_stores_and_sends_nothing(
    client, developer, limit, lease, retry_after, detail
):
    DeveloperLimits.objects.create(user=developer, **limit)
    # The lease's moments as seconds ago; its call's tokens, recorded so long ago.
    moments = dict(lease)
    call = moments.pop("tokens", None)
    TurnLease.objects.create(user=developer, **{name: ago(v) for name, v in moments.items()})
    if call:
        CallTokens.objects.create(user=developer, recorded_at=ago(call[0]), tokens=call[1])
    conversation = Conversation.objects.create(owner=developer)
    with serve(FakeProvider("openai", KEY)) as fake:
        model = model_at(fake.url)
        payload = {"model_id": model.pk, "message": "Hi", "conversation_id": conversation.pk}
        response = chat_refusal(client, payload)

    assert response.status_code == 429
    assert json.loads(response.content) == {"detail": detail, "code": "limit_reached"}
    assert response["Retry-After"] == str(retry_after)
    assert fake.requests == []
    assert not Message.objects.exists()
    assert Conversation.objects.values_list("model", "title").get() == (None, "")
    assert not UsageRecord.objects.exists()
    assert TurnLease.objects.count() == 1


@contextmanager
def fake_upstream(mode: str) -> Iterator[str]:
    with serve(FakeProvider("openai", KEY, mode=mode)) as fake:
        yield fake.url


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("upstream", "ending"),
    [
        pytest.param(lambda: fake_upstream("ok"), ("done", None), id="complete"),
        pytest.param(lambda: fake_upstream("overloaded"), ("error", "failed"), id="provider error"),
        pytest.param(lambda: fake_upstream("drop"), ("error", "cut_off"), id="stream cut"),
        pytest.param(
            lambda: serve_script(Script([openai_delta("Hel")], forever=KEEP_ALIVE, every=0.05)),
            ("error", "timed_out"),
            id="idle deadline",
        ),
    ],
)
def test_a_chat_turn_frees_its_slot_however_it_ends(client, developer, settings, upstream, ending):
    if ending == ("error", "timed_out"):
        # Only the idle deadline's turn waits for it: a loaded machine may pause the others.
        settings.PROVIDER_STREAM_IDLE_TIMEOUT = 0.5
    DeveloperLimits.objects.create(user=developer, concurrent_turns=1)
    with upstream() as url:
        model = model_at(url)
        events = send(client, model)
        assert (events[-1][0], events[-1][1].get("stop_reason")) == ending
        assert TurnLease.objects.get().ended_at is not None
        # The next turn is let through at once.
        assert post_chat(client, {"model_id": model.pk, "message": "Again"})[0] == 200


# Transactional: a statement refused inside a test's transaction would end it.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("refused", "freed"),
    [
        pytest.param(('INSERT INTO "chat_message"',), True, id="at once"),
        # Down for the lease's end too: a 503 all the same, and the lease expires.
        pytest.param(
            ('INSERT INTO "chat_message"', 'UPDATE "billing_turnlease"'),
            False,
            id="when its lease expires",
        ),
    ],
)
def test_a_chat_turn_the_database_refuses_to_start_is_a_503_that_frees_its_slot(
    client, developer, monkeypatch, refused, freed
):
    monkeypatch.setattr(chat.services, "START_RETRY_SECONDS", 0.1)
    DeveloperLimits.objects.create(user=developer, concurrent_turns=1)

    def refuse(run, sql, params, many, context):
        if any(statement in sql for statement in refused):
            raise OperationalError("the database system is starting up")
        return run(sql, params, many, context)

    with serve(FakeProvider("openai", KEY)) as fake:
        model = model_at(fake.url)
        with connection.execute_wrapper(refuse):
            status, _ = post_chat(client, {"model_id": model.pk, "message": "Hi"})
        assert status == 503
        assert (TurnLease.objects.get().ended_at is not None) is freed
        again, _ = post_chat(client, {"model_id": model.pk, "message": "Again"})
        assert again == (200 if freed else 429)
    assert len(fake.requests) == (1 if freed else 0)  # the turn let through, not the refused
    assert not Message.objects.filter(content="Hi").exists()


def summarising_upstream(summary_asked_at: list[datetime]) -> type[BaseHTTPRequestHandler]:
    """An OpenAI-style upstream whose first answer fills the context past the threshold (a
    summary is asked for next), and whose next answer is the summary."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            if not summary_asked_at:
                summary_asked_at.append(timezone.now())
                usage = {"prompt_tokens": 900, "completion_tokens": 1}
                self.wfile.write(openai_delta("Hi") + data({"choices": [], "usage": usage}))
                self.wfile.write(OPENAI_STOP)
            else:
                summary_asked_at[0] = timezone.now()
                time.sleep(0.1)
                self.wfile.write(openai_delta("Summary") + OPENAI_END)
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.mark.django_db
def test_a_chat_turn_holds_its_one_slot_through_its_summary(client, developer):
    DeveloperLimits.objects.create(user=developer, concurrent_turns=1)
    summary_asked_at: list[datetime] = []
    with loopback_server(summarising_upstream(summary_asked_at)) as url:
        model = LLMModelFactory(
            provider=provider_at("openai-compat", url, api_key=KEY),
            context_limit=1000,
            compression_threshold=50,
        )
        conversation = Conversation.objects.create(owner=developer, model=model)
        for role in (Message.Role.USER, Message.Role.ASSISTANT):
            Message.objects.create(conversation=conversation, role=role, content="earlier")
        events = send(client, model, conversation=conversation)

    assert [name for name, _ in events][-2:] == ["compacted", "done"]
    lease = TurnLease.objects.get()  # the summary took no slot of its own
    assert lease.ended_at > summary_asked_at[0]
    # Both calls' tokens count, each from when it was recorded: the answer's 901, the summary's.
    assert sorted(CallTokens.objects.values_list("tokens", flat=True)) == sorted(
        record.input_tokens + record.output_tokens for record in UsageRecord.objects.all()
    )
    assert UsageRecord.objects.filter(kind=UsageRecord.Kind.SUMMARY).exists()


# --- Through the chat under uvicorn: a client that leaves, a turn longer than its lease -------


@pytest.fixture(scope="module")
def chat_server(django_db_blocker) -> Iterator[str]:
    """One server for the module's tests that need the network between client and server."""
    with (
        django_db_blocker.unblock(),
        override_settings(ALLOWED_HOSTS=["127.0.0.1"]),
        asgi_serving() as url,
    ):
        yield url


CSRF = "c" * 32


@contextmanager
def chat_stream(server: str, client: Client, payload: dict[str, Any]) -> Iterator[Iterator[bytes]]:
    """A chat turn streaming through the server, as the logged-in user of `client`; its body's
    chunks. Leaving the block leaves the turn."""
    cookies = {"sessionid": client.cookies["sessionid"].value, "csrftoken": CSRF}
    with (
        httpx2.Client(
            base_url=server, cookies=cookies, headers={"X-CSRFToken": CSRF}, timeout=5
        ) as http,
        http.stream("POST", "/api/v1/chat/", json=payload) as response,
    ):
        assert response.status_code == 200
        yield response.iter_bytes()


def events_read(chunks: Iterator[bytes], wanted: int) -> list[tuple[str, dict[str, Any]]]:
    body = b""
    while body.count(b"\n\n") < wanted:
        body += next(chunks)
    return events_of(body)


def leases_ended() -> bool:
    """Whether the turns' leases have all ended within a few seconds (the server ends each in
    its own thread)."""
    until = time.monotonic() + 5
    while time.monotonic() < until:
        with suppress(OperationalError):  # SQLite's shared in-memory database: locked a moment
            if TurnLease.objects.exists() and not TurnLease.objects.filter(ended_at=None).exists():
                return True
        time.sleep(0.02)
    return False


def test_a_chat_turn_whose_client_leaves_mid_stream_frees_its_slot_at_once(
    chat_server, transactional_db, client, developer
):
    DeveloperLimits.objects.create(user=developer, concurrent_turns=1)
    with serve_script(Script([openai_delta("Hel")], forever=KEEP_ALIVE, every=0.05)) as url:
        model = model_at(url)
        payload = {"model_id": model.pk, "message": "Hi"}
        with chat_stream(chat_server, client, payload) as chunks:
            assert events_read(chunks, 2)[1] == ("delta", {"text": "Hel"})
        assert leases_ended()

        with chat_stream(chat_server, client, payload) as chunks:  # admitted at once
            events_read(chunks, 1)
        assert leases_ended()


def test_a_chat_turn_longer_than_its_lease_keeps_its_slot(
    chat_server, transactional_db, client, developer, settings
):
    settings.TURN_LEASE_SECONDS = 0.5
    settings.PROVIDER_READ_TIMEOUT = 5  # the provider is quiet longer than three leases
    DeveloperLimits.objects.create(user=developer, concurrent_turns=1)
    go_on = threading.Event()
    with serve_script(Script([openai_delta("Hel"), go_on, OPENAI_END])) as url:
        model = model_at(url)
        with chat_stream(chat_server, client, {"model_id": model.pk, "message": "Hi"}) as chunks:
            events_read(chunks, 2)
            time.sleep(1.5)  # three leases' length: renewed, it still holds the slot
            with pytest.raises(LimitReached):
                call_admit(user=developer, model_id=model.pk)
            go_on.set()
            assert [name for name, _ in events_of(b"".join(chunks))][-1] == "done"
        assert leases_ended()


def test_a_chat_client_that_leaves_while_it_is_let_through_frees_its_slot_after_the_start(
    chat_server, transactional_db, client, developer, monkeypatch
):
    # The developer's row stays locked by another admission of theirs for a second.
    lease = chat.metered.turn_lease
    monkeypatch.setattr(
        chat.metered, "turn_lease", lambda *args, **kwargs: time.sleep(1) or lease(*args, **kwargs)
    )
    monkeypatch.setattr(billing.limits, "START_SECONDS", timedelta(seconds=1))
    DeveloperLimits.objects.create(user=developer, concurrent_turns=1)
    cookies = {"sessionid": client.cookies["sessionid"].value, "csrftoken": CSRF}
    with serve(FakeProvider("openai", KEY)) as fake:
        model = model_at(fake.url)
        with (
            httpx2.Client(
                base_url=chat_server, cookies=cookies, headers={"X-CSRFToken": CSRF}, timeout=0.5
            ) as http,
            pytest.raises(httpx2.TimeoutException),
        ):
            http.post("/api/v1/chat/", json={"model_id": model.pk, "message": "Hi"})
        # Its turn never starts (Django drops a sync view's answer to a client gone): its lease
        # holds the start's second, not a whole lease.
        lease_taken = time.monotonic() + 5
        while not TurnLease.objects.exists() and time.monotonic() < lease_taken:
            time.sleep(0.02)
        started = TurnLease.objects.get()
        assert started.expires_at - started.started_at == timedelta(seconds=1)
        time.sleep(max(0, (started.expires_at - timezone.now()).total_seconds()) + 0.05)
        call_admit(user=developer, model_id=model.pk)

    assert fake.requests == []
