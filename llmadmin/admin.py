from __future__ import annotations

import csv
import json
from decimal import Decimal
from typing import Any

from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry as AuditEntry
from cryptography.fernet import InvalidToken
from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import (
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.timesince import timesince
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST

# The usage dashboard's admin, registered where it is defined.
from llmadmin import dashboard  # noqa: F401
from llmadmin.audit import (
    CONNECTION_TEST,
    access_lists_in_the_save_entry,
    entries_related_names,
    labelled_changes,
    latest_entry_pk,
    log_connection_test,
    readable_changes,
)
from llmadmin.exports import spreadsheet_safe
from llmadmin.fields import validate_no_hidden_characters
from llmadmin.forms import (
    AUTH_MODE_FIELDS,
    NEW_ADDRESS,
    LLMModelAdminForm,
    ProviderAdminForm,
    WhoForm,
    connection_digest,
    option_field_names,
)
from llmadmin.models import (
    MODEL_PRICE_FIELDS,
    SECRET_FIELDS,
    AuthMode,
    Availability,
    BudgetAlert,
    CheckStatus,
    DailyUsage,
    DeveloperBudget,
    GroupBudget,
    LLMModel,
    Provider,
    UsageRecord,
    UserBudget,
)
from llmadmin.money import usd, usd_left
from llmadmin.providers import GENERAL_FIELDS, PROVIDER_TYPES
from llmadmin.providers.catalog import ModelFacts, Prices, catalog_models
from llmadmin.providers.errors import ProviderError
from llmadmin.selectors import (
    model_findings,
    models_in_list_order,
    provider_remote_models,
    provider_reported_context_limit,
    registry_position,
    what_developers_see,
)
from llmadmin.services import (
    model_make_default,
    models_set_enabled,
    provider_check_connection,
    provider_missing_credentials,
    provider_try_connection,
)
from llmadmin.usage import BudgetState, allowance_from, month_start, next_month
from llmadmin.usage_report import provider_label

admin.site.site_header = "llmadmin"
admin.site.site_title = "llmadmin"
admin.site.index_title = "LLM providers and models"

KEY_STATE_LABELS = {
    "missing": "No key",
    "set": "Key set (not tested)",
    "unreadable": "Key unreadable: set it again",
    "server": "The server's AWS credentials (not tested)",
}
CHECK_LABELS = {
    CheckStatus.VERIFIED: "Verified",
    CheckStatus.REJECTED: "Rejected by the provider",
    # A host that answered wrongly, or none; the server without AWS credentials.
    CheckStatus.UNREACHABLE: "Connection failed",
    CheckStatus.NO_PERMISSION: "Lacks permission",
}


class ConnectionTestFilter(admin.SimpleListFilter):
    """The last connection test's result, in the words the list and the page use."""

    title = "last connection test"
    parameter_name = "check_status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(status.value, label) for status, label in CHECK_LABELS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Provider]) -> QuerySet[Provider]:
        if self.value() in CHECK_LABELS:
            return queryset.filter(check_status=self.value())
        return queryset


# Why developers don't get a provider's models, on its page.
UNAVAILABLE_BECAUSE = {
    Availability.PROVIDER_DISABLED: "the provider is disabled.",
    Availability.MISSING_KEY: "no credentials are set.",
    Availability.KEY_UNREADABLE: "the stored credentials can't be read: set them again.",
    Availability.KEY_REJECTED: "the last connection test found the key rejected. They come "
    "back when a test passes or the credentials change.",
    Availability.CONNECTION_FAILED: "the last connection test failed. They come back when a "
    "test passes or the credentials or address change.",
}


def test_outcome(status: CheckStatus | None, reason: str, *, typed: bool = False) -> str:
    """What a connection test found, as a sentence: "Verified. …", "Not tested: no API key."."""
    unsaved = " (what is typed, not saved yet)" if typed else ""
    if status is None:
        return f"Not tested{unsaved}: {reason}"
    return f"{CHECK_LABELS[status]}{unsaved}. {reason}"


# The fields a connection test takes as typed: the credentials and where they are sent.
CONNECTION_FIELDS = ("auth", "aws_access_key_id", *SECRET_FIELDS, "base_url", "region")


def typed_secrets_key(provider: Provider) -> str:
    return f"llmadmin:typed-secrets:{provider.pk}"


@sensitive_variables("secrets", "cipher")
def keep_typed_secrets(request: HttpRequest, provider: Provider, secrets: dict[str, str]) -> None:
    """Keep (or, with none, forget) the secrets typed for a provider, encrypted."""
    cipher = Provider._meta.get_field("api_key").f
    if secrets:
        request.session[typed_secrets_key(provider)] = {
            name: cipher.encrypt(value.encode()).decode() for name, value in secrets.items()
        }
    else:
        request.session.pop(typed_secrets_key(provider), None)


def typed_test_key(provider: Provider) -> str:
    return f"llmadmin:typed-test:{provider.pk}"


def typed_test(request: HttpRequest, provider: Provider) -> dict[str, str]:
    """The page's last test of typed values (see ProviderAdminForm.typed_test)."""
    return request.session.get(typed_test_key(provider)) or {}


@sensitive_variables("cipher")
def typed_secrets(request: HttpRequest, provider: Provider | None) -> dict[str, str]:
    if provider is None or not hasattr(request, "session"):
        return {}
    cipher = Provider._meta.get_field("api_key").f
    kept = request.session.get(typed_secrets_key(provider)) or {}
    try:
        return {name: cipher.decrypt(value.encode()).decode() for name, value in kept.items()}
    except InvalidToken:  # the secrets rotated since: type it again
        return {}


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderAdminForm
    # Narrow enough for a 1280 px screen: the test's reason is on the provider's page.
    list_display = ["label", "key_status", "tested", "endpoint", "enabled", "model_count"]
    list_display_links = ["label"]
    list_filter = ["enabled", ConnectionTestFilter]
    actions = ["test_connection"]

    class Media:
        js = ["llmadmin/provider_form.js"]
        css = {"all": ["llmadmin/admin.css"]}

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, **kwargs)
        if obj is None:
            return form
        if request.method != "POST":
            # Kept only for the page that was refused or tested: coming back later starts
            # afresh.
            keep_typed_secrets(request, obj, {})
            request.session.pop(typed_test_key(obj), None)
            return form
        kept = {"kept_secrets": typed_secrets(request, obj), "typed_test": typed_test(request, obj)}
        return type(form.__name__, (form,), kept)

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        # A save refused for another field's sake keeps the secrets typed into it, encrypted
        # in the session, for the next attempt: the page never shows them again.
        form = context["adminform"].form
        if form.is_bound and form.errors and form.instance.pk:
            typed = {
                name: form.data.get(form.add_prefix(name)) or form.kept_secrets.get(name)
                for name in SECRET_FIELDS
                if name in form.chosen_mode_fields and name not in form.errors
            }
            kept = {name: value for name, value in typed.items() if value}
            keep_typed_secrets(request, form.instance, kept)
            form.show_kept(kept)
            # The form's instance holds what was typed, not what is stored: the status
            # shown must be the stored one.
            form.instance.stored = Provider.objects.get(pk=form.instance.pk)
        return super().render_change_form(request, context, *args, **kwargs)

    def response_change(self, request: HttpRequest, obj: Provider) -> HttpResponse:
        keep_typed_secrets(request, obj, {})
        request.session.pop(typed_test_key(obj), None)
        return super().response_change(request, obj)

    # Error reports never show a posted secret, nor one in any frame below (the form, the
    # session's kept secrets, the ORM's save).
    @method_decorator(sensitive_post_parameters(*SECRET_FIELDS))
    @method_decorator(sensitive_variables())
    def changeform_view(self, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(*args, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Provider | None = None) -> list[Any]:
        connection = (
            ["base_url", "region"] if obj and obj.provider_type.region_required else ["base_url"]
        )
        # Without change permission a read-only form would display the key field's value.
        can_change = self.has_change_permission(request, obj)
        key_fields = ["key_status"]
        if can_change:
            modes = obj.provider_type.auth_modes if obj else {}
            stored = obj and any(
                getattr(obj, name) not in (None, "")
                for name in (*SECRET_FIELDS, "aws_access_key_id")
            )
            key_fields += [
                *(["auth"] if len(modes) > 1 else []),
                "api_key",
                *AUTH_MODE_FIELDS[AuthMode.AWS_KEYS] * (AuthMode.AWS_KEYS in modes),
                *(["remove_api_key"] if stored else []),
            ]
        # The version the page was loaded at (hidden): a save over a newer one is refused.
        test_fields = ["connection_test", "save_anyway", "version"] if can_change else ["last_test"]
        fieldsets: list[Any] = [
            (None, {"fields": key_fields + test_fields}),
            ("Connection", {"fields": [*connection, "enabled"]}),
        ]
        if obj:
            may_add = request.user.has_perm("llmadmin.add_llmmodel")
            fieldsets.append(
                ("Models", {"fields": ["models_and_add_link" if may_add else "models_link"]})
            )
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Provider | None = None) -> list[str]:
        return ["key_status", "last_test", "connection_test", "models_link", "models_and_add_link"]

    @admin.display(description="Its models")
    def models_link(self, provider: Provider) -> str:
        # A link, not a row per model: a provider may have thousands (OpenRouter's catalog).
        count = provider.models.count()
        url = reverse("admin:llmadmin_llmmodel_changelist") + f"?provider__id__exact={provider.pk}"
        link = format_html(
            '<a href="{}">{} model{} of {}</a>', url, count, "s" * (count != 1), provider
        )
        availability = getattr(provider, "stored", provider).availability
        if availability == Availability.AVAILABLE:
            return link
        return format_html(
            '{}<p class="unavailable">Developers don\'t get them: {}</p>',
            link,
            UNAVAILABLE_BECAUSE[availability],
        )

    @admin.display(description="Its models")
    def models_and_add_link(self, provider: Provider) -> str:
        url = reverse("admin:llmadmin_llmmodel_add") + f"?provider={provider.pk}"
        return format_html(
            '{}<p><a class="addlink" href="{}">Add a model to {}</a></p>',
            self.models_link(provider),
            url,
            provider,
        )

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:provider_id>/test-connection/",
                self.admin_site.admin_view(require_POST(self.test_connection_view)),
                name="llmadmin_provider_test_connection",
            ),
            *super().get_urls(),
        ]

    # The Test connection button posts the whole change form, typed secrets included.
    @method_decorator(sensitive_post_parameters(*SECRET_FIELDS))
    @method_decorator(sensitive_variables())
    def test_connection_view(self, request: HttpRequest, provider_id: int) -> HttpResponse:
        provider = get_object_or_404(Provider, pk=provider_id)
        if not self.has_change_permission(request, provider):
            raise PermissionDenied
        if request.headers.get("Accept") == "application/json":
            # From the page's script: test what is typed, before saving, and leave the page.
            return JsonResponse(self.try_typed(request, provider))
        self.report_test(request, provider)
        return HttpResponseRedirect(reverse("admin:llmadmin_provider_change", args=[provider.pk]))

    def try_typed(self, request: HttpRequest, provider: Provider) -> dict[str, str | None]:
        """Test the page's typed credentials and endpoint unsaved; unchanged, the stored ones
        are tested and the result recorded, as the button does without a script. A test of
        typed values is audited, run or refused.

        The page's answer: a level, the message, and the "Last test" line's new text (None
        when nothing was tested)."""
        # A test is not a save: another admin's change since the page was loaded doesn't
        # block it (what counts as typed is measured against what is stored now).
        form = self.get_form(request, provider)(request.POST, instance=provider, testing=True)
        valid = form.is_valid()
        typed = [name for name in form.changed_data if name in CONNECTION_FIELDS]
        if not valid:
            retype = any(form.has_error(name, NEW_ADDRESS) for name in SECRET_FIELDS)
            message = (
                "Not tested: re-enter the key to use it with a new address."
                if retype
                else "Not tested: correct the fields below first."
            )
            if typed:
                log_connection_test(provider, typed=typed, outcome=message)
            return {"level": "error", "message": message, "last_test": None}
        if typed:
            status, reason = provider_try_connection(provider=form.instance)
            message = test_outcome(status, reason, typed=True)
            log_connection_test(provider, typed=typed, outcome=message)
            last_test = "Just now, of what is typed: saving it records this."
            if status is None:
                request.session.pop(typed_test_key(provider), None)
            else:
                # Saving exactly this records the outcome (see ProviderAdminForm.typed_test).
                request.session[typed_test_key(provider)] = {
                    "digest": connection_digest(form.instance),
                    "status": status,
                    "reason": reason[:300],
                    "outcome": test_outcome(status, reason),
                    "checked_at": timezone.now().isoformat(),
                }
        else:
            status, reason = provider_check_connection(provider=provider)
            message = test_outcome(status, reason)
            last_test = f"Just now. {reason}"
        level = {CheckStatus.VERIFIED: "success", None: "warning"}.get(status, "error")
        return {"level": level, "message": message, "last_test": last_test if status else None}

    @admin.action(description="Test connection", permissions=["change"])
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            self.report_test(request, provider)

    def report_test(self, request: HttpRequest, provider: Provider) -> None:
        status, reason = provider_check_connection(provider=provider)
        level = {CheckStatus.VERIFIED: messages.SUCCESS, None: messages.WARNING}.get(
            status, messages.ERROR
        )
        outcome = test_outcome(status, reason)
        self.message_user(request, f"{provider}: {outcome}", level)
        if status:
            self.log_change(request, provider, f"Tested the connection: {outcome}")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Provider]:
        return super().get_queryset(request).annotate(model_total=Count("models"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Provider", ordering="type")
    def label(self, provider: Provider) -> str:
        return provider.provider_type.label

    @admin.display(description="Key status")
    def key_status(self, provider: Provider) -> str:
        provider = getattr(provider, "stored", provider)
        if provider.key_state in ("set", "server") and provider.check_status:
            return CHECK_LABELS[provider.check_status]
        return KEY_STATE_LABELS[provider.key_state]

    @admin.display(description="Last test", ordering="checked_at")
    def tested(self, provider: Provider) -> str:
        return f"{timesince(provider.checked_at)} ago" if provider.checked_at else "never"

    @admin.display(description="Last test")
    def last_test(self, provider: Provider) -> str:
        if not provider.checked_at:
            return "never"
        return format_html(
            "{} ago<br><small>{}</small>", timesince(provider.checked_at), provider.check_reason
        )

    @admin.display(description="Last test")
    def connection_test(self, provider: Provider) -> str:
        """The last test, and the button that runs one; the page's script updates both."""
        url = reverse("admin:llmadmin_provider_test_connection", args=[provider.pk])
        # A submit button of the change form (with its CSRF token), posted to our URL.
        return format_html(
            '<div class="last-test">{}</div><button type="submit" class="button" '
            'formaction="{}" formmethod="post" formnovalidate>Test connection</button>',
            self.last_test(getattr(provider, "stored", provider)),
            url,
        )

    @admin.display(description="Endpoint")
    def endpoint(self, provider: Provider) -> str:
        provider_type = provider.provider_type
        if provider.base_url:
            return provider.base_url
        if not provider_type.default_base_url:
            return "not set"
        if provider_type.region_required and not provider.region:
            return "region not set"
        return f"{provider.effective_base_url} (default)"

    @admin.display(description="Models", ordering="model_total")
    def model_count(self, provider: Provider) -> str:
        url = reverse("admin:llmadmin_llmmodel_changelist") + f"?provider__id__exact={provider.pk}"
        return format_html('<a href="{}">{}</a>', url, provider.model_total)

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> list[dict[str, Any]]:
        # "Remove the stored credentials" reads as a credentials change in the history.
        message = super().construct_change_message(request, form, formsets, add)
        for entry in message:
            fields = entry.get("changed", {}).get("fields")
            if fields and "Remove the stored credentials" in fields:
                fields.remove("Remove the stored credentials")
                if "API key" not in fields:
                    fields.append("API key")
        return message


class AccessFilter(admin.SimpleListFilter):
    """Who may use a model: everyone, or only the groups and users its access lists name."""

    title = "access"
    parameter_name = "access"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("everyone", "Everyone"), ("restricted", "Only the groups and users listed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[LLMModel]) -> QuerySet[LLMModel]:
        if self.value() in ("everyone", "restricted"):
            return queryset.filter(restricted=self.value() == "restricted")
        return queryset


@admin.register(LLMModel)
class LLMModelAdmin(admin.ModelAdmin):
    form = LLMModelAdminForm
    # Grouped by provider, in the registry's order, as the developers' selector shows them.
    list_display = [
        "default_star",
        "provider",
        "display_name",
        "identifier",
        "context_limit",
        "available_to",
        "developers_get_it",
    ]
    list_display_links = ["display_name"]
    list_filter = ["provider", "enabled", "is_default", AccessFilter]
    filter_horizontal = ["allowed_groups", "allowed_users"]
    list_select_related = ["provider"]
    search_fields = ["display_name", "identifier"]
    actions = ["enable_models", "disable_models", "check_models"]
    readonly_fields = ["catalog_summary", "price_history"]

    class Media:
        js = ["llmadmin/model_form.js"]
        css = {"all": ["llmadmin/admin.css", "llmadmin/model_list.css"]}

    def get_ordering(self, request: HttpRequest) -> list[str]:
        # An annotation of get_queryset's: the ordering attribute's checks only know fields.
        return ["registry_position", "display_name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[LLMModel]:
        # ModelAdmin's own, with the provider's place in the registry to order by. The
        # provider's availability needs no secret: none is loaded (or decrypted) here.
        queryset = (
            LLMModel.objects.annotate(
                registry_position=registry_position("provider__type"),
                # Counted per model by a subquery each: joining both lists multiplies rows.
                group_count=listed_count(LLMModel.allowed_groups.through),
                user_count=listed_count(LLMModel.allowed_users.through),
            )
            .select_related("provider")
            .defer(*(f"provider__{name}" for name in SECRET_FIELDS))
        )
        return queryset.order_by(*self.get_ordering(request))

    @admin.display(description="Available to")
    def available_to(self, model: LLMModel) -> str:
        if not model.restricted:
            return "Everyone"
        counts = [(model.group_count, "group"), (model.user_count, "user")]
        listed = [f"{n} {noun}{'s' * (n != 1)}" for n, noun in counts if n]
        return " and ".join(listed) or "Nobody"

    @admin.display(description="Developers get it")
    def developers_get_it(self, model: LLMModel) -> str:
        if not model.enabled:
            return "No: disabled"
        availability = model.provider.availability
        if availability == Availability.AVAILABLE:
            return "Yes"
        return f"No: {Availability(availability).label.lower()}"

    @admin.action(description="Enable selected models", permissions=["change"])
    def enable_models(self, request: HttpRequest, queryset: QuerySet[LLMModel]) -> None:
        count = models_set_enabled(models=queryset, enabled=True, actor=request.user)
        self.message_user(request, f"Enabled {count} model{'s' * (count != 1)}.")

    @admin.action(description="Disable selected models", permissions=["change"])
    def disable_models(self, request: HttpRequest, queryset: QuerySet[LLMModel]) -> None:
        default = queryset.filter(is_default=True).first()
        count = models_set_enabled(
            models=queryset.exclude(is_default=True), enabled=False, actor=request.user
        )
        self.message_user(request, f"Disabled {count} model{'s' * (count != 1)}.")
        if default:
            self.message_user(
                request,
                f"{default.display_name} is the default model and stays enabled: choose "
                "another default first.",
                messages.WARNING,
            )

    @admin.action(description="Check against the catalog and provider rules")
    def check_models(self, request: HttpRequest, queryset: QuerySet[LLMModel]) -> None:
        clean = 0
        for model in queryset:
            findings = model_findings(model)
            if not findings:
                clean += 1
                continue
            problem = any(finding.problem for finding in findings)
            self.message_user(
                request,
                f"{model.provider} / {model.identifier}: "
                + " ".join(f"{finding.message}" for finding in findings),
                messages.ERROR if problem else messages.WARNING,
            )
        if clean:
            self.message_user(
                request,
                f"{clean} of the selected models {'match' if clean != 1 else 'matches'} the "
                "catalog and the provider's rules.",
                messages.SUCCESS,
            )

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # Called by the confirmation pages of the delete view and of "Delete selected" (and
        # again when confirmed, with "post" in the form).
        default = next((model for model in objs if model.is_default), None)
        if default is not None and not request.POST.get("post"):
            self.message_user(
                request,
                f"{default.display_name} is the default model. After deleting it there is no "
                f"default: {NO_DEFAULT_FALLBACK}",
                messages.WARNING,
            )
        return super().get_deleted_objects(objs, request)

    def delete_model(self, request: HttpRequest, obj: LLMModel) -> None:
        super().delete_model(request, obj)
        if obj.is_default:
            self.say_no_default(request, f"{obj.display_name} was deleted")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[LLMModel]) -> None:
        default = queryset.filter(is_default=True).first()
        super().delete_queryset(request, queryset)
        if default is not None:
            self.say_no_default(request, f"{default.display_name} was deleted")

    def say_no_default(self, request: HttpRequest, why: str) -> None:
        self.message_user(
            request,
            f"There is no default model now ({why}): {NO_DEFAULT_FALLBACK} To set one, click "
            "a model's star (\u2606) in the model list.",
            messages.WARNING,
        )

    def get_fieldsets(self, request: HttpRequest, obj: LLMModel | None = None) -> list[Any]:
        # With the version the page was loaded at (hidden): a save over a newer one is refused.
        first = ["provider", "identifier", "display_name", "enabled", "is_default", "version"]
        fieldsets: list[Any] = [
            (None, {"fields": [*first, "catalog_summary"] if obj else first}),
            ("Context", {"fields": ["context_limit", "compression_threshold"]}),
            (
                "Who may use it",
                {
                    "fields": ["restricted", "allowed_groups", "allowed_users"],
                    "description": "Every developer, unless restricted to some groups and "
                    "users. See what a user or group gets on the model list's \u201cWhat "
                    "developers see\u201d page.",
                },
            ),
            (
                "Sampling",
                {
                    "fields": [*GENERAL_FIELDS, "override_catalog_limit", "catalog_limit_note"],
                    "description": "Leave a field empty to use the provider's default.",
                },
            ),
            (
                "Prices and cap",
                {
                    "fields": [
                        *MODEL_PRICE_FIELDS,
                        "monthly_cap",
                        *(["price_history"] if obj else []),
                    ],
                    "description": "Prices in USD per 1M tokens, filled in from the catalog "
                    "when you choose a model. Empty is unpriced, which is not the same as 0 "
                    "(free): unpriced calls are recorded without a cost and count against no "
                    "budget. New prices apply to calls from now on; the price history below "
                    "keeps the earlier ones.",
                },
            ),
        ]
        if not self.has_change_permission(request, obj):
            # Read-only: the stored options as text, not empty generated fields.
            return [*fieldsets, ("Provider options", {"fields": ["options_summary"]})]
        for slug, provider_type in PROVIDER_TYPES.items():
            fieldsets.append(
                (
                    f"{provider_type.label} options",
                    {
                        "fields": option_field_names(provider_type),
                        "classes": ["provider-options", f"provider-options-{slug}"],
                    },
                )
            )
        return fieldsets

    @admin.display(description="price history")
    def price_history(self, model: LLMModel) -> str:
        """The prices each call was costed at, latest first: written when prices change."""
        rows = format_html_join(
            "",
            "<tr><td>{}</td>" + "<td>{}</td>" * len(MODEL_PRICE_FIELDS) + "</tr>",
            (
                (
                    f"{timezone.localtime(price.effective_from):%Y-%m-%d %H:%M}",
                    *(
                        "unpriced" if value is None else f"{value.normalize():f}"
                        for value in price.prices
                    ),
                )
                for price in model.price_history.all()[:50]
            ),
        )
        return format_html(
            '<table class="price-history"><thead><tr><th>from</th><th>input</th>'
            "<th>output</th><th>cache read</th><th>cache write</th><th>long-context input</th>"
            "<th>long-context output</th><th>long-context cache read</th>"
            "<th>long-context cache write</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="Options")
    def options_summary(self, model: LLMModel) -> str:
        if not model.provider_options:
            return "Provider defaults"
        labels = model.provider.provider_type.options_by_name
        return format_html_join(
            "",
            "<div>{}: {}</div>",
            (
                (labels[name].label if name in labels else name, json.dumps(value))
                for name, value in model.provider_options.items()
            ),
        )

    def get_urls(self) -> list[Any]:
        return [
            path(
                "remote-models/",
                self.admin_site.admin_view(self.remote_models_view),
                name="llmadmin_llmmodel_remote_models",
            ),
            path(
                "catalog/",
                self.admin_site.admin_view(self.catalog_view),
                name="llmadmin_llmmodel_catalog",
            ),
            path(
                "what-developers-see/",
                self.admin_site.admin_view(self.what_developers_see_view),
                name="llmadmin_llmmodel_what_developers_see",
            ),
            path(
                "<int:model_id>/make-default/",
                self.admin_site.admin_view(require_POST(self.make_default_view)),
                name="llmadmin_llmmodel_make_default",
            ),
            *super().get_urls(),
        ]

    def remote_models_view(self, request: HttpRequest) -> HttpResponse:
        """The identifiers (and context limits) the provider reports, for the model form."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        provider = get_object_or_404(Provider, pk=provider_id_in(request))
        missing = provider_missing_credentials(provider=provider)
        if missing:
            # Expected (a provider set up later), not a failure: said, with no list.
            return JsonResponse({"provider_label": str(provider), "unavailable": missing})
        try:
            model_list = provider_remote_models(provider=provider)
        except ProviderError as error:
            return JsonResponse({"error": str(error)}, status=502)
        return JsonResponse(
            {
                "provider_label": str(provider),
                "models": [
                    {"identifier": model.identifier, "context_limit": model.context_limit}
                    for model in model_list.models
                ],
                "left_out": model_list.left_out,
            }
        )

    def catalog_view(self, request: HttpRequest) -> HttpResponse:
        """What the catalog knows of the provider type's chat models, for the model form."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        provider = get_object_or_404(
            Provider.objects.defer(*SECRET_FIELDS), pk=provider_id_in(request)
        )
        models = catalog_models(provider.provider_type.catalog)
        return JsonResponse(
            {
                "models": {
                    identifier: facts.as_json()
                    for identifier, facts in models.items()
                    if facts.chat
                }
            }
        )

    def what_developers_see_view(self, request: HttpRequest) -> HttpResponse:
        """Pick a user or a group: the models they get, and why they don't get the others.

        Only users and groups the admin may see are offered; the models come a page at a time.
        """
        may_see_users = request.user.has_perm("auth.view_user")
        may_see_groups = request.user.has_perm("auth.view_group")
        if not self.has_view_or_change_permission(request) or not (may_see_users or may_see_groups):
            raise PermissionDenied
        form = WhoForm(request.GET or None, users=may_see_users, groups=may_see_groups)
        page = who = None
        if form.is_valid():
            who = form.cleaned_data.get("user") or form.cleaned_data.get("group")
        if who is not None:
            paginator = Paginator(models_in_list_order(), MODELS_PER_EXPLAINED_PAGE)
            page = paginator.get_page(request.GET.get("page"))
            page.seen = what_developers_see(
                page.object_list,
                user=form.cleaned_data.get("user"),
                group=form.cleaned_data.get("group"),
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "What developers see",
            "opts": self.model._meta,
            "form": form,
            "page": page,
            "who": who,
            "query": {key: request.GET[key] for key in ("user", "group") if request.GET.get(key)},
        }
        return TemplateResponse(request, "admin/llmadmin/what_developers_see.html", context)

    @admin.display(description="What the catalog knows")
    def catalog_summary(self, model: LLMModel) -> str:
        facts = model.catalog_facts
        if facts is None:
            return (
                f"Not in the catalog (models.dev): only {model.provider.provider_type.label}'s "
                "own rules check this model."
            )
        return format_html_join("", "<div>{}: {}</div>", catalog_lines(facts))

    def save_model(self, request: HttpRequest, obj: LLMModel, form: Any, change: bool) -> None:
        # The save's audit entry comes after this one (save_related adds the access lists).
        form.audit_mark = latest_entry_pk()
        super().save_model(request, obj, form, change)
        if "is_default" in form.changed_data:
            if obj.is_default:
                was = obj.replaced_default.display_name if obj.replaced_default else "none"
                self.message_user(
                    request, f"{obj.display_name} is now the default model (was {was})."
                )
            else:
                self.say_no_default(request, f"{obj.display_name} is no longer the default")
        reported = provider_reported_context_limit(provider=obj.provider, identifier=obj.identifier)
        if reported and reported != obj.context_limit:
            self.message_user(
                request,
                f"{obj.provider} reports a context limit of {reported} for {obj.identifier}; "
                f"this model has {obj.context_limit}.",
                messages.WARNING,
            )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # One save, one audit entry: the access lists go into the save's own.
        with access_lists_in_the_save_entry(form.instance, since=form.audit_mark):
            super().save_related(request, form, formsets, change)

    def make_default_view(self, request: HttpRequest, model_id: int) -> HttpResponse:
        model = get_object_or_404(LLMModel, pk=model_id)
        if not self.has_change_permission(request, model):
            raise PermissionDenied
        try:
            model_make_default(model=model)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
        else:
            self.log_change(request, model, [{"changed": {"fields": ["default"]}}])
            was = model.replaced_default.display_name if model.replaced_default else "none"
            self.message_user(
                request, f"{model.display_name} is now the default model (was {was})."
            )
            availability = model.provider.availability
            if availability != Availability.AVAILABLE:
                self.message_user(
                    request,
                    f"Developers don't get it yet: {model.provider} is unavailable "
                    f"({Availability(availability).label.lower()}).",
                    messages.WARNING,
                )
        # Back to the list as it was (filters, page), else to the plain list.
        back = request.META.get("HTTP_REFERER", "")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = reverse("admin:llmadmin_llmmodel_changelist")
        return HttpResponseRedirect(back)

    def get_list_display(self, request: HttpRequest) -> list[str]:
        # Only users who may change models get the star as a button.
        star = "default_star" if self.has_change_permission(request) else "default_marker"
        return [star, *self.list_display[1:]]

    @admin.display(description="Default", ordering="-is_default")
    def default_marker(self, model: LLMModel) -> str:
        star = "\u2605" if model.is_default else "\u2606"
        title = "Default model" if model.is_default else "Not the default"
        return format_html('<span class="default-star" title="{}">{}</span>', title, star)

    @admin.display(description="Default", ordering="-is_default")
    def default_star(self, model: LLMModel) -> str:
        if model.is_default:
            return self.default_marker(model)
        url = reverse("admin:llmadmin_llmmodel_make_default", args=[model.pk])
        # A submit button of the changelist form, posted (with its CSRF token) to our URL:
        # a form of its own would be nested inside the changelist form.
        return format_html(
            '<button type="submit" class="default-star" formaction="{}" formmethod="post" '
            'title="Make this the default model" aria-label="Make {} the default">{}</button>',
            url,
            model.display_name,
            "\u2606",
        )


# What developers get when there is no default (chat/static/chat/model_selector.js).
NO_DEFAULT_FALLBACK = (
    "each developer's model selector pre-selects the model they last used, else the first "
    "model they may use."
)
# Models on one page of "What developers see".
MODELS_PER_EXPLAINED_PAGE = 200


def listed_count(through: Any) -> Subquery:
    """How many rows of an access list name the model."""
    rows = through.objects.filter(llmmodel=OuterRef("pk")).order_by().values("llmmodel")
    return Subquery(rows.annotate(n=Count("pk")).values("n"), output_field=IntegerField())


def provider_id_in(request: HttpRequest) -> int:
    """The ?provider= of the model form's JSON views; anything but a number finds nothing."""
    value = request.GET.get("provider", "")
    # At most 18 digits: a larger number overflows PostgreSQL's bigint.
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else 0


def catalog_lines(facts: ModelFacts) -> list[tuple[str, str]]:
    """(label, value) of what the catalog says about a model, for the model page."""

    def yes_no(value: bool | None) -> str:
        return "unknown" if value is None else "yes" if value else "no"

    def usd(value: Decimal | None) -> str:
        return "unpriced" if value is None else f"${format(value.normalize(), 'f')}"

    def listed(prices: Prices) -> str:
        return (
            f"input {usd(prices.input)}, output {usd(prices.output)}, cache read "
            f"{usd(prices.cache_read)}, cache write {usd(prices.cache_write)}"
        )

    lines = [
        ("Name", facts.name),
        ("Context limit", f"{facts.context_limit or 'unknown'} tokens"),
        ("Max output", f"{facts.output_limit or 'unknown'} tokens"),
        ("Reasoning", yes_no(facts.reasoning)),
        ("Takes a temperature", yes_no(facts.temperature)),
        ("Tool calls", yes_no(facts.tool_call)),
        ("Input", ", ".join(facts.input_modalities) or "unknown"),
        ("Knowledge", facts.knowledge or "unknown"),
        ("Released", facts.release_date or "unknown"),
        ("Prices per 1M tokens", listed(facts.prices)),
    ]
    if any(value is not None for value in facts.long_context_prices.as_tuple()):
        lines.append(("Long-context prices per 1M tokens", listed(facts.long_context_prices)))
    if facts.deprecated:
        lines.append(("Status", "deprecated"))
    return lines


class AuditLogEntryAdmin(LogEntryAdmin):
    """auditlog's own view of the audit (filters by action, resource type, import), in the
    fields' labels and the values' names, plus export of what is selected."""

    actions = ["export_csv"]

    @admin.display(description="Changes")
    def msg_short(self, entry: AuditEntry) -> str:
        # auditlog lists an access with no changes; ours are connection tests of typed values.
        if entry.action == AuditEntry.Action.ACCESS and entry.changes_dict:
            return "Connection test with typed " + ", ".join(
                str(Provider._meta.get_field(name).verbose_name)
                for name in entry.changes_dict
                if name != CONNECTION_TEST
            )
        if entry.action == AuditEntry.Action.DELETE:
            return ""
        return ", ".join(label for label, _, _ in labelled_changes(entry))

    @admin.display(description="Changes")
    def msg(self, entry: AuditEntry) -> str:
        return format_html(
            '<table class="audit-changes"><thead><tr><th>Field</th><th>Before</th>'
            "<th>After</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join(
                "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", readable_changes(entry)
            ),
        )

    @admin.action(description="Export selected entries (CSV)")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[AuditEntry]) -> HttpResponse:
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="llmadmin-audit.csv"'
        writer = csv.writer(response)
        writer.writerow(["time", "actor", "action", "resource", "object", "changes", "import"])
        rows = list(queryset.select_related("actor", "content_type").order_by("timestamp", "pk"))
        names = entries_related_names(rows)
        for entry in rows:
            changes = {
                label: [before, after] for label, before, after in readable_changes(entry, names)
            }
            writer.writerow(
                spreadsheet_safe(cell)
                for cell in (
                    entry.timestamp.isoformat(),
                    entry.actor.get_username() if entry.actor else "",
                    entry.get_action_display(),
                    entry.content_type.model,
                    entry.object_repr,
                    json.dumps(changes),
                    entry.cid or "",
                )
            )
        return response


class GroupForm(forms.ModelForm):
    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        validate_no_hidden_characters(name)
        return name


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    """Django's, with a name that can't pass for another group's."""

    form = GroupForm


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


admin.site.unregister(AuditEntry)
admin.site.register(AuditEntry, AuditLogEntryAdmin)
