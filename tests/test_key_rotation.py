"""Rotating the secrets that encrypt API keys."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection

from llmadmin.models import Provider
from tests.factories import ProviderFactory

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
