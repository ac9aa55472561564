"""The provider admin: accounts added, named and deleted; key status, connection tests (of
what is stored or typed), its models."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.timesince import timesince
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_POST

from llmadmin.admin.backup_keys import (
    BackupKeyInline,
    keep_typed_rows,
    key_pool_counts,
    key_pool_summary,
    typed_rows,
)
from llmadmin.admin.typed_secrets import (
    keep_typed_secrets,
    typed_secrets,
    typed_test,
    typed_test_key,
)
from llmadmin.audit import log_connection_test, log_entered_again, log_tried_again
from llmadmin.forms import (
    AUTH_MODE_FIELDS,
    BACKUP_KEY_SECRETS,
    NEW_ADDRESS,
    BackupKeyFormSet,
    ProviderAddForm,
    ProviderAdminForm,
    connection_digest,
    cooldown_in_words,
)
from llmadmin.models import (
    SECRET_FIELDS,
    AuthMode,
    Availability,
    CheckStatus,
    Provider,
    key_use_state,
)
from llmadmin.selectors import registry_position
from llmadmin.services import (
    provider_check_connection,
    provider_delete,
    provider_deletion_refused,
    provider_try_connection,
)

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

KEY_POOL_HELP = (
    "Calls use the account's own key (key 1) first, then its backup keys below, lowest order "
    "first. A call that fails before its answer began (the key refused or rate-limited, the "
    "provider failing, no connection) is tried once more on the next key not cooling down. "
    "A backup key is sent only to the address it was entered for: once the address or the "
    "way of signing in changes, paste it again. A blank secret keeps the stored one."
)
NO_KEY_POOL = (
    "Backup keys don't apply: this account signs in with the server's own AWS credentials."
)


def secrets_posted(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """As sensitive_post_parameters: error reports hide the secrets posted, the account's and
    each backup key's (named after its row: backup_keys-0-key)."""

    @wraps(view)
    def hiding(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        secrets = {*SECRET_FIELDS, *BACKUP_KEY_SECRETS}
        request.sensitive_post_parameters = [
            name for name in request.POST if name.rpartition("-")[2] in secrets
        ]
        return view(request, *args, **kwargs)

    return hiding


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderAdminForm
    inlines = [BackupKeyInline]
    # Narrow enough for a 1280 px screen: the test's reason is on the provider's page.
    list_display = ["label", "keys", "tested", "endpoint", "enabled", "model_count"]
    list_display_links = ["label"]
    list_filter = ["type", "enabled", ConnectionTestFilter]
    search_fields = ["name"]
    actions = ["test_connection"]

    class Media:
        js = ["llmadmin/provider_form.js"]
        css = {"all": ["llmadmin/admin.css"]}

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        if obj is None:
            return super().get_form(request, obj, form=ProviderAddForm, **kwargs)
        form = super().get_form(request, obj, **kwargs)
        if request.method != "POST":
            # Kept only for the page that was refused or tested: coming back later starts
            # afresh.
            keep_typed_secrets(request, obj, {})
            keep_typed_rows(request, obj, {})
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
        if form.is_bound and context.get("errors") and form.instance.pk:
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
            for inline in context.get("inline_admin_formsets", []):
                if isinstance(inline.formset, BackupKeyFormSet) and inline.formset.is_bound:
                    rows = inline.formset.typed_secrets()
                    keep_typed_rows(request, form.instance, rows)
                    inline.formset.show_kept(rows)
        return super().render_change_form(request, context, *args, **kwargs)

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        provider = super().get_object(request, object_id, from_field)
        if provider is not None:
            # The way of signing in as stored: the backup keys' fields are its, whatever the
            # save being validated changes.
            provider.stored_auth = provider.auth
        return provider

    def get_inline_instances(self, request: HttpRequest, obj: Provider | None = None) -> list[Any]:
        # The add page asks only what fixes an account; its keys go on its page, where the
        # admin may add some, or there are some to see.
        inlines = super().get_inline_instances(request, obj) if obj else []
        return [
            inline
            for inline in inlines
            if inline.has_add_permission(request, obj) or getattr(obj, "backup_total", 0)
        ]

    def get_formset_kwargs(
        self, request: HttpRequest, obj: Provider, inline: Any, prefix: str
    ) -> dict[str, Any]:
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, BackupKeyInline) and request.method == "POST":
            kwargs["kept_rows"] = typed_rows(request, obj)
        return kwargs

    def save_model(self, request: HttpRequest, obj: Provider, form: Any, change: bool) -> None:
        # Try key 1 again, where new credentials didn't already (forget_check).
        tried = ""
        if form.cleaned_data.get("try_key_again") and obj.cooling(timezone.now()):
            tried = cooldown_in_words(obj)
            obj.forget_cooling()
        super().save_model(request, obj, form, change)
        if tried:
            log_tried_again(obj, was=tried)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        if isinstance(formset, BackupKeyFormSet) and not formset.left_out:
            for row in formset.forms:
                if row.tried_again:
                    log_tried_again(row.instance, was=row.tried_again)
                if row.entered_again:
                    log_entered_again(row.instance)

    def response_add(
        self, request: HttpRequest, obj: Provider, post_url_continue: str | None = None
    ) -> HttpResponse:
        # As Django's UserAdmin: an account is added to be set up, on its change page
        # (unless "Save and add another" was asked for).
        if "_addanother" not in request.POST and IS_POPUP_VAR not in request.POST:
            request.POST = request.POST.copy()
            request.POST["_continue"] = 1
        response = super().response_add(request, obj, post_url_continue)
        if "_continue" in request.POST:
            self.message_user(
                request,
                f"Now enter {obj}'s credentials and address below and save: developers get "
                "none of its models until then.",
            )
        return response

    def response_change(self, request: HttpRequest, obj: Provider) -> HttpResponse:
        keep_typed_secrets(request, obj, {})
        keep_typed_rows(request, obj, {})
        request.session.pop(typed_test_key(obj), None)
        return super().response_change(request, obj)

    # Error reports never show a posted secret, nor one in any frame below (the form, the
    # session's kept secrets, the ORM's save).
    @method_decorator(secrets_posted)
    @method_decorator(sensitive_variables())
    def changeform_view(self, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(*args, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Provider | None = None) -> list[Any]:
        if obj is None:
            return [(None, {"fields": ["type", "name", "slug"]})]
        may_add = self.has_add_permission(request)
        account = ["type_and_add_link" if may_add else "type", "name", "slug"]
        connection = (
            ["base_url", "region"] if obj and obj.provider_type.region_required else ["base_url"]
        )
        # Without change permission a read-only form would display the key field's value.
        can_change = self.has_change_permission(request, obj)
        # Key 1's use and cooldown count only beside backup keys.
        pooled = getattr(obj, "backup_total", 0) > 0
        key_fields = ["key_status", "own_key_use"] if pooled else ["key_status"]
        if can_change and pooled and obj.cooling(timezone.now()):
            key_fields.append("try_key_again")
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
            (None, {"fields": account}),
            (None, {"fields": key_fields + test_fields}),
            ("Connection", {"fields": [*connection, "enabled"]}),
        ]
        may_add_model = request.user.has_perm("llmadmin.add_llmmodel")
        fieldsets.append(
            ("Models", {"fields": ["models_and_add_link" if may_add_model else "models_link"]})
        )
        # Last: the backup keys follow it.
        pool_help = NO_KEY_POOL if obj.auth == AuthMode.DEFAULT_CHAIN else KEY_POOL_HELP
        fieldsets.append(("Key pool", {"fields": ["key_cooldown"], "description": pool_help}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Provider | None = None) -> list[str]:
        shown = [
            "key_status",
            "own_key_use",
            "last_test",
            "connection_test",
            "models_link",
            "models_and_add_link",
        ]
        # A model's options are its account type's: the type is fixed once added.
        return [*shown, "type", "type_and_add_link"] if obj else shown

    def get_prepopulated_fields(
        self, request: HttpRequest, obj: Provider | None = None
    ) -> dict[str, tuple[str, ...]]:
        return {} if obj else {"slug": ("name",)}

    @admin.display(description="Type")
    def type_and_add_link(self, provider: Provider) -> str:
        label = provider.provider_type.label
        url = reverse("admin:llmadmin_provider_add") + f"?type={provider.type}"
        return format_html(
            '{}<p><a class="addlink" href="{}">Add another {} account</a></p>', label, url, label
        )

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
    @method_decorator(secrets_posted)
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
        # ModelAdmin's own, with the type's place in the registry to order by, and the key
        # pool's counts.
        queryset = Provider.objects.annotate(
            model_total=Count("models"), registry_position=registry_position(), **key_pool_counts()
        )
        return queryset.order_by(*self.get_ordering(request))

    def get_ordering(self, request: HttpRequest) -> list[str]:
        # The registry's order, a type's accounts in the order they were added.
        return ["registry_position", "pk"]

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # One at a time, from its page: a type's last account is never deleted.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: Provider | None = None) -> bool:
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or Provider.objects.filter(type=obj.type).exclude(pk=obj.pk).exists()

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # An account holding the default model is refused as Django refuses protected
        # objects: the confirmation page says why and deletes nothing.
        deleted, count, perms_needed, protected = super().get_deleted_objects(objs, request)
        for provider in objs:
            refused = provider_deletion_refused(provider=provider)
            if refused:
                protected = [*protected, refused]
        return deleted, count, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: Provider) -> None:
        provider_delete(provider=obj)

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> Any:
        try:
            return super().delete_view(request, object_id, extra_context)
        except ValidationError as error:
            # Found under lock (another admin's deletion or default meanwhile): rolled back.
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:llmadmin_provider_change", args=[object_id]))

    @admin.display(description="Provider", ordering="registry_position")
    def label(self, provider: Provider) -> str:
        return provider.label

    @admin.display(description="Key status")
    def key_status(self, provider: Provider) -> str:
        provider = getattr(provider, "stored", provider)
        if provider.key_state in ("set", "server") and provider.check_status:
            return CHECK_LABELS[provider.check_status]
        return KEY_STATE_LABELS[provider.key_state]

    @admin.display(description="Key status")
    def keys(self, provider: Provider) -> str:
        pool = key_pool_summary(provider)
        if not pool:
            return self.key_status(provider)
        return format_html("{}<br><small>{}</small>", self.key_status(provider), pool)

    @admin.display(description="Key 1")
    def own_key_use(self, provider: Provider) -> str:
        return key_use_state(getattr(provider, "stored", provider), timezone.now())

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
