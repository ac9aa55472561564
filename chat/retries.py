"""Database work from a stream: in a thread, retried when the connection fails, holding no
connection while the provider streams (an answer may stream for minutes)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The stream's writes (an answer, a summary, their calls' usage) are retried when the
# database connection fails, for this many seconds, the pauses between attempts doubling from
# WRITE_PAUSE to at most WRITE_PAUSE_MAX: a database down for up to that long (a restart, a
# failover) loses nothing. Each attempt takes a connection afresh from the pool, which checks
# it first and waits up to its timeout (DATABASE_POOL_TIMEOUT) for one. SQLite's write lock,
# held for milliseconds by another writer, is waited for before any of this (config/sqlite).
WRITE_RETRY_SECONDS = 20.0
WRITE_PAUSE = 0.25
WRITE_PAUSE_MAX = 2.0
# A turn's start (the user's message) only briefly: nothing was sent yet, and a 503 tells the
# user to try again.
START_RETRY_SECONDS = 1.0


def with_retries(write: Callable[[], T], seconds: float | None = None) -> T:
    """The write, tried again when the database connection fails, for `seconds` (by default
    WRITE_RETRY_SECONDS); raises the last error."""
    give_up_at = time.monotonic() + (WRITE_RETRY_SECONDS if seconds is None else seconds)
    pause, attempt = WRITE_PAUSE, 1
    while True:
        try:
            return write()
        except (OperationalError, InterfaceError):
            if time.monotonic() + pause > give_up_at:
                raise
            logger.warning("A database write failed (attempt %s); trying again.", attempt)
            if not connection.in_atomic_block:
                connection.close()  # the next attempt takes a connection afresh
            time.sleep(pause)
            pause, attempt = min(pause * 2, WRITE_PAUSE_MAX), attempt + 1


async def in_thread(work: Callable[[], T]) -> T:
    """Database work from a stream, on its request's thread (config/request_threads.py: a
    thread blocked here, say by a write retried through an outage, gets no new requests while
    another is free); no connection is taken from the pool after it (a summary or an answer
    may stream for minutes next)."""

    ran = False

    def run() -> T:
        nonlocal ran
        ran = True
        try:
            return work()
        finally:
            release_connection()

    try:
        return await sync_to_async(run)()
    except RuntimeError:
        # asgiref refuses a request's thread once the request has ended, before running
        # anything: a write shielded from a cancellation that outlived its request (a server
        # shutting down). Any thread will do for it; the call is still recorded.
        if ran:
            raise
        return await sync_to_async(run, thread_sensitive=False)()


async def database(work: Callable[[], T]) -> T:
    """Database work from a stream, in a thread, retried."""
    return await in_thread(partial(with_retries, work))


# The budget alert checks (chat.metered.alerts_soon): their mails may wait seconds on the mail
# server, so they have threads of their own, apart from the requests' (shared by every
# developer's requests) and from asyncio's default ones (which sign Bedrock's requests).
ALERT_THREAD_COUNT = 2
ALERT_THREADS = ThreadPoolExecutor(
    max_workers=ALERT_THREAD_COUNT, thread_name_prefix="budget-alerts"
)


def release_connection() -> None:
    """An answer may stream for minutes: it holds no connection from the pool meanwhile (the
    writes at its end take one afresh). A connection its thread keeps (SQLite's, a file
    handle) stays open, as does one inside a transaction (a test's)."""
    if connection.settings_dict["CONN_MAX_AGE"] == 0 and not connection.in_atomic_block:
        connection.close()
