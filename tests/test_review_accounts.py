"""Hostile review of issue 29 (several accounts of one provider type): each test states a
behaviour that should hold and, in a comment, what is wrong and where."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError
from django.urls import reverse

from billing.ledger import usage_record
from llmadmin.models import LLMModel, Provider
from llmadmin.providers.contract import Usage
from tests.admin_forms import form_as_loaded
from tests.factories import LLMModelFactory, ProviderFactory

PRICES = {"input_price": Decimal(3), "output_price": Decimal(15)}
QUIET = {"verbosity": 0, "stdout": io.StringIO()}
BEFORE_ACCOUNTS = "0016_configuration_change_log"


def styled(text: str, capital_a: int, small_a: int) -> str:
    """ASCII letters in another Unicode style (fullwidth, bold…): NFKC folds them back."""
    return "".join(
        chr(capital_a + ord(c) - ord("A")) if c.isupper() else chr(small_a + ord(c) - ord("a"))
        for c in text
    )


def new_account(**fields: object) -> Provider:
    """An account as the admin's add page makes one: validated, then saved."""
    account = Provider(**fields)
    account.full_clean()
    account.save()
    return account


@pytest.mark.django_db(transaction=True)
def test_migrating_back_with_two_accounts_of_a_type_stops_with_a_clear_error():
    # Wrong: 0017's reverse is a noop (llmadmin/migrations/0017_provider_accounts.py): unapplying
    # it with two OpenAI Compatible accounts crashes on the restored unique `type` with a raw
    # IntegrityError instead of a clear message naming the accounts to merge or delete first.
    ProviderFactory(openai_compat=True, name="Internal vLLM")
    try:
        with pytest.raises(Exception) as raised:
            call_command("migrate", "llmadmin", BEFORE_ACCOUNTS, **QUIET)
        assert not isinstance(raised.value, IntegrityError), repr(raised.value)
        assert "Internal vLLM" in str(raised.value)
    finally:
        call_command("migrate", **QUIET)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "lookalike",
    [
        pytest.param(styled("OpenAI", 0xFF21, 0xFF41) + " Compatible", id="fullwidth"),
        pytest.param(styled("OpenAI", 0x1D400, 0x1D41A) + " Compatible", id="mathematical-bold"),
    ],
)
def test_a_name_that_only_looks_like_another_accounts_is_refused(lookalike):
    # Wrong: the name's uniqueness is Lower("name") only (llmadmin/models.py: Provider.Meta):
    # compatibility forms (NFKC, as Django's usernames normalize) pass as a second "OpenAI
    # Compatible" in every list and select.
    with pytest.raises(ValidationError) as raised:
        new_account(type="openai-compat", name=lookalike, base_url="http://vllm:8000/v1")
    assert "name" in raised.value.message_dict


@pytest.mark.django_db
def test_a_slug_differing_only_in_case_from_another_accounts_is_refused():
    # Wrong: slug uniqueness is case-sensitive and SlugField takes capitals (llmadmin/models.py:
    # Provider.slug): "OPENAI/gpt-4o" and "openai/gpt-4o" become two gateway names of two
    # accounts that differ by case alone.
    with pytest.raises(ValidationError) as raised:
        new_account(type="openai-compat", name="Proxy", slug="OPENAI", base_url="http://p/v1")
    assert "slug" in raised.value.message_dict


@pytest.mark.django_db
@pytest.mark.parametrize(
    "type_slug, name, type_label",
    [
        pytest.param("openai", "Azure OpenAI EU", "OpenAI", id="openai-named-like-azure"),
        pytest.param("openai", "OpenAI Compatible Proxy", "OpenAI", id="openai-named-like-compat"),
    ],
)
def test_an_accounts_label_says_its_type_when_its_name_reads_as_another_type(
    type_slug, name, type_label
):
    # Wrong: provider_label (llmadmin/models.py) drops the type whenever the type's label is a
    # substring of the name, so an OpenAI account named "Azure OpenAI EU" is labelled as if
    # Azure ("OpenAI" is inside "Azure OpenAI" and "OpenAI Compatible").
    account = ProviderFactory(type=type_slug, name=name)
    assert account.label == f"{name} ({type_label})"


