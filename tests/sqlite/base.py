"""The project's SQLite backend, whose test flush keeps content types and permissions
(tests/flush.py)."""

from __future__ import annotations

import sqlite3
import time

from django.db import OperationalError

# From the backend's base module: importing its operations module first is a circular import.
from django.db.backends.sqlite3.base import DatabaseOperations as SQLiteOperations

from config.sqlite import base
from tests.flush import flushed


class DatabaseOperations(SQLiteOperations):
    flush_kept = False

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        # A cascade would reach the kept tables' own references: Django's flush then.
        self.flush_kept = not (reset_sequences or allow_cascade)
        if self.flush_kept:
            tables = flushed(tables)
        return super().sql_flush(
            style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )

    def execute_sql_flush(self, sql_list):
        # A gateway call's budget alert check runs after its answer (chat.metered), and may
        # still be reading when the test ends: SQLite's shared cache refuses to empty a table
        # another connection reads. The check ends within milliseconds.
        give_up_at = time.monotonic() + 10
        while True:
            try:
                return super().execute_sql_flush(sql_list)
            except OperationalError as error:
                code = getattr(error.__cause__, "sqlite_errorcode", None)
                if code != sqlite3.SQLITE_LOCKED_SHAREDCACHE or time.monotonic() > give_up_at:
                    raise
            time.sleep(0.01)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
