"""Budgets: what a developer has spent this month and may spend, checked before a call, and
alerts when a budget is nearly or wholly spent (the ledger records and costs each call).

Budgets are per calendar month in the server's time zone (TIME_ZONE) and reset on the 1st.
A developer's monthly allowance is, in this order:
1. their own override (a developer budget override: an amount, or no limit), whatever their
   groups give;
2. else the highest allowance among their groups that have one;
3. else none: no limit.
A model's monthly cap limits each developer's spend on that model, within their allowance.
Their limits (turns at once, per minute: billing.limits) are read with their budget.

A turn is refused when what the developer spent this month (their recorded calls) has reached
the allowance or the model's cap. A call's cost is recorded, in one transaction with its
answer, when it ends: until then it is in flight. Each check reads every committed cost, so
concurrent turns of one developer overspend by at most the cost of the turns already in flight
when the last one was let through. With a limit of C turns at once (billing.limits), that is
C turns at most: such a turn reads the budget again under the developer's lock, when every cost
not yet committed is one of their at most C running turns'. Calls whose cost is unknown
(unpriced, or no token counts) count for nothing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.limits import Limits, limits_from
from billing.models import (
    COST_QUANTUM,
    LIMIT_FIELDS,
    BudgetAlert,
    DailyUsage,
    DeveloperLimits,
    GroupBudget,
    GroupLimits,
    UserBudget,
)
from chat.retries import release_connection
from llmadmin.models import LLMModel
from llmadmin.money import left_text, limit_text, usd

logger = logging.getLogger(__name__)

ZERO = Decimal(0)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    """The first day of the month after this day's: when its budgets reset."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


@dataclass(frozen=True)
class Allowance:
    """A developer's monthly allowance and where it comes from."""

    amount: Decimal | None  # None: no limit
    source: str  # "override", "group" or "" (no budget applies)
    # The group charged for their calls: the one whose allowance applies, else their first.
    group_id: int | None = None
    group_name: str = ""

    @property
    def described(self) -> str:
        if self.source == "override":
            return "own override"
        if self.source == "group":
            return f"group {self.group_name}"
        return "no budget"


def allowance_from(
    override: list[tuple[Decimal | None]], groups: list[tuple[int, str, Decimal | None]]
) -> Allowance:
    """The rule, from their override row (if any) and their groups (id, name, allowance or
    None), in any order."""
    # By name as Python orders it, not as each database collates: every caller agrees.
    groups = sorted(groups, key=lambda group: (group[1], group[0]))
    first_id, first_name = groups[0][:2] if groups else (None, "")
    if override:
        return Allowance(override[0][0], "override", first_id, first_name)
    budgeted = [group for group in groups if group[2] is not None]
    if not budgeted:
        return Allowance(None, "", first_id, first_name)
    # The highest wins; between equal ones, the first by name.
    group_id, name, amount = max(budgeted, key=lambda group: group[2])
    return Allowance(amount, "group", group_id, name)


@dataclass(frozen=True)
class BudgetState:
    """A developer's month: allowance, spend so far (in total and by model)."""

    allowance: Allowance
    month: date
    spent_by_model: dict[int, Decimal] = field(default_factory=dict)
    # Every group they are in, budgeted or not (the model list's access reads them too).
    group_ids: frozenset[int] = frozenset()
    # Read with the budget, in the same query: how much they may run at once and per minute.
    limits: Limits = field(default_factory=Limits)

    @property
    def spent(self) -> Decimal:
        return sum(self.spent_by_model.values(), ZERO)

    @property
    def resets_on(self) -> date:
        return next_month(self.month)

    @property
    def remaining(self) -> Decimal | None:
        if self.allowance.amount is None:
            return None
        return max(ZERO, self.allowance.amount - self.spent)

    def model_remaining(self, model_id: int, cap: Decimal | None) -> Decimal | None:
        """What is left for this model: its cap's rest, within the budget's rest."""
        rests = [rest for rest in (self.remaining,) if rest is not None]
        if cap is not None:
            rests.append(max(ZERO, cap - self.spent_by_model.get(model_id, ZERO)))
        return min(rests) if rests else None

    @property
    def used_percent(self) -> int | None:
        amount = self.allowance.amount
        if amount is None:
            return None
        if not amount:
            return 100
        return int(self.spent * 100 / amount)


