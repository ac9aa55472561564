"""Import providers and models from a file written by export_config (YAML or JSON).

Usage: manage.py import_config FILE [--dry-run]

Creates and updates what the file lists, in one transaction: on any error nothing is applied,
and every error is reported with its place in the file. --dry-run shows what would change.
Keys are never imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from llmadmin.configuration import ConfigurationError, import_configuration


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="Show changes, apply none.")

    def handle(self, *args: Any, file: Path, dry_run: bool, **options: Any) -> None:
        try:
            # YAML is a superset of JSON: one parser reads both.
            data = yaml.safe_load(file.read_text())
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror}.") from None
        except yaml.YAMLError as error:
            raise CommandError(f"{file} is not valid YAML or JSON: {error}") from None
        try:
            changes = import_configuration(data, dry_run=dry_run)
        except ConfigurationError as error:
            for message in error.errors:
                self.stderr.write(f"{file}: {message}")
            raise CommandError(f"{len(error.errors)} errors: nothing was applied.") from None
        for change in changes:
            self.stdout.write(change)
        if dry_run:
            self.stdout.write(f"Dry run: {len(changes)} changes, none applied.")
        else:
            self.stdout.write(f"Applied {len(changes)} changes.")
