"""Provider-specific options and general sampling fields, validated per provider type."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from llmadmin.models import LLMModel
from llmadmin.providers import GENERAL_FIELDS, PROVIDER_TYPES
from tests.factories import LLMModelFactory, ProviderFactory

pytestmark = pytest.mark.django_db

TRAITS = {
    "anthropic": {"anthropic": True},
    "openai": {"openai": True},
    "google": {"google": True},
    "azure": {"azure": True},
    "bedrock": {"bedrock": True},
    "openai-compat": {"openai_compat": True},
    "openrouter": {"openrouter": True},
    "vercel": {"vercel": True},
}

SAFETY = {"HARM_CATEGORY_HARASSMENT": "BLOCK_ONLY_HIGH", "HARM_CATEGORY_HATE_SPEECH": "OFF"}

VALID = [
    ("anthropic", {"max_output_tokens": 16000}, {"thinking_budget_tokens": 1024}),
    ("anthropic", {"max_output_tokens": 16000, "top_p": 0.95}, {"thinking_budget_tokens": 8000}),
    ("anthropic", {"temperature": 1.0, "top_k": 40}, {"effort": "low"}),
    ("anthropic", {}, {"effort": "max"}),
    ("bedrock", {"max_output_tokens": 4096}, {"thinking_budget_tokens": 2048, "effort": "high"}),
    ("openai", {"temperature": 2.0, "presence_penalty": -2}, {"reasoning_effort": "minimal"}),
    ("openai", {}, {"max_completion_tokens": 32000, "parallel_tool_calls": False}),
    ("azure", {"frequency_penalty": 2}, {"reasoning_effort": "xhigh"}),
    ("openai-compat", {"temperature": 0.2}, {"reasoning_effort": "none"}),
    ("google", {"top_k": 64, "temperature": 1.5}, {"thinking_budget": -1}),
    ("google", {}, {"thinking_budget": 0, "safety_settings": SAFETY}),
    ("google", {}, {"thinking_level": "high", "include_thoughts": True}),
    ("openrouter", {"top_k": 1}, {"reasoning_enabled": True, "reasoning_effort": "xhigh"}),
    ("openrouter", {}, {"provider_order": ["anthropic", "amazon-bedrock"]}),
    ("openrouter", {}, {"allow_fallbacks": False}),
    ("vercel", {}, {"reasoning_enabled": True, "reasoning_effort": "low"}),
    ("vercel", {}, {"provider_order": ["bedrock", "anthropic"], "provider_only": ["anthropic"]}),
    ("vercel", {}, {"fallback_models": ["openai/gpt-5", "google/gemini-2.5-pro"]}),
]

# (type, general fields, options, field that carries the error, words in the message)
INVALID = [
    ("anthropic", {}, {"thinking_budget_tokens": 1023}, "provider_options", "at least 1024"),
    ("anthropic", {}, {"thinking_budget_tokens": "2048"}, "provider_options", "whole number"),
    ("anthropic", {}, {"thinking_budget_tokens": True}, "provider_options", "whole number"),
    (
        "anthropic",
        {"max_output_tokens": 2048},
        {"thinking_budget_tokens": 2048},
        "provider_options",
        "below max output tokens",
    ),
    ("anthropic", {}, {"thinking_budget_tokens": 2048}, "provider_options", "below max output"),
    (
        "anthropic",
        {"max_output_tokens": 8000, "temperature": 0.5},
        {"thinking_budget_tokens": 2048},
        "temperature",
        "thinking",
    ),
    (
        "anthropic",
        {"max_output_tokens": 8000, "top_k": 5},
        {"thinking_budget_tokens": 2048},
        "top_k",
        "thinking",
    ),
    (
        "anthropic",
        {"max_output_tokens": 8000, "top_p": 0.9},
        {"thinking_budget_tokens": 2048},
        "top_p",
        "0.95",
    ),
    ("anthropic", {}, {"effort": "extreme"}, "provider_options", "not one of"),
    ("anthropic", {"temperature": 1.5}, {}, "temperature", "from 0 to 1"),
    ("anthropic", {"presence_penalty": 0.5}, {}, "presence_penalty", "not supported"),
    ("anthropic", {}, {"reasoning_effort": "low"}, "provider_options", "Unknown option"),
    ("bedrock", {"temperature": 1.2}, {}, "temperature", "from 0 to 1"),
    ("bedrock", {"frequency_penalty": 1}, {}, "frequency_penalty", "not supported"),
    ("openai", {"top_k": 40}, {}, "top_k", "not supported"),
    ("openai", {}, {"reasoning_effort": "maximum"}, "provider_options", "not one of"),
    ("openai", {}, {"max_completion_tokens": 0}, "provider_options", "at least 1"),
    ("openai", {}, {"parallel_tool_calls": "yes"}, "provider_options", "true or false"),
    (
        "openai",
        {"max_output_tokens": 4096},
        {"max_completion_tokens": 4096},
        "provider_options",
        "not both",
    ),
    ("openai", {}, {"max_completion_tokens": 300_000}, "provider_options", "context limit"),
    ("openai", {}, {"thinking_budget_tokens": 2048}, "provider_options", "Unknown option"),
    ("azure", {}, {"effort": "low"}, "provider_options", "Unknown option"),
    ("openai-compat", {}, {"parallel_tool_calls": True}, "provider_options", "Unknown option"),
    ("google", {}, {"thinking_budget": -2}, "provider_options", "at least -1"),
    ("google", {}, {"thinking_budget": 40000}, "provider_options", "at most 32768"),
    (
        "google",
        {},
        {"thinking_budget": 1024, "thinking_level": "low"},
        "provider_options",
        "either a thinking level",
    ),
    (
        "google",
        {},
        {"thinking_budget": 0, "include_thoughts": True},
        "provider_options",
        "thinking off",
    ),
    (
        "google",
        {},
        {"safety_settings": {"HARM_CATEGORY_VIOLENCE": "OFF"}},
        "provider_options",
        "not one of",
    ),
    (
        "google",
        {},
        {"safety_settings": {"HARM_CATEGORY_HARASSMENT": "BLOCK_ALL"}},
        "provider_options",
        "not one of",
    ),
    ("google", {}, {"safety_settings": ["OFF"]}, "provider_options", "mapping"),
    ("openrouter", {}, {"reasoning_effort": "max"}, "provider_options", "not one of"),
    (
        "openrouter",
        {},
        {"reasoning_enabled": False, "reasoning_effort": "high"},
        "provider_options",
        "needs reasoning enabled",
    ),
    ("openrouter", {}, {"provider_order": "anthropic"}, "provider_options", "a list"),
    ("openrouter", {}, {"provider_order": ["Anthropic!"]}, "provider_options", "provider slug"),
    (
        "openrouter",
        {},
        {"provider_order": ["openai", "openai"]},
        "provider_options",
        "only once",
    ),
    ("openrouter", {}, {"allow_fallbacks": 1}, "provider_options", "true or false"),
    ("vercel", {}, {"fallback_models": ["not a model"]}, "provider_options", "model id"),
    ("vercel", {}, {"reasoning_effort": "max"}, "provider_options", "not one of"),
    ("vercel", {"top_k": 10}, {}, "top_k", "not supported"),
    ("vercel", {}, {"allow_fallbacks": True}, "provider_options", "Unknown option"),
]


def build_model(provider_type: str, general: dict, options: object) -> LLMModel:
    provider = ProviderFactory(**TRAITS[provider_type])
    return LLMModelFactory.build(
        provider=provider, context_limit=200_000, provider_options=options, **general
    )


def test_every_provider_type_is_covered_by_the_valid_table():
    assert {case[0] for case in VALID} == set(PROVIDER_TYPES)
    assert {case[0] for case in INVALID} == set(PROVIDER_TYPES)


def test_no_option_name_clashes_with_a_general_field():
    for provider_type in PROVIDER_TYPES.values():
        assert not set(provider_type.options_by_name) & {*GENERAL_FIELDS, "context_limit"}


@pytest.mark.parametrize(("provider_type", "general", "options"), VALID)
def test_it_accepts_valid_options(provider_type, general, options):
    model = build_model(provider_type, general, options)

    model.full_clean()
    model.save()

    assert LLMModel.objects.get(pk=model.pk).provider_options == options


@pytest.mark.parametrize(("provider_type", "general", "options", "field", "words"), INVALID)
def test_it_rejects_invalid_options_on_their_field(provider_type, general, options, field, words):
    model = build_model(provider_type, general, options)

    with pytest.raises(ValidationError) as error:
        model.full_clean()

    assert field in error.value.message_dict
    assert any(words in message for message in error.value.message_dict[field])
    assert not LLMModel.objects.exists()


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
    model = build_model("openai", {}, {"reasoning_effort": None, "parallel_tool_calls": True})

    model.full_clean()

    assert model.provider_options == {"parallel_tool_calls": True}


def test_it_revalidates_options_when_the_model_moves_to_another_provider():
    model = build_model("anthropic", {"max_output_tokens": 8000}, {"effort": "low"})
    model.full_clean()
    model.save()

    model.provider = ProviderFactory(openai=True)
    with pytest.raises(ValidationError) as error:
        model.full_clean()

    assert "'effort': Unknown option for OpenAI." in error.value.message_dict["provider_options"]
    assert LLMModel.objects.get(pk=model.pk).provider.type == "anthropic"
