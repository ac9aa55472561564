"""GET /api/v1/models/: the models developers can chat with."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import chat.model_list
from billing.budgets import next_month
from billing.models import DailyUsage
from chat.model_list import offered_model, usable_models
from llmadmin.models import LLMModel, Provider
from llmadmin.services import model_make_default, provider_set_api_key
from tests.factories import LLMModelFactory, ProviderFactory

pytestmark = pytest.mark.django_db

URL = reverse("api-models")
NO_BUDGET = {
    "monthly_allowance": None,
    "monthly_allowance_text": "No limit",
    "source": None,
    "spent": "0.0000",
    "spent_text": "$0.00",
    "remaining": None,
    "remaining_text": "No limit",
    "resets_on": next_month(timezone.localdate()).isoformat(),
    "model_caps": [],
}
KEY = "sk-API-LISTSECRET-42"


@pytest.fixture
def developer_client(client):
    client.force_login(User.objects.create_user("dev", password="pw"))
    return client


def names(payload: dict) -> list[list[str]]:
    return [[model["display_name"] for model in group["models"]] for group in payload["groups"]]


def test_it_lists_enabled_models_of_enabled_providers_with_a_key(developer_client):
    anthropic = ProviderFactory(anthropic=True)
    LLMModelFactory(provider=anthropic, display_name="Sonnet")
    LLMModelFactory(provider=anthropic, display_name="Disabled", enabled=False)
    LLMModelFactory(provider=ProviderFactory(openai=True, no_key=True), display_name="No key")
    LLMModelFactory(provider=ProviderFactory(google=True, enabled=False), display_name="Off")

    payload = developer_client.get(URL).json()

    assert names(payload) == [["Sonnet"]]


def test_it_groups_by_provider_in_registry_order_then_display_name(developer_client):
    for traits, display_names in [
        ({"vercel": True}, ["Zed", "Alpha"]),
        ({"openai": True}, ["GPT-5 mini", "GPT-5"]),
        ({"anthropic": True}, ["Sonnet", "Haiku"]),
    ]:
        provider = ProviderFactory(**traits)
        for display_name in display_names:
            LLMModelFactory(provider=provider, display_name=display_name)

    payload = developer_client.get(URL).json()

    assert [group["provider_label"] for group in payload["groups"]] == [
        "Anthropic",
        "OpenAI",
        "Vercel AI Gateway",
    ]
    assert names(payload) == [["Haiku", "Sonnet"], ["GPT-5", "GPT-5 mini"], ["Alpha", "Zed"]]


def test_each_account_is_a_group_labelled_with_its_name_a_types_first_first(developer_client):
    eu = ProviderFactory(azure=True, name="Azure EU")
    first = ProviderFactory(azure=True)
    vllm = ProviderFactory(openai_compat=True, name="Internal vLLM")
    for provider in (eu, first, vllm):
        LLMModelFactory(provider=provider, identifier="gpt-4.1")

    payload = developer_client.get(URL).json()

    assert [
        (group["provider_id"], group["provider_type"], group["provider_label"])
        for group in payload["groups"]
    ] == [
        (first.pk, "azure", "Azure OpenAI"),
        (eu.pk, "azure", "Azure EU (Azure OpenAI)"),
        (vllm.pk, "openai-compat", "Internal vLLM (OpenAI Compatible)"),
    ]
    assert [group["models"][0]["provider_id"] for group in payload["groups"]] == [
        first.pk,
        eu.pk,
        vllm.pk,
    ]


def test_each_model_has_exactly_what_a_chat_client_needs(developer_client):
    model = LLMModelFactory(
        provider=ProviderFactory(openai=True, base_url="http://proxy.internal:4000/v1"),
        identifier="gpt-5",
        display_name="GPT-5",
        context_limit=400_000,
        temperature=0.3,
        provider_options={"reasoning_effort": "high"},
        is_default=True,
    )

    response = developer_client.get(URL)

    assert response.json()["groups"][0]["models"] == [
        {
            "id": model.pk,
            "identifier": "gpt-5",
            "display_name": "GPT-5",
            "provider_id": model.provider_id,
            "provider_type": "openai",
            "provider_label": "OpenAI",
            "context_limit": 400_000,
            "is_default": True,
        }
    ]
    assert response.json()["default_model_id"] == model.pk
    for secret_or_internal in ("sk-test-key", "proxy.internal", "reasoning_effort", "0.3"):
        assert secret_or_internal not in response.text


def test_without_a_usable_default_the_first_model_is_the_developers_default(developer_client):
    first = LLMModelFactory(provider=ProviderFactory(anthropic=True))
    unavailable = LLMModelFactory(provider=ProviderFactory(openai=True, no_key=True))

    assert developer_client.get(URL).json()["default_model_id"] == first.pk

    model_make_default(model=unavailable)
    assert developer_client.get(URL).json()["default_model_id"] == first.pk


def test_the_default_is_null_when_the_developer_has_no_model(developer_client):
    model_make_default(model=LLMModelFactory(provider=ProviderFactory(openai=True, no_key=True)))

    assert developer_client.get(URL).json()["default_model_id"] is None


def test_when_nothing_is_available_each_provider_says_why(client, encryption_secrets):
    LLMModelFactory(provider=ProviderFactory(openai=True, no_key=True))
    LLMModelFactory(provider=ProviderFactory(google=True, enabled=False))
    LLMModelFactory(provider=ProviderFactory(anthropic=True))
    ProviderFactory(vercel=True, no_key=True)  # no models: nothing to say about it
    encryption_secrets("a-new-secret-that-cannot-read-old-keys")
    client.force_login(User.objects.create_user("dev", password="pw"))

    payload = client.get(URL).json()

    assert payload["groups"] == []
    assert {
        (entry["provider_type"], entry["reason"], entry["model_count"])
        for entry in payload["unavailable_providers"]
    } == {
        ("anthropic", "key_unreadable", 1),
        ("google", "provider_disabled", 1),
        ("openai", "missing_key", 1),
    }


def test_an_unavailable_account_says_why_beside_its_types_available_one(developer_client):
    available = ProviderFactory(openai_compat=True)
    off = ProviderFactory(openai_compat=True, name="Internal vLLM", enabled=False)
    for provider in (available, off):
        LLMModelFactory(provider=provider)

    payload = developer_client.get(URL).json()

    assert [group["provider_id"] for group in payload["groups"]] == [available.pk]
    assert payload["unavailable_providers"] == [
        {
            "provider_id": off.pk,
            "provider_type": "openai-compat",
            "provider_label": "Internal vLLM (OpenAI Compatible)",
            "reason": "provider_disabled",
            "model_count": 1,
        }
    ]


def test_with_no_models_at_all_both_lists_are_empty(developer_client):
    ProviderFactory(anthropic=True)

    assert developer_client.get(URL).json() == {
        "default_model_id": None,
        "groups": [],
        "unavailable_providers": [],
        "restricted_model_count": 0,
        "budget": NO_BUDGET,
    }


def test_anonymous_requests_are_refused(client):
    LLMModelFactory()

    assert client.get(URL).status_code in (401, 403)


def test_writes_are_not_allowed(developer_client):
    for method in ("post", "put", "patch", "delete"):
        assert getattr(developer_client, method)(URL).status_code == 405


def test_writes_without_a_csrf_token_are_refused():
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_user("dev", password="pw"))

    assert client.post(URL).status_code == 403


def test_a_matching_etag_answers_304(developer_client):
    LLMModelFactory()
    first = developer_client.get(URL)

    again = developer_client.get(URL, HTTP_IF_NONE_MATCH=first["ETag"])

    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == first["ETag"]
    assert "no-cache" in first["Cache-Control"]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda model: LLMModelFactory(provider=model.provider), id="model added"),
        pytest.param(lambda model: model.delete(), id="model deleted"),
        pytest.param(
            lambda model: setattr(model, "display_name", "Renamed") or model.save(),
            id="model renamed",
        ),
        pytest.param(lambda model: model_make_default(model=model), id="default changed"),
        pytest.param(
            lambda model: provider_set_api_key(provider=model.provider, api_key=None),
            id="key removed",
        ),
        pytest.param(
            lambda model: setattr(model.provider, "enabled", False) or model.provider.save(),
            id="provider disabled",
        ),
        pytest.param(lambda model: model.provider.delete(), id="provider deleted"),
    ],
)
def test_every_change_shows_at_once(developer_client, change):
    model = LLMModelFactory(display_name="Original")
    before = developer_client.get(URL)

    change(model)
    after = developer_client.get(URL, HTTP_IF_NONE_MATCH=before["ETag"])

    assert after.status_code == 200
    assert after.json() != before.json()


def test_a_key_set_in_another_process_shows_without_any_signal(developer_client):
    model = LLMModelFactory(provider=ProviderFactory(openai=True, no_key=True))
    assert developer_client.get(URL).json()["groups"] == []

    # A write that no signal of this process sees, as from another worker.
    provider = Provider.objects.get(pk=model.provider_id)
    provider_set_api_key(provider=provider, api_key=KEY)

    assert names(developer_client.get(URL).json()) == [[model.display_name]]


def test_a_list_asked_again_in_the_same_state_follows_the_encryption_keys(
    developer_client, encryption_secrets
):
    model = LLMModelFactory(provider=ProviderFactory(anthropic=True))
    assert names(developer_client.get(URL).json()) == [[model.display_name]]

    # The same rows: only this process's keys change, as at a restart with new secrets (which
    # end the sessions signed with the old ones).
    encryption_secrets("a-new-secret-that-cannot-read-old-keys")
    developer_client.force_login(User.objects.get(username="dev"))

    payload = developer_client.get(URL).json()
    assert payload["groups"] == []
    assert [entry["reason"] for entry in payload["unavailable_providers"]] == ["key_unreadable"]


def offered(response) -> list[str]:
    return [
        model["display_name"] for group in response.json()["groups"] for model in group["models"]
    ]


def after_the_login_do(monkeypatch, change) -> list[bool]:
    """Run `change` once, in the next request, right after its login was read (the hook only
    arranges the timing); whether it is still pending."""
    key_ids = chat.model_list.api_key_ids
    pending = [True]

    def hook() -> tuple[str, ...]:
        if pending:
            pending.clear()
            change()
        return key_ids()

    monkeypatch.setattr(chat.model_list, "api_key_ids", hook)
    return pending


def test_a_list_whose_login_was_read_before_an_access_change_is_served_as_of_its_login(
    monkeypatch,
):
    provider = ProviderFactory(anthropic=True)
    developer = User.objects.create_user("dev")
    secret = LLMModelFactory(provider=provider, display_name="Secret", restricted=True)
    secret.allowed_users.add(developer)
    LLMModelFactory(provider=provider, display_name="Open")
    client, other = Client(), Client()
    client.force_login(developer)
    other.force_login(User.objects.create_user("other"))
    assert offered(client.get(URL)) == ["Open", "Secret"]

    def revoked() -> None:
        LLMModel.objects.get(pk=secret.pk).allowed_users.remove(developer)
        assert offered(other.get(URL)) == ["Open"]

    # The developer's next request reads its login; meanwhile an admin takes them off Secret's
    # list and another developer's request moves the process to the new configuration.
    pending = after_the_login_do(monkeypatch, revoked)
    # Served from the configuration its login read, kept by the process: not read in full again.
    monkeypatch.setattr(chat.model_list, "build_configuration", None)
    response = client.get(URL)

    assert not pending
    assert response.status_code == 200
    assert offered(response) == ["Open", "Secret"]
    # Its next request reads the change, and the other developer's list stays as changed.
    assert offered(client.get(URL)) == ["Open"]
    assert offered(other.get(URL)) == ["Open"]


def test_what_the_lists_are_served_from_stays_within_its_bound(developer_client, monkeypatch):
    # Each turn changes the developer's state, and each list after it is kept: with 400
    # capped models each keeps a budget of about 67 KB.
    monkeypatch.setattr(chat.model_list, "MAX_READING_BYTES", 256 * 1024)
    provider = ProviderFactory(anthropic=True)
    models = [LLMModelFactory(provider=provider, monthly_cap=Decimal(5)) for _ in range(400)]
    developer = User.objects.get(username="dev")

    def a_turn_then_the_list(model: LLMModel) -> None:
        DailyUsage.objects.create(
            day=timezone.localdate(),
            user=developer,
            model=model,
            provider=provider,
            provider_type=provider.type,
            calls=1,
            cost=Decimal("0.01"),
        )
        assert developer_client.get(URL).status_code == 200

    for model in models[:3]:  # warm
        a_turn_then_the_list(model)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for model in models[3:23]:
            a_turn_then_the_list(model)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()

    # What the cache's own code allocated and kept: not what another thread of the process
    # (a test server's, pytest-xdist's) allocated meanwhile.
    cache_code = [tracemalloc.Filter(True, chat.model_list.__file__)]
    after, before = after.filter_traces(cache_code), before.filter_traces(cache_code)
    kept = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # 20 lists of about 67 KB each: 1.3 MB kept without the bound.
    assert kept < 600 * 1024


@pytest.mark.parametrize(
    ("account_count", "model_count"),
    [
        pytest.param(1, 1, id="an account of each type, a model each"),
        pytest.param(1, 50, id="50 models each"),
        pytest.param(10, 5, id="10 accounts of each type"),
    ],
)
def test_the_list_runs_a_constant_number_of_queries(
    developer_client, django_assert_num_queries, account_count, model_count
):
    for provider_type in ("anthropic", "openai"):
        for number in range(account_count):
            # The type's first account, then others by name.
            account = {"name": f"{provider_type} {number}"} if number else {}
            provider = ProviderFactory(type=provider_type, **account)
            for _ in range(model_count):
                LLMModelFactory(provider=provider)

    # the session with its user, their budget and the fingerprint, the changes logged,
    # providers, models, the two access lists, the token again (kept if still the same)
    with django_assert_num_queries(7):
        developer_client.get(URL)
    # cached: the session with its user, their budget and the fingerprint
    with django_assert_num_queries(1):
        developer_client.get(URL)


@pytest.mark.parametrize("model_count", [1, 50])
def test_after_a_model_changed_the_list_reads_only_that_model(
    developer_client, django_assert_num_queries, monkeypatch, model_count
):
    provider = ProviderFactory(anthropic=True)
    models = [LLMModelFactory(provider=provider) for _ in range(model_count)]
    developer_client.get(URL)
    models[0].display_name = "Renamed"
    models[0].save()
    monkeypatch.setattr(chat.model_list, "build_configuration", None)  # no full rebuild

    # the session with its user, their budget and the fingerprint, the changes since, that
    # model, its two access lists, the token again
    with django_assert_num_queries(6):
        payload = developer_client.get(URL).json()

    assert "Renamed" in names(payload)[0]


def test_the_list_never_decrypts_a_key(developer_client, monkeypatch):
    LLMModelFactory()
    field = Provider._meta.get_field("api_key")

    def refuse(*args, **kwargs):
        raise AssertionError("the list path decrypted a key")

    monkeypatch.setattr(type(field), "to_python", refuse)

    assert developer_client.get(URL).status_code == 200
    with pytest.raises(AssertionError, match="decrypted"):
        Provider.objects.get()  # the trap works: loading a key would have tripped it


def test_the_openapi_schema_documents_the_list(developer_client):
    schema = developer_client.get(reverse("api-schema"), HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/api/v1/models/"]["get"]
    assert operation["operationId"] == "listChatModels"
    assert set(schema["components"]["schemas"]["ModelList"]["properties"]) == {
        "default_model_id",
        "groups",
        "unavailable_providers",
        "restricted_model_count",
        "budget",
    }
    # Each group, model and unavailable entry names its account.
    for name in ("ProviderGroup", "ChatModel", "UnavailableProvider"):
        assert "provider_id" in schema["components"]["schemas"][name]["required"], name


def test_the_interactive_docs_load_nothing_from_a_cdn(developer_client):
    html = developer_client.get(reverse("api-docs")).text

    assert "swagger-ui" in html
    assert "cdn" not in html.lower()
    assert "https://" not in html


@pytest.fixture
def not_granted() -> tuple[User, LLMModel, Client]:
    """A developer, logged in, not allowed Secret (a restricted model) beside Open."""
    provider = ProviderFactory(anthropic=True)
    developer = User.objects.create_user("dev")
    secret = LLMModelFactory(provider=provider, display_name="Secret", restricted=True)
    LLMModelFactory(provider=provider, display_name="Open")
    client = Client()
    client.force_login(developer)
    return developer, secret, client


def test_a_rolled_back_grant_is_not_served_from_a_configuration_kept_under_the_old_token(
    monkeypatch, not_granted
):
    developer, secret, client = not_granted
    other = Client()
    other.force_login(User.objects.create_user("other"))
    # A process that holds no configuration yet (just started, or one that fell behind).
    monkeypatch.setattr(chat.model_list, "_configuration", None)
    monkeypatch.setattr(chat.model_list, "_replaced", None)

    undo = transaction.savepoint()
    # The developer's first request reads its login; meanwhile an admin grants them Secret.
    pending = after_the_login_do(
        monkeypatch, lambda: LLMModel.objects.get(pk=secret.pk).allowed_users.add(developer)
    )
    assert offered(client.get(URL)) == ["Open", "Secret"]  # newer than its login: as before
    assert not pending
    assert offered(other.get(URL)) == ["Open"]  # the process moves to the grant's token
    # The grant is undone: the database is back at the token before it (a rollback, or a
    # restore), which the process met only in the first request.
    transaction.savepoint_rollback(undo)

    response = client.get(URL)

    assert offered(response) == ["Open"]
    user = User.objects.get(pk=developer.pk)
    assert offered_model(user, secret.pk)[0] is None


def test_after_a_request_two_changes_behind_the_current_lists_are_served_as_cached(
    monkeypatch,
):
    provider = ProviderFactory(anthropic=True)
    developer = User.objects.create_user("dev")
    LLMModelFactory(provider=provider, display_name="Open")
    client, other = Client(), Client()
    client.force_login(developer)
    other.force_login(User.objects.create_user("other"))
    assert offered(client.get(URL)) == ["Open"]

    def two_changes() -> None:
        LLMModelFactory(provider=provider, display_name="Second")
        assert other.get(URL).status_code == 200
        LLMModelFactory(provider=provider, display_name="Third")
        assert other.get(URL).status_code == 200

    after_the_login_do(monkeypatch, two_changes)
    # Its login was read before both: no configuration held is of its token.
    assert offered(client.get(URL)) == ["Open", "Second", "Third"]
    computed = []
    real_summary = chat.model_list.budget_summary
    monkeypatch.setattr(
        chat.model_list,
        "budget_summary",
        lambda *args: computed.append(args) or real_summary(*args),
    )

    for _ in range(3):
        assert offered(other.get(URL)) == ["Open", "Second", "Third"]

    # Served from what the other developer's list computed before the late request, as in a
    # process that never met it; and a replaced configuration keeps nothing.
    assert computed == []
    replaced = chat.model_list._replaced
    assert (replaced.lists, replaced.served_from) == ({}, {})


@pytest.fixture
def granted() -> tuple[User, LLMModel, Client]:
    """A developer allowed Secret (a restricted model), and another developer's client."""
    developer = User.objects.create_user("dev")
    secret = LLMModelFactory(provider=ProviderFactory(anthropic=True), restricted=True)
    secret.allowed_users.add(developer)
    other = Client()
    other.force_login(User.objects.create_user("other"))
    assert offered_model(User.objects.get(pk=developer.pk), secret.pk)[0] is not None
    return developer, secret, other


