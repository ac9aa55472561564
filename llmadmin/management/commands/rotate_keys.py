"""Re-encrypt every stored API key, backup keys included, with the current secret.

Usage: manage.py rotate_keys

Rotation: put the new SECRET_KEY in place with the old one in SECRET_KEY_FALLBACKS (or put a
new salt first in SALT_KEY, keeping the old one after it), run this command, then remove the
old secret. Reports how many keys it re-encrypted and which it could not decrypt (those are
left as stored and must be set again); exits 1 when any could not be decrypted.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand

from llmadmin.services import providers_reencrypt_keys


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args: Any, **options: Any) -> None:
        report = providers_reencrypt_keys()
        backups = report.backups_reencrypted + report.backups_unreadable
        # Said only where there are any: a deployment without backup keys reads as before.
        also = f" and {len(report.backups_reencrypted)} backup keys" if backups else ""
        self.stdout.write(f"Re-encrypted {len(report.reencrypted)} API keys{also}.")
        unreadable = report.unreadable + report.backups_unreadable
        if unreadable:
            self.stderr.write(
                f"Could not decrypt {len(unreadable)}: {', '.join(unreadable)}. "
                "Restore the old secret and run again, or set these keys again."
            )
            sys.exit(1)
