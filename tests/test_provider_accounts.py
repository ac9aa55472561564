"""Several accounts of one provider type (issue 29): the migration that makes every provider its
type's first account, and two accounts of one type end to end (chat, lists, gateway)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import connection
from django.db.models import Model

from billing.ledger import usage_record
from billing.models import BudgetAlert, DailyUsage, GroupBudget, ModelPrice, UsageRecord, UserBudget
from chat.models import Conversation, Message
from gateway.models import GatewayPolicy, PersonalAccessToken
from llmadmin.models import ConfigurationChange, LLMModel, Provider
from llmadmin.providers import PROVIDER_TYPES
from llmadmin.providers.contract import Usage
from llmadmin.services import model_make_default
from tests.factories import AccessTokenFactory, LLMModelFactory, ProviderFactory

QUIET = {"verbosity": 0, "stdout": io.StringIO()}
BEFORE_ACCOUNTS = "0016_configuration_change_log"

# --- the migration ----------------------------------------------------------------------------


def table(model: type[Model], *fields: str) -> list[tuple[Any, ...]]:
    """The rows of a table as stored, by pk: these fields only (billing may add columns)."""
    return list(model.objects.order_by("pk").values_list("pk", *fields))


def stored_secrets() -> list[tuple[Any, ...]]:
    """The secret columns as the database holds them: ciphertext, never decrypted."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, api_key, aws_secret_access_key, aws_session_token, "
            "api_key_encrypted_with FROM llmadmin_provider ORDER BY id"
        )
        return cursor.fetchall()


def every_table() -> dict[str, list[tuple[Any, ...]]]:
    """What the migration must keep as it was, table by table."""
    return {
        "providers": table(
            Provider, "type", "auth", "base_url", "region", "aws_access_key_id", "enabled"
        ),
        "secrets": stored_secrets(),
        "models": table(
            LLMModel, "provider", "identifier", "display_name", "is_default", "restricted"
        ),
        "access by group": table(LLMModel.allowed_groups.through, "llmmodel", "group"),
        "access by user": table(LLMModel.allowed_users.through, "llmmodel", "user"),
        "prices": table(LLMModel, "input_price", "output_price"),
        "price history": table(ModelPrice, "model", "input_price", "output_price"),
        "ledger": table(UsageRecord, "user", "model", "provider_type", "cost", "input_tokens"),
        "daily usage": table(DailyUsage, "day", "user", "model", "provider_type", "cost"),
        "group budgets": table(GroupBudget, "group", "monthly_allowance"),
        "user budgets": table(UserBudget, "user", "monthly_allowance"),
        "budget alerts": table(BudgetAlert, "user", "month", "level"),
        "tokens": table(PersonalAccessToken, "user", "name", "prefix", "digest"),
        "gateway policy": table(GatewayPolicy.closed_to.through, "gatewaypolicy", "group"),
        "conversations": table(Conversation, "owner", "model", "title"),
        "messages": table(Message, "conversation", "role", "model", "content"),
        "audit": table(LogEntry, "object_pk", "action", "changes"),
        "configuration changes": table(ConfigurationChange, "kind", "ids"),
    }


@pytest.fixture
def database_before_accounts(encryption_secrets) -> dict[str, Any]:
    """A database with a row in every table: keys of each auth mode, some encrypted with a
    secret since replaced (still readable as a fallback); the keys' plaintext."""
    developer = User.objects.create_user("dev")
    group = Group.objects.create(name="backend")
    encryption_secrets("the-secret-before-rotation")
    anthropic = ProviderFactory(anthropic=True, api_key="sk-ant-BEFORE-ROTATION")
    encryption_secrets("the-secret-now", fallbacks=("the-secret-before-rotation",))
    openai = ProviderFactory(openai=True, api_key="sk-OPENAI-1")
    compat = ProviderFactory(openai_compat=True, api_key="sk-COMPAT-1", enabled=False)
    bedrock = ProviderFactory(
        bedrock=True,
        api_key=None,
        auth="aws_keys",
        aws_access_key_id="AKIABEFOREACCOUNTS00",
        aws_secret_access_key="aws-SECRET-1",
        aws_session_token="aws-SESSION-1",
    )
    prices = {"input_price": Decimal(3), "output_price": Decimal(15)}
    default = model_make_default(model=LLMModelFactory(provider=openai, **prices))
    kept = LLMModelFactory(provider=anthropic, restricted=True)
    kept.allowed_groups.add(group)
    kept.allowed_users.add(developer)
    LLMModelFactory(provider=compat)
    LLMModelFactory(provider=bedrock, identifier="anthropic.claude-sonnet-4-5")
    usage_record(
        user_id=developer.pk, model=default, called_at=datetime.now(UTC), usage=Usage(9, 5)
    )
    GroupBudget.objects.create(group=group, monthly_allowance=Decimal(10))
    UserBudget.objects.create(user=developer, monthly_allowance=Decimal(20))
    BudgetAlert.objects.create(user=developer, month=date(2026, 1, 1), level=85)
    AccessTokenFactory(user=developer)
    GatewayPolicy.objects.get().closed_to.add(group)
    conversation = Conversation.objects.create(owner=developer, model=default, title="Hi")
    Message.objects.create(conversation=conversation, role="user", content="Hi")
    Message.objects.create(conversation=conversation, role="assistant", model=default)
    # Names the migration must replace: it names each account after its type.
    for pk in Provider.objects.values_list("pk", flat=True):
        Provider.objects.filter(pk=pk).update(name=f"Renamed {pk}", slug=f"renamed-{pk}")
    return {
        "keys": [
            (anthropic.pk, "api_key", "sk-ant-BEFORE-ROTATION"),
            (openai.pk, "api_key", "sk-OPENAI-1"),
            (compat.pk, "api_key", "sk-COMPAT-1"),
            (bedrock.pk, "aws_secret_access_key", "aws-SECRET-1"),
            (bedrock.pk, "aws_session_token", "aws-SESSION-1"),
        ],
    }


@pytest.mark.django_db(transaction=True)
def test_the_migration_makes_each_provider_its_types_first_account_and_keeps_every_row(
    database_before_accounts,
):
    call_command("migrate", "llmadmin", BEFORE_ACCOUNTS, **QUIET)
    before = every_table()
    assert all(before.values()), [name for name, rows in before.items() if not rows]
    assert len({row[-1] for row in before["secrets"] if row[-1]}) == 2  # two encryption keys

    call_command("migrate", **QUIET)

    assert every_table() == before
    assert sorted(Provider.objects.values_list("type", "name", "slug")) == sorted(
        (slug, provider_type.label, slug) for slug, provider_type in PROVIDER_TYPES.items()
    )
    for pk, field, key in database_before_accounts["keys"]:
        assert getattr(Provider.objects.get(pk=pk), field) == key, field
