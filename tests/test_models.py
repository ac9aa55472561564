"""General model fields: required fields, ranges, identifiers."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from llmadmin.models import LLMModel
from tests.factories import LLMModelFactory, ProviderFactory

pytestmark = pytest.mark.django_db


def errors_of(model: LLMModel) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as error:
        model.full_clean()
    return error.value.message_dict


def test_it_requires_identifier_display_name_and_context_limit():
    model = LLMModel(provider=ProviderFactory(), identifier="", display_name="")

    errors = errors_of(model)

    assert {"identifier", "display_name", "context_limit"} <= set(errors)


def test_it_defaults_the_compression_threshold_to_70_percent():
    model = LLMModelFactory()

    assert model.compression_threshold == 70


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("context_limit", 0),
        ("compression_threshold", 101),
        ("max_output_tokens", 0),
        ("temperature", -0.1),
        ("temperature", 2.1),
        ("top_p", 1.01),
        ("top_p", -0.5),
        ("top_k", 0),
        ("presence_penalty", -2.5),
        ("frequency_penalty", 2.01),
    ],
)
def test_it_rejects_a_value_out_of_range_on_its_field(field, value):
    model = LLMModelFactory.build(provider=ProviderFactory(google=True), **{field: value})

    assert field in errors_of(model)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("compression_threshold", 0),
        ("compression_threshold", 100),
        ("temperature", 0),
        ("temperature", 2),
        ("top_p", 0),
        ("top_p", 1),
        ("top_k", 1),
        ("presence_penalty", -2),
        ("frequency_penalty", 2),
        ("max_output_tokens", 200_000),
    ],
)
def test_it_accepts_the_bounds_of_each_range(field, value):
    LLMModelFactory.build(provider=ProviderFactory(google=True), **{field: value}).full_clean()


def test_it_rejects_max_output_tokens_above_the_context_limit():
    model = LLMModelFactory.build(context_limit=8000, max_output_tokens=8001)

    assert errors_of(model)["max_output_tokens"] == ["Must be at most the context limit (8000)."]


def test_it_rejects_a_duplicate_identifier_on_the_identifier_field():
    existing = LLMModelFactory(identifier="claude-sonnet-4-6")
    duplicate = LLMModelFactory.build(provider=existing.provider, identifier="claude-sonnet-4-6")

    assert errors_of(duplicate) == {
        "identifier": ["This provider already has a model with this identifier."]
    }


def test_it_allows_the_same_identifier_at_two_providers():
    LLMModelFactory(provider=ProviderFactory(openrouter=True), identifier="openai/gpt-5")

    LLMModelFactory.build(
        provider=ProviderFactory(vercel=True), identifier="openai/gpt-5"
    ).full_clean()


@pytest.mark.parametrize("identifier", ["gpt-5 ", "gpt 5", "claude\tsonnet"])
def test_it_rejects_whitespace_in_the_identifier(identifier):
    assert errors_of(LLMModelFactory.build(identifier=identifier))["identifier"] == [
        "Remove the spaces: an identifier has none."
    ]


DIRECTION_CONTROLS = [
    (0x061C, "arabic letter mark"),
    (0x200E, "left-to-right mark"),
    (0x200F, "right-to-left mark"),
    (0x202A, "left-to-right embedding"),
    (0x202B, "right-to-left embedding"),
    (0x202C, "pop directional formatting"),
    (0x202D, "left-to-right override"),
    (0x202E, "right-to-left override"),
    (0x2066, "left-to-right isolate"),
    (0x2067, "right-to-left isolate"),
    (0x2068, "first strong isolate"),
    (0x2069, "pop directional isolate"),
]
ZERO_WIDTH = [
    (0x200B, "zero-width space"),
    (0x200C, "zero-width non-joiner"),
    (0x200D, "zero-width joiner"),
    (0x2060, "word joiner"),
    (0xFEFF, "zero-width no-break space"),
]
HIDDEN_CHARACTERS = [
    *(
        pytest.param(
            chr(code),
            f"Remove the text-direction control U+{code:04X}: it reorders the text.",
            id=name,
        )
        for code, name in DIRECTION_CONTROLS
    ),
    *(
        pytest.param(
            chr(code),
            f"Remove the zero-width character U+{code:04X}: it is invisible in the text.",
            id=name,
        )
        for code, name in ZERO_WIDTH
    ),
]


@pytest.mark.parametrize(("character", "message"), HIDDEN_CHARACTERS)
def test_it_refuses_a_character_that_reorders_or_hides_text(character, message):
    model = LLMModelFactory.build(identifier=f"gpt-5{character}", display_name=f"GPT{character} 5")

    errors = errors_of(model)

    assert (errors["identifier"], errors["display_name"]) == ([message], [message])


def test_it_accepts_names_in_any_script():
    LLMModelFactory.build(
        identifier="modèle-日本-نموذج", display_name="Modèle 日本 نموذج"
    ).full_clean()


@pytest.mark.parametrize(
    "update",
    [
        {"context_limit": 0},
        {"compression_threshold": 150},
        {"max_output_tokens": 300_000},
        {"temperature": 3},
        {"top_p": 2},
        {"top_k": 0},
        {"presence_penalty": 5},
        {"frequency_penalty": -5},
    ],
)
def test_the_database_refuses_out_of_range_values_written_around_validation(update):
    model = LLMModelFactory(context_limit=200_000)

    with pytest.raises(IntegrityError), transaction.atomic():
        LLMModel.objects.filter(pk=model.pk).update(**update)


def test_the_database_refuses_a_duplicate_identifier_written_around_validation():
    existing = LLMModelFactory(identifier="gpt-5")

    with pytest.raises(IntegrityError), transaction.atomic():
        LLMModel.objects.bulk_create(
            [
                LLMModel(
                    provider=existing.provider,
                    identifier="gpt-5",
                    display_name="x",
                    context_limit=1,
                )
            ]
        )


# Invisible too (Unicode format characters, like the zero-width ones refused above): tag
# characters spell hidden ASCII ("ASCII smuggling" of instructions to a model), the invisible
# operators and the soft hyphen make a name pass for another.
MORE_INVISIBLE = [
    pytest.param("\u2063", id="invisible separator"),
    pytest.param("\u2064", id="invisible plus"),
    pytest.param("\u00ad", id="soft hyphen"),
    pytest.param("\u180e", id="mongolian vowel separator"),
    pytest.param("\U000e0041", id="tag latin capital letter A"),
]


@pytest.mark.parametrize("character", MORE_INVISIBLE)
def test_it_refuses_any_invisible_format_character(character):
    model = LLMModelFactory.build(identifier=f"gpt-5{character}", display_name=f"GPT{character} 5")

    errors = errors_of(model)

    assert {"identifier", "display_name"} <= set(errors)
