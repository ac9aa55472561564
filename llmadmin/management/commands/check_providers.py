"""Test every provider account's key and print a table of the results, one line per account.

Usage: manage.py check_providers

Each enabled account with a readable key gets its cheapest free authenticated call; the outcome is
recorded as the admin's "Test connection" does. An account with backup keys has their states
after the reason: how many are ready, cooling down, refused by the provider, or to be entered
again (entered for another address, or unreadable); they are not tested. Exits 1 when any
account's key is rejected.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand
from django.db.models import Prefetch
from django.utils import timezone
from django.utils.text import capfirst

from llmadmin.models import SECRET_FIELDS, BackupKey, KeyFault, Provider, api_key_ids
from llmadmin.selectors import providers_in_registry_order
from llmadmin.services import provider_check_connection

# A backup key's state in a word or two, in the order they are listed.
BACKUP_STATES = ("ready", "cooling down", "refused by the provider", "to enter again")


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args: Any, **options: Any) -> None:
        rows = []
        # Their states only: their secrets are neither loaded nor decrypted.
        backups = Prefetch("backup_keys", queryset=BackupKey.objects.defer(*SECRET_FIELDS))
        for provider in providers_in_registry_order().prefetch_related(backups):
            if not provider.enabled:
                rows.append((provider.label, "disabled", "Not tested." + backup_keys(provider)))
                continue
            status, reason = provider_check_connection(provider=provider)
            rows.append(
                (
                    provider.label,
                    status or provider.key_state.replace("missing", "no key"),
                    capfirst(reason) + backup_keys(provider),
                )
            )
        width = max((len(name) for name, _, _ in rows), default=8)
        self.stdout.write(f"{'Provider':<{width}}  {'Status':<11}  Reason")
        for name, status, reason in rows:
            self.stdout.write(f"{name:<{width}}  {status:<11}  {reason}")
        if any(status == "rejected" for _, status, _ in rows):
            sys.exit(1)


def backup_keys(provider: Provider) -> str:
    """ " Backup keys: 2 ready, 1 cooling down." for an account with backup keys; else ""."""
    now = timezone.now()
    states = Counter(backup_state(backup, provider, now) for backup in provider.backup_keys.all())
    if not states:
        return ""
    counted = ", ".join(f"{states[state]} {state}" for state in BACKUP_STATES if states[state])
    return f" Backup keys: {counted}."


def backup_state(backup: BackupKey, provider: Provider, now: Any) -> str:
    """One of BACKUP_STATES, as BackupKey.state tells it in a sentence."""
    readable = backup.encrypted_with in api_key_ids()
    if backup.entered_for != provider.address or not readable:
        return "to enter again"
    if backup.cooling_reason == KeyFault.REJECTED:
        return "refused by the provider"
    return "cooling down" if backup.cooling(now) else "ready"
