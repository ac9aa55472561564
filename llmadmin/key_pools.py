"""An account's keys as calls use them: its own key first, then its backup keys in order.

A call that fails before its answer began in a way another key may not (KEY_FAULTS: refused,
rate-limited, out of credit, the provider failing, no connection) cools its key down and is
tried once more on the next key not cooling (a key that may not call this model is tried on
the next without cooling: it may call others). Cooldowns are rows in the database, so every
process and machine leaves the same keys out. An account without backup keys reads and writes
none of this.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.db.models import BigIntegerField, F, QuerySet, Value
from django.utils import timezone

from llmadmin.models import BackupKey, KeyFault, Provider
from llmadmin.providers.errors import NO_PERMISSION, KeyRejected, ProviderError, keys_cooling

logger = logging.getLogger(__name__)

# The failover log's words for a fault that doesn't cool the key (KeyFault's label otherwise).
FAULT_WORDS = {NO_PERMISSION: "may not call this model"}
# A key's last use is written at most this often: a busy key is not a write per call.
LAST_USED_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class PoolKey:
    """One key of an account's pool, as a call tries it."""

    # A backup key's order (BackupKey.position), as the admin sees it; 0 for the account's own
    # key, which comes first.
    position: int
    # The BackupKey's id; None for the account's own key.
    backup_id: int | None
    credentials: dict[str, str] = field(repr=False)
    # The backup key's name, when it has one: for the log, beside its position.
    name: str = ""
    last_used_at: datetime | None = None
    # Its row's updated_at when read: a cooldown or use is written only while it holds the
    # key the call sent, not one an admin has pasted since.
    stored_at: datetime | None = None

    @property
    def label(self) -> str:
        if self.backup_id is None:
            return "its own key"
        return f"backup key {self.position}" + (f" ({self.name})" if self.name else "")


def pool_of(provider: Provider) -> list[PoolKey]:
    """The account's keys that calls may send, in order: its own when set, then each backup
    key stored, readable and entered for its address (one query, for the backup keys)."""
    own = provider.credentials()
    keys = [PoolKey(0, None, own, stored_at=provider.updated_at)] if own else []
    for backup in provider.backup_keys.all():
        credentials = backup.credentials(provider)
        if credentials:
            keys.append(
                PoolKey(
                    backup.position,
                    backup.pk,
                    credentials,
                    backup.name,
                    stored_at=backup.updated_at,
                )
            )
    return keys


def keys_to_try(provider: Provider, pool: list[PoolKey]) -> list[PoolKey]:
    """The pool's keys not cooling down, in order, as every process sees them now (one
    query). Raises keys_cooling() with when to try again when all are; KeyRejected when all
    were refused (an admin must act)."""
    own = (
        Provider.objects.filter(pk=provider.pk)
        .annotate(backup=Value(0, output_field=BigIntegerField()))
        .values_list("backup", "cooling_until", "cooling_reason", "last_used_at")
        .order_by()
    )
    backups = (
        BackupKey.objects.filter(pk__in=[key.backup_id for key in pool if key.backup_id])
        .annotate(backup=F("pk"))
        .values_list("backup", "cooling_until", "cooling_reason", "last_used_at")
        .order_by()
    )
    uses = {backup or None: rest for backup, *rest in own.union(backups, all=True)}
    now = timezone.now()
    ready, ends = [], []
    for key in pool:
        cooling_until, reason, last_used_at = uses.get(key.backup_id, (None, "", None))
        if reason == KeyFault.REJECTED:
            continue
        if cooling_until and cooling_until > now:
            ends.append(cooling_until)
            continue
        ready.append(replace(key, last_used_at=last_used_at))
    if ready:
        return ready
    if not ends:
        refused = KeyRejected(
            "Every key of this account was refused by the provider: an administrator must "
            "replace them or let them be tried again."
        )
        refused.unsent = True
        raise refused
    raise keys_cooling(max(1, round((min(ends) - now).total_seconds() + 0.5)))


def key_cool(provider: Provider, key: PoolKey, error: ProviderError) -> None:
    """Leave the key out after `error`: a refused key until an admin acts, any other for
    the provider's Retry-After, else the account's key cooldown."""
    if error.key_fault not in KeyFault.values:
        return  # it may call the account's other models (NO_PERMISSION)
    now = timezone.now()
    rows = key_rows(provider, key)
    if error.key_fault == KeyFault.REJECTED:
        until = None
    else:
        until = now + timedelta(seconds=error.retry_after or provider.key_cooldown)
        # A refusal another call wrote meanwhile stands: a key refused is out until an admin
        # acts, not until a rate limit's end.
        rows = rows.exclude(cooling_reason=KeyFault.REJECTED)
    rows.update(cooling_until=until, cooling_reason=error.key_fault)


def key_use_due(key: PoolKey) -> bool:
    """Whether the key's use is to be noted: at most once a minute."""
    return key.last_used_at is None or timezone.now() - key.last_used_at >= LAST_USED_EVERY


def key_used(provider: Provider, key: PoolKey) -> None:
    key_rows(provider, key).update(last_used_at=timezone.now())


def key_rows(provider: Provider, key: PoolKey) -> QuerySet[Any]:
    """The key's row while it holds the key the call sent (not saved since it was read)."""
    if key.backup_id is None:
        return Provider.objects.filter(pk=provider.pk, updated_at=key.stored_at)
    return BackupKey.objects.filter(pk=key.backup_id, provider=provider, updated_at=key.stored_at)


def failover_log(
    provider: Provider, failed: PoolKey, error: ProviderError, next_key: PoolKey
) -> None:
    """Each failover in our words (the fault's name, never the provider's text)."""
    logger.warning(
        "%s: %s failed (%s) before its answer began; trying %s.",
        provider.label,
        failed.label,
        FAULT_WORDS.get(error.key_fault) or KeyFault(error.key_fault).label.lower(),
        next_key.label,
    )
