"""Benchmark the usage dashboard over a year of a million provider calls.

Usage: .venv/bin/python bench/usage_dashboard.py [--records N] [--rounds R] [--explain]

Sets up a throwaway SQLite database (or DATABASE_URL's), seeds N usage records (default
1,000,000) over the last 365 days, bulk inserted in batches: 200 developers (180 of them in 15
groups), 20 models at 4 providers (one of them unpriced), each developer mostly using three
favourite models, a few heavy users. Then builds the daily sums with `manage.py usage_rebuild`
and times, through Django's test Client as a logged-in superuser, the dashboard for the whole
year and for the last 30 days, and the CSV of the last 30 days, against a floor (the admin
index page), in R rounds (default 7), each round asking for the floor and every page in turn.
Prints each page's min, median and max, and its ratio to the floor taken per round (median,
min-max), with the load average at start and end. Target: the year's page under 500 ms.
--explain prints the plan of each query of the year's page. About 1.5 minutes on SQLite, 2 on
PostgreSQL (seeding is most of it).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from rounds import load_line, ratios, spread
from serving import ROOT, bench_environment, require

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

USERS, GROUPS, UNGROUPED = 200, 15, 20
PROVIDERS = ("anthropic", "openai", "google", "bedrock")
MODELS_PER_PROVIDER = 5
BATCH = 20_000
COLUMNS = (
    "called_at",
    "day",
    "user_id",
    "group_id",
    "model_id",
    "provider_id",
    "provider_type",
    "model_identifier",
    "kind",
    "client",
    "client_product",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "input_price",
    "output_price",
    "cache_read_price",
    "cache_write_price",
    "price_tier",
    "pricing",
    "cost",
)


def setup(workdir: str) -> None:
    os.environ.update(bench_environment(workdir))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed(records: int) -> tuple[float, int]:
    """The people, the models and `records` ledger rows; seconds taken and the first day."""
    from django.contrib.auth.models import Group, User
    from django.db import connection, transaction
    from django.utils import timezone

    from billing.models import UsageRecord
    from llmadmin.models import LLMModel, Provider

    started = time.perf_counter()
    rng = random.Random(15)  # noqa: S311 (repeatable data, not secrets)
    groups = Group.objects.bulk_create(Group(name=f"team-{n:02d}") for n in range(GROUPS))
    users = User.objects.bulk_create(User(username=f"dev-{n:03d}") for n in range(USERS))
    through = User.groups.through
    through.objects.bulk_create(
        through(user_id=user.pk, group_id=groups[n % GROUPS].pk)
        for n, user in enumerate(users[: USERS - UNGROUPED])
    )
    models = []
    for slug in PROVIDERS:
        provider = Provider.objects.get(type=slug)
        for n in range(MODELS_PER_PROVIDER):
            priced = not (slug == "bedrock" and n == MODELS_PER_PROVIDER - 1)
            models.append(
                LLMModel(
                    provider=provider,
                    identifier=f"{slug}-model-{n}",
                    display_name=f"{slug.capitalize()} model {n}",
                    context_limit=200_000,
                    input_price=Decimal(n + 1) if priced else None,
                    output_price=Decimal(5 * (n + 1)) if priced else None,
                )
            )
    models = LLMModel.objects.bulk_create(models)
    # Each developer: three favourite models, some much busier than others.
    favourites = {user.pk: rng.sample(models, 3) for user in users}
    group_of = {user.pk: groups[n % GROUPS].pk for n, user in enumerate(users[:-UNGROUPED])}
    weights = [1 / (1 + n % 50) for n in range(USERS)]
    today = timezone.localdate()
    first = today - timedelta(days=364)
    table = UsageRecord._meta.db_table
    columns = ", ".join(connection.ops.quote_name(column) for column in COLUMNS)
    marks = ", ".join(["%s"] * len(COLUMNS))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608 (no input)
    ops = connection.ops
    million = Decimal(1_000_000)
    done = 0
    while done < records:
        size = min(BATCH, records - done)
        rows = []
        for user in rng.choices(users, weights, k=size):
            model = rng.choice(favourites[user.pk]) if rng.random() < 0.9 else rng.choice(models)
            day = first + timedelta(days=rng.randrange(365))
            called_at = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                seconds=rng.randrange(86_400)
            )
            reported = rng.random() > 0.01
            input_tokens = rng.randrange(500, 60_000) if reported else None
            output_tokens = rng.randrange(50, 4_000) if reported else None
            if not reported:
                pricing, cost = "unreported", None
            elif model.input_price is None:
                pricing, cost = "unpriced", None
            else:
                pricing = "priced"
                cost = (
                    (input_tokens * model.input_price + output_tokens * model.output_price)
                    / million
                ).quantize(Decimal("1e-10"))
            rows.append(
                (
                    ops.adapt_datetimefield_value(called_at),
                    ops.adapt_datefield_value(day),
                    user.pk,
                    group_of.get(user.pk),
                    model.pk,
                    model.provider_id,
                    model.provider.type,
                    model.identifier,
                    "chat",
                    "",  # the chat's calls name no client
                    "",
                    input_tokens,
                    output_tokens,
                    None,
                    None,
                    None,
                    model.input_price,
                    model.output_price,
                    None,
                    None,
                    "base",  # a column default is the ORM's, not the table's
                    pricing,
                    cost,
                )
            )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, rows)
        done += size
    return time.perf_counter() - started, first


def timed(rounds: int, requests: dict[str, Callable[[], int]]) -> dict[str, list[float]]:
    """Each request once a round, in turn; seconds, round by round."""
    times: dict[str, list[float]] = {name: [] for name in requests}
    for request in requests.values():
        request()  # warm: templates, the first connection
    for _ in range(rounds):
        for name, request in requests.items():
            started = time.perf_counter()
            request()
            times[name].append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--explain", action="store_true")
    arguments = parser.parse_args()

    print(load_line("start"))
    with tempfile.TemporaryDirectory() as workdir:
        setup(workdir)
        from django.contrib.auth.models import User
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client, override_settings
        from django.test.utils import CaptureQueriesContext
        from django.utils import timezone

        from billing.models import DailyUsage, UsageRecord

        print(f"database: {connection.vendor}")
        seconds, first = seed(arguments.records)
        print(f"seeded {UsageRecord.objects.count():,} usage records in {seconds:.1f} s")
        started = time.perf_counter()
        call_command("usage_rebuild", stdout=io.StringIO())
        print(
            f"usage_rebuild: {DailyUsage.objects.count():,} daily rows in "
            f"{time.perf_counter() - started:.1f} s"
        )
        if connection.vendor == "postgresql":
            # What autovacuum does after a bulk load; SQLite has no statistics unless asked.
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE llmadmin_dailyusage")

        today = timezone.localdate()
        year = {"start": first.isoformat(), "end": today.isoformat()}
        month = {"start": (today - timedelta(days=29)).isoformat(), "end": today.isoformat()}
        client = Client()
        client.force_login(User.objects.create_superuser("bench-admin"))
        dashboard = "/admin/billing/dailyusage/"
        sizes: dict[str, int] = {}

        def get(name: str, path: str, query: dict[str, str] | None = None) -> Callable[[], int]:
            def request() -> int:
                response = client.get(path, query or {})
                require(response.status_code == 200, (path, response.status_code))
                body = (
                    b"".join(response.streaming_content) if response.streaming else response.content
                )
                sizes[name] = len(body)
                return len(body)

            return request

        requests = {
            "floor (admin index)": get("floor (admin index)", "/admin/"),
            "dashboard, 365 days": get("dashboard, 365 days", dashboard, year),
            "dashboard, 30 days": get("dashboard, 30 days", dashboard, month),
            "CSV, 30 days": get("CSV, 30 days", f"{dashboard}csv/", month),
        }
        # No collectstatic here: plain static URLs, as in the tests.
        static = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
        from django.conf import settings

        with override_settings(STORAGES={**settings.STORAGES, "staticfiles": static}):
            queries = {}
            for name, request in requests.items():
                with CaptureQueriesContext(connection) as captured:
                    request()
                queries[name] = len(captured)
                if arguments.explain and name == "dashboard, 365 days":
                    explain(connection, captured.captured_queries)
            times = timed(arguments.rounds, requests)

        floor = times["floor (admin index)"]
        print(f"\n{arguments.rounds} rounds, the floor and every page in turn in each round")
        print(f"{'':22}{'ms: median (min-max)':>24}{'ratio to floor':>22}{'queries':>9}{'KiB':>7}")
        for name, seconds_each in times.items():
            milliseconds = [seconds * 1000 for seconds in seconds_each]
            print(
                f"{name:22}{spread(milliseconds):>24}{spread(ratios(seconds_each, floor)):>22}"
                f"{queries[name]:9}{sizes[name] / 1024:7.0f}"
            )
        year = [seconds * 1000 for seconds in times["dashboard, 365 days"]]
        print(f"\nyear's page: {spread(year, '{:.0f}'.format)} ms (target < 500 ms)")
        print(load_line("end"))


def explain(connection: BaseDatabaseWrapper, queries: list[dict[str, str]]) -> None:
    """The plan of each query (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN ANALYZE)."""
    prefix = "EXPLAIN ANALYZE " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN "
    for query in queries:
        sql = query["sql"]
        if not sql.startswith("SELECT"):
            continue
        print(f"\n{query['time']} s: {sql[:300]}")
        with connection.cursor() as cursor:
            cursor.execute(prefix + sql)
            for row in cursor.fetchall():
                print("   ", " | ".join(str(cell) for cell in row))


if __name__ == "__main__":
    main()
