"""Model options validated against the provider type's registry entry: what holds for every type.

Each family's own option table is in tests/test_provider_<family>.py.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from llmadmin.models import LLMModel
from llmadmin.providers import GENERAL_FIELDS, PROVIDER_TYPES
from tests.chat_api import send
from tests.factories import LLMModelFactory, ProviderFactory, catalog_model, provider_at
from tests.providers.fakes import fake_for, serve

pytestmark = pytest.mark.django_db


def build_model(provider_type: str, general: dict, options: object) -> LLMModel:
    provider = ProviderFactory(**{provider_type.replace("-", "_"): True})
    return LLMModelFactory.build(
        provider=provider, context_limit=200_000, provider_options=options, **general
    )


def test_no_option_name_clashes_with_a_general_field():
    for provider_type in PROVIDER_TYPES.values():
        assert not set(provider_type.options_by_name) & {*GENERAL_FIELDS, "context_limit"}


def test_it_names_the_option_in_a_provider_option_error():
    model = build_model("anthropic", {}, {"thinking_budget_tokens": 10})

    with pytest.raises(ValidationError) as error:
        model.full_clean()

    assert error.value.message_dict["provider_options"] == [
        "Thinking budget tokens: Must be at least 1024."
    ]


def test_it_reports_every_bad_option_at_once():
    model = build_model("openai", {}, {"reasoning_effort": "huge", "colour": "blue"})

    with pytest.raises(ValidationError) as error:
        model.full_clean()

    messages = error.value.message_dict["provider_options"]
    assert len(messages) == 2
    assert any("'colour'" in message and "Unknown option" in message for message in messages)


def test_it_rejects_options_that_are_not_an_object():
    model = build_model("openai", {}, ["reasoning_effort", "low"])

    with pytest.raises(ValidationError) as error:
        model.full_clean()

    assert "provider_options" in error.value.message_dict


def test_it_drops_options_explicitly_left_unset():
    model = build_model("openai", {}, {"reasoning_effort": None, "max_completion_tokens": 1000})

    model.full_clean()

    assert model.provider_options == {"max_completion_tokens": 1000}


def test_it_revalidates_options_when_the_model_moves_to_another_provider():
    model = build_model("anthropic", {"max_output_tokens": 8000}, {"effort": "low"})
    model.full_clean()
    model.save()

    model.provider = ProviderFactory(openai=True)
    with pytest.raises(ValidationError) as error:
        model.full_clean()

    assert "'effort': Unknown option for OpenAI." in error.value.message_dict["provider_options"]
    assert LLMModel.objects.get(pk=model.pk).provider.type == "anthropic"


# --- A catalog limit overridden knowingly (issue 24) ------------------------------------------
#
# The models.dev snapshot can lag a provider's docs: Claude Sonnet 4.6 writes 128K tokens
# (Anthropic's models overview), the snapshot says 64,000. An admin may go above the catalog's
# output limit by ticking the override and saying why; the context limit still holds.

SONNET_46 = "claude-sonnet-4-6"
OVERRIDE = {"override_catalog_limit": True, "catalog_limit_note": "Anthropic: 128K output."}
NOTE_NEEDED = (
    "Say why the catalog's limit doesn't hold, e.g. the provider's page that gives the higher "
    "limit."
)
SNAPSHOT_LIMIT = "Claude Sonnet 4.6 writes at most 64000 tokens (models.dev)."

# fmt: off
LIMITS = [  # (type, identifier, fields, options; the exact errors, or None: saved as given)
    pytest.param("anthropic", SONNET_46, {"max_output_tokens": 64_001}, {},
                 {"max_output_tokens": [SNAPSHOT_LIMIT]}, id="above the snapshot's limit"),
    pytest.param("anthropic", SONNET_46, {"max_output_tokens": 128_000, **OVERRIDE}, {}, None,
                 id="up to the documented 128K, overridden with a note"),
    pytest.param("bedrock", f"us.anthropic.{SONNET_46}", {"max_output_tokens": 100_000,
                                                          **OVERRIDE}, {}, None,
                 id="Bedrock's Sonnet 4.6 profile, overridden with a note"),
    pytest.param("openai", "gpt-5.4", {**OVERRIDE}, {"max_completion_tokens": 200_000}, None,
                 id="OpenAI's max completion tokens option, overridden with a note"),
    pytest.param("anthropic", SONNET_46, {"max_output_tokens": 128_000,
                                          "override_catalog_limit": True}, {},
                 {"catalog_limit_note": [NOTE_NEEDED]}, id="overridden without a note"),
    pytest.param("anthropic", SONNET_46, {"max_output_tokens": 128_000,
                                          "override_catalog_limit": True,
                                          "catalog_limit_note": "  "}, {},
                 {"catalog_limit_note": [NOTE_NEEDED]}, id="overridden with a blank note"),
    pytest.param("anthropic", SONNET_46, {"max_output_tokens": 2_000_000, **OVERRIDE}, {},
                 {"max_output_tokens": ["Must be at most the context limit (1000000)."]},
                 id="the context limit still holds"),
]
# fmt: on


@pytest.mark.parametrize(("provider_type", "identifier", "fields", "options", "errors"), LIMITS)
def test_a_catalog_output_limit_is_overridden_only_with_a_note(
    provider_type, identifier, fields, options, errors
):
    provider = ProviderFactory(**{provider_type: True})
    model = catalog_model(provider, identifier, fields, options)

    if errors is not None:
        with pytest.raises(ValidationError) as error:
            model.full_clean()
        assert error.value.message_dict == errors
        return
    model.full_clean()
    model.save()
    stored = LLMModel.objects.get(pk=model.pk)
    assert (stored.override_catalog_limit, stored.catalog_limit_note) == (
        True,
        OVERRIDE["catalog_limit_note"],
    )
    assert stored.provider_options == options


def test_the_documented_limit_is_answered_by_the_provider(client, developer):
    # The fake knows Anthropic's documented 128K on its own (tests/providers/anthropic/fake.py).
    with serve(fake_for("anthropic", "sk-ant-test")) as server:
        model = catalog_model(
            provider_at("anthropic", server.url, api_key="sk-ant-test"),
            SONNET_46,
            {"max_output_tokens": 128_000, **OVERRIDE},
            {},
        )
        model.full_clean()
        model.save()
        events = send(client, model)

    assert server.requests[0].body["max_tokens"] == 128_000
    assert [name for name, _ in events] == ["conversation", "delta", "delta", "message", "done"]
