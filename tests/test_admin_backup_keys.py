"""An account's backup keys on its admin page: added, replaced, kept, reordered, deleted and
tried again; each key's state; never a secret on a page; the provider list's key pools; two
admins on one page; the audit; the account's deletion taking its keys along."""

from __future__ import annotations

import re
import tracemalloc
from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from llmadmin.audit import latest_entry_pk
from llmadmin.forms import BACKUP_KEY_SECRETS
from llmadmin.key_pools import pool_of
from llmadmin.models import SECRET_FIELDS, BackupKey, KeyFault, Provider
from tests.admin_forms import form_as_shown
from tests.factories import BackupKeyFactory, ProviderFactory
from tests.providers.fakes import FakeProvider, serve

pytestmark = pytest.mark.django_db

OWN_KEY = "sk-OWNKEY-0001"
KEY_A = "sk-BACKUPSECRET-team-a-0001"
KEY_B = "sk-BACKUPSECRET-team-b-0002"
NEW_KEY = "sk-BACKUPSECRET-replaced-0003"
ACCESS_KEY_ID = "AKIAIOSFODNN7BACKUP1"
SECRET = "wJalrXUtnFEMI/K7MDENG/BACKUPSECRETKEY"
TOKEN = "IQoJb3JpZ2luX2VjBACKUPSECRET//TOKEN=="
MARKER = "BACKUPSECRET"
CHANGELIST = reverse("admin:llmadmin_provider_changelist")
PASTE_AGAIN = "Entered for another address or way of signing in: paste it again."


def change_url(provider: Provider) -> str:
    return reverse("admin:llmadmin_provider_change", args=[provider.pk])


def openai(**fields: object) -> Provider:
    return ProviderFactory(openai=True, api_key=OWN_KEY, **fields)


def page_as_posted(
    client, provider: Provider, rows: dict[int, dict] | None = None, new: tuple = (), **fields
) -> dict[str, object]:
    """The provider's page as the browser posts it back (see as_posted)."""
    return as_posted(client.get(change_url(provider)), rows, new, **fields)


def as_posted(
    page, rows: dict[int, dict] | None = None, new: tuple = (), **fields
) -> dict[str, object]:
    """A page shown as the browser posts it back: what it shows (no secret: its inputs
    render none), the backup keys' rows changed as `rows` says (by their place), the `new`
    rows added, the account's own fields as `fields` says."""
    form = page.context["adminform"].form
    data = form_as_shown(form, **{**{name: "" for name in SECRET_FIELDS}, **fields})
    formset = backup_keys_formset(page)
    data.update(
        {
            f"{formset.prefix}-TOTAL_FORMS": str(len(formset.forms) + len(new)),
            f"{formset.prefix}-INITIAL_FORMS": str(formset.initial_form_count()),
        }
    )
    for index, form in enumerate(formset.forms):
        shown = {
            name: "" if name in BACKUP_KEY_SECRETS else "on" if value is True else value
            for name in form.fields
            if (value := form[name].value()) not in (None, False)
        }
        shown.update((rows or {}).get(index, {}))
        data.update({f"{form.prefix}-{name}": value for name, value in shown.items()})
    for index, row in enumerate(new, start=len(formset.forms)):
        data.update({f"{formset.prefix}-{index}-{name}": value for name, value in row.items()})
    return {key: value for key, value in data.items() if value is not None}


def backup_keys_formset(page):
    inlines = page.context["inline_admin_formsets"]
    (formset,) = [inline.formset for inline in inlines if inline.formset.prefix == "backup_keys"]
    return formset


def save(client, provider: Provider, rows=None, new=(), **fields):
    return client.post(change_url(provider), page_as_posted(client, provider, rows, new, **fields))


def keys_of(provider: Provider) -> list[tuple[int, str]]:
    return list(provider.backup_keys.order_by("position").values_list("position", "name"))


def row_errors(response) -> list[dict[str, list[str]]]:
    return [form.errors for form in backup_keys_formset(response).forms]


def states(html: str) -> list[str]:
    """Each stored key's state, in the page's order."""
    found = re.findall(r'<td class="field-state">\s*<p>(.*?)</p>', html)
    return [state for state in found if state]  # a new row has none


# --- Adding, replacing, keeping ---------------------------------------------------------------


