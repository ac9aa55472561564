"""Record every change developers' model lists depend on (see ConfigurationVersion and
ConfigurationChange), in the transaction of the change, with what it touched.

Access lists live in join tables a model's save doesn't touch, and deleting a group or a user
empties rows of them without any signal of the model's: those are recorded here too, and the
removal from each list audited.
"""

from __future__ import annotations

from typing import Any


def provider_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A provider saved or deleted."""
    from llmadmin.models import ConfigurationChange, configuration_changed

    configuration_changed(ConfigurationChange.Kind.PROVIDERS, [instance.pk])


def backup_key_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A backup key saved or deleted: its account's calls read their keys again."""
    from django.db.models import Exists, OuterRef

    from llmadmin.models import BackupKey, ConfigurationChange, Provider, configuration_changed

    stored = BackupKey.objects.filter(provider=OuterRef("pk"))
    Provider.objects.filter(pk=instance.provider_id).update(backup_keys_stored=Exists(stored))
    configuration_changed(ConfigurationChange.Kind.PROVIDERS, [instance.provider_id])


def model_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A model saved or deleted."""
    models_changed([instance.pk])


def access_list_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if not reverse:
        models_changed([instance.pk])
    elif pk_set is not None:
        models_changed(pk_set)
    else:
        # A group's or user's lists cleared from their side: which models, nobody said.
        from llmadmin.models import configuration_changed

        configuration_changed()


def models_changed(model_ids: Any) -> None:
    from llmadmin.models import ConfigurationChange, configuration_changed

    configuration_changed(ConfigurationChange.Kind.MODELS, model_ids)


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
        models_changed([model.pk for model in models])
