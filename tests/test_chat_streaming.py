"""Chat answers under load and faults: every answer ends, nothing the user saw is lost.

The turns run under Django's ASGI handler (tests.chat_api), or through a real uvicorn server
on loopback where the test needs the network between the client and the server: arrival of
each event as it comes, and a client that goes away.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from decimal import Decimal
from http.server import BaseHTTPRequestHandler

import httpx2
import pytest
from django.db import DatabaseError, DataError, OperationalError, connection

import chat.retries
from billing.models import Pricing, UsageRecord
from chat.models import Conversation, Message
from llmadmin.models import LLMModel
from llmadmin.providers.contract import ChatInput
from llmadmin.providers.errors import ChatError
from tests.chat_api import events_of, post_chat, send, texts
from tests.conftest import connections_in_use
from tests.factories import LLMModelFactory, provider_at
from tests.providers.servers import loopback_server
from tests.stream_servers import (
    ANTHROPIC_PING,
    KEEP_ALIVE,
    OPENAI_END,
    OPENAI_STOP,
    Script,
    anthropic_event,
    anthropic_start,
    data,
    openai_delta,
    serve_script,
)

KEY = "sk-STREAMSECRET-7"


def model_at(url: str, provider_type: str = "openai-compat") -> LLMModel:
    return LLMModelFactory(provider=provider_at(provider_type, url, api_key=KEY))


def stored_answer() -> Message:
    return Message.objects.filter(role=Message.Role.ASSISTANT).get()


def ending(events: list[tuple[str, dict]]) -> tuple[str, dict]:
    return events[-1]


# --- Every answer has an end ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("provider_type", "start", "keep_alive"),
    [
        pytest.param("openai-compat", openai_delta("Hel"), KEEP_ALIVE, id="SSE comments"),
        pytest.param("anthropic", anthropic_start("Hel"), ANTHROPIC_PING, id="Anthropic pings"),
        pytest.param(
            "openai-compat",
            openai_delta("Hel"),
            data({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}),
            id="usage counts",
        ),
    ],
)
def test_a_provider_that_only_keeps_alive_is_ended_at_the_idle_limit(
    client, developer, settings, provider_type, start, keep_alive
):
    settings.PROVIDER_STREAM_IDLE_TIMEOUT = 0.5
    script = Script([start], forever=keep_alive, every=0.05)
    with serve_script(script) as url:
        events = send(client, model_at(url, provider_type))
        closed = script.wait_for_close()

    assert texts(events) == ["Hel"]
    name, error = ending(events)
    assert name == "error"
    assert error["stop_reason"] == "timed_out"
    assert "no answer text for 0.5 s" in error["message"]
    answer = stored_answer()
    assert (answer.content, answer.stop_reason) == ("Hel", "timed_out")
    assert closed is not None  # the upstream request was closed


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("provider_type", "start", "thinking", "end"),
    [
        pytest.param(
            "anthropic",
            anthropic_event("message_start", {"message": {"usage": {"input_tokens": 5}}}),
            anthropic_event(
                "content_block_delta",
                {"index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}},
            ),
            anthropic_start("42")
            + anthropic_event("message_delta", {"delta": {"stop_reason": "end_turn"}})
            + anthropic_event("message_stop", {}),
            id="Anthropic thinking",
        ),
        pytest.param(
            "openai-compat",
            b"",
            data({"choices": [{"delta": {"reasoning": "hm"}}]}),
            openai_delta("42") + OPENAI_END,
            id="OpenRouter reasoning",
        ),
    ],
)
def test_a_model_that_thinks_past_the_idle_limit_still_answers(
    client, developer, settings, provider_type, start, thinking, end
):
    settings.PROVIDER_STREAM_IDLE_TIMEOUT = 0.5
    script = Script([start, *[step for _ in range(10) for step in (thinking, 0.1)], end])
    with serve_script(script) as url:
        events = send(client, model_at(url, provider_type))

    assert texts(events) == ["42"]
    assert ending(events)[0] == "done"


@pytest.mark.django_db
def test_a_provider_that_trickles_text_is_ended_at_the_deadline(client, developer, settings):
    settings.PROVIDER_STREAM_TIMEOUT = 1.0
    settings.PROVIDER_STREAM_IDLE_TIMEOUT = 0.5
    script = Script([], forever=openai_delta("x"), every=0.1)
    with serve_script(script) as url:
        events = send(client, model_at(url))
        closed = script.wait_for_close()

    name, error = ending(events)
    assert name == "error"
    assert error["stop_reason"] == "timed_out"
    assert "longer than 1 s" in error["message"]
    seen = "".join(texts(events))
    assert len(seen) >= 5
    assert stored_answer().content == seen
    assert closed is not None


@pytest.mark.django_db
def test_a_provider_that_never_sends_its_answers_headers_is_timed_out(client, developer, settings):
    settings.PROVIDER_READ_TIMEOUT = 0.5
    settings.PROVIDER_STREAM_IDLE_TIMEOUT = 60
    done = threading.Event()

    class Silent(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            done.wait(10)  # the connection stays open, and nothing is sent

    with loopback_server(Silent) as url:
        events = send(client, model_at(url))
        done.set()

    name, error = ending(events)
    assert name == "error"
    assert error["stop_reason"] == "timed_out"
    assert error["message"] == "The provider sent nothing for 0.5 s: the answer was ended there."
    assert stored_answer().stop_reason == "timed_out"


# --- Garbage from the provider --------------------------------------------------------------


GARBAGE = [
    pytest.param(data({"choices": ["x"]}), "error", id="a choice that is a string"),
    pytest.param(data({"choices": [{"delta": "str"}]}), "error", id="a delta that is a string"),
    pytest.param(data({"choices": "all"}), "error", id="choices that are a string"),
    pytest.param(b"data: {not json\n\n", "error", id="not JSON"),
    pytest.param(data([1, 2]), "error", id="a list, not an object"),
    pytest.param(
        data({"choices": [{"delta": {"content": 5}}]}), "error", id="content that is a number"
    ),
    pytest.param(b"data: " + b"x" * (2 * 1024 * 1024), "error", id="a line of 2 MiB"),
    pytest.param(
        data({"choices": [], "usage": {"prompt_tokens": -5, "completion_tokens": 2}}),
        "done",
        id="usage of -5",
    ),
    pytest.param(
        data({"choices": [], "usage": {"prompt_tokens": "lots", "completion_tokens": 2}}),
        "done",
        id="usage of 'lots'",
    ),
    pytest.param(
        b'data: {"choices": [], "usage": {"prompt_tokens": 1e20, "completion_tokens": 2}}\n\n',
        "done",
        id="usage of 1e20",
    ),
    pytest.param(
        data({"choices": [], "usage": {"prompt_tokens": 10**20, "completion_tokens": 2}}),
        "done",
        id="usage of 10**20, a whole number",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("garbage", "end"), GARBAGE)
def test_garbage_after_text_ends_the_answer_clearly_and_keeps_the_text(
    client, developer, garbage, end
):
    script = Script([openai_delta("Hello"), garbage, openai_delta(" world"), OPENAI_STOP])
    with serve_script(script) as url:
        events = send(client, model_at(url))

    name, last = ending(events)
    answer = stored_answer()
    assert name == end
    assert answer.content == "".join(texts(events))
    assert answer.content.startswith("Hello")
    if end == "error":
        assert texts(events) == ["Hello"]
        assert last == {
            "message": "The provider sent a malformed answer.",
            "stop_reason": "failed",
        }
        assert answer.stop_reason == "failed"
    else:  # a bad count is ignored: the answer goes on and is stored without it
        assert texts(events) == ["Hello", " world"]
        assert (answer.input_tokens, answer.output_tokens) == (None, 2)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "unstorable",
    [
        pytest.param(b'{"content": "a\\ud800b"}', id="a lone surrogate"),
        pytest.param(b'{"content": "a\\u0000b"}', id="NUL, which PostgreSQL can't store"),
    ],
)
def test_text_the_database_cant_hold_is_sent_and_stored_the_same(client, developer, unstorable):
    delta = b'data: {"choices": [{"delta": ' + unstorable + b"}]}\n\n"
    script = Script([openai_delta("Hello "), delta, OPENAI_END])
    with serve_script(script) as url:
        events = send(client, model_at(url))

    assert texts(events) == ["Hello ", "a\ufffdb"]
    assert ending(events)[0] == "done"
    assert stored_answer().content == "Hello a\ufffdb"


@pytest.mark.django_db
def test_a_compressed_answer_we_did_not_ask_for_is_not_expanded(client, developer):
    """We ask for no compression (Accept-Encoding: identity): a gzip body, however small,
    might expand to gigabytes on the event loop. It is refused as it came."""
    script = Script([gzip.compress(openai_delta("Hello") + OPENAI_END)], gzip=True)
    with serve_script(script) as url:
        events = send(client, model_at(url))

    assert script.accept_encoding == "identity"
    assert ending(events) == (
        "error",
        {"message": "The provider sent a malformed answer.", "stop_reason": "failed"},
    )


# --- The database blinks --------------------------------------------------------------------


def failing_answer_writes(times: int, error: type[DatabaseError] = OperationalError):
    """A database that refuses the first `times` writes of an assistant's message."""
    failures = {"left": times}

    def execute(run, sql, params, many, context):
        answer = 'INSERT INTO "chat_message"' in sql and "assistant" in (params or ())
        if answer and failures["left"] > 0:
            failures["left"] -= 1
            raise error("server closed the connection unexpectedly")
        return run(sql, params, many, context)

    return execute


