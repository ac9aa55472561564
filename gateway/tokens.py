"""Personal access tokens: made, found from a request's secret, revoked.

A token acts as its developer: the same model access and budget, no admin powers. It is
refused on the next request once revoked, expired, or its developer deactivated: each request
reads the token, its developer and the gateway's policy from the database (one query), so
every process agrees.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from billing.budgets import month_bounds, month_start
from chat.model_list import STATE_READ_WITH_LOGIN, state_sql
from gateway.models import NAME_TAKEN, GatewayPolicy, PersonalAccessToken
from llmadmin.audit import log_change

# What every secret starts with: a secret scanner can tell ours (not a secret itself).
SECRET_START = "llma_"  # noqa: S105
PREFIX_LENGTH = 12
# What token_mint makes a prefix of (token_hex): nothing else is looked up.
PREFIX = re.compile(rf"[0-9a-f]{{{PREFIX_LENGTH}}}")
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


@functools.cache
def token_query(vendor: str) -> str:
    """The SQL of token_holder: a token by its prefix, of an active developer, with whether
    the gateway's policy refuses them and what chat.model_list.state_of reads of them. Plain
    SQL: every gateway request runs it, and the ORM took longer to build it than the database
    to answer it (a fifth of a request's CPU)."""
    user_model = get_user_model()
    memberships = user_model.groups.through._meta
    closed_to = GatewayPolicy.closed_to.through._meta
    names = {
        "tokens": PersonalAccessToken._meta.db_table,
        "users": user_model._meta.db_table,
        "user_pk": user_model._meta.pk.column,
        "active": user_model._meta.get_field("is_active").column,
        "policy": GatewayPolicy._meta.db_table,
        "closed_to": closed_to.db_table,
        "closed_group": closed_to.get_field("group").column,
        "memberships": memberships.db_table,
        "member": memberships.get_field("user").column,
        "member_group": memberships.get_field("group").column,
    }
    # SQL, table and column names only are formatted in; the month and prefix are parameters.
    return (  # noqa: S608
        "SELECT t.id, t.user_id, t.digest, t.expires_at, t.last_used_at, t.revoked_at, "
        "(EXISTS (SELECT 1 FROM {policy} WHERE NOT enabled) OR EXISTS (SELECT 1 FROM "
        "{closed_to} c JOIN {memberships} m ON m.{member_group} = c.{closed_group} "
        "WHERE m.{member} = t.user_id)) AS gateway_closed, {state} AS developer_state "
        "FROM {tokens} t JOIN {users} u ON u.{user_pk} = t.user_id "
        "WHERE t.prefix = %s AND u.{active}"
    ).format(state=state_sql("t.user_id", vendor), **names)


@sensitive_variables("secret")
def token_holder(secret: str | None) -> PersonalAccessToken | None:
    """The usable token with this secret, and whether the gateway's policy refuses its
    developer (`gateway_closed`), in one query; None for anything else: unknown, wrong,
    revoked, expired, or a deactivated developer. The token's `user` holds only its id
    (the rest of the developer's row is read if asked for)."""
    if not secret or not secret.startswith(SECRET_START):
        return None
    prefix = secret[len(SECRET_START) :].partition("_")[0]
    if not PREFIX.fullmatch(prefix):
        return None
    month = month_start(timezone.localdate())
    found = PersonalAccessToken.objects.raw(
        token_query(connection.vendor), [*month_bounds(month), prefix]
    )
    token = next(iter(found), None)
    if token is None or not hmac.compare_digest(token.digest, digest_of(secret)):
        return None
    user_model = get_user_model()
    token.user = user_model.from_db(token._state.db, [user_model._meta.pk.attname], [token.user_id])
    setattr(token.user, STATE_READ_WITH_LOGIN, (month, token.__dict__.pop("developer_state")))
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