def budget_state(user_id: int, today: date | None = None) -> BudgetState:
    """One developer's allowance and this month's spend by model, in one query."""
    month = month_start(today or timezone.localdate())
    states, _ = budget_states([user_id], month=month)
    return states[user_id]


def budget_states(
    user_ids: Collection[int], *, month: date, also: tuple[str, list[Any]] | None = None
) -> tuple[dict[int, BudgetState], list[tuple[Any, ...]]]:
    """What each of these developers has spent in the month and may spend, in one query: the
    one reading of the rule, for the turn, the API, the model list and the admin's list.

    `also`: a caller's own SELECT of five columns, the first a kind of its own, read in the
    same round trip (the model list reads its configuration version so); its rows are
    returned as they are.
    """
    sql, params = budget_query(user_ids, month)
    if also is not None:
        sql, params = f"{sql} UNION ALL {also[0]}", [*params, *also[1]]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    states = {user_id: budget_of(rows, user_id, month) for user_id in user_ids}
    return states, [row for row in rows if row[0] not in BUDGET_ROWS]


# The kinds of rows budget_query gives: a limit's rows are "group <limit>" and "own <limit>".
BUDGET_ROWS = (
    "group",
    "override",
    "spend",
    *(f"{source} {name}" for name in LIMIT_FIELDS for source in ("group", "own")),
)


# One limit's rows: set by the developer's groups (with the group's name), and by their own
# override.
LIMIT_ROWS = (
    "UNION ALL SELECT 'group {name}', m.user_id, l.{name}, g.name, NULL FROM {memberships} m "
    "JOIN {group_limits} l ON l.group_id = m.group_id JOIN {groups} g ON g.id = m.group_id "
    "WHERE m.user_id IN ({users}) AND l.{name} IS NOT NULL "
    "UNION ALL SELECT 'own {name}', user_id, {name}, NULL, NULL FROM {own_limits} "
    "WHERE user_id IN ({users}) AND {name} IS NOT NULL "
)


def budget_query(user_ids: Collection[int], month: date) -> tuple[str, list[Any]]:
    """The rows budgets are read from, as (kind, user id, key, name, amount): the developers'
    groups with their allowances (first: the columns take their types from it), their
    overrides, the month's sums by developer and model, and each limit set by their groups
    (with the group's name) and by their own override (its value as the key). Plain SQL: the
    model list runs it on every load, and the ORM takes 80 times longer to build it than the
    database to answer it."""
    ids = list(user_ids)
    params = [*ids, *ids, *ids * 2 * len(LIMIT_FIELDS), *ids, *month_bounds(month)]
    return budget_sql(", ".join(["%s"] * len(ids)) or "NULL"), params


def month_bounds(month: date) -> list[date]:
    """budget_sql's parameters when its developers are an outer query's column."""
    return [month, next_month(month)]


