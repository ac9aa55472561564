"""An account's backup keys go with it: the deletion's confirmation page lists them by name,
never by any part of a key, and deleting the account deletes them."""

from __future__ import annotations

import re

import pytest
from auditlog.models import LogEntry as AuditEntry
from django.db import connection
from django.urls import reverse

from llmadmin.models import BackupKey
from tests.factories import BackupKeyFactory, ProviderFactory

pytestmark = pytest.mark.django_db

SECRET = "SECRETBACKUP"


def test_deleting_an_account_lists_its_backup_keys_by_name_and_deletes_them(admin_client):
    account = ProviderFactory(openai_compat=True, name="Internal vLLM", api_key=f"sk-{SECRET}-0")
    BackupKeyFactory(provider=account, position=1, name="Team A", api_key=f"sk-{SECRET}-1")
    BackupKeyFactory(provider=account, position=2, api_key=f"sk-{SECRET}-2")
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
    assert SECRET not in page.text
    assert not any(ciphertext[:24] in page.text for ciphertext in ciphertexts)
    assert response.status_code == 302
    assert list(BackupKey.objects.all()) == [kept]
    audit = repr(list(AuditEntry.objects.values()))
    assert SECRET not in audit and "gAAAAA" not in audit