@pytest.mark.parametrize("entry", ["offered_model", "usable_models"])
def test_a_call_is_refused_once_the_process_has_applied_the_revocation(monkeypatch, granted, entry):
    developer, secret, other = granted

    def revoked() -> None:
        LLMModel.objects.get(pk=secret.pk).allowed_users.remove(developer)
        assert other.get(URL).status_code == 200  # the process applies the revocation

    # The call's state is read (as with its login), then the admin revokes, then it resolves.
    after_the_login_do(monkeypatch, revoked)
    user = User.objects.get(pk=developer.pk)
    if entry == "offered_model":
        allowed = offered_model(user, secret.pk)[0] is not None
    else:
        rows, _, configuration = usable_models(user)  # named_resolve's first step
        allowed = any(row["id"] == secret.pk for row in rows) and bool(
            configuration.model_for_call(secret.pk)
        )

    assert not allowed


@pytest.mark.parametrize("entry", ["offered_model", "usable_models", "budget_and_caps"])
def test_a_call_overtaken_by_a_change_the_process_applied_reads_nothing_in_full(
    monkeypatch, granted, entry
):
    developer, secret, other = granted
    real_build, builds = chat.model_list.build_configuration, []

    def revoked() -> None:
        LLMModel.objects.get(pk=secret.pk).allowed_users.remove(developer)
        assert other.get(URL).status_code == 200  # the process applies the revocation
        # From here on the process holds the revocation: nothing is to be read in full.
        monkeypatch.setattr(
            chat.model_list,
            "build_configuration",
            lambda *args: builds.append(args[0]) or real_build(*args),
        )

    # Three calls whose state was read just before the change (in flight when it landed).
    for _ in range(3):
        after_the_login_do(monkeypatch, revoked)
        user = User.objects.get(pk=developer.pk)
        if entry == "offered_model":
            assert offered_model(user, secret.pk)[0] is None
        elif entry == "usable_models":
            assert secret.pk not in [row["id"] for row in usable_models(user)[0]]
        else:
            chat.model_list.budget_and_caps(user)
        monkeypatch.setattr(chat.model_list, "build_configuration", real_build)
        LLMModel.objects.get(pk=secret.pk).allowed_users.add(developer)
        assert other.get(URL).status_code == 200

    assert builds == []


