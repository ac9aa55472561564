"""How requests are served: each request's sync work on one of a few long-lived threads per
process, which keep their SQLite connections; SQLite writers wait for a lock held briefly."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.db import OperationalError, connection
from django.db.backends.signals import connection_created

import config.sqlite.base
from chat.retries import in_thread
from config.request_threads import RequestThreads, serving_application
from config.sqlite.base import DatabaseWrapper
from tests.conftest import connections_in_use

REQUESTS = 24
AT_ONCE = 6


def models_listed(base_url: str, session: str) -> list[int]:
    """REQUESTS model lists, AT_ONCE at a time: their status codes."""
    http = httpx2.Client(base_url=base_url, cookies={"sessionid": session}, timeout=10)
    with http, ThreadPoolExecutor(AT_ONCE) as clients:
        answers = clients.map(lambda _: http.get("/api/v1/models/"), range(REQUESTS))
        return [answer.status_code for answer in answers]


@contextmanager
def recorded(signal: Any) -> Iterator[list[threading.Thread]]:
    """The thread each receiver of `signal` ran on, once for each time it was sent."""
    threads: list[threading.Thread] = []

    def record(**kwargs: Any) -> None:
        threads.append(threading.current_thread())

    signal.connect(record, weak=False)
    try:
        yield threads
    finally:
        signal.disconnect(record)


# --- Through uvicorn, as served ----------------------------------------------------------


def test_many_requests_run_on_a_few_long_lived_threads(asgi_server, client, developer, settings):
    with recorded(request_started) as threads:
        statuses = models_listed(asgi_server, client.cookies["sessionid"].value)

    assert statuses == [200] * REQUESTS
    assert len(threads) == REQUESTS
    assert len(set(threads)) <= settings.REQUEST_THREADS
    assert all(thread.name.startswith("request-") for thread in threads)


def test_the_admin_runs_on_threads_of_its_own(asgi_server, admin_client):
    """A connection test or an export holds its thread for seconds: not a shared one."""
    session = admin_client.cookies["sessionid"].value
    with recorded(request_started) as threads:
        answer = httpx2.get(f"{asgi_server}/admin/", cookies={"sessionid": session}, timeout=10)

    assert answer.status_code == 200
    assert not threads[0].name.startswith("request-")


def test_a_requests_sync_part_goes_to_its_thread_in_one_call(transactional_db, settings, client):
    """Under load each return from a thread waits for the event loop behind the streams'
    events: request_started, the middleware chain and the view, and request_finished are one
    call on the request's thread (Django's own handler makes three here)."""
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    client.force_login(User.objects.create_user("dev"))
    application = serving_application()
    sent: list[dict[str, Any]] = []
    received: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if received:  # the client stays: a server's receive waits
            await asyncio.Event().wait()
        received.append({"type": "http.request", "body": b""})
        return received[-1]

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/models/",
        "raw_path": b"/api/v1/models/",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    try:
        with recorded(request_started) as started, recorded(request_finished) as finished:
            asyncio.run(application(scope, receive, send))
    finally:
        for thread in application.threads:
            thread.shutdown(wait=False)

    assert sent[0]["status"] == 200
    assert json.loads(b"".join(message.get("body", b"") for message in sent[1:]))["groups"] == []
    assert sum(thread.sent for thread in application.threads) == 1
    assert started == finished
    assert started[0].name.startswith("request-")


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's connections are kept")
def test_each_thread_keeps_its_sqlite_connection(asgi_server, client, developer, settings):
    with recorded(connection_created) as connected:
        statuses = models_listed(asgi_server, client.cookies["sessionid"].value)

    assert statuses == [200] * REQUESTS
    assert len(connected) <= settings.REQUEST_THREADS


@pytest.mark.skipif(connection.vendor != "postgresql", reason="counts the pool's connections")
def test_each_request_returns_its_connection_to_the_pool(asgi_server, client, developer):
    connection.close()  # this test's own goes back too

    statuses = models_listed(asgi_server, client.cookies["sessionid"].value)

    assert statuses == [200] * REQUESTS
    # The server returns a connection just after its response's last byte: wait for that.
    until = time.monotonic() + 5
    while connections_in_use() and time.monotonic() < until:
        time.sleep(0.01)
    assert connections_in_use() == 0


# --- The threads, under any ASGI application -------------------------------------------------


def served(application: RequestThreads, requests: int) -> None:
    """`requests` HTTP requests to `application` at once, within 5 s (no deadlock)."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        pass

    async def all_of_them() -> None:
        scope = {"type": "http", "path": "/api/v1/models/"}
        calls = [application(scope, receive, send) for _ in range(requests)]
        await asyncio.wait_for(asyncio.gather(*calls), 5)

    asyncio.run(all_of_them())


def sync_application(work: Callable[[], object]) -> Callable[..., Any]:
    """An ASGI application whose requests each run `work` in a thread-sensitive call."""

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await sync_to_async(work)()

    return application


def test_sync_code_calling_async_code_calling_sync_code_stays_on_the_request_thread():
    seen: list[tuple[threading.Thread, threading.Thread]] = []

    def sync_part() -> None:
        async def async_part() -> threading.Thread:
            return await sync_to_async(threading.current_thread)()

        seen.append((threading.current_thread(), async_to_sync(async_part)()))

    served(RequestThreads(sync_application(sync_part), count=2), requests=4)

    assert len(seen) == 4
    assert all(outer is inner and outer.name.startswith("request-") for outer, inner in seen)


