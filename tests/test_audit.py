"""The audit of admin changes: what is recorded, by whom, never a secret."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from auditlog.models import LogEntry as AuditEntry
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from billing.models import DeveloperLimits, GroupBudget, GroupLimits, UserBudget
from llmadmin.models import BackupKey, LLMModel, Provider
from tests.admin_forms import form_as_loaded, provider_form_data
from tests.factories import LLMModelFactory, ProviderFactory
from tests.providers.fakes import FakeProvider, serve

pytestmark = pytest.mark.django_db

AUDIT_LIST = reverse("admin:auditlog_logentry_changelist")
MODEL_LIST = reverse("admin:llmadmin_llmmodel_changelist")
PROVIDER_LIST = reverse("admin:llmadmin_provider_changelist")
MODEL_ADD = reverse("admin:llmadmin_llmmodel_add")

# Every secret these tests type; none may reach any surface of the audit.
KEY = "sk-proj-AUDITKEY-first-0001"
NEW_KEY = "sk-proj-AUDITKEY-second-0002"
LOST_KEY = "sk-ant-AUDITKEY-lost-0003"
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
OTHER_ACCESS_KEY_ID = "AKIAIOSFODNN7OTHERKEY"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
OTHER_SECRET = "another/long-term/AUDITSECRET"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//SESSIONTOKEN+abc=="
SECRETS = (KEY, NEW_KEY, LOST_KEY, ACCESS_KEY_ID, OTHER_ACCESS_KEY_ID, SECRET, OTHER_SECRET, TOKEN)
REGION = "eu-west-1"

CREATE, UPDATE, DELETE = (
    AuditEntry.Action.CREATE,
    AuditEntry.Action.UPDATE,
    AuditEntry.Action.DELETE,
)
SET, NONE = "(set)", "(none)"


# --- Helpers -----------------------------------------------------------------------------------


def last_entry_pk() -> int:
    return AuditEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def entries_since(mark: int, obj: object | None = None) -> list[AuditEntry]:
    """The audit entries written after the mark (of one object when given), oldest first."""
    found = AuditEntry.objects.filter(pk__gt=mark).select_related("actor", "content_type")
    if obj is not None:
        content_type = ContentType.objects.get_for_model(obj)
        found = found.filter(content_type=content_type, object_id=obj.pk)
    return list(found.order_by("pk"))


def recorded(mark: int, obj: object | None = None) -> list[tuple[int, dict]]:
    return [(entry.action, entry.changes) for entry in entries_since(mark, obj)]


def provider_change_url(provider: Provider) -> str:
    return reverse("admin:llmadmin_provider_change", args=[provider.pk])


def model_change_url(model: LLMModel) -> str:
    return reverse("admin:llmadmin_llmmodel_change", args=[model.pk])


def entry_url(entry: AuditEntry) -> str:
    return reverse("admin:auditlog_logentry_change", args=[entry.pk])


def model_form_as_stored(admin_client, model: LLMModel, **overrides: object) -> dict:
    """The model's change form as the admin's browser posts it back (what the page shows,
    untouched), then the overrides; an override of None leaves that field out."""
    return form_as_loaded(admin_client, model_change_url(model), **overrides)


def export_csv(admin_client, selected: list[AuditEntry]):
    return admin_client.post(
        AUDIT_LIST,
        {"action": "export_csv", "_selected_action": [str(entry.pk) for entry in selected]},
    )


def every_audit_surface(admin_client) -> str:
    """All the audit holds and shows: every row's columns, the admin's list, each entry's
    page, and the CSV export of them all."""
    rows = list(AuditEntry.objects.order_by("pk"))
    assert rows, "nothing was audited: the search below would prove nothing"
    surfaces = [json.dumps(list(AuditEntry.objects.values()), default=str)]
    list_page = admin_client.get(AUDIT_LIST)
    assert list_page.status_code == 200
    surfaces.append(list_page.text)
    for row in rows:
        page = admin_client.get(entry_url(row))
        assert page.status_code == 200
        surfaces.append(page.text)
    export = export_csv(admin_client, rows)
    assert export["Content-Type"].startswith("text/csv")
    surfaces.append(export.text)
    return "\n".join(surfaces)


def assert_no_secret_in_the_audit(admin_client, *extra: str) -> None:
    surfaces = every_audit_surface(admin_client)
    for secret in (*SECRETS, *extra):
        assert secret not in surfaces, secret


def raw_column(provider: Provider, column: str) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM llmadmin_provider WHERE id = %s", [provider.pk])  # noqa: S608
        return cursor.fetchone()[0]


def rotate_keys() -> int:
    try:
        call_command("rotate_keys", stdout=io.StringIO(), stderr=io.StringIO())
    except SystemExit as exit_:
        return exit_.code
    return 0


def iam_provider(**fields: object) -> Provider:
    return ProviderFactory(
        bedrock=True,
        api_key=None,
        region=REGION,
        **{
            "auth": "aws_keys",
            "aws_access_key_id": ACCESS_KEY_ID,
            "aws_secret_access_key": SECRET,
            "aws_session_token": TOKEN,
            **fields,
        },
    )


# --- 1. Provider changes, keys and IAM secrets -------------------------------------------------

IAM_FORM = {
    "auth": "aws_keys",
    "aws_access_key_id": ACCESS_KEY_ID,
    "aws_secret_access_key": SECRET,
    "aws_session_token": TOKEN,
    "region": REGION,
}


# fmt: off
PROVIDER_CHANGES = [  # (the provider as stored, what the admin posts, the changes recorded)
    pytest.param(lambda: ProviderFactory(openai=True, api_key=KEY),
                 {"base_url": "http://proxy:4000/v1", "api_key": NEW_KEY, "enabled": ""},
                 {"base_url": ["", "http://proxy:4000/v1"], "api_key": [SET, SET],
                  "enabled": [True, False]},
                 id="base URL (with its key) and enabled"),
    pytest.param(lambda: ProviderFactory(openai=True, no_key=True), {"api_key": KEY},
                 {"api_key": [NONE, SET]}, id="a key set"),
    pytest.param(lambda: ProviderFactory(openai=True, api_key=KEY), {"api_key": NEW_KEY},
                 {"api_key": [SET, SET]}, id="a key changed"),
    pytest.param(lambda: ProviderFactory(openai=True, api_key=KEY), {"remove_api_key": "on"},
                 {"api_key": [SET, NONE]}, id="a key removed"),
    pytest.param(lambda: ProviderFactory(bedrock=True, api_key=None, region=REGION), IAM_FORM,
                 {"auth": ["api_key", "aws_keys"], "aws_access_key_id": [NONE, SET],
                  "aws_secret_access_key": [NONE, SET], "aws_session_token": [NONE, SET]},
                 id="IAM access keys set"),
    pytest.param(iam_provider, {"aws_secret_access_key": OTHER_SECRET},
                 {"aws_secret_access_key": [SET, SET]}, id="an IAM secret changed"),
    pytest.param(iam_provider,
                 {"aws_access_key_id": OTHER_ACCESS_KEY_ID, "aws_secret_access_key": OTHER_SECRET},
                 # A new access key drops the old one's session token.
                 {"aws_access_key_id": [SET, SET], "aws_secret_access_key": [SET, SET],
                  "aws_session_token": [SET, NONE]},
                 id="a new IAM access key"),
    pytest.param(iam_provider, {"remove_api_key": "on"},
                 {"auth": ["aws_keys", "api_key"], "aws_access_key_id": [SET, NONE],
                  "aws_secret_access_key": [SET, NONE], "aws_session_token": [SET, NONE]},
                 id="IAM access keys removed"),
]
# fmt: on


@pytest.mark.parametrize(("stored", "posted", "changes"), PROVIDER_CHANGES)
def test_a_provider_change_records_each_field_before_and_after_with_secrets_masked(
    admin_client, admin_user, stored, posted, changes
):
    provider = stored()
    mark = last_entry_pk()

    response = admin_client.post(
        provider_change_url(provider), provider_form_data(provider, **posted)
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert response.url == PROVIDER_LIST
    (entry,) = entries_since(mark)
    assert (entry.action, entry.actor, entry.object_repr) == (UPDATE, admin_user, str(provider))
    assert entry.changes == changes
    assert entry.cid is None
    assert_no_secret_in_the_audit(admin_client)


def test_a_provider_saved_unchanged_records_nothing(admin_client):
    provider = iam_provider()
    mark = last_entry_pk()

    response = admin_client.post(provider_change_url(provider), provider_form_data(provider))

    assert response.status_code == 302
    assert recorded(mark) == []


def switch_secrets(encryption_secrets, client, user, *args, **kwargs) -> None:
    """The operator's new secrets; sessions signed with the old one end: log in again."""
    encryption_secrets(*args, **kwargs)
    client.force_login(user)


