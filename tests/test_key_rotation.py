"""Rotating the secrets that encrypt API keys, the accounts' own and their backup keys."""

from __future__ import annotations

import io

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection

from llmadmin.key_pools import pool_of
from llmadmin.models import BackupKey, KeyFault, Provider, api_key_ids
from tests.factories import BackupKeyFactory, ProviderFactory

pytestmark = pytest.mark.django_db

KEYS = {"anthropic": "sk-ant-ROTATE-1", "openai": "sk-proj-ROTATE-2"}


def rotate() -> tuple[str, str, int]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("rotate_keys", stdout=out, stderr=err)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return out.getvalue(), err.getvalue(), code


def raw_columns() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT type, api_key FROM llmadmin_provider")
        return dict(cursor.fetchall())


def test_a_rotated_secret_key_can_be_removed_after_reencrypting(encryption_secrets):
    encryption_secrets("old-secret")
    for slug, key in KEYS.items():
        ProviderFactory(type=slug, api_key=key)
    ProviderFactory(google=True, no_key=True)
    before = raw_columns()

    encryption_secrets("new-secret", fallbacks=("old-secret",))
    out, err, code = rotate()
    encryption_secrets("new-secret")  # the old secret is gone

    assert (out, err, code) == ("Re-encrypted 2 API keys.\n", "", 0)
    after = raw_columns()
    assert all(after[slug] != before[slug] for slug in KEYS)
    for slug, key in KEYS.items():
        provider = Provider.objects.get(type=slug)
        assert provider.api_key == key
        assert provider.availability == "available"
    assert all("ROTATE" not in value for value in after.values() if value)


def test_a_rotated_salt_can_be_removed_after_reencrypting(encryption_secrets):
    encryption_secrets("secret", salts=("old-salt",))
    ProviderFactory(anthropic=True, api_key=KEYS["anthropic"])

    encryption_secrets("secret", salts=("new-salt", "old-salt"))
    rotate()
    encryption_secrets("secret", salts=("new-salt",))

    assert Provider.objects.get(type="anthropic").api_key == KEYS["anthropic"]


def test_without_reencrypting_removing_the_old_secret_makes_keys_unreadable(encryption_secrets):
    encryption_secrets("old-secret")
    ProviderFactory(anthropic=True, api_key=KEYS["anthropic"])

    encryption_secrets("new-secret")

    assert Provider.objects.get(type="anthropic").key_state == "unreadable"


def test_keys_no_secret_decrypts_are_reported_and_left_as_stored(encryption_secrets):
    encryption_secrets("lost-secret")
    ProviderFactory(anthropic=True, api_key=KEYS["anthropic"])
    encryption_secrets("old-secret")
    ProviderFactory(openai=True, api_key=KEYS["openai"])
    before = raw_columns()

    encryption_secrets("new-secret", fallbacks=("old-secret",))
    out, err, code = rotate()

    assert out == "Re-encrypted 1 API keys.\n"
    assert "Could not decrypt 1: Anthropic." in err
    assert code == 1
    assert raw_columns()["anthropic"] == before["anthropic"]
    assert "ROTATE" not in out + err


def test_every_account_of_a_type_is_reencrypted_and_named_by_its_label(encryption_secrets):
    encryption_secrets("lost-secret")
    ProviderFactory(openai_compat=True, name="LiteLLM", api_key="sk-ROTATE-lost")
    encryption_secrets("old-secret")
    ProviderFactory(openai_compat=True, api_key="sk-ROTATE-first")
    ProviderFactory(openai_compat=True, name="Internal vLLM", api_key="sk-ROTATE-vllm")

    encryption_secrets("new-secret", fallbacks=("old-secret",))
    out, err, code = rotate()
    encryption_secrets("new-secret")

    assert out == "Re-encrypted 2 API keys.\n"
    assert "Could not decrypt 1: LiteLLM (OpenAI Compatible)." in err
    keys = dict(Provider.objects.filter(type="openai-compat").values_list("name", "api_key"))
    assert keys["OpenAI Compatible"] == "sk-ROTATE-first"
    assert keys["Internal vLLM"] == "sk-ROTATE-vllm"
    assert code == 1


# --- backup keys ------------------------------------------------------------------------------


