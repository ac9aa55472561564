"""Django's PostgreSQL backend, whose connection pool never hands out a dead connection.

Each connection is checked (an empty query) before it is handed out. One found dead has every
idle one checked at once: a restart, a failover or pg_terminate_backend leaves them all dead,
and psycopg_pool, meeting them one by one, pauses longer after each (1, 2, 4… s): a handful
would outlast its timeout, and the request would fail. Django 5.2 passes the pool a `check` of
its own and refuses one in OPTIONS["pool"] (Django ticket #37075, fixed after 5.2), hence this
backend.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base
from psycopg import Connection
from psycopg_pool import ConnectionPool


class CheckedPool(ConnectionPool):
    def __init__(self, **options: Any) -> None:
        super().__init__(check=self.check_or_sweep, **options)

    def check_or_sweep(self, connection: Connection) -> None:
        try:
            self.check_connection(connection)
        except Exception:
            self.check()  # the idle ones: dead ones replaced, live ones kept
            raise


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> ConnectionPool | None:
        """Django's pool (one per alias, shared by every thread), created as Django 5.2 creates
        it but for the check."""
        options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not options:
            return None
        if self.alias not in self._connection_pools:
            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True  # Django sets its own mode once handed out
            pool = CheckedPool(
                kwargs=connect_kwargs,
                open=False,
                configure=self._configure_connection,
                **options,
            )
            self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]