@pytest.fixture
def spend_at_a_deleted_account(admin_client) -> None:
    """A call at OpenAI Compatible's first account and one at Internal vLLM, deleted since from
    its admin page."""
    gateway = ProviderFactory(openai_compat=True)
    vllm = ProviderFactory(openai_compat=True, name="Internal vLLM", base_url="http://vllm/v1")
    user = User.objects.create_user("dev")
    for account in (gateway, vllm):
        model = LLMModelFactory(provider=account, identifier="llama", **PRICES)
        usage_record(user_id=user.pk, model=model, called_at=datetime.now(UTC), usage=Usage(10, 5))
    delete = reverse("admin:llmadmin_provider_delete", args=[vllm.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert not Provider.objects.filter(pk=vllm.pk).exists()


@pytest.mark.django_db
def test_a_deleted_accounts_spend_is_not_labelled_as_a_live_account_of_its_type(
    admin_client, spend_at_a_deleted_account
):
    # Wrong: billing/report.py account_labels shows a deleted account under its type's label,
    # which is the label of that type's first account: the dashboard has two "OpenAI
    # Compatible" rows, the deleted vLLM's spend read as the live gateway's (a deleted
    # developer is "user #id"; the CSV says "account #id").
    today = datetime.now(UTC).date().isoformat()

    page = admin_client.get(
        reverse("admin:billing_dailyusage_changelist"), {"start": today, "end": today}
    ).text

    by_provider = page.split('id="usage-by-provider"')[1].split("</section>")[0]
    labels = re.findall(r'<th scope="row">([^<]*)</th>', by_provider)
    assert len(labels) == 2
    assert len(set(labels)) == 2, labels


@pytest.mark.django_db
def test_the_ledger_tells_a_deleted_accounts_calls_from_a_live_accounts(
    admin_client, spend_at_a_deleted_account
):
    # Wrong: billing/admin.py UsageRecordAdmin.account labels a deleted account's call with
    # its type's label, the live first account's label: two "OpenAI Compatible" calls, of
    # which the filter by that account finds one.
    page = admin_client.get(reverse("admin:billing_usagerecord_changelist")).text

    accounts = re.findall(r'<td class="field-account">([^<]*)</td>', page)
    assert len(accounts) == 2
    assert len(set(accounts)) == 2, accounts


@pytest.mark.django_db
def test_two_accounts_never_share_a_label(admin_client):
    # Wrong: names are unique but labels are not (llmadmin/models.py provider_label): "Internal
    # vLLM" and "Internal vLLM (OpenAI Compatible)" are both labelled "Internal vLLM (OpenAI
    # Compatible)", twice alike in the model form's select, the filters and developers' groups.
    ProviderFactory(openai_compat=True, name="Internal vLLM", base_url="http://vllm/v1")
    with pytest.raises(ValidationError) as raised:
        new_account(
            type="openai-compat",
            name="Internal vLLM (OpenAI Compatible)",
            base_url="http://other/v1",
        )
    assert "name" in raised.value.message_dict


@pytest.mark.django_db
def test_a_slug_of_punctuation_alone_is_refused(admin_client):
    # Wrong: Provider.slug takes any SlugField value (llmadmin/models.py), so "-" or "_" is an
    # account's slug and its models' gateway names are "-/llama": clean() refuses a name with
    # no letters or digits to make a slug of, but not a typed slug with none.
    for slug in ("-", "_"):
        response = admin_client.post(
            reverse("admin:llmadmin_provider_add"),
            {"type": "openai-compat", "name": f"Proxy {slug}", "slug": slug},
        )
        assert response.status_code == 200, slug
        assert "slug" in response.context["adminform"].form.errors
    assert not Provider.objects.filter(slug__in=["-", "_"]).exists()


@pytest.mark.django_db
def test_the_environments_key_never_lands_on_an_account_it_was_not_given_to(monkeypatch):
    # Wrong: seed_defaults (llmadmin/services.py) sets a type's environment key on whichever
    # account is the type's first now: once the LiteLLM account it was given to is deleted, the
    # next start stores LiteLLM's key on the keyless vLLM account and sends it to vLLM's URL.
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", "sk-LITELLM-from-env")
    gateway = ProviderFactory(openai_compat=True, api_key=None)
    vllm = ProviderFactory(
        openai_compat=True, name="Internal vLLM", base_url="http://vllm/v1", api_key=None
    )
    call_command("seed_defaults", "--keys-from-env", **QUIET)
    gateway.refresh_from_db()
    assert gateway.api_key == "sk-LITELLM-from-env"
    gateway.delete()

    call_command("seed_defaults", "--keys-from-env", **QUIET)

    vllm.refresh_from_db()
    assert vllm.api_key is None


@pytest.mark.django_db
def test_an_accounts_type_can_not_change_once_it_is_saved():
    # Wrong: "type fixed once created" holds only in the admin (ProviderAdmin
    # get_readonly_fields); Provider.clean (llmadmin/models.py) takes a new type, so the only
    # OpenAI account turns Anthropic with its OpenAI models: OpenAI has no account left.
    account = ProviderFactory(openai=True)
    LLMModelFactory(provider=account, identifier="gpt-4.1")
    account.type = "anthropic"
    with pytest.raises(ValidationError) as raised:
        account.full_clean()
    assert "type" in raised.value.message_dict


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Internal\nvLLM", id="line-break"),
        pytest.param("Internal vLLM\x1b[2J", id="terminal-escape"),
        pytest.param("Internal\rOpenAI", id="carriage-return"),
    ],
)
def test_an_accounts_name_refuses_control_characters(name):
    # Wrong: Provider.name's validators (llmadmin/fields.py validate_no_hidden_characters) let
    # Cc characters through; check_providers, seed_defaults, set_provider_key and the import's
    # change lines print the name to a terminal: a line break forges a line, ESC drives it.
    with pytest.raises(ValidationError) as raised:
        new_account(type="openai-compat", name=name, base_url="http://vllm/v1")
    assert "name" in raised.value.message_dict


