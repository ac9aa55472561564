"""The usage dashboard's reads: what was spent over a range of days, in total and by model,
provider, developer, group and client, and the geometry of each dimension's stacked bar chart.

Everything comes from the daily sums (DailyUsage), never from the ledger, in at most six
queries whatever the range or the data: the sums by developer, model, account, group and client
together (folded per dimension in Python), then every dimension's per-day series in one query
grouped by day (a filtered sum per key shown), then one query per kind of label, for the keys
shown only. Two passes over the range in all: a year of a million calls is about 250,000 daily
rows. The ledger's references outlive what they name, so labels are looked up by id
afterwards, never joined: a deleted developer's spend stays in the sums, shown as "user #id"; a
deleted provider account's as "<type> account #id (deleted)" (gone_account_label), never as a
live account's label.

Also a developer's own month (own_usage), as the usage API and the agents' page show it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import date, timedelta
from decimal import Decimal
from html import escape
from typing import Any, Literal, NamedTuple

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, models
from django.db.models import F, Min, Q, QuerySet, Sum
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from billing.budgets import BudgetState, api_amount, budget_state, budget_summary, next_month
from billing.models import TOKEN_FIELDS, DailyUsage
from llmadmin.models import LLMModel, Provider, provider_label
from llmadmin.money import CURRENCY, cost_text, csv_amount, usd
from llmadmin.providers import PROVIDER_TYPES

Metric = Literal["cost", "tokens"]
METRICS: dict[str, str] = {"cost": "Cost (USD)", "tokens": "Tokens (input + output)"}
# The longest range shown at once: a year, leap day included.
MAX_DAYS = 366
# Keys charted on their own per dimension; the rest are summed as "Other".
TOP = 8
ZERO = Decimal(0)

# Keys of the summed buckets, never an id (ids start at 1). NO_GROUP_ID also stands for an
# empty reference in a key of several columns (an account unknown).
OTHER_ID, NO_GROUP_ID = 0, -1

# Okabe-Ito: told apart with any kind of colour blindness. "Other" and "No group" are greys.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
)
OTHER_COLOR = "#BBBBBB"
NO_GROUP_COLOR = "#7A7A7A"


# The chat's calls, by the client dimension (their client is empty in the sums).
CHAT_CLIENT = "Chat (the /agents/ page)"


@dataclass(frozen=True)
class Dimension:
    name: str
    title: str  # as in "Cost per day by model"
    # A key is the value of its one column, or a tuple of its columns' values.
    columns: tuple[str, ...]
    # The key of "Other": never one of the dimension's keys (a client is a string, even empty).
    other_key: int | str = OTHER_ID

    def condition(self, key: Any) -> Q:
        """The daily rows of this key (NO_GROUP_ID: of an empty reference). A key of several
        columns is named by its first where that is set (the others follow from it): one
        comparison per key and day row, as the series' query makes them all."""
        values = key if len(self.columns) > 1 else (key,)
        if values[0] != NO_GROUP_ID:
            return Q(**{self.columns[0]: values[0]})
        return Q(
            **{
                column: None if value == NO_GROUP_ID else value
                for column, value in zip(self.columns, values, strict=True)
            }
        )


DIMENSIONS = (
    Dimension("model", "model", ("model_id",)),
    # By account, with its type: sums whose account is unknown (their model was gone before
    # usage was kept per account) are shown per type.
    Dimension("provider", "provider", ("provider_id", "provider_type")),
    Dimension("user", "developer", ("user_id",)),
    Dimension("group", "group", ("group_id",)),
    Dimension("client", "client", ("client_product",)),
)
# Every dimension's columns, each once.
KEY_COLUMNS = tuple(
    dict.fromkeys(column for dimension in DIMENSIONS for column in dimension.columns)
)
# A model's account and its type: taken with the sums by key, not grouped by (a model belongs
# to one account): the fewer the columns sorted, the faster the sort.
OF_THE_MODEL = ("provider_id", "provider_type")


