"""The list of models developers can chat with, built once per configuration and cached."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import connection
from django.db.models import Count, Q

from chat.serializers import ChatModelSerializer
from llmadmin.models import SECRET_FIELDS, Availability, LLMModel, Provider, api_key_ids
from llmadmin.selectors import models_available_for_chat, providers_in_registry_order


def build_model_list() -> dict[str, Any]:
    """The list payload, from two queries; keys are never loaded, let alone decrypted."""
    providers = list(
        providers_in_registry_order(
            Provider.objects.defer(*SECRET_FIELDS).annotate(
                enabled_models=Count("models", filter=Q(models__enabled=True))
            )
        )
    )
    models = (
        models_available_for_chat(providers)
        .order_by("display_name", "pk")
        .select_related("provider")
        .defer(*(f"provider__{name}" for name in SECRET_FIELDS))
    )
    by_provider: dict[int, list[LLMModel]] = {}
    for model in models:
        by_provider.setdefault(model.provider_id, []).append(model)

    groups, unavailable = [], []
    for provider in providers:
        label = provider.provider_type.label
        if provider.pk in by_provider:
            groups.append(
                {
                    "provider_type": provider.type,
                    "provider_label": label,
                    "models": ChatModelSerializer(by_provider[provider.pk], many=True).data,
                }
            )
        elif provider.enabled_models and provider.availability != Availability.AVAILABLE:
            unavailable.append(
                {
                    "provider_type": provider.type,
                    "provider_label": label,
                    "reason": provider.availability,
                    "model_count": provider.enabled_models,
                }
            )
    default_ids = [m["id"] for g in groups for m in g["models"] if m["is_default"]]
    return {
        "default_model_id": default_ids[0] if default_ids else None,
        "groups": groups,
        "unavailable_providers": unavailable,
    }


def configuration_fingerprint() -> str:
    """Changes with every save or delete of a provider or model, and with key rotation.

    One query, so each process's cache stays right when another process made the change.
    """
    providers, models = Provider._meta.db_table, LLMModel._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT MAX(updated_at) FROM {providers}), "  # noqa: S608 - table names
            f"(SELECT COUNT(*) FROM {providers}), "
            f"(SELECT MAX(updated_at) FROM {models}), "
            f"(SELECT COUNT(*) FROM {models})"
        )
        row = cursor.fetchone()
    state = repr((row, api_key_ids())).encode()
    return hashlib.sha256(state).hexdigest()


# The latest list this process built: (fingerprint, ETag, body). One entry is enough, as
# only the current configuration is ever asked for; swapping a tuple is atomic across threads.
_latest: tuple[str, str, bytes] = ("", "", b"")


def cached_model_list() -> tuple[str, bytes]:
    """The ETag and JSON body of the current model list."""
    global _latest
    fingerprint = configuration_fingerprint()
    latest = _latest
    if latest[0] != fingerprint:
        body = json.dumps(build_model_list(), separators=(",", ":")).encode()
        latest = (fingerprint, f'"{hashlib.sha256(body).hexdigest()[:32]}"', body)
        _latest = latest
    return latest[1], latest[2]