def test_a_new_backup_key_is_stored_encrypted_and_entered_for_the_accounts_address(
    admin_client,
):
    provider = openai()

    response = save(admin_client, provider, new=[{"name": "Team A", "key": KEY_A}])

    assert response.status_code == 302
    key = BackupKey.objects.get(provider=provider)
    assert (key.position, key.name, key.api_key, key.entered_for) == (
        1,
        "Team A",
        KEY_A,
        provider.address,
    )
    assert [pool_key.credentials for pool_key in pool_of(provider)] == [
        {"api_key": OWN_KEY},
        {"api_key": KEY_A},
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM llmadmin_backupkey")
        assert MARKER not in cursor.fetchone()[0]


def test_new_keys_without_an_order_go_after_the_others_in_the_order_added(admin_client):
    provider = openai()
    BackupKeyFactory(provider=provider, position=5, name="Old")

    save(
        admin_client,
        provider,
        new=[{"name": "Team A", "key": KEY_A}, {"name": "Team B", "key": KEY_B}],
    )

    assert keys_of(provider) == [(5, "Old"), (6, "Team A"), (7, "Team B")]


def test_a_new_backup_key_needs_its_key_and_keeps_what_was_typed(admin_client):
    provider = openai()

    response = save(admin_client, provider, new=[{"name": "Team A", "position": "3"}])

    assert response.status_code == 200
    assert row_errors(response) == [{"key": ["Enter the API key."]}]
    assert 'value="Team A"' in response.text and 'value="3"' in response.text
    assert not BackupKey.objects.exists()


def test_an_untouched_empty_row_adds_nothing(admin_client):
    provider = openai()

    response = save(admin_client, provider, new=[{"name": "", "key": ""}])

    assert response.status_code == 302
    assert not BackupKey.objects.exists()


def test_a_blank_key_keeps_the_stored_one_and_a_typed_one_replaces_it(admin_client):
    provider = openai()
    key = BackupKeyFactory(provider=provider, api_key=KEY_A, name="Team A")
    BackupKey.objects.filter(pk=key.pk).update(cooling_reason=KeyFault.REJECTED)

    kept = save(admin_client, provider, rows={0: {"name": "Team A (EU)"}})
    key.refresh_from_db()
    assert kept.status_code == 302
    assert (key.name, key.api_key, key.cooling_reason) == ("Team A (EU)", KEY_A, "rejected")

    replaced = save(admin_client, provider, rows={0: {"key": NEW_KEY}})
    key.refresh_from_db()
    assert replaced.status_code == 302
    # Pasted again: sent, and tried again.
    assert (key.api_key, key.cooling_reason, key.entered_for) == (NEW_KEY, "", provider.address)


IAM = {"auth": "aws_keys", "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE"}
# fmt: off
BAD_ROWS = [  # (the account's way of signing in, a row typed, the row's errors)
    pytest.param({}, {"key": f"{NEW_KEY} "},
                 {"key": ["The key starts or ends with a space or line break: paste the key "
                          "alone."]}, id="a key with a space"),
    pytest.param({}, {"key": f"sk-{MARKER}-" + "x" * 500},
                 {"key": ["Ensure this value has at most 500 characters (it has 516)."]},
                 id="a key too long"),
    pytest.param(IAM, {"access_key_id": "not-a-key-id", "secret_access_key": SECRET},
                 {"access_key_id": ["Enter an access key ID such as AKIA…."]},
                 id="an access key ID of another shape"),
    pytest.param({}, {"position": "-1"},
                 {"position": ["Ensure this value is greater than or equal to 0."]},
                 id="a negative order"),
    pytest.param({}, {"name": "Team\u202eA"},
                 {"name": ["Remove the text-direction control U+202E: it reorders the text."]},
                 id="a name hiding a direction control"),
]
# fmt: on


@pytest.mark.parametrize(("account", "typed", "errors"), BAD_ROWS)
def test_bad_input_in_a_row_is_refused_on_its_field_and_nothing_is_saved(
    admin_client, account, typed, errors
):
    provider = ProviderFactory(bedrock=True, api_key=OWN_KEY, aws_secret_access_key="s", **account)
    key = BackupKeyFactory(provider=provider, api_key=KEY_A, name="Team A", position=1)
    if account:
        BackupKey.objects.filter(pk=key.pk).update(aws_access_key_id="AKIAIOSFODNN7BACKUP9")

    response = save(admin_client, provider, rows={0: {"name": "Renamed", **typed}}, enabled="")

    assert response.status_code == 200
    assert row_errors(response)[0] == errors
    key.refresh_from_db()
    provider.refresh_from_db()
    assert (key.api_key, key.name, key.position, provider.enabled) == (KEY_A, "Team A", 1, True)
    if "name" not in errors:
        assert 'value="Renamed"' in response.text  # what was typed stays
    assert MARKER not in response.text


def test_a_key_typed_into_a_save_refused_elsewhere_is_kept_encrypted_for_the_next(admin_client):
    provider = openai()
    stored = BackupKeyFactory(provider=provider, api_key=KEY_A, name="Team A")

    refused = save(
        admin_client,
        provider,
        rows={0: {"key": NEW_KEY}},
        new=[{"name": "Team B", "key": KEY_B}],
        key_cooldown="0",
    )
    assert refused.status_code == 200
    assert MARKER not in refused.text
    assert refused.text.count('placeholder="Kept from your last try"') == 2
    assert MARKER not in str(dict(admin_client.session.items()))

    # The page posted again as shown (the secrets' inputs blank), the cooldown corrected.
    saved = admin_client.post(change_url(provider), as_posted(refused, key_cooldown="30"))
    assert saved.status_code == 302
    assert sorted(BackupKey.objects.values_list("name", "api_key")) == [
        ("Team A", NEW_KEY),
        ("Team B", KEY_B),
    ]
    stored.refresh_from_db()
    assert not [key for key, _ in admin_client.session.items() if "backup-secrets" in key]


def test_removing_a_new_row_after_a_refused_save_never_saves_its_key_into_another(admin_client):
    provider = openai()
    refused = save(
        admin_client,
        provider,
        new=[{"name": "", "key": KEY_A}, {"name": "", "key": KEY_B}],
        key_cooldown="0",
    )
    assert refused.status_code == 200
    # The admin removes the first new row (its "remove" link): Django's inline script
    # renumbers the rows after it, so the second is posted as the first.
    posted = as_posted(refused, key_cooldown="30")
    posted["backup_keys-TOTAL_FORMS"] = "1"
    posted = {
        name: value for name, value in posted.items() if not name.startswith("backup_keys-1-")
    }

    admin_client.post(change_url(provider), posted)

    assert KEY_A not in BackupKey.objects.values_list("api_key", flat=True)


def test_the_accounts_own_key_typed_into_a_save_a_backup_key_refused_is_kept(admin_client):
    provider = openai()
    own = "sk-own-key-replaced-0002"

    refused = save(admin_client, provider, new=[{"name": "Team A"}], api_key=own)
    assert row_errors(refused) == [{"key": ["Enter the API key."]}]
    assert own not in refused.text

    saved = admin_client.post(change_url(provider), as_posted(refused, rows={0: {"key": KEY_A}}))
    assert saved.status_code == 302
    provider.refresh_from_db()
    assert (provider.api_key, BackupKey.objects.get().api_key) == (own, KEY_A)


def test_a_post_without_the_backup_keys_rows_leaves_them_as_they_are(admin_client):
    """A script posting the account's fields alone (as before key pools) changes no key."""
    provider = openai()
    BackupKeyFactory(provider=provider, api_key=KEY_A, name="Team A", position=1)
    data = {
        name: value
        for name, value in page_as_posted(admin_client, provider, name="Renamed").items()
        if not name.startswith("backup_keys-") and name != "key_cooldown"
    }

    response = admin_client.post(change_url(provider), data)

    assert response.status_code == 302
    provider.refresh_from_db()
    assert (provider.name, provider.key_cooldown) == ("Renamed", 60)
    assert keys_of(provider) == [(1, "Team A")]


def test_a_crafted_count_of_stored_rows_costs_no_more_than_the_rows_posted(admin_client):
    """The page posts its one row and claims a million stored: only the rows the formset
    builds (its total, capped by Django) are read."""
    provider = openai()
    BackupKeyFactory(provider=provider, api_key=KEY_A, name="Team A", position=1)
    data = page_as_posted(admin_client, provider, name="Renamed")
    data["backup_keys-INITIAL_FORMS"] = "1000000"

    tracemalloc.start()
    try:
        response = admin_client.post(change_url(provider), data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert response.status_code == 302
    assert keys_of(provider) == [(1, "Team A")]
    # A row read for each claimed one kept a million entries: 240 MB here.
    assert peak < 20 * 1024 * 1024


# --- Order, deletion ----------------------------------------------------------------------------


def with_two_keys() -> Provider:
    """An OpenAI account with backup keys Team A (order 1) and Team B (order 2)."""
    provider = openai()
    BackupKeyFactory(provider=provider, position=1, name="Team A")
    BackupKeyFactory(provider=provider, position=2, name="Team B")
    return provider


def test_editing_the_order_numbers_reorders_the_keys_and_the_page_lists_them_sorted(
    admin_client,
):
    provider = with_two_keys()

    response = save(admin_client, provider, rows={0: {"position": "2"}, 1: {"position": "1"}})

    assert response.status_code == 302
    assert keys_of(provider) == [(1, "Team B"), (2, "Team A")]
    html = admin_client.get(change_url(provider)).text
    assert html.index('value="Team B"') < html.index('value="Team A"')
    assert [key.name for key in pool_of(provider)[1:]] == ["Team B", "Team A"]


def test_two_keys_given_one_order_are_refused_on_both(admin_client):
    provider = with_two_keys()

    response = save(admin_client, provider, rows={1: {"position": "1"}})

    assert response.status_code == 200
    message = "Another backup key has order 1: give each its own."
    assert row_errors(response) == [{"position": [message]}, {"position": [message]}]
    assert keys_of(provider) == [(1, "Team A"), (2, "Team B")]


def test_a_deleted_backup_key_is_gone(admin_client):
    provider = with_two_keys()

    response = save(admin_client, provider, rows={0: {"DELETE": "on"}})

    assert response.status_code == 302
    assert keys_of(provider) == [(2, "Team B")]


def test_a_new_key_after_the_highest_order_is_refused_or_numbered_within_range(admin_client):
    provider = openai()
    BackupKeyFactory(provider=provider, name="Last", position=32767, api_key=KEY_A)

    response = save(admin_client, provider, new=[{"name": "Team B", "key": KEY_B}])

    assert response.status_code in (200, 302)
    assert all(0 <= position <= 32767 for position, _ in keys_of(provider))
    # Whatever it stored, the page saves again as it shows it.
    assert save(admin_client, provider, name="OpenAI (main)").status_code == 302


# --- Two admins on one account's page -----------------------------------------------------------


def test_a_page_loaded_before_another_admins_key_change_does_not_revert_it(admin_client):
    provider = openai()
    BackupKeyFactory(provider=provider, name="Team A", position=1, api_key=KEY_A)
    # Admin 1 opens the page and unticks Enabled; admin 2 renames the key meanwhile.
    loaded = page_as_posted(admin_client, provider, enabled="")
    assert save(admin_client, provider, rows={0: {"name": "Team A (EU)"}}).status_code == 302

    admin_client.post(change_url(provider), loaded)

    # Saved over (refused as the account's own fields are) or not: the rename stays.
    assert keys_of(provider) == [(1, "Team A (EU)")]


def test_keys_added_from_two_pages_get_orders_of_their_own(admin_client):
    provider = openai()
    loaded = admin_client.get(change_url(provider))
    assert save(admin_client, provider, new=[{"name": "Team B", "key": KEY_B}]).status_code == 302

    admin_client.post(
        change_url(provider), as_posted(loaded, new=[{"name": "Team A", "key": KEY_A}])
    )

    orders = [position for position, _ in keys_of(provider)]
    assert len(set(orders)) == len(orders)
    renamed = save(admin_client, provider, name="OpenAI (main)")
    assert renamed.status_code == 302, row_errors(renamed)


def test_a_page_holding_a_key_deleted_meanwhile_says_why_it_is_refused(admin_client):
    provider = openai()
    BackupKeyFactory(provider=provider, name="Team A", position=1, api_key=KEY_A)
    loaded = page_as_posted(admin_client, provider, name="OpenAI (main)")
    BackupKey.objects.all().delete()  # another admin's save

    response = admin_client.post(change_url(provider), loaded)

    if response.status_code == 302:  # saved without the key deleted meanwhile
        assert not BackupKey.objects.exists()
        return
    errors = [
        message for row in row_errors(response) for found in row.values() for message in found
    ]
    assert [message for message in errors if escape(message) not in response.text] == []


# --- Deleting the account -----------------------------------------------------------------------


# A marker in each of the deleted account's keys.
DELETED_SECRET = "SECRETBACKUP"


def test_deleting_an_account_lists_its_backup_keys_by_name_and_deletes_them(admin_client):
    """An account's backup keys go with it: the deletion's confirmation page lists them by
    name, never by any part of a key, and deleting the account deletes them."""
    account = ProviderFactory(
        openai_compat=True, name="Internal vLLM", api_key=f"sk-{DELETED_SECRET}-0"
    )
    BackupKeyFactory(provider=account, position=1, name="Team A", api_key=f"sk-{DELETED_SECRET}-1")
    BackupKeyFactory(provider=account, position=2, api_key=f"sk-{DELETED_SECRET}-2")
    kept = BackupKeyFactory(provider=ProviderFactory(openai_compat=True, name="LiteLLM"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM llmadmin_backupkey")
        ciphertexts = [ciphertext for (ciphertext,) in cursor.fetchall()]
    url = reverse("admin:llmadmin_provider_delete", args=[account.pk])

    page = admin_client.get(url)
    response = admin_client.post(url, {"post": "yes"})

    assert page.status_code == 200
    listed = [re.sub(r"\s+", " ", item) for item in re.findall(r"<li>([^<]*)", page.text)]
    assert "Backup keys: 2" in listed
    assert {"Backup key: Team A", "Backup key: Backup key 2"} <= set(listed)
    assert DELETED_SECRET not in page.text
    assert not any(ciphertext[:24] in page.text for ciphertext in ciphertexts)
    assert response.status_code == 302
    assert list(BackupKey.objects.all()) == [kept]
    audit = repr(list(LogEntry.objects.values()))
    assert DELETED_SECRET not in audit and "gAAAAA" not in audit


# --- State, Try again ---------------------------------------------------------------------------


def test_each_key_says_whether_it_is_tried_and_when_a_cooling_one_comes_back(admin_client):
    provider = openai()
    ready = BackupKeyFactory(provider=provider, name="Ready")
    cooling = BackupKeyFactory(provider=provider, name="Cooling")
    refused = BackupKeyFactory(provider=provider, name="Refused")
    unreadable = BackupKeyFactory(provider=provider, name="Unreadable")
    until = timezone.now() + timedelta(minutes=5)
    used = timezone.now() - timedelta(hours=1)
    BackupKey.objects.filter(pk=ready.pk).update(last_used_at=used)
    BackupKey.objects.filter(pk=cooling.pk).update(
        cooling_until=until, cooling_reason=KeyFault.RATE_LIMITED
    )
    BackupKey.objects.filter(pk=refused.pk).update(cooling_reason=KeyFault.REJECTED)
    BackupKey.objects.filter(pk=unreadable.pk).update(encrypted_with="0123456789abcdef")

    html = admin_client.get(change_url(provider)).text

    assert states(html)[:4] == [
        f"Ready; last used {timezone.localtime(used):%Y-%m-%d %H:%M}.",
        f"Cooling down (rate-limited) until {timezone.localtime(until):%Y-%m-%d %H:%M:%S}.",
        "Refused by the provider: left out until you paste it again or tick Try again.",
        "Unreadable with the server&#x27;s encryption keys: paste it again.",
    ]


def test_a_refused_save_shows_each_keys_state_as_stored(admin_client):
    provider = ProviderFactory(openai_compat=True, api_key=OWN_KEY)
    BackupKeyFactory(provider=provider, name="Team A", api_key=KEY_A)

    refused = save(
        admin_client,
        provider,
        base_url="http://litellm-eu:4000/v1",
        api_key=OWN_KEY,
        key_cooldown="0",
    )

    assert refused.status_code == 200
    assert Provider.objects.get(pk=provider.pk).base_url == "http://litellm:4000/v1"
    assert states(refused.text) == ["Ready; not used yet."]


@pytest.mark.parametrize(
    ("reason", "until"),
    [
        pytest.param(KeyFault.RATE_LIMITED, timedelta(minutes=5), id="rate-limited"),
        pytest.param(KeyFault.REJECTED, None, id="refused"),
    ],
)
def test_try_again_clears_a_keys_cooldown(admin_client, reason, until):
    provider = openai()
    key = BackupKeyFactory(provider=provider, name="Team A", api_key=KEY_A)
    BackupKey.objects.filter(pk=key.pk).update(
        cooling_reason=reason, cooling_until=until and timezone.now() + until
    )

    response = save(admin_client, provider, rows={0: {"try_again": "on"}})

    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.cooling_reason, key.cooling_until, key.api_key) == ("", None, KEY_A)
    assert states(admin_client.get(change_url(provider)).text) == ["Ready; not used yet."]


def test_an_address_change_leaves_old_keys_to_paste_again_and_takes_one_pasted_beside_it(
    admin_client,
):
    provider = ProviderFactory(openai_compat=True, api_key=OWN_KEY)
    BackupKeyFactory(provider=provider, position=1, name="Team A", api_key=KEY_A)
    BackupKeyFactory(provider=provider, position=2, name="Team B", api_key=KEY_B)
    moved = "http://litellm-eu:4000/v1"

    response = save(
        admin_client, provider, rows={1: {"key": KEY_B}}, base_url=moved, api_key=OWN_KEY
    )

    assert response.status_code == 302
    provider.refresh_from_db()
    html = admin_client.get(change_url(provider)).text
    assert states(html) == [PASTE_AGAIN.replace("'", "&#x27;"), "Ready; not used yet."]
    assert [key.credentials for key in pool_of(provider)] == [
        {"api_key": OWN_KEY},
        {"api_key": KEY_B},
    ]


def test_a_backup_key_typed_while_the_way_of_signing_in_changes_is_refused(admin_client):
    provider = ProviderFactory(bedrock=True, api_key=OWN_KEY)
    BackupKeyFactory(provider=provider, name="Team A", api_key=KEY_A)

    response = save(
        admin_client,
        provider,
        rows={0: {"key": NEW_KEY}},
        auth="aws_keys",
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET,
    )

    assert response.status_code == 200
    assert row_errors(response)[0] == {
        "key": [
            "The account's way of signing in changes with this save: save that first, then "
            "paste its backup keys."
        ]
    }
    assert Provider.objects.get(pk=provider.pk).auth == "api_key"


def test_iam_backup_keys_take_an_access_key_its_secret_and_a_session_token(admin_client):
    provider = ProviderFactory(
        bedrock=True,
        api_key=None,
        auth="aws_keys",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="own/secret",
    )
    new = {"access_key_id": ACCESS_KEY_ID, "secret_access_key": SECRET}

    added = save(admin_client, provider, new=[{**new, "session_token": TOKEN}])
    key = BackupKey.objects.get()
    assert added.status_code == 302
    assert (key.aws_access_key_id, key.aws_secret_access_key, key.aws_session_token) == (
        ACCESS_KEY_ID,
        SECRET,
        TOKEN,
    )
    assert pool_of(provider)[1].credentials == {
        "aws_access_key_id": ACCESS_KEY_ID,
        "aws_secret_access_key": SECRET,
        "aws_session_token": TOKEN,
    }

    # Another access key ID without its secret is refused; with it, the old token goes.
    refused = save(admin_client, provider, rows={0: {"access_key_id": "AKIAOTHERKEY00000001"}})
    assert row_errors(refused)[0] == {
        "secret_access_key": ["Enter the secret access key that goes with this access key ID."]
    }
    save(
        admin_client,
        provider,
        rows={0: {"access_key_id": "AKIAOTHERKEY00000001", "secret_access_key": "s/2"}},
    )
    key.refresh_from_db()
    assert (key.aws_access_key_id, key.aws_secret_access_key, key.aws_session_token) == (
        "AKIAOTHERKEY00000001",
        "s/2",
        None,
    )
    html = admin_client.get(change_url(provider)).text
    assert 'name="backup_keys-0-key"' not in html
    assert MARKER not in html and "s/2" not in html


def test_an_account_on_the_servers_aws_credentials_says_backup_keys_dont_apply(admin_client):
    provider = ProviderFactory(bedrock=True, api_key=None, auth="default_chain")

    html = admin_client.get(change_url(provider)).text
    assert "Backup keys don't apply" in html
    assert 'id="backup_keys-group"' not in html

    BackupKeyFactory(provider=provider, name="Left from before", api_key=KEY_A)
    html = admin_client.get(change_url(provider)).text
    assert states(html) == [
        "Not used: the account signs in with the server&#x27;s own AWS credentials."
    ]
    assert 'name="backup_keys-0-key"' not in html
    assert "Add another" not in html.split('id="backup_keys-group"')[1].split("data-inline")[0]


# --- The account's own key ----------------------------------------------------------------------


def test_key_1_shows_its_state_beside_backup_keys_and_try_again_clears_it(admin_client):
    provider = openai()
    assert "field-own_key_use" not in admin_client.get(change_url(provider)).text
    BackupKeyFactory(provider=provider)
    until = timezone.now() + timedelta(minutes=2)
    Provider.objects.filter(pk=provider.pk).update(
        cooling_until=until, cooling_reason=KeyFault.FAILED
    )

    html = admin_client.get(change_url(provider)).text
    assert (
        f"Cooling down (the provider failed) until {timezone.localtime(until):%Y-%m-%d %H:%M:%S}"
        in html
    )
    response = save(admin_client, provider, try_key_again="on")

    assert response.status_code == 302
    provider.refresh_from_db()
    assert (provider.cooling_reason, provider.cooling_until) == ("", None)
    assert provider.api_key == OWN_KEY
    html = admin_client.get(change_url(provider)).text
    assert "Ready; not used yet." in html and 'name="try_key_again"' not in html


@pytest.mark.parametrize(
    ("posted", "error"),
    [
        ("0", "Ensure this value is greater than or equal to 1."),
        ("86401", "Ensure this value is less than or equal to 86400."),
        ("", "This field is required."),
    ],
)
def test_the_key_cooldown_is_saved_within_its_bounds(admin_client, posted, error):
    provider = openai()

    refused = save(admin_client, provider, key_cooldown=posted)
    saved = save(admin_client, provider, key_cooldown="300")

    assert refused.context["adminform"].form.errors == {"key_cooldown": [error]}
    assert saved.status_code == 302
    provider.refresh_from_db()
    assert provider.key_cooldown == 300


def test_a_passing_connection_test_clears_the_accounts_own_key_cooldown(admin_client):
    with serve(FakeProvider("openai", OWN_KEY)) as server:
        provider = openai(base_url=f"{server.url}/v1")
        Provider.objects.filter(pk=provider.pk).update(cooling_reason=KeyFault.REJECTED)
        url = reverse("admin:llmadmin_provider_test_connection", args=[provider.pk])

        admin_client.post(url, page_as_posted(admin_client, provider))

    provider.refresh_from_db()
    assert (provider.check_status, provider.cooling_reason) == ("verified", "")


# --- The audit ----------------------------------------------------------------------------------


def audit_entries(mark: int, key: BackupKey) -> list[LogEntry]:
    content_type = ContentType.objects.get_for_model(key)
    found = LogEntry.objects.filter(pk__gt=mark, content_type=content_type, object_id=key.pk)
    return list(found.order_by("pk"))


@pytest.mark.parametrize("why", ["moved", "refused"])
def test_a_key_pasted_again_with_its_value_is_audited(admin_client, why):
    provider = ProviderFactory(openai_compat=True, api_key=OWN_KEY)
    key = BackupKeyFactory(provider=provider, name="Team A", api_key=KEY_A)
    account: dict[str, str] = {}
    if why == "moved":
        account = {"base_url": "http://litellm-eu:4000/v1", "api_key": OWN_KEY}
    else:
        BackupKey.objects.filter(pk=key.pk).update(cooling_reason=KeyFault.REJECTED)
    mark = latest_entry_pk()

    response = save(admin_client, provider, rows={0: {"key": KEY_A}}, **account)

    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.entered_for, key.cooling_reason) == (
        Provider.objects.get(pk=provider.pk).address,
        "",
    )
    entries = audit_entries(mark, key)
    assert entries, "the key sent anew, and nothing recorded"
    assert not any(MARKER in str(entry.changes) for entry in entries)


# --- Who sees what ------------------------------------------------------------------------------


def stored_everywhere(provider: Provider) -> list[str]:
    """The secrets of the account's backup keys, in plaintext and as stored."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key, aws_secret_access_key, aws_session_token FROM llmadmin_backupkey"
        )
        ciphertexts = [value for row in cursor.fetchall() for value in row if value]
    return [KEY_A, KEY_B, SECRET, TOKEN, MARKER, *ciphertexts]


def test_no_secret_of_a_backup_key_is_in_the_page(admin_client):
    provider = openai()
    BackupKeyFactory(provider=provider, api_key=KEY_A, name="Team A")
    BackupKeyFactory(provider=provider, api_key=KEY_B, name="Team B")

    html = admin_client.get(change_url(provider)).text

    for secret in stored_everywhere(provider):
        assert secret not in html
    inputs = re.findall(r'<input[^>]*name="backup_keys-\d-key"[^>]*>', html)
    assert len(inputs) == 2
    assert all('type="password"' in tag and "value=" not in tag for tag in inputs)


def viewer(client, *codenames: str) -> User:
    staff = User.objects.create_user("viewer", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(staff)
    return staff


def test_view_only_staff_see_the_keys_order_names_and_states_and_no_secret(client):
    provider = openai()
    BackupKeyFactory(provider=provider, api_key=KEY_A, name="Team A")
    key = BackupKeyFactory(provider=provider, api_key=KEY_B, name="Team B")
    BackupKey.objects.filter(pk=key.pk).update(cooling_reason=KeyFault.REJECTED)
    viewer(client, "view_provider", "view_backupkey", "change_backupkey")
    secrets = stored_everywhere(provider)

    html = client.get(change_url(provider)).text
    listed = client.get(CHANGELIST).text

    assert "Team A" in html and "Team B" in html
    assert "Refused by the provider" in html
    assert "2 backup keys · 1 cooling" in listed
    for secret in secrets:
        assert secret not in html + listed
    # Of each row, only what ties it to its key and account; nothing to type into.
    assert set(re.findall(r'name="backup_keys-\d+-(\w+)"', html)) == {"id", "provider"}
    posted = {"backup_keys-TOTAL_FORMS": "1", "backup_keys-INITIAL_FORMS": "1"}
    assert client.post(change_url(provider), posted).status_code == 403
    assert list(BackupKey.objects.values_list("api_key", flat=True)) == [KEY_A, KEY_B]


def test_staff_who_may_change_the_account_may_change_its_backup_keys(client):
    """The account's permissions are its keys': no permission of the backup key model."""
    provider = openai()
    viewer(client, "view_provider", "change_provider")

    response = save(client, provider, new=[{"name": "Team A", "key": KEY_A}])

    assert response.status_code == 302
    assert BackupKey.objects.get().api_key == KEY_A


def test_staff_without_permission_on_providers_learn_nothing_of_backup_keys(client):
    provider = openai()
    BackupKeyFactory(provider=provider, api_key=KEY_A, name="Team A")
    viewer(client, "view_backupkey", "change_backupkey", "add_backupkey", "delete_backupkey")

    assert client.get(change_url(provider)).status_code == 403
    assert client.get(CHANGELIST).status_code == 403
    assert "Team A" not in client.get(reverse("admin:index")).text
    assert client.get("/admin/llmadmin/backupkey/").status_code == 404


@pytest.mark.parametrize(
    "lookup",
    [
        "backup_keys__api_key__regex",
        "backup_keys__aws_secret_access_key__startswith",
        "backup_keys__name__contains",
    ],
)
def test_no_filter_reads_a_backup_keys_column(admin_client, lookup):
    BackupKeyFactory(provider=openai(), api_key=KEY_A)

    assert admin_client.get(CHANGELIST, {lookup: "sk"}).status_code == 400


# --- The provider list --------------------------------------------------------------------------


def list_row(html: str, label: str) -> str:
    return html.split(f">{label}</a>", 1)[1].split("</tr>", 1)[0]


def test_the_list_shows_each_accounts_key_pool(admin_client):
    pooled = openai()
    moved = ProviderFactory(openai_compat=True, api_key=OWN_KEY)
    BackupKeyFactory(provider=pooled)
    cooling = BackupKeyFactory(provider=pooled)
    BackupKey.objects.filter(pk=cooling.pk).update(
        cooling_until=timezone.now() + timedelta(minutes=1), cooling_reason="rate_limited"
    )
    Provider.objects.filter(pk=pooled.pk).update(cooling_reason=KeyFault.REJECTED)
    BackupKeyFactory(provider=moved)
    Provider.objects.filter(pk=moved.pk).update(base_url="http://elsewhere:4000/v1")

    html = admin_client.get(CHANGELIST).text

    assert "2 backup keys · 2 cooling" in list_row(html, "OpenAI")
    assert "1 backup key · 1 to paste again" in list_row(html, "OpenAI Compatible")
    assert "backup key" not in list_row(html, "Anthropic")


@pytest.mark.parametrize("pooled", [0, 6], ids=["no key pools", "six accounts with keys"])
def test_the_list_runs_the_same_queries_however_many_keys(
    admin_client, django_assert_num_queries, pooled
):
    for number in range(pooled):
        account = ProviderFactory(openai_compat=True, name=f"vLLM {number}", base_url="http://v/1")
        for _ in range(3):
            BackupKeyFactory(provider=account)

    # the session with its user, count, total count, the page's accounts (with their models
    # and keys)
    with django_assert_num_queries(4):
        admin_client.get(CHANGELIST)


def test_the_list_says_every_key_is_to_paste_again_when_none_is_for_the_address(admin_client):
    provider = ProviderFactory(openai_compat=True, api_key=OWN_KEY)
    BackupKeyFactory(provider=provider, name="Team A")  # for http://litellm:4000/v1
    Provider.objects.filter(pk=provider.pk).update(base_url="http://litellm-eu:4000/v1")
    BackupKeyFactory(provider=Provider.objects.get(pk=provider.pk), name="Team B")
    Provider.objects.filter(pk=provider.pk).update(base_url="http://litellm-us:4000/v1")

    html = admin_client.get(CHANGELIST).text

    assert "2 backup keys · 2 to paste again" in list_row(html, "OpenAI Compatible")