def test_a_grant_committed_while_the_process_updates_is_not_kept_under_the_older_token(
    monkeypatch, not_granted
):
    developer, secret, client = not_granted
    assert offered(client.get(URL)) == ["Open"]
    # A change the process has yet to apply, which the log says is Secret's.
    LLMModel.objects.get(pk=secret.pk).save()

    undo = transaction.savepoint()
    key_ids, pending = chat.model_list.api_key_ids, [True]

    def hook() -> tuple[str, ...]:
        # Only arranges the timing: once, after the process read the log, before the rows.
        if pending and sys._getframe(1).f_code.co_name == "updated_configuration":
            pending.clear()
            LLMModel.objects.get(pk=secret.pk).allowed_users.add(developer)
        return key_ids()

    monkeypatch.setattr(chat.model_list, "api_key_ids", hook)
    assert offered(client.get(URL)) == ["Open", "Secret"]  # newer than its login: as before
    assert not pending
    # The grant is undone: the database is back at the token before it (a rollback, or a
    # restore), the token the process's configuration is kept under.
    transaction.savepoint_rollback(undo)

    assert offered(client.get(URL)) == ["Open"]
    assert offered_model(User.objects.get(pk=developer.pk), secret.pk)[0] is None


def full_builds(monkeypatch) -> list[str]:
    """From now on, the fingerprint of each configuration built in full."""
    real_build, builds = chat.model_list.build_configuration, []
    monkeypatch.setattr(
        chat.model_list,
        "build_configuration",
        lambda *args: builds.append(args[0]) or real_build(*args),
    )
    return builds


