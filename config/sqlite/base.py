"""Django's SQLite backend, whose writers wait for the write lock in short pauses of its own.

SQLite's busy handler sleeps ever longer between attempts (up to 100 ms each): among many
writers, one polling that slowly loses the lock to the others again and again, up to its
timeout. Here SQLite waits only a few ms (OPTIONS["timeout"]), and a statement run outside a
transaction (a transaction's BEGIN IMMEDIATE, or a write on its own) is tried again after a
pause of 1 to 10 ms, for up to LOCK_WAIT_SECONDS. Inside a transaction nothing needs to wait:
BEGIN IMMEDIATE took the lock, and WAL lets the reads go on meanwhile.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.db.backends.sqlite3 import base

T = TypeVar("T")

LOCK_WAIT_SECONDS = 5.0
LOCK_PAUSE = 0.001
LOCK_PAUSE_MAX = 0.01


def waiting_for_lock(statement: Callable[[], T]) -> T:
    """The statement, tried again while another connection holds the write lock."""
    give_up_at = time.monotonic() + LOCK_WAIT_SECONDS
    pause = LOCK_PAUSE
    while True:
        try:
            return statement()
        except sqlite3.OperationalError as error:
            # The extended codes too (SQLITE_BUSY_RECOVERY), but for a snapshot gone stale: a
            # read still open on this connection, which no wait can end. A table locked by
            # another connection sharing the cache (an in-memory database shared by threads,
            # as the tests' is) is let go as soon as that one's transaction ends; one locked
            # by this connection itself (plain SQLITE_LOCKED) never is.
            code = getattr(error, "sqlite_errorcode", 0)
            busy = (
                code & 0xFF == sqlite3.SQLITE_BUSY and code != sqlite3.SQLITE_BUSY_SNAPSHOT
            ) or code == sqlite3.SQLITE_LOCKED_SHAREDCACHE
            if not busy or time.monotonic() + pause > give_up_at:
                raise
        time.sleep(pause)
        pause = min(pause * 2, LOCK_PAUSE_MAX)


# Longer queries (an IN list of thousands) are converted each time rather than kept.
MAX_KEPT_QUERY = 4096


@functools.lru_cache(maxsize=512)
def qmark_style(query: str) -> str:
    return base.FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%")


class Cursor(base.SQLiteCursorWrapper):
    def convert_query(self, query: str, *, param_names: list[str] | None = None) -> str:
        # Django converts every query to SQLite's placeholders with a regular expression: 22
        # microseconds for the budget's query, which the model list runs on every request.
        if param_names is None and len(query) <= MAX_KEPT_QUERY:
            return qmark_style(query)
        return super().convert_query(query, param_names=param_names)

    def execute(self, query: str, params: Any = None) -> Any:
        if self.connection.in_transaction:
            return super().execute(query, params)
        return waiting_for_lock(lambda: super(Cursor, self).execute(query, params))

    def executemany(self, query: str, param_list: Any) -> Any:
        if self.connection.in_transaction:
            return super().executemany(query, param_list)
        param_list = list(param_list)  # a generator would be spent by a failed attempt
        return waiting_for_lock(lambda: super(Cursor, self).executemany(query, param_list))


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name: str | None = None) -> Cursor:
        return self.connection.cursor(factory=Cursor)