@functools.lru_cache(maxsize=64)
def budget_sql(users: str) -> str:
    """budget_query's SQL for these developers: placeholders, or the column of an outer query
    naming one (then month_bounds gives its parameters). Built once for each."""
    tables = {
        "overrides": UserBudget._meta.db_table,
        "memberships": Group.user_set.through._meta.db_table,
        "groups": Group._meta.db_table,
        "budgets": GroupBudget._meta.db_table,
        "sums": DailyUsage._meta.db_table,
        "group_limits": GroupLimits._meta.db_table,
        "own_limits": DeveloperLimits._meta.db_table,
    }
    # Table and column names and placeholders only are formatted in; every value is a
    # parameter.
    limits = "".join(LIMIT_ROWS.format(name=name, users=users, **tables) for name in LIMIT_FIELDS)
    return (  # noqa: S608
        "SELECT 'group' AS kind, m.user_id AS who, g.id AS ref, g.name AS label, "
        "b.monthly_allowance AS amount FROM {memberships} m "
        "JOIN {groups} g ON g.id = m.group_id LEFT JOIN {budgets} b ON b.group_id = g.id "
        "WHERE m.user_id IN ({users}) "
        "UNION ALL SELECT 'override', user_id, NULL, NULL, monthly_allowance FROM {overrides} "
        "WHERE user_id IN ({users}) {limits}"
        "UNION ALL SELECT 'spend', user_id, model_id, NULL, SUM(cost) FROM {sums} "
        "WHERE user_id IN ({users}) AND day >= %s AND day < %s GROUP BY user_id, model_id"
    ).format(users=users, limits=limits, **tables)


def budget_of(rows: list[tuple[Any, ...]], user_id: int, month: date) -> BudgetState:
    """One developer's budget from budget_query's rows (other kinds of rows are left alone)."""
    mine = [(kind, key, name, amount) for kind, user, key, name, amount in rows if user == user_id]
    allowance = allowance_from(
        [(decimal_of(amount),) for kind, _, _, amount in mine if kind == "override"],
        [(key, name, decimal_of(amount)) for kind, key, name, amount in mine if kind == "group"],
    )
    spent = {key: decimal_of(amount) or ZERO for kind, key, _, amount in mine if kind == "spend"}
    groups = frozenset(key for kind, key, _, _ in mine if kind == "group")
    limits = limits_from(
        [(kind, key, name) for kind, key, name, _ in mine if kind in BUDGET_ROWS[3:]]
    )
    return BudgetState(allowance, month, spent, groups, limits)


def month_spend(month: date) -> Coalesce:
    """A developer's spend in the month as budget_query sums it, for a queryset of users to
    sort by (the admin's list)."""
    sums = DailyUsage.objects.filter(user=OuterRef("pk"), day__gte=month, day__lt=next_month(month))
    total = sums.values("user").annotate(total=Sum("cost")).values("total")
    return Coalesce(Subquery(total), ZERO)


def decimal_of(value: Any) -> Decimal | None:
    """A decimal column's value as read by plain SQL: SQLite gives numbers, not decimals."""
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(repr(value)).quantize(COST_QUANTUM)


def api_amount(amount: Decimal | None) -> str | None:
    """An amount for the API: a string, as DRF gives decimals, to 1/100 of a cent."""
    return None if amount is None else str(amount.quantize(Decimal("0.0001")))


def budget_summary(state: BudgetState, caps: dict[int, Decimal]) -> dict[str, Any]:
    """A developer's budget as the API gives it; caps: the monthly caps of their models. Each
    amount is a number (as a decimal string) and, as `<name>_text`, as pages show it."""
    return {
        "monthly_allowance": api_amount(state.allowance.amount),
        "monthly_allowance_text": limit_text(state.allowance.amount),
        "source": state.allowance.source or None,
        "spent": api_amount(state.spent),
        "spent_text": usd(state.spent),
        "remaining": api_amount(state.remaining),
        "remaining_text": left_text(state.remaining),
        "resets_on": state.resets_on.isoformat(),
        "model_caps": [
            {
                "model_id": model_id,
                "monthly_cap": api_amount(cap),
                "monthly_cap_text": usd(cap),
                "spent": api_amount(state.spent_by_model.get(model_id, ZERO)),
                "spent_text": usd(state.spent_by_model.get(model_id, ZERO)),
                "remaining": api_amount(state.model_remaining(model_id, cap)),
                "remaining_text": left_text(state.model_remaining(model_id, cap)),
            }
            for model_id, cap in sorted(caps.items())
        ],
    }


