"""Export provider accounts (never their keys) and their models, to review or reproduce a
deployment.

Usage: manage.py export_config [--format yaml|json] [--output FILE]

Without --output it writes to standard output. The format follows the output file's
extension (.json, .yaml, .yml) unless --format says otherwise; the default is YAML.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandParser

from llmadmin.configuration import export_configuration


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=["yaml", "json"])
        parser.add_argument("--output", type=Path)

    def handle(self, *args: Any, format: str | None, output: Path | None, **options: Any) -> None:
        if format is None:
            format = "json" if output and output.suffix == ".json" else "yaml"
        data = export_configuration()
        if format == "json":
            text = json.dumps(data, indent=2) + "\n"
        else:
            text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        if output:
            output.write_text(text)
            self.stderr.write(f"Wrote {output}.")
        else:
            self.stdout.write(text, ending="")
