"""A database that blinks or goes away: no answer or provider call is lost, every page answers
503 meanwhile (never a 500), and no dead connection is handed out after it.

On PostgreSQL the database really goes away: the server's connections are terminated
(pg_terminate_backend), and new ones refused for a while (ALLOW_CONNECTIONS false), while the
app serves under uvicorn.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
import psycopg
import pytest
from asgiref.sync import async_to_sync
from django.db import OperationalError, connection
from django.test import AsyncClient, Client
from psycopg import sql

from billing.models import UsageRecord
from chat.models import Message
from tests.chat_api import events_of
from tests.factories import LLMModelFactory, provider_at
from tests.stream_servers import OPENAI_END, Script, openai_delta, serve_script

KEY = "sk-FAULTSECRET-3"
CSRF = "c" * 32
UNAVAILABLE = {
    "detail": "The database did not respond: try again in a moment.",
    "code": "database_unavailable",
}
# What the database said, never shown to anyone.
DATABASE_ERROR = "FATAL: terminating connection for user app_secret_role"


# --- 503, not 500 (any database) ------------------------------------------------------------


def database_down(run, sql, params, many, context):
    raise OperationalError(DATABASE_ERROR)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "json_answer"),
    [
        pytest.param("get", "/api/v1/models/", True, id="model list"),
        pytest.param("post", "/api/v1/chat/", True, id="chat start"),
        pytest.param("get", "/agents/", False, id="agents page"),
        pytest.param("post", "/accounts/login/", False, id="login"),
        pytest.param("get", "/admin/", False, id="admin"),
    ],
)
def test_every_view_answers_503_while_the_database_is_down(developer, method, path, json_answer):
    client = Client(raise_request_exception=False)
    client.force_login(developer)
    data = {"model_id": 1, "message": "Hi"} if path == "/api/v1/chat/" else {"username": "dev"}
    with connection.execute_wrapper(database_down):
        if method == "get":
            response = client.get(path)
        else:
            response = client.post(path, data, content_type="application/json")

    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    assert b"app_secret_role" not in response.content
    assert b"Traceback" not in response.content
    if json_answer:
        assert response.json() == UNAVAILABLE
    else:
        assert response["Content-Type"].startswith("text/html")
        assert b"The database did not respond: try again in a moment." in response.content


@pytest.mark.django_db
def test_a_view_failing_on_the_database_under_asgi_answers_503():
    """Under ASGI a view's exception reaches the error handler in another thread (asgiref
    carries it there): an anonymous login fails in the view, not in a middleware."""
    client = AsyncClient(raise_request_exception=False)
    post = async_to_sync(client.post)
    with connection.execute_wrapper(database_down):
        response = post("/accounts/login/", {"username": "dev", "password": "pw"})

    assert response.status_code == 503
    assert b"The database did not respond" in response.content
    assert b"app_secret_role" not in response.content


@pytest.mark.django_db
def test_other_errors_are_still_a_500(developer, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr("chat.views.cached_model_list", broken)
    client = Client(raise_request_exception=False)
    client.force_login(developer)

    assert client.get("/api/v1/models/").status_code == 500


# --- The real thing, on PostgreSQL, under uvicorn -------------------------------------------


on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="terminates PostgreSQL backends"
)


@contextmanager
def database_server() -> Iterator[psycopg.Connection]:
    """A connection to the server's maintenance database, as the tests' role, to terminate
    the test database's backends and refuse new ones; connections are allowed again after."""
    params = connection.settings_dict
    admin = psycopg.connect(
        # No host (a Unix socket, PGHOST's directory) is left out, as Django leaves it: an
        # empty one would be libpq's default directory, whatever PGHOST says.
        host=params["HOST"] or None,
        port=params["PORT"],
        user=params["USER"],
        password=params["PASSWORD"],
        dbname="postgres",
        autocommit=True,
    )
    try:
        yield admin
    finally:
        refuse_connections(admin, False)
        admin.close()


def kill_server_connections(admin: psycopg.Connection) -> int:
    """Terminate every connection to the test database but this test's own: the app's."""
    connection.ensure_connection()
    killed = admin.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> %s",
        [connection.settings_dict["NAME"], connection.connection.info.backend_pid],
    ).fetchone()
    return killed[0]


