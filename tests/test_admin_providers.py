"""The providers admin: every type listed, a write-only key, history without the key."""

from __future__ import annotations

import re

import pytest
from cryptography.fernet import Fernet
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from billing.ledger import usage_record
from llmadmin.models import Provider
from llmadmin.providers import PROVIDER_TYPES
from tests.admin_forms import (
    NEW_ADDRESSES,
    STORED_KEY,
    STORED_SECRET,
    TYPED_KEY,
    provider_form_data,
)
from tests.factories import LLMModelFactory, ProviderFactory

pytestmark = pytest.mark.django_db

KEY = "sk-proj-ADMINSECRET-abcdef123456"
CHANGELIST = reverse("admin:llmadmin_provider_changelist")


def change_url(provider: Provider) -> str:
    return reverse("admin:llmadmin_provider_change", args=[provider.pk])


def test_the_list_shows_every_type_even_before_seeding(admin_client):
    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    for provider_type in PROVIDER_TYPES.values():
        assert provider_type.label in response.text
    assert Provider.objects.count() == len(PROVIDER_TYPES)


def test_the_list_shows_each_key_status(admin_client):
    ProviderFactory(anthropic=True, api_key=KEY)
    ProviderFactory(openai=True, no_key=True)
    unreadable = ProviderFactory(google=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE llmadmin_provider SET api_key = %s WHERE id = %s",
            [Fernet(Fernet.generate_key()).encrypt(b"x").decode(), unreadable.pk],
        )

    response = admin_client.get(CHANGELIST)

    rows = {
        label: response.text.split(label, 1)[1].split("</tr>", 1)[0]
        for label in ("Anthropic", "OpenAI", "Google (Gemini)")
    }
    assert "Key set" in rows["Anthropic"]
    assert "No key" in rows["OpenAI"]
    assert "Key unreadable" in rows["Google (Gemini)"]
    assert KEY not in response.text


def test_the_connection_test_filter_uses_the_words_the_list_shows(admin_client):
    ProviderFactory(anthropic=True, api_key=KEY, check_status="unreachable")
    ProviderFactory(openai=True, api_key=KEY, check_status="verified")

    response = admin_client.get(CHANGELIST, {"check_status": "unreachable"})

    assert response.status_code == 200
    assert "Connection failed</a>" in response.text  # the filter's choice, as the list says it
    assert "Unreachable" not in response.text
    assert list(response.context["cl"].result_list.values_list("type", flat=True)) == ["anthropic"]