def unreadable_key_provider(encryption_secrets, client, user) -> Provider:
    """Anthropic with a key no configured secret decrypts any more."""
    encryption_secrets("lost-secret")
    provider = ProviderFactory(anthropic=True, api_key=LOST_KEY)
    switch_secrets(encryption_secrets, client, user, "new-secret")
    provider = Provider.objects.get(pk=provider.pk)
    assert provider.key_state == "unreadable"
    return provider


# fmt: off
UNREADABLE_KEY_CHANGES = [
    pytest.param({"enabled": ""}, {"enabled": [True, False]},
                 id="another field: the unreadable key is no change"),
    pytest.param({"api_key": NEW_KEY}, {"api_key": [SET, SET]}, id="a new key replaces it"),
    pytest.param({"remove_api_key": "on"}, {"api_key": [SET, NONE]}, id="it is removed"),
]
# fmt: on


@pytest.mark.parametrize(("posted", "changes"), UNREADABLE_KEY_CHANGES)
def test_a_provider_with_an_unreadable_key_is_audited_without_its_ciphertext(
    admin_client, admin_user, encryption_secrets, posted, changes
):
    provider = unreadable_key_provider(encryption_secrets, admin_client, admin_user)
    ciphertext = raw_column(provider, "api_key")
    mark = last_entry_pk()

    response = admin_client.post(
        provider_change_url(provider), provider_form_data(provider, **posted)
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert response.url == PROVIDER_LIST
    (entry,) = entries_since(mark)
    assert (entry.action, entry.actor, entry.changes) == (UPDATE, admin_user, changes)
    assert_no_secret_in_the_audit(admin_client, ciphertext, ciphertext[:40], "gAAAAA")


# fmt: off
ROTATIONS = [  # (providers stored under the old secret, the changes recorded per provider type)
    pytest.param(
        lambda: [ProviderFactory(anthropic=True, api_key=KEY),
                 ProviderFactory(openai=True, api_key=NEW_KEY),
                 ProviderFactory(google=True, no_key=True)],
        {"anthropic": {"api_key": [SET, "(re-encrypted)"]},
         "openai": {"api_key": [SET, "(re-encrypted)"]}},
        id="API keys; a provider without one has nothing to record"),
    pytest.param(
        lambda: [iam_provider()],
        {"bedrock": {"aws_secret_access_key": [SET, "(re-encrypted)"],
                     "aws_session_token": [SET, "(re-encrypted)"]}},
        id="an IAM secret and session token"),
]
# fmt: on


@pytest.mark.parametrize(("stored", "expected"), ROTATIONS)
def test_rotating_keys_records_each_provider_reencrypted(
    admin_client, admin_user, encryption_secrets, stored, expected
):
    encryption_secrets("old-secret")
    stored()
    mark = last_entry_pk()

    switch_secrets(encryption_secrets, admin_client, admin_user, "new-secret", ("old-secret",))
    assert rotate_keys() == 0

    found = {
        Provider.objects.get(pk=entry.object_id).type: (entry.action, entry.actor, entry.changes)
        for entry in entries_since(mark)
    }
    assert found == {slug: (UPDATE, None, changes) for slug, changes in expected.items()}
    assert len(entries_since(mark)) == len(expected)
    assert_no_secret_in_the_audit(admin_client)


def test_rotation_records_no_reencryption_of_a_key_it_cannot_read(
    admin_client, admin_user, encryption_secrets
):
    encryption_secrets("lost-secret")
    lost = ProviderFactory(anthropic=True, api_key=LOST_KEY)
    encryption_secrets("old-secret")
    readable = ProviderFactory(openai=True, api_key=KEY)
    ciphertext = raw_column(lost, "api_key")
    mark = last_entry_pk()

    switch_secrets(encryption_secrets, admin_client, admin_user, "new-secret", ("old-secret",))
    assert rotate_keys() == 1

    assert recorded(mark, lost) == []
    assert recorded(mark, readable) == [(UPDATE, {"api_key": [SET, "(re-encrypted)"]})]
    assert_no_secret_in_the_audit(admin_client, ciphertext, "gAAAAA")


# --- 2. Model changes, access lists, the default, bulk actions ---------------------------------


def anthropic_model(**fields: object) -> LLMModel:
    values = {
        "provider": ProviderFactory(anthropic=True, api_key=KEY),
        "identifier": "claude-sonnet-4-6",
        "display_name": "Claude Sonnet 4.6",
        "context_limit": 1_000_000,
        **fields,
    }
    return LLMModelFactory(**values)


# fmt: off
MODEL_CHANGES = [  # (the model as stored, what the admin changes on its page, the changes)
    pytest.param({"compression_threshold": 70}, {"compression_threshold": "80"},
                 {"compression_threshold": [70, 80]}, id="compression threshold"),
    pytest.param({"provider_options": {"effort": "high"}}, {"anthropic__effort": "low"},
                 {"provider_options": [{"effort": "high"}, {"effort": "low"}]},
                 id="provider options"),
    pytest.param({"display_name": "Sonnet", "enabled": True},
                 {"display_name": "Sonnet 4.6", "enabled": None},
                 {"display_name": ["Sonnet", "Sonnet 4.6"], "enabled": [True, False]},
                 id="display name and enabled"),
    pytest.param({"max_output_tokens": None}, {"max_output_tokens": "64000"},
                 {"max_output_tokens": [None, 64000]}, id="a limit set"),
]
# fmt: on


@pytest.mark.parametrize(("stored", "posted", "changes"), MODEL_CHANGES)
def test_a_model_change_records_each_field_before_and_after(
    admin_client, admin_user, stored, posted, changes
):
    model = anthropic_model(**stored)
    data = model_form_as_stored(admin_client, model, **posted)
    mark = last_entry_pk()

    response = admin_client.post(model_change_url(model), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    (entry,) = entries_since(mark)
    model.refresh_from_db()
    assert (entry.action, entry.actor, entry.object_repr) == (UPDATE, admin_user, str(model))
    assert entry.changes == changes
    assert_no_secret_in_the_audit(admin_client)


def test_a_model_saved_unchanged_records_nothing(admin_client):
    model = anthropic_model(
        max_output_tokens=64_000,
        input_price="3",
        output_price="15",
        provider_options={"effort": "high"},
    )
    data = model_form_as_stored(admin_client, model)
    mark = last_entry_pk()

    response = admin_client.post(model_change_url(model), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert recorded(mark) == []


def test_creating_and_deleting_a_model_are_recorded_with_the_admin(admin_client, admin_user):
    provider = ProviderFactory(anthropic=True, api_key=KEY)
    mark = last_entry_pk()

    created = admin_client.post(
        MODEL_ADD,
        {
            "provider": provider.pk,
            "identifier": "claude-haiku-4-5",
            "display_name": "Haiku",
            "enabled": "on",
            "context_limit": "200000",
            "compression_threshold": "70",
        },
    )
    model = LLMModel.objects.get(identifier="claude-haiku-4-5")
    deleted = admin_client.post(
        reverse("admin:llmadmin_llmmodel_delete", args=[model.pk]), {"post": "yes"}
    )

    assert (created.status_code, deleted.status_code) == (302, 302)
    create, delete = entries_since(mark)
    assert (create.action, create.actor, create.object_repr) == (CREATE, admin_user, "Haiku")
    assert create.changes["identifier"] == [None, "claude-haiku-4-5"]
    assert create.changes["display_name"] == [None, "Haiku"]
    assert (delete.action, delete.actor, delete.object_repr) == (DELETE, admin_user, "Haiku")
    assert delete.changes["identifier"] == ["claude-haiku-4-5", None]
    assert {create.object_id, delete.object_id} == {model.pk}
    assert not LLMModel.objects.filter(pk=model.pk).exists()


def shown_changes(admin_client, entry: AuditEntry) -> list[tuple[str, str, str]]:
    """The entry's page's table of changes: (field, before, after) as the admin reads them."""
    page = admin_client.get(entry_url(entry)).text
    table = re.search(r'<table class="audit-changes">.*?</table>', page, re.S).group()
    return [
        tuple(html.unescape(cell) for cell in row)
        for row in re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", table)
    ]


def test_a_model_added_through_the_admin_reads_in_labels_and_names_in_one_entry(
    admin_client, admin_user
):
    provider = ProviderFactory(anthropic=True, api_key=KEY)
    research = Group.objects.create(name="Research")
    mark = last_entry_pk()

    response = admin_client.post(
        MODEL_ADD,
        {
            "provider": provider.pk,
            "identifier": "claude-haiku-4-5",
            "display_name": "Haiku",
            "enabled": "on",
            "is_default": "on",
            "context_limit": "200000",
            "compression_threshold": "70",
            "restricted": "on",
            "allowed_groups": [str(research.pk)],
        },
    )

    assert response.status_code == 302
    model = LLMModel.objects.get(identifier="claude-haiku-4-5")
    (entry,) = entries_since(mark)  # the group's addition is in the save's entry
    assert (entry.action, entry.actor, entry.object_id) == (CREATE, admin_user, model.pk)
    assert {"id", "price_history"}.isdisjoint(entry.changes)
    shown = shown_changes(admin_client, entry)
    for row in [
        ("Provider", "", "Anthropic"),
        ("Default", "", "Yes"),
        ("Only for the groups and users below", "", "Yes"),
        ("Groups", "", "Research"),
        ("Identifier", "", "claude-haiku-4-5"),
    ]:
        assert row in shown
    assert not [row for row in shown if "None" in row[1:] or row[0] in ("Id", "Price history")]
    listing = admin_client.get(AUDIT_LIST).text  # each entry's changed fields, by label
    assert "Only for the groups and users below" in listing
    assert "allowed_groups" not in listing


def test_a_group_budget_reads_with_the_groups_name_and_amounts_as_money(admin_client):
    research = Group.objects.create(name="Research")
    mark = last_entry_pk()

    budget = GroupBudget.objects.create(group=research, monthly_allowance="1250")
    model = LLMModelFactory(monthly_cap="12.5")
    model.monthly_cap = None
    model.save()

    (entry,) = entries_since(mark, budget)
    assert shown_changes(admin_client, entry) == [
        ("Group", "", "Research"),
        ("Monthly allowance per member", "", "$1,250.00"),
    ]
    capped, uncapped = entries_since(mark, model)
    assert ("Monthly cap per developer", "", "$12.50") in shown_changes(admin_client, capped)
    assert shown_changes(admin_client, uncapped) == [("Monthly cap per developer", "$12.50", "")]


def test_a_provider_change_reads_in_choice_labels_and_never_a_secret(admin_client):
    provider = iam_provider()
    mark = last_entry_pk()

    admin_client.post(
        provider_change_url(provider), provider_form_data(provider, remove_api_key="on")
    )

    (entry,) = entries_since(mark)
    shown = shown_changes(admin_client, entry)
    assert ("Authentication", "IAM access key", "API key") in shown
    assert ("AWS secret access key", SET, NONE) in shown
    rows = csv_rows(export_csv(admin_client, [entry]))
    assert json.loads(rows[0]["changes"])["Authentication"] == ["IAM access key", "API key"]
    assert_no_secret_in_the_audit(admin_client)


def m2m(operation: str, *names: str) -> dict:
    return {"type": "m2m", "operation": operation, "objects": list(names)}


# fmt: off
ACCESS_CHANGES = [  # (stored: restricted, groups, users; posted: the same; the save's one entry)
    pytest.param((False, [], []), (True, ["Research", "Sales"], ["alice"]),
                 {"restricted": [False, True], "allowed_groups": [[], ["Research", "Sales"]],
                  "allowed_users": [[], ["alice"]]},
                 id="restricted to two groups and a user"),
    pytest.param((True, ["Research", "Sales"], ["alice"]), (True, ["Sales"], []),
                 {"allowed_groups": [["Research", "Sales"], ["Sales"]],
                  "allowed_users": [["alice"], []]},
                 id="a group and a user removed"),
    pytest.param((True, ["Research"], []), (True, ["Sales"], ["alice"]),
                 {"allowed_groups": [["Research"], ["Sales"]], "allowed_users": [[], ["alice"]]},
                 id="a group swapped for another, a user added"),
    pytest.param((True, ["Research"], ["alice"]), (False, [], []),
                 {"restricted": [True, False], "allowed_groups": [["Research"], []],
                  "allowed_users": [["alice"], []]},
                 id="opened to everyone"),
]
# fmt: on


@pytest.mark.parametrize(("stored", "posted", "expected"), ACCESS_CHANGES)
def test_one_save_records_one_entry_with_the_access_lists_before_and_after_by_name(
    admin_client, admin_user, stored, posted, expected
):
    groups = {name: Group.objects.create(name=name) for name in ("Research", "Sales")}
    users = {"alice": User.objects.create_user("alice")}
    restricted, stored_groups, stored_users = stored
    model = anthropic_model(restricted=restricted)
    model.allowed_groups.set([groups[name] for name in stored_groups])
    model.allowed_users.set([users[name] for name in stored_users])
    restricted, posted_groups, posted_users = posted
    data = model_form_as_stored(
        admin_client,
        model,
        restricted="on" if restricted else None,
        allowed_groups=[str(groups[name].pk) for name in posted_groups],
        allowed_users=[str(users[name].pk) for name in posted_users],
    )
    mark = last_entry_pk()

    response = admin_client.post(model_change_url(model), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    (entry,) = entries_since(mark)
    assert (entry.action, entry.actor, entry.object_repr, entry.changes) == (
        UPDATE,
        admin_user,
        "Claude Sonnet 4.6",
        expected,
    )


# fmt: off
LISTED_AND_DELETED = [  # (what the model lists, the admin's delete page for it, the entry)
    pytest.param(lambda: Group.objects.create(name="Research"), "admin:auth_group_delete",
                 {"allowed_groups": m2m("delete", "Research")}, id="a group"),
    pytest.param(lambda: User.objects.create_user("alice"), "admin:auth_user_delete",
                 {"allowed_users": m2m("delete", "alice")}, id="a user"),
]
# fmt: on


@pytest.mark.parametrize(("listed", "delete_view", "changes"), LISTED_AND_DELETED)
def test_deleting_a_group_or_user_an_access_list_names_records_its_removal(
    admin_client, admin_user, listed, delete_view, changes
):
    named = listed()
    model = anthropic_model(restricted=True)
    field = next(iter(changes))
    getattr(model, field).add(named)
    mark = last_entry_pk()

    response = admin_client.post(reverse(delete_view, args=[named.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not getattr(model, field).exists()  # the model is restricted to nobody now
    assert [(entry.action, entry.actor, entry.changes) for entry in entries_since(mark, model)] == [
        (UPDATE, admin_user, changes)
    ]


def star(admin_client, model: LLMModel):
    return admin_client.post(reverse("admin:llmadmin_llmmodel_make_default", args=[model.pk]))


def tick_default(admin_client, model: LLMModel):
    return admin_client.post(
        model_change_url(model), model_form_as_stored(admin_client, model, is_default="on")
    )


@pytest.mark.parametrize(
    "make_default",
    [pytest.param(star, id="the star"), pytest.param(tick_default, id="the change form")],
)
def test_a_new_default_records_the_previous_defaults_automatic_unset(
    admin_client, admin_user, make_default
):
    old = anthropic_model(is_default=True, display_name="Old default")
    new = anthropic_model(identifier="claude-opus-4-6", display_name="New default")
    mark = last_entry_pk()

    response = make_default(admin_client, new)

    assert response.status_code == 302
    assert LLMModel.objects.get(is_default=True) == new
    old.refresh_from_db()
    assert not old.is_default
    assert [
        (entry.object_repr, entry.action, entry.actor, entry.changes)
        for entry in entries_since(mark)
    ] == [
        ("Old default", UPDATE, admin_user, {"is_default": [True, False]}),
        ("New default", UPDATE, admin_user, {"is_default": [False, True]}),
    ]


def test_the_first_default_records_no_unset(admin_client, admin_user):
    model = anthropic_model(display_name="First default")
    mark = last_entry_pk()

    star(admin_client, model)

    assert recorded(mark) == [(UPDATE, {"is_default": [False, True]})]


# fmt: off
BULK_ACTIONS = [  # (action, the models' (name, enabled, default), the names recorded, changes)
    pytest.param("disable_models",
                 [("On A", True, False), ("On B", True, False), ("Off C", False, False)],
                 ["On A", "On B"], {"enabled": [True, False]}, id="disable"),
    pytest.param("enable_models",
                 [("Off A", False, False), ("On B", True, False), ("Off C", False, False)],
                 ["Off A", "Off C"], {"enabled": [False, True]}, id="enable"),
    pytest.param("disable_models",
                 [("Default", True, True), ("On B", True, False)],
                 ["On B"], {"enabled": [True, False]},
                 id="disable: the default stays enabled, unrecorded"),
    pytest.param("enable_models", [("On A", True, False), ("On B", True, False)],
                 [], None, id="enable: all enabled already"),
]
# fmt: on


@pytest.mark.parametrize(("action", "models", "names", "changes"), BULK_ACTIONS)
def test_bulk_actions_record_one_entry_per_model_changed(
    admin_client, admin_user, action, models, names, changes
):
    provider = ProviderFactory(anthropic=True, api_key=KEY)
    selected = [
        LLMModelFactory(provider=provider, display_name=name, enabled=enabled, is_default=default)
        for name, enabled, default in models
    ]
    mark = last_entry_pk()

    response = admin_client.post(
        MODEL_LIST, {"action": action, "_selected_action": [model.pk for model in selected]}
    )

    assert response.status_code == 302
    found = sorted(entries_since(mark), key=lambda entry: entry.object_repr)
    assert [(entry.object_repr, entry.action, entry.actor, entry.changes) for entry in found] == [
        (name, UPDATE, admin_user, changes) for name in names
    ]
    enabled = dict(LLMModel.objects.values_list("display_name", "enabled"))
    assert all(enabled[name] == changes["enabled"][1] for name in names)


def connection_test_button(admin_client, provider: Provider) -> None:
    url = reverse("admin:llmadmin_provider_test_connection", args=[provider.pk])
    assert admin_client.post(url).status_code == 302


def connection_test_from_the_page(admin_client, provider: Provider) -> None:
    """The page's script posts the form as it is (nothing typed: the stored key is tested)."""
    url = reverse("admin:llmadmin_provider_test_connection", args=[provider.pk])
    answer = admin_client.post(
        url, provider_form_data(provider), headers={"accept": "application/json"}
    )
    assert answer.status_code == 200
    assert set(answer.json()) == {"level", "message", "last_test"}


def connection_test_action(admin_client, provider: Provider) -> None:
    response = admin_client.post(
        PROVIDER_LIST, {"action": "test_connection", "_selected_action": [provider.pk]}
    )
    assert response.status_code == 302


# fmt: off
CONNECTION_TESTS = [  # (how the admin tests, the fake's key, the status stored)
    pytest.param(connection_test_button, KEY, "verified", id="the button, verified"),
    pytest.param(connection_test_button, "sk-other", "rejected", id="the button, rejected"),
    pytest.param(connection_test_from_the_page, KEY, "verified", id="the page's script"),
    pytest.param(connection_test_action, KEY, "verified", id="the list action, verified"),
    pytest.param(connection_test_action, "sk-other", "rejected", id="the list action, rejected"),
]
# fmt: on


@pytest.mark.parametrize(("run", "known_key", "status"), CONNECTION_TESTS)
def test_connection_tests_record_nothing(admin_client, run, known_key, status):
    with serve(FakeProvider("openai", known_key)) as server:
        provider = ProviderFactory(openai=True, api_key=KEY, base_url=f"{server.url}/v1")
        mark = last_entry_pk()

        run(admin_client, provider)

    provider.refresh_from_db()
    assert provider.check_status == status  # the test ran and its outcome was stored
    assert recorded(mark) == []


# --- 3. Imports --------------------------------------------------------------------------------


@pytest.fixture
def configured():
    anthropic = ProviderFactory(anthropic=True, api_key=KEY)
    LLMModelFactory(
        provider=anthropic,
        identifier="claude-sonnet-4-6",
        display_name="Claude Sonnet 4.6",
        context_limit=1_000_000,
        is_default=True,
    )
    Group.objects.create(name="Research")
    return anthropic


def exported() -> dict:
    out = io.StringIO()
    call_command("export_config", stdout=out, stderr=io.StringIO())
    return yaml.safe_load(out.getvalue())


def import_data(tmp_path, data: dict, *args: str, name: str = "llm.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    out = io.StringIO()
    call_command("import_config", str(path), *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def with_a_new_default_model(data: dict) -> dict:
    """The export with a provider turned off and a new default model for the Research group."""
    anthropic = data["providers"][0]
    anthropic["enabled"] = False
    del anthropic["models"][0]["default"]
    anthropic["models"].append(
        {
            "identifier": "claude-haiku-4-5",
            "display_name": "Haiku",
            "context_limit": 200_000,
            "default": True,
            "access": {"groups": ["Research"], "users": []},
        }
    )
    return data


def test_an_import_records_each_change_under_one_import_correlation_id(configured, tmp_path):
    mark = last_entry_pk()

    out = import_data(tmp_path, with_a_new_default_model(exported()))

    assert "Applied 4 changes." in out
    found = entries_since(mark)
    assert [(entry.content_type.model, entry.object_repr, entry.action) for entry in found] == [
        ("provider", "Anthropic", UPDATE),
        ("llmmodel", "Claude Sonnet 4.6", UPDATE),
        ("llmmodel", "Haiku", CREATE),
        ("llmmodel", "Haiku", UPDATE),
    ]
    provider, unset, created, access = (entry.changes for entry in found)
    assert provider == {"enabled": [True, False]}
    assert unset == {"is_default": [True, False]}
    assert (created["identifier"], created["is_default"], created["restricted"]) == (
        [None, "claude-haiku-4-5"],
        [None, True],
        [None, True],
    )
    assert access == {"allowed_groups": m2m("add", "Research")}
    (cid,) = {entry.cid for entry in found}
    assert cid.startswith("import-")
    assert {entry.actor for entry in found} == {None}


# fmt: off
IMPORT_TIMES = [  # (the first import's time, the second's)
    pytest.param(datetime(2026, 11, 26, 8, 30, 0, tzinfo=UTC),
                 datetime(2026, 11, 26, 8, 31, 0, tzinfo=UTC), id="a minute apart"),
    # A deployment script importing two files runs them well within one second.
    pytest.param(datetime(2026, 11, 26, 8, 30, 0, 100_000, tzinfo=UTC),
                 datetime(2026, 11, 26, 8, 30, 0, 600_000, tzinfo=UTC), id="in the same second"),
]
# fmt: on


@pytest.mark.parametrize(("first_at", "second_at"), IMPORT_TIMES)
def test_two_imports_record_distinct_correlation_ids(
    configured, tmp_path, monkeypatch, first_at, second_at
):
    data = exported()
    first = last_entry_pk()
    monkeypatch.setattr(timezone, "now", lambda: first_at)
    data["providers"][0]["enabled"] = False
    import_data(tmp_path, data, name="first.yaml")
    second = last_entry_pk()
    monkeypatch.setattr(timezone, "now", lambda: second_at)
    data["providers"][0]["enabled"] = True
    import_data(tmp_path, data, name="second.yaml")

    first_cids = {entry.cid for entry in entries_since(first) if entry.pk <= second}
    second_cids = {entry.cid for entry in entries_since(second)}

    assert second > first
    assert last_entry_pk() > second
    assert len(first_cids) == len(second_cids) == 1
    assert first_cids != second_cids, "the two imports' changes read as one import"


def test_a_dry_run_records_nothing(configured, tmp_path):
    mark = last_entry_pk()

    out = import_data(tmp_path, with_a_new_default_model(exported()), "--dry-run")

    assert "Dry run: 4 changes, none applied." in out
    assert recorded(mark) == []


# --- 4. What is refused or rolled back leaves no audit row -------------------------------------


def refused_import(admin_client, tmp_path):
    """Valid changes first (saved in the import's transaction), then an unknown group."""
    data = with_a_new_default_model(exported())
    data["providers"].append(
        {
            "type": "openai",
            "models": [
                {
                    "identifier": "gpt-5",
                    "display_name": "GPT-5",
                    "context_limit": 400_000,
                    "access": {"groups": ["Nobody-has-this"]},
                }
            ],
        }
    )

    def refuse() -> None:
        with pytest.raises(CommandError, match="1 errors: nothing was applied"):
            import_data(tmp_path, data)

    return refuse


def refused_model_form(admin_client, tmp_path):
    model = LLMModel.objects.get(identifier="claude-sonnet-4-6")
    # Anthropic's API version takes no temperature; the new display name alone would do.
    data = model_form_as_stored(admin_client, model, display_name="Renamed", temperature="1.5")

    def refuse() -> None:
        response = admin_client.post(model_change_url(model), data)
        assert response.status_code == 200
        assert list(response.context["adminform"].form.errors) == ["temperature"]

    return refuse


def refused_access_form(admin_client, tmp_path):
    model = LLMModel.objects.get(identifier="claude-sonnet-4-6")
    research = Group.objects.get(name="Research")
    data = model_form_as_stored(
        admin_client, model, display_name="Renamed", allowed_groups=[str(research.pk)]
    )

    def refuse() -> None:
        response = admin_client.post(model_change_url(model), data)
        assert response.status_code == 200
        assert list(response.context["adminform"].form.errors) == ["restricted"]

    return refuse


def refused_provider_form(admin_client, tmp_path):
    provider = Provider.objects.get(type="anthropic")
    data = provider_form_data(provider, api_key=NEW_KEY, base_url="ftp://not-http", enabled="")

    def refuse() -> None:
        response = admin_client.post(provider_change_url(provider), data)
        assert response.status_code == 200
        assert list(response.context["adminform"].form.errors) == ["base_url"]

    return refuse


def refused_default(admin_client, tmp_path):
    """The star on a disabled model: refused, the old default kept."""
    disabled = LLMModelFactory(
        provider=Provider.objects.get(type="anthropic"), display_name="Off", enabled=False
    )

    def refuse() -> None:
        response = admin_client.post(
            reverse("admin:llmadmin_llmmodel_make_default", args=[disabled.pk]), follow=True
        )
        assert "A disabled model can&#x27;t be the default" in response.text

    return refuse


@pytest.mark.parametrize(
    "arrange",
    [
        pytest.param(refused_model_form, id="a model form refused"),
        pytest.param(refused_access_form, id="an access list without restricted"),
        pytest.param(refused_provider_form, id="a provider form refused, a key typed"),
        pytest.param(refused_default, id="a disabled model made the default"),
        pytest.param(refused_import, id="an import refused after applying changes"),
    ],
)
def test_a_change_that_is_refused_or_rolled_back_records_nothing(
    admin_client, configured, tmp_path, arrange
):
    refuse = arrange(admin_client, tmp_path)
    stored = (
        list(LLMModel.objects.order_by("pk").values()),
        list(Provider.objects.order_by("pk").values("pk", "base_url", "enabled", "api_key")),
    )
    mark = last_entry_pk()

    refuse()

    assert recorded(mark) == []
    assert (
        list(LLMModel.objects.order_by("pk").values()),
        list(Provider.objects.order_by("pk").values("pk", "base_url", "enabled", "api_key")),
    ) == stored


# --- 5. The audit in the admin -----------------------------------------------------------------


@pytest.fixture
def audited(admin_client):
    """A provider's key and endpoint set, a model changed, restricted to a group, and another
    deleted, all through the admin."""
    provider = ProviderFactory(openai=True, no_key=True)
    admin_client.post(
        provider_change_url(provider),
        provider_form_data(provider, api_key=KEY, base_url="http://proxy:4000/v1"),
    )
    kept = anthropic_model(display_name="Kept")
    admin_client.post(
        model_change_url(kept), model_form_as_stored(admin_client, kept, max_output_tokens="4096")
    )
    research = Group.objects.create(name="Research")
    admin_client.post(
        model_change_url(kept),
        model_form_as_stored(
            admin_client, kept, restricted="on", allowed_groups=[str(research.pk)]
        ),
    )
    gone = anthropic_model(identifier="claude-haiku-4-5", display_name="Gone")
    admin_client.post(reverse("admin:llmadmin_llmmodel_delete", args=[gone.pk]), {"post": "yes"})
    return provider


def listed(response) -> list[tuple[str, int]]:
    return [(entry.object_repr, entry.action) for entry in response.context["cl"].result_list]


def test_a_superuser_views_the_audit_list_and_each_entry(admin_client, audited):
    response = admin_client.get(AUDIT_LIST)

    assert response.status_code == 200
    shown = listed(response)
    assert ("OpenAI", UPDATE) in shown
    assert ("Kept", UPDATE) in shown
    assert ("Gone", DELETE) in shown
    for entry in AuditEntry.objects.all():
        page = admin_client.get(entry_url(entry))
        assert page.status_code == 200
        assert entry.object_repr in page.text
    limit = AuditEntry.objects.get(object_repr="Kept", changes__has_key="max_output_tokens")
    page = admin_client.get(entry_url(limit)).text
    assert "<td>Max output tokens</td><td></td><td>4096</td>" in page
    access = AuditEntry.objects.get(object_repr="Kept", changes__has_key="allowed_groups")
    page = admin_client.get(entry_url(access)).text
    assert "<td>Groups</td><td></td><td>Research</td>" in page


# fmt: off
FILTERS = [  # (query parameters, what each listed entry must be)
    pytest.param(lambda: {"action__exact": str(DELETE)},
                 lambda entry: entry.action == DELETE, id="by action: deletes"),
    pytest.param(lambda: {"action__exact": str(UPDATE)},
                 lambda entry: entry.action == UPDATE, id="by action: updates"),
    pytest.param(lambda: {"resource_type": str(ContentType.objects.get_for_model(Provider).pk)},
                 lambda entry: entry.content_type.model == "provider",
                 id="by resource type: providers"),
    pytest.param(lambda: {"resource_type": str(ContentType.objects.get_for_model(LLMModel).pk)},
                 lambda entry: entry.content_type.model == "llmmodel",
                 id="by resource type: models"),
]
# fmt: on


@pytest.mark.parametrize(("query", "belongs"), FILTERS)
def test_the_audit_list_filters_by_action_and_resource_type(admin_client, audited, query, belongs):
    response = admin_client.get(AUDIT_LIST, query())

    assert response.status_code == 200
    shown = list(response.context["cl"].result_list)
    expected = [entry for entry in AuditEntry.objects.all() if belongs(entry)]
    assert shown
    assert sorted(entry.pk for entry in shown) == sorted(entry.pk for entry in expected)
    assert len(shown) < AuditEntry.objects.count()


def test_the_audit_list_filters_one_imports_changes(admin_client, configured, tmp_path):
    admin_client.post(provider_change_url(configured), provider_form_data(configured, enabled=""))
    mark = last_entry_pk()
    import_data(tmp_path, with_a_new_default_model(exported()))
    (cid,) = {entry.cid for entry in entries_since(mark)}

    response = admin_client.get(AUDIT_LIST, {"cid": cid})

    assert sorted(entry.pk for entry in response.context["cl"].result_list) == [
        entry.pk for entry in entries_since(mark)
    ]


def test_an_imports_correlation_id_in_the_list_links_to_that_imports_changes(
    admin_client, configured, tmp_path
):
    admin_client.post(provider_change_url(configured), provider_form_data(configured, enabled=""))
    mark = last_entry_pk()
    import_data(tmp_path, with_a_new_default_model(exported()))
    imported = [entry.pk for entry in entries_since(mark)]
    listing = admin_client.get(AUDIT_LIST).text
    links = {html.unescape(href) for href in re.findall(r'href="([^"]*[?&]cid=[^"]*)"', listing)}
    assert len(links) == 1, links
    # The browser sends the link's spaces as %20 and everything else as written.
    (link,) = links

    response = admin_client.get(link.replace(" ", "%20"))

    assert response.status_code == 200
    assert sorted(entry.pk for entry in response.context["cl"].result_list) == imported


def staff(*permissions: str) -> User:
    """A staff user with these permissions ("app_label.codename")."""
    user = User.objects.create_user("auditor", is_staff=True)
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def test_staff_without_the_audit_view_permission_get_403(client, audited):
    # Everything else an administrator may do, and Django's own admin log.
    client.force_login(
        staff(
            "llmadmin.view_llmmodel",
            "llmadmin.change_llmmodel",
            "llmadmin.view_provider",
            "llmadmin.change_provider",
            "admin.view_logentry",
        )
    )
    entry = AuditEntry.objects.first()

    assert client.get(AUDIT_LIST).status_code == 403
    assert client.get(entry_url(entry)).status_code == 403
    export = client.post(AUDIT_LIST, {"action": "export_csv", "_selected_action": [entry.pk]})
    assert export.status_code == 403


def test_staff_with_the_audit_view_permission_see_it(client, audited):
    client.force_login(staff("auditlog.view_logentry"))
    entry = AuditEntry.objects.first()

    assert client.get(AUDIT_LIST).status_code == 200
    assert client.get(entry_url(entry)).status_code == 200
    export = client.post(AUDIT_LIST, {"action": "export_csv", "_selected_action": [entry.pk]})
    assert len(csv_rows(export)) == 1


def csv_rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_the_csv_export_has_one_row_per_selected_entry(admin_client, admin_user, audited):
    provider_entry = AuditEntry.objects.get(object_repr="OpenAI")
    limit = AuditEntry.objects.get(object_repr="Kept", changes__has_key="max_output_tokens")
    deleted = AuditEntry.objects.get(object_repr="Gone", action=DELETE)
    not_selected = AuditEntry.objects.exclude(pk__in=[provider_entry.pk, limit.pk, deleted.pk])
    assert not_selected.exists()

    response = export_csv(admin_client, [provider_entry, limit, deleted])

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = csv_rows(response)
    assert [(row["actor"], row["action"], row["resource"], row["object"]) for row in rows] == [
        (admin_user.username, "update", "provider", "OpenAI"),
        (admin_user.username, "update", "llmmodel", "Kept"),
        (admin_user.username, "delete", "llmmodel", "Gone"),
    ]
    provider_changes, limit_changes, deleted_changes = (json.loads(row["changes"]) for row in rows)
    assert provider_changes == {"API key": [NONE, SET], "Base URL": ["", "http://proxy:4000/v1"]}
    assert limit_changes == {"Max output tokens": ["", "4096"]}
    assert deleted_changes["Display name"] == ["Gone", ""]
    assert [row["import"] for row in rows] == ["", "", ""]
    assert [row["time"] for row in rows] == [
        entry.timestamp.isoformat() for entry in (provider_entry, limit, deleted)
    ]
    assert KEY not in response.text


@pytest.mark.parametrize("budgets", [pytest.param(1, id="one"), pytest.param(6, id="six")])
def test_the_csv_export_reads_related_names_in_one_query_per_kind(
    admin_client, django_assert_num_queries, budgets
):
    for number in range(budgets):
        GroupBudget.objects.create(
            group=Group.objects.create(name=f"team-{number}"), monthly_allowance=5
        )
        UserBudget.objects.create(
            user=User.objects.create_user(f"dev-{number}"), monthly_allowance=5
        )
    entries = list(
        AuditEntry.objects.filter(
            content_type__in=ContentType.objects.get_for_models(GroupBudget, UserBudget).values()
        )
    )
    admin_client.get(AUDIT_LIST)  # the session and the content types, read once

    # The session with its user, the resource types' filter (twice), the selected entries
    # (counted twice, then read), then the groups and the users: one query each, however many.
    with django_assert_num_queries(8):
        rows = csv_rows(export_csv(admin_client, entries))

    names = {json.loads(row["changes"]).get("Group", ["", ""])[1] for row in rows}
    assert {f"team-{number}" for number in range(budgets)} <= names


def test_the_csv_export_names_an_imports_correlation_id(admin_client, configured, tmp_path):
    mark = last_entry_pk()
    import_data(tmp_path, with_a_new_default_model(exported()))
    imported = entries_since(mark)

    rows = csv_rows(export_csv(admin_client, imported))

    assert len(rows) == len(imported)
    assert {row["import"] for row in rows} == {imported[0].cid}
    assert imported[0].cid.startswith("import-")
    assert {row["actor"] for row in rows} == {""}


@pytest.mark.parametrize(
    "display_name",
    [
        pytest.param('=HYPERLINK("http://x","y")', id="equals"),
        pytest.param("+1+1", id="plus"),
        pytest.param("-2", id="minus"),
        pytest.param("@SUM(A1)", id="at"),
    ],
)
def test_the_csv_export_never_starts_a_cell_a_spreadsheet_would_run(admin_client, display_name):
    model = LLMModelFactory(display_name=display_name)
    model.display_name = "Plain"
    model.save()
    entries = list(AuditEntry.objects.get_for_object(model).order_by("pk"))

    rows = csv_rows(export_csv(admin_client, entries))

    assert rows[0]["object"] == f"'{display_name}"
    assert rows[-1]["object"] == "Plain"


def test_a_user_joining_or_leaving_a_group_is_recorded_without_their_password(admin_client):
    team = Group.objects.create(name="team")
    dev = User.objects.create_user("dev", password="the-password-1234")
    url = reverse("admin:auth_user_change", args=[dev.pk])
    form = {
        "username": "dev",
        "is_active": "on",
        "groups": [team.pk],
        "date_joined_0": "2026-11-26",
        "date_joined_1": "08:00:00",
        "initial-date_joined_0": "2026-11-26",
        "initial-date_joined_1": "08:00:00",
    }

    joined = admin_client.post(url, form)
    left = admin_client.post(url, {**form, "groups": []})

    assert joined.status_code == left.status_code == 302
    entries = [e.changes for e in AuditEntry.objects.get_for_object(dev).order_by("pk")]
    assert {"type": "m2m", "operation": "add", "objects": ["team"]} in [
        e.get("groups") for e in entries
    ]
    assert {"type": "m2m", "operation": "delete", "objects": ["team"]} in [
        e.get("groups") for e in entries
    ]
    everything = json.dumps([e for e in entries]) + "".join(
        str(e.object_repr) for e in AuditEntry.objects.all()
    )
    assert "password" not in everything
    assert dev.password not in everything


def test_group_limits_changed_in_the_admin_are_recorded_with_who_and_the_groups_name(
    admin_client, admin_user
):
    research = Group.objects.create(name="Research")
    mark = last_entry_pk()

    admin_client.post(
        reverse("admin:billing_grouplimits_add"), {"group": research.pk, "concurrent_turns": "3"}
    )
    limits = GroupLimits.objects.get()
    admin_client.post(
        reverse("admin:billing_grouplimits_change", args=[limits.pk]),
        {"group": research.pk, "concurrent_turns": "", "tokens_per_minute": "100000"},
    )
    admin_client.post(
        reverse("admin:billing_grouplimits_delete", args=[limits.pk]), {"post": "yes"}
    )

    added, changed, deleted = entries_since(mark, limits)
    assert [entry.action for entry in (added, changed, deleted)] == [CREATE, UPDATE, DELETE]
    assert {entry.actor for entry in (added, changed, deleted)} == {admin_user}
    assert shown_changes(admin_client, added) == [
        ("Group", "", "Research"),
        ("Concurrent turns per member", "", "3"),
    ]
    assert shown_changes(admin_client, changed) == [
        ("Concurrent turns per member", "3", ""),
        ("Tokens per minute per member", "", "100000"),
    ]


def test_a_developers_own_limits_set_on_their_page_are_recorded(admin_client, admin_user):
    dev = User.objects.create_user("dev")
    page = reverse("admin:billing_developerbudget_change", args=[dev.pk])
    inlines = {
        "budget-TOTAL_FORMS": "0",
        "budget-INITIAL_FORMS": "0",
        "limits-TOTAL_FORMS": "1",
        "limits-INITIAL_FORMS": "0",
        "limits-0-user": dev.pk,
    }
    mark = last_entry_pk()

    admin_client.post(page, {**inlines, "limits-0-requests_per_minute": "30"})
    limits = DeveloperLimits.objects.get()
    admin_client.post(
        page,
        {
            **inlines,
            "limits-INITIAL_FORMS": "1",
            "limits-0-id": limits.pk,
            "limits-0-requests_per_minute": "30",
            "limits-0-DELETE": "on",
        },
    )

    added, deleted = entries_since(mark, limits)
    assert (added.action, deleted.action, added.actor) == (CREATE, DELETE, admin_user)
    assert shown_changes(admin_client, added) == [
        ("User", "", "dev"),
        ("Requests per minute", "", "30"),
    ]


# --- 6. An account's backup keys ---------------------------------------------------------------


def backup_keys_posted(provider: Provider, *rows: dict, initial: int = 0, **fields) -> dict:
    """The provider's page as posted with these backup key rows (the first `initial` of them
    stored ones, by their id)."""
    data = provider_form_data(provider, **fields)
    data.update({"backup_keys-TOTAL_FORMS": len(rows), "backup_keys-INITIAL_FORMS": initial})
    for index, row in enumerate(rows):
        data.update({f"backup_keys-{index}-{name}": value for name, value in row.items()})
    return data


def test_a_backup_key_added_replaced_reordered_and_deleted_is_recorded_with_its_key_masked(
    admin_client, admin_user
):
    provider = ProviderFactory(openai=True, api_key=KEY)
    url = provider_change_url(provider)
    mark = last_entry_pk()

    admin_client.post(url, backup_keys_posted(provider, {"name": "Team A", "key": NEW_KEY}))
    key = provider.backup_keys.get()
    stored = {"id": key.pk, "name": "Team A", "position": "1"}
    admin_client.post(url, backup_keys_posted(provider, {**stored, "key": LOST_KEY}, initial=1))
    admin_client.post(url, backup_keys_posted(provider, {**stored, "position": "4"}, initial=1))
    moved = {**stored, "position": "4", "DELETE": "on"}
    admin_client.post(url, backup_keys_posted(provider, moved, initial=1))

    no_iam_key = {"aws_access_key_id": [NONE, NONE]}  # blank, masked as the account's
    assert recorded(mark, key) == [
        (CREATE, {"provider": [None, provider.pk], "position": [None, 1],
                  "name": [None, "Team A"], "api_key": [NONE, SET], **no_iam_key}),
        (UPDATE, {"api_key": [SET, SET]}),
        (UPDATE, {"position": [1, 4]}),
        (DELETE, {"provider": [provider.pk, None], "position": [4, None],
                  "name": ["Team A", None], "api_key": [SET, NONE], **no_iam_key}),
    ]  # fmt: skip
    assert {entry.actor for entry in entries_since(mark, key)} == {admin_user}
    added = entries_since(mark, key)[0]
    assert ("Provider", "", "OpenAI") in shown_changes(admin_client, added)
    assert_no_secret_in_the_audit(admin_client)


def test_try_again_is_recorded_with_the_cooldown_it_cleared(admin_client, admin_user):
    provider = ProviderFactory(openai=True, api_key=KEY)
    key = BackupKey.objects.create(provider=provider, name="Team A", api_key=NEW_KEY)
    until = timezone.now() + timedelta(minutes=5)
    BackupKey.objects.filter(pk=key.pk).update(cooling_until=until, cooling_reason="rate_limited")
    Provider.objects.filter(pk=provider.pk).update(cooling_reason="rejected")
    provider.refresh_from_db()
    row = {"id": key.pk, "name": "Team A", "position": "1", "try_again": "on"}
    mark = last_entry_pk()

    response = admin_client.post(
        provider_change_url(provider),
        backup_keys_posted(provider, row, initial=1, try_key_again="on"),
    )

    assert response.status_code == 302
    (tried,) = entries_since(mark, key)
    assert (tried.action, tried.actor) == (UPDATE, admin_user)
    cooled = f"Rate-limited until {timezone.localtime(until):%Y-%m-%d %H:%M:%S}"
    assert shown_changes(admin_client, tried) == [("Try again", cooled, "Cleared")]
    (own,) = entries_since(mark, provider)
    assert own.changes_dict == {"try again": ["Refused by the provider", "Cleared"]}
    assert_no_secret_in_the_audit(admin_client)