def test_a_blocked_thread_gets_no_new_requests_while_another_is_free():
    """A stream's write retried through a database outage blocks its thread for up to 20 s:
    the model lists meanwhile run on the other threads."""
    unblock, blocked = threading.Event(), threading.Event()
    blocked_on: list[threading.Thread] = []
    others: list[threading.Thread] = []

    def blocking() -> None:
        blocked_on.append(threading.current_thread())
        blocked.set()
        unblock.wait(5)

    application = RequestThreads(sync_application(blocking), count=2)
    the_blocked_one = threading.Thread(target=served, args=(application, 1))
    the_blocked_one.start()
    try:
        assert blocked.wait(5)
        application.shared = sync_application(lambda: others.append(threading.current_thread()))
        for _ in range(5):
            served(application, requests=1)
    finally:
        unblock.set()
        the_blocked_one.join(5)

    assert len(others) == 5
    assert blocked_on[0] not in others


def test_a_write_that_outlives_its_request_still_runs():
    """A call's record is written shielded from a cancellation: after its request has ended
    too (a server shutting down), on another thread."""
    outliving: list[asyncio.Task[str]] = []

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        outliving.append(asyncio.create_task(written_later()))

    async def written_later() -> str:
        await asyncio.sleep(0.05)  # the request has ended by now
        return await in_thread(lambda: "recorded")

    async def request_then_its_write() -> str:
        scope = {"type": "http", "path": "/api/v1/chat/"}
        await RequestThreads(application, count=1)(scope, None, None)
        return await asyncio.wait_for(outliving[0], 5)

    assert asyncio.run(request_then_its_write()) == "recorded"


# --- SQLite's write lock ----------------------------------------------------------------------


on_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's write lock")


@pytest.fixture
def database_file(db, tmp_path: Path) -> Iterator[DatabaseWrapper]:
    """A SQLite database in a file, with the project's settings (the tests' own is in memory,
    where SQLite locks otherwise), holding a table `t`."""
    database = DatabaseWrapper(
        {**connection.settings_dict, "NAME": str(tmp_path / "db")}, alias="file"
    )
    database.cursor().execute("CREATE TABLE t (n INTEGER)")
    yield database
    database.close()


@contextmanager
def lock_held(path: str, *, for_seconds: float) -> Iterator[None]:
    """Another connection holding the write lock, for that long."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(for_seconds, other.commit)
    release.start()
    try:
        yield
    finally:
        release.join()
        other.close()


@on_sqlite
@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("BEGIN IMMEDIATE", id="a transaction's start"),
        pytest.param("INSERT INTO t VALUES (1)", id="a write on its own"),
    ],
)
def test_a_write_waits_for_a_lock_another_writer_holds_briefly(database_file, statement):
    # Far beyond SQLite's own wait (OPTIONS["timeout"]: a few ms).
    assert database_file.settings_dict["OPTIONS"]["timeout"] < 0.1
    path = database_file.settings_dict["NAME"]
    with lock_held(path, for_seconds=0.3), database_file.cursor() as cursor:
        cursor.execute(statement)
        cursor.execute("INSERT INTO t VALUES (2)")
        if database_file.connection.in_transaction:
            cursor.execute("COMMIT")

    assert database_file.cursor().execute("SELECT n FROM t").fetchall()[-1] == (2,)


@on_sqlite
def test_a_read_waits_for_a_table_another_connection_sharing_the_cache_writes(db):
    """An in-memory database shared by threads (the tests' own, under uvicorn) locks a table
    being written for the other connections' reads till that write commits."""
    name = f"file:shared-{uuid.uuid4().hex}?mode=memory&cache=shared"
    database = DatabaseWrapper({**connection.settings_dict, "NAME": name}, alias="shared")
    writer = sqlite3.connect(name, uri=True, isolation_level=None, check_same_thread=False)
    try:
        writer.execute("CREATE TABLE t (n INTEGER)")
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO t VALUES (1)")
        release = threading.Timer(0.3, writer.commit)
        release.start()
        with database.cursor() as cursor:
            cursor.execute("SELECT n FROM t")
            assert cursor.fetchall() == [(1,)]
        release.join()
    finally:
        database.close()
        writer.close()


@on_sqlite
def test_a_table_its_own_connection_locks_fails_at_once(database_file, monkeypatch):
    """No wait ends a lock this connection holds itself (a read still open on a table it
    drops): the statement fails at once, not after LOCK_WAIT_SECONDS."""
    monkeypatch.setattr(config.sqlite.base, "LOCK_WAIT_SECONDS", 1.0)
    database_file.cursor().execute("INSERT INTO t VALUES (1), (2)")
    reading = database_file.cursor()
    reading.execute("SELECT n FROM t")
    assert reading.fetchone() == (1,)
    assert not database_file.connection.in_transaction  # so a failed statement may be retried

    started = time.monotonic()
    with pytest.raises(OperationalError, match="table is locked"):
        database_file.cursor().execute("DROP TABLE t")
    assert time.monotonic() - started < 0.5


@on_sqlite
def test_a_write_fails_when_the_lock_is_held_longer_than_the_wait(database_file, monkeypatch):
    monkeypatch.setattr(config.sqlite.base, "LOCK_WAIT_SECONDS", 0.05)
    path = database_file.settings_dict["NAME"]
    with lock_held(path, for_seconds=0.3), pytest.raises(OperationalError, match="is locked"):
        database_file.cursor().execute("INSERT INTO t VALUES (1)")
