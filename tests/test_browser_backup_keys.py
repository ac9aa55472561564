"""An account's backup keys on its page in a real headless Chromium: added with the admin's
"Add another" rows, reordered by their numbers, a cooling key's state, and Try again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Locator, expect

from llmadmin.models import BackupKey, KeyFault, Provider
from tests.browser import log_in_as_admin
from tests.factories import BackupKeyFactory, ProviderFactory

pytestmark = pytest.mark.django_db(transaction=True)

KEY_A = "sk-BROWSERSECRET-team-a-0001"
KEY_B = "sk-BROWSERSECRET-team-b-0002"


def change_path(provider: Provider) -> str:
    return f"/admin/llmadmin/provider/{provider.pk}/change/"


def values(inputs: Locator) -> list[str]:
    return inputs.evaluate_all("inputs => inputs.map((input) => input.value)")


def test_an_admin_adds_two_backup_keys_then_reorders_them(page, asgi_server):
    provider = ProviderFactory(openai=True, api_key="sk-own-key-0001")
    log_in_as_admin(page, asgi_server, change_path(provider))
    add = page.get_by_role("button", name="Add another Backup key")
    for name, key in (("Team A", KEY_A), ("Team B", KEY_B)):
        add.click()
        row = page.locator("#backup_keys-group tr.dynamic-backup_keys").last
        row.locator("input[name$='-name']").fill(name)
        row.locator("input[name$='-key']").fill(key)
    page.click("input[name=_continue]")

    stored = page.locator("#backup_keys-group tr.has_original")
    expect(stored.first.locator("input[name$='-name']")).to_have_value("Team A")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    assert values(stored.locator("input[name$='-name']")) == ["Team A", "Team B"]
    assert values(stored.locator("input[name$='-position']")) == ["1", "2"]
    expect(stored.locator(".field-state")).to_have_text(["Ready; not used yet."] * 2)

    stored.nth(0).locator("input[name$='-position']").fill("2")
    stored.nth(1).locator("input[name$='-position']").fill("1")
    page.click("input[name=_continue]")

    expect(stored.first.locator("input[name$='-name']")).to_have_value("Team B")
    assert values(stored.locator("input[name$='-name']")) == ["Team B", "Team A"]
    assert "BROWSERSECRET" not in page.content()
    assert list(provider.backup_keys.order_by("position").values_list("name", "api_key")) == [
        ("Team B", KEY_B),
        ("Team A", KEY_A),
    ]


def test_a_cooling_key_says_when_it_comes_back_and_try_again_clears_it(page, asgi_server):
    provider = ProviderFactory(openai=True, api_key="sk-own-key-0001")
    key = BackupKeyFactory(provider=provider, name="Team A", api_key=KEY_A)
    until = timezone.now() + timedelta(minutes=10)
    BackupKey.objects.filter(pk=key.pk).update(
        cooling_until=until, cooling_reason=KeyFault.RATE_LIMITED
    )
    log_in_as_admin(page, asgi_server, change_path(provider))

    row = page.locator("#backup_keys-group tr.has_original")
    expect(row.locator(".field-state")).to_have_text(
        f"Cooling down (rate-limited) until {timezone.localtime(until):%Y-%m-%d %H:%M:%S}."
    )
    row.locator("input[name$='-try_again']").check()
    page.click("input[name=_continue]")

    expect(row.locator(".field-state")).to_have_text("Ready; not used yet.")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    key.refresh_from_db()
    assert (key.cooling_until, key.cooling_reason, key.api_key) == (None, "", KEY_A)
