"""Import provider accounts and models from a file written by export_config (YAML or JSON).

Usage: manage.py import_config FILE [--dry-run]

An entry names its account (in any case); a name no account has adds an account of the entry's
type. An entry without a name (a file from before accounts) is its type's first account.

Creates and updates what the file lists, in one transaction: on any error nothing is applied,
and every error is reported with its place in the file. --dry-run shows what would change.
Keys are never imported. A file may be at most 1 MiB, and its YAML may not use aliases
(`*name`, `<<: *name`): each value is written out, as export_config writes it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from llmadmin.configuration import ConfigurationError, import_configuration

# Far more than any deployment's providers and models (an export is a few KB).
MAX_FILE_SIZE = 1024 * 1024


class NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases: a few hundred bytes of nested aliases expand to gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None,
                None,
                "aliases (*name) are not accepted: write each value out",
                self.peek_event().start_mark,
            )
        return super().compose_node(parent, index)


# What PyYAML's words quote from the file: a character, a token's name, or all of a tag.
QUOTED = re.compile(r"'([^']*)'")
TOKEN_NAME = re.compile(r"<[a-z ]+>")


def parse_error(error: yaml.YAMLError) -> str:
    """Why and where the file does not parse, in PyYAML's words but for what they quote from
    the file beyond a character: its own message shows the lines around the error, a key
    pasted into the file included (and a tag is quoted whole)."""
    if not isinstance(error, yaml.MarkedYAMLError):
        return "it does not parse"

    def kept(quoted: re.Match[str]) -> str:
        short = len(quoted[1]) <= 2 or TOKEN_NAME.fullmatch(quoted[1])
        return quoted[0] if short else "'…'"

    words = QUOTED.sub(kept, "; ".join(part for part in (error.context, error.problem) if part))
    mark = error.problem_mark or error.context_mark
    return f"{words} at line {mark.line + 1}, column {mark.column + 1}" if mark else words


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="Show changes, apply none.")

    def handle(self, *args: Any, file: Path, dry_run: bool, **options: Any) -> None:
        try:
            with file.open("rb") as stream:
                raw = stream.read(MAX_FILE_SIZE + 1)
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror}.") from None
        if len(raw) > MAX_FILE_SIZE:
            raise CommandError(f"{file} is larger than 1 MiB: not read.")
        try:
            # YAML is a superset of JSON: one parser reads both.
            data = yaml.load(raw.decode(), Loader=NoAliasLoader)  # noqa: S506 (a SafeLoader)
        except UnicodeDecodeError:
            raise CommandError(f"{file} is not UTF-8 text.") from None
        except yaml.YAMLError as error:
            raise CommandError(f"{file} is not valid YAML or JSON: {parse_error(error)}.") from None
        except RecursionError:
            raise CommandError(f"{file} nests lists or mappings too deeply.") from None
        except ValueError:  # PyYAML's own values: a date that doesn't exist, a 5,000-digit number
            raise CommandError(
                f"{file} holds a value that can't be read: a date that doesn't exist, or a "
                "number of more than 4,300 digits."
            ) from None
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
