"""Budgets under concurrent turns of one developer: threads on PostgreSQL.

The rule (billing.budgets): a turn is let through while the costs committed this month are
below the allowance; its own cost is committed when it ends. So concurrent turns overspend by
at most the turns in flight when the last one was let through, and no cost is ever lost.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.db import connection, connections, transaction
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from billing.ledger import usage_record
from billing.models import BudgetAlert, DailyUsage, GroupBudget, UsageRecord
from llmadmin.providers.contract import Usage
from tests.chat_api import post_chat
from tests.factories import LLMModelFactory, provider_at
from tests.held_mail import alert_checks_done
from tests.providers.fakes import CountingProvider, serve

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL"
    ),
    pytest.mark.django_db(transaction=True),
]

KEY = "sk-CONCURRENTSECRET-7"
MILLION = 1_000_000
THREADS = 8
ALLOWANCE = Decimal(10)
# A million input tokens at $3 and 5 output tokens at $15 per million.
CALL_COST = Decimal("3.000075")


def test_concurrent_turns_of_one_developer_overspend_at_most_the_turns_in_flight(settings):
    # Eight turns start at once against one in-process fake: on a loaded machine (or its
    # first use of the catalog) its headers can take longer than the suite's 1.5 s, and a
    # timed-out turn is billed an estimate. This test is about what is billed.
    settings.PROVIDER_READ_TIMEOUT = 10
    developer = User.objects.create_user("dev", email="dev@example.com")
    team = Group.objects.create(name="team")
    team.user_set.add(developer)
    GroupBudget.objects.create(group=team, monthly_allowance=ALLOWANCE)
    start = threading.Barrier(THREADS)
    statuses: list[int] = []
    errors: list[BaseException] = []

    with serve(CountingProvider(KEY, hold=0.3, input_tokens=1_000_000)) as server:
        provider = provider_at("openai", server.url, api_key=KEY)
        model = LLMModelFactory(
            provider=provider,
            context_limit=2_000_000,
            input_price=Decimal(3),
            output_price=Decimal(15),
        )

        def turns_until_refused() -> None:
            try:
                client = Client()
                client.force_login(developer)
                start.wait()
                while True:
                    status, _ = post_chat(client, {"model_id": model.pk, "message": "Go"})
                    statuses.append(status)
                    if status != 200:
                        return
            except BaseException as error:  # reported below, not lost in the thread
                errors.append(error)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=turns_until_refused) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    assert errors == []
    admitted = statuses.count(200)
    assert statuses.count(402) == THREADS  # each thread ends refused
    # Refused turns never reached the provider.
    assert len(server.requests) == admitted
    # Every admitted turn's cost is in the ledger and in the daily sums: none lost.
    spent = UsageRecord.objects.aggregate(total=Sum("cost"))["total"]
    assert spent == admitted * CALL_COST
    assert DailyUsage.objects.aggregate(total=Sum("cost"))["total"] == spent
    assert DailyUsage.objects.aggregate(calls=Sum("calls"))["calls"] == admitted
    # Spent, and over by no more than the turns that were in flight at once.
    assert spent >= ALLOWANCE
    assert spent - ALLOWANCE <= server.most_in_flight * CALL_COST
    # At most 3 committed turns (9.00) are below the allowance: any turn let through saw at
    # most 3, and at most THREADS were in flight.
    assert admitted <= 3 + THREADS
    assert server.most_in_flight > 1  # the turns did overlap
    # Each level alerted once, however many turns crossed it together (both at once: one
    # mail, of the higher).
    alert_checks_done()
    assert sorted(BudgetAlert.objects.values_list("level", flat=True)) == [85, 100]
    subjects = [message.subject for message in mail.outbox]
    assert len(subjects) == len(set(subjects))
    assert subjects[-1] == "[llmadmin] Monthly LLM budget spent"


def test_two_calls_that_cross_the_budget_together_send_the_spent_alert():
    developer = User.objects.create_user("dev", email="dev@example.com")
    team = Group.objects.create(name="team")
    team.user_set.add(developer)
    GroupBudget.objects.create(group=team, monthly_allowance=ALLOWANCE)
    prices = {"input_price": Decimal(3), "output_price": Decimal(15)}
    first, second = LLMModelFactory(**prices), LLMModelFactory(**prices)
    for _ in range(3):  # $9.00: the 85 % alert
        usage_record(
            user_id=developer.pk, model=first, called_at=timezone.now(), usage=Usage(MILLION, 0)
        )
    both_written = threading.Barrier(2)
    errors: list[BaseException] = []

    def call(model) -> None:
        try:
            with transaction.atomic():
                # $0.75 each, on two models: two daily rows, so neither waits for the other.
                usage_record(
                    user_id=developer.pk,
                    model=model,
                    called_at=timezone.now(),
                    usage=Usage(MILLION // 4, 0),
                )
                both_written.wait(10)  # neither has committed when both have summed
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=call, args=(model,)) for model in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sorted(BudgetAlert.objects.values_list("level", flat=True)) == [85, 100]
    assert [message.subject for message in mail.outbox] == [
        "[llmadmin] Monthly LLM budget 85 % spent",
        "[llmadmin] Monthly LLM budget spent",
    ]
