"""Django's database sessions, each read in one plain-SQL query together with the user it logs
in: every request of a logged-in developer needs both, and the ORM took longer to build the
queries than the database to answer them. Stored, written and expired as Django's own (the
same encoding) in `LoginSession`, whose `user` column is written from the session's data.

`AuthenticationMiddleware` serves `request.user` from that row when Django's own checks pass
on it (the backend, an active user, the session's hash under the current secret); any other
case goes to Django's `get_user`, which reads the user again and renews or ends the session as
it always does."""

from __future__ import annotations

import functools
from datetime import date

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoMiddleware
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends import db
from django.db import connection
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.functional import SimpleLazyObject

from billing.budgets import month_bounds, month_start
from chat.model_list import STATE_READ_WITH_LOGIN, state_sql
from llmadmin.models import LoginSession

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"

# Columns of the session's row that no user column is named.
SESSION_DATA = "login_session_data"
SESSION_STATE = "login_session_state"


@functools.cache
def session_query(vendor: str) -> str:
    user = get_user_model()._meta
    columns = ", ".join(f"u.{field.column}" for field in user.concrete_fields)
    # SQL, table and column names only are formatted in; the month, key and moment are
    # parameters.
    return (
        f"SELECT {columns}, s.session_data AS {SESSION_DATA}, "  # noqa: S608
        f"{state_sql('s.user_id', vendor)} AS {SESSION_STATE} "
        f"FROM {LoginSession._meta.db_table} s "
        f"LEFT JOIN {user.db_table} u ON u.{user.pk.column} = s.user_id "
        "WHERE s.session_key = %s AND s.expire_date > %s"
    )


class SessionStore(db.SessionStore):
    # The user of the session as read with it (None: no login, or no such user any more),
    # and what chat.model_list.state_of reads of them, read with it: (month, rows as JSON).
    logged_in_user: AbstractBaseUser | None = None
    logged_in_state: tuple[date, str] | None = None

    @classmethod
    def get_model_class(cls) -> type[LoginSession]:
        return LoginSession

    def _get_session_from_db(self) -> LoginSession | None:
        now = timezone.now()
        month = month_start(timezone.localdate(now))
        found = get_user_model().objects.raw(
            session_query(connection.vendor), [*month_bounds(month), self.session_key, now]
        )
        row = next(iter(found), None)
        if row is None:
            # As Django's own store: a key with no live session is forgotten.
            self._session_key = None
            return None
        # The session's data is not left on the user.
        session_data = row.__dict__.pop(SESSION_DATA)
        state = row.__dict__.pop(SESSION_STATE)
        self.logged_in_user = row if row.pk is not None else None
        self.logged_in_state = (month, state)
        return LoginSession(session_key=self.session_key, session_data=session_data)

    def create_model_instance(self, data: dict) -> LoginSession:
        session = super().create_model_instance(data)
        user_id = str(data.get(auth.SESSION_KEY))
        session.user_id = int(user_id) if user_id.isascii() and user_id.isdigit() else None
        return session


def session_user(request: HttpRequest) -> AbstractBaseUser | AnonymousUser:
    session = request.session
    user_id = session.get(auth.SESSION_KEY)  # the session read, with its user
    # None from another session engine's store: Django's own way then.
    user = getattr(session, "logged_in_user", None)
    if (
        user is not None
        and user.is_active  # as ModelBackend.get_user
        and user_id == str(user.pk)
        and session.get(auth.BACKEND_SESSION_KEY) == MODEL_BACKEND
        and MODEL_BACKEND in settings.AUTHENTICATION_BACKENDS
        and constant_time_compare(
            session.get(auth.HASH_SESSION_KEY, ""), user.get_session_auth_hash()
        )
    ):
        setattr(user, STATE_READ_WITH_LOGIN, session.logged_in_state)
        return user
    return auth.get_user(request)


class AuthenticationMiddleware(DjangoMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        request.user = SimpleLazyObject(lambda: cached_user(request))


def cached_user(request: HttpRequest) -> AbstractBaseUser | AnonymousUser:
    if not hasattr(request, "_cached_user"):
        request._cached_user = session_user(request)
    return request._cached_user