@dataclass(frozen=True)
class Amounts:
    """Sums of daily usage rows. A key's (a table row's) has KEY_FIELDS only; the totals have
    all."""

    calls: int = 0
    uncosted_calls: int = 0
    long_context_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal = ZERO

    @classmethod
    def of_key(cls, amounts: list[Any]) -> Amounts:
        """From KEY_FIELDS' sums, in that order."""
        *counts, cost = amounts
        return cls(*counts, cost=Decimal(cost))

    def __add__(self, other: Amounts) -> Amounts:
        return Amounts(*(getattr(self, name) + getattr(other, name) for name in AMOUNT_FIELDS))

    @property
    def cost_text(self) -> str:
        return cost_text(self.cost, calls=self.calls, unpriced_calls=self.uncosted_calls)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def text(self, metric: Metric) -> str:
        return self.cost_text if metric == "cost" else f"{self.tokens:,} tokens"

    def value(self, metric: Metric) -> Decimal | int:
        return self.cost if metric == "cost" else self.tokens


AMOUNT_FIELDS = tuple(field.name for field in fields(Amounts))
# What the tables show per key, summed by key; the token parts are summed per day only (for
# the totals): the narrower the rows sorted by key, the faster the sort.
KEY_FIELDS = (
    "calls",
    "uncosted_calls",
    "long_context_calls",
    "input_tokens",
    "output_tokens",
    "cost",
)
PART_FIELDS = ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


def sums(names: tuple[str, ...]) -> dict[str, Sum]:
    # Named apart from the fields: an annotation may not shadow one.
    return {f"sum_{name}": Sum(name) for name in names}


def metric_sum(metric: Metric, condition: Q | None = None) -> Sum:
    if metric == "cost":
        # Read as the database gives it (SQLite: a float; PostgreSQL: a decimal): a chart
        # needs no exact decimal, and a year's converting took 30 ms.
        return Sum("cost", filter=condition, output_field=models.FloatField())
    return Sum(F("input_tokens") + F("output_tokens"), filter=condition)


def in_range(start: date, end: date) -> QuerySet[DailyUsage]:
    return DailyUsage.objects.filter(day__gte=start, day__lte=end).order_by()


