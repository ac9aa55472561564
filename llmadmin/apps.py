from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.db.models.signals import (
    m2m_changed,
    post_delete,
    post_migrate,
    post_save,
    pre_delete,
)


def create_provider_rows(
    sender: AppConfig, using: str, apps: Apps = global_apps, **kwargs: Any
) -> None:
    """Every type in the registry has an account once the tables exist: a type without one
    gets one named after the type (and slugged by it), as the provider list shows every type.

    migrate passes the migrated state's models; flush (tests) sends no `apps`.
    """
    from llmadmin.providers import PROVIDER_TYPES

    try:
        # The model as the migrations left it: migrated back to zero, there is none.
        provider_model = apps.get_model("llmadmin", "Provider")
    except LookupError:
        return
    accounts = provider_model.objects.using(using)
    existing = set(accounts.values_list("type", flat=True))
    missing = [slug for slug in PROVIDER_TYPES if slug not in existing]
    if not missing:
        return
    if not any(field.name == "slug" for field in provider_model._meta.fields):
        # Migrated back to before accounts: one row per type.
        accounts.bulk_create([provider_model(type=slug) for slug in missing])
        return
    names = {name.casefold() for name in accounts.values_list("name", flat=True)}
    slugs = set(accounts.values_list("slug", flat=True))
    created = []
    for slug in missing:
        # An account of another type may have taken the type's own name or slug.
        name = unused(PROVIDER_TYPES[slug].label, " ", names, str.casefold)
        created.append(provider_model(type=slug, name=name, slug=unused(slug, "-", slugs)))
    accounts.bulk_create(created)


def unused(wanted: str, separator: str, taken: set[str], key: Any = str) -> str:
    """`wanted`, else it with the first free number (" 2", "-3"…); taken then holds it."""
    candidate, number = wanted, 1
    while key(candidate) in taken:
        number += 1
        candidate = f"{wanted}{separator}{number}"
    taken.add(key(candidate))
    return candidate


class LlmadminConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "llmadmin"
    verbose_name = "LLM providers and models"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        from llmadmin import audit, signals
        from llmadmin.models import SECRET_FIELDS, BackupKey, LLMModel, Provider

        post_migrate.connect(create_provider_rows, sender=self)
        audit.register(Provider, LLMModel, SECRET_FIELDS)
        audit.register_backup_keys(BackupKey, SECRET_FIELDS)
        post_save.connect(signals.provider_changed, sender=Provider)
        post_delete.connect(signals.provider_changed, sender=Provider)
        post_save.connect(signals.backup_key_changed, sender=BackupKey)
        post_delete.connect(signals.backup_key_changed, sender=BackupKey)
        post_save.connect(signals.model_changed, sender=LLMModel)
        post_delete.connect(signals.model_changed, sender=LLMModel)
        # Django sends no save or delete signal of the join tables' own rows (auto-created
        # models): their changes are seen through m2m_changed and the deletions below.
        for through in (LLMModel.allowed_groups.through, LLMModel.allowed_users.through):
            m2m_changed.connect(signals.access_list_changed, sender=through)
        pre_delete.connect(signals.group_deleted, sender=Group)
        pre_delete.connect(signals.user_deleted, sender=get_user_model())
