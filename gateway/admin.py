"""Everyone's tokens (listed, searched, revoked; never made here, never their digest) and the
gateway's policy."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from gateway.models import GatewayPolicy, PersonalAccessToken
from gateway.tokens import token_revoke


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return PersonalAccessToken.Status.choices

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        unexpired = Q(expires_at=None) | Q(expires_at__gt=now)
        return {
            PersonalAccessToken.Status.ACTIVE: queryset.filter(unexpired, revoked_at=None),
            PersonalAccessToken.Status.EXPIRED: queryset.filter(
                expires_at__lte=now, revoked_at=None
            ),
            PersonalAccessToken.Status.REVOKED: queryset.exclude(revoked_at=None),
        }.get(self.value(), queryset)


@admin.register(PersonalAccessToken)
class PersonalAccessTokenAdmin(admin.ModelAdmin):
    # The digest is in no column, field, search or filter: nothing here can probe it.
    list_display = [
        "name",
        "user",
        "token",
        "created_at",
        "expires_at",
        "last_used_at",
        "status",
    ]
    list_select_related = ["user"]
    list_filter = [StatusFilter]
    search_fields = ["user__username", "name"]
    fields = [
        "user",
        "name",
        "token",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "status",
    ]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Tokens are made by their developer (the tokens page) or by create_token.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Revoked, not deleted: the ledger names the token of each gateway call.
        return False

    @admin.display(description="token")
    def token(self, token: PersonalAccessToken) -> str:
        return token.shown_secret

    @admin.display(description="status")
    def status(self, token: PersonalAccessToken) -> str:
        return token.status().label

    @admin.action(permissions=["change"], description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[PersonalAccessToken]) -> None:
        tokens = list(queryset.filter(revoked_at=None))
        for token in tokens:
            token_revoke(token=token)
        self.message_user(request, f"Revoked {len(tokens)} token(s).")


@admin.register(GatewayPolicy)
class GatewayPolicyAdmin(admin.ModelAdmin):
    """The one row (made by the migration): opened or closed, never added or deleted."""

    list_display = ["__str__", "enabled"]
    filter_horizontal = ["closed_to"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
