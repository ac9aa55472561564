"""Budgets under concurrent gateway calls of one developer: 50 clients at once against the
server under uvicorn, on PostgreSQL. In flight means let through and not yet in the ledger:
a call the provider has answered counts until its cost is committed.

The rule is the chat's (billing.budgets; README "Concurrency"): a call is let through while the
costs committed this month are below the allowance, and its own cost is committed when it
ends. So concurrent calls overspend by at most the calls in flight when the last one was let
through, every refused call is refused before the provider is called, and no cost is lost.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import httpx2
import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from billing.ledger import usage_record
from billing.models import DailyUsage, GroupBudget, UsageRecord
from gateway.tokens import token_mint
from llmadmin.providers.contract import Usage
from tests.factories import LLMModelFactory, provider_at
from tests.providers.fakes import FakeProvider, serve

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL"
)

KEY = "sk-GATEWAYBUDGET-5"
CLIENTS = 50
CALLS_AT_MOST = 5
ALLOWANCE = Decimal(10)
# Already spent: $9.00, near the allowance.
SPENT_BEFORE = Decimal(9)
# A call: 100,000 input tokens at $3 and 5 output tokens at $15 per million.
CALL_COST = Decimal("0.300075")


class SlowProvider(FakeProvider):
    """The OpenAI fake, slow enough for calls to overlap."""

    def __init__(self) -> None:
        super().__init__("openai", KEY, input_tokens=100_000)

    def handle_post(self, handler) -> None:
        time.sleep(0.3)  # within the tests' provider timeouts
        super().handle_post(handler)


class InFlight:
    """The calls in flight: from the request sent to its answer, which comes once the call is
    in the ledger (a call not streamed is answered after it is recorded). A call the provider
    has answered is still in flight, for the budget, until its cost is committed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.most = 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc_info: object) -> None:
        with self.lock:
            self.now -= 1


def test_fifty_concurrent_gateway_calls_overspend_at_most_the_calls_in_flight(
    asgi_server, settings
):
    # Fifty calls start at once against one in-process fake: its headers can take longer
    # than the suite's 1.5 s on a loaded machine. This test is about what is billed.
    settings.PROVIDER_READ_TIMEOUT = 10
    developer = User.objects.create_user("dev")
    team = Group.objects.create(name="team")
    team.user_set.add(developer)
    GroupBudget.objects.create(group=team, monthly_allowance=ALLOWANCE)
    _, secret = token_mint(user=developer, name="agents")
    start = threading.Barrier(CLIENTS)
    answers: list[httpx2.Response] = []
    errors: list[BaseException] = []
    in_flight = InFlight()

    with serve(SlowProvider()) as server:
        model = LLMModelFactory(
            provider=provider_at("openai", server.url, api_key=KEY),
            identifier="gpt-4.1",
            input_price=Decimal(3),
            output_price=Decimal(15),
        )
        usage_record(
            user_id=developer.pk,
            model=model,
            called_at=timezone.now(),
            usage=Usage(3_000_000, 0),
        )

        def calls_until_refused() -> None:
            try:
                with httpx2.Client(
                    base_url=f"{asgi_server}/gateway/openai/v1",
                    headers={"Authorization": f"Bearer {secret}"},
                    timeout=30,
                ) as client:
                    start.wait()
                    # Each client ends refused well before this: a budget not applied ends it.
                    for _ in range(CALLS_AT_MOST):
                        with in_flight:
                            answer = client.post(
                                "/chat/completions",
                                json={
                                    "model": "gpt-4.1",
                                    "messages": [{"role": "user", "content": "Go"}],
                                },
                            )
                        answers.append(answer)
                        if answer.status_code != 200:
                            return
            except BaseException as error:  # reported below, not lost in the thread
                errors.append(error)

        threads = [threading.Thread(target=calls_until_refused) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    assert errors == []
    admitted = [answer for answer in answers if answer.status_code == 200]
    refused = [answer for answer in answers if answer.status_code != 200]
    # Each client ends refused: the budget's 429, which the SDKs do not retry.
    assert len(refused) == CLIENTS
    assert [
        (a.status_code, a.text[:300]) for a in refused if a.headers.get("x-should-retry") != "false"
    ] == []
    assert {a.status_code for a in refused} == {429}
    assert {a.json()["error"]["code"] for a in refused} == {"insufficient_quota"}
    # Refused calls never reached the provider.
    assert len(server.requests) == len(admitted)
    # Every admitted call's cost is in the ledger and the daily sums: none lost.
    gateway_calls = UsageRecord.objects.filter(kind=UsageRecord.Kind.GATEWAY)
    assert gateway_calls.count() == len(admitted)
    assert gateway_calls.aggregate(total=Sum("cost"))["total"] == len(admitted) * CALL_COST
    spent = UsageRecord.objects.aggregate(total=Sum("cost"))["total"]
    assert spent == SPENT_BEFORE + len(admitted) * CALL_COST
    assert DailyUsage.objects.aggregate(total=Sum("cost"))["total"] == spent
    # Spent, and over by no more than the calls that were in flight at once.
    assert spent >= ALLOWANCE
    assert spent - ALLOWANCE <= in_flight.most * CALL_COST
