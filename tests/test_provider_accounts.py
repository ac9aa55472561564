"""Several accounts of one provider type (issue 29): the migration that makes every provider its
type's first account, and two accounts of one type end to end (chat, lists, gateway)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx2
import openai
import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import connection
from django.db.models import Model
from django.test import Client
from django.urls import reverse

from billing.ledger import usage_record
from billing.models import BudgetAlert, DailyUsage, GroupBudget, ModelPrice, UsageRecord, UserBudget
from chat.models import Conversation, Message
from gateway.models import GatewayPolicy, PersonalAccessToken
from gateway.tokens import token_mint
from llmadmin.models import ConfigurationChange, LLMModel, Provider
from llmadmin.providers import PROVIDER_TYPES
from llmadmin.providers.contract import Usage
from llmadmin.services import model_make_default
from tests.chat_api import send
from tests.factories import AccessTokenFactory, LLMModelFactory, ProviderFactory, provider_at
from tests.providers.fakes import FakeProvider, fake_for, serve

HI = [{"role": "user", "content": "Hi"}]
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
def database_before_accounts(encryption_secrets) -> list[tuple[int, str, str]]:
    """A row in every table (one account per type, as before accounts): keys of each auth
    mode that stores one, some encrypted with a secret since replaced (still readable as a
    fallback). Each key's provider, field and plaintext."""
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
    GatewayPolicy.objects.get_or_create(id=1)[0].closed_to.add(group)
    conversation = Conversation.objects.create(owner=developer, model=default, title="Hi")
    Message.objects.create(conversation=conversation, role="user", content="Hi")
    Message.objects.create(conversation=conversation, role="assistant", model=default)
    return [
        (anthropic.pk, "api_key", "sk-ant-BEFORE-ROTATION"),
        (openai.pk, "api_key", "sk-OPENAI-1"),
        (compat.pk, "api_key", "sk-COMPAT-1"),
        (bedrock.pk, "aws_secret_access_key", "aws-SECRET-1"),
        (bedrock.pk, "aws_session_token", "aws-SESSION-1"),
    ]


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
    for pk, field, key in database_before_accounts:
        assert getattr(Provider.objects.get(pk=pk), field) == key, field


# --- two accounts of one type, end to end ----------------------------------------------------

# Two OpenAI Compatible accounts: the type's first (a LiteLLM gateway, say) and an internal vLLM.
FIRST_KEY, VLLM_KEY = "sk-LITELLM-first-1", "sk-VLLM-second-2"


@pytest.fixture
def two_servers() -> Iterator[tuple[FakeProvider, FakeProvider]]:
    """Two loopback servers of the OpenAI API, each taking its own account's key only."""
    with (
        serve(fake_for("openai-compat", FIRST_KEY)) as first,
        serve(fake_for("openai-compat", VLLM_KEY)) as vllm,
    ):
        yield first, vllm


def two_accounts(first_url: str, vllm_url: str) -> tuple[Provider, Provider]:
    first = provider_at("openai-compat", first_url, api_key=FIRST_KEY)
    vllm = provider_at("openai-compat", vllm_url, api_key=VLLM_KEY, name="Internal vLLM")
    return first, vllm


def received(server: FakeProvider) -> list[tuple[str, str]]:
    return [(request.path, request.headers["authorization"]) for request in server.requests]


@pytest.mark.django_db
def test_each_accounts_model_chats_with_its_own_server_and_key(client, developer, two_servers):
    first_server, vllm_server = two_servers
    first, vllm = two_accounts(first_server.url, vllm_server.url)

    for provider in (first, vllm):
        send(client, LLMModelFactory(provider=provider, identifier="qwen3-coder"))

    assert received(first_server) == [("/v1/chat/completions", f"Bearer {FIRST_KEY}")]
    assert received(vllm_server) == [("/v1/chat/completions", f"Bearer {VLLM_KEY}")]


