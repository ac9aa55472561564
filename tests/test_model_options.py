"""Model options validated against the provider type's registry entry: what holds for every type.

Each family's own option table is in tests/test_provider_<family>.py.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from llmadmin.models import LLMModel
from llmadmin.providers import GENERAL_FIELDS, PROVIDER_TYPES
from tests.factories import LLMModelFactory, ProviderFactory

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
