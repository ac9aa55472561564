"""Migration 0018 (backup keys): each account's key, stored before it, is its pool's first key
after it, readable as it was, with no backup keys; and the migration can be undone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from llmadmin.key_pools import pool_of
from llmadmin.models import BackupKey, Provider, api_key_ids

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("llmadmin", "0017_provider_accounts")
AFTER = ("llmadmin", "0018_backup_keys")
OPENAI_KEY = "sk-before-backup-keys-0001"
KEY_ID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def migrated_to(target: tuple[str, str]) -> Apps:
    """The database migrated to `target`; the models as they were there."""
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


@pytest.fixture
def at_0017() -> Iterator[Apps]:
    """The database as 0017 left it, migrated forward again afterwards."""
    try:
        yield migrated_to(BEFORE)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def test_0018_keeps_each_accounts_key_as_its_pools_key_1_and_can_be_undone(at_0017):
    old_provider = at_0017.get_model("llmadmin", "Provider")
    # As 0017's admin saved them: an API key, an IAM key pair, and an account with no key.
    openai_account = old_provider.objects.get(type="openai")
    openai_account.api_key, openai_account.api_key_encrypted_with = OPENAI_KEY, api_key_ids()[0]
    openai_account.save()
    bedrock = old_provider.objects.get(type="bedrock")
    bedrock.auth, bedrock.region = "aws_keys", "us-east-1"
    bedrock.aws_access_key_id, bedrock.aws_secret_access_key = KEY_ID, SECRET
    bedrock.api_key_encrypted_with = api_key_ids()[0]
    bedrock.save()
    old_provider.objects.filter(type="anthropic").update(api_key=None, api_key_encrypted_with="")

    migrated_to(AFTER)

    accounts = {provider.type: provider for provider in Provider.objects.all()}
    assert keys_of(accounts["openai"]) == [(None, {"api_key": OPENAI_KEY})]
    assert keys_of(accounts["bedrock"]) == [
        (
            None,
            {
                "aws_access_key_id": KEY_ID,
                "aws_secret_access_key": SECRET,
                "aws_session_token": "",
            },
        )
    ]
    assert keys_of(accounts["anthropic"]) == []
    assert not BackupKey.objects.exists()
    assert {
        (provider.key_cooldown, provider.cooling_until, provider.cooling_reason)
        for provider in accounts.values()
    } == {(60, None, "")}

    # Undone with a backup key stored: the account's own key stays as it was.
    backup = BackupKey(provider=accounts["openai"], api_key="sk-backup-0002")
    backup.enter_for(accounts["openai"])
    backup.save()
    undone = migrated_to(BEFORE)

    assert undone.get_model("llmadmin", "Provider").objects.get(type="openai").api_key == (
        OPENAI_KEY
    )
    assert "llmadmin_backupkey" not in connection.introspection.table_names()


def keys_of(provider: Provider) -> list[tuple[int | None, dict[str, str]]]:
    """The account's pool: each key's backup key id (None: its own) and credentials."""
    return [(key.backup_id, key.credentials) for key in pool_of(provider)]
