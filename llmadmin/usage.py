"""Usage and budgets: every provider call recorded and costed, monthly budgets checked before a
call, alerts when a budget is nearly or wholly spent.

Budgets are per calendar month in the server's time zone (TIME_ZONE) and reset on the 1st.
A developer's monthly allowance is, in this order:
1. their own override (a developer budget override: an amount, or no limit), whatever their
   groups give;
2. else the highest allowance among their groups that have one;
3. else none: no limit.
A model's monthly cap limits each developer's spend on that model, within their allowance.

A turn is refused when what the developer spent this month (their recorded calls) has reached
the allowance or the model's cap. A call's cost is recorded, in one transaction with its
answer, when it ends: until then it is in flight. Each check reads every committed cost, so
concurrent turns of one developer overspend by at most the cost of the turns already in flight
when the last one was let through. Calls whose cost is unknown (unpriced, or no token counts)
count for nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from llmadmin.models import (
    LONG_CONTEXT_PRICE_FIELDS,
    PRICE_FIELDS,
    BudgetAlert,
    DailyUsage,
    GroupBudget,
    LLMModel,
    PriceTier,
    Pricing,
    UsageRecord,
    UserBudget,
)
from llmadmin.money import cost_text, usd, usd_left
from llmadmin.providers.catalog import long_context_threshold
from llmadmin.providers.contract import Usage

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
# Costs are kept to 1e-10 USD (see cost_field).
COST_QUANTUM = Decimal("1e-10")
TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


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


def allowance_for(user_id: int) -> Allowance:
    """Their override, else the highest of their groups' allowances, else no limit: two
    queries."""
    override = UserBudget.objects.filter(user_id=user_id).values_list("monthly_allowance")
    groups = Group.objects.filter(user__id=user_id).values_list(
        "pk", "name", "budget__monthly_allowance"
    )
    return allowance_from(list(override), list(groups))


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
    """Their allowance and this month's spend by model, in one query."""
    month = month_start(today or timezone.localdate())
    sql, params = budget_query(user_id, month)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return budget_of(cursor.fetchall(), month)


def budget_query(user_id: int, month: date) -> tuple[str, list[Any]]:
    """The rows a budget is read from, as (kind, key, name, amount): their groups with their
    allowances (first: the columns take their types from it), their override, and the
    month's sums by model. Plain SQL: the model list runs it on every load, and the ORM takes
    80 times longer to build it than the database to answer it."""
    tables = {
        "overrides": UserBudget._meta.db_table,
        "memberships": Group.user_set.through._meta.db_table,
        "groups": Group._meta.db_table,
        "budgets": GroupBudget._meta.db_table,
        "sums": DailyUsage._meta.db_table,
    }
    # Table names only are formatted in; every value is a parameter.
    sql = (  # noqa: S608
        "SELECT 'group', g.id, g.name, b.monthly_allowance FROM {memberships} m "
        "JOIN {groups} g ON g.id = m.group_id LEFT JOIN {budgets} b ON b.group_id = g.id "
        "WHERE m.user_id = %s "
        "UNION ALL SELECT 'override', NULL, NULL, monthly_allowance FROM {overrides} "
        "WHERE user_id = %s "
        "UNION ALL SELECT 'spend', model_id, NULL, SUM(cost) FROM {sums} "
        "WHERE user_id = %s AND day >= %s AND day < %s GROUP BY model_id"
    ).format(**tables)
    return sql, [user_id, user_id, user_id, month, next_month(month)]


def budget_of(rows: list[tuple[Any, ...]], month: date) -> BudgetState:
    """The budget from budget_query's rows (other kinds of rows are left alone)."""
    allowance = allowance_from(
        [(decimal_of(amount),) for kind, _, _, amount in rows if kind == "override"],
        [(key, name, decimal_of(amount)) for kind, key, name, amount in rows if kind == "group"],
    )
    spent = {key: decimal_of(amount) or ZERO for kind, key, _, amount in rows if kind == "spend"}
    return BudgetState(allowance, month, spent)


def decimal_of(value: Any) -> Decimal | None:
    """A decimal column's value as read by plain SQL: SQLite gives numbers, not decimals."""
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(repr(value)).quantize(COST_QUANTUM)


def api_amount(amount: Decimal | None) -> str | None:
    """An amount for the API: a string, as DRF gives decimals, to 1/100 of a cent."""
    return None if amount is None else str(amount.quantize(Decimal("0.0001")))


def limit_text(amount: Decimal | None) -> str:
    """An allowance or a cap as shown: "No limit" when none applies."""
    return "No limit" if amount is None else usd(amount)


def left_text(amount: Decimal | None) -> str:
    """What is left of an allowance or a cap as shown (rounded down): "No limit" when none
    applies."""
    return "No limit" if amount is None else usd_left(amount)


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


def own_usage(user_id: int, month: date, caps: dict[int, Decimal]) -> dict[str, Any]:
    """A developer's month: their budget, their usage by model and by day (four queries)."""
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
    state = budget_state(user_id, month)
    return {
        "month": f"{month:%Y-%m}",
        "budget": budget_summary(state, caps),
        "by_model": by_model,
        "by_day": [{**row, "day": row["day"].isoformat()} for row in by_day],
    }