@pytest.fixture
def quick_retries(monkeypatch):
    """Retries a few milliseconds apart, given up after a tenth of a second."""
    monkeypatch.setattr(chat.retries, "WRITE_PAUSE", 0.01)
    monkeypatch.setattr(chat.retries, "WRITE_RETRY_SECONDS", 0.1)
    monkeypatch.setattr(chat.retries, "START_RETRY_SECONDS", 0.1)


@pytest.mark.django_db
def test_an_answer_write_that_fails_for_a_moment_is_retried_and_stored(
    client, developer, quick_retries, monkeypatch
):
    # Two failed writes a few milliseconds apart, then the third is taken: the retries may take
    # as long as they need on a loaded machine, and end at the first write that is taken.
    monkeypatch.setattr(chat.retries, "WRITE_RETRY_SECONDS", 10)
    script = Script([openai_delta("Hello"), OPENAI_END])
    with serve_script(script) as url, connection.execute_wrapper(failing_answer_writes(2)):
        events = send(client, model_at(url))

    assert [name for name, _ in events] == ["conversation", "delta", "message", "done"]
    assert stored_answer().content == "Hello"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "error",
    [
        pytest.param(OperationalError, id="the database stays down"),
        pytest.param(DataError, id="the database refuses the row"),
    ],
)
def test_an_answer_the_database_never_takes_is_reported_and_its_call_still_recorded(
    client, developer, quick_retries, error
):
    script = Script([openai_delta("Hello"), OPENAI_END])
    with serve_script(script) as url, connection.execute_wrapper(failing_answer_writes(99, error)):
        events = send(client, model_at(url))

    assert texts(events) == ["Hello"]
    name, ended = ending(events)
    assert name == "error"
    assert "could not be saved" in ended["message"]
    assert not Message.objects.filter(role=Message.Role.ASSISTANT).exists()
    # The provider bills the call: it is in the ledger, once.
    record = UsageRecord.objects.get()
    assert (record.input_tokens, record.output_tokens) == (5, 2)


