"""The billing admins."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Count, Exists, OuterRef, Prefetch, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from llmadmin.models import (
    BudgetAlert,
    DailyUsage,
    DeveloperBudget,
    GroupBudget,
    UsageRecord,
    UserBudget,
)
from llmadmin.money import usd, usd_left
from llmadmin.providers import PROVIDER_TYPES
from llmadmin.usage import BudgetState, allowance_from, month_start, next_month
from llmadmin.usage_report import provider_label


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


class UserBudgetForm(forms.ModelForm):
    """A developer's own allowance: an amount, or no limit, either replacing their groups'."""

    no_limit = forms.BooleanField(
        label="No limit", required=False, help_text="Tick for no limit, whatever the groups give."
    )

    class Meta:
        model = UserBudget
        fields = ["monthly_allowance", "no_limit"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields[
            "monthly_allowance"
        ].help_text = (
            "USD this developer may spend per calendar month, whatever their groups allow."
        )
        if self.instance.pk and self.instance.monthly_allowance is None:
            self.initial["no_limit"] = True

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        amount, no_limit = cleaned.get("monthly_allowance"), cleaned.get("no_limit")
        if no_limit and amount is not None:
            self.add_error("no_limit", "Either an amount or no limit, not both.")
        elif not no_limit and amount is None and "monthly_allowance" not in self.errors:
            self.add_error(
                "monthly_allowance",
                "Enter an amount, or tick no limit; to use the groups' allowance, delete "
                "the override.",
            )
        return cleaned


class UserBudgetInline(admin.StackedInline):
    model = UserBudget
    form = UserBudgetForm
    can_delete = True
    verbose_name = "own monthly allowance (replaces the groups')"
    verbose_name_plural = verbose_name


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
    """Every developer's budget this month: allowance, spend, alerts; their own override."""

    list_display = ["username", "allowance", "spent", "remaining", "alert"]
    list_filter = [BudgetAlertFilter, "groups"]
    ordering = ["username"]
    search_fields = ["username"]
    fields = ["username", "allowance", "spent", "remaining", "alert"]
    readonly_fields = fields
    inlines = [UserBudgetInline]

    class Media:
        css = {"all": ["llmadmin/admin.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeveloperBudget]:
        month = month_start(timezone.localdate())
        spend = (
            DailyUsage.objects.filter(
                user=OuterRef("pk"), day__gte=month, day__lt=next_month(month)
            )
            .values("user")
            .annotate(total=Sum("cost"))
            .values("total")
        )
        return (
            super()
            .get_queryset(request)
            .filter(is_active=True)
            .select_related("budget")
            .prefetch_related(Prefetch("groups", queryset=Group.objects.select_related("budget")))
            .annotate(spent_this_month=Coalesce(Subquery(spend), Decimal(0)))
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def state(self, user: DeveloperBudget) -> BudgetState:
        """Their budget from what the list query loaded: no query of its own."""
        override = getattr(user, "budget", None)
        groups = [
            (
                group.pk,
                group.name,
                getattr(getattr(group, "budget", None), "monthly_allowance", None),
            )
            for group in user.groups.all()
        ]
        allowance = allowance_from([(override.monthly_allowance,)] if override else [], groups)
        month = month_start(timezone.localdate())
        return BudgetState(allowance, month, {0: user.spent_this_month})

    @admin.display(description="monthly allowance")
    def allowance(self, user: DeveloperBudget) -> str:
        allowance = self.state(user).allowance
        if allowance.amount is None:
            return f"No limit ({allowance.described})"
        return f"{usd(allowance.amount)} ({allowance.described})"

    @admin.display(description="spent this month", ordering="spent_this_month")
    def spent(self, user: DeveloperBudget) -> str:
        return usd(user.spent_this_month)

    @admin.display(description="remaining")
    def remaining(self, user: DeveloperBudget) -> str:
        remaining = self.state(user).remaining
        return "No limit" if remaining is None else usd_left(remaining)

    @admin.display(description="alert")
    def alert(self, user: DeveloperBudget) -> str:
        percent = self.state(user).used_percent
        if percent is None or percent < BudgetAlert.Level.NEARLY_SPENT:
            return "-"
        label = "Spent" if percent >= BudgetAlert.Level.SPENT else f"{percent} % spent"
        level = "spent" if percent >= BudgetAlert.Level.SPENT else "nearly-spent"
        return format_html('<span class="budget-alert budget-{}">{}</span>', level, label)


class ProviderTypeFilter(admin.SimpleListFilter):
    """The ledger's provider types by their labels (the column keeps the slug as it was)."""

    title = "provider"
    parameter_name = "provider_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(slug, provider_type.label) for slug, provider_type in PROVIDER_TYPES.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(provider_type=self.value()) if self.value() else queryset


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """The ledger: read only, as the database keeps it."""

    list_display = [
        "called_at",
        "user_name",
        "model_identifier",
        "provider",
        "kind",
        "input_tokens",
        "output_tokens",
        "price_tier",
        "cost_shown",
    ]
    list_filter = ["pricing", "price_tier", "kind", ProviderTypeFilter, "day"]
    search_fields = ["model_identifier"]
    # Shown, never a form: also no model choice built (its ordering is the model admin's).
    readonly_fields = [field.name for field in UsageRecord._meta.fields]
    date_hierarchy = "day"
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[UsageRecord]:
        # Not a join: a deleted user's records stay listed.
        username = get_user_model().objects.filter(pk=OuterRef("user_id")).values("username")
        return super().get_queryset(request).annotate(username=Subquery(username))

    @admin.display(description="provider", ordering="provider_type")
    def provider(self, record: UsageRecord) -> str:
        return provider_label(record.provider_type)

    @admin.display(description="user", ordering="username")
    def user_name(self, record: UsageRecord) -> str:
        return record.username or f"user #{record.user_id}"

    @admin.display(description="cost", ordering="cost")
    def cost_shown(self, record: UsageRecord) -> str:
        if record.cost is None:
            return record.get_pricing_display()
        return usd(record.cost)
