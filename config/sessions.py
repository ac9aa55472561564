"""Django's database sessions, read in plain SQL: every request of a logged-in developer reads
its session first, and the ORM took longer to build that query than the database to answer it.
Stored, written and expired exactly as Django's own (the same table and encoding)."""

from __future__ import annotations

import functools

from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.utils import timezone


@functools.cache
def session_query() -> str:
    # The table name only is formatted in; the key and the moment are parameters.
    return (
        f"SELECT session_key, session_data, expire_date FROM {Session._meta.db_table} "  # noqa: S608
        "WHERE session_key = %s AND expire_date > %s"
    )


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Session | None:
        found = Session.objects.raw(session_query(), [self.session_key, timezone.now()])
        session = next(iter(found), None)
        if session is None:
            # As Django's own store: a key with no live session is forgotten.
            self._session_key = None
        return session