def test_adding_and_deleting_providers_is_not_offered(admin_client):
    provider = ProviderFactory()

    assert admin_client.get(reverse("admin:llmadmin_provider_add")).status_code == 403
    delete = reverse("admin:llmadmin_provider_delete", args=[provider.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert Provider.objects.filter(pk=provider.pk).exists()
    assert reverse("admin:llmadmin_provider_add") not in admin_client.get(CHANGELIST).text


def test_the_form_never_renders_the_stored_key_and_says_one_is_set(admin_client):
    provider = ProviderFactory(api_key=KEY)

    html = admin_client.get(change_url(provider)).text

    key_input = re.search(r'<input[^>]*name="api_key"[^>]*>', html).group(0)
    assert 'type="password"' in key_input
    assert "value=" not in key_input
    for fragment in (KEY, "ADMINSECRET", KEY[-6:], KEY[:8]):
        assert fragment not in html
    assert "Key set" in html


def test_a_blank_key_field_keeps_the_stored_key(admin_client):
    provider = ProviderFactory(api_key=KEY)

    response = admin_client.post(change_url(provider), provider_form_data(provider, enabled=""))

    assert response.status_code == 302
    provider.refresh_from_db()
    assert (provider.api_key, provider.enabled) == (KEY, False)


def test_a_new_key_replaces_the_stored_one(admin_client):
    provider = ProviderFactory(api_key=KEY)

    admin_client.post(change_url(provider), provider_form_data(provider, api_key="sk-new-key"))

    provider.refresh_from_db()
    assert provider.api_key == "sk-new-key"


def test_the_remove_control_removes_the_key(admin_client):
    provider = ProviderFactory(api_key=KEY)

    admin_client.post(change_url(provider), provider_form_data(provider, remove_api_key="on"))

    provider.refresh_from_db()
    assert provider.key_state == "missing"


def test_removing_and_pasting_a_key_at_once_is_refused(admin_client):
    provider = ProviderFactory(api_key=KEY)

    response = admin_client.post(
        change_url(provider), provider_form_data(provider, api_key="sk-new", remove_api_key="on")
    )

    assert response.status_code == 200
    assert "Either paste new credentials or remove them, not both." in response.text
    provider.refresh_from_db()
    assert provider.api_key == KEY


def test_a_key_with_spaces_is_refused_on_its_field_and_nothing_is_saved(admin_client):
    provider = ProviderFactory(api_key=KEY)

    response = admin_client.post(
        change_url(provider),
        provider_form_data(provider, api_key=" sk-new-NEWSECRET", base_url="http://changed:1"),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["api_key"]
    assert "NEWSECRET" not in response.text
    provider.refresh_from_db()
    assert (provider.api_key, provider.base_url) == (KEY, "")


@pytest.mark.parametrize(
    ("trait", "help_text"),
    [
        pytest.param("azure", "Required: Azure OpenAI has no default endpoint.", id="none"),
        pytest.param("openai", "Default: https://api.openai.com/v1.", id="the type's own"),
    ],
)
def test_the_base_urls_help_says_its_default_or_that_it_is_required(admin_client, trait, help_text):
    provider = ProviderFactory(**{trait: True}, base_url="")

    page = admin_client.get(change_url(provider))

    assert page.context["adminform"].form.fields["base_url"].help_text.startswith(help_text)


def test_azure_with_a_key_needs_its_endpoint(admin_client):
    provider = ProviderFactory(azure=True, no_key=True, base_url="")

    response = admin_client.post(change_url(provider), provider_form_data(provider, api_key=KEY))

    assert "has no default endpoint" in str(response.context["adminform"].form.errors["base_url"])
    assert KEY not in response.text
    provider.refresh_from_db()
    assert provider.key_state == "missing"


def test_only_bedrock_shows_a_region_field(admin_client):
    bedrock = ProviderFactory(bedrock=True)
    openai = ProviderFactory(openai=True)

    assert 'name="region"' in admin_client.get(change_url(bedrock)).text
    assert 'name="region"' not in admin_client.get(change_url(openai)).text


def test_key_changes_are_in_the_history_without_the_key(admin_client):
    provider = ProviderFactory(no_key=True)

    admin_client.post(change_url(provider), provider_form_data(provider, api_key=KEY))
    admin_client.post(change_url(provider), provider_form_data(provider, remove_api_key="on"))

    entries = LogEntry.objects.filter(object_id=str(provider.pk)).order_by("action_time")
    assert [entry.get_change_message() for entry in entries] == [
        "Changed API key.",
        "Changed API key.",
    ]
    history = admin_client.get(reverse("admin:llmadmin_provider_history", args=[provider.pk]))
    assert "Changed API key." in history.text
    assert KEY not in history.text
    assert all(KEY not in entry.change_message for entry in entries)


def test_a_provider_links_to_its_models_in_the_model_list(admin_client):
    # A link, not a row per model: at 1,250 models the page took 0.9 s and 1.9 MB.
    model = LLMModelFactory(display_name="Claude Sonnet 4.6")
    LLMModelFactory(provider=model.provider)
    LLMModelFactory(provider=ProviderFactory(openai=True))  # another provider's: not counted

    html = admin_client.get(change_url(model.provider)).text

    assert "Claude Sonnet 4.6" not in html
    list_url = reverse("admin:llmadmin_llmmodel_changelist")
    link = f"{list_url}?provider__id__exact={model.provider.pk}"
    assert f'<a href="{link}">2 models of Anthropic</a>' in html
    listed = admin_client.get(link).text
    assert "Claude Sonnet 4.6" in listed
    assert "1 result" not in listed and "2 results" in listed
    add_url = reverse("admin:llmadmin_llmmodel_add") + f"?provider={model.provider.pk}"
    assert f'href="{add_url}">Add a model to Anthropic</a>' in html


def test_staff_without_model_permissions_cannot_see_or_change_providers(client):
    provider = ProviderFactory(api_key=KEY)
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)

    assert client.get(CHANGELIST).status_code == 403
    assert client.get(change_url(provider)).status_code == 403
    assert (
        client.post(change_url(provider), provider_form_data(provider, api_key="x")).status_code
        == 403
    )
    assert "Providers" not in client.get(reverse("admin:index")).text


def test_staff_with_view_permission_sees_the_form_read_only_without_the_key(client):
    provider = ProviderFactory(api_key=KEY)
    staff = User.objects.create_user("viewer", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_provider"))
    client.force_login(staff)

    html = client.get(change_url(provider)).text

    assert "Key set" in html
    assert KEY not in html
    assert 'name="api_key"' not in html
    assert "Add a model to" not in html
    response = client.post(change_url(provider), provider_form_data(provider, api_key="sk-x"))
    assert response.status_code == 403


def test_a_key_typed_into_a_save_refused_for_another_field_is_kept_for_the_next(admin_client):
    provider = ProviderFactory(openai_compat=True, no_key=True, base_url="")

    refused = admin_client.post(change_url(provider), provider_form_data(provider, api_key=KEY))
    saved = admin_client.post(
        change_url(provider), provider_form_data(provider, base_url="http://litellm:4000/v1")
    )

    assert refused.status_code == 200
    assert "has no default endpoint" in refused.text
    assert KEY not in refused.text
    assert "The value you typed is kept for the next save" in refused.text
    # The status tells what is stored: no key yet, whatever was typed.
    assert refused.context["adminform"].form.instance.stored.key_state == "missing"
    assert "No key" in refused.text
    assert "Key set (not tested)" not in refused.text
    assert saved.status_code == 302
    provider.refresh_from_db()
    assert (provider.api_key, provider.base_url) == (KEY, "http://litellm:4000/v1")
    # Once saved, the session keeps no secret.
    assert not [key for key, _ in admin_client.session.items() if "typed-secrets" in key]


def test_a_kept_key_is_stored_encrypted_in_the_session(admin_client):
    provider = ProviderFactory(openai_compat=True, no_key=True, base_url="")

    admin_client.post(change_url(provider), provider_form_data(provider, api_key=KEY))

    session = admin_client.session
    (kept,) = [value for key, value in session.items() if "typed-secrets" in key]
    assert set(kept) == {"api_key"}
    assert KEY not in kept["api_key"]
    assert KEY not in str(dict(session.items()))


@pytest.mark.parametrize(
    "lookup",
    [
        pytest.param("api_key__regex", id="the API key"),
        pytest.param("aws_secret_access_key__startswith", id="the AWS secret"),
        pytest.param("aws_session_token__isnull", id="the session token"),
        pytest.param("api_key_encrypted_with__exact", id="the key's encryption id"),
    ],
)
def test_no_filter_reads_a_secret_column(admin_client, lookup):
    ProviderFactory(api_key=KEY)

    response = admin_client.get(CHANGELIST, {lookup: "g"})

    assert response.status_code == 400


# --- A stored key goes only where it was entered -------------------------------------------

ATTACKER = "http://attacker.example:8080"


def as_stored(provider: Provider) -> tuple[object, ...]:
    provider.refresh_from_db()
    return tuple(getattr(provider, name) for name in STORED_FIELDS)


STORED_FIELDS = ("auth", "api_key", "aws_secret_access_key", "base_url", "region", "updated_at")


@pytest.mark.parametrize(("stored", "posted", "key_field"), NEW_ADDRESSES)
def test_a_new_address_is_not_saved_with_the_stored_key(admin_client, stored, posted, key_field):
    provider = ProviderFactory(**stored)
    before = as_stored(provider)
    posted = {name: str(value).format(attacker=ATTACKER) for name, value in posted.items()}

    response = admin_client.post(
        change_url(provider), provider_form_data(provider, enabled="", **posted)
    )

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors == {key_field: [RETYPE[key_field]]}
    assert as_stored(provider) == before
    # Everything typed is shown again.
    assert {name: form[name].value() for name in posted} == posted
    assert form["enabled"].value() is False


RETYPE = {
    "api_key": "Re-enter the key to use it with a new address.",
    "aws_secret_access_key": "Re-enter the secret access key to use it with a new address.",
}


@pytest.mark.parametrize(("stored", "posted", "key_field"), NEW_ADDRESSES)
def test_a_new_address_is_saved_with_the_key_typed_beside_it(
    admin_client, stored, posted, key_field
):
    provider = ProviderFactory(**stored)
    posted = {name: str(value).format(attacker=ATTACKER) for name, value in posted.items()}

    response = admin_client.post(
        change_url(provider), provider_form_data(provider, **posted, **{key_field: TYPED_KEY})
    )

    assert response.status_code == 302
    provider.refresh_from_db()
    assert getattr(provider, key_field) == TYPED_KEY
    assert {name: getattr(provider, name) for name in posted} == posted


def test_a_new_address_drops_a_stored_session_token_not_typed_again(admin_client):
    provider = ProviderFactory(
        bedrock=True,
        api_key=None,
        auth="aws_keys",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key=STORED_SECRET,
        aws_session_token="IQoJb3JpZ2luX2VjSTOREDTOKEN==",
    )

    response = admin_client.post(
        change_url(provider),
        provider_form_data(provider, base_url=ATTACKER, aws_secret_access_key=TYPED_KEY),
    )

    assert response.status_code == 302
    provider.refresh_from_db()
    assert (provider.aws_secret_access_key, provider.aws_session_token) == (TYPED_KEY, None)


def test_the_servers_own_aws_credentials_need_no_key_at_a_new_address(admin_client):
    # Nothing stored is sent: the server's chain signs, wherever the request goes.
    provider = ProviderFactory(bedrock=True, auth="default_chain", api_key=STORED_KEY)

    response = admin_client.post(
        change_url(provider), provider_form_data(provider, region="eu-west-1")
    )

    assert response.status_code == 302
    provider.refresh_from_db()
    assert (provider.region, provider.api_key) == ("eu-west-1", STORED_KEY)


def test_remove_the_stored_credentials_is_offered_only_when_some_are_stored(admin_client):
    keyless = ProviderFactory(openai=True, no_key=True)
    keyed = ProviderFactory(anthropic=True)

    assert "remove_api_key" not in admin_client.get(change_url(keyless)).text
    assert "remove_api_key" in admin_client.get(change_url(keyed)).text


def test_every_row_of_a_providers_page_has_a_label(admin_client):
    provider = ProviderFactory(openai=True)

    page = admin_client.get(change_url(provider)).text

    labels = re.findall(r"<label[^>]*>(.*?)</label>", page, re.S)
    assert labels and all(label.strip() not in ("", ":") for label in labels)


def test_the_usage_records_name_providers_by_their_label(admin_client, django_user_model):
    model = LLMModelFactory(provider=ProviderFactory(openai_compat=True, base_url="http://x/v1"))
    user = django_user_model.objects.create_user("dev")
    usage_record(user_id=user.pk, model=model, called_at=timezone.now(), usage=None)

    page = admin_client.get(reverse("admin:billing_usagerecord_changelist")).text

    assert "OpenAI Compatible" in page
    assert ">openai-compat<" not in page
