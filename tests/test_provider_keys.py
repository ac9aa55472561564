from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.db import connection

from llmadmin.models import Provider
from llmadmin.services import provider_set_api_key
from tests.factories import ProviderFactory

pytestmark = pytest.mark.django_db

KEY = "sk-ant-api03-SECRETVALUE-1234567890"


def raw_api_key_column(provider: Provider) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM llmadmin_provider WHERE id = %s", [provider.pk])
        return cursor.fetchone()[0]


def test_it_stores_the_key_encrypted_at_rest():
    provider = ProviderFactory(api_key=KEY)

    stored = raw_api_key_column(provider)

    assert stored
    assert KEY not in stored
    assert "SECRETVALUE" not in stored
    assert Provider.objects.get(pk=provider.pk).api_key == KEY


def test_it_encrypts_the_same_key_differently_each_time():
    first = ProviderFactory(openai=True, api_key=KEY)
    second = ProviderFactory(anthropic=True, api_key=KEY)

    assert raw_api_key_column(first) != raw_api_key_column(second)


def test_it_answers_whether_a_key_is_set_in_sql_without_decrypting():
    ProviderFactory(anthropic=True, api_key=KEY)
    ProviderFactory(openai=True, no_key=True)

    with_key = Provider.objects.filter(api_key__isnull=False).values_list("type", flat=True)

    assert list(with_key) == ["anthropic"]


def test_it_stores_no_key_as_null():
    provider = ProviderFactory(no_key=True)
    provider_set_api_key(provider=provider, api_key="")

    assert raw_api_key_column(provider) is None
    assert Provider.objects.get(pk=provider.pk).key_state == "missing"


@pytest.mark.parametrize("bad_key", [" sk-key", "sk-key ", "sk-key\n", "\tsk-key"])
def test_it_rejects_a_key_with_surrounding_whitespace(bad_key):
    provider = ProviderFactory(no_key=True)

    with pytest.raises(ValidationError) as error:
        provider_set_api_key(provider=provider, api_key=bad_key)

    assert "api_key" in error.value.message_dict
    assert "sk-key" not in str(error.value)
    assert raw_api_key_column(provider) is None


@pytest.mark.parametrize(
    "bad_key",
    [
        pytest.param("sk-ke y", id="a space"),
        pytest.param("sk-key\nsk-key", id="a line break"),
        pytest.param("sk-\tkey", id="a tab"),
    ],
)
def test_it_rejects_a_key_with_whitespace_inside(bad_key):
    provider = ProviderFactory(no_key=True)

    with pytest.raises(ValidationError) as error:
        provider_set_api_key(provider=provider, api_key=bad_key)

    assert error.value.message_dict == {
        "api_key": ["The key has a space or line break inside: paste the key alone."]
    }
    assert raw_api_key_column(provider) is None


def test_it_recognises_a_key_encrypted_with_another_secret_as_unreadable():
    provider = ProviderFactory(api_key=KEY)
    foreign_ciphertext = Fernet(Fernet.generate_key()).encrypt(b"sk-other").decode()
    Provider.objects.filter(pk=provider.pk).update(api_key=None)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE llmadmin_provider SET api_key = %s WHERE id = %s",
            [foreign_ciphertext, provider.pk],
        )

    reloaded = Provider.objects.get(pk=provider.pk)

    assert reloaded.key_state == "unreadable"
    assert reloaded.usable_api_key is None


def test_it_keeps_an_unreadable_key_as_stored_when_the_provider_is_saved():
    provider = ProviderFactory(api_key=KEY)
    foreign_ciphertext = Fernet(Fernet.generate_key()).encrypt(b"sk-other").decode()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE llmadmin_provider SET api_key = %s WHERE id = %s",
            [foreign_ciphertext, provider.pk],
        )
    reloaded = Provider.objects.get(pk=provider.pk)

    reloaded.enabled = False
    reloaded.full_clean()
    reloaded.save()

    assert raw_api_key_column(provider) == foreign_ciphertext


def test_an_unreadable_key_longer_than_any_key_does_not_block_other_edits(admin_client):
    # The ciphertext of a key near the limit is longer than the limit itself.
    provider = ProviderFactory(api_key="sk-" + "x" * 480)
    foreign_ciphertext = Fernet(Fernet.generate_key()).encrypt(b"k" * 480).decode()
    assert len(foreign_ciphertext) > 500
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE llmadmin_provider SET api_key = %s WHERE id = %s",
            [foreign_ciphertext, provider.pk],
        )
    reloaded = Provider.objects.get(pk=provider.pk)

    reloaded.base_url = "http://litellm:4000"
    reloaded.full_clean()
    reloaded.save()

    assert raw_api_key_column(provider) == foreign_ciphertext
    assert Provider.objects.get(pk=provider.pk).base_url == "http://litellm:4000"


def test_it_treats_a_non_fernet_value_in_the_column_as_unreadable():
    provider = ProviderFactory(api_key=KEY)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE llmadmin_provider SET api_key = %s WHERE id = %s", ["not-a-token", provider.pk]
        )

    assert Provider.objects.get(pk=provider.pk).key_state == "unreadable"


def test_it_reports_a_decryptable_key_as_set_and_usable():
    provider = Provider.objects.get(pk=ProviderFactory(api_key=KEY).pk)

    assert provider.key_state == "set"
    assert provider.usable_api_key == KEY


def test_dumpdata_serialises_ciphertext_never_the_key():
    from django.core import serializers

    ProviderFactory(api_key=KEY)

    dumped = serializers.serialize("json", Provider.objects.all())

    assert KEY not in dumped
    assert '"api_key": "gAAAAA' in dumped