def spend_refusal(*, user_id: int, model: LLMModel) -> str | None:
    """Why this developer may not call this model now (their budget or the model's cap is
    spent), in words for them; None when they may."""
    state = budget_state(user_id)
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


def call_cost(
    tokens: dict[str, int | None], prices: dict[str, Decimal | None]
) -> tuple[Pricing, Decimal | None]:
    """What a call cost: input not read from or written to the cache at the input price,
    cache reads and writes at theirs, output at the output price (USD per 1M tokens)."""
    if tokens["input_tokens"] is None or tokens["output_tokens"] is None:
        return Pricing.UNREPORTED, None
    cache_read = tokens["cache_read_tokens"] or 0
    cache_write = tokens["cache_write_tokens"] or 0
    counted = [
        (max(0, tokens["input_tokens"] - cache_read - cache_write), prices["input_price"]),
        (tokens["output_tokens"], prices["output_price"]),
        (cache_read, prices["cache_read_price"]),
        (cache_write, prices["cache_write_price"]),
    ]
    # A model without input or output prices is unpriced, and so is a call that used a kind
    # of token the model has no price for: unknown, never free.
    if prices["input_price"] is None or prices["output_price"] is None:
        return Pricing.UNPRICED, None
    if any(count and price is None for count, price in counted):
        return Pricing.UNPRICED, None
    total = sum((count * price for count, price in counted if count), ZERO)
    return Pricing.PRICED, (total / 1_000_000).quantize(COST_QUANTUM)


def prices_at(
    model: LLMModel, moment: datetime, input_tokens: int | None
) -> tuple[PriceTier, dict[str, Decimal | None]]:
    """The model's prices in effect at that moment for a prompt of that size, and their tier:
    one query. Over the threshold, a model with long-context prices is costed at those, all
    four as they are (one left empty is unpriced, as at base)."""
    price = model.price_history.filter(effective_from__lte=moment).first()
    source = price if price is not None else model
    long_context = [getattr(source, name) for name in LONG_CONTEXT_PRICE_FIELDS]
    if (
        input_tokens is not None
        and input_tokens > long_context_threshold(model.identifier)
        and any(value is not None for value in long_context)
    ):
        return PriceTier.LONG_CONTEXT, dict(zip(PRICE_FIELDS, long_context, strict=True))
    return PriceTier.BASE, {name: getattr(source, name) for name in PRICE_FIELDS}


def usage_record(
    *,
    user_id: int,
    model: LLMModel,
    called_at: datetime,
    usage: Usage | None,
    kind: str = UsageRecord.Kind.CHAT,
    estimated: bool = False,
) -> UsageRecord:
    """Record one provider call, its cost and its day's sums, and check the budget alerts
    once it commits. Call it inside the transaction that stores what the call produced.
    `estimated`: the counts are an estimate (the call was cut short before the provider
    reported any)."""
    tokens = {name: getattr(usage, name, None) for name in TOKEN_FIELDS}
    tier, prices = prices_at(model, called_at, tokens["input_tokens"])
    pricing, cost = call_cost(tokens, prices)
    if estimated and pricing == Pricing.PRICED:
        pricing = Pricing.ESTIMATED
    allowance = allowance_for(user_id)
    record = UsageRecord.objects.create(
        called_at=called_at,
        day=timezone.localdate(called_at),
        user_id=user_id,
        group_id=allowance.group_id,
        model=model,
        provider_type=model.provider.type,
        model_identifier=model.identifier,
        kind=kind,
        price_tier=tier,
        pricing=pricing,
        cost=cost,
        **tokens,
        **prices,
    )
    daily_usage_add(record)
    if cost and allowance.amount is not None:
        # Decided on what is committed: of two calls committing together, the later sees
        # both costs.
        month = month_start(record.day)
        transaction.on_commit(lambda: alerts_due(user_id, month))
    return record


def daily_usage_add(record: UsageRecord) -> None:
    """Add a record to its day's sums: an atomic increment of the row, created if missing
    (a concurrent creator's row is incremented instead)."""
    key = {
        "day": record.day,
        "user_id": record.user_id,
        "model_id": record.model_id,
        "group_id": record.group_id,
    }
    amounts = {
        "calls": 1,
        "uncosted_calls": int(record.cost is None),
        "long_context_calls": int(record.price_tier == PriceTier.LONG_CONTEXT),
        **{name: getattr(record, name) or 0 for name in TOKEN_FIELDS},
        "cost": record.cost or ZERO,
    }
    increments = {name: F(name) + value for name, value in amounts.items()}
    if DailyUsage.objects.filter(**key).update(**increments):
        return
    try:
        with transaction.atomic():
            DailyUsage.objects.create(**key, provider_type=record.provider_type, **amounts)
            return
    except IntegrityError:
        pass
    DailyUsage.objects.filter(**key).update(**increments)


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
    sent = 0
    for mail_subject, body, recipients in mails:
        try:
            sent += send_mail(mail_subject, body, None, recipients)
        except Exception as error:  # a refused address, a server down: logged, never raised
            logger.error("A budget alert could not be mailed: %s", type(error).__name__)
    return sent > 0 or not mails
