"""Seed each provider type's first account with the type's curated catalog of current models,
once per account.

Usage: manage.py seed_defaults [--keys-from-env]

The accounts themselves are created by migrate, one per type named after it. Idempotent: a
re-run never brings back a model an administrator deleted and never changes their edits. Other
accounts of a type (added in the admin) are never seeded.
With --keys-from-env, the account slugged by its type (the one migrate creates, e.g.
openai-compat), when it has no key, takes it from ANTHROPIC_API_KEY, OPENAI_API_KEY,
GEMINI_API_KEY, AZURE_OPENAI_API_KEY, AWS_BEARER_TOKEN_BEDROCK, OPENAI_COMPATIBLE_API_KEY,
OPENROUTER_API_KEY or AI_GATEWAY_API_KEY; no other account does. Keys are never printed.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from llmadmin.providers import PROVIDER_TYPES
from llmadmin.services import seed_defaults


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--keys-from-env",
            action="store_true",
            help="Take API keys from the environment for the accounts slugged by their type "
            "that have none.",
        )

    def handle(self, *args: Any, keys_from_env: bool, **options: Any) -> None:
        report = seed_defaults(environ=os.environ if keys_from_env else None)
        self.stdout.write(
            f"Catalogs seeded: {len(report.catalogs_seeded)}; "
            f"models created: {len(report.models_created)}."
        )
        for label in report.keys_set:
            self.stdout.write(f"API key set for {label} from the environment.")
        for label, message in report.key_errors:
            self.stderr.write(f"API key for {label} not set: {message}")
        for variable, type_slug in report.keys_unused:
            self.stderr.write(
                f"{variable} not used: it is for the {PROVIDER_TYPES[type_slug].label} account "
                f"slugged {type_slug}, and there is none."
            )
        if report.default:
            self.stdout.write(f"Default model: {report.default}.")
