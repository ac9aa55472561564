"""Recompute the daily usage sums from the ledger.

Usage: manage.py usage_rebuild [--check]

Sums every usage record per day, developer, group, model and client in one aggregate query (with
the model's provider account; a record from before accounts: its model's, while it exists) and
replaces all daily sums with the result in one transaction (the ledger is the truth; the sums
are kept in step with it call by call and should never differ). With --check nothing is
written: each difference between the ledger and the sums is listed, and the command exits 1
when there is any. A rebuild deletes the sums: where the app's role may not (manage.py
db_grants), run it as the tables' owner; --check only reads, as any role.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import ProgrammingError, connection, transaction
from django.db.models import (
    BigIntegerField,
    Count,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Collate

from billing.models import TOKEN_FIELDS, DailyUsage, PriceTier, UsageRecord
from llmadmin.models import LLMModel

KEY = ("day", "user_id", "model_id", "client_product", "group_id")
AMOUNTS = (
    "provider_id",
    "provider_type",
    "calls",
    "uncosted_calls",
    "long_context_calls",
    *TOKEN_FIELDS,
    "cost",
)
# SQLite keeps decimals as floating point: sums added in another order may differ in the last
# digits. A millionth of a dollar is a difference worth reporting; less is rounding.
COST_TOLERANCE = Decimal("1e-6")
COST_QUANTUM = Decimal("1e-10")
# PostgreSQL's SQLSTATE for "permission denied": the app's role (see db_grants) rebuilding.
INSUFFICIENT_PRIVILEGE = "42501"


def ledger_sums() -> QuerySet[UsageRecord]:
    """The ledger summed per daily row: KEY then AMOUNTS, in that order of columns."""
    zero = Value(0)
    tokens = {
        f"sum_{name}": Coalesce(Sum(name), zero) for name in AMOUNTS if name.endswith("_tokens")
    }
    account = LLMModel.objects.filter(pk=OuterRef("model_id")).values("provider_id")
    return (
        UsageRecord.objects.order_by()
        .values(*KEY)
        .annotate(
            # A model's provider never changes: any record's will do. Records from before
            # accounts name none: their model's account, while the model exists.
            sum_provider_id=Coalesce(
                Min("provider_id"), Subquery(account), output_field=BigIntegerField()
            ),
            sum_provider_type=Min("provider_type"),
            sum_calls=Count("pk"),
            sum_uncosted_calls=Count("pk", filter=Q(cost__isnull=True)),
            sum_long_context_calls=Count("pk", filter=Q(price_tier=PriceTier.LONG_CONTEXT)),
            **tokens,
            sum_cost=Coalesce(
                Sum("cost"), Value(Decimal(0)), output_field=DailyUsage._meta.get_field("cost")
            ),
        )
    )


def ordered(queryset: QuerySet[Any]) -> QuerySet[Any]:
    # As key_of() sorts: NULL groups first, clients by code point (SQLite's default order;
    # PostgreSQL's C collation).
    client = (
        F("client_product") if connection.vendor == "sqlite" else Collate("client_product", "C")
    )
    return queryset.order_by(*KEY[:3], client, F("group_id").asc(nulls_first=True))


def key_of(row: tuple[Any, ...]) -> tuple[Any, ...]:
    *rest, group_id = row[: len(KEY)]
    return (*rest, -1 if group_id is None else group_id)


def differences(
    ledger: Iterator[tuple[Any, ...]], kept: Iterator[tuple[Any, ...]]
) -> Iterator[str]:
    """Both sides sorted by key: a merge, one row of each in memory at a time."""
    left, right = next(ledger, None), next(kept, None)
    while left is not None or right is not None:
        if right is None or (left is not None and key_of(left) < key_of(right)):
            yield f"{describe(left)}: in the ledger, no daily sums"
            left = next(ledger, None)
        elif left is None or key_of(right) < key_of(left):
            yield f"{describe(right)}: daily sums, no calls in the ledger"
            right = next(kept, None)
        else:
            changed = [
                f"{name} {shown(name, theirs)} in the ledger, {shown(name, ours)} in the sums"
                for name, theirs, ours in zip(
                    AMOUNTS, left[len(KEY) :], right[len(KEY) :], strict=True
                )
                if not same(name, theirs, ours)
            ]
            if changed:
                yield f"{describe(left)}: {'; '.join(changed)}"
            left, right = next(ledger, None), next(kept, None)


def same(name: str, theirs: Any, ours: Any) -> bool:
    if name == "cost":
        return abs(Decimal(theirs) - Decimal(ours)) < COST_TOLERANCE
    return theirs == ours


def shown(name: str, value: Any) -> str:
    # SQLite may hand a sum of costs back as an integer or a float.
    return format(Decimal(str(value)).quantize(COST_QUANTUM), "f") if name == "cost" else str(value)


def describe(row: tuple[Any, ...]) -> str:
    day, user_id, model_id, client_product, group_id = row[: len(KEY)]
    group = "no group" if group_id is None else f"group #{group_id}"
    # The chat's rows name no client.
    client = f" client {client_product!r}" if client_product else ""
    return f"{day.isoformat()} user #{user_id} model #{model_id}{client} {group}"


def usage_rebuild() -> int:
    """Replace the daily sums with the ledger's: one INSERT ... SELECT of the aggregate, after
    deleting the old sums, in one transaction. The rows written."""
    sums = ledger_sums()
    query = sums.query
    # The SELECT's columns: the grouped fields, then the annotations in their order.
    names = [*query.values_select, *query.annotation_select]
    columns = [
        DailyUsage._meta.get_field(name.removeprefix("sum_").removesuffix("_id")).column
        for name in names
    ]
    select, params = query.sql_with_params()
    quote = connection.ops.quote_name
    with transaction.atomic():
        DailyUsage.objects.all().delete()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {quote(DailyUsage._meta.db_table)} "
                f"({', '.join(quote(column) for column in columns)}) {select}",
                params,
            )
            return cursor.rowcount


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="Only list the differences between the ledger and the sums; exit 1 if any.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["check"]:
            try:
                written = usage_rebuild()
            except ProgrammingError as error:
                if getattr(error.__cause__, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
                    raise
                raise CommandError(
                    "This database role may not delete the daily sums: rebuild them as the "
                    "tables' owner (DATABASE_OWNER_URL; see manage.py db_grants)."
                ) from error
            self.stdout.write(f"Daily usage rebuilt from the ledger: {written} rows.")
            return
        fields = [*KEY, *AMOUNTS]
        ledger = ordered(ledger_sums()).values_list(*KEY, *(f"sum_{name}" for name in AMOUNTS))
        kept = ordered(DailyUsage.objects.all()).values_list(*fields)
        found = 0
        for difference in differences(
            ledger.iterator(chunk_size=5000), kept.iterator(chunk_size=5000)
        ):
            found += 1
            self.stdout.write(difference)
        if found:
            self.stdout.write(f"{found} differences between the ledger and the daily sums.")
            sys.exit(1)
        self.stdout.write("The daily sums match the ledger.")