@pytest.mark.django_db
def test_a_turn_the_database_refuses_to_start_is_a_503_with_nothing_half_saved(
    client, developer, quick_retries
):
    def refuse_user_messages(run, sql, params, many, context):
        if 'INSERT INTO "chat_message"' in sql:
            raise OperationalError("the database system is starting up")
        return run(sql, params, many, context)

    script = Script([openai_delta("Hello"), OPENAI_END])
    with serve_script(script) as url, connection.execute_wrapper(refuse_user_messages):
        model = model_at(url)
        status, body = post_chat(client, {"model_id": model.pk, "message": "Hi"})

    assert status == 503
    assert json.loads(body) == {
        "detail": "The database did not respond: try again in a moment.",
        "code": "database_unavailable",
    }
    assert script.requests == 0
    assert not developer.conversations.exists()


# --- Accept -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_event_stream_client_is_answered_with_events_and_refused_in_json(client, developer):
    script = Script([openai_delta("Hello"), OPENAI_END])
    with serve_script(script) as url:
        model = model_at(url)
        status, body = post_chat(
            client, {"model_id": model.pk, "message": "Hi"}, Accept="text/event-stream"
        )
        refused_status, refused = post_chat(
            client, {"model_id": model.pk, "message": ""}, Accept="text/event-stream"
        )
        unacceptable_status, _ = post_chat(
            client, {"model_id": model.pk, "message": "Hi"}, Accept="image/png"
        )

    assert status == 200
    assert texts(events_of(body)) == ["Hello"]
    assert refused_status == 400
    assert b'"message"' in refused
    assert unacceptable_status == 406


