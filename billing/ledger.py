"""The ledger: every provider call recorded and costed at the prices in effect when it
started, and summed per day in the same transaction; the price history those prices are read
from."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

from billing.budgets import ZERO, Allowance, alerts_due, budget_state, month_start
from billing.models import (
    COST_QUANTUM,
    TOKEN_FIELDS,
    DailyUsage,
    ModelPrice,
    PriceTier,
    Pricing,
    UsageRecord,
)
from llmadmin.models import LONG_CONTEXT_PRICE_FIELDS, MODEL_PRICE_FIELDS, PRICE_FIELDS, LLMModel
from llmadmin.providers.catalog import long_context_threshold
from llmadmin.providers.contract import Usage


def price_history_add(
    sender: Any, instance: LLMModel, created: bool, raw: bool, **kwargs: Any
) -> None:
    """On a model's save, in its transaction: new prices take effect now, and usage already
    recorded keeps the cost it had. A fixture loaded as it is (raw) writes no history."""
    if raw:
        return
    if created:
        saved = None
    elif hasattr(instance, "saved_prices"):
        saved = instance.saved_prices
    else:
        latest = instance.price_history.first()
        saved = latest.prices if latest else None
    if instance.prices != saved:
        ModelPrice.objects.create(
            model=instance, **{name: getattr(instance, name) for name in MODEL_PRICE_FIELDS}
        )
    instance.saved_prices = instance.prices


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


@functools.cache
def price_query() -> str:
    """The SQL of prices_at: a model's prices in effect at a moment. Plain SQL: every call's
    record runs it, and the ORM took longer to build it than the database to answer it."""
    table = ModelPrice._meta.db_table
    columns = ", ".join(ModelPrice._meta.get_field(name).column for name in MODEL_PRICE_FIELDS)
    # Table and column names only are formatted in; the model and the moment are parameters.
    return (
        f"SELECT id, {columns} FROM {table} WHERE model_id = %s AND effective_from <= %s "  # noqa: S608
        "ORDER BY effective_from DESC, id DESC LIMIT 1"
    )


def prices_at(
    model: LLMModel, moment: datetime, input_tokens: int | None
) -> tuple[PriceTier, dict[str, Decimal | None]]:
    """The model's prices in effect at that moment for a prompt of that size, and their tier:
    one query. Over the threshold, a model with long-context prices is costed at those, all
    four as they are (one left empty is unpriced, as at base)."""
    prices = ModelPrice.objects.raw(price_query(), [model.pk, moment])
    price = next(iter(prices), None)
    source = price if price is not None else model
    long_context = [getattr(source, name) for name in LONG_CONTEXT_PRICE_FIELDS]
    if (
        input_tokens is not None
        and input_tokens > long_context_threshold(model.identifier)
        and any(value is not None for value in long_context)
    ):
        return PriceTier.LONG_CONTEXT, dict(zip(PRICE_FIELDS, long_context, strict=True))
    return PriceTier.BASE, {name: getattr(source, name) for name in PRICE_FIELDS}


# A gateway client that names no product (no User-Agent, or only a comment): never a product
# name, which cannot start with "(".
UNNAMED_CLIENT = "(unnamed client)"
# A version: a word, or the part of a word after "/", starting with a digit.
VERSION = re.compile(r"/\d\S*$|^\d")


def client_product_of(*, kind: str, client: str) -> str:
    """The client as the dashboard splits spend by it, so that one tool's versions are one
    client: empty for the chat; for a gateway call, its User-Agent up to the first comment
    ("(…)"), without versions: `OpenAI/Python 3.57.0` is `OpenAI/Python`, `claude-cli/1.0.83
    (external, cli)` is `claude-cli`."""
    if kind != UsageRecord.Kind.GATEWAY:
        return ""
    words = client.split("(", 1)[0].split()
    named = [VERSION.sub("", word) for word in words if not VERSION.match(word)]
    return " ".join(named) or UNNAMED_CLIENT


def usage_record(
    *,
    user_id: int,
    model: LLMModel,
    called_at: datetime,
    usage: Usage | None,
    kind: str = UsageRecord.Kind.CHAT,
    estimated: bool = False,
    token_id: int | None = None,
    client_name: str = "",
    allowance: Allowance | None = None,
    alerts: Callable[[int, date], None] = alerts_due,
) -> UsageRecord:
    """Record one provider call, its cost and its day's sums, and check the budget alerts
    once it commits. Call it inside the transaction that stores what the call produced.
    `estimated`: the counts are an estimate (the call was cut short before the provider
    reported any). `token_id` and `client_name`: the gateway's personal access token and the
    client that sent the call (its User-Agent, trimmed). `allowance`: the one that let the
    call through, read when it was (its group is charged); else it is read now. `alerts`:
    called with the developer and the month once the record commits, if the alerts are to be
    checked (alerts_due checks them at once)."""
    tokens = {name: getattr(usage, name, None) for name in TOKEN_FIELDS}
    tier, prices = prices_at(model, called_at, tokens["input_tokens"])
    pricing, cost = call_cost(tokens, prices)
    if estimated and pricing == Pricing.PRICED:
        pricing = Pricing.ESTIMATED
    read_now = allowance is None
    if read_now:
        allowance = budget_state(user_id).allowance
    record = UsageRecord.objects.create(
        called_at=called_at,
        day=timezone.localdate(called_at),
        user_id=user_id,
        group_id=allowance.group_id,
        model=model,
        provider_id=model.provider_id,
        provider_type=model.provider.type,
        model_identifier=model.identifier,
        kind=kind,
        token_id=token_id,
        client=client_name[: UsageRecord._meta.get_field("client").max_length],
        client_product=client_product_of(kind=kind, client=client_name),
        price_tier=tier,
        pricing=pricing,
        cost=cost,
        **tokens,
        **prices,
    )
    daily_usage_add(record)
    if cost and (allowance.amount is not None or not read_now):
        # Decided on what is committed (of two calls committing together, the later sees
        # both costs) and on the budget then: one set while the call ran is alerted on too.
        month = month_start(record.day)
        transaction.on_commit(lambda: alerts(user_id, month))
    return record


def daily_usage_add(record: UsageRecord) -> None:
    """Add a record to its day's sums: one statement that creates the row or increments it
    atomically (a concurrent creator's row is incremented instead). In SQL of its own: the
    ORM's update and create took half the ledger's write to build."""
    key = {
        "day": record.day,
        "user_id": record.user_id,
        "model_id": record.model_id,
        "client_product": record.client_product,
        "group_id": record.group_id,
    }
    amounts = {
        "calls": 1,
        "uncosted_calls": int(record.cost is None),
        "long_context_calls": int(record.price_tier == PriceTier.LONG_CONTEXT),
        **{name: getattr(record, name) or 0 for name in TOKEN_FIELDS},
        "cost": record.cost or ZERO,
    }
    connection = connections[DailyUsage.objects.db]
    values = {
        **key,
        "provider_id": record.provider_id,
        "provider_type": record.provider_type,
        **amounts,
    }
    # The unique index the row falls under (partial: one with a group, one without).
    conflict = (
        "day, user_id, model_id, client_product, group_id) WHERE (group_id IS NOT NULL"
        if record.group_id is not None
        else "day, user_id, model_id, client_product) WHERE (group_id IS NULL"
    )
    table = DailyUsage._meta.db_table
    # The row's own column named with its table: PostgreSQL finds a bare name ambiguous.
    increments = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in amounts)
    params = [
        DailyUsage._meta.get_field(name).get_db_prep_save(value, connection)
        for name, value in values.items()
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            # Only our own column and table names are formatted in.
            f"INSERT INTO {table} ({', '.join(values)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(values))}) "
            f"ON CONFLICT ({conflict}) DO UPDATE SET {increments}",
            params,
        )
