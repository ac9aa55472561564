"""Google Gemini: options, requests (the same as google-genai's), streams, errors, model lists."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from google import genai
from google.genai import types

from chat.models import Message
from llmadmin.models import LLMModel
from llmadmin.providers.http import ChatInput
from llmadmin.services import provider_check_connection
from tests.chat_api import send
from tests.factories import LLMModelFactory, ProviderFactory, provider_at
from tests.provider_servers import FakeProvider, serve

pytestmark = pytest.mark.django_db

KEY = "sk-GEMINISECRET-42"
URL = reverse("api-chat")
HI = [{"role": "user", "parts": [{"text": "Hi"}]}]
SDK_HI = [types.Content(role="user", parts=[types.Part(text="Hi")])]
CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT, HARM_CATEGORY_HATE_SPEECH, HARM_CATEGORY_SEXUALLY_EXPLICIT, "
    "HARM_CATEGORY_DANGEROUS_CONTENT, HARM_CATEGORY_CIVIC_INTEGRITY"
)
THRESHOLDS = "BLOCK_LOW_AND_ABOVE, BLOCK_MEDIUM_AND_ABOVE, BLOCK_ONLY_HIGH, BLOCK_NONE, OFF"
SAFETY = {"HARM_CATEGORY_HARASSMENT": "BLOCK_ONLY_HIGH", "HARM_CATEGORY_HATE_SPEECH": "OFF"}
EVERY_CATEGORY = {
    "HARM_CATEGORY_HARASSMENT": "BLOCK_LOW_AND_ABOVE",
    "HARM_CATEGORY_HATE_SPEECH": "BLOCK_MEDIUM_AND_ABOVE",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT": "BLOCK_ONLY_HIGH",
    "HARM_CATEGORY_DANGEROUS_CONTENT": "BLOCK_NONE",
    "HARM_CATEGORY_CIVIC_INTEGRITY": "OFF",
}


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


def sdk_client(server: FakeProvider) -> genai.Client:
    """google-genai pointed at a fake; keep it while streaming (a dropped client closes)."""
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.url))


def as_json(value) -> str:
    """Strict JSON equality: 40 and 40.0 differ here, as they do on the wire."""
    return json.dumps(value, sort_keys=True)


# --- 1. Options ------------------------------------------------------------------------------

# fmt: off
VALID = [
    pytest.param({"top_k": 64, "temperature": 1.5}, {"thinking_budget": -1}, id="dynamic budget"),
    pytest.param({}, {"thinking_budget": 0, "safety_settings": SAFETY}, id="thinking off, safety"),
    pytest.param({}, {"thinking_level": "high", "include_thoughts": True}, id="level, thoughts"),
    pytest.param({}, {"thinking_level": "minimal"}, id="minimal level"),
    pytest.param({}, {"thinking_budget": 32768, "include_thoughts": True}, id="largest budget"),
    pytest.param({}, {"thinking_budget": 0, "include_thoughts": False}, id="off, no thoughts"),
    pytest.param({}, {"safety_settings": EVERY_CATEGORY}, id="every safety category"),
    pytest.param({"temperature": 2.0, "top_p": 1.0, "presence_penalty": -2.0,
                  "frequency_penalty": 2.0}, {}, id="sampling and penalties at their limits"),
]

# (options, the one message on provider_options)
INVALID = [
    pytest.param({"thinking_budget": -2}, "Thinking budget: Must be at least -1.", id="budget -2"),
    pytest.param({"thinking_budget": 40000}, "Thinking budget: Must be at most 32768.",
                 id="budget 40000"),
    pytest.param({"thinking_budget": "1024"}, "Thinking budget: Enter a whole number.",
                 id="budget as text"),
    pytest.param({"thinking_budget": True}, "Thinking budget: Enter a whole number.",
                 id="budget as bool"),
    pytest.param({"thinking_budget": 1024, "thinking_level": "low"},
                 "Thinking level: Set either a thinking level (Gemini 3) or a thinking budget.",
                 id="level and budget"),
    pytest.param({"thinking_budget": 0, "include_thoughts": True},
                 "Include thoughts: Thoughts can't be included with thinking off (budget 0).",
                 id="thoughts with thinking off"),
    pytest.param({"thinking_level": "xhigh"},
                 "Thinking level: 'xhigh' is not one of: minimal, low, medium, high.",
                 id="xhigh level"),
    pytest.param({"thinking_level": "HIGH"},
                 "Thinking level: 'HIGH' is not one of: minimal, low, medium, high.",
                 id="the wire's enum name as level"),
    pytest.param({"include_thoughts": "yes"}, "Include thoughts: Must be true or false.",
                 id="thoughts not a bool"),
    pytest.param({"safety_settings": {"HARM_CATEGORY_VIOLENCE": "OFF"}},
                 f"Safety settings: 'HARM_CATEGORY_VIOLENCE' is not one of: {CATEGORIES}.",
                 id="unknown category"),
    pytest.param({"safety_settings": {"HARM_CATEGORY_IMAGE_HATE": "OFF"}},
                 f"Safety settings: 'HARM_CATEGORY_IMAGE_HATE' is not one of: {CATEGORIES}.",
                 id="image category (not in the Gemini API)"),
    pytest.param({"safety_settings": {"HARM_CATEGORY_HARASSMENT": "BLOCK_ALL"}},
                 f"Safety settings: 'BLOCK_ALL' for HARM_CATEGORY_HARASSMENT is not one of: "
                 f"{THRESHOLDS}.", id="unknown threshold"),
    pytest.param({"safety_settings": ["OFF"]},
                 "Safety settings: Enter a mapping of keys to values.", id="safety not a mapping"),
    pytest.param({"reasoning_effort": "low"},
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


@pytest.mark.parametrize(("options", "message"), INVALID)
def test_invalid_gemini_options_are_refused_with_the_options_label(options, message):
    model = LLMModelFactory.build(provider=ProviderFactory(google=True), provider_options=options)

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


# --- 2 and 3. Requests, and the same request from google-genai ---------------------------


def sdk_safety(settings: dict) -> list[types.SafetySetting]:
    return [types.SafetySetting(category=c, threshold=t) for c, t in settings.items()]


# (model fields, the GenerateContentConfig the SDK is given by hand, the body the API gets)
# fmt: off
REQUESTS = [
    pytest.param({"identifier": "gemini-2.5-flash"}, None, {"contents": HI}, id="nothing set"),
    pytest.param(
        {"identifier": "gemini-2.5-pro", "max_output_tokens": 8192, "temperature": 1.0,
         "top_p": 0.95, "top_k": 40, "presence_penalty": 0.5, "frequency_penalty": -0.5,
         "provider_options": {"thinking_budget": 2048, "include_thoughts": True,
                              "safety_settings": SAFETY}},
        types.GenerateContentConfig(
            max_output_tokens=8192, temperature=1.0, top_p=0.95, top_k=40, presence_penalty=0.5,
            frequency_penalty=-0.5, safety_settings=sdk_safety(SAFETY),
            thinking_config=types.ThinkingConfig(thinking_budget=2048, include_thoughts=True)),
        {"contents": HI,
         "generationConfig": {
             "maxOutputTokens": 8192, "temperature": 1.0, "topP": 0.95, "topK": 40.0,
             "presencePenalty": 0.5, "frequencyPenalty": -0.5,
             "thinkingConfig": {"thinking_budget": 2048, "include_thoughts": True}},
         "safetySettings": [
             {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"},
             {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"}]},
        id="every general field, thinking budget and safety",
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
        events = send(client, gemini_model(server, **fields))

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
    assert [name for name, _ in events] == ["conversation", "delta", "delta", "message", "done"]
    assert [data["text"] for name, data in events if name == "delta"] == ["Hello", " world"]
    assert (events[3][1]["input_tokens"], events[3][1]["output_tokens"]) == (12, 5)
    assert Message.objects.get(role="assistant").content == "Hello world"


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
        list(model.provider.client().stream_chat(model.settings(), history))
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
    assert [data["text"] for name, data in events if name == "delta"] == ["Hello", " world"]
    answer = Message.objects.get(role="assistant")
    # promptTokenCount already holds the cached tokens; output = answer + thinking tokens.
    assert (answer.content, answer.input_tokens, answer.output_tokens) == ("Hello world", 10, 8)


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
SAFETY_BLOCK = "The provider blocked the answer for safety reasons."
OVERLOADED = "The provider is overloaded: try again in a moment."
RATE_LIMITED = "The provider's rate limit was reached: try again in a moment."


# fmt: off
STREAM_FAILURES = [
    pytest.param(FakeProvider("google", KEY, mode="drop"), ["Hello", " world"], CUT_OFF,
                 id="dropped"),
    pytest.param(ScriptedGemini(chunks=[candidate("Hello"), candidate(" world")]),
                 ["Hello", " world"], CUT_OFF, id="ends without a finish reason"),
    pytest.param(FakeProvider("google", KEY, mode="midstream_error"), ["Hello"], OVERLOADED,
                 id="UNAVAILABLE mid-stream"),
    pytest.param(ScriptedGemini(chunks=[candidate("Hello"), {"error": {"code": 429}}]),
                 ["Hello"], RATE_LIMITED, id="429 mid-stream"),
    pytest.param(ScriptedGemini(chunks=[candidate("Hello"),
                                        {"error": {"status": "RESOURCE_EXHAUSTED"}}]),
                 ["Hello"], RATE_LIMITED, id="RESOURCE_EXHAUSTED mid-stream"),
    pytest.param(ScriptedGemini(chunks=[candidate("Hello"), {"error": {"status": "INTERNAL"}}]),
                 ["Hello"], "The provider reported an error mid-answer.", id="INTERNAL mid-stream"),
    pytest.param(ScriptedGemini(chunks=[{"promptFeedback": {"blockReason": "SAFETY"}}]),
                 [], SAFETY_BLOCK, id="blocked prompt"),
    pytest.param(ScriptedGemini(chunks=[candidate("Hello"), candidate("", finishReason="SAFETY")]),
                 ["Hello"], SAFETY_BLOCK, id="finish reason SAFETY"),
    pytest.param(ScriptedGemini(chunks=[candidate("Hello"),
                                        candidate("", finishReason="RECITATION")]),
                 ["Hello"], SAFETY_BLOCK, id="finish reason RECITATION"),
    pytest.param(ScriptedGemini(chunks=["Hello"]), [], "The provider sent a malformed answer.",
                 id="data that is not JSON"),
]
# fmt: on


@pytest.mark.parametrize(("fake", "deltas", "message"), STREAM_FAILURES)
def test_a_stream_that_fails_keeps_the_text_received(client, developer, fake, deltas, message):
    with serve(fake) as server:
        events = send(client, gemini_model(server))

    assert [data["text"] for name, data in events if name == "delta"] == deltas
    assert events[-1] == ("error", {"message": message})
    answers = [(m.content, m.error) for m in Message.objects.filter(role="assistant")]
    assert answers == ([("".join(deltas), message)] if deltas else [])
    assert Message.objects.filter(role="user", content="Hi").exists()


# fmt: off
REFUSALS = [
    pytest.param(FakeProvider("google", "sk-the-right-one"), {},
                 "The provider rejected the API key (400).", id="400 API_KEY_INVALID"),
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

    assert events[1:] == [("error", {"message": message})]
    assert list(Message.objects.values_list("role", "content")) == [("user", "Hi")]
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
    pytest.param(RefusingGemini(), "unreachable", "{host} answered 400.", "available",
                 id="another 400 is not"),
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
