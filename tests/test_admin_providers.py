"""The providers admin: every type listed, a write-only key, history without the key."""

from __future__ import annotations

import re

import pytest
from auditlog.models import LogEntry as AuditEntry
from cryptography.fernet import Fernet
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from billing.ledger import usage_record
from billing.models import UsageRecord
from llmadmin.models import LLMModel, Provider
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
ADD = reverse("admin:llmadmin_provider_add")


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


# --- Accounts: added from the list, named, deleted -----------------------------------------


def delete_url(provider: Provider) -> str:
    return reverse("admin:llmadmin_provider_delete", args=[provider.pk])


def field_errors(response) -> dict[str, list[str]]:
    return {
        name: list(errors) for name, errors in response.context["adminform"].form.errors.items()
    }


def vllm(**fields: object) -> Provider:
    """A second OpenAI Compatible account."""
    fields = {"name": "Internal vLLM", "base_url": "http://vllm.corp/v1", **fields}
    return ProviderFactory(openai_compat=True, **fields)


def test_an_account_is_added_from_the_list_then_set_up_on_its_page(admin_client):
    assert f'href="{ADD}"' in admin_client.get(CHANGELIST).text
    page = admin_client.get(ADD, {"type": "openai-compat"})
    assert list(page.context["adminform"].form.fields) == ["type", "name", "slug"]
    assert '<option value="openai-compat" selected>' in page.text

    response = admin_client.post(
        ADD, {"type": "openai-compat", "name": "Internal vLLM", "slug": "vllm"}, follow=True
    )

    account = Provider.objects.get(name="Internal vLLM")
    assert (account.type, account.slug, account.api_key) == ("openai-compat", "vllm", None)
    assert response.redirect_chain == [(change_url(account), 302)]
    said = [str(message) for message in response.context["messages"]]
    assert said[-1] == (
        "Now enter Internal vLLM's credentials and address below and save: developers get none "
        "of its models until then."
    )
    assert 'name="api_key"' in response.text
    assert Provider.objects.filter(type="openai-compat").count() == 2


def test_the_add_page_offers_the_types_in_the_registry_order(admin_client):
    form = admin_client.get(ADD).context["adminform"].form

    offered = [value for value, _ in form.fields["type"].choices if value]
    assert offered == list(PROVIDER_TYPES)


@pytest.mark.parametrize("type_slug", list(PROVIDER_TYPES))
def test_a_second_account_of_every_type_can_be_added(admin_client, type_slug):
    response = admin_client.post(ADD, {"type": type_slug, "name": "Second", "slug": "second"})

    account = Provider.objects.get(slug="second")
    assert response.status_code == 302 and response.url == change_url(account)
    assert account.type == type_slug
    assert admin_client.get(change_url(account)).status_code == 200


def test_save_and_add_another_returns_to_a_blank_add_page(admin_client):
    response = admin_client.post(
        ADD, {"type": "azure", "name": "Azure EU", "slug": "", "_addanother": "1"}
    )

    assert response.status_code == 302 and response.url == ADD
    assert Provider.objects.get(name="Azure EU").slug == "azure-eu"


# fmt: off
REFUSED_ACCOUNTS = [
    pytest.param({"name": "openai compatible"},
                 {"name": ["Another provider account has this name."]},
                 id="a name taken in another case"),
    pytest.param({"slug": "openai"}, {"slug": ["Another provider account has this slug."]},
                 id="a slug taken"),
    pytest.param({"name": "", "slug": "x"}, {"name": ["This field is required."]}, id="no name"),
    pytest.param({"name": "!!!", "slug": ""},
                 {"slug": ["Enter a slug: the name has no letters or digits to make one of."]},
                 id="no slug to make from the name"),
    pytest.param({"slug": "no spaces"}, {"slug": ["Enter lowercase letters, digits, hyphens or "
                 "underscores, beginning with a letter or digit."]}, id="an invalid slug"),
    pytest.param({"type": "nope"},
                 {"type": ["Select a valid choice. nope is not one of the available choices."]},
                 id="an unknown type"),
]
# fmt: on