@pytest.mark.parametrize("entry", ["offered_model", "usable_models"])
def test_a_call_overtaken_while_another_change_is_pending_is_decided_on_an_update(
    monkeypatch, granted, entry
):
    developer, secret, other = granted
    builds: list[list[str]] = []

    def revoked_then_another_change() -> None:
        LLMModel.objects.get(pk=secret.pk).allowed_users.remove(developer)
        assert other.get(URL).status_code == 200  # the process applies the revocation
        LLMModelFactory(provider=secret.provider)  # logged, not yet applied
        builds.append(full_builds(monkeypatch))

    after_the_login_do(monkeypatch, revoked_then_another_change)
    user = User.objects.get(pk=developer.pk)
    if entry == "offered_model":
        assert offered_model(user, secret.pk)[0] is None
    else:
        assert secret.pk not in [row["id"] for row in usable_models(user)[0]]

    assert builds == [[]]


def test_requests_waiting_behind_an_update_a_change_overtook_are_served_by_an_update(
    monkeypatch,
):
    provider = ProviderFactory(anthropic=True)
    LLMModelFactory(provider=provider, display_name="Open")
    waiting, first = Client(), Client()
    waiting.force_login(User.objects.create_user("dev"))
    first.force_login(User.objects.create_user("other"))
    assert offered(waiting.get(URL)) == ["Open"]
    LLMModelFactory(provider=provider, display_name="Second")  # the process has yet to apply it
    real_token, builds = chat.model_list.database_token, []

    def first_request_overtaken() -> None:
        # Another request takes the rebuild lock first; a third change commits while it reads
        # the rows (the token it reads after them is the third's): its update is not kept.
        pending = [True]

        def token() -> Any:
            if pending:
                pending.clear()
                LLMModelFactory(provider=provider, display_name="Third")
            return real_token()

        monkeypatch.setattr(chat.model_list, "database_token", token)
        assert offered(first.get(URL)) == ["Open", "Second"]
        assert not pending
        builds.append(full_builds(monkeypatch))

    # The waiting request's login was read (Second's token) before it got the lock.
    after_the_login_do(monkeypatch, first_request_overtaken)

    assert offered(waiting.get(URL)) == ["Open", "Second", "Third"]  # the newest logged
    assert builds == [[]]


