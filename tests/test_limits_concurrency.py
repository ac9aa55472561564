"""Limits per developer under concurrency, on PostgreSQL: threads of one developer let through
at once, two server processes taking their gateway calls, a killed server's turn, and what a
concurrency limit bounds a budget's overspend by (the red team's measure).

Turns at once are counted independently of the leases: by the fake provider, as the calls it
holds open (a call runs within its turn's lease, so never more of them than live leases).
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, User
from django.db import connection, connections, transaction
from django.db.models import Sum
from django.utils import timezone

from billing.ledger import usage_record
from billing.limits import LimitReached
from billing.models import DeveloperLimits, GroupBudget, TurnLease, UsageRecord
from chat.metered import Admission, BudgetSpent, call_admit, model_resolve, spend_admit
from gateway.tokens import token_mint
from llmadmin.models import LLMModel
from llmadmin.providers.contract import ChatInput, Usage
from tests.factories import LLMModelFactory, provider_at
from tests.providers.fakes import CountingProvider, FakeProvider, serve
from tests.stream_servers import KEEP_ALIVE, Script, openai_delta, serve_script

pytestmark = pytest.mark.django_db(transaction=True)
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="concurrent writers (threads, processes) need PostgreSQL; SQLite serves one machine",
)

KEY = "sk-LIMITSCONCURRENT-3"
HELLO = ChatInput(system="", messages=[{"role": "user", "content": "Hi"}])
TURNS_AT_ONCE = 3


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


def in_threads(count: int, target: Callable[[], None]) -> list[BaseException]:
    """`target()` in `count` threads; the errors they raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
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

    with serve(CountingProvider(KEY)) as server:
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

    with serve(CountingProvider(KEY, hold=0.05)) as server:
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


def gateway_client(base_url: str, secret: str) -> httpx2.Client:
    # Plain HTTP, not an SDK: the test sees each 429 the SDKs would wait out and retry.
    return httpx2.Client(
        base_url=f"{base_url}/gateway/openai/v1",
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )


COMPLETION = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "Go"}]}
STREAMED = {**COMPLETION, "stream": True}


def completion(client: httpx2.Client) -> httpx2.Response:
    return client.post("/chat/completions", json=COMPLETION)


@on_postgresql
def test_fifty_concurrent_turns_overspend_a_budget_by_at_most_the_concurrent_limits_turns(
    asgi_server, settings
):
    # Fifty clients at once against one in-process fake: its headers can take longer than
    # the suite's 1.5 s on a loaded machine. This test is about what is spent.
    settings.PROVIDER_READ_TIMEOUT = 10
    clients = 50
    developer = budgeted_developer()
    DeveloperLimits.objects.create(user=developer, concurrent_turns=TURNS_AT_ONCE)
    _, secret = token_mint(user=developer, name="agents")
    start = threading.Barrier(clients)
    outcomes: list[str] = []

    with serve(CountingProvider(KEY, hold=0.2, input_tokens=1_000_000)) as server:
        priced_model_at(server.url)

        def turns_until_the_budget_is_spent() -> None:
            with gateway_client(asgi_server, secret) as client:
                start.wait()
                while True:
                    answer = completion(client)
                    if answer.status_code == 200:
                        outcomes.append("let through")
                        continue
                    outcomes.append(answer.json()["error"]["code"])
                    if answer.headers.get("x-should-retry") == "false":
                        return  # the budget is spent
                    time.sleep(0.3)  # as an SDK would after Retry-After, sooner

        errors = in_threads(clients, turns_until_the_budget_is_spent)

    assert errors == []
    assert outcomes.count("insufficient_quota") == clients
    assert "rate_limit_exceeded" in outcomes  # the limit did refuse turns
    assert set(outcomes) == {"let through", "insufficient_quota", "rate_limit_exceeded"}
    assert server.most_in_flight <= TURNS_AT_ONCE
    spent = UsageRecord.objects.aggregate(total=Sum("cost"))["total"]
    assert spent == outcomes.count("let through") * TURN_COST
    # The red team's 50 turns at once spent $216-$225 of a $10 budget without a limit.
    print(f"50 turns at once, {TURNS_AT_ONCE} at most: ${spent:.2f} spent of ${ALLOWANCE}")
    assert ALLOWANCE <= spent <= ALLOWANCE + TURNS_AT_ONCE * TURN_COST


# --- Server processes --------------------------------------------------------------------


@dataclass
class ServerProcess:
    """The project served by uvicorn in a process of its own, on the test database."""

    process: subprocess.Popen
    log: Path
    url: str = ""

    def wait_started(self) -> str:
        until = time.monotonic() + 30
        while not self.url and time.monotonic() < until:
            running = re.search(r"running on (http://\S+)", self.log.read_text())
            if running:
                self.url = running[1]
            elif self.process.poll() is not None:
                break
            time.sleep(0.05)
        assert self.url, self.log.read_text()
        return self.url

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(10)


# As scripts/serve's workers serve (config.workers), on a free port of loopback.
UVICORN_OPTIONS = ["--host", "127.0.0.1", "--port", "0", "--no-proxy-headers", "--no-access-log"]