@pytest.mark.parametrize(("posted", "errors"), REFUSED_ACCOUNTS)
def test_a_refused_account_gets_its_fields_errors_and_nothing_is_added(
    admin_client, posted, errors
):
    before = Provider.objects.count()

    response = admin_client.post(
        ADD, {"type": "openai-compat", "name": "Internal vLLM", "slug": "vllm", **posted}
    )

    assert response.status_code == 200
    assert field_errors(response) == errors
    assert Provider.objects.count() == before


def test_the_change_page_renames_an_account_and_keeps_its_type(admin_client):
    account = vllm(api_key=KEY)
    page = admin_client.get(change_url(account)).text
    assert "renames them for clients" in page
    add_another = f"{ADD}?type=openai-compat"
    assert f'href="{add_another}">Add another OpenAI Compatible account</a>' in page

    response = admin_client.post(
        change_url(account),
        provider_form_data(account, name="LiteLLM", slug="litellm", type="anthropic"),
    )

    assert response.status_code == 302
    account.refresh_from_db()
    assert (account.name, account.slug, account.type, account.api_key) == (
        "LiteLLM",
        "litellm",
        "openai-compat",
        KEY,
    )


def test_renaming_onto_another_accounts_name_is_refused_on_its_field(admin_client):
    account = vllm()

    response = admin_client.post(change_url(account), provider_form_data(account, name="OPENAI"))

    assert field_errors(response) == {"name": ["Another provider account has this name."]}
    assert Provider.objects.get(pk=account.pk).name == "Internal vLLM"


def test_the_list_shows_each_account_by_its_label_in_the_registry_order(admin_client):
    vllm()
    ProviderFactory(anthropic=True, name="Anthropic EU")

    response = admin_client.get(CHANGELIST)

    labels = [account.label for account in response.context["cl"].result_list]
    added = {"Anthropic": "Anthropic EU", "OpenAI Compatible": "Internal vLLM (OpenAI Compatible)"}
    assert labels == [
        label
        for provider_type in PROVIDER_TYPES.values()
        for label in (provider_type.label, added.get(provider_type.label))
        if label
    ]
    assert ">Internal vLLM (OpenAI Compatible)</a>" in response.text


def test_the_list_filters_by_type_and_searches_by_name(admin_client):
    vllm()

    by_type = admin_client.get(CHANGELIST, {"type__exact": "openai-compat"})
    found = admin_client.get(CHANGELIST, {"q": "vllm"})

    assert [p.name for p in by_type.context["cl"].result_list] == [
        "OpenAI Compatible",
        "Internal vLLM",
    ]
    assert [p.name for p in found.context["cl"].result_list] == ["Internal vLLM"]
    type_filter = by_type.context["cl"].filter_specs[0]
    assert [choice["display"] for choice in type_filter.choices(by_type.context["cl"])][1:] == [
        provider_type.label for provider_type in PROVIDER_TYPES.values()
    ]


@pytest.mark.parametrize("extra_accounts", [0, 12], ids=["one per type", "twelve more"])
def test_the_list_runs_the_same_queries_however_many_accounts(
    admin_client, django_assert_num_queries, extra_accounts
):
    for number in range(extra_accounts):
        LLMModelFactory(provider=vllm(name=f"vLLM {number}"))

    # the session with its user, count, total count, the page's accounts (with their model
    # counts)
    with django_assert_num_queries(4):
        admin_client.get(CHANGELIST)


def test_a_types_only_account_cannot_be_deleted(admin_client):
    only = Provider.objects.get(type="anthropic")

    assert admin_client.get(delete_url(only)).status_code == 403
    assert admin_client.post(delete_url(only), {"post": "yes"}).status_code == 403
    assert delete_url(only) not in admin_client.get(change_url(only)).text
    assert Provider.objects.filter(pk=only.pk).exists()


def test_an_account_with_another_of_its_type_is_deleted_with_its_models(
    admin_client, django_user_model
):
    account = vllm()
    model = LLMModelFactory(provider=account, display_name="Qwen 3")
    developer = django_user_model.objects.create_user("dev")
    usage_record(user_id=developer.pk, model=model, called_at=timezone.now(), usage=None)
    assert delete_url(account) in admin_client.get(change_url(account)).text
    confirmation = admin_client.get(delete_url(account)).text
    assert "Qwen 3" in confirmation

    response = admin_client.post(delete_url(account), {"post": "yes"})

    assert response.status_code == 302
    assert not Provider.objects.filter(pk=account.pk).exists()
    assert not LLMModel.objects.filter(pk=model.pk).exists()
    # The ledger keeps the call, by the model's id and the type it had.
    assert UsageRecord.objects.filter(model_id=model.pk, provider_type="openai-compat").exists()
    assert Provider.objects.filter(type="openai-compat").count() == 1