@pytest.mark.django_db
def test_an_export_with_a_renamed_first_account_imports_into_a_fresh_deployment(tmp_path):
    # Wrong: the import finds accounts by name only (llmadmin/configuration.py
    # Importer.account): a fresh deployment's migrate made "OpenAI Compatible" slugged
    # openai-compat, so the export's first account renamed "LiteLLM" (slug openai-compat) is
    # taken for a new account and refused for its slug: the deployment can't be reproduced.
    first = Provider.objects.get(type="openai-compat")
    first.name, first.base_url = "LiteLLM", "http://litellm:4000/v1"
    first.full_clean()
    first.save()
    ProviderFactory(openai_compat=True, name="Internal vLLM", base_url="http://vllm/v1")
    path = tmp_path / "llm.yaml"
    call_command("export_config", "--output", str(path), stderr=io.StringIO())
    # What migrate leaves in a fresh deployment: each type's account named after it.
    Provider.objects.filter(name="Internal vLLM").delete()
    first.name, first.base_url = "OpenAI Compatible", ""
    first.save()

    call_command("import_config", str(path), **QUIET)

    assert sorted(Provider.objects.filter(type="openai-compat").values_list("name", "slug")) == [
        ("Internal vLLM", "internal-vllm"),
        ("LiteLLM", "openai-compat"),
    ]


@pytest.mark.django_db
def test_names_differing_only_in_the_case_of_a_non_ascii_letter_are_refused():
    # Wrong on SQLite: the unique constraint is on Lower("name") (llmadmin/models.py
    # Provider.Meta), and SQLite's lower() folds ASCII only: "Azure Zürich" and "AZURE ZÜRICH"
    # are two accounts there, one on PostgreSQL ("unique in any case", README).
    ProviderFactory(azure=True, name="Azure Zürich")
    with pytest.raises(ValidationError) as raised:
        new_account(
            type="azure",
            name="AZURE ZÜRICH",
            slug="azure-zurich-2",
            base_url="https://ch.openai.azure.com",
        )
    assert "name" in raised.value.message_dict


@pytest.mark.django_db
def test_the_model_list_groups_a_types_models_by_account_as_developers_see_them(admin_client):
    # Wrong: LLMModelAdmin.get_ordering (llmadmin/admin/llm_models.py) is still
    # (registry_position, display_name): two OpenAI Compatible accounts' models interleave by
    # name, while the developers' list (models_in_list_order) groups them by account.
    gateway = ProviderFactory(openai_compat=True)
    vllm = ProviderFactory(openai_compat=True, name="Internal vLLM", base_url="http://vllm/v1")
    LLMModelFactory(provider=vllm, identifier="a", display_name="Alpha")
    LLMModelFactory(provider=gateway, identifier="b", display_name="Beta")
    LLMModelFactory(provider=vllm, identifier="c", display_name="Gamma")

    response = admin_client.get(reverse("admin:llmadmin_llmmodel_changelist"))

    names = [model.display_name for model in response.context["cl"].result_list]
    assert names == ["Beta", "Alpha", "Gamma"]


@pytest.mark.django_db
def test_a_model_stays_with_its_account_in_the_model_and_in_the_admin(admin_client):
    # Its options are its account's type's, and the daily sums keep one account per model.
    gateway = ProviderFactory(openai_compat=True)
    vllm = ProviderFactory(openai_compat=True, name="Internal vLLM", base_url="http://vllm/v1")
    model = LLMModelFactory(provider=gateway, identifier="llama", **PRICES)
    page = reverse("admin:llmadmin_llmmodel_change", args=[model.pk])
    posted = form_as_loaded(admin_client, page, provider=str(vllm.pk))
    model.provider = vllm
    with pytest.raises(ValidationError) as raised:
        model.full_clean()
    response = admin_client.post(page, posted)

    message = "A model stays with its provider account: add it to the other account."
    assert raised.value.message_dict["provider"] == [message]
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["provider"] == [message]
    assert LLMModel.objects.get(pk=model.pk).provider_id == gateway.pk