def server_start(log: Path, **environment: str) -> ServerProcess:
    database = connection.settings_dict
    url = "postgres://{}:{}@{}:{}/{}".format(
        *(quote(str(database[name])) for name in ("USER", "PASSWORD", "HOST", "PORT", "NAME"))
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", *UVICORN_OPTIONS],
        cwd=django_settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": url}
        | environment,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    return ServerProcess(process, log)


@pytest.fixture(scope="module")
def two_servers(django_db_setup, tmp_path_factory) -> Iterator[list[str]]:
    """Two server processes on the test database (as two machines would be), started
    together; their URLs. Shared by the module's tests: starting one takes about 2 s."""
    logs = tmp_path_factory.mktemp("servers")
    servers = [server_start(logs / f"{index}.log") for index in range(2)]
    try:
        yield [server.wait_started() for server in servers]
    finally:
        for server in servers:
            server.stop()


@on_postgresql
@pytest.mark.parametrize(
    ("limit", "value"),
    [("concurrent_turns", 2), ("requests_per_minute", 4)],
    ids=["turns at once", "requests per minute"],
)
def test_two_server_processes_hold_one_developer_to_their_limit(two_servers, limit, value):
    clients = 12
    developer = User.objects.create_user("dev")
    DeveloperLimits.objects.create(user=developer, **{limit: value})
    _, secret = token_mint(user=developer, name="agents")
    start = threading.Barrier(clients)
    answers: list[tuple[int, httpx2.Response]] = []

    with serve(CountingProvider(KEY)) as server:
        model_at(server.url)

        def release_when_every_call_is_answered_or_held() -> None:
            # Every call let through holds its turn until every other call was decided.
            until = time.monotonic() + 10
            while len(answers) + server.in_flight < clients and time.monotonic() < until:
                time.sleep(0.01)
            server.released.set()

        def call() -> None:
            at = next(numbers) % 2
            with gateway_client(two_servers[at], secret) as client:
                start.wait()
                answers.append((at, completion(client)))

        releasing = threading.Thread(target=release_when_every_call_is_answered_or_held)
        releasing.start()
        numbers = itertools.count()
        errors = in_threads(clients, call)
        releasing.join(10)

    assert errors == []
    refused = [(at, answer) for at, answer in answers if answer.status_code != 200]
    assert len(answers) - len(refused) == len(server.requests) == value
    assert {answer.status_code for _, answer in refused} == {429}
    assert {answer.json()["error"]["code"] for _, answer in refused} == {"rate_limit_exceeded"}
    assert all(int(answer.headers["Retry-After"]) >= 1 for _, answer in refused)
    # Each server took six calls, and let through fewer than the limit: one at least let
    # through fewer alone, and refused calls all the same, for the other's.
    assert {at for at, _ in refused} == {0, 1}
    assert server.most_in_flight <= value


LEASE_SECONDS = 1.5


@on_postgresql
def test_a_killed_servers_turn_holds_its_slot_until_its_lease_expires(two_servers, tmp_path):
    victim = server_start(tmp_path / "victim.log", TURN_LEASE_SECONDS=str(LEASE_SECONDS))
    developer = User.objects.create_user("dev")
    DeveloperLimits.objects.create(user=developer, concurrent_turns=1)
    _, secret = token_mint(user=developer, name="agents")
    # An answer that never ends: a word, then keep-alives until the caller goes.
    script = Script([openai_delta("Hello")], forever=KEEP_ALIVE, every=0.1)
    tries: list[tuple[datetime, int]] = []

    with serve_script(script) as url, gateway_client(two_servers[0], secret) as other:
        model_at(url)

        def try_turn() -> int:
            with other.stream("POST", "/chat/completions", json=STREAMED) as answer:
                tries.append((timezone.now(), answer.status_code))
            return answer.status_code  # a turn let through ends here: its client went away

        try:
            with (
                gateway_client(victim.wait_started(), secret) as client,
                client.stream("POST", "/chat/completions", json=STREAMED) as turn,
            ):
                assert turn.status_code == 200
                answer = turn.iter_bytes()
                next(answer)  # the turn runs, on the victim
                time.sleep(LEASE_SECONDS + 0.3)
                # Refused in the other process: the lease, renewed, outlived its first length.
                assert try_turn() == 429
                victim.process.kill()
                killed_at = timezone.now()
        finally:
            victim.stop()
        lease = TurnLease.objects.get()
        until = time.monotonic() + LEASE_SECONDS + 5
        while try_turn() != 200 and time.monotonic() < until:
            time.sleep(0.1)

    assert lease.ended_at is None  # killed mid-turn: it never ended
    assert lease.expires_at <= killed_at + timedelta(seconds=LEASE_SECONDS)
    assert [status for _, status in tries].count(200) == 1
    # Refused in the other process while the lease lived, let through once it expired.
    assert all(status == 429 for at, status in tries if at < lease.expires_at)
    let_through_at = next(at for at, status in tries if status == 200)
    assert let_through_at - lease.expires_at < timedelta(seconds=LEASE_SECONDS)
