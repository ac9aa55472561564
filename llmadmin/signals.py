"""Count every change developers' model lists depend on (see ConfigurationVersion), in the
transaction of the change.

Access lists live in join tables a model's save doesn't touch, and deleting a group or a user
empties rows of them without any signal of the model's: those are counted here too, and the
removal from each list audited.
"""

from __future__ import annotations

from typing import Any


def counted(sender: Any, **kwargs: Any) -> None:
    """A provider or model saved or deleted."""
    from llmadmin.models import configuration_changed

    configuration_changed()


def access_list_changed(sender: Any, instance: Any, action: str, **kwargs: Any) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        counted(sender)


def group_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    listed_in(instance, "allowed_groups", group=instance)


def user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    listed_in(instance, "allowed_users", user=instance)


def listed_in(deleted: Any, field: str, **row: Any) -> None:
    """A group or user about to go leaves the access lists naming it."""
    from llmadmin import audit
    from llmadmin.models import LLMModel

    through = getattr(LLMModel, field).through
    models = list(LLMModel.objects.filter(pk__in=through.objects.filter(**row).values("llmmodel")))
    if models:
        audit.log_access_removed(models, field, deleted)
        counted(sender=None)
