"""Check every configured model against the catalog and its provider's rules.

Usage: manage.py check_models

Lists models whose settings their provider will refuse, long-context prices the catalog has
and the model lacks, identifiers the catalog doesn't know or marks deprecated, context limits
that differ from the catalog's, and output limits an admin overrode. Exits 1 when any model's
settings would be refused or a long-context price is missing.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand

from llmadmin.models import LLMModel
from llmadmin.selectors import model_findings, registry_position


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args: Any, **options: Any) -> None:
        models = (
            LLMModel.objects.select_related("provider")
            .annotate(registry_position=registry_position("provider__type"))
            .order_by("registry_position", "provider_id", "display_name")
        )
        counts = {"refused": 0, "tier": 0, "unknown": 0, "deprecated": 0, "limits": 0}
        checked = problems = 0
        for model in models:
            checked += 1
            findings = model_findings(model)
            if not findings:
                continue
            self.stdout.write(f"{model.provider.label} / {model.identifier} ({model.display_name})")
            for finding in findings:
                self.stdout.write(f"  {finding.kind}: {finding.message}")
            for kind in {finding.kind for finding in findings}:
                counts[kind] += 1
            problems += any(finding.problem for finding in findings)
        self.stdout.write(
            f"{checked} models checked: {counts['refused']} refused by their provider, "
            f"{counts['tier']} missing a long-context price, "
            f"{counts['unknown']} not in the catalog, {counts['deprecated']} deprecated, "
            f"{counts['limits']} with other limits than the catalog's."
        )
        if problems:
            sys.exit(1)
