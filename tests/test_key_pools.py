"""An account's backup keys: a call that fails before its answer began with the key refused,
rate-limited, the provider failing or no connection is tried once more on the next key; the
failed key cools down for every process."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User

from chat.metered import call_admit
from llmadmin.models import BackupKey, KeyFault, Provider
from llmadmin.providers.contract import ChatInput
from tests.factories import BackupKeyFactory, LLMModelFactory, provider_at
from tests.providers.fakes import FakeProvider, serve

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = ChatInput(system="", messages=[{"role": "user", "content": "Hi"}])
GOOD_KEY = "sk-good-backup-0001"


@pytest.fixture
def user() -> User:
    return User.objects.create_user("dev")


def answered(user: User, model_id: int) -> str:
    admission = call_admit(user=user, model_id=model_id)

    async def run() -> str:
        async with admission.call(chat=HELLO) as call:
            async for _ in call:
                pass
        return call.answer

    return async_to_sync(run)()


def test_a_refused_key_fails_over_to_the_backup_key_and_is_left_out_after(user):
    with serve(FakeProvider("openai", GOOD_KEY)) as fake:
        provider = provider_at("openai", fake.url, api_key="sk-revoked-0001")
        BackupKeyFactory(provider=provider, api_key=GOOD_KEY)
        model = LLMModelFactory(provider=provider, identifier="gpt-4.1")

        assert answered(user, model.pk) == "Hello world"
        provider.refresh_from_db()
        assert provider.cooling_reason == KeyFault.REJECTED
        assert BackupKey.objects.get().last_used_at is not None

        fake.requests.clear()
        assert answered(user, model.pk) == "Hello world"
        assert [r.headers["authorization"] for r in fake.requests] == [f"Bearer {GOOD_KEY}"]
        assert Provider.objects.filter(pk=provider.pk, cooling_reason="rejected").exists()
