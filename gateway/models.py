"""The gateway's personal access tokens: developers' own tools call the OpenAI- and
Anthropic-shaped APIs with one, acting as the developer who made it. And the admins' policy:
whether the gateway is open, and to whom."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from llmadmin.fields import validate_no_hidden_characters

NAME_TAKEN = "You already have a token with this name."


class PersonalAccessToken(models.Model):
    """A developer's token. Only a hash of its secret is kept: the secret is shown once.

    The secret is `llma_<prefix>_<rest>`: the prefix finds the row, the SHA-256 of the whole
    secret proves it. Secrets are random and long (not passwords): a fast hash is enough.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        EXPIRED = "expired", "expired"
        REVOKED = "revoked", "revoked"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens"
    )
    name = models.CharField(
        max_length=100,
        validators=[validate_no_hidden_characters],
        help_text="What uses it, to tell your tokens apart (e.g. “laptop Claude Code”).",
    )
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # None: never expires.
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "personal access token"
        ordering = ["-created_at", "-pk"]
        constraints = [
            # A developer tells their tokens apart by name; a revoked one frees its name.
            models.UniqueConstraint(
                fields=["user", "name"],
                condition=Q(revoked_at=None),
                name="gateway_token_name_unique_per_developer",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.shown_secret})"

    def clean(self) -> None:
        # The constraint's own error would not name the field.
        taken = PersonalAccessToken.objects.filter(
            user=self.user_id, name=self.name, revoked_at=None
        ).exclude(pk=self.pk)
        if self.revoked_at is None and taken.exists():
            raise ValidationError({"name": NAME_TAKEN})

    @property
    def shown_secret(self) -> str:
        """The secret as lists show it: its lookup prefix only."""
        return f"llma_{self.prefix}_…"

    def status(self, now: datetime | None = None) -> Status:
        if self.revoked_at is not None:
            return self.Status.REVOKED
        if self.expires_at is not None and self.expires_at <= (now or timezone.now()):
            return self.Status.EXPIRED
        return self.Status.ACTIVE

    def is_usable(self, now: datetime | None = None) -> bool:
        """Neither revoked nor expired (its developer's own state is checked apart)."""
        return self.status(now) == self.Status.ACTIVE


class GatewayPolicy(models.Model):
    """Whether the gateway serves anybody, and the groups it is closed to: one row, edited in
    the admin, read with each request's token (so every process agrees at once)."""

    # The one row's key: the constraint keeps it the only one.
    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    enabled = models.BooleanField(
        "gateway open",
        default=True,
        help_text="Unticked, every gateway request is refused (403), whoever makes it.",
    )
    closed_to = models.ManyToManyField(
        Group,
        blank=True,
        related_name="+",
        verbose_name="closed to the groups",
        help_text="Members of any of these groups are refused (403), whatever their other groups.",
    )

    class Meta:
        verbose_name = verbose_name_plural = "gateway policy"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="gateway_policy_one_row")]

    def __str__(self) -> str:
        return "The gateway's policy"
