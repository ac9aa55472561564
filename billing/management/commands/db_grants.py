"""Grant the app's PostgreSQL role what the app needs and no more, for serving as a role
that doesn't own the tables (see README, "Production").

Usage: manage.py db_grants ROLE [--apply]

Run it as the role that owns the tables (the one that migrates), after every migrate: ROLE
gets SELECT, INSERT, UPDATE and DELETE on every table of the project's models, except the
ledger (usage records: SELECT and INSERT only) and the daily sums (SELECT, INSERT and UPDATE:
each call increments them; only the owner's usage_rebuild deletes them). Not owning the
tables, ROLE can't TRUNCATE, ALTER (disable a trigger) or DROP any of them. Prints the
statements; --apply also runs them, in one transaction, after revoking whatever ROLE held on
those tables.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from psycopg import sql

from billing.models import DailyUsage, UsageRecord
from llmadmin.management.arguments import text

EVERYTHING = "SELECT, INSERT, UPDATE, DELETE"
LIMITED = {
    UsageRecord._meta.db_table: "SELECT, INSERT",
    DailyUsage._meta.db_table: "SELECT, INSERT, UPDATE",
}


def grant_statements(role: str) -> list[str]:
    """The statements giving ROLE exactly the app's privileges on the project's tables."""
    connection.ensure_connection()

    def quote(name: str) -> str:
        return sql.Identifier(name).as_string(connection.connection)

    tables = sorted(connection.introspection.django_table_names(only_existing=True))
    grantee = quote(role)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        (schema,) = cursor.fetchone()
    return [
        f"GRANT USAGE ON SCHEMA {quote(schema)} TO {grantee}",
        f"REVOKE ALL ON TABLE {', '.join(map(quote, tables))} FROM {grantee}",
        f"GRANT {EVERYTHING} ON TABLE "
        f"{', '.join(quote(table) for table in tables if table not in LIMITED)} TO {grantee}",
        *(
            f"GRANT {privileges} ON TABLE {quote(table)} TO {grantee}"
            for table, privileges in LIMITED.items()
        ),
    ]


def grantee_refusal(role: str) -> str | None:
    """Why ROLE can't be limited by grants: missing, a superuser, or the tables' owner."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, (SELECT count(*) FROM pg_tables "
            "WHERE tableowner = rolname AND tablename = ANY(%s)) "
            "FROM pg_roles WHERE rolname = %s",
            [connection.introspection.django_table_names(only_existing=True), role],
        )
        found = cursor.fetchone()
    if found is None:
        return f"There is no role {role}."
    superuser, owned = found
    if superuser:
        return f"{role} is a superuser: no grant limits it. Serve as a role without SUPERUSER."
    if owned:
        return (
            f"{role} owns {owned} of the tables, and an owner may do anything to them. "
            f"Give them to the migrating role first: REASSIGN OWNED BY {role} TO <owner>."
        )
    return None


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "role", type=text, help="The role the app connects as (DATABASE_URL's user)."
        )
        parser.add_argument("--apply", action="store_true", help="Run the statements too.")

    def handle(self, *args: Any, role: str, apply: bool, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("Grants are for PostgreSQL; this database is not.")
        refusal = grantee_refusal(role)
        if refusal:
            raise CommandError(refusal)
        statements = grant_statements(role)
        if apply:
            with transaction.atomic(), connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        self.stdout.write("".join(f"{statement};\n" for statement in statements))
