"""The list of models developers can chat with: built once per configuration and process, then
cut per access scope (the developer's groups) and cached with its own ETag."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser

from llmadmin.models import (
    SECRET_FIELDS,
    Availability,
    LLMModel,
    Provider,
    api_key_ids,
    configuration_version,
)
from llmadmin.selectors import access_lists, providers_in_registry_order

# A model as the list gives it; read with .values(), no ORM objects (10,000 models: 22 ms).
MODEL_FIELDS = ("id", "identifier", "display_name", "provider_id", "context_limit", "is_default")
# Distinct scopes kept per configuration and process; past that, the oldest goes.
MAX_SCOPES = 1024


@dataclass
class Configuration:
    """Every enabled model with who may use it, for one fingerprint; cut per scope."""

    fingerprint: str
    providers: list[dict[str, Any]]
    # By provider id: enabled models of available providers, in display order.
    models: dict[int, list[dict[str, Any]]]
    # By provider id: (model id, restricted) of enabled models of unavailable providers.
    unavailable: dict[int, list[tuple[int, bool]]]
    restricted: set[int]
    allowed_groups: dict[int, set[int]]
    allowed_users: dict[int, set[int]]
    # The groups and users some model lists: only these make two developers' lists differ.
    listed_groups: frozenset[int]
    listed_users: frozenset[int]
    # (ETag, body) by scope.
    lists: dict[tuple[frozenset[int], int | None], tuple[str, bytes]] = field(default_factory=dict)
    lists_lock: threading.Lock = field(default_factory=threading.Lock)

    def scope(self, user_id: int, group_ids: set[int]) -> tuple[frozenset[int], int | None]:
        """What decides this developer's list: developers with the same scope share it."""
        return (
            frozenset(group_ids) & self.listed_groups,
            user_id if user_id in self.listed_users else None,
        )

    def usable(self, model_id: int, scope: tuple[frozenset[int], int | None]) -> bool:
        if model_id not in self.restricted:
            return True
        groups, user_id = scope
        return bool(groups & self.allowed_groups.get(model_id, set())) or (
            user_id is not None and user_id in self.allowed_users.get(model_id, set())
        )

    def model_list(self, scope: tuple[frozenset[int], int | None]) -> dict[str, Any]:
        groups, unavailable = [], []
        for provider in self.providers:
            models = [
                {
                    "id": model["id"],
                    "identifier": model["identifier"],
                    "display_name": model["display_name"],
                    "provider_type": provider["type"],
                    "provider_label": provider["label"],
                    "context_limit": model["context_limit"],
                    "is_default": model["is_default"],
                }
                for model in self.models.get(provider["id"], [])
                if self.usable(model["id"], scope)
            ]
            if models:
                groups.append(
                    {
                        "provider_type": provider["type"],
                        "provider_label": provider["label"],
                        "models": models,
                    }
                )
                continue
            hidden = [
                model_id
                for model_id, _ in self.unavailable.get(provider["id"], [])
                if self.usable(model_id, scope)
            ]
            if hidden:
                unavailable.append(
                    {
                        "provider_type": provider["type"],
                        "provider_label": provider["label"],
                        "reason": provider["availability"],
                        "model_count": len(hidden),
                    }
                )
        offered = [model for group in groups for model in group["models"]]
        defaults = [model["id"] for model in offered if model["is_default"]]
        # A developer who may not use the default gets their first model.
        default_id = defaults[0] if defaults else offered[0]["id"] if offered else None
        return {
            "default_model_id": default_id,
            "groups": groups,
            "unavailable_providers": unavailable,
        }


def build_configuration(fingerprint: str) -> Configuration:
    """Everything every list is cut from: four queries, no key loaded or decrypted."""
    providers = list(providers_in_registry_order(Provider.objects.defer(*SECRET_FIELDS)))
    available = {p.pk for p in providers if p.availability == Availability.AVAILABLE}
    models: dict[int, list[dict[str, Any]]] = {}
    unavailable: dict[int, list[tuple[int, bool]]] = {}
    restricted = set()
    rows = (
        LLMModel.objects.filter(enabled=True)
        .order_by("display_name", "pk")
        .values(*MODEL_FIELDS, "restricted")
    )
    for row in rows:
        if row["restricted"]:
            restricted.add(row["id"])
        if row["provider_id"] in available:
            models.setdefault(row["provider_id"], []).append(row)
        else:
            unavailable.setdefault(row["provider_id"], []).append((row["id"], row["restricted"]))
    allowed_groups, allowed_users = access_lists()
    return Configuration(
        fingerprint=fingerprint,
        providers=[
            {
                "id": p.pk,
                "type": p.type,
                "label": p.provider_type.label,
                "availability": p.availability,
            }
            for p in providers
        ],
        models=models,
        unavailable=unavailable,
        restricted=restricted,
        allowed_groups=allowed_groups,
        allowed_users=allowed_users,
        listed_groups=frozenset(g for ids in allowed_groups.values() for g in ids),
        listed_users=frozenset(u for ids in allowed_users.values() for u in ids),
    )


def configuration_fingerprint() -> str:
    """Changes with every change developers' lists depend on (llmadmin's
    ConfigurationVersion, counted in commit order) and with the encryption keys in use.

    One query of one row, so each process's cache stays right when another process made the
    change.
    """
    state = repr((configuration_version(), api_key_ids())).encode()
    return hashlib.sha256(state).hexdigest()


# This process's configuration; swapping the reference is atomic across threads.
_configuration: Configuration | None = None
# One rebuild per change per process: the other threads wait for it rather than all rebuild.
_rebuild = threading.Lock()


def current_configuration() -> Configuration:
    global _configuration
    fingerprint = configuration_fingerprint()
    configuration = _configuration
    if configuration is None or configuration.fingerprint != fingerprint:
        with _rebuild:
            configuration = _configuration
            if configuration is None or configuration.fingerprint != fingerprint:
                configuration = build_configuration(fingerprint)
                _configuration = configuration
    return configuration


def cached_model_list(user: AbstractBaseUser) -> tuple[str, bytes]:
    """The ETag and JSON body of this developer's model list."""
    configuration = current_configuration()
    group_ids = (
        set(user.groups.values_list("pk", flat=True)) if configuration.listed_groups else set()
    )
    scope = configuration.scope(user.pk, group_ids)
    cached = configuration.lists.get(scope)
    if cached is None:
        body = json.dumps(configuration.model_list(scope), separators=(",", ":")).encode()
        cached = (f'"{hashlib.sha256(body).hexdigest()[:32]}"', body)
        with configuration.lists_lock:
            if len(configuration.lists) >= MAX_SCOPES:
                configuration.lists.pop(next(iter(configuration.lists)))
            configuration.lists[scope] = cached
    return cached
