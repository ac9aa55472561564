"""Billing's models: prices in effect over time, the ledger and its daily sums, budgets and
alerts. The tables keep the names they had in llmadmin (Meta.db_table): moving the models to
this app moved no rows."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from llmadmin.models import LONG_CONTEXT_HELP, MODEL_PRICE_FIELDS, LLMModel, price_field


class ModelPrice(models.Model):
    """A model's prices from a moment on: usage is costed at the prices in effect when the
    call started. Written on a model's save whenever its prices change (ledger.py); never
    edited."""

    model = models.ForeignKey(LLMModel, on_delete=models.CASCADE, related_name="price_history")
    effective_from = models.DateTimeField(default=timezone.now)
    input_price = price_field("input price")
    output_price = price_field("output price")
    cache_read_price = price_field("cache read price")
    cache_write_price = price_field("cache write price")
    long_context_input_price = price_field("long-context input price", LONG_CONTEXT_HELP)
    long_context_output_price = price_field("long-context output price", LONG_CONTEXT_HELP)
    long_context_cache_read_price = price_field("long-context cache read price", LONG_CONTEXT_HELP)
    long_context_cache_write_price = price_field(
        "long-context cache write price", LONG_CONTEXT_HELP
    )

    class Meta:
        db_table = "llmadmin_modelprice"
        ordering = ["model", "-effective_from", "-pk"]
        indexes = [models.Index(fields=["model", "-effective_from"], name="price_in_effect")]

    def __str__(self) -> str:
        return f"{self.model} from {self.effective_from:%Y-%m-%d %H:%M}"

    @property
    def prices(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in MODEL_PRICE_FIELDS)


class GroupBudget(models.Model):
    """What each member of a group may spend per calendar month."""

    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="budget")
    monthly_allowance = models.DecimalField(
        "monthly allowance per member",
        max_digits=12,
        decimal_places=2,
        validators=[MinValueValidator(0)],
        help_text="USD each member may spend per calendar month. A developer in several "
        "groups gets the highest of their groups' allowances.",
    )

    class Meta:
        db_table = "llmadmin_groupbudget"
        ordering = ["group__name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(monthly_allowance__gte=0), name="group_allowance_not_negative"
            )
        ]

    def __str__(self) -> str:
        return f"Budget of {self.group}"


class DeveloperBudget(User):
    """Developers as the budget pages list them (their own allowance is a UserBudget)."""

    class Meta:
        proxy = True
        verbose_name = "developer budget"


class UserBudget(models.Model):
    """One developer's own monthly allowance: it replaces whatever their groups give."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="budget"
    )
    monthly_allowance = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="USD this developer may spend per calendar month, whatever their groups "
        "allow (higher or lower). Empty: no limit.",
    )

    class Meta:
        db_table = "llmadmin_userbudget"
        verbose_name = "developer budget override"
        constraints = [
            models.CheckConstraint(
                condition=Q(monthly_allowance__isnull=True) | Q(monthly_allowance__gte=0),
                name="user_allowance_not_negative",
            )
        ]

    def __str__(self) -> str:
        return f"Budget of {self.user}"


# The ledger's token counts, as UsageRecord and DailyUsage name them.
TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
# Costs are kept to 1e-10 USD (see cost_field).
COST_QUANTUM = Decimal("1e-10")


def token_field(verbose_name: str) -> models.PositiveIntegerField:
    return models.PositiveIntegerField(verbose_name, null=True, blank=True)


def cost_field(verbose_name: str = "cost", **kwargs: Any) -> models.DecimalField:
    # USD to 1e-10 (a token at $1 per 1M is 1e-6), and a year of a large team's calls sums
    # well within the digits.
    return models.DecimalField(verbose_name, max_digits=20, decimal_places=10, **kwargs)


def client_product_field() -> models.CharField:
    return models.CharField("client product", max_length=100, blank=True, default="")


def no_constraint(to: Any, **kwargs: Any) -> models.ForeignKey:
    """A reference that outlives what it names: the ledger keeps the ids of users, groups and
    models deleted since, and never changes for their deletion."""
    return models.ForeignKey(
        to, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", **kwargs
    )


class Pricing(models.TextChoices):
    PRICED = "priced", "Priced"
    # The model has no price for a kind of token the call used: not free, unknown.
    UNPRICED = "unpriced", "Unpriced"
    # Cut short before the provider reported its counts, after text arrived: estimated from
    # the characters sent and received, and costed (the provider bills the call).
    ESTIMATED = "estimated", "Estimated"
    # The provider reported no token counts and no text arrived (a refused or failed call).
    UNREPORTED = "unreported", "No token counts"


