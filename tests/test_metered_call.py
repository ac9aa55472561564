"""The one metered call, called as the gateway will: a neutral ChatInput, no conversation.

A call is let through or refused before anything is stored or sent; however it ends, the
ledger has it, with the caller's own row when it has one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import suppress
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group, User
from django.db import IntegrityError

from billing.budgets import Allowance
from billing.models import BudgetAlert, GroupBudget, Pricing, UsageRecord, UserBudget
from chat.metered import (
    Admission,
    BudgetSpent,
    MeteredCall,
    ModelUnavailable,
    call_admit,
)
from chat.models import Conversation, Message
from llmadmin.models import LLMModel
from llmadmin.providers.contract import ChatInput, StreamEvent, TextDelta
from llmadmin.providers.errors import ProviderError
from tests.factories import LLMModelFactory, ProviderFactory, provider_at
from tests.held_mail import alert_checks_done
from tests.providers.fakes import FakeProvider, serve
from tests.stream_servers import KEEP_ALIVE, Script, openai_delta, serve_script

pytestmark = pytest.mark.django_db

KEY = "sk-METEREDSECRET-5"
PRICES = {"input_price": Decimal("3"), "output_price": Decimal("15")}
HELLO = ChatInput(system="", messages=[{"role": "user", "content": "Hi"}])


@pytest.fixture
def user() -> User:
    return User.objects.create_user("dev")


def model_at(url: str, provider_type: str = "openai", **fields: Any) -> LLMModel:
    return LLMModelFactory(provider=provider_at(provider_type, url, api_key=KEY), **fields)


def run_call(call: MeteredCall[Any]) -> list[StreamEvent]:
    """The call run to its end as a caller runs it; the events it handed over."""

    async def run() -> list[StreamEvent]:
        async with call:
            return [event async for event in call]

    return async_to_sync(run)()


def test_a_complete_call_records_one_ledger_row_with_its_cost(user):
    with serve(FakeProvider("openai", KEY)) as server:
        model = model_at(server.url, identifier="gpt-5", **PRICES)
        call = call_admit(user=user, model_id=model.pk).call(chat=HELLO)
        events = run_call(call)

    assert [event.text for event in events if isinstance(event, TextDelta)] == ["Hello", " world"]
    [record] = UsageRecord.objects.all()
    # 12 input tokens at $3 and 5 output tokens at $15 per million.
    assert (record.user_id, record.model_id, record.kind) == (user.pk, model.pk, "chat")
    assert (record.input_tokens, record.output_tokens) == (12, 5)
    assert (record.pricing, record.cost) == (Pricing.PRICED, Decimal("0.000111"))
    assert call.stored is None


def test_a_call_is_recorded_without_reading_the_budget_its_admission_read(
    user, django_assert_num_queries
):
    UserBudget.objects.create(user=user, monthly_allowance=Decimal("10"))
    with serve(FakeProvider("openai", KEY)) as server:
        model = model_at(server.url, **PRICES)
        call = call_admit(user=user, model_id=model.pk).call(chat=HELLO)
        # Its transaction (a savepoint, in a test) with the prices in effect, the row and the
        # day's sums. The alerts read the budget once it commits, on their own thread.
        with django_assert_num_queries(5):
            run_call(call)

    assert UsageRecord.objects.get().cost == Decimal("0.000111")


# A call of the fake (12 input and 5 output tokens) at these prices costs $0.017.
DEAR = {"input_price": Decimal("1000"), "output_price": Decimal("1000")}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("source", ["own", "group"])
def test_a_budget_set_while_a_call_runs_is_alerted_on_by_its_cost(user, source):
    group = Group.objects.create(name="team")
    group.user_set.add(user)
    with serve(FakeProvider("openai", KEY)) as server:
        model = model_at(server.url, **DEAR)
        call = call_admit(user=user, model_id=model.pk).call(chat=HELLO)
        # No budget let the call through; an admin sets one of $0.01 while it runs.
        if source == "own":
            UserBudget.objects.create(user=user, monthly_allowance=Decimal("0.01"))
        else:
            GroupBudget.objects.create(group=group, monthly_allowance=Decimal("0.01"))
        run_call(call)

    alert_checks_done()
    assert UsageRecord.objects.get().cost == Decimal("0.017")
    assert set(BudgetAlert.objects.values_list("level", flat=True)) == {85, 100}


def test_the_callers_row_is_stored_with_the_call(user):
    conversation = Conversation.objects.create(owner=user)

    def store(call: MeteredCall[Message]) -> Message:
        return Message.objects.create(
            conversation=conversation, role=Message.Role.ASSISTANT, content=call.answer
        )

    with serve(FakeProvider("openai", KEY)) as server:
        model = model_at(server.url, **PRICES)
        call = call_admit(user=user, model_id=model.pk).call(chat=HELLO, store=store)
        run_call(call)

    assert call.stored == Message.objects.get(content="Hello world")
    assert UsageRecord.objects.count() == 1


def test_a_callers_row_that_cannot_be_stored_leaves_the_call_in_the_ledger(user):
    def store(call: MeteredCall[Message]) -> Message:
        raise IntegrityError("refused")

    with serve(FakeProvider("openai", KEY)) as server:
        model = model_at(server.url, **PRICES)
        call = call_admit(user=user, model_id=model.pk).call(chat=HELLO, store=store)
        run_call(call)

    assert call.stored is None
    assert UsageRecord.objects.get().output_tokens == 5


def test_a_provider_error_is_raised_to_the_caller_and_the_call_recorded(user):
    with serve(FakeProvider("openai", KEY, mode="midstream_error")) as server:
        model = model_at(server.url, **PRICES)
        call = call_admit(user=user, model_id=model.pk).call(chat=HELLO)
        with pytest.raises(ProviderError):
            run_call(call)

    assert call.text == ["Hello"]
    assert call.error is not None
    record = UsageRecord.objects.get()
    # Cut short before the provider counted: estimated from the bytes sent and received.
    assert (record.pricing, record.output_tokens) == (Pricing.ESTIMATED, 3)


def test_a_cancelled_call_records_what_was_received_and_closes_the_upstream_request(user):
    script = Script([openai_delta("Hello")], forever=KEEP_ALIVE)
    with serve_script(script) as url:
        model = model_at(url, "openai-compat", **PRICES)
        call = call_admit(user=user, model_id=model.pk).call(chat=HELLO)

        async def cancelled_after_the_first_delta() -> None:
            first = asyncio.Event()

            async def run() -> None:
                async with call:
                    async for event in call:
                        if isinstance(event, TextDelta):
                            first.set()

            task = asyncio.create_task(run())
            await first.wait()
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

        async_to_sync(cancelled_after_the_first_delta)()
        closed_at = script.wait_for_close()

    assert closed_at is not None
    assert (call.cancelled, call.text) == (True, ["Hello"])
    record = UsageRecord.objects.get()
    assert (record.pricing, record.output_tokens) == (Pricing.ESTIMATED, 3)


def test_a_call_cancelled_before_the_first_word_is_billed_for_what_it_sent(user):
    script = Script([], forever=KEEP_ALIVE)
    with serve_script(script) as url:
        model = model_at(url, "openai-compat", **PRICES)
        call = call_admit(user=user, model_id=model.pk).call(chat=HELLO)

        async def cancelled_once_sent() -> None:
            async def run() -> None:
                async with call:
                    async for _ in call:
                        pass

            task = asyncio.create_task(run())
            while not script.requests:
                await asyncio.sleep(0.01)
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

        async_to_sync(cancelled_once_sent)()

    record = UsageRecord.objects.get()
    # "Hi": 2 bytes, 1 token at most.
    assert (record.pricing, record.input_tokens, record.output_tokens) == (
        Pricing.ESTIMATED,
        1,
        0,
    )


def test_a_caller_closed_at_its_own_yield_closes_the_upstream_request_before_recording(user):
    # As the chat's event stream is closed when its client goes away.
    script = Script([openai_delta("Hello")], forever=KEEP_ALIVE)
    with serve_script(script) as url:
        model = model_at(url, "openai-compat", **PRICES)
        # The caller's row, written with the record: when the upstream request was closed.
        call = call_admit(user=user, model_id=model.pk).call(
            chat=HELLO, store=lambda call: script.wait_for_close(seconds=1)
        )

        async def adapter() -> AsyncIterator[str]:
            async with call:
                async for event in call:
                    if isinstance(event, TextDelta):
                        yield event.text

        async def closed_after_the_first_delta() -> None:
            stream = adapter()
            await anext(stream)
            await stream.aclose()

        async_to_sync(closed_after_the_first_delta)()

    assert call.stored is not None
    assert (call.cancelled, UsageRecord.objects.get().output_tokens) == (True, 3)


@pytest.mark.parametrize(
    ("refusal", "refused_by"),
    [
        pytest.param("spent budget", BudgetSpent, id="budget spent"),
        pytest.param("spent cap", BudgetSpent, id="model cap spent"),
        pytest.param("no key", ModelUnavailable, id="provider without a key"),
        pytest.param("disabled", ModelUnavailable, id="model disabled"),
    ],
)
def test_a_refused_call_sends_nothing_and_records_nothing(user, refusal, refused_by):
    with serve(FakeProvider("openai", KEY)) as server:
        model = model_at(server.url, **PRICES)
        if refusal == "spent budget":
            UserBudget.objects.create(user=user, monthly_allowance=Decimal(0))
        elif refusal == "spent cap":
            model.monthly_cap = Decimal(0)
            model.save()
        elif refusal == "no key":
            model.provider.api_key = None
            model.provider.save()
        else:
            model.enabled = False
            model.save()

        with pytest.raises(refused_by):
            call_admit(user=user, model_id=model.pk)

    assert server.requests == []
    assert not UsageRecord.objects.exists()


def test_a_model_that_does_not_exist_is_unavailable(user):
    with pytest.raises(ModelUnavailable):
        call_admit(user=user, model_id=0)


def test_a_spent_budget_is_told_in_words_with_the_day_it_resets(user):
    UserBudget.objects.create(user=user, monthly_allowance=Decimal(0))
    model = LLMModelFactory(provider=ProviderFactory(openai=True))

    with pytest.raises(BudgetSpent) as refused:
        call_admit(user=user, model_id=model.pk)

    assert refused.value.detail.startswith("Your monthly budget of $0.00 is spent")
    assert "it resets on" in refused.value.detail


def test_letting_a_call_through_runs_one_query_once_the_model_is_cached(
    user, django_assert_num_queries
):
    model = LLMModelFactory(provider=ProviderFactory(openai=True))
    call_admit(user=user, model_id=model.pk)

    # The fingerprint with the user's groups, budget and limits (none: no lease); the model
    # with its provider comes from the cached configuration.
    with django_assert_num_queries(1):
        admission = call_admit(user=user, model_id=model.pk)

    assert admission == Admission(user_id=user.pk, model=model, allowance=Allowance(None, ""))


def test_a_change_to_the_model_or_its_key_reaches_the_next_call(user):
    with serve(FakeProvider("openai", "sk-NEWSECRET-6")) as server:
        model = model_at(server.url, identifier="gpt-5", **PRICES)
        call_admit(user=user, model_id=model.pk)
        model.input_price = Decimal("6")
        model.save()
        model.provider.replace_api_key("sk-NEWSECRET-6")
        model.provider.save()

        run_call(call_admit(user=user, model_id=model.pk).call(chat=HELLO))

    # Sent with the new key (the old one is refused); 12 input tokens at the new $6.
    assert UsageRecord.objects.get().cost == Decimal("0.000147")


class SlowToClose:
    """A provider client whose stream, once closed, takes its time to let go (a connection
    drained on close)."""

    billable = True

    def __init__(self) -> None:
        self.closing = asyncio.Event()

    async def stream_chat(self, settings: Any, chat: ChatInput) -> AsyncIterator[StreamEvent]:
        try:
            yield TextDelta("Hello")
            await asyncio.Event().wait()
        finally:
            self.closing.set()
            await asyncio.Event().wait()


def test_a_call_cancelled_while_its_stream_closes_is_recorded_all_the_same(user, monkeypatch):
    client = SlowToClose()
    model = LLMModelFactory(provider=ProviderFactory(openai=True), **PRICES)
    monkeypatch.setattr(type(model.provider), "client", lambda provider: client)
    call = call_admit(user=user, model_id=model.pk).call(chat=HELLO)

    async def cancelled_while_closing() -> None:
        async def run() -> None:
            async with call:
                async for _ in call:
                    raise ValueError("the caller's own code failed")

        task = asyncio.create_task(run())
        await client.closing.wait()
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    async_to_sync(cancelled_while_closing)()

    assert call.cancelled
    record = UsageRecord.objects.get()
    assert (record.pricing, record.output_tokens) == (Pricing.ESTIMATED, 3)
