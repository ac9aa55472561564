"""Limits per developer: turns at once, requests and tokens per minute, per group with a
developer's own override; refused before anything is stored or sent, with when to retry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group, User
from django.utils import timezone

from billing.limits import LimitReached, Limits
from billing.models import DeveloperLimits, GroupLimits, TurnLease
from chat.metered import Admission, MeteredCall, call_admit
from llmadmin.models import LLMModel
from llmadmin.providers.contract import ChatInput
from tests.factories import LLMModelFactory, provider_at
from tests.providers.fakes import FakeProvider, serve

pytestmark = pytest.mark.django_db

KEY = "sk-LIMITSSECRET-7"
HELLO = ChatInput(system="", messages=[{"role": "user", "content": "Hi"}])


@pytest.fixture
def user() -> User:
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


def test_an_expired_lease_frees_its_slot(user, server):
    DeveloperLimits.objects.create(user=user, concurrent_turns=1)
    model = model_at(server.url)
    call_admit(user=user, model_id=model.pk)  # its worker killed: never held, never ended
    TurnLease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

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