def test_under_steady_changes_the_process_keeps_up_by_updates(monkeypatch):
    provider = ProviderFactory(anthropic=True)
    LLMModelFactory(provider=provider, display_name="Model 0")
    client = Client()
    client.force_login(User.objects.create_user("dev"))
    assert client.get(URL).status_code == 200
    LLMModelFactory(provider=provider, display_name="Model 1")  # not yet applied
    builds = full_builds(monkeypatch)
    start = chat.model_list._configuration

    for number in range(2, 7):
        # Another change commits after each request's login was read (while it waits for the
        # rebuild lock behind another request's update).
        after_the_login_do(
            monkeypatch,
            lambda number=number: LLMModelFactory(
                provider=provider, display_name=f"Model {number}"
            ),
        )
        assert f"Model {number - 1}" in offered(client.get(URL))  # at least as of its login

    assert builds == []
    assert chat.model_list._configuration is not start


@pytest.mark.parametrize("max_changes", [200, 1])
def test_after_an_update_not_kept_the_next_one_from_the_older_configuration_is_right(
    monkeypatch, max_changes
):
    monkeypatch.setattr(chat.model_list, "MAX_CHANGES_APPLIED", max_changes)
    provider, other_provider = ProviderFactory(anthropic=True), ProviderFactory(openai=True)
    developer = User.objects.create_user("dev")
    secret = LLMModelFactory(provider=provider, display_name="Secret", restricted=True)
    LLMModelFactory(provider=provider, display_name="Open")
    LLMModelFactory(provider=other_provider, display_name="Elsewhere")
    client = Client()
    client.force_login(developer)
    client.get(URL)
    LLMModel.objects.filter(pk=secret.pk).first().save()  # logged: the next request updates
    real_token, pending = chat.model_list.database_token, [True]

    def token() -> Any:
        # A grant commits while that update reads its rows: the update is not kept.
        if pending:
            pending.clear()
            LLMModel.objects.get(pk=secret.pk).allowed_users.add(developer)
        return real_token()

    monkeypatch.setattr(chat.model_list, "database_token", token)
    assert client.get(URL).status_code == 200
    assert not pending
    LLMModelFactory(provider=other_provider, display_name="Fourth")
    warm = client.get(URL)
    again = client.get(URL, HTTP_IF_NONE_MATCH=warm["ETag"])
    monkeypatch.setattr(chat.model_list, "_configuration", None)
    monkeypatch.setattr(chat.model_list, "_replaced", None)
    cold = client.get(URL)

    assert (warm["ETag"], warm.content) == (cold["ETag"], cold.content)
    assert again.status_code == 304
    assert offered(cold) == ["Open", "Secret", "Elsewhere", "Fourth"]
