"""The models admin: generated option fields, field-level errors, the list and the star."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from llmadmin.models import LLMModel, Provider
from tests.factories import LLMModelFactory, ProviderFactory

pytestmark = pytest.mark.django_db

ADD = reverse("admin:llmadmin_llmmodel_add")
CHANGELIST = reverse("admin:llmadmin_llmmodel_changelist")


def change_url(model: LLMModel) -> str:
    return reverse("admin:llmadmin_llmmodel_change", args=[model.pk])


def star_url(model: LLMModel) -> str:
    return reverse("admin:llmadmin_llmmodel_make_default", args=[model.pk])


def model_data(provider: Provider, **fields: object) -> dict[str, object]:
    data = {
        "provider": provider.pk,
        "identifier": "claude-sonnet-4-6",
        "display_name": "Claude Sonnet 4.6",
        "enabled": "on",
        "context_limit": "1000000",
        "compression_threshold": "70",
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def field_errors(response) -> dict[str, list[str]]:
    return response.context["adminform"].form.errors


def input_tag(html: str, name: str) -> str:
    return re.search(rf'<(input|select|textarea)[^>]*name="{re.escape(name)}"[^>]*>', html).group(0)


def test_the_add_form_offers_each_type_option_as_a_real_field(admin_client):
    ProviderFactory(anthropic=True)

    html = admin_client.get(ADD).text

    budget = input_tag(html, "anthropic__thinking_budget_tokens")
    assert 'type="number"' in budget
    assert 'min="1024"' in budget
    effort = html.split('name="anthropic__effort"', 1)[1].split("</select>", 1)[0]
    assert '<option value="" selected>Default</option>' in effort
    assert '<option value="xhigh">xhigh</option>' in effort
    assert input_tag(html, "openai__parallel_tool_calls").startswith("<select")
    assert 'max="32768"' in input_tag(html, "google__thinking_budget")
    assert input_tag(html, "google__safety_settings__HARM_CATEGORY_HARASSMENT").startswith(
        "<select"
    )
    assert input_tag(html, "openrouter__provider_order").startswith("<textarea")
    assert 'name="provider_options"' not in html


def test_the_add_form_takes_the_provider_from_the_query_string(admin_client):
    provider = ProviderFactory(google=True)

    html = admin_client.get(f"{ADD}?provider={provider.pk}").text

    assert f'<option value="{provider.pk}" selected>' in html


def test_adding_a_model_stores_its_provider_options(admin_client):
    provider = ProviderFactory(anthropic=True)

    response = admin_client.post(
        ADD,
        model_data(
            provider,
            max_output_tokens="64000",
            anthropic__thinking_budget_tokens="8000",
            anthropic__effort="high",
            # Fields of other types are ignored: only the selected provider's are read.
            openai__reasoning_effort="low",
        ),
    )

    assert response.status_code == 302, field_errors(response)
    model = LLMModel.objects.get()
    assert model.provider_options == {"thinking_budget_tokens": 8000, "effort": "high"}
    assert model.max_output_tokens == 64000


def test_lists_mappings_and_booleans_are_stored_typed(admin_client):
    google = ProviderFactory(google=True)
    openrouter = ProviderFactory(openrouter=True)

    admin_client.post(
        ADD,
        model_data(
            google,
            identifier="gemini-2.5-pro",
            google__include_thoughts="true",
            google__thinking_budget="-1",
            google__safety_settings__HARM_CATEGORY_HATE_SPEECH="BLOCK_ONLY_HIGH",
        ),
    )
    admin_client.post(
        ADD,
        model_data(
            openrouter,
            identifier="openai/gpt-5",
            openrouter__provider_order="openai,\n azure",
            openrouter__allow_fallbacks="false",
        ),
    )

    assert LLMModel.objects.get(provider=google).provider_options == {
        "thinking_budget": -1,
        "include_thoughts": True,
        "safety_settings": {"HARM_CATEGORY_HATE_SPEECH": "BLOCK_ONLY_HIGH"},
    }
    assert LLMModel.objects.get(provider=openrouter).provider_options == {
        "provider_order": ["openai", "azure"],
        "allow_fallbacks": False,
    }


def test_the_change_form_shows_the_stored_options(admin_client):
    model = LLMModelFactory(
        provider=ProviderFactory(openrouter=True),
        provider_options={"provider_order": ["openai", "azure"], "reasoning_effort": "low"},
    )

    html = admin_client.get(change_url(model)).text

    assert "openai, azure</textarea>" in html
    effort = html.split('name="openrouter__reasoning_effort"', 1)[1].split("</select>", 1)[0]
    assert '<option value="low" selected>' in effort


def test_required_fields_are_reported_on_their_fields(admin_client):
    provider = ProviderFactory()

    response = admin_client.post(
        ADD, model_data(provider, identifier="", display_name="", context_limit="")
    )

    assert {"identifier", "display_name", "context_limit"} <= set(field_errors(response))
    assert not LLMModel.objects.exists()


def test_an_option_out_of_range_is_reported_on_its_field(admin_client):
    provider = ProviderFactory(anthropic=True)

    response = admin_client.post(
        ADD, model_data(provider, max_output_tokens="8000", anthropic__thinking_budget_tokens="500")
    )

    assert "anthropic__thinking_budget_tokens" in field_errors(response)
    assert not LLMModel.objects.exists()


def test_a_cross_field_rule_is_reported_on_the_option_field(admin_client):
    provider = ProviderFactory(anthropic=True)

    response = admin_client.post(
        ADD,
        model_data(provider, max_output_tokens="4000", anthropic__thinking_budget_tokens="4000"),
    )

    assert field_errors(response)["anthropic__thinking_budget_tokens"] == [
        "Must be below max output tokens: set max output tokens above the budget."
    ]
    assert not LLMModel.objects.exists()


def test_a_rule_about_a_general_field_is_reported_on_that_field(admin_client):
    provider = ProviderFactory(anthropic=True)

    response = admin_client.post(
        ADD,
        model_data(
            provider,
            max_output_tokens="8000",
            temperature="0.5",
            anthropic__thinking_budget_tokens="2048",
        ),
    )

    assert "thinking" in field_errors(response)["temperature"][0]


def test_a_google_thinking_rule_is_reported_on_include_thoughts(admin_client):
    provider = ProviderFactory(google=True)

    response = admin_client.post(
        ADD, model_data(provider, google__thinking_budget="0", google__include_thoughts="true")
    )

    assert "google__include_thoughts" in field_errors(response)


def test_changing_the_provider_revalidates_the_options(admin_client):
    anthropic = ProviderFactory(anthropic=True)
    openai = ProviderFactory(openai=True)
    model = LLMModelFactory(provider=anthropic, top_k=40, temperature=0.9)

    response = admin_client.post(
        change_url(model), model_data(openai, identifier=model.identifier, top_k="40")
    )

    assert field_errors(response)["top_k"] == ["Top K is not supported by OpenAI."]
    model.refresh_from_db()
    assert model.provider == anthropic


def test_an_error_in_another_providers_option_does_not_block_the_save(admin_client):
    openai = ProviderFactory(openai=True)
    anthropic = ProviderFactory(anthropic=True)
    assert openai.pk != anthropic.pk

    response = admin_client.post(
        ADD,
        model_data(
            anthropic, openai__reasoning_effort="extreme", openai__max_completion_tokens="0"
        ),
    )

    assert response.status_code == 302
    assert LLMModel.objects.get(identifier="claude-sonnet-4-6").provider_options == {}


def test_a_duplicate_identifier_is_reported_on_the_identifier(admin_client):
    existing = LLMModelFactory(identifier="gpt-5", provider=ProviderFactory(openai=True))

    response = admin_client.post(ADD, model_data(existing.provider, identifier="gpt-5"))

    assert field_errors(response)["identifier"] == [
        "This provider already has a model with this identifier."
    ]


def test_the_list_is_grouped_by_provider_then_display_name(admin_client):
    openai = ProviderFactory(openai=True)
    anthropic = ProviderFactory(anthropic=True)
    LLMModelFactory(provider=openai, display_name="GPT-5")
    LLMModelFactory(provider=anthropic, display_name="Claude Sonnet", context_limit=123_456)
    LLMModelFactory(provider=anthropic, display_name="Claude Haiku")

    response = admin_client.get(CHANGELIST)

    names = [model.display_name for model in response.context["cl"].result_list]
    assert names == ["Claude Haiku", "Claude Sonnet", "GPT-5"]
    assert "123456" in response.text
    filters = [spec.title for spec in response.context["cl"].filter_specs]
    assert filters == ["provider", "enabled", "default"]


def test_the_list_runs_a_constant_number_of_queries(admin_client, django_assert_max_num_queries):
    provider = ProviderFactory()
    for _ in range(30):
        LLMModelFactory(provider=provider)

    with django_assert_max_num_queries(12):
        admin_client.get(CHANGELIST)


def test_the_star_makes_a_model_the_default_in_one_post(admin_client):
    old = LLMModelFactory(is_default=True)
    new = LLMModelFactory(display_name="New default")

    response = admin_client.post(star_url(new), HTTP_REFERER="http://testserver" + CHANGELIST)

    assert response.status_code == 302
    assert response.url == "http://testserver" + CHANGELIST
    assert list(LLMModel.objects.filter(is_default=True)) == [new]
    old.refresh_from_db()
    assert not old.is_default
    assert LogEntry.objects.get(object_id=str(new.pk)).get_change_message() == "Changed default."


def test_the_list_shows_a_filled_star_for_the_default_and_buttons_for_the_others(admin_client):
    default = LLMModelFactory(is_default=True)
    other = LLMModelFactory()

    html = admin_client.get(CHANGELIST).text

    assert html.count("\u2605") == 1
    assert f'formaction="{star_url(other)}" formmethod="post"' in html
    assert star_url(default) not in html
    assert 'name="csrfmiddlewaretoken"' in html


def test_the_star_refuses_get(admin_client):
    model = LLMModelFactory()

    assert admin_client.get(star_url(model)).status_code == 405
    model.refresh_from_db()
    assert not model.is_default


def test_the_star_needs_a_csrf_token():
    model = LLMModelFactory()
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_superuser("root", password="pw"))

    assert client.post(star_url(model)).status_code == 403
    model.refresh_from_db()
    assert not model.is_default


def test_the_star_on_a_disabled_model_says_why_and_changes_nothing(admin_client):
    default = LLMModelFactory(is_default=True)
    disabled = LLMModelFactory(enabled=False)

    response = admin_client.post(star_url(disabled), follow=True)

    assert "A disabled model can&#x27;t be the default" in response.text
    default.refresh_from_db()
    assert default.is_default


def test_users_who_may_only_view_models_get_no_star_button(client):
    model = LLMModelFactory()
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_llmmodel"))
    client.force_login(viewer)

    html = client.get(CHANGELIST).text

    assert star_url(model) not in html
    assert "\u2606" in html
    assert client.post(star_url(model)).status_code == 403
    model.refresh_from_db()
    assert not model.is_default


def test_users_who_may_only_view_models_see_the_stored_options_as_text(client):
    model = LLMModelFactory(
        provider=ProviderFactory(openrouter=True),
        provider_options={"provider_order": ["openai", "azure"], "allow_fallbacks": False},
    )
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_llmmodel"))
    client.force_login(viewer)

    html = client.get(change_url(model)).text

    assert "<div>Provider order: [&quot;openai&quot;, &quot;azure&quot;]</div>" in html
    assert "<div>Allow fallbacks: false</div>" in html
    assert "provider-options-anthropic" not in html


def test_the_list_follows_the_registry_order_and_says_who_gets_each_model(admin_client):
    google = ProviderFactory(google=True, enabled=False)
    openai = ProviderFactory(openai=True)
    anthropic = ProviderFactory(anthropic=True, no_key=True)
    LLMModelFactory(provider=google, display_name="Gemini")
    LLMModelFactory(provider=openai, display_name="GPT-5")
    LLMModelFactory(provider=openai, display_name="GPT-4.1", enabled=False)
    LLMModelFactory(provider=anthropic, display_name="Claude")

    response = admin_client.get(CHANGELIST)

    rows = [
        (model.display_name, response.context["cl"].model_admin.developers_get_it(model))
        for model in response.context["cl"].result_list
    ]
    # Anthropic, OpenAI, Google: the registry's order, as developers see the providers.
    assert rows == [
        ("Claude", "No: no key"),
        ("GPT-4.1", "No: disabled"),
        ("GPT-5", "Yes"),
        ("Gemini", "No: provider disabled"),
    ]


@pytest.mark.parametrize(
    ("action", "expected", "message"),
    [
        pytest.param("enable_models", [True, True, True], "Enabled 2 models.", id="enable"),
        pytest.param("disable_models", [True, False, False], "Disabled 1 model.", id="disable"),
    ],
)
def test_models_are_enabled_and_disabled_in_bulk_the_default_excepted(
    admin_client, action, expected, message
):
    provider = ProviderFactory()
    default = LLMModelFactory(provider=provider, display_name="A", is_default=True)
    others = [
        LLMModelFactory(provider=provider, display_name="B", enabled=False),
        LLMModelFactory(provider=provider, display_name="C", enabled=action == "disable_models"),
    ]

    response = admin_client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [default.pk, *(m.pk for m in others)]},
        follow=True,
    )

    states = [m.enabled for m in LLMModel.objects.order_by("display_name")]
    assert states == expected
    assert message in response.text
    if action == "disable_models":
        assert "A is the default model and stays enabled: choose another default first." in (
            response.text
        )


def test_the_delete_page_of_the_default_says_what_deleting_it_does(admin_client):
    model = LLMModelFactory(is_default=True, display_name="Claude Sonnet")

    response = admin_client.get(reverse("admin:llmadmin_llmmodel_delete", args=[model.pk]))

    assert (
        "Claude Sonnet is the default model: after deleting it there is no default, and "
        "developers get the first available model until you star another."
    ) in response.text


def test_starring_a_model_developers_cannot_get_warns(admin_client):
    model = LLMModelFactory(provider=ProviderFactory(openai=True, no_key=True), display_name="X")

    response = admin_client.post(star_url(model), follow=True)

    assert "X is now the default model." in response.text
    assert "Developers don&#x27;t get it yet: OpenAI is unavailable (no key)." in response.text