@pytest.mark.parametrize(
    "base_url",
    [
        "https://proxy.example.com/v1",
        "http://litellm:4000/v1",
        "http://127.0.0.1:8080",
        "https://my-resource.openai.azure.com",
    ],
)
def test_it_accepts_an_absolute_http_base_url(base_url):
    provider = ProviderFactory(openai=True, base_url=base_url)

    provider.full_clean()


@pytest.mark.parametrize(
    "base_url",
    [
        "proxy.example.com/v1",
        "ftp://proxy.example.com",
        "https://",
        "/v1",
        "https://proxy example.com",
        "https://proxy.example.com:99999",
        "https://user:pass@proxy.example.com",
        "https://proxy.example.com/v1?key=abc",
    ],
)
def test_it_rejects_a_base_url_that_is_not_an_absolute_http_url(base_url):
    provider = ProviderFactory.build(openai=True, base_url=base_url)

    with pytest.raises(ValidationError) as error:
        provider.full_clean()

    assert list(error.value.message_dict) == ["base_url"]


@pytest.mark.parametrize("traits", [{"azure": True}, {"openai_compat": True}])
def test_it_requires_a_base_url_for_types_without_a_default_endpoint(traits):
    provider = ProviderFactory.build(**traits, base_url="")

    with pytest.raises(ValidationError) as error:
        provider.full_clean()

    assert "has no default endpoint" in error.value.message_dict["base_url"][0]


def test_it_accepts_a_provider_without_base_url_while_it_has_no_key():
    ProviderFactory.build(azure=True, base_url="", no_key=True).full_clean()


def test_it_requires_a_region_for_bedrock():
    provider = ProviderFactory.build(bedrock=True, region="")

    with pytest.raises(ValidationError) as error:
        provider.full_clean()

    assert list(error.value.message_dict) == ["region"]


def test_it_builds_the_bedrock_endpoint_from_the_region():
    provider = ProviderFactory.build(bedrock=True, region="eu-west-1")

    assert provider.effective_base_url == "https://bedrock-runtime.eu-west-1.amazonaws.com"


def test_it_prefers_the_base_url_override_to_the_default_endpoint():
    provider = ProviderFactory.build(openai=True, base_url="http://litellm:4000/v1/")

    assert provider.effective_base_url == "http://litellm:4000/v1"
    assert ProviderFactory.build(openai=True).effective_base_url == "https://api.openai.com/v1"


def test_a_type_may_have_several_accounts_each_with_its_own_name_and_slug():
    ProviderFactory(openai_compat=True)
    second = Provider(type="openai-compat", name="Internal vLLM")
    second.full_clean()
    second.save()

    with pytest.raises(ValidationError) as error:
        Provider(type="openai", name="internal VLLM", slug="internal-vllm").full_clean()

    assert second.slug == "internal-vllm"  # from the name
    assert second.label == "Internal vLLM (OpenAI Compatible)"
    assert Provider.objects.get(type="openai").label == "OpenAI"
    assert error.value.message_dict == {
        "name": ["Another provider account has this name."],
        "slug": ["Another provider account has this slug."],
    }


@pytest.mark.parametrize(
    ("name", "error"),
    [
        pytest.param("OpenAI\u200b", "zero-width", id="a zero-width space after a taken name"),
        pytest.param(" Internal", "spaces", id="a leading space"),
        pytest.param("日本", "slug", id="nothing to make a slug of"),
    ],
)
def test_an_account_name_that_would_pass_for_another_is_refused_on_its_field(name, error):
    account = Provider(type="openai-compat", name=name, base_url="http://vllm:8000/v1")

    with pytest.raises(ValidationError) as raised:
        account.full_clean()

    field = "slug" if error == "slug" else "name"
    assert error in " ".join(raised.value.message_dict[field])


def test_availability_says_why_a_provider_cannot_be_used():
    assert ProviderFactory(openai=True, enabled=False).availability == "provider_disabled"
    assert ProviderFactory(google=True, no_key=True).availability == "missing_key"
    assert ProviderFactory(anthropic=True).availability == "available"


def test_availability_is_known_without_loading_or_decrypting_the_key(
    django_assert_num_queries,
):
    ProviderFactory(api_key=KEY)
    provider = Provider.objects.defer("api_key").get(type="anthropic")

    with django_assert_num_queries(0):
        assert provider.availability == "available"


def test_a_key_encrypted_under_a_replaced_secret_is_unreadable(encryption_secrets):
    encryption_secrets("old-secret")
    provider = ProviderFactory(api_key=KEY)

    encryption_secrets("new-secret")
    reloaded = Provider.objects.get(pk=provider.pk)

    assert reloaded.key_state == "unreadable"
    assert reloaded.availability == "key_unreadable"
    assert reloaded.usable_api_key is None


def test_a_key_stays_readable_while_the_old_secret_is_a_fallback(encryption_secrets):
    encryption_secrets("old-secret")
    provider = ProviderFactory(api_key=KEY)

    encryption_secrets("new-secret", fallbacks=("old-secret",))
    reloaded = Provider.objects.get(pk=provider.pk)

    assert reloaded.usable_api_key == KEY
    assert reloaded.availability == "available"


def test_a_key_stays_readable_after_a_new_salt_is_put_first(encryption_secrets):
    encryption_secrets("secret", salts=("old-salt",))
    provider = ProviderFactory(api_key=KEY)

    encryption_secrets("secret", salts=("new-salt", "old-salt"))
    reloaded = Provider.objects.get(pk=provider.pk)

    assert reloaded.usable_api_key == KEY
    assert reloaded.availability == "available"
