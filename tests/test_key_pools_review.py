"""A hostile review of key pools' failover (issue 30 part 1): each test here shows a defect
found, and is marked xfail(strict) until it is fixed (then it passes, and the mark goes).

Through the same entry points as tests/test_key_pools.py: one metered call from its admission
to its record (`answered`), the chat API, the gateway's official SDKs; against a provider that
holds the account's keys (tests/providers/key_pool_fake.py) or a family's fake.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command

from chat.metered import Admission, call_admit
from llmadmin.models import BackupKey, KeyFault, Provider
from llmadmin.providers.errors import LacksPermission
from llmadmin.services import provider_check_connection
from tests.factories import BackupKeyFactory, LLMModelFactory, ProviderFactory, provider_at
from tests.providers.fakes import FakeProvider, serve
from tests.providers.key_pool_fake import (
    FORBIDDEN,
    OK,
    REFUSED,
    Behaviour,
    KeyPoolFake,
    serve_pool,
)
from tests.test_key_pools import (
    BACKUP_KEY_ID,
    BACKUP_SECRET,
    GOOD_KEY,
    HELLO,
    KEYS,
    OWN_KEY_ID,
    OWN_SECRET,
    SONNET,
    answered,
    pool,
)

pytestmark = pytest.mark.django_db(transaction=True)


def answer_of(admission: Admission) -> str:
    """The answer of a call admitted before: it runs with the account as it was then."""

    async def run() -> str:
        async with admission.call(chat=HELLO) as call:
            async for _ in call:
                pass
        return call.answer

    return async_to_sync(run)()


# --- Which refusals fail over -----------------------------------------------------------------


def test_a_gemini_key_refused_with_400_api_key_invalid_fails_over_to_the_backup_key(developer):
    with serve(FakeProvider("google", GOOD_KEY)) as fake:
        provider = provider_at("google", fake.url, api_key="AIza-revoked-key-0001")
        BackupKeyFactory(provider=provider, api_key=GOOD_KEY)
        model = LLMModelFactory(provider=provider, identifier="gemini-2.5-flash")

        assert answered(developer, model.pk) == "Hello world"

    assert Provider.objects.get(pk=provider.pk).cooling_reason == KeyFault.REJECTED


def test_a_key_lacking_permission_for_one_model_still_answers_the_accounts_other_models(developer):
    fake = KeyPoolFake(
        "bedrock",
        {OWN_KEY_ID: FORBIDDEN, BACKUP_KEY_ID: FORBIDDEN},
        aws_secrets={OWN_KEY_ID: OWN_SECRET, BACKUP_KEY_ID: BACKUP_SECRET},
    )
    with serve_pool(fake):
        provider = provider_at(
            "bedrock",
            fake.url,
            auth="aws_keys",
            api_key=None,
            aws_access_key_id=OWN_KEY_ID,
            aws_secret_access_key=OWN_SECRET,
        )
        BackupKeyFactory(
            provider=provider,
            api_key=None,
            aws_access_key_id=BACKUP_KEY_ID,
            aws_secret_access_key=BACKUP_SECRET,
        )
        not_granted = LLMModelFactory(provider=provider, identifier="anthropic.claude-opus-4-1")
        granted = LLMModelFactory(provider=provider, identifier=SONNET)
        # Neither key was granted this model: AWS answers 403 AccessDeniedException.
        with pytest.raises(LacksPermission):
            answered(developer, not_granted.pk)
        # Both may call this one.
        fake.keys.update({OWN_KEY_ID: OK, BACKUP_KEY_ID: OK})
        fake.clear()

        assert answered(developer, granted.pk) == "Hello world"


class OpenRouterPool(KeyPoolFake):
    """OpenRouter's API (an OpenAI-style one) holding the keys; its 402 as its errors page
    gives it: the key's account has no credits left."""

    def error(
        self, status: int, key: str, echo: bool
    ) -> tuple[int, dict[str, str], Iterator[bytes]]:
        assert status == 402
        message = "Insufficient credits. Add more using https://openrouter.ai/credits"
        payload = {"error": {"code": 402, "message": message}}
        return 402, {"Content-Type": "application/json"}, iter([json.dumps(payload).encode()])


