from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate, post_save


def guard_the_ledger(sender: AppConfig, using: str, **kwargs: Any) -> None:
    """SQLite drops a table's triggers when a migration rebuilds the table: the one refusing
    to change a usage record (migration 0007) is put back after every migrate. PostgreSQL
    keeps its trigger through ALTER TABLE."""
    connection = connections[using]
    if connection.vendor != "sqlite":
        return
    if "llmadmin_usagerecord" not in connection.introspection.table_names():
        return  # migrated back before the ledger
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TRIGGER IF NOT EXISTS llmadmin_usage_record_immutable BEFORE UPDATE "
            "ON llmadmin_usagerecord BEGIN "
            "SELECT RAISE(ABORT, 'usage records are never changed'); END"
        )


class BillingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billing"
    verbose_name = "Usage and budgets"

    def ready(self) -> None:
        from billing.ledger import price_history_add
        from billing.models import DeveloperLimits, GroupBudget, GroupLimits, UserBudget
        from llmadmin import audit
        from llmadmin.models import LLMModel

        post_migrate.connect(guard_the_ledger, sender=self)
        post_save.connect(price_history_add, sender=LLMModel)
        audit.register_budgets(GroupBudget, UserBudget, GroupLimits, DeveloperLimits)
