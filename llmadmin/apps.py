from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def create_provider_rows(sender: AppConfig, using: str, **kwargs: Any) -> None:
    """Every type in the registry has its row once the tables exist: one row per type."""
    from llmadmin.services import providers_create_missing

    providers_create_missing(using=using)


class LlmadminConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "llmadmin"
    verbose_name = "LLM providers and models"

    def ready(self) -> None:
        post_migrate.connect(create_provider_rows, sender=self)
