"""The gateway's personal access tokens: developers' own tools call the OpenAI- and
Anthropic-shaped APIs with one, acting as the developer who made it."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class PersonalAccessToken(models.Model):
    """A developer's token. Only a hash of its secret is kept: the secret is shown once.

    The secret is `llma_<prefix>_<rest>`: the prefix finds the row, the SHA-256 of the whole
    secret proves it. Secrets are random and long (not passwords): a fast hash is enough.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens"
    )
    name = models.CharField(max_length=100)
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

    def __str__(self) -> str:
        return f"{self.name} (llma_{self.prefix}_…)"

    def is_usable(self, now: datetime | None = None) -> bool:
        """Neither revoked nor expired (its developer's own state is checked apart)."""
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
