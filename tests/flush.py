"""What the test backends' flush (after each transactional test) keeps, and the post_migrate
work it saves.

Content types and permissions are kept: no test changes them, and the flush would otherwise
delete them for migrate's post_migrate to write the same rows again (SQLite), or to look for
each of them (PostgreSQL, which kept them already): 30-80 ms of every flush, some 320 a run.
After a flush that kept them, contenttypes' and auth's post_migrate handlers are skipped;
the project's own (the provider rows, the ledger's trigger) still run. A migrate sends its
plan with post_migrate, a flush does not: a migrate's handlers all run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.models.signals import post_migrate

KEPT_TABLES = {"django_content_type", "auth_permission"}


def flushed(tables: list[str]) -> list[str]:
    """The tables a flush empties: all but the kept ones."""
    return [table for table in tables if table not in KEPT_TABLES]


def unless_a_flush_kept_them(handler: Callable[..., Any]) -> Callable[..., Any]:
    def run(*, using: str, **kwargs: Any) -> Any:
        if "plan" not in kwargs and getattr(connections[using].ops, "flush_kept", False):
            return None
        return handler(using=using, **kwargs)

    return run


def skip_rewriting_kept_tables() -> None:
    """contenttypes' and auth's post_migrate handlers, skipped after a flush that kept their
    tables (the backends' sql_flush sets `ops.flush_kept`)."""
    from django.contrib.auth.management import create_permissions
    from django.contrib.contenttypes.management import create_contenttypes

    auth_uid = "django.contrib.auth.management.create_permissions"
    if post_migrate.disconnect(create_contenttypes):
        post_migrate.connect(unless_a_flush_kept_them(create_contenttypes), weak=False)
    if post_migrate.disconnect(dispatch_uid=auth_uid):
        post_migrate.connect(
            unless_a_flush_kept_them(create_permissions), weak=False, dispatch_uid=auth_uid
        )
