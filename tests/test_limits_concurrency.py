"""Limits per developer under concurrency, on PostgreSQL: threads of one developer let through
at once, two server processes taking their gateway calls, a killed server's turn, and what a
concurrency limit bounds a budget's overspend by (the red team's measure).

Turns at once are counted independently of the leases: by the fake provider, as the calls it
holds open (a call runs within its turn's lease, so never more of them than live leases).
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group, User
from django.db import connection, connections, transaction
from django.utils import timezone

from billing.ledger import usage_record
from billing.limits import LimitReached
from billing.models import DeveloperLimits, GroupBudget, TurnLease
from chat.metered import Admission, BudgetSpent, call_admit, model_resolve, spend_admit
from llmadmin.models import LLMModel
from llmadmin.providers.contract import ChatInput, Usage
from tests.factories import LLMModelFactory, provider_at
from tests.providers.fakes import FakeProvider, serve

pytestmark = pytest.mark.django_db(transaction=True)
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="concurrent writers (threads, processes) need PostgreSQL; SQLite serves one machine",
)

KEY = "sk-LIMITSCONCURRENT-3"
HELLO = ChatInput(system="", messages=[{"role": "user", "content": "Hi"}])
TURNS_AT_ONCE = 3


class CountingProvider(FakeProvider):
    """The OpenAI fake, holding each call for `hold` seconds (or until `released` is set),
    counting the calls it holds at once."""

    def __init__(self, hold: float = 0.0, input_tokens: int = 12) -> None:
        super().__init__("openai", KEY, input_tokens=input_tokens)
        self.hold = hold
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0

    def handle_post(self, handler) -> None:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.hold:
                time.sleep(self.hold)
            else:
                self.released.wait(10)
            super().handle_post(handler)
        finally:
            with self.lock:
                self.in_flight -= 1


def model_at(url: str, **fields: Any) -> LLMModel:
    return LLMModelFactory(
        provider=provider_at("openai", url, api_key=KEY), identifier="gpt-4.1", **fields
    )


def turn_run(admission: Admission) -> None:
    """One turn of the admission run to its end, as the chat and the gateway run it."""

    async def run() -> None:
        async with admission.held(), admission.call(chat=HELLO) as call:
            async for _ in call:
                pass

    async_to_sync(run)()


def in_threads(count: int, target, *args: Any) -> list[BaseException]:
    """`target(*args)` in `count` threads started together; the errors they raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target(*args)
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


# --- Threads of one developer ----------------------------------------------------------------


@on_postgresql
def test_of_many_turns_started_at_once_exactly_the_concurrent_limit_run(settings):
    settings.PROVIDER_READ_TIMEOUT = 15  # the fake holds each call until every thread tried
    threads = 12
    developer = User.objects.create_user("dev")
    DeveloperLimits.objects.create(user=developer, concurrent_turns=TURNS_AT_ONCE)
    start = threading.Barrier(threads)
    lock = threading.Lock()
    tried: list[str] = []

    with serve(CountingProvider()) as server:
        model = model_at(server.url)

        def turn() -> None:
            start.wait()
            try:
                admission = call_admit(user=developer, model_id=model.pk)
            except LimitReached as refusal:
                assert refusal.retry_after == 5
                admission = None
            with lock:
                tried.append("refused" if admission is None else "let through")
                if len(tried) == threads:  # every turn let through holds its slot till now
                    server.released.set()
            if admission is not None:
                turn_run(admission)

        errors = in_threads(threads, turn)

    assert errors == []
    assert tried.count("let through") == TURNS_AT_ONCE
    assert tried.count("refused") == threads - TURNS_AT_ONCE
    assert len(server.requests) == TURNS_AT_ONCE
    assert server.most_in_flight <= TURNS_AT_ONCE
    assert not TurnLease.objects.filter(ended_at__isnull=True).exists()