def refuse_connections(admin: psycopg.Connection, refused: bool) -> None:
    admin.execute(
        sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
            sql.Identifier(connection.settings_dict["NAME"]), sql.Literal(not refused)
        )
    )


def busy_pool(connections: int = 8) -> None:
    """The pool as a busy server leaves it: this many idle connections (an outage kills all
    of them; the old pool handed each one out in turn)."""
    pool = connection.pool
    taken = [pool.getconn() for _ in range(connections)]
    for taken_connection in taken:
        pool.putconn(taken_connection)


def http_client(base_url: str, session: str) -> httpx2.Client:
    # Long enough to wait out an outage of a few seconds between two events.
    return httpx2.Client(
        base_url=base_url,
        cookies={"sessionid": session, "csrftoken": CSRF},
        headers={"X-CSRFToken": CSRF},
        timeout=30,
    )


def answer_through(http: httpx2.Client, model_id: int, at_the_end) -> list[tuple[str, dict]]:
    """A chat turn whose answer pauses before its end, when `at_the_end` runs: its events."""
    body = b""
    with http.stream("POST", "/api/v1/chat/", json={"model_id": model_id, "message": "Hi"}) as r:
        chunks = r.iter_bytes()
        while body.count(b"\n\n") < 2:  # conversation, delta
            body += next(chunks)
        at_the_end()
        body += b"".join(chunks)
    return events_of(body)


@on_postgresql
@pytest.mark.parametrize("refused_for", [0, 3], ids=["connections killed", "refused for 3 s"])
def test_an_answer_ending_while_the_database_blinks_is_stored_with_its_call(
    asgi_server, client, developer, refused_for
):
    go_on = threading.Event()
    script = Script([openai_delta("Hello"), go_on, OPENAI_END])
    with serve_script(script) as url, database_server() as admin:
        model = LLMModelFactory(provider=provider_at("openai-compat", url, api_key=KEY))
        busy_pool()

        def blink() -> None:
            if refused_for:
                refuse_connections(admin, True)
                threading.Timer(refused_for, refuse_connections, (admin, False)).start()
            assert kill_server_connections(admin) >= 8
            go_on.set()  # the answer ends: its writes meet the dead connections

        with http_client(asgi_server, client.cookies["sessionid"].value) as http:
            events = answer_through(http, model.pk, blink)

    assert [name for name, _ in events] == ["conversation", "delta", "message", "done"]
    answer = Message.objects.get(role=Message.Role.ASSISTANT)
    assert (answer.content, answer.pk) == ("Hello", events[2][1]["id"])
    record = UsageRecord.objects.get()
    assert (record.input_tokens, record.output_tokens) == (5, 2)


@on_postgresql
def test_while_the_database_refuses_connections_views_answer_503_and_after_it_they_work(
    asgi_server, client, developer
):
    developer.set_password("pw")
    developer.save()
    client.force_login(developer)  # a new password ends the sessions before it
    script = Script([openai_delta("Hello"), OPENAI_END])
    with serve_script(script) as url, database_server() as admin:
        model = LLMModelFactory(provider=provider_at("openai-compat", url, api_key=KEY))
        pool = connection.pool
        busy_pool()
        with http_client(asgi_server, client.cookies["sessionid"].value) as http:

            def requests() -> list[httpx2.Response]:
                return [
                    http.post("/api/v1/chat/", json={"model_id": model.pk, "message": "Hi"}),
                    http.get("/api/v1/models/"),
                    # Last: logging in again starts a new session.
                    http.post("/accounts/login/", data={"username": "dev", "password": "pw"}),
                ]

            refuse_connections(admin, True)
            kill_server_connections(admin)
            # DATABASE_POOL_TIMEOUT: how long a request waits for a connection.
            timeout, pool.timeout = pool.timeout, 0.5
            try:
                during = requests()
            finally:
                pool.timeout = timeout
                refuse_connections(admin, False)
            after = requests()

    assert [response.status_code for response in during] == [503, 503, 503]
    chat, models, login = during
    assert chat.json() == models.json() == UNAVAILABLE
    assert b"The database did not respond" in login.content
    assert {response.headers["Retry-After"] for response in during} == {"10"}
    # The dead connections are not handed out: every request after the outage works.
    assert [response.status_code for response in after] == [200, 200, 302]
    assert [name for name, _ in events_of(after[0].content)][-1] == "done"
    assert json.loads(after[1].content)["default_model_id"] == model.pk
