"""A hostile review of the backup keys' admin (issue 30 part 1): each test shows a defect
found, and fails until it is fixed (xfail, strict)."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.utils.html import escape

from llmadmin.audit import latest_entry_pk
from llmadmin.models import BackupKey, KeyFault, Provider
from tests.factories import BackupKeyFactory, ProviderFactory
from tests.test_admin_backup_keys import (
    CHANGELIST,
    KEY_A,
    KEY_B,
    MARKER,
    OWN_KEY,
    as_posted,
    change_url,
    keys_of,
    list_row,
    openai,
    page_as_posted,
    row_errors,
    save,
    states,
)

pytestmark = pytest.mark.django_db


def audit_entries(mark: int, key: BackupKey) -> list[LogEntry]:
    content_type = ContentType.objects.get_for_model(key)
    found = LogEntry.objects.filter(pk__gt=mark, content_type=content_type, object_id=key.pk)
    return list(found.order_by("pk"))


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


# --- Bad input -----------------------------------------------------------------------------------


def test_a_new_key_after_the_highest_order_is_refused_or_numbered_within_range(admin_client):
    provider = openai()
    BackupKeyFactory(provider=provider, name="Last", position=32767, api_key=KEY_A)

    response = save(admin_client, provider, new=[{"name": "Team B", "key": KEY_B}])

    assert response.status_code in (200, 302)
    assert all(0 <= position <= 32767 for position, _ in keys_of(provider))
    # Whatever it stored, the page saves again as it shows it.
    assert save(admin_client, provider, name="OpenAI (main)").status_code == 302


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


# --- The audit -----------------------------------------------------------------------------------


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


# --- What the pages say --------------------------------------------------------------------------


def test_the_list_says_every_key_is_to_paste_again_when_none_is_for_the_address(admin_client):
    provider = ProviderFactory(openai_compat=True, api_key=OWN_KEY)
    BackupKeyFactory(provider=provider, name="Team A")  # for http://litellm:4000/v1
    Provider.objects.filter(pk=provider.pk).update(base_url="http://litellm-eu:4000/v1")
    BackupKeyFactory(provider=Provider.objects.get(pk=provider.pk), name="Team B")
    Provider.objects.filter(pk=provider.pk).update(base_url="http://litellm-us:4000/v1")

    html = admin_client.get(CHANGELIST).text

    assert "2 backup keys · 2 to paste again" in list_row(html, "OpenAI Compatible")


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