def backup_columns() -> dict[int, tuple]:
    """Every backup key's stored columns, by id: its ciphertexts and what calls write."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, api_key, aws_secret_access_key, aws_session_token, encrypted_with, "
            "entered_for, cooling_reason, last_used_at FROM llmadmin_backupkey"
        )
        return {row[0]: row[1:] for row in cursor.fetchall()}


def test_backup_keys_are_reencrypted_and_sent_after_the_old_secret_is_gone(encryption_secrets):
    encryption_secrets("old-secret")
    provider = ProviderFactory(openai=True, api_key="sk-proj-ROTATE-own")
    team = BackupKeyFactory(provider=provider, name="Team A", api_key="sk-proj-ROTATE-team")
    spare = BackupKeyFactory(provider=provider, api_key="sk-proj-ROTATE-spare")
    # A rate-limited key stays so: rotating changes no key's use.
    BackupKey.objects.filter(pk=spare.pk).update(cooling_reason=KeyFault.RATE_LIMITED)
    before = backup_columns()

    encryption_secrets("new-secret", fallbacks=("old-secret",))
    out, err, code = rotate()
    encryption_secrets("new-secret")

    assert (out, err, code) == ("Re-encrypted 1 API keys and 2 backup keys.\n", "", 0)
    after = backup_columns()
    for pk in (team.pk, spare.pk):
        assert after[pk][0] != before[pk][0]
        assert after[pk][3] == api_key_ids()[0]
        # Still entered for the account's address; its cooldown and last use as they were.
        assert after[pk][4:] == before[pk][4:]
    assert "ROTATE" not in repr(after)
    provider = Provider.objects.get(pk=provider.pk)
    assert [key.credentials["api_key"] for key in pool_of(provider)] == [
        "sk-proj-ROTATE-own",
        "sk-proj-ROTATE-team",
        "sk-proj-ROTATE-spare",
    ]


def test_an_iam_backup_keys_secret_and_session_token_are_reencrypted(encryption_secrets):
    encryption_secrets("old-secret")
    provider = ProviderFactory(
        bedrock=True,
        api_key=None,
        auth="aws_keys",
        aws_access_key_id="AKIAOWNKEY0000000000",
        aws_secret_access_key="ROTATE-own-secret",
    )
    BackupKeyFactory(
        provider=provider,
        api_key=None,
        aws_access_key_id="AKIABACKUP0000000000",
        aws_secret_access_key="ROTATE-backup-secret",
        aws_session_token="ROTATE-backup-token",
    )

    encryption_secrets("new-secret", fallbacks=("old-secret",))
    out, _, code = rotate()
    encryption_secrets("new-secret")

    assert (out, code) == ("Re-encrypted 1 API keys and 1 backup keys.\n", 0)
    backup = BackupKey.objects.get()
    assert (backup.aws_secret_access_key, backup.aws_session_token) == (
        "ROTATE-backup-secret",
        "ROTATE-backup-token",
    )
    assert pool_of(Provider.objects.get(pk=provider.pk))[1].credentials == {
        "aws_access_key_id": "AKIABACKUP0000000000",
        "aws_secret_access_key": "ROTATE-backup-secret",
        "aws_session_token": "ROTATE-backup-token",
    }


def test_a_backup_key_no_secret_decrypts_is_reported_left_as_stored_and_never_sent(
    encryption_secrets,
):
    encryption_secrets("lost-secret")
    provider = ProviderFactory(openai_compat=True, name="LiteLLM", api_key=None)
    lost = BackupKeyFactory(provider=provider, position=3, name="Team A", api_key="sk-ROTATE-l")
    encryption_secrets("old-secret")
    BackupKeyFactory(provider=provider, position=4, api_key="sk-ROTATE-kept")
    before = backup_columns()

    encryption_secrets("new-secret", fallbacks=("old-secret",))
    out, err, code = rotate()

    assert out == "Re-encrypted 0 API keys and 1 backup keys.\n"
    assert err == (
        "Could not decrypt 1: backup key 3 (Team A) of LiteLLM (OpenAI Compatible). "
        "Restore the old secret and run again, or set these keys again.\n"
    )
    assert code == 1
    assert backup_columns()[lost.pk] == before[lost.pk]
    pool = pool_of(Provider.objects.get(pk=provider.pk))
    assert [key.credentials["api_key"] for key in pool] == ["sk-ROTATE-kept"]
    assert "ROTATE" not in out + err
    # Its secret found again, it reads as it did: the rotation kept which one encrypted it.
    encryption_secrets("lost-secret")
    assert BackupKey.objects.get(pk=lost.pk).credentials(provider) == {"api_key": "sk-ROTATE-l"}


def test_only_unreadable_backup_keys_still_fail_the_rotation(encryption_secrets):
    encryption_secrets("lost-secret")
    BackupKeyFactory(provider=ProviderFactory(anthropic=True, api_key=None), api_key="sk-ROTATE")

    encryption_secrets("new-secret")
    out, err, code = rotate()

    assert (out, code) == ("Re-encrypted 0 API keys and 0 backup keys.\n", 1)
    assert err.startswith("Could not decrypt 1: backup key ")


def test_the_audit_records_each_backup_key_reencrypted_never_the_key(encryption_secrets):
    encryption_secrets("lost-secret")
    provider = ProviderFactory(openai=True, api_key=None)
    BackupKeyFactory(provider=provider, name="Lost", api_key="sk-ROTATE-lost")
    encryption_secrets("old-secret")
    readable = BackupKeyFactory(provider=provider, name="Kept", api_key="sk-ROTATE-kept")
    mark = LogEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

    encryption_secrets("new-secret", fallbacks=("old-secret",))
    rotate()

    entries = LogEntry.objects.filter(
        pk__gt=mark, content_type=ContentType.objects.get_for_model(BackupKey)
    )
    assert [(entry.object_id, entry.changes_dict) for entry in entries] == [
        (readable.pk, {"api_key": ["(set)", "(re-encrypted)"]})
    ]
    assert "ROTATE" not in repr(list(LogEntry.objects.values()))
    assert "gAAAAA" not in repr(list(LogEntry.objects.values()))
