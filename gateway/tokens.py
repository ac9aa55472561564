"""Personal access tokens: made, found from a request's secret, revoked.

A token acts as its developer: the same model access and budget, no admin powers. It is
refused on the next request once revoked, expired, or its developer deactivated: each request
reads the token, its developer and the gateway's policy from the database (one query), so
every process agrees.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Q
from django.http import HttpRequest
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from gateway.models import NAME_TAKEN, GatewayPolicy, PersonalAccessToken
from llmadmin.audit import log_change

# What every secret starts with: a secret scanner can tell ours (not a secret itself).
SECRET_START = "llma_"  # noqa: S105
PREFIX_LENGTH = 12
# How stale a token's last use may be: a busy token's row is written once a minute at most.
LAST_USED_PRECISION = timedelta(minutes=1)


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@sensitive_variables("secret")
def token_mint(
    *, user: AbstractBaseUser, name: str, expires_in_days: int | None = None
) -> tuple[PersonalAccessToken, str]:
    """A new token of this developer and its secret, which is shown once and kept nowhere."""
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    secret = f"{SECRET_START}{prefix}_{secrets.token_urlsafe(32)}"
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    token = PersonalAccessToken(
        user=user, name=name, prefix=prefix, digest=digest_of(secret), expires_at=expires_at
    )
    # clean() names the field when the name is taken; the constraint backs it in the database.
    token.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            token.save()
    except IntegrityError:
        # Another request took the name since clean() looked.
        raise ValidationError({"name": NAME_TAKEN}) from None
    return token, secret


def token_revoke(*, token: PersonalAccessToken) -> None:
    """Revoked from the next request on, on every process; kept for the ledger's references."""
    now = timezone.now()
    revoked = PersonalAccessToken.objects.filter(pk=token.pk, revoked_at=None).update(
        revoked_at=now
    )
    if revoked:  # not when another request revoked it first
        log_change(token, "revoked_at", "None", str(now))
        token.revoked_at = now


@sensitive_variables("request", "secret")
def secret_of(request: HttpRequest) -> str | None:
    """The secret a client sent: `Authorization: Bearer …` (OpenAI's clients) or `x-api-key`
    (Anthropic's)."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and secret.strip():
        return secret.strip()
    return request.headers.get("x-api-key", "").strip() or None


@sensitive_variables("secret")
def token_holder(secret: str | None) -> PersonalAccessToken | None:
    """The usable token with this secret, its active developer loaded with it, and whether
    the gateway's policy refuses them (`gateway_closed`), in one query; None for anything
    else: unknown, wrong, revoked, expired, or a deactivated developer."""
    if not secret or not secret.startswith(SECRET_START):
        return None
    prefix = secret[len(SECRET_START) :].partition("_")[0]
    if len(prefix) != PREFIX_LENGTH:
        return None
    token = (
        PersonalAccessToken.objects.select_related("user")
        .annotate(gateway_closed=GatewayPolicy.refuses(OuterRef("user")))
        .filter(prefix=prefix, user__is_active=True)
        .first()
    )
    if token is None or not hmac.compare_digest(token.digest, digest_of(secret)):
        return None
    return token if token.is_usable() else None


def token_used(*, token: PersonalAccessToken) -> None:
    """Record that the token was used now: at most once a minute, whichever process serves
    it (the condition is checked again in the database)."""
    now = timezone.now()
    stale = now - LAST_USED_PRECISION
    if token.last_used_at is not None and token.last_used_at > stale:
        return
    PersonalAccessToken.objects.filter(
        Q(last_used_at=None) | Q(last_used_at__lte=stale), pk=token.pk
    ).update(last_used_at=now)
    token.last_used_at = now