def test_an_account_holding_the_default_model_is_not_deleted(admin_client):
    account = vllm()
    LLMModelFactory(provider=account, display_name="Qwen 3", is_default=True)

    page = admin_client.get(delete_url(account))
    response = admin_client.post(delete_url(account), {"post": "yes"})

    reason = "Internal vLLM holds the default model (Qwen 3): make another model the default first."
    assert reason in page.text and "Cannot delete provider" in page.text
    assert response.status_code == 200 and reason in response.text
    assert Provider.objects.filter(pk=account.pk).exists()


def test_a_deletion_found_refused_under_lock_deletes_nothing_and_says_why(
    admin_client, monkeypatch
):
    account = vllm()
    LLMModelFactory(provider=account)
    # Another admin made one of its models the default after the page was checked.
    monkeypatch.setattr("llmadmin.admin.providers.provider_deletion_refused", lambda provider: "")
    LLMModelFactory(provider=account, display_name="Qwen 3", is_default=True)

    response = admin_client.post(delete_url(account), {"post": "yes"}, follow=True)

    assert response.redirect_chain == [(change_url(account), 302)]
    assert [str(m) for m in response.context["messages"]] == [
        "Internal vLLM holds the default model (Qwen 3): make another model the default first."
    ]
    assert Provider.objects.filter(pk=account.pk).exists()
    assert account.models.count() == 2


def test_the_list_offers_no_bulk_delete(admin_client):
    vllm()

    actions = admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices

    assert "delete_selected" not in [name for name, _ in actions]


def test_an_added_renamed_and_deleted_account_is_in_the_history_and_audit_by_name(admin_client):
    admin_client.post(ADD, {"type": "openai-compat", "name": "Internal vLLM", "slug": "vllm"})
    account = Provider.objects.get(slug="vllm")
    admin_client.post(change_url(account), provider_form_data(account, name="LiteLLM"))
    admin_client.post(delete_url(account), {"post": "yes"})

    history = LogEntry.objects.filter(object_id=str(account.pk)).order_by("action_time")
    assert [(entry.object_repr, entry.get_change_message()) for entry in history] == [
        ("Internal vLLM", "Added."),
        ("LiteLLM", "Changed Name."),
        ("LiteLLM", ""),
    ]
    audit = AuditEntry.objects.get_for_object(account).order_by("timestamp")
    assert [(entry.action, entry.object_repr) for entry in audit] == [
        (AuditEntry.Action.CREATE, "Internal vLLM"),
        (AuditEntry.Action.UPDATE, "LiteLLM"),
        (AuditEntry.Action.DELETE, "LiteLLM"),
    ]
    assert audit[0].changes_dict["type"] == [None, "openai-compat"]
    assert audit[1].changes_dict["name"] == ["Internal vLLM", "LiteLLM"]


def test_view_only_staff_see_accounts_but_cannot_add_change_or_delete_them(client):
    account = vllm(api_key=KEY)
    staff = User.objects.create_user("viewer", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_provider"))
    client.force_login(staff)

    listed = client.get(CHANGELIST).text
    page = client.get(change_url(account)).text

    assert "Internal vLLM (OpenAI Compatible)" in listed
    assert f'href="{ADD}"' not in listed
    assert "Add another" not in page and delete_url(account) not in page
    assert 'name="name"' not in page and "Internal vLLM" in page
    assert KEY not in listed + page
    assert client.get(ADD).status_code == 403
    posted = {"type": "openai", "name": "Mine", "slug": "mine"}
    assert client.post(ADD, posted).status_code == 403
    assert client.post(delete_url(account), {"post": "yes"}).status_code == 403
    assert Provider.objects.filter(pk=account.pk).exists()
    assert not Provider.objects.filter(name="Mine").exists()
