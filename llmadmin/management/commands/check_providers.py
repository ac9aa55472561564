"""Test every provider account's key and print a table of the results, one line per account.

Usage: manage.py check_providers

Each enabled account with a readable key gets its cheapest free authenticated call; the outcome is
recorded as the admin's "Test connection" does. Exits 1 when any key is rejected.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand
from django.utils.text import capfirst

from llmadmin.selectors import providers_in_registry_order
from llmadmin.services import provider_check_connection


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args: Any, **options: Any) -> None:
        rows = []
        for provider in providers_in_registry_order():
            if not provider.enabled:
                rows.append((provider.label, "disabled", "Not tested."))
                continue
            status, reason = provider_check_connection(provider=provider)
            rows.append(
                (
                    provider.label,
                    status or provider.key_state.replace("missing", "no key"),
                    capfirst(reason),
                )
            )
        width = max((len(name) for name, _, _ in rows), default=8)
        self.stdout.write(f"{'Provider':<{width}}  {'Status':<11}  Reason")
        for name, status, reason in rows:
            self.stdout.write(f"{name:<{width}}  {status:<11}  {reason}")
        if any(status == "rejected" for _, status, _ in rows):
            sys.exit(1)