class PriceTier(models.TextChoices):
    BASE = "base", "Base"
    # The prompt was over the long-context threshold and the model has prices for that.
    LONG_CONTEXT = "long_context", "Long context"


class UsageRecord(models.Model):
    """One provider call: who made it, with which model, its tokens and its cost.

    Never edited or deleted (the database refuses it): costs are those of the prices in effect
    when the call started, and stay so when prices change.
    """

    class Kind(models.TextChoices):
        CHAT = "chat", "Chat answer"
        SUMMARY = "summary", "Summary of older messages"
        GATEWAY = "gateway", "Gateway call"

    called_at = models.DateTimeField(default=timezone.now)
    # The call's date in the budget time zone (TIME_ZONE): the day and month it counts in.
    day = models.DateField()
    user = no_constraint(settings.AUTH_USER_MODEL)
    # The group charged: the one whose allowance the developer's budget comes from, else
    # their first group by name; none when they are in no group.
    group = no_constraint(Group, null=True, blank=True)
    model = no_constraint(LLMModel)
    # The provider account called. Empty on records from before accounts (never backfilled:
    # the ledger is not changed): their model's account, while the model exists.
    provider = no_constraint("llmadmin.Provider", null=True, blank=True)
    # Kept as they were: the model or provider may change or go.
    provider_type = models.CharField(max_length=32)
    model_identifier = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CHAT)
    # A gateway call's personal access token, and its client's name (User-Agent, trimmed).
    token = no_constraint("gateway.PersonalAccessToken", null=True, blank=True)
    client = models.CharField(max_length=100, blank=True, default="")
    # The client as the dashboard splits spend by it: empty for the chat, else the client's
    # name without its versions (ledger.client_product_of). Kept with the record so that the
    # daily sums can be rebuilt from the ledger in one query.
    client_product = client_product_field()
    input_tokens = token_field("input tokens")
    output_tokens = token_field("output tokens")
    cache_read_tokens = token_field("cache read tokens")
    cache_write_tokens = token_field("cache write tokens")
    reasoning_tokens = token_field("reasoning tokens")
    # The prices the cost was computed from (USD per 1M tokens), as they were.
    input_price = price_field("input price")
    output_price = price_field("output price")
    cache_read_price = price_field("cache read price")
    cache_write_price = price_field("cache write price")
    # Which of the model's prices those are; records from before tiers are all base.
    price_tier = models.CharField(max_length=16, choices=PriceTier.choices, default=PriceTier.BASE)
    pricing = models.CharField(max_length=16, choices=Pricing.choices)
    cost = cost_field(null=True, blank=True)

    class Meta:
        db_table = "llmadmin_usagerecord"
        verbose_name = "usage record"
        ordering = ["-called_at", "-pk"]
        indexes = [models.Index(fields=["user", "day"], name="usage_of_user")]
        constraints = [
            models.CheckConstraint(
                condition=Q(pricing__in=["priced", "estimated"], cost__isnull=False)
                | (~Q(pricing__in=["priced", "estimated"]) & Q(cost__isnull=True)),
                name="cost_only_when_priced",
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_identifier} at {self.called_at:%Y-%m-%d %H:%M}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("Usage records are never edited.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ValueError("Usage records are never deleted.")


class DailyUsage(models.Model):
    """The ledger summed per day, developer, group, model and client, in the transaction of
    each record: budgets and the dashboard read these sums, not a year of calls."""

    day = models.DateField()
    user = no_constraint(settings.AUTH_USER_MODEL)
    group = no_constraint(Group, null=True, blank=True)
    model = no_constraint(LLMModel)
    # Empty: the chat (sums from before the gateway are all the chat's).
    client_product = client_product_field()
    # The model's account (a model belongs to one); empty where the model was gone before
    # usage was kept per account.
    provider = no_constraint("llmadmin.Provider", null=True, blank=True)
    provider_type = models.CharField(max_length=32)
    calls = models.PositiveIntegerField(default=0)
    # Calls without a cost (unpriced, or no token counts): the cost leaves them out.
    uncosted_calls = models.PositiveIntegerField(default=0)
    # Calls costed at the model's long-context prices.
    long_context_calls = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost = cost_field(default=0)

    class Meta:
        db_table = "llmadmin_dailyusage"
        verbose_name = "usage"
        verbose_name_plural = "usage"
        indexes = [
            models.Index(fields=["user", "day"], name="daily_usage_of_user"),
            models.Index(fields=["day"], name="daily_usage_by_day"),
        ]
        constraints = [
            # Partial indexes, not NULLS NOT DISTINCT: SQLite has no such option.
            models.UniqueConstraint(
                fields=["day", "user", "model", "client_product", "group"],
                condition=Q(group__isnull=False),
                name="one_daily_usage_per_group",
            ),
            models.UniqueConstraint(
                fields=["day", "user", "model", "client_product"],
                condition=Q(group__isnull=True),
                name="one_daily_usage_without_group",
            ),
        ]

    def __str__(self) -> str:
        return f"Usage of {self.day}"


class BudgetAlert(models.Model):
    """An alert sent: once per developer, month and level."""

    class Level(models.IntegerChoices):
        NEARLY_SPENT = 85, "85 % spent"
        SPENT = 100, "Spent"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    month = models.DateField(help_text="The first day of the budget month.")
    level = models.PositiveSmallIntegerField(choices=Level.choices)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "llmadmin_budgetalert"
        constraints = [
            models.UniqueConstraint(fields=["user", "month", "level"], name="one_alert_per_level")
        ]

    def __str__(self) -> str:
        return f"{self.get_level_display()} for {self.user} in {self.month:%B %Y}"


def limit_field(verbose_name: str, help_text: str) -> models.PositiveIntegerField:
    return models.PositiveIntegerField(
        verbose_name, null=True, blank=True, validators=[MinValueValidator(1)], help_text=help_text
    )


CONCURRENT_TURNS_HELP = (
    "Chat turns and gateway calls one developer may have running at once. Empty: no limit."
)
REQUESTS_PER_MINUTE_HELP = (
    "Chat turns, gateway calls and token counts one developer may start in any 60 seconds. "
    "Empty: no limit."
)
TOKENS_PER_MINUTE_HELP = (
    "Tokens (input, cached input included, and output) of one developer's calls recorded in "
    "the last 60 seconds, past which new calls wait. Empty: no limit."
)


def limits_not_below_one(prefix: str) -> list[models.CheckConstraint]:
    return [
        models.CheckConstraint(
            condition=Q(**{f"{name}__isnull": True}) | Q(**{f"{name}__gte": 1}),
            name=f"{prefix}_{name}_at_least_1",
        )
        for name in LIMIT_FIELDS
    ]


# The limits, as GroupLimits and DeveloperLimits name them.
LIMIT_FIELDS = ("concurrent_turns", "requests_per_minute", "tokens_per_minute")


class GroupLimits(models.Model):
    """How much each member of a group may run at once and per minute (billing.limits)."""

    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="limits")
    concurrent_turns = limit_field("concurrent turns per member", CONCURRENT_TURNS_HELP)
    requests_per_minute = limit_field("requests per minute per member", REQUESTS_PER_MINUTE_HELP)
    tokens_per_minute = limit_field("tokens per minute per member", TOKENS_PER_MINUTE_HELP)

    class Meta:
        verbose_name = verbose_name_plural = "group limits"
        ordering = ["group__name"]
        constraints = limits_not_below_one("group")

    def __str__(self) -> str:
        return f"Limits of {self.group}"


class DeveloperLimits(models.Model):
    """One developer's own limits: each one set replaces what their groups give."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="limits"
    )
    concurrent_turns = limit_field("concurrent turns", CONCURRENT_TURNS_HELP)
    requests_per_minute = limit_field("requests per minute", REQUESTS_PER_MINUTE_HELP)
    tokens_per_minute = limit_field("tokens per minute", TOKENS_PER_MINUTE_HELP)

    class Meta:
        verbose_name = verbose_name_plural = "developer limits override"
        constraints = limits_not_below_one("developer")

    def __str__(self) -> str:
        return f"Limits of {self.user}"


class TurnLease(models.Model):
    """A request let through under its developer's limits: one of their requests for a minute
    from its start; a turn (a chat turn or a gateway call) is also one of their turns at once
    while live (not ended, not expired). Kept only while it counts for something
    (billing.limits)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    started_at = models.DateTimeField()
    # Renewed while the turn runs: a worker killed mid-turn stops renewing it.
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "started_at"], name="turn_lease_of_user")]

    def __str__(self) -> str:
        return f"Turn of {self.user_id} from {self.started_at:%Y-%m-%d %H:%M:%S}"


class CallTokens(models.Model):
    """The tokens of one call of a developer under limits, kept for the minute in which they
    count for tokens per minute (billing.limits)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    tokens = models.PositiveBigIntegerField()
    recorded_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "call tokens"
        indexes = [models.Index(fields=["user", "recorded_at"], name="call_tokens_of_user")]

    def __str__(self) -> str:
        return f"{self.tokens} tokens of {self.user_id} at {self.recorded_at:%Y-%m-%d %H:%M:%S}"
