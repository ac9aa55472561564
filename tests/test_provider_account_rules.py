"""The rules of provider accounts: no two read alike, what never changes once saved, going
back before accounts; through the models' validation and the admin."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from llmadmin.models import LLMModel, Provider
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
    ProviderFactory(openai_compat=True, name="Internal vLLM")
    try:
        # Not the database's IntegrityError on the unique type: what to do first.
        with pytest.raises(RuntimeError, match="delete the accounts 'Internal vLLM'"):
            call_command("migrate", "llmadmin", BEFORE_ACCOUNTS, **QUIET)
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
    with pytest.raises(ValidationError) as raised:
        new_account(type="openai-compat", name=lookalike, base_url="http://vllm:8000/v1")
    assert "name" in raised.value.message_dict


@pytest.mark.django_db
def test_a_slug_differing_only_in_case_from_another_accounts_is_refused():
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
    account = ProviderFactory(type=type_slug, name=name)
    assert account.label == f"{name} ({type_label})"


@pytest.mark.django_db
def test_two_accounts_never_share_a_label(admin_client):
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
    for slug in ("-", "_"):
        response = admin_client.post(
            reverse("admin:llmadmin_provider_add"),
            {"type": "openai-compat", "name": f"Proxy {slug}", "slug": slug},
        )
        assert response.status_code == 200, slug
        assert "slug" in response.context["adminform"].form.errors
    assert not Provider.objects.filter(slug__in=["-", "_"]).exists()


@pytest.mark.django_db
def test_an_accounts_type_can_not_change_once_it_is_saved():
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
    with pytest.raises(ValidationError) as raised:
        new_account(type="openai-compat", name=name, base_url="http://vllm/v1")
    assert "name" in raised.value.message_dict


@pytest.mark.django_db
def test_names_differing_only_in_the_case_of_a_non_ascii_letter_are_refused():
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