@on_postgresql
def test_turns_coming_and_going_in_threads_never_run_more_at_once_than_the_limit(settings):
    settings.PROVIDER_READ_TIMEOUT = 10
    developer = User.objects.create_user("dev")
    DeveloperLimits.objects.create(user=developer, concurrent_turns=TURNS_AT_ONCE)
    refusals: list[LimitReached] = []

    with serve(CountingProvider(hold=0.05)) as server:
        model = model_at(server.url)

        def turns() -> None:
            until = time.monotonic() + 1
            while time.monotonic() < until:
                try:
                    admission = call_admit(user=developer, model_id=model.pk)
                except LimitReached as refusal:
                    refusals.append(refusal)
                    time.sleep(0.01)
                else:
                    turn_run(admission)

        errors = in_threads(10, turns)

    assert errors == []
    assert server.most_in_flight <= TURNS_AT_ONCE
    assert server.most_in_flight > 1  # the turns did overlap
    assert refusals  # and some were refused for it
    assert TurnLease.objects.count() == len(server.requests)
    assert not TurnLease.objects.filter(ended_at__isnull=True).exists()


@on_postgresql
def test_turns_started_at_once_in_threads_are_let_through_up_to_the_requests_per_minute(
    server_url,
):
    requests_per_minute = 5
    developer = User.objects.create_user("dev")
    DeveloperLimits.objects.create(user=developer, requests_per_minute=requests_per_minute)
    model = model_at(server_url)
    start = threading.Barrier(12)
    outcomes: list[str] = []

    def two_requests() -> None:
        start.wait()
        for _ in range(2):
            try:
                call_admit(user=developer, model_id=model.pk)
                outcomes.append("let through")
            except LimitReached as refusal:
                assert 1 <= refusal.retry_after <= 60
                outcomes.append("refused")

    errors = in_threads(12, two_requests)

    assert errors == []
    # The issue allows one over; admissions take the developer's lock in turn: none is.
    assert outcomes.count("let through") == requests_per_minute
    assert outcomes.count("refused") == 24 - requests_per_minute


@pytest.fixture
def server_url():
    with serve(FakeProvider("openai", KEY)) as server:
        yield server.url


@on_postgresql
def test_a_turn_that_waited_for_the_developers_lock_is_told_to_retry_within_the_minute(
    server_url,
):
    developer = User.objects.create_user("dev")
    DeveloperLimits.objects.create(user=developer, requests_per_minute=1)
    model = model_at(server_url)
    refusals: list[LimitReached] = []

    def waiting_turn() -> None:
        try:
            call_admit(user=developer, model_id=model.pk)
        except LimitReached as refusal:
            refusals.append(refusal)
        finally:
            connections.close_all()

    waiting = threading.Thread(target=waiting_turn)
    with transaction.atomic():
        # The developer's lock, held as a turn being let through holds it.
        User.objects.select_for_update().get(pk=developer.pk)
        waiting.start()
        time.sleep(0.3)  # it waits for the lock meanwhile
        call_admit(user=developer, model_id=model.pk)  # the minute's one request, 0.3 s later
    waiting.join(10)

    # Free again a minute after the request it waited for: not a second more.
    [refusal] = refusals
    assert refusal.retry_after == 60


# --- What a concurrency limit bounds a budget's overspend by ---------------------------------

ALLOWANCE = Decimal(10)
# A million input tokens at $3 and 5 output tokens at $15 per million: every turn's cost.
TURN_COST = Decimal("3.000075")


def budgeted_developer() -> User:
    developer = User.objects.create_user("dev")
    team = Group.objects.create(name="team")
    team.user_set.add(developer)
    GroupBudget.objects.create(group=team, monthly_allowance=ALLOWANCE)
    return developer


def priced_model_at(url: str) -> LLMModel:
    return model_at(url, context_limit=2_000_000, input_price=Decimal(3), output_price=Decimal(15))


def test_a_turn_that_waited_for_its_slot_is_refused_for_the_costs_committed_meanwhile():
    developer = budgeted_developer()
    DeveloperLimits.objects.create(user=developer, concurrent_turns=1)
    with serve(FakeProvider("openai", KEY, input_tokens=1_000_000)) as server:
        model = priced_model_at(server.url)
        usage_record(
            user_id=developer.pk, model=model, called_at=timezone.now(), usage=Usage(3_000_000, 0)
        )  # $9.00 spent
        running = call_admit(user=developer, model_id=model.pk)
        # The next turn's budget is read while the first one runs ($9.00 spent)...
        waiting = model_resolve(user=developer, model_id=model.pk)
        turn_run(running)  # ...which ends, spending $3.00 more, and frees the slot.

        # Let through, it would spend $15.00: past the bound of one turn over the allowance.
        with pytest.raises(BudgetSpent, match="spent"):
            spend_admit(user=developer, resolution=waiting)

    assert TurnLease.objects.count() == 1
