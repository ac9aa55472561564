"""Make a personal access token for a developer (a service account, a script, CI) and print
its secret, once: it is kept nowhere, only its hash.

Usage: manage.py create_token USERNAME --name NAME [--expires-in DAYS] [--base-url URL]

Prints the secret, then the lines setting the OpenAI and Anthropic clients' environment
(with --base-url, the server's address as clients reach it; else a placeholder).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.views.decorators.debug import sensitive_variables

from gateway.tokens import token_mint
from gateway.views import ANTHROPIC_BASE_PATH, OPENAI_BASE_PATH
from llmadmin.management.arguments import text

# A token lasts at most ten years: past that, "never" says it better.
MAX_DAYS = 3650


def days(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_DAYS:
        raise ValueError(value)
    return int(value)


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", type=text, help="The developer the token acts as.")
        parser.add_argument("--name", type=text, required=True, help="What uses the token.")
        parser.add_argument(
            "--expires-in",
            type=days,
            metavar="DAYS",
            help=f"Days until it expires, 1 to {MAX_DAYS} (default: never).",
        )
        parser.add_argument(
            "--base-url",
            default="https://<this server>",
            help="The server's address as clients reach it, for the printed lines.",
        )

    @sensitive_variables("secret")
    def handle(
        self, *args: Any, username: str, name: str, expires_in: int | None, base_url: str, **_: Any
    ) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user is named {username!r}.")
        if not user.is_active:
            raise CommandError(f"{username!r} is deactivated: their tokens would be refused.")
        try:
            token, secret = token_mint(user=user, name=name, expires_in_days=expires_in)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        base_url = base_url.rstrip("/")
        self.stdout.write(
            f"{secret}\n\n"
            f"OPENAI_BASE_URL={base_url}{OPENAI_BASE_PATH}\nOPENAI_API_KEY={secret}\n"
            f"ANTHROPIC_BASE_URL={base_url}{ANTHROPIC_BASE_PATH}\nANTHROPIC_AUTH_TOKEN={secret}"
        )
        expiry = f"expires {token.expires_at:%Y-%m-%d}" if token.expires_at else "never expires"
        self.stderr.write(f"Token {token} of {username} made; it {expiry}. Shown only this once.")
