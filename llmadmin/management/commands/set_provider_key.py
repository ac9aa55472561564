"""Set or remove a provider account's API key, read from standard input (never from the
command line, where other users can see it in the process list).

Usage: manage.py set_provider_key TYPE [--account NAME] < keyfile
       manage.py set_provider_key TYPE [--account NAME]   (prompts without echo on a terminal)
       manage.py set_provider_key TYPE [--account NAME] --clear

Without --account, the type's first account (the one named after the type unless renamed).
"""

from __future__ import annotations

import getpass
import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.views.decorators.debug import sensitive_variables

from llmadmin.models import Provider
from llmadmin.providers import PROVIDER_TYPES
from llmadmin.providers.base import brief
from llmadmin.selectors import first_account, provider_named
from llmadmin.services import provider_set_api_key


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
        parser.add_argument("--clear", action="store_true", help="Remove the stored key.")

    @sensitive_variables("api_key")
    def handle(
        self, *args: Any, type: str, account: str | None, clear: bool, **options: Any
    ) -> None:
        provider = self.account(type, account)
        stdin = options.get("stdin", sys.stdin)
        if clear:
            api_key = None
        elif stdin.isatty():
            api_key = getpass.getpass(f"API key for {provider.label}: ")
        else:
            # Only the line break that ends the input is not part of the key.
            api_key = stdin.readline().removesuffix("\n").removesuffix("\r")
            if not api_key:
                raise CommandError("No key on standard input; use --clear to remove the key.")
        try:
            provider_set_api_key(provider=provider, api_key=api_key)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(f"API key for {provider.label} {'removed' if clear else 'saved'}.")

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