# --- Through a real ASGI server -------------------------------------------------------------


CSRF = "c" * 32


def open_chat(base_url: str, session: str, model: LLMModel) -> httpx2.Client:
    return httpx2.Client(
        base_url=base_url,
        cookies={"sessionid": session, "csrftoken": CSRF},
        headers={"X-CSRFToken": CSRF},
        timeout=5,
    )


def read_events(chunks: Iterator[bytes], wanted: int) -> list[tuple[str, dict]]:
    """Events from a streaming body until `wanted` of them have arrived."""
    body = b""
    while body.count(b"\n\n") < wanted:
        body += next(chunks)
    return events_of(body)


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_each_event_reaches_the_user_as_it_arrives(asgi_server, client, developer, chunked):
    go_on = threading.Event()
    script = Script([openai_delta("one"), go_on, openai_delta("two"), OPENAI_END], chunked=chunked)
    with serve_script(script) as url:
        model = model_at(url)
        with open_chat(asgi_server, client.cookies["sessionid"].value, model) as http:
            payload = {"model_id": model.pk, "message": "Hi"}
            with http.stream("POST", "/api/v1/chat/", json=payload) as response:
                chunks = response.iter_bytes()  # kept: dropped, it would close the stream
                # "two" is not sent until "one" has reached the user through the server.
                first = read_events(chunks, 2)
                go_on.set()
                rest = b"".join(chunks)

    assert first[1] == ("delta", {"text": "one"})
    assert texts(events_of(rest)) == ["two"]
    assert [name for name, _ in events_of(rest)][-2:] == ["message", "done"]


def test_a_client_that_goes_away_closes_the_upstream_and_keeps_what_it_was_sent(
    asgi_server, client, developer
):
    script = Script([openai_delta("Hel"), openai_delta("lo")], forever=KEEP_ALIVE, every=0.05)
    with serve_script(script) as url:
        model = model_at(url)
        with open_chat(asgi_server, client.cookies["sessionid"].value, model) as http:
            payload = {"model_id": model.pk, "message": "Hi"}
            with http.stream("POST", "/api/v1/chat/", json=payload) as response:
                seen = read_events(response.iter_bytes(), 3)
            left_at = time.monotonic()
        closed_at = script.wait_for_close()

    assert texts(seen) == ["Hel", "lo"]
    assert closed_at is not None
    assert closed_at - left_at < 1.0
    answer = stored_after_disconnect()
    assert (answer.content, answer.stop_reason) == ("Hello", "disconnected")
    assert answer.notice.startswith("The answer was interrupted")


def test_a_user_who_leaves_before_the_first_word_is_billed_for_what_was_sent(
    asgi_server, client, developer
):
    """The provider took the request (its headers came) and bills its input, reasoning or
    not; OpenAI's family counts nothing until the end. Leaving before the first text must
    not make a large prompt free: its input is estimated as for any answer cut short."""
    script = Script([], forever=KEEP_ALIVE, every=0.05)
    with serve_script(script) as url:
        model = model_at(url)
        with open_chat(asgi_server, client.cookies["sessionid"].value, model) as http:
            payload = {"model_id": model.pk, "message": "x" * 20_000}
            with http.stream("POST", "/api/v1/chat/", json=payload) as response:
                read_events(response.iter_bytes(), 1)  # the conversation, then we leave
        script.wait_for_close()

    assert stored_after_disconnect().stop_reason == "disconnected"
    record = recorded(UsageRecord.Kind.CHAT)
    assert record.input_tokens is not None
    assert record.input_tokens >= 10_000  # 20,000 bytes at 2 bytes a token


