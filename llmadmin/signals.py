"""Keep each model's updated_at true to who may use it: the model list's fingerprint reads it.

Access lists live in join tables that a model's save doesn't touch, and deleting a group or a
user empties rows of them without any signal of the model's.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone


def touch_models(pks: Any) -> None:
    """Bump these models' updated_at (pks: ids, or a subquery of them)."""
    from llmadmin.models import LLMModel

    LLMModel.objects.filter(pk__in=pks).update(updated_at=timezone.now())


def access_list_changed(sender: Any, instance: Any, action: str, **kwargs: Any) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        touch_models([instance.pk])


def group_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    listed_in(instance, "allowed_groups", group=instance)


def model_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    # The row is gone: its provider's updated_at tells the fingerprint instead of a count.
    from llmadmin.models import Provider

    Provider.objects.filter(pk=instance.provider_id).update(updated_at=timezone.now())


def user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    listed_in(instance, "allowed_users", user=instance)


def listed_in(deleted: Any, field: str, **row: Any) -> None:
    """A group or user about to go leaves the access lists naming it: audited on each model,
    and the models touched."""
    from llmadmin import audit
    from llmadmin.models import LLMModel

    through = getattr(LLMModel, field).through
    models = list(LLMModel.objects.filter(pk__in=through.objects.filter(**row).values("llmmodel")))
    audit.log_access_removed(models, field, deleted)
    touch_models([model.pk for model in models])
