"""Set or remove a provider account's API key, or one of its backup keys, read from standard
input (never from the command line, where other users can see it in the process list and it
stays in the shell's history).

Usage: manage.py set_provider_key TYPE [--account NAME] < keyfile
       manage.py set_provider_key TYPE [--account NAME]   (prompts without echo on a terminal)
       manage.py set_provider_key TYPE [--account NAME] --clear
       manage.py set_provider_key TYPE [--account NAME] --backup KEYNAME [--clear] [< keyfile]

Without --account, the type's first account (the one named after the type unless renamed).
With --backup, the account's backup key of that name (in any case): replaced when it has one,
else added after its other backup keys; entered for the account's address as it is now, and
tried again if it was left out. --clear with --backup deletes that backup key. A backup key
is an API key: an account signing in with IAM access keys gets its backup keys in the admin.
"""

from __future__ import annotations

import getpass
import re
import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.text import capfirst
from django.views.decorators.debug import sensitive_variables

from llmadmin.models import BackupKey, Provider
from llmadmin.providers import PROVIDER_TYPES
from llmadmin.providers.base import brief
from llmadmin.selectors import first_account, provider_named
from llmadmin.services import (
    backup_key_delete,
    backup_key_label,
    backup_key_set,
    provider_set_api_key,
)

# A name is a few words; a key's random part is a long run of letters and digits.
LIKE_A_KEY = re.compile(r"[A-Za-z0-9+/=]{24,}")


class Command(BaseCommand):
    help = __doc__
    # Tests pass their own input stream.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("type", choices=list(PROVIDER_TYPES), help="Provider type.")
        parser.add_argument(
            "--account",
            metavar="NAME",
            help="The account of this name (in any case); without it, the type's first account.",
        )
        parser.add_argument(
            "--backup",
            metavar="KEYNAME",
            help="The account's backup key of this name (in any case), added when it has none.",
        )
        parser.add_argument("--clear", action="store_true", help="Remove the stored key.")

    @sensitive_variables("api_key", "backup")
    def handle(
        self,
        *args: Any,
        type: str,
        account: str | None,
        backup: str | None,
        clear: bool,
        **options: Any,
    ) -> None:
        if backup is not None and not backup:
            raise CommandError("--backup takes the backup key's name: it is found again by it.")
        if backup is not None and LIKE_A_KEY.search(backup):
            # Never repeated: it may be the key, and would be shown wherever names are.
            raise CommandError(
                "--backup takes the backup key's name, and this reads like a key: the key is "
                "read from standard input, never from the command line. If it was a key, it is "
                "in your shell's history now: replace it at the provider."
            )
        provider = self.account(type, account)
        if backup is not None and clear:
            self.delete_backup_key(provider, backup)
            return
        stdin = options.get("stdin", sys.stdin)
        prompt = "API key" if backup is None else f"Backup key {brief(backup)}"
        try:
            if clear:
                api_key = None
            elif stdin.isatty():
                api_key = getpass.getpass(f"{prompt} for {provider.label}: ")
            else:
                # Only the line break that ends the input is not part of the key.
                api_key = stdin.readline().removesuffix("\n").removesuffix("\r")
                if not api_key:
                    raise CommandError("No key on standard input; use --clear to remove the key.")
        except UnicodeDecodeError:
            raise CommandError("The key is not UTF-8 text: nothing was saved.") from None
        if backup is not None:
            self.set_backup_key(provider, backup, api_key or "")
            return
        try:
            provider_set_api_key(provider=provider, api_key=api_key)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(f"API key for {provider.label} {'removed' if clear else 'saved'}.")

    @sensitive_variables("api_key")
    def set_backup_key(self, provider: Provider, name: str, api_key: str) -> None:
        try:
            backup, added = backup_key_set(provider=provider, name=name, api_key=api_key)
        except ValidationError as error:
            raise CommandError(field_errors(error)) from None
        done = "added" if added else "replaced"
        self.stdout.write(f"{capfirst(backup_key_label(backup))} {done}.")

    def delete_backup_key(self, provider: Provider, name: str) -> None:
        deleted = backup_key_delete(provider=provider, name=name)
        if deleted is None:
            names = provider.backup_keys.exclude(name="").values_list("name", flat=True)
            unnamed = provider.backup_keys.filter(name="").count()
            listed = [*names, *([f"{unnamed} without a name (admin only)"] if unnamed else [])]
            raise CommandError(
                f"{provider.label} has no backup key named {brief(name)}. "
                f"Its backup keys: {', '.join(listed) or 'none'}."
            )
        self.stdout.write(f"{capfirst(backup_key_label(deleted))} deleted.")

    def account(self, type: str, name: str | None) -> Provider:
        """The account named, or the type's first; never creates one (the admin adds them)."""
        provider = first_account(type) if name is None else provider_named(name)
        if provider is not None and provider.type == type:
            return provider
        label = PROVIDER_TYPES[type].label
        if name is None:
            raise CommandError(f"{label} has no account: add one in the admin.")
        names = Provider.objects.filter(type=type).order_by("pk").values_list("name", flat=True)
        other = f" (that account's type is {provider.provider_type.label})" if provider else ""
        raise CommandError(
            f"No {label} account is named {brief(name)}{other}. "
            f"{label} accounts: {', '.join(names) or 'none'}."
        )


def field_errors(error: ValidationError) -> str:
    """A backup key's errors, each after the label of its field ("Name: …"): the name and
    the key are both typed here."""
    if not hasattr(error, "error_dict"):
        return " ".join(error.messages)
    labels = {field.name: f"{capfirst(field.verbose_name)}: " for field in BackupKey._meta.fields}
    return " ".join(
        labels.get(name, "") + message
        for name, messages in error.message_dict.items()
        for message in messages
    )