def test_a_user_gone_before_the_answer_began_is_not_billed_for_a_call_never_made(
    asgi_server, client, developer
):
    script = Script([openai_delta("Hello"), OPENAI_END])
    with serve_script(script) as url:
        model = model_at(url)
        body = json.dumps({"model_id": model.pk, "message": "x" * 20_000}).encode()
        host, port = asgi_server.removeprefix("http://").split(":")
        request = (
            f"POST /api/v1/chat/ HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Cookie: sessionid={client.cookies['sessionid'].value}; csrftoken={CSRF}\r\n"
            f"X-CSRFToken: {CSRF}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        # The whole request, then the client is gone (a tab closed as it sent its message).
        with socket.create_connection((host, int(port))) as gone:
            gone.sendall(request + body)
        time.sleep(1.0)  # whatever the server does with it, it has done by now

    assert script.requests == 0
    assert not UsageRecord.objects.filter(kind=UsageRecord.Kind.CHAT).exists()


def compacting_upstream(
    calls: list[str], compacting: bool, then: Callable[[BaseHTTPRequestHandler], None]
) -> type[BaseHTTPRequestHandler]:
    """An OpenAI-style upstream. When `compacting`, its first answer's input fills the
    context past the threshold (so a summary is asked for next); every other call streams
    as `then` writes it. Each call's path is appended to `calls`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            calls.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            if compacting and len(calls) == 1:
                usage = {"prompt_tokens": 900, "completion_tokens": 1}
                self.wfile.write(openai_delta("Hi") + data({"choices": [], "usage": usage}))
                self.wfile.write(OPENAI_STOP)
            else:
                then(self)
            self.close_connection = True

        def log_message(self, *args) -> None:
            pass

    return Handler


def test_a_summary_the_user_left_during_is_still_in_the_ledger(asgi_server, client, developer):
    summarising = threading.Event()

    def summary_until_the_caller_goes(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(openai_delta("Summary so far"))
        handler.wfile.flush()
        summarising.set()
        with suppress(OSError):
            while True:
                time.sleep(0.05)
                handler.wfile.write(KEEP_ALIVE)
                handler.wfile.flush()

    handler = compacting_upstream([], compacting=True, then=summary_until_the_caller_goes)
    with loopback_server(handler) as url:
        model = LLMModelFactory(
            provider=provider_at("openai-compat", url, api_key=KEY),
            context_limit=1000,
            compression_threshold=50,
            input_price=Decimal(3),
            output_price=Decimal(15),
        )
        conversation = Conversation.objects.create(owner=developer, model=model)
        for role in (Message.Role.USER, Message.Role.ASSISTANT):
            Message.objects.create(conversation=conversation, role=role, content="earlier")
        with open_chat(asgi_server, client.cookies["sessionid"].value, model) as http:
            payload = {"model_id": model.pk, "message": "Hi", "conversation_id": conversation.pk}
            with http.stream("POST", "/api/v1/chat/", json=payload) as response:
                chunks = response.iter_bytes()  # kept: dropped, it would close the stream
                seen = read_events(chunks, 3)  # conversation, delta, message
                assert summarising.wait(5), seen
        summary = recorded(UsageRecord.Kind.SUMMARY)

    # "Summary so far": 14 bytes, 7 tokens at 2 bytes a token.
    assert (summary.pricing, summary.output_tokens) == (Pricing.ESTIMATED, 7)
    assert not Message.objects.filter(role=Message.Role.SUMMARY).exists()


def recorded(kind: str) -> UsageRecord:
    """The ledger's record of this kind, once the server (in its own thread) wrote it."""
    until = time.monotonic() + 5
    while time.monotonic() < until:
        with suppress(OperationalError):  # SQLite's shared in-memory database: locked a moment
            record = UsageRecord.objects.filter(kind=kind).first()
            if record is not None:
                return record
        time.sleep(0.02)
    raise AssertionError(f"no {kind} call was recorded")


def stored_after_disconnect() -> Message:
    """The answer the server stores once it sees the client gone (in its own thread)."""
    until = time.monotonic() + 5
    while time.monotonic() < until:
        try:
            answer = Message.objects.filter(role=Message.Role.ASSISTANT).first()
        except OperationalError:  # SQLite's shared in-memory database: a table locked a moment
            answer = None
        if answer is not None:
            return answer
        time.sleep(0.02)
    raise AssertionError("no answer was stored")


@pytest.mark.parametrize("during", ["an answer", "a summary"])
def test_no_database_connection_is_held_while_an_answer_streams(
    asgi_server, client, developer, during
):
    if connection.vendor != "postgresql":
        pytest.skip("counts the connections taken from the PostgreSQL pool")
    streaming, go_on = threading.Event(), threading.Event()
    calls: list[str] = []

    def summary_when_told(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(openai_delta("Sum"))
        handler.wfile.flush()
        streaming.set()
        go_on.wait(10)
        handler.wfile.write(OPENAI_END)

    handler = compacting_upstream(calls, during == "a summary", then=summary_when_told)
    with loopback_server(handler) as url:
        model = LLMModelFactory(
            provider=provider_at("openai-compat", url, api_key=KEY),
            context_limit=1000,
            compression_threshold=50,
        )
        conversation = Conversation.objects.create(owner=developer, model=model)
        for role in (Message.Role.USER, Message.Role.ASSISTANT):
            Message.objects.create(conversation=conversation, role=role, content="earlier")
        before = connections_in_use()
        with open_chat(asgi_server, client.cookies["sessionid"].value, model) as http:
            payload = {"model_id": model.pk, "message": "Hi", "conversation_id": conversation.pk}
            with http.stream("POST", "/api/v1/chat/", json=payload) as response:
                assert streaming.wait(5)
                time.sleep(0.2)  # the server's side of the stream settles
                during_stream = connections_in_use()
                go_on.set()
                events = events_of(b"".join(response.iter_bytes()))

    assert during_stream == before
    assert ending(events)[0] == "done"
    assert len(calls) == (2 if during == "a summary" else 1)


# --- A provider faster than its reader still meets the limits ---------------------------------


def stream_until(model: LLMModel, cap: float = 4.0) -> tuple[str, float, int]:
    """The turn read through the provider client's stream, the reader suspending between
    events as a consumer does whose writes to its client wait; how it ended, when, and how
    many events it read. Stopped by the test after `cap` seconds."""
    client, model_settings = model.provider.client(), model.settings()

    async def read() -> tuple[str, float, int]:
        loop = asyncio.get_running_loop()
        started, count = loop.time(), 0
        turn = ChatInput("", [{"role": "user", "content": "Hi"}])
        stream = client.stream_chat(model_settings, turn)
        try:
            async for _ in stream:
                count += 1
                await asyncio.sleep(0)
                if loop.time() - started > cap:
                    return "still streaming", loop.time() - started, count
        except ChatError as error:
            return str(error.stop_reason), loop.time() - started, count
        finally:
            await stream.aclose()
        return "ended", loop.time() - started, count

    return asyncio.run(read())


@pytest.mark.django_db
def test_a_provider_faster_than_its_reader_is_ended_at_the_deadline(developer, settings):
    settings.PROVIDER_STREAM_TIMEOUT = 0.5
    settings.PROVIDER_STREAM_IDLE_TIMEOUT = 60
    script = Script([], forever=openai_delta("x") * 200, every=0)
    with serve_script(script) as url:
        how, when, count = stream_until(model_at(url))
        script.wait_for_close()

    assert how == "timed_out", (how, when, count)
    assert when < 2.0


@pytest.mark.django_db
def test_usage_counts_faster_than_their_reader_are_ended_at_the_idle_limit(developer, settings):
    settings.PROVIDER_STREAM_TIMEOUT = 60
    settings.PROVIDER_STREAM_IDLE_TIMEOUT = 0.5
    usage = data({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    script = Script([openai_delta("Hel")], forever=usage * 100, every=0)
    with serve_script(script) as url:
        how, when, count = stream_until(model_at(url))
        script.wait_for_close()

    assert how == "timed_out", (how, when, count)
    assert when < 2.0
