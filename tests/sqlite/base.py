"""The project's SQLite backend, whose test flush keeps content types and permissions
(tests/flush.py)."""

from __future__ import annotations

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


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