def listed(client: Client) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The developers' list (what /agents/ shows): its groups with their models, and the
    accounts whose models are not offered, with why."""
    payload = client.get(reverse("api-models")).json()
    groups = [
        (
            group["provider_id"],
            group["provider_label"],
            [(model["identifier"], model["provider_id"]) for model in group["models"]],
        )
        for group in payload["groups"]
    ]
    unavailable = [
        (entry["provider_id"], entry["provider_label"], entry["reason"])
        for entry in payload["unavailable_providers"]
    ]
    return groups, unavailable


@pytest.mark.django_db
def test_disabling_one_account_hides_only_its_models(client, developer):
    first, vllm = two_accounts("http://127.0.0.1:9", "http://127.0.0.1:9")
    for provider in (first, vllm):
        LLMModelFactory(provider=provider, identifier="qwen3-coder")
    both = [
        (first.pk, "OpenAI Compatible", [("qwen3-coder", first.pk)]),
        (vllm.pk, "Internal vLLM (OpenAI Compatible)", [("qwen3-coder", vllm.pk)]),
    ]
    assert listed(client) == (both, [])

    vllm.enabled = False
    vllm.save()

    assert listed(client) == (
        both[:1],
        [(vllm.pk, "Internal vLLM (OpenAI Compatible)", "provider_disabled")],
    )


@pytest.fixture
def gateway(asgi_server) -> Iterator[tuple[str, str]]:
    """The gateway's OpenAI API, and a developer's token for it."""
    developer = User.objects.create_user("dev")
    yield f"{asgi_server}/gateway/openai/v1", token_mint(user=developer, name="laptop")[1]


def test_the_gateway_names_each_accounts_model_and_each_name_reaches_its_server(
    gateway, two_servers
):
    base_url, secret = gateway
    first_server, vllm_server = two_servers
    first, vllm = two_accounts(first_server.url, vllm_server.url)
    for provider in (first, vllm):
        LLMModelFactory(provider=provider, identifier="qwen3-coder")
    LLMModelFactory(provider=vllm, identifier="llama-4")
    client = openai.OpenAI(base_url=base_url, api_key=secret, max_retries=0)

    names = sorted(model.id for model in client.models.list())
    for name in names:
        client.chat.completions.create(model=name, messages=HI)

    assert names == ["internal-vllm/qwen3-coder", "llama-4", "openai-compat/qwen3-coder"]
    # Each server got the identifier alone, with its own account's key.
    assert [(r.body["model"], r.headers["authorization"]) for r in first_server.requests] == [
        ("qwen3-coder", f"Bearer {FIRST_KEY}")
    ]
    assert [(r.body["model"], r.headers["authorization"]) for r in vllm_server.requests] == [
        ("qwen3-coder", f"Bearer {VLLM_KEY}"),
        ("llama-4", f"Bearer {VLLM_KEY}"),
    ]


def test_a_disabled_accounts_models_leave_the_gateway_and_the_others_keep_their_names(
    gateway, two_servers
):
    base_url, secret = gateway
    first_server, vllm_server = two_servers
    first, vllm = two_accounts(first_server.url, vllm_server.url)
    for provider in (first, vllm):
        LLMModelFactory(provider=provider, identifier="qwen3-coder")
    vllm.enabled = False
    vllm.save()
    client = openai.OpenAI(base_url=base_url, api_key=secret, max_retries=0)

    names = [model.id for model in client.models.list()]
    # A client set up with the name it had while both were listed still reaches its model.
    for name in ("qwen3-coder", "openai-compat/qwen3-coder"):
        client.chat.completions.create(model=name, messages=HI)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="internal-vllm/qwen3-coder", messages=HI)

    assert names == ["qwen3-coder"]
    assert [request.body["model"] for request in first_server.requests] == ["qwen3-coder"] * 2
    assert vllm_server.requests == []


# An identifier two accounts have names neither model: each API's own "no such model".
NOT_FOUND = {
    "openai": (
        "chat/completions",
        {"Authorization": "Bearer {secret}"},
        lambda body: body["error"]["code"] == "model_not_found",
    ),
    "anthropic": (
        "messages",
        {"x-api-key": "{secret}"},
        lambda body: body["type"] == "error" and body["error"]["type"] == "not_found_error",
    ),
}


@pytest.mark.parametrize("api", NOT_FOUND)
def test_an_identifier_two_accounts_share_is_no_models_name_alone(gateway, api):
    base_url, secret = gateway
    first, vllm = two_accounts("http://127.0.0.1:9", "http://127.0.0.1:9")
    for provider in (first, vllm):
        LLMModelFactory(provider=provider, identifier="qwen3-coder")
    path, headers, in_its_shape = NOT_FOUND[api]

    response = httpx2.post(
        f"{base_url.replace('/openai/', f'/{api}/')}/{path}",
        headers={name: value.format(secret=secret) for name, value in headers.items()},
        json={"model": "qwen3-coder", "max_tokens": 100, "messages": HI},
    )

    assert response.status_code == 404
    assert in_its_shape(response.json())
