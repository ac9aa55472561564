"""Billing's admin: group budgets and limits, developers' budgets and limits with their
overrides, the ledger; the usage dashboard is billing.dashboard's."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import BigIntegerField, Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

# The usage dashboard's admin, registered where it is defined.
from billing import dashboard  # noqa: F401
from billing.budgets import (
    BudgetState,
    budget_state,
    budget_states,
    month_spend,
    month_start,
)
from billing.forms import DeveloperLimitsForm, GroupLimitsForm, UserBudgetForm
from billing.limits import Limits
from billing.models import (
    LIMIT_FIELDS,
    BudgetAlert,
    DailyUsage,
    DeveloperBudget,
    DeveloperLimits,
    GroupBudget,
    GroupLimits,
    UsageRecord,
    UserBudget,
)
from billing.report import gone_account_label, type_label
from config.admin import is_key
from llmadmin.models import LLMModel, Provider, provider_label
from llmadmin.money import left_text, limit_text, usd
from llmadmin.selectors import providers_in_registry_order


@admin.register(GroupBudget)
class GroupBudgetAdmin(admin.ModelAdmin):
    list_display = ["group", "allowance", "member_count"]
    list_select_related = ["group"]
    search_fields = ["group__name"]
    autocomplete_fields = ["group"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[GroupBudget]:
        return super().get_queryset(request).annotate(member_count=Count("group__user"))

    @admin.display(description="monthly allowance per member", ordering="monthly_allowance")
    def allowance(self, budget: GroupBudget) -> str:
        return usd(budget.monthly_allowance)

    @admin.display(description="members", ordering="member_count")
    def member_count(self, budget: GroupBudget) -> int:
        return budget.member_count


def count_text(value: int | None) -> str:
    return "No limit" if value is None else f"{value:,}"


@admin.register(GroupLimits)
class GroupLimitsAdmin(admin.ModelAdmin):
    form = GroupLimitsForm
    list_display = ["group", "concurrent", "requests", "tokens", "member_count"]
    list_select_related = ["group"]
    search_fields = ["group__name"]
    autocomplete_fields = ["group"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[GroupLimits]:
        return super().get_queryset(request).annotate(member_count=Count("group__user"))

    @admin.display(description="concurrent turns per member", ordering="concurrent_turns")
    def concurrent(self, limits: GroupLimits) -> str:
        return count_text(limits.concurrent_turns)

    @admin.display(description="requests per minute per member", ordering="requests_per_minute")
    def requests(self, limits: GroupLimits) -> str:
        return count_text(limits.requests_per_minute)

    @admin.display(description="tokens per minute per member", ordering="tokens_per_minute")
    def tokens(self, limits: GroupLimits) -> str:
        return count_text(limits.tokens_per_minute)

    @admin.display(description="members", ordering="member_count")
    def member_count(self, limits: GroupLimits) -> int:
        return limits.member_count


class UserBudgetInline(admin.StackedInline):
    model = UserBudget
    form = UserBudgetForm
    can_delete = True
    verbose_name = "own monthly allowance (replaces the groups')"
    verbose_name_plural = verbose_name


class DeveloperLimitsInline(admin.StackedInline):
    model = DeveloperLimits
    form = DeveloperLimitsForm
    can_delete = True
    verbose_name = "own limits (each one set replaces the groups')"
    verbose_name_plural = verbose_name


def source_text(limits: Limits, name: str) -> str:
    if limits.source(name) == "group":
        return f"group {limits.groups[name]}"
    return "own"


class BudgetAlertFilter(admin.SimpleListFilter):
    """Who was alerted this month (the alert column shows where they stand now)."""

    title = "alert sent this month"
    parameter_name = "budget"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("alert", "At 85 % or more"), ("spent", "At 100 %")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        level = {"alert": BudgetAlert.Level.NEARLY_SPENT, "spent": BudgetAlert.Level.SPENT}
        if self.value() not in level:
            return queryset
        alerted = BudgetAlert.objects.filter(
            user=OuterRef("pk"), month=month_start(timezone.localdate())
        )
        return queryset.filter(Exists(alerted.filter(level__gte=level[self.value()])))


@admin.register(DeveloperBudget)
class DeveloperBudgetAdmin(admin.ModelAdmin):
    """Every developer's budget this month: allowance, spend, alerts, and their limits; their
    own budget and limits."""

    list_display = ["username", "allowance", "spent", "remaining", "alert", "limits_summary"]
    list_filter = [BudgetAlertFilter, "groups"]
    ordering = ["username"]
    search_fields = ["username"]
    fields = ["username", "allowance", "spent", "remaining", "alert", "limits_in_effect"]
    readonly_fields = fields
    inlines = [UserBudgetInline, DeveloperLimitsInline]

    class Media:
        css = {"all": ["llmadmin/admin.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeveloperBudget]:
        month = month_start(timezone.localdate())
        # For sorting by spend only: the columns show budget_states' reading.
        spent = month_spend(month)
        return super().get_queryset(request).filter(is_active=True).annotate(spent_this_month=spent)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        # Rendered later: each developer of the page gets their budget first, all in one
        # query (a redirect or an error page has no list).
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        developers = list(changelist.result_list) if changelist is not None else []
        if developers:
            month = month_start(timezone.localdate())
            states, _ = budget_states([user.pk for user in developers], month=month)
            for user in developers:
                user.budget_this_month = states[user.pk]
        return response

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def state(self, user: DeveloperBudget) -> BudgetState:
        """Their budget as the list loaded it, else (their own page) read now."""
        if not hasattr(user, "budget_this_month"):
            user.budget_this_month = budget_state(user.pk)
        return user.budget_this_month

    @admin.display(description="monthly allowance")
    def allowance(self, user: DeveloperBudget) -> str:
        allowance = self.state(user).allowance
        return f"{limit_text(allowance.amount)} ({allowance.described})"

    @admin.display(description="spent this month", ordering="spent_this_month")
    def spent(self, user: DeveloperBudget) -> str:
        return usd(self.state(user).spent)

    @admin.display(description="remaining")
    def remaining(self, user: DeveloperBudget) -> str:
        return left_text(self.state(user).remaining)

    @admin.display(description="alert")
    def alert(self, user: DeveloperBudget) -> str:
        percent = self.state(user).used_percent
        if percent is None or percent < BudgetAlert.Level.NEARLY_SPENT:
            return "-"
        label = "Spent" if percent >= BudgetAlert.Level.SPENT else f"{percent} % spent"
        level = "spent" if percent >= BudgetAlert.Level.SPENT else "nearly-spent"
        return format_html('<span class="budget-alert budget-{}">{}</span>', level, label)

    @admin.display(description="limits")
    def limits_summary(self, user: DeveloperBudget) -> str:
        """The limits set, each with where it comes from, on one line."""
        limits = self.state(user).limits
        shown = [
            f"{limits.text(name)} ({source_text(limits, name)})"
            for name in LIMIT_FIELDS
            if limits.source(name)
        ]
        return " · ".join(shown) or "No limits"

    @admin.display(description="limits in effect")
    def limits_in_effect(self, user: DeveloperBudget) -> str:
        """Each limit, set or not, with where it comes from."""
        limits = self.state(user).limits
        lines = [
            (limits.text(name), f" ({source_text(limits, name)})" if limits.source(name) else "")
            for name in LIMIT_FIELDS
        ]
        return format_html_join(mark_safe("<br>"), "{}{}", lines)


class ProviderAccountFilter(admin.SimpleListFilter):
    """The ledger's calls to one provider account, by its label: those from before accounts
    through their model's account. Accounts deleted since follow the live ones, found in the
    daily sums (far fewer rows than the ledger)."""

    title = "provider"
    parameter_name = "provider"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        accounts = providers_in_registry_order().values_list("pk", "name", "type")
        gone = (
            DailyUsage.objects.exclude(provider_id=None)
            .exclude(provider_id__in=Provider.objects.values("pk"))
            .values_list("provider_id", "provider_type")
            .distinct()
            .order_by("provider_id")
        )
        return [(str(pk), provider_label(name, slug)) for pk, name, slug in accounts] + [
            (str(pk), gone_account_label(pk, slug)) for pk, slug in gone
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.value():
            return queryset
        # An account's id, deleted since or not: anything else (past 64 bits too, which SQLite
        # can't be asked for) is no account's.
        if not is_key(Provider._meta.pk, self.value()):
            return queryset.none()
        account = int(self.value())
        its_models = LLMModel.objects.filter(provider_id=account).values("pk")
        return queryset.filter(
            Q(provider_id=account) | Q(provider_id=None, model_id__in=its_models)
        )


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """The ledger: read only, as the database keeps it."""

    list_display = [
        "called_at",
        "user_name",
        "model_identifier",
        "account",
        "kind",
        "client",
        "token_name",
        "input_tokens",
        "output_tokens",
        "price_tier",
        "cost_shown",
    ]
    list_filter = ["pricing", "price_tier", "kind", ProviderAccountFilter, "day"]
    # A client by the name its User-Agent gave (a token's secret is never kept: nothing to find).
    search_fields = ["model_identifier", "client"]
    # Shown, never a form: also no model choice built (its ordering is the model admin's). The
    # token by its name, as listed: its own name for itself holds its secret's prefix.
    fields = readonly_fields = [
        "token_name" if field.name == "token" else field.name for field in UsageRecord._meta.fields
    ]
    date_hierarchy = "day"
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[UsageRecord]:
        # Not joins: a deleted user's or token's records stay listed.
        username = get_user_model().objects.filter(pk=OuterRef("user_id")).values("username")
        # The gateway's tokens, through the reference (billing does not import the gateway).
        tokens = UsageRecord._meta.get_field("token").related_model.objects
        token_name = tokens.filter(pk=OuterRef("token_id")).values("name")
        # A record from before accounts names none: its model's, while the model exists.
        model_account = LLMModel.objects.filter(pk=OuterRef("model_id")).values("provider_id")
        account = Provider.objects.filter(pk=OuterRef("account_id")).values("name")
        return (
            super()
            .get_queryset(request)
            .annotate(
                username=Subquery(username),
                token_name=Subquery(token_name),
                account_id=Coalesce(
                    "provider_id", Subquery(model_account), output_field=BigIntegerField()
                ),
                account_name=Subquery(account),
            )
        )

    @admin.display(description="provider", ordering="provider_type")
    def account(self, record: UsageRecord) -> str:
        """The account's label; one deleted since by its id; its type's where it is unknown."""
        if record.account_name is not None:
            return provider_label(record.account_name, record.provider_type)
        if record.account_id is not None:
            return gone_account_label(record.account_id, record.provider_type)
        return type_label(record.provider_type)

    @admin.display(description="user", ordering="username")
    def user_name(self, record: UsageRecord) -> str:
        return record.username or f"user #{record.user_id}"

    @admin.display(description="access token")
    def token_name(self, record: UsageRecord) -> str:
        """The token's name only: a part of its secret (the prefix) is no column's business."""
        if record.token_id is None:
            return "-"
        return record.token_name or f"token #{record.token_id}"

    @admin.display(description="cost", ordering="cost")
    def cost_shown(self, record: UsageRecord) -> str:
        if record.cost is None:
            return record.get_pricing_display()
        return usd(record.cost)