def spend_refusal(*, state: BudgetState, model: LLMModel) -> str | None:
    """Why a developer with this month's state may not call this model now (their budget or
    the model's cap is spent), in words for them; None when they may. The state is the one
    their access was read with (chat.model_list.state_of): one reading per call."""
    resets = f"it resets on {state.resets_on:%-d %B %Y}"
    amount = state.allowance.amount
    if amount is not None and state.spent >= amount:
        return f"Your monthly budget of {usd(amount)} is spent ({usd(state.spent)}); {resets}."
    cap = model.monthly_cap
    if cap is not None and state.spent_by_model.get(model.pk, ZERO) >= cap:
        return (
            f"Your monthly cap of {usd(cap)} for {model.display_name} is spent; {resets}. "
            "Other models stay available within your budget."
        )
    return None


def alerts_due(user_id: int, month: date) -> None:
    """After a costed call committed (or a turn was refused): alert at 85 % and at 100 % of
    the allowance, once per level and month. The unique alert row decides, so concurrent
    calls crossing a level send one alert. Never raises: an alert must not fail the turn."""
    try:
        levels_alert(user_id, month)
    except Exception as error:  # the database or the mail server: logged, the turn goes on
        logger.error("Budget alerts could not be checked: %s", type(error).__name__)


def levels_alert(user_id: int, month: date) -> None:
    state = budget_state(user_id, month)
    amount, spent = state.allowance.amount, state.spent
    if amount is None:
        return
    due = [level for level in BudgetAlert.Level if spent * 100 >= amount * level.value]
    if not due:
        return
    sent = set(
        BudgetAlert.objects.filter(user_id=user_id, month=month).values_list("level", flat=True)
    )
    new = []
    for level in due:
        if level.value in sent:
            continue
        try:
            with transaction.atomic():
                BudgetAlert.objects.create(user_id=user_id, month=month, level=level)
        except IntegrityError:
            continue  # another call sent it
        new.append(level)
    # Both levels crossed at once: one mail, of the higher. Unsent, they are due again.
    if new and not alert_send(user_id, max(new), amount, spent, month):
        BudgetAlert.objects.filter(user_id=user_id, month=month, level__in=new).delete()


def alert_send(
    user_id: int, level: BudgetAlert.Level, amount: Decimal, spent: Decimal, month: date
) -> bool:
    """Mail the developer and every active superuser with an address (EMAIL_BACKEND), each
    mail on its own (a refused address stops no other); whether one went out, or there was
    nobody to tell."""
    users = get_user_model().objects
    user = users.get(pk=user_id)
    resets = f"It resets on {next_month(month):%-d %B %Y}."
    if level == BudgetAlert.Level.SPENT:
        headline, consequence = "spent", "New chat turns are refused until then."
    else:
        headline, consequence = f"{level.value} % spent", "Turns are refused once it is spent."
    state = f"is {headline}: {usd(spent)} of {usd(amount)}"
    subject = f"[llmadmin] Monthly LLM budget {headline}"
    admins = list(
        users.filter(is_superuser=True, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    mails = [
        (subject, f"Your monthly LLM budget {state}. {resets} {consequence}", [user.email]),
        (
            f"{subject}: {user.get_username()}",
            f"The monthly LLM budget of {user.get_username()} ({month:%B %Y}) {state}. {resets}",
            admins,
        ),
    ]
    mails = [mail for mail in mails if any(mail[2])]
    # A concurrent call may have crossed a higher level meanwhile: its mail says more, and
    # this one, sent after it, would read as the budget's latest state. Checked last, just
    # before sending.
    if BudgetAlert.objects.filter(user_id=user_id, month=month, level__gt=level).exists():
        return True
    # Each mail may wait on its server for EMAIL_TIMEOUT: no pool connection waits with it.
    release_connection()
    sent = 0
    for mail_subject, body, recipients in mails:
        try:
            sent += send_mail(mail_subject, body, None, recipients)
        except Exception as error:  # a refused address, a server down: logged, never raised
            logger.error("A budget alert could not be mailed: %s", type(error).__name__)
    return sent > 0 or not mails
