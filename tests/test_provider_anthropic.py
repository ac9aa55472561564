"""Anthropic (type "anthropic"): options, requests as the official SDK (anthropic 2.14) sends
them, streamed answers and errors through the chat API, and the model list."""

from __future__ import annotations

import json

import anthropic
import pytest
from django.core.exceptions import ValidationError

from chat.models import Message
from llmadmin.models import LLMModel
from llmadmin.providers.http import RemoteModel
from llmadmin.services import provider_check_connection
from tests.chat_api import conversation_with_summary, send, stored_messages, texts
from tests.factories import LLMModelFactory, ProviderFactory, provider_at
from tests.provider_servers import FakeProvider, serve

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
WITH_THINKING = {"max_output_tokens": 8000}
BUDGET = {"thinking_budget_tokens": 2048}


def option_errors(*messages: str) -> dict[str, list[str]]:
    return {"provider_options": list(messages)}


# fmt: off
VALID = [  # (general fields, options), stored as given
    pytest.param({}, {}, id="nothing set"),
    pytest.param({"max_output_tokens": 16000}, {"thinking_budget_tokens": 1024},
                 id="minimum budget"),
    pytest.param({"max_output_tokens": 16000, "top_p": 0.95}, {"thinking_budget_tokens": 8000},
                 id="thinking with top P at 0.95"),
    pytest.param({"max_output_tokens": 16000, "top_p": 1.0},
                 {"thinking_budget_tokens": 15999, "effort": "high"},
                 id="budget just below max output, with effort"),
    pytest.param({"temperature": 1.0, "top_k": 40}, {"effort": "low"}, id="sampling and effort"),
    pytest.param({"temperature": 0}, {"effort": "medium"}, id="temperature 0"),
    pytest.param({}, {"effort": "xhigh"}, id="effort xhigh"),
    pytest.param({}, {"effort": "max"}, id="effort max"),
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
    pytest.param({**WITH_THINKING, "temperature": 0.5}, BUDGET,
                 {"temperature": ["Temperature can't be changed while extended thinking is on."]},
                 id="temperature with thinking"),
    pytest.param({**WITH_THINKING, "top_k": 5}, BUDGET,
                 {"top_k": ["Top K can't be changed while extended thinking is on."]},
                 id="top K with thinking"),
    pytest.param({**WITH_THINKING, "top_p": 0.9}, BUDGET,
                 {"top_p": ["With extended thinking on, top P must be between 0.95 and 1."]},
                 id="top P below 0.95 with thinking"),
    pytest.param({"max_output_tokens": 2048, "temperature": 0.5, "top_k": 5}, BUDGET,
                 {**option_errors(BUDGET_BELOW),
                  "temperature": ["Temperature can't be changed while extended thinking is on."],
                  "top_k": ["Top K can't be changed while extended thinking is on."]},
                 id="every thinking conflict at once"),
    pytest.param({}, {"effort": "extreme"},
                 option_errors(f"Effort: 'extreme' is not one of: {EFFORTS}."),
                 id="unknown effort"),
    pytest.param({}, {"effort": "High"},
                 option_errors(f"Effort: 'High' is not one of: {EFFORTS}."),
                 id="effort in capitals"),
    pytest.param({"temperature": 1.5}, {},
                 {"temperature": ["Anthropic accepts a temperature from 0 to 1."]},
                 id="temperature above 1"),
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


# --- 2 and 3. Requests, as the official SDK sends them --------------------------------------

STREAM = {"messages": HI, "stream": True}
THINKING_8000 = {"type": "enabled", "budget_tokens": 8000}

# (model fields, summary in the conversation, exact body, the SDK call's own arguments).
# The SDK (2.14) has no temperature, top_p or top_k arguments any more; the API still takes
# them, and extra_body puts them at the top level of the body, where the API reads them.
# fmt: off
REQUESTS = [
    pytest.param(
        {"identifier": "claude-haiku-4-5"}, None,
        {"model": "claude-haiku-4-5", "max_tokens": 8192, **STREAM},
        {"model": "claude-haiku-4-5", "max_tokens": 8192},
        id="nothing set"),
    pytest.param(
        {"identifier": "claude-sonnet-4-6", "max_output_tokens": 16000, "top_p": 0.95,
         "provider_options": {"thinking_budget_tokens": 8000, "effort": "high"}}, None,
        {"model": "claude-sonnet-4-6", "max_tokens": 16000, **STREAM, "top_p": 0.95,
         "thinking": THINKING_8000, "output_config": {"effort": "high"}},
        {"model": "claude-sonnet-4-6", "max_tokens": 16000, "thinking": THINKING_8000,
         "output_config": {"effort": "high"}, "extra_body": {"top_p": 0.95}},
        id="thinking, effort and top P"),
    pytest.param(
        {"identifier": "claude-opus-4-6", "max_output_tokens": 4096, "temperature": 0.7,
         "top_p": 0.9, "top_k": 40}, None,
        {"model": "claude-opus-4-6", "max_tokens": 4096, **STREAM, "temperature": 0.7,
         "top_p": 0.9, "top_k": 40},
        {"model": "claude-opus-4-6", "max_tokens": 4096,
         "extra_body": {"temperature": 0.7, "top_p": 0.9, "top_k": 40}},
        id="sampling"),
    pytest.param(
        {"identifier": "claude-opus-4-6", "provider_options": {"effort": "max"}}, SUMMARY,
        {"model": "claude-opus-4-6", "max_tokens": 8192, **STREAM, "system": SUMMARY,
         "output_config": {"effort": "max"}},
        {"model": "claude-opus-4-6", "max_tokens": 8192, "system": SUMMARY,
         "output_config": {"effort": "max"}},
        id="effort, and a summary as the system prompt"),
    pytest.param(
        {"identifier": "claude-sonnet-4-6", "max_output_tokens": 2048, "top_p": 1.0,
         "provider_options": {"thinking_budget_tokens": 1024}}, None,
        {"model": "claude-sonnet-4-6", "max_tokens": 2048, **STREAM, "top_p": 1.0,
         "thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"model": "claude-sonnet-4-6", "max_tokens": 2048,
         "thinking": {"type": "enabled", "budget_tokens": 1024}, "extra_body": {"top_p": 1.0}},
        id="minimum thinking budget"),
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
MID_ANSWER = [  # (fake, its mode, the error event's type, the message)
    pytest.param(DroppedAnthropic, "ok", "",
                 "The provider's answer was cut off before it finished.", id="dropped"),
    pytest.param(ErrorMidAnswer, "ok", "overloaded_error",
                 "The provider is overloaded: try again in a moment.", id="overloaded event"),
    pytest.param(ErrorMidAnswer, "ok", "rate_limit_error",
                 "The provider's rate limit was reached: try again in a moment.",
                 id="rate limit event"),
    pytest.param(ErrorMidAnswer, "ok", "api_error",
                 "The provider reported an error mid-answer.", id="api error event"),
    pytest.param(GarbledAnthropic, "ok", "",
                 "The provider sent a malformed answer.", id="not JSON"),
]
# fmt: on


@pytest.mark.parametrize(("fake_class", "mode", "error_type", "message"), MID_ANSWER)
def test_an_answer_ending_early_keeps_the_text_received(
    client, developer, fake_class, mode, error_type, message
):
    fake = fake_class("anthropic", KEY, mode=mode)
    fake.error_type = error_type
    with serve(fake) as server:
        model = LLMModelFactory(provider=provider_at("anthropic", server.url, api_key=KEY))
        events = send(client, model)

    assert texts(events) == ["Hello"]
    assert events[-1] == ("error", {"message": message})
    assert stored_messages() == [("user", "Hi", ""), ("assistant", "Hello", message)]


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
    pytest.param("slow", {},
                 "Could not reach {host}: timed out after 0.5 s.", id="no answer in time"),
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
    assert events[1:] == [("error", {"message": message.format(host=host)})]
    assert stored_messages() == [("user", "Hi", "")]


def test_a_wrong_key_reaches_the_user_without_the_key(client, developer):
    with serve(FakeProvider("anthropic", "sk-ant-the-right-one")) as server:
        model = LLMModelFactory(provider=provider_at("anthropic", server.url, api_key=KEY))
        events = send(client, model)

    assert events[1:] == [("error", {"message": "The provider rejected the API key (401)."})]
    assert KEY not in json.dumps(events)


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
        pytest.param("error500", "{host} answered 500.", id="500"),
        pytest.param("malformed", "{host} answered with something that is not JSON.", id="html"),
        pytest.param("slow", "Could not reach {host}: timed out after 0.5 s.", id="slow"),
    ],
)
def test_an_outage_is_recorded_as_unreachable(mode, reason):
    with serve(FakeProvider("anthropic", KEY, mode=mode)) as server:
        provider = provider_at("anthropic", server.url, api_key=KEY)
        result = provider_check_connection(provider=provider)

    assert result == ("unreachable", reason.format(host=server.url.removeprefix("http://")))
