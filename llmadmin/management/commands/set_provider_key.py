"""Set or remove a provider's API key, read from standard input (never from the command line,
where other users can see it in the process list).

Usage: manage.py set_provider_key TYPE < keyfile
       manage.py set_provider_key TYPE            (prompts without echo on a terminal)
       manage.py set_provider_key TYPE --clear
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
from llmadmin.services import provider_set_api_key


class Command(BaseCommand):
    help = __doc__
    # Tests pass their own input stream.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("type", choices=list(PROVIDER_TYPES), help="Provider type.")
        parser.add_argument("--clear", action="store_true", help="Remove the stored key.")

    @sensitive_variables("api_key")
    def handle(self, *args: Any, type: str, clear: bool, **options: Any) -> None:
        provider, _ = Provider.objects.get_or_create(type=type)
        label = provider.provider_type.label
        stdin = options.get("stdin", sys.stdin)
        if clear:
            api_key = None
        elif stdin.isatty():
            api_key = getpass.getpass(f"API key for {label}: ")
        else:
            # Only the line break that ends the input is not part of the key.
            api_key = stdin.readline().removesuffix("\n").removesuffix("\r")
            if not api_key:
                raise CommandError("No key on standard input; use --clear to remove the key.")
        try:
            provider_set_api_key(provider=provider, api_key=api_key)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(f"API key for {label} {'removed' if clear else 'saved'}.")
