"""Keep each model's updated_at true to who may use it: the model list's fingerprint reads it.

Access lists live in join tables that a model's save doesn't touch, and deleting a group or a
user empties rows of them without any signal of the model's.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone


def touch_models(pks: Any) -> None:
    from llmadmin.models import LLMModel

    LLMModel.objects.filter(pk__in=pks).update(updated_at=timezone.now())


def access_list_changed(sender: Any, instance: Any, action: str, **kwargs: Any) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        touch_models([instance.pk])


def group_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    from llmadmin.models import LLMModel

    touch_models(LLMModel.allowed_groups.through.objects.filter(group=instance).values("llmmodel"))


def model_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    # The row is gone: its provider's updated_at tells the fingerprint instead of a count.
    from llmadmin.models import Provider

    Provider.objects.filter(pk=instance.provider_id).update(updated_at=timezone.now())


def user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    from llmadmin.models import LLMModel

    touch_models(LLMModel.allowed_users.through.objects.filter(user=instance).values("llmmodel"))
