"""The audit of admin changes, kept by django-auditlog: field-level before and after of every
provider and model change, access lists included, with who made it.

Secrets are never recorded: a key's entry says only whether one was set before and after
("(set)" twice reads as changed). Writes that bypass save() (bulk enable/disable, the default
unset by a new default, re-encryption) are recorded here explicitly.

Entries keep field names and stored values (ids, choice keys); readable_changes() shows them
as people read them: the fields' labels, and names, choice labels, Yes/No for the values.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from auditlog.cid import get_cid
from auditlog.context import disable_auditlog
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist
from django.db import models as db
from django.utils.text import capfirst

from llmadmin.money import usd

SECRET_SET, SECRET_UNSET = "(set)", "(none)"
# Fields holding an amount of USD (budgets, caps), shown as money is; a price is per million
# tokens, a rate rather than an amount.
AMOUNTS = ("monthly_allowance", "monthly_cap")
# A model's access lists: who may use it when it is restricted.
ACCESS_LISTS = ("allowed_groups", "allowed_users")
# A connection test's entry: each typed field, then the outcome.
TESTED_STORED, TESTED_TYPED = "(stored)", "(typed for a test, not saved)"
CONNECTION_TEST = "connection test"
# Noise, not changes: timestamps and the outcome of connection tests.
NOT_AUDITED = ["created_at", "updated_at", "check_status", "check_reason", "checked_at"]
# A key's use and cooldown: written by calls (with update(), unseen here), not by admins.
KEY_USE = ["last_used_at", "cooling_until", "cooling_reason"]
# An admin's "Try again" on a key cooling down: the cooldown it cleared.
TRIED_AGAIN, CLEARED = "try again", "Cleared"
ENTERED_AGAIN = "pasted again"
SENT_ANEW = "The same key, sent to the account's address as it is now and tried again"


def not_a_change(model: type[db.Model]) -> list[str]:
    """The id and the relations kept on other rows (a model's price history), which auditlog
    would list on create and delete as "None → 22" and "None → billing.ModelPrice.None"."""
    return [
        model._meta.pk.name,
        *(
            field.name
            for field in model._meta.get_fields()
            if field.auto_created and not field.concrete
        ),
    ]


def secret_state(value: str) -> str:
    """auditlog's mask for secrets: whether one is set, never any part of it."""
    return SECRET_UNSET if value in ("", "None") else SECRET_SET


def register(provider: type, model: type, secret_fields: Iterable[str]) -> None:
    """Audit the provider and model classes (given: the models module logs through here)."""
    auditlog.register(
        provider,
        exclude_fields=[
            *NOT_AUDITED,
            *KEY_USE,
            *not_a_change(provider),
            "api_key_encrypted_with",
            "catalog_seeded",
        ],
        mask_fields=[*secret_fields, "aws_access_key_id"],
        mask_callable="llmadmin.audit.secret_state",
    )
    auditlog.register(
        model,
        exclude_fields=[*NOT_AUDITED, *not_a_change(model)],
        m2m_fields=set(ACCESS_LISTS),
    )
    # Joining or leaving a group changes which kept models a user gets: an access change too.
    # Only what decides access is recorded: never the password hash, nor each login's time.
    auditlog.register(
        get_user_model(),
        include_fields=["username", "is_active", "is_staff", "is_superuser"],
        m2m_fields={"groups"},
    )


def register_backup_keys(backup_key: type, secret_fields: Iterable[str]) -> None:
    """An account's backup keys: added, renamed, reordered, replaced, deleted; their secrets
    masked as the account's own (a key typed again reads "(set)" twice)."""
    auditlog.register(
        backup_key,
        exclude_fields=[
            *NOT_AUDITED,
            *KEY_USE,
            *not_a_change(backup_key),
            # Which encryption key, which address: digests, read by no one.
            "encrypted_with",
            "entered_for",
        ],
        mask_fields=[*secret_fields, "aws_access_key_id"],
        mask_callable="llmadmin.audit.secret_state",
    )


def register_budgets(*budget_models: type) -> None:
    """Budgets and limits are admin changes too: who gave whom how much, and how fast."""
    for budget_model in budget_models:
        auditlog.register(budget_model, exclude_fields=not_a_change(budget_model))


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


def log_tried_again(key: Any, *, was: str) -> None:
    """An admin's Try again on a key cooling down (an account's own or a backup key): the
    cooldown it cleared, in our words."""
    LogEntry.objects.log_create(
        key, action=LogEntry.Action.UPDATE, changes={TRIED_AGAIN: [was, CLEARED]}, force_log=True
    )


def log_entered_again(key: Any) -> None:
    """A backup key pasted again as it was: no change auditlog sees, but it is sent anew (to
    the account's address as it is now, its cooldown cleared)."""
    LogEntry.objects.log_create(
        key,
        action=LogEntry.Action.UPDATE,
        changes={ENTERED_AGAIN: ["", SENT_ANEW]},
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


def access_lists(model: Any) -> dict[str, list[str]]:
    """The names on each of a model's access lists, sorted."""
    return {name: sorted(str(item) for item in getattr(model, name).all()) for name in ACCESS_LISTS}


@contextmanager
def access_lists_in_the_save_entry(model: Any, *, since: int) -> Iterator[None]:
    """Record the access lists a save changes in that save's entry, as the names before and
    after: auditlog would add an entry per list and per add or removal.

    since: the last entry's pk before the save (its entry, when it changed a field, is after).
    """
    before = access_lists(model)
    with disable_auditlog():
        yield
    after = access_lists(model)
    changes = {
        name: [before[name], after[name]] for name in ACCESS_LISTS if before[name] != after[name]
    }
    if not changes:
        return
    content_type = ContentType.objects.get_for_model(model)
    entry = (
        LogEntry.objects.filter(pk__gt=since, content_type=content_type, object_id=model.pk)
        .order_by("pk")
        .first()
    )
    if entry is None:
        LogEntry.objects.log_create(model, action=LogEntry.Action.UPDATE, changes=changes)
    else:
        entry.changes = {**entry.changes, **changes}
        entry.save(update_fields=["changes"])


def latest_entry_pk() -> int:
    return LogEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def labelled_changes(entry: LogEntry) -> list[tuple[str, Any, Any]]:
    """The entry's changes as (the field's label, the field or None, the change as recorded),
    without what isn't a change; in the model's field order (auditlog records them in a set's
    order, which differs from one process to the next), the rest after, as recorded."""
    model = entry.content_type.model_class()
    order = (
        {field.name: index for index, field in enumerate(model._meta.get_fields())} if model else {}
    )
    changes = sorted(
        (entry.changes_dict or {}).items(), key=lambda item: order.get(item[0], len(order))
    )
    found = []
    for name, change in changes:
        try:
            field = model._meta.get_field(name) if model else None
        except FieldDoesNotExist:
            field = None  # ours ("connection test"), or a field since removed
        if field is not None and name in not_a_change(model):
            continue  # recorded before these were left out
        label = capfirst(str(field.verbose_name if field is not None else name.replace("_", " ")))
        found.append((label, field, change))
    return found


def readable_changes(
    entry: LogEntry, names: dict[tuple[type, Any], str] | None = None
) -> list[tuple[str, str, str]]:
    """The entry's changes as (label, before, after), in the values an admin reads.

    names: the related objects' names already looked up (an export shares them across entries).
    """
    names = {} if names is None else names
    rows = []
    for label, field, change in labelled_changes(entry):
        if isinstance(change, dict) and change.get("type") == "m2m":
            # auditlog's own: an addition to or removal from a list.
            verb = "added" if change["operation"] == "add" else "removed"
            rows.append((label, "", f"{verb} {', '.join(change['objects'])}"))
        else:
            before, after = change
            rows.append((label, shown(field, before, names), shown(field, after, names)))
    return rows


def shown(field: Any, value: Any, names: dict[tuple[type, Any], str]) -> str:
    """A recorded value as the admin's pages show it; a masked secret stays as recorded."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if field is None:
        return str(value)
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(field, db.BooleanField) or isinstance(value, bool):
        return "Yes" if value in (True, "True") else "No"
    if field.many_to_one or field.one_to_one:
        return related_name(field.related_model, value, names)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if field.name in AMOUNTS:
        return usd(Decimal(str(value)))
    return str(value)


def related_name(related: type[db.Model], pk: Any, names: dict[tuple[type, Any], str]) -> str:
    """A related object's name as it is now, or that it is gone."""
    if (related, pk) not in names:
        names.update(related_names(related, [pk]))
    return names[related, pk]


def related_names(related: type[db.Model], pks: Iterable[Any]) -> dict[tuple[type, Any], str]:
    """The names of these objects as they are now, or that they are gone: one query."""
    pks = set(pks)
    # Their secrets (the audit's masked fields) are neither needed nor loaded.
    masked = auditlog.get_model_fields(related)["mask_fields"] if auditlog.contains(related) else []
    found = {
        str(obj.pk): str(obj) for obj in related._default_manager.filter(pk__in=pks).defer(*masked)
    }
    return {(related, pk): found.get(str(pk), f"#{pk} (deleted)") for pk in pks}


def entries_related_names(entries: Iterable[LogEntry]) -> dict[tuple[type, Any], str]:
    """The names of every object the entries' changes point at, for readable_changes: one
    query per kind of object (an export reads thousands of entries)."""
    wanted: dict[type[db.Model], set[Any]] = defaultdict(set)
    for entry in entries:
        for _, field, change in labelled_changes(entry):
            if field is not None and (field.many_to_one or field.one_to_one):
                wanted[field.related_model].update(value for value in change if value is not None)
    names: dict[tuple[type, Any], str] = {}
    for related, pks in wanted.items():
        names.update(related_names(related, pks))
    return names
