"""An account's backup keys on its page: in order, their secrets write-only, each key's state
(ready, cooling down until when and why, to paste again) and Try again; the account's pool in
the provider list."""

from __future__ import annotations

from typing import Any

from cryptography.fernet import InvalidToken
from django.contrib import admin
from django.contrib.auth import get_permission_codename
from django.db.models import Count, Max, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from llmadmin.forms import BackupKeyForm, BackupKeyFormSet, backup_key_fields
from llmadmin.models import AuthMode, BackupKey, KeyFault, Provider, api_key_ids

SERVER_CREDENTIALS = "Not used: the account signs in with the server's own AWS credentials."


def stored_auth(provider: Provider | None) -> str | None:
    """The account's way of signing in as stored (ProviderAdmin.get_object): the backup
    keys' fields are its, whatever the save being validated changes."""
    return getattr(provider, "stored_auth", provider.auth) if provider else None


def may(request: HttpRequest, action: str) -> bool:
    codename = get_permission_codename(action, Provider._meta)
    return request.user.has_perm(f"{Provider._meta.app_label}.{codename}")


class BackupKeyInline(admin.TabularInline):
    """The account's permissions are its backup keys': who may change the account's key may
    change them; who may only view the account sees their order, names and states, never a
    secret (not even masked)."""

    model = BackupKey
    form = BackupKeyForm
    formset = BackupKeyFormSet
    extra = 0
    readonly_fields = ["state"]

    def get_fields(self, request: HttpRequest, obj: Provider | None = None) -> list[str]:
        credentials = backup_key_fields(stored_auth(obj))
        if not credentials or not self.has_change_permission(request, obj):
            return ["position", "name", "state"]
        return ["position", "name", *credentials, "state", "try_again"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[BackupKey]:
        # Each key's state is told against its account as stored.
        return super().get_queryset(request).select_related("provider")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may(request, "view") or may(request, "change")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may(request, "change")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may(request, "change")

    def has_add_permission(self, request: HttpRequest, obj: Any) -> bool:
        return may(request, "change") and stored_auth(obj) != AuthMode.DEFAULT_CHAIN

    @admin.display(description="State")
    def state(self, key: BackupKey) -> str:
        if key.pk is None:
            return ""
        # As stored: a refused save's page holds the account as typed (its `stored` copy).
        provider = getattr(key.provider, "stored", key.provider)
        if provider.auth == AuthMode.DEFAULT_CHAIN:
            return SERVER_CREDENTIALS
        return key.state(provider, timezone.now())


def key_pool_counts() -> dict[str, Any]:
    """An account's backup keys in the list's one query: how many, how many cooling down now,
    how many unreadable or empty, and the first and last address they were entered for."""
    keys = BackupKey.objects.filter(provider=OuterRef("pk")).order_by().values("provider")

    def count(condition: Q) -> Coalesce:
        counted = keys.filter(condition).annotate(n=Count("pk")).values("n")
        return Coalesce(Subquery(counted), 0)

    cooling = Q(cooling_reason=KeyFault.REJECTED) | Q(cooling_until__gt=timezone.now())
    return {
        "backup_total": count(Q()),
        "backups_cooling": count(cooling),
        "backups_unreadable": count(~Q(encrypted_with__in=api_key_ids())),
        "backups_entered_first": Subquery(keys.annotate(a=Min("entered_for")).values("a")),
        "backups_entered_last": Subquery(keys.annotate(a=Max("entered_for")).values("a")),
    }


def key_pool_summary(provider: Provider) -> str:
    """The account's pool in the list's words: "2 backup keys · 1 cooling · 1 to paste
    again" (cooling: of all the pool's keys, its own included)."""
    total = provider.backup_total
    if not total:
        return ""
    keys = f"{total} backup key{'s' * (total != 1)}"
    if provider.auth == AuthMode.DEFAULT_CHAIN:
        return f"{keys}, not used"
    parts = [keys]
    cooling = provider.backups_cooling + provider.cooling(timezone.now())
    if cooling:
        parts.append(f"{cooling} cooling")
    entered_for = {provider.backups_entered_first, provider.backups_entered_last}
    if entered_for == {provider.address}:
        to_paste: int | str = provider.backups_unreadable
    elif provider.address not in entered_for:
        # Neither the first nor the last address is this one: none between them is either.
        to_paste = total
    else:
        to_paste = "some"  # some for another: how many, only the page tells
    if to_paste:
        parts.append(f"{to_paste} to paste again")
    return " · ".join(parts)


# The secrets typed into backup keys on a page whose save was refused, kept encrypted in the
# session for its next attempt, as the account's own (typed_secrets).


def typed_rows_key(provider: Provider) -> str:
    return f"llmadmin:typed-backup-secrets:{provider.pk}"


@sensitive_variables("rows", "cipher")
def keep_typed_rows(
    request: HttpRequest, provider: Provider, rows: dict[str, dict[str, str]]
) -> None:
    """Keep (or, with none, forget) the secrets typed into each row, encrypted."""
    cipher = Provider._meta.get_field("api_key").f
    if not rows:
        request.session.pop(typed_rows_key(provider), None)
        return
    request.session[typed_rows_key(provider)] = {
        row: {name: cipher.encrypt(value.encode()).decode() for name, value in secrets.items()}
        for row, secrets in rows.items()
    }


@sensitive_variables("cipher")
def typed_rows(request: HttpRequest, provider: Provider) -> dict[str, dict[str, str]]:
    cipher = Provider._meta.get_field("api_key").f
    kept = request.session.get(typed_rows_key(provider)) or {}
    try:
        return {
            row: {name: cipher.decrypt(value.encode()).decode() for name, value in secrets.items()}
            for row, secrets in kept.items()
        }
    except InvalidToken:  # the secrets rotated since: type them again
        return {}