def test_an_openrouter_key_out_of_credits_fails_over_to_the_backup_key(developer):
    with serve_pool(OpenRouterPool("openrouter", {KEYS[0]: Behaviour(402), KEYS[1]: OK})) as fake:
        provider = provider_at("openrouter", fake.url, api_key=KEYS[0])
        BackupKeyFactory(provider=provider, api_key=KEYS[1])
        model = LLMModelFactory(provider=provider, identifier="openai/gpt-4.1")

        assert answered(developer, model.pk) == "Hello world"

    assert fake.used == list(KEYS[:2])


# --- Backup keys the account's own key keeps from being used ----------------------------------


def test_a_failed_connection_test_of_the_own_key_leaves_the_backup_keys_answering(developer):
    with serve(FakeProvider("openai", GOOD_KEY)) as fake:
        provider = provider_at("openai", fake.url, api_key="sk-revoked-0001")
        BackupKeyFactory(provider=provider, api_key=GOOD_KEY)
        model = LLMModelFactory(provider=provider, identifier="gpt-4.1")
        assert provider_check_connection(provider=provider)[0] == "rejected"

        assert answered(developer, model.pk) == "Hello world"


def test_an_account_whose_own_key_was_removed_is_answered_by_its_backup_key(developer):
    with serve(FakeProvider("openai", GOOD_KEY)) as fake:
        provider = provider_at("openai", fake.url, api_key="sk-revoked-0001")
        BackupKeyFactory(provider=provider, api_key=GOOD_KEY)
        model = LLMModelFactory(provider=provider, identifier="gpt-4.1")
        provider.replace_api_key(None)
        provider.save()

        assert answered(developer, model.pk) == "Hello world"


# --- An admin's change meeting a call ---------------------------------------------------------


def test_a_call_refused_with_the_old_key_does_not_cool_the_key_an_admin_just_pasted(developer):
    new_key = "sk-pool-own-renewed-0009"
    with pool("openai", REFUSED, OK) as (fake, model):
        fake.keys[new_key] = OK
        # A call admitted with the account as it is: its own key, revoked at the provider.
        admission = call_admit(user=developer, model_id=model.pk)
        # Meanwhile the admin pastes the account's new key.
        provider = Provider.objects.get(pk=model.provider_id)
        provider.replace_api_key(new_key)
        provider.save()
        # The call sends the old key, refused, and fails over.
        assert answer_of(admission) == "Hello world"
        fake.clear()

        assert answered(developer, model.pk) == "Hello world"

    assert fake.used == [new_key]
    assert Provider.objects.get(pk=model.provider_id).cooling_reason == ""


# --- The audit --------------------------------------------------------------------------------


def test_a_backup_key_added_by_set_provider_key_is_in_the_audit_without_the_key():
    ProviderFactory(openai=True, api_key="sk-own")
    secret = "sk-proj-AUDITEDBACKUP-0001"

    call_command(
        "set_provider_key",
        "openai",
        "--backup",
        "Team A",
        stdin=io.StringIO(secret + "\n"),
        stdout=io.StringIO(),
    )

    entries = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(BackupKey))
    assert [entry.action for entry in entries] == [LogEntry.Action.CREATE]
    assert "AUDITEDBACKUP" not in repr(list(LogEntry.objects.values()))


# --- One key twice in a pool ------------------------------------------------------------------


def test_set_provider_key_refuses_as_the_own_key_one_of_the_accounts_backup_keys():
    provider = ProviderFactory(openai=True, api_key="sk-own")
    BackupKeyFactory(provider=provider, name="Team A", api_key="sk-team-a-key")

    with pytest.raises(CommandError):
        call_command(
            "set_provider_key", "openai", stdin=io.StringIO("sk-team-a-key\n"), stdout=io.StringIO()
        )

    assert Provider.objects.get(pk=provider.pk).api_key == "sk-own"
