"""The audit of admin changes, kept by django-auditlog: field-level before and after of every
provider and model change, access lists included, with who made it.

Secrets are never recorded: a key's entry says only whether one was set before and after
("(set)" twice reads as changed). Writes that bypass save() (bulk enable/disable, the default
unset by a new default, re-encryption) are recorded here explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from auditlog.cid import get_cid
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType

SECRET_SET, SECRET_UNSET = "(set)", "(none)"
# A connection test's entry: each typed field, then the outcome.
TESTED_STORED, TESTED_TYPED = "(stored)", "(typed for a test, not saved)"
CONNECTION_TEST = "connection test"
# Noise, not changes: timestamps and the outcome of connection tests.
NOT_AUDITED = ["created_at", "updated_at", "check_status", "check_reason", "checked_at"]


def secret_state(value: str) -> str:
    """auditlog's mask for secrets: whether one is set, never any part of it."""
    return SECRET_UNSET if value in ("", "None") else SECRET_SET


def register(provider: type, model: type, secret_fields: Iterable[str]) -> None:
    """Audit the provider and model classes (given: the models module logs through here)."""
    auditlog.register(
        provider,
        exclude_fields=[*NOT_AUDITED, "api_key_encrypted_with", "catalog_seeded"],
        mask_fields=[*secret_fields, "aws_access_key_id"],
        mask_callable="llmadmin.audit.secret_state",
    )
    auditlog.register(
        model, exclude_fields=NOT_AUDITED, m2m_fields={"allowed_groups", "allowed_users"}
    )
    # Joining or leaving a group changes which kept models a user gets: an access change too.
    # Only what decides access is recorded: never the password hash, nor each login's time.
    auditlog.register(
        get_user_model(),
        include_fields=["username", "is_active", "is_staff", "is_superuser"],
        m2m_fields={"groups"},
    )


def register_budgets(*budget_models: type) -> None:
    """Budgets are admin changes too: who gave whom how much."""
    for budget_model in budget_models:
        auditlog.register(budget_model)


def log_change(model: Any, field: str, before: Any, after: Any) -> None:
    """An update entry for a change made with QuerySet.update() (the actor as auditlog sets
    it)."""
    LogEntry.objects.log_create(
        model, action=LogEntry.Action.UPDATE, changes={field: [before, after]}
    )


def log_bulk_change(
    models: Iterable[Any], field: str, before: Any, after: Any, *, actor: Any = None
) -> None:
    """One update entry per model for a change made with QuerySet.update(), written in one
    insert (10,000 models disabled at once: one statement, not 10,000)."""
    models = list(models)
    if not models:
        return
    actor = actor if getattr(actor, "is_authenticated", False) else None
    content_type = ContentType.objects.get_for_model(models[0])
    LogEntry.objects.bulk_create(
        LogEntry(
            content_type=content_type,
            object_pk=str(model.pk),
            object_id=model.pk,
            object_repr=str(model),
            action=LogEntry.Action.UPDATE,
            changes={field: [before, after]},
            actor=actor,
            actor_email=getattr(actor, "email", None),
            cid=get_cid(),
        )
        for model in models
    )


def log_access_removed(models: Iterable[Any], field: str, removed: Any) -> None:
    """A group or user deleted leaves these models' access list: recorded as auditlog records
    a removal from the list."""
    removed_only = type(removed).objects.filter(pk=removed.pk)
    for model in models:
        LogEntry.objects.log_m2m_changes(removed_only, model, "delete", field)


def log_connection_test(provider: Any, *, typed: Iterable[str], outcome: str) -> None:
    """A connection test with values typed into the form, not saved: which fields were
    typed (never their values) and how it ended, in our own words."""
    changes = {name: [TESTED_STORED, TESTED_TYPED] for name in typed}
    LogEntry.objects.log_create(
        provider,
        action=LogEntry.Action.ACCESS,
        changes={**changes, CONNECTION_TEST: ["", outcome]},
        force_log=True,
    )


def log_reencrypted(provider: Any, fields: Iterable[str]) -> None:
    """Re-encryption under new secrets changes no key: recorded as such."""
    LogEntry.objects.log_create(
        provider,
        action=LogEntry.Action.UPDATE,
        changes={name: [SECRET_SET, "(re-encrypted)"] for name in fields},
        force_log=True,
    )
