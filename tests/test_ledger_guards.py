"""The ledger against the app's own database role, on PostgreSQL: no TRUNCATE even by the
tables' owner, and, served as a role with db_grants' privileges, calls recorded but no record
changed, deleted, truncated or its trigger disabled; the daily sums, which that role
increments, checked by usage_rebuild --check and rebuilt by the owner.

Each test creates its role in its own transaction (gone with it) and acts as it with
SET LOCAL ROLE: the privileges checked are that role's, as on a connection of its own.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from billing.ledger import usage_record
from billing.models import DailyUsage, UsageRecord
from llmadmin.models import LLMModel
from llmadmin.providers.contract import Usage
from tests.factories import LLMModelFactory

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="roles and TRUNCATE"),
    pytest.mark.django_db,
]

PRICES = {"input_price": Decimal("3"), "output_price": Decimal("15")}


def execute(statement: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement)


@pytest.fixture
def role() -> str:
    """A role of the test's own, owning nothing."""
    name = f"{connection.settings_dict['NAME']}_app"
    execute(f'CREATE ROLE "{name}"')
    return name


@pytest.fixture
def app_role(role: str) -> str:
    """The role, granted what db_grants grants the app."""
    call_command("db_grants", role, "--apply", stdout=io.StringIO())
    return role


@contextmanager
def acting_as(role: str) -> Iterator[None]:
    execute(f'SET LOCAL ROLE "{role}"')
    try:
        yield
    finally:
        execute("RESET ROLE")


def record_a_call(user: User, model: LLMModel | None = None) -> None:
    usage_record(
        user_id=user.pk,
        model=model or LLMModelFactory(**PRICES),
        called_at=datetime.now(UTC),
        usage=Usage(1000, 5),
    )


def check() -> tuple[str, int]:
    out = io.StringIO()
    try:
        call_command("usage_rebuild", "--check", stdout=out)
    except SystemExit as exit:
        return out.getvalue(), exit.code
    return out.getvalue(), 0


def test_the_ledger_refuses_truncate_even_from_the_tables_owner(role):
    record_a_call(User.objects.create_user("dev"))
    execute(f'ALTER TABLE llmadmin_usagerecord OWNER TO "{role}"')

    with (
        acting_as(role),
        pytest.raises(DatabaseError, match="never changed or deleted"),
        transaction.atomic(),
    ):
        execute("TRUNCATE llmadmin_usagerecord")

    assert UsageRecord.objects.count() == 1


def test_the_apps_role_records_calls_and_serves_pages(app_role, admin_user, client):
    user = User.objects.create_user("dev")
    model = LLMModelFactory(**PRICES)

    with acting_as(app_role):
        record_a_call(user, model)  # a new daily row
        record_a_call(user, model)  # that row incremented
        client.force_login(admin_user)
        page = client.get(reverse("admin:billing_usagerecord_changelist"))

    assert UsageRecord.objects.filter(user_id=user.pk).count() == 2
    assert DailyUsage.objects.get(user_id=user.pk).calls == 2
    assert page.status_code == 200


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("UPDATE llmadmin_usagerecord SET cost = 0", id="update the ledger"),
        pytest.param("DELETE FROM llmadmin_usagerecord", id="delete from the ledger"),
        pytest.param("TRUNCATE llmadmin_usagerecord", id="truncate the ledger"),
        pytest.param(
            "ALTER TABLE llmadmin_usagerecord DISABLE TRIGGER llmadmin_usage_record_immutable",
            id="disable the ledger's trigger",
        ),
        pytest.param("DROP TABLE llmadmin_usagerecord", id="drop the ledger"),
        pytest.param("DELETE FROM llmadmin_dailyusage", id="delete the daily sums"),
        pytest.param("TRUNCATE llmadmin_dailyusage", id="truncate the daily sums"),
    ],
)
def test_the_apps_role_may_not_change_the_ledger_or_delete_the_sums(app_role, statement):
    record_a_call(User.objects.create_user("dev"))

    # Refused for want of privilege (not by the ledger's triggers, which refuse anyone).
    with (
        acting_as(app_role),
        pytest.raises(DatabaseError, match=r"permission denied|must be owner"),
        transaction.atomic(),
    ):
        execute(statement)

    assert UsageRecord.objects.count() == DailyUsage.objects.count() == 1


def test_sums_changed_by_the_apps_role_are_found_and_rebuilt_by_the_owner(app_role):
    user = User.objects.create_user("dev")
    record_a_call(user)

    with acting_as(app_role):
        DailyUsage.objects.update(cost=0)
        found, code = check()

    assert code == 1
    assert found.endswith(
        "cost 0.0030750000 in the ledger, 0.0000000000 in the sums\n"
        "1 differences between the ledger and the daily sums.\n"
    )
    with acting_as(app_role), pytest.raises(CommandError, match="as the tables' owner"):
        call_command("usage_rebuild", stdout=io.StringIO())
    call_command("usage_rebuild", stdout=io.StringIO())  # as the owner
    assert check() == ("The daily sums match the ledger.\n", 0)


def test_db_grants_refuses_a_role_that_grants_cannot_limit(role):
    execute(f'ALTER TABLE llmadmin_usagerecord OWNER TO "{role}"')
    out = io.StringIO()

    with pytest.raises(CommandError, match="owns 1 of the tables"):
        call_command("db_grants", role, stdout=out)
    with pytest.raises(CommandError, match="is a superuser"):
        call_command("db_grants", connection.settings_dict["USER"], stdout=out)
    # What Python makes of bytes that aren't UTF-8 on the command line (\xff).
    with pytest.raises(CommandError, match="argument role: is not UTF-8 text"):
        call_command("db_grants", "app-\udcff", stdout=out)
    assert out.getvalue() == ""


def test_db_grants_without_apply_prints_the_statements_and_grants_nothing(role):
    out = io.StringIO()

    call_command("db_grants", role, stdout=out)

    assert f'GRANT SELECT, INSERT ON TABLE "llmadmin_usagerecord" TO "{role}";\n' in out.getvalue()
    with connection.cursor() as cursor:
        cursor.execute("SELECT has_table_privilege(%s, 'llmadmin_usagerecord', 'SELECT')", [role])
        assert cursor.fetchone() == (False,)