def days_of(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


# Labels: one query per kind, for the ids asked only (an empty list asks nothing).


def model_labels(ids: list[int]) -> dict[int, str]:
    found = list(
        LLMModel.objects.filter(pk__in=ids).values_list("pk", "display_name", "provider__name")
    )
    names = [name for _, name, _ in found]
    # The same display name at two accounts (Claude direct and on Bedrock): say which.
    return {
        pk: f"{name} ({account})" if names.count(name) > 1 else name for pk, name, account in found
    }


def account_labels(keys: list[tuple[int, str]]) -> dict[tuple[int, str], str]:
    """Each account's label; one deleted since by its id, one unknown under its type's."""
    accounts = Provider.objects.filter(pk__in=[pk for pk, _ in keys])
    found = accounts.values_list("pk", "name", "type")
    labels = {pk: provider_label(name, slug) for pk, name, slug in found}
    # NO_GROUP_ID: sums from before accounts whose model was already gone.
    return {
        (pk, slug): labels.get(pk)
        or (type_label(slug) if pk == NO_GROUP_ID else gone_account_label(pk, slug))
        for pk, slug in keys
    }


def gone_account_label(pk: int, slug: str) -> str:
    """An account deleted since, wherever its usage is shown: by its type and id, so that its
    spend never reads as a live account's (the type's first is labelled as the type)."""
    return f"{type_label(slug)} account #{pk} (deleted)"


def user_labels(ids: list[int]) -> dict[int, str]:
    users = get_user_model().objects.filter(pk__in=ids)
    return dict(users.values_list("pk", get_user_model().USERNAME_FIELD))


def group_labels(ids: list[int]) -> dict[int, str]:
    return dict(Group.objects.filter(pk__in=ids).values_list("pk", "name"))


def type_label(slug: str) -> str:
    provider_type = PROVIDER_TYPES.get(slug)
    return provider_type.label if provider_type else slug


def label_of(dimension: Dimension, key: Any, labels: dict[Any, str]) -> str:
    if key == dimension.other_key:
        return "Other"
    if key == NO_GROUP_ID and dimension.name == "group":
        return "No group"
    if dimension.name == "client":
        # A gateway client by the name it gave (ledger.client_product_of).
        return key or CHAT_CLIENT
    # Deleted since: the sums keep its id.
    return labels.get(key) or f"{dimension.name} #{key}"


# Formatting.


def plain_number(value: float | Decimal) -> str:
    """1.5, 0.25, 20: no trailing zeros, no exponent."""
    text = format(Decimal(str(round(float(value), 10))).normalize(), "f")
    return "0" if text in ("-0", "") else text


def compact(value: float | Decimal) -> str:
    """1.5M, 250k, 12."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{plain_number(float(value) / size)}{suffix}"
    return plain_number(value)


def metric_text(value: Decimal | float | int, metric: Metric) -> str:
    """A day's value in a bar's hover title (a day without a known cost has no bar)."""
    return usd(Decimal(value)) if metric == "cost" else f"{value:,} tokens"


def axis_text(value: float, metric: Metric) -> str:
    return f"${compact(value)}" if metric == "cost" else compact(value)


# The report.


@dataclass(frozen=True)
class Row:
    key: Any
    label: str
    color: str
    amounts: Amounts
    total: str  # the metric's total, formatted


@dataclass(frozen=True)
class Breakdown:
    dimension: Dimension
    rows: list[Row]
    chart: Chart


@dataclass(frozen=True)
class Report:
    start: date
    end: date
    metric: Metric
    totals: Amounts
    breakdowns: list[Breakdown]

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def ranked_keys(
    dimension: Dimension, by_key: dict[Any, Amounts], metric: Metric
) -> tuple[list[Any], list[Any]]:
    """The top keys by the metric (ties by key, for a stable order), and the rest."""
    ranked = sorted(
        (key for key in by_key if key != NO_GROUP_ID or dimension.name != "group"),
        key=lambda key: (-by_key[key].value(metric), key),
    )
    return ranked[:TOP], ranked[TOP:]


def key_sums(days: QuerySet[DailyUsage]) -> dict[str, dict[Any, Amounts]]:
    """Each dimension's sums by key: one query, grouped by developer, model, group and client
    at once (a few thousand rows where a year has hundreds of thousands: one sort instead of
    one per dimension), with the model's account and type, folded per dimension here."""
    grouped = [column for column in KEY_COLUMNS if column not in OF_THE_MODEL]
    taken = {f"model_{column}": Min(column) for column in OF_THE_MODEL}
    rows = by_key_index(
        days.values(*grouped)
        .annotate(**taken, **sums(KEY_FIELDS))
        .values_list(*grouped, *taken, *sums(KEY_FIELDS))
    )
    columns = [*grouped, *OF_THE_MODEL]
    width = len(KEY_FIELDS)
    folded: list[dict[Any, list[Any]]] = [{} for _ in DIMENSIONS]
    positions = [
        [columns.index(column) for column in dimension.columns] for dimension in DIMENSIONS
    ]
    for row in rows:
        amounts = [amount or 0 for amount in row[len(columns) :]]
        keys = [NO_GROUP_ID if value is None else value for value in row[: len(columns)]]
        for by_key, at in zip(folded, positions, strict=True):
            key = keys[at[0]] if len(at) == 1 else tuple(keys[index] for index in at)
            into = by_key.setdefault(key, [0] * width)
            for index, amount in enumerate(amounts):
                into[index] += amount
    return {
        dimension.name: {key: Amounts.of_key(amounts) for key, amounts in by_key.items()}
        for dimension, by_key in zip(DIMENSIONS, folded, strict=True)
    }


# SQLite's index of the daily sums in the key order above (billing migration 0006).
KEY_INDEX = "daily_usage_by_key"


def by_key_index(rows: QuerySet[DailyUsage]) -> Iterable[tuple[Any, ...]]:
    """The rows of a query grouped by the keys; on SQLite read through KEY_INDEX, which its
    planner would not choose (the ORM can't name an index): each key's days in order, no sort
    (a year of a million calls: 330 -> 110 ms; 30 days: 33 -> 22 ms). The ORM still writes the
    SQL and converts each row's values."""
    if connection.vendor != "sqlite":
        return rows
    compiler = rows.query.get_compiler(using=rows.db)
    sql, params = compiler.as_sql()
    table = connection.ops.quote_name(DailyUsage._meta.db_table)
    sql = sql.replace(f"FROM {table}", f"FROM {table} INDEXED BY {KEY_INDEX}", 1)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(compiler.results_iter(results=[cursor.fetchall()], tuple_expected=True))


def usage_report(*, start: date, end: date, metric: Metric) -> Report:
    """Totals, and for each dimension its top keys, "Other" (and "No group"), their sums and
    their per-day series, with labels: six queries at most, whatever the range or the data
    (sums by key, series by day, and one per kind of label)."""
    days = in_range(start, end)
    by_dimension = key_sums(days)
    tops: dict[str, list[Any]] = {}
    shown: dict[str, dict[Any, Amounts]] = {}
    for dimension in DIMENSIONS:
        by_key = by_dimension[dimension.name]
        top, rest = ranked_keys(dimension, by_key, metric)
        tops[dimension.name] = top
        shown[dimension.name] = {key: by_key[key] for key in top}
        if NO_GROUP_ID in by_key and dimension.name == "group":
            shown["group"][NO_GROUP_ID] = by_key[NO_GROUP_ID]
        if rest:
            shown[dimension.name][dimension.other_key] = sum(
                (by_key[key] for key in rest), Amounts()
            )
    series, parts = per_day(days, shown, tops, metric)
    totals = replace(sum(by_dimension["model"].values(), Amounts()), **parts)
    labels = {
        "model": model_labels(tops["model"]),
        "user": user_labels(tops["user"]),
        "group": group_labels(tops["group"]),
        "provider": account_labels(tops["provider"]),
        "client": {},
    }
    breakdowns = []
    for dimension in DIMENSIONS:
        rows = [
            Row(
                key=key,
                label=label_of(dimension, key, labels[dimension.name]),
                color=color_of(dimension, key, index),
                amounts=amounts,
                total=amounts.text(metric),
            )
            for index, (key, amounts) in enumerate(shown[dimension.name].items())
        ]
        chart = bar_chart(
            title=f"{'Cost' if metric == 'cost' else 'Tokens'} per day by {dimension.title}",
            rows=rows,
            series=series[dimension.name],
            days=days_of(start, end),
            metric=metric,
        )
        breakdowns.append(Breakdown(dimension, rows, chart))
    return Report(start, end, metric, totals, breakdowns)


def per_day(
    days: QuerySet[DailyUsage],
    shown: dict[str, dict[Any, Amounts]],
    tops: dict[str, list[Any]],
    metric: Metric,
) -> tuple[dict[str, dict[Any, dict[date, Any]]], dict[str, int]]:
    """Each shown key's value per day, for every dimension, and the token parts' totals: one
    query, grouped by day, with a sum filtered per key shown and the day's total; Other is
    the total less the keys shown (a filter of "none of these" costs a third of the query)."""
    columns: dict[str, tuple[str, Any]] = {}
    values = {"day_total": metric_sum(metric)}
    for dimension in DIMENSIONS:
        for key in shown[dimension.name]:
            if key == dimension.other_key:
                continue
            name = f"value_{len(columns)}"
            columns[name] = (dimension.name, key)
            values[name] = metric_sum(metric, dimension.condition(key))
    others = [dimension for dimension in DIMENSIONS if dimension.other_key in shown[dimension.name]]
    # SQLite sums costs as floats: what is left of a day's total after its keys may be a
    # rounding error, not a cost.
    least = 1e-6 if metric == "cost" else 0
    series: dict[str, dict[Any, dict[date, Any]]] = {
        dimension.name: defaultdict(dict) for dimension in DIMENSIONS
    }
    parts = dict.fromkeys(PART_FIELDS, 0)
    rows = days.values("day").annotate(**values, **sums(PART_FIELDS)).order_by("day")
    for row in rows:
        day, left = row["day"], {dimension.name: row["day_total"] or 0 for dimension in others}
        for name, (dimension_name, key) in columns.items():
            if value := row[name]:
                series[dimension_name][key][day] = value
                if dimension_name in left:
                    left[dimension_name] -= value
        for dimension in others:
            if left[dimension.name] > least:
                series[dimension.name][dimension.other_key][day] = left[dimension.name]
        for name in PART_FIELDS:
            parts[name] += row[f"sum_{name}"] or 0
    return series, parts


def color_of(dimension: Dimension, key: Any, index: int) -> str:
    if key == NO_GROUP_ID and dimension.name == "group":
        return NO_GROUP_COLOR
    if key == dimension.other_key:
        return OTHER_COLOR
    return PALETTE[index % len(PALETTE)]


# Chart geometry: SVG user units; the SVG scales to the page's width.

WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP_MARGIN, BOTTOM = 76, 16, 14, 46


class Segment(NamedTuple):
    # A tuple: a year's charts make thousands.
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    segments: list[Segment]

    @property
    def rects(self) -> SafeString:
        """The segments' SVG. Built here, not in the template, and without format_html per
        segment: a year's chart has thousands (format_html took a quarter of a second). The
        numbers are ours; the titles, which hold labels, are escaped."""
        return mark_safe(  # noqa: S308 (every text escaped above)
            "".join(
                f'<rect x="{x:.2f}" y="{y:.2f}" width="{width:.2f}" height="{height:.2f}">'
                f"<title>{escape(title)}</title></rect>"
                for x, y, width, height, title in self.segments
            )
        )


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    y_title: str
    series: list[Series]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP_MARGIN

    @property
    def right(self) -> int:
        return self.width - RIGHT

    @property
    def bottom(self) -> int:
        return self.height - BOTTOM

    @property
    def x_title_y(self) -> int:
        return self.height - 6

    @property
    def y_title_x(self) -> int:
        return 14

    @property
    def middle_y(self) -> float:
        return (self.top + self.bottom) / 2

    @property
    def middle_x(self) -> float:
        return (self.left + self.right) / 2

    @property
    def tick_label_x(self) -> int:
        return self.left - 6

    @property
    def x_label_y(self) -> int:
        return self.bottom + 16

    @property
    def svg_attributes(self) -> SafeString:
        return format_html('viewBox="0 0 {} {}"', self.width, self.height)


def nice_scale(peak: float, integers: bool) -> tuple[float, float]:
    """A round step (1, 2, 2.5 or 5 times a power of ten) for 3 or 4 intervals from 0 to at
    least the peak (4 or 5 gridlines); (top, step)."""
    peak = peak if peak > 0 else (4 if integers else 1)
    power = 10 ** math.floor(math.log10(peak / 4))
    step = next(factor * power for factor in (1, 2, 2.5, 5, 10, 20) if factor * power * 4 >= peak)
    if integers:
        step = max(1, step)
    return step * math.ceil(peak / step - 1e-9), step


def x_ticks(days: list[date], slot: float) -> list[Tick]:
    """Every day for two weeks, every 7th up to three months, else the first of each month."""
    if len(days) <= 16:
        stride = 1
    elif len(days) <= 92:
        stride = 7
    else:
        stride = 0
    ticks = []
    for index, day in enumerate(days):
        if stride and index % stride == 0:
            label = f"{day.day} {day:%b}"
        elif not stride and day.day == 1:
            label = f"{day:%b %Y}" if day.month == 1 or not ticks else f"{day:%b}"
        else:
            continue
        ticks.append(Tick(round(LEFT + slot * (index + 0.5), 2), label))
    return ticks


def bar_chart(
    *,
    title: str,
    rows: list[Row],
    series: dict[Any, dict[date, Any]],
    days: list[date],
    metric: Metric,
) -> Chart:
    """One stacked bar per day of the range (days without usage included, empty), each key a
    segment with its hover title, over a y axis of round gridlines."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP_MARGIN - BOTTOM
    slot = plot_width / len(days)
    # A gap between bars while they are wide enough to keep one.
    bar = slot * 0.8 if slot >= 4 else slot
    position = {day: index for index, day in enumerate(days)}
    stacked = [0.0] * len(days)
    for row in rows:
        for day, value in series.get(row.key, {}).items():
            stacked[position[day]] += float(value)
    top, step = nice_scale(max(stacked, default=0), integers=metric == "tokens")
    scale = plot_height / top
    base = [float(HEIGHT - BOTTOM)] * len(days)
    left = LEFT + (slot - bar) / 2
    charted = []
    for row in rows:
        segments = []
        # Days in order, each with a value: empty days have no segment.
        for day, value in series.get(row.key, {}).items():
            index = position[day]
            height = float(value) * scale
            base[index] -= height
            hover = f"{day.isoformat()} · {row.label}: {metric_text(value, metric)}"
            segments.append(Segment(left + slot * index, base[index], bar, height, hover))
        charted.append(Series(row.label, row.color, segments))
    intervals = round(top / step)
    y_ticks = [
        Tick(round(HEIGHT - BOTTOM - n * step * scale, 2), axis_text(n * step, metric))
        for n in range(intervals + 1)
    ]
    return Chart(
        title=title,
        y_title="USD per day" if metric == "cost" else "Tokens per day",
        series=charted,
        y_ticks=y_ticks,
        x_ticks=x_ticks(days, slot),
    )


# The CSV: every daily row of the range, with labels. Costs are plain numbers in CURRENCY; a
# row whose calls all lack a known cost has no cost (empty, not 0), and every row says how
# many of its calls lack one, beside the cost: a sum of the column is of known costs only.

CSV_HEADER = (
    "day",
    "user",
    "group",
    "provider",
    "provider account",
    "model identifier",
    "model",
    "client",
    "calls",
    "long-context calls",
    "input tokens",
    "output tokens",
    "cache read tokens",
    "cache write tokens",
    "reasoning tokens",
    "cost",
    "currency",
    "unpriced calls",
)
CSV_COUNTS = ("calls", "long_context_calls", *TOKEN_FIELDS)


def usage_rows(*, start: date, end: date) -> Iterator[tuple[Any, ...]]:
    """Each daily row of the range (day, developer, group, model, client), labelled: four label
    queries for the ids in the range, then the rows read in chunks. The provider is the type's
    label, beside the account's name (empty where it is unknown; gone_account_label where it
    was deleted)."""
    days = in_range(start, end)
    users = get_user_model().objects.filter(pk__in=days.values("user_id"))
    usernames = dict(users.values_list("pk", get_user_model().USERNAME_FIELD))
    groups = dict(
        Group.objects.filter(pk__in=days.exclude(group_id=None).values("group_id")).values_list(
            "pk", "name"
        )
    )
    accounts = dict(
        Provider.objects.filter(
            pk__in=days.exclude(provider_id=None).values("provider_id")
        ).values_list("pk", "name")
    )
    llm_models = {
        pk: (identifier, name)
        for pk, identifier, name in LLMModel.objects.filter(
            pk__in=days.values("model_id")
        ).values_list("pk", "identifier", "display_name")
    }
    rows = days.order_by("day", "user_id", "model_id", "group_id", "client_product").values_list(
        "day",
        "user_id",
        "group_id",
        "provider_type",
        "provider_id",
        "model_id",
        "client_product",
        *CSV_COUNTS,
        "cost",
        "uncosted_calls",
    )
    for row in rows.iterator(chunk_size=2000):
        day, user_id, group_id, slug, account_id, model_id, client, *counts, cost, unpriced = row
        identifier, name = llm_models.get(model_id, ("", f"model #{model_id}"))
        yield (
            day.isoformat(),
            usernames.get(user_id) or f"user #{user_id}",
            "" if group_id is None else groups.get(group_id) or f"group #{group_id}",
            type_label(slug),
            ""
            if account_id is None
            else accounts.get(account_id) or gone_account_label(account_id, slug),
            identifier,
            name,
            client or CHAT_CLIENT,
            *counts,
            "" if unpriced >= counts[0] else csv_amount(cost),
            CURRENCY,
            unpriced,
        )


def own_usage(
    user_id: int, month: date, caps: dict[int, Decimal], state: BudgetState | None = None
) -> dict[str, Any]:
    """A developer's month: their budget, their usage by model and by day (four queries, three
    given their budget's state for that month), and their limits now (read with the budget)."""
    rows = DailyUsage.objects.filter(
        user_id=user_id, day__gte=month, day__lt=next_month(month)
    ).order_by()
    sums = {
        "calls": Sum("calls"),
        "uncosted_calls": Sum("uncosted_calls"),
        "long_context_calls": Sum("long_context_calls"),
        **{name: Sum(name) for name in TOKEN_FIELDS},
        "cost": Sum("cost"),
    }
    by_model = list(rows.values("model_id", "provider_type").annotate(**sums).order_by("-cost"))
    by_day = list(rows.values("day").annotate(**sums).order_by("day"))
    names = dict(
        LLMModel.objects.filter(pk__in=[row["model_id"] for row in by_model]).values_list(
            "pk", "display_name"
        )
    )
    for row in (*by_model, *by_day):
        row["cost_text"] = cost_text(
            row["cost"], calls=row["calls"], unpriced_calls=row["uncosted_calls"]
        )
        # Unknown, not zero, when no call had a known cost.
        row["cost"] = None if row["uncosted_calls"] >= row["calls"] else api_amount(row["cost"])
    for row in by_model:
        # A model deleted since keeps its usage, under its id.
        row["model"] = names.get(row["model_id"], f"model #{row['model_id']}")
    if state is None or state.month != month:
        state = budget_state(user_id, month)
    return {
        "month": f"{month:%Y-%m}",
        "budget": budget_summary(state, caps),
        "limits": state.limits.summary(),
        "by_model": by_model,
        "by_day": [{**row, "day": row["day"].isoformat()} for row in by_day],
    }
