"""The model admin: its list, form and the views the form and list call (the provider's
listed models, the catalog, what developers see, make default)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from llmadmin.admin.catalog import catalog_lines
from llmadmin.audit import access_lists_in_the_save_entry, latest_entry_pk
from llmadmin.forms import LLMModelAdminForm, ProviderChoiceField, WhoForm, option_field_names
from llmadmin.models import MODEL_PRICE_FIELDS, SECRET_FIELDS, Availability, LLMModel, Provider
from llmadmin.providers import GENERAL_FIELDS, PROVIDER_TYPES
from llmadmin.providers.catalog import catalog_models
from llmadmin.providers.errors import ProviderError
from llmadmin.selectors import (
    model_findings,
    models_in_list_order,
    provider_remote_models,
    provider_reported_context_limit,
    providers_in_registry_order,
    registry_position,
    what_developers_see,
)
from llmadmin.services import model_make_default, models_set_enabled, provider_missing_credentials


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


class ProviderFilter(admin.RelatedFieldListFilter):
    """The accounts by their labels, in the list's order."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> list[Any]:
        accounts = providers_in_registry_order(Provider.objects.defer(*SECRET_FIELDS))
        return [(account.pk, account.label) for account in accounts]


@admin.register(LLMModel)
class LLMModelAdmin(admin.ModelAdmin):
    form = LLMModelAdminForm
    # Grouped by provider, in the registry's order, as the developers' selector shows them.
    list_display = [
        "default_star",
        "provider_label",
        "display_name",
        "identifier",
        "context_limit",
        "available_to",
        "developers_get_it",
    ]
    list_display_links = ["display_name"]
    list_filter = [("provider", ProviderFilter), "enabled", "is_default", AccessFilter]
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
        # A type's accounts in the order added, as developers see them.
        return ["registry_position", "provider_id", "display_name"]

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

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "provider" and field is not None:
            # An account is added from the provider list and set up on its own page: one
            # added in a pop-up here would have no credentials, nor its type's options shown.
            field.widget.can_add_related = False
        return field

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "provider":
            kwargs["queryset"] = providers_in_registry_order(Provider.objects.defer(*SECRET_FIELDS))
            kwargs["form_class"] = ProviderChoiceField
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="Provider", ordering="registry_position")
    def provider_label(self, model: LLMModel) -> str:
        return model.provider.label

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
        rows = [
            (
                f"{timezone.localtime(price.effective_from):%Y-%m-%d %H:%M}",
                *(
                    "unpriced" if value is None else f"{value.normalize():f}"
                    for value in price.prices
                ),
            )
            for price in model.price_history.all()[:50]
        ]
        return render_to_string("admin/llmadmin/llmmodel/price_history.html", {"rows": rows})

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
