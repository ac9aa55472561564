"""The list of models developers can chat with: built once per configuration and process, then
cut per access scope (the developer's groups) and cached with its own ETag."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import timezone

from billing.budgets import BudgetState, budget_states, budget_summary, month_start
from llmadmin.access import AccessLists, access_lists
from llmadmin.models import (
    SECRET_FIELDS,
    Availability,
    ConfigurationVersion,
    LLMModel,
    Provider,
    api_key_ids,
)
from llmadmin.providers import PROVIDER_TYPES
from llmadmin.selectors import providers_in_registry_order

# A model as the list gives it; read with .values(), no ORM objects (10,000 models: 22 ms).
MODEL_FIELDS = ("id", "identifier", "display_name", "provider_id", "context_limit", "is_default")
# Bytes of lists kept per process (10,000 models make a list of about 1 MB); past that, the
# least recently used scope's goes.
MAX_CACHED_BYTES = 64 * 1024 * 1024


@dataclass
class Configuration:
    """Every enabled model with who may use it, for one fingerprint; cut per scope."""

    fingerprint: str
    providers: list[dict[str, Any]]
    # By provider id: enabled models of available providers, in display order, each with its
    # JSON for the list.
    models: dict[int, list[dict[str, Any]]]
    # By provider id: (model id, restricted) of enabled models of unavailable providers.
    unavailable: dict[int, list[tuple[int, bool]]]
    restricted: set[int]
    access: AccessLists
    # The groups and users some model lists: only these make two developers' lists differ.
    listed_groups: frozenset[int]
    listed_users: frozenset[int]
    # Monthly caps per developer, by id of offered model (see billing.budgets).
    caps: dict[int, Decimal]
    # (ETag, body) by scope, least recently used first.
    lists: OrderedDict[tuple[frozenset[int], int | None], tuple[str, bytes]] = field(
        default_factory=OrderedDict
    )
    cached_bytes: int = 0
    lists_lock: threading.Lock = field(default_factory=threading.Lock)
    # Offered models as calls take them, by id: read on each one's first call under this
    # configuration. Not init fields: a configuration made from another starts empty.
    calls: dict[int, LLMModel | None] = field(default_factory=dict, init=False)
    calls_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @cached_property
    def offered(self) -> frozenset[int]:
        """The ids of the models some list offers."""
        return frozenset(model["id"] for models in self.models.values() for model in models)

    def model_for_call(self, model_id: int) -> LLMModel | None:
        """The offered model with this id, with its provider (its key decrypted once), read
        on its first call under this configuration and then shared by this process's calls,
        which only read it; None when no list offers it."""
        with self.calls_lock:
            if model_id in self.calls:
                return self.calls[model_id]
        if model_id not in self.offered:
            return None
        # Read after the fingerprint: never older than this configuration.
        model = LLMModel.objects.select_related("provider").filter(pk=model_id).first()
        with self.calls_lock:
            return self.calls.setdefault(model_id, model)

    def cached_list(self, scope: tuple[frozenset[int], int | None]) -> tuple[str, bytes]:
        """This scope's ETag and body, rendered once while it stays in the cache."""
        with self.lists_lock:
            cached = self.lists.get(scope)
            if cached is not None:
                self.lists.move_to_end(scope)
                return cached
        body = self.render(scope)
        cached = (f'"{hashlib.sha256(body).hexdigest()[:32]}"', body)
        with self.lists_lock:
            if scope not in self.lists:
                self.lists[scope] = cached
                self.cached_bytes += len(body)
            while self.cached_bytes > MAX_CACHED_BYTES and len(self.lists) > 1:
                _, (_, evicted) = self.lists.popitem(last=False)
                self.cached_bytes -= len(evicted)
        return cached

    def scope(self, user_id: int, group_ids: set[int]) -> tuple[frozenset[int], int | None]:
        """What decides this developer's list: developers with the same scope share it."""
        return (
            frozenset(group_ids) & self.listed_groups,
            user_id if user_id in self.listed_users else None,
        )

    def usable(self, model_id: int, scope: tuple[frozenset[int], int | None]) -> bool:
        groups, user_id = scope
        return self.access.permits(
            model_id, restricted=model_id in self.restricted, group_ids=groups, user_id=user_id
        )

    def caps_for(self, scope: tuple[frozenset[int], int | None]) -> dict[int, Decimal]:
        """The monthly caps of the models in this scope's list."""
        return {
            model_id: cap for model_id, cap in self.caps.items() if self.usable(model_id, scope)
        }

    def render(self, scope: tuple[frozenset[int], int | None]) -> bytes:
        """This scope's list as JSON, joined from each model's JSON rendered once per
        configuration: a scope costs a join, not an encoding of every model."""
        groups, unavailable = [], []
        default_id = first_id = None
        # Models offered to others but not to this developer: access, not setup, keeps them.
        kept_from_them = 0
        for provider in self.providers:
            offered = self.models.get(provider["id"], [])
            models = [model for model in offered if self.usable(model["id"], scope)]
            kept_from_them += len(offered) - len(models)
            if models:
                first_id = first_id or models[0]["id"]
                default_id = default_id or next(
                    (model["id"] for model in models if model["is_default"]), None
                )
                head = encode(
                    {"provider_type": provider["type"], "provider_label": provider["label"]}
                )
                fragments = b",".join(model["json"] for model in models)
                groups.append(head[:-1] + b',"models":[' + fragments + b"]}")
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
        # A developer who may not use the default gets their first model.
        return (
            b'{"default_model_id":'
            + encode(default_id or first_id)
            + b',"groups":['
            + b",".join(groups)
            + b'],"unavailable_providers":'
            + encode(unavailable)
            + b',"restricted_model_count":'
            + encode(kept_from_them)
            + b"}"
        )


_encoder = json.JSONEncoder(separators=(",", ":"))


def encode(value: Any) -> bytes:
    return _encoder.encode(value).encode()


def build_configuration(fingerprint: str) -> Configuration:
    """Everything every list is cut from: four queries, no key loaded or decrypted."""
    providers = list(providers_in_registry_order(Provider.objects.defer(*SECRET_FIELDS)))
    available = {p.pk for p in providers if p.availability == Availability.AVAILABLE}
    types = {p.pk: p.type for p in providers}
    models: dict[int, list[dict[str, Any]]] = {}
    unavailable: dict[int, list[tuple[int, bool]]] = {}
    restricted = set()
    caps = {}
    rows = (
        LLMModel.objects.filter(enabled=True)
        .order_by("display_name", "pk")
        .values(*MODEL_FIELDS, "restricted", "monthly_cap")
    )
    for row in rows:
        if row["restricted"]:
            restricted.add(row["id"])
        if row["provider_id"] in available:
            if row["monthly_cap"] is not None:
                caps[row["id"]] = row["monthly_cap"]
            models.setdefault(row["provider_id"], []).append(row)
            row["json"] = encode(
                {
                    "id": row["id"],
                    "identifier": row["identifier"],
                    "display_name": row["display_name"],
                    "provider_type": types[row["provider_id"]],
                    "provider_label": PROVIDER_TYPES[types[row["provider_id"]]].label,
                    "context_limit": row["context_limit"],
                    "is_default": row["is_default"],
                }
            )
        else:
            unavailable.setdefault(row["provider_id"], []).append((row["id"], row["restricted"]))
    access = access_lists()
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
        access=access,
        listed_groups=frozenset(g for ids in access.groups.values() for g in ids),
        listed_users=frozenset(u for ids in access.users.values() for u in ids),
        caps=caps,
    )


def state_of(user: AbstractBaseUser) -> tuple[str, set[int], BudgetState]:
    """The configuration's fingerprint, this developer's groups and their budget, in one
    query.

    The fingerprint changes with every change developers' lists depend on (llmadmin's
    ConfigurationVersion, written in commit order) and with the encryption keys in use, so
    each process's cache stays right when another process made the change.
    """
    month = month_start(timezone.localdate())
    versions = ConfigurationVersion._meta.db_table
    # The table name only is formatted in.
    version = (
        f"SELECT 'version', NULL, NULL, CAST(token AS VARCHAR(36)), NULL FROM {versions} "  # noqa: S608
        "WHERE id = 1"
    )
    budgets, rows = budget_states([user.pk], month=month, also=(version, []))
    token = next((name for _, _, _, name, _ in rows), None)
    fingerprint = hashlib.sha256(repr((token, api_key_ids())).encode()).hexdigest()
    return fingerprint, set(budgets[user.pk].group_ids), budgets[user.pk]


# This process's configuration; swapping the reference is atomic across threads.
_configuration: Configuration | None = None
# One rebuild per change per process: the other threads wait for it rather than all rebuild.
_rebuild = threading.Lock()


def current_configuration(fingerprint: str) -> Configuration:
    global _configuration
    configuration = _configuration
    if configuration is None or configuration.fingerprint != fingerprint:
        with _rebuild:
            configuration = _configuration
            if configuration is None or configuration.fingerprint != fingerprint:
                configuration = build_configuration(fingerprint)
                _configuration = configuration
    return configuration


def cached_model_list(user: AbstractBaseUser) -> tuple[str, bytes]:
    """The ETag and JSON body of this developer's model list, their budget included."""
    fingerprint, group_ids, budget_state = state_of(user)
    configuration = current_configuration(fingerprint)
    scope = configuration.scope(user.pk, group_ids)
    etag, body = configuration.cached_list(scope)
    # The budget changes with every turn: joined to the cached list, not cached with it.
    budget = encode(budget_summary(budget_state, configuration.caps_for(scope)))
    etag = f'"{hashlib.sha256(etag.encode() + budget).hexdigest()[:32]}"'
    # One copy of the list, not three (a 1 MB list: 0.7 ms with +, 0.02 ms joined).
    return etag, b"".join([memoryview(body)[:-1], b',"budget":', budget, b"}"])


def model_caps(user: AbstractBaseUser) -> dict[int, Decimal]:
    """The monthly caps of the models in this developer's list (one query)."""
    fingerprint, group_ids, _ = state_of(user)
    configuration = current_configuration(fingerprint)
    return configuration.caps_for(configuration.scope(user.pk, group_ids))


def offered_model(user: AbstractBaseUser, model_id: int) -> tuple[LLMModel | None, BudgetState]:
    """The model with this id, with its provider, if it is in this developer's list (else
    None), and their budget: one query (state_of), the model from the configuration's cache.
    A call is let through at the cost of the list, not of the access and budget queries."""
    fingerprint, group_ids, budget = state_of(user)
    configuration = current_configuration(fingerprint)
    if not configuration.usable(model_id, configuration.scope(user.pk, group_ids)):
        return None, budget
    return configuration.model_for_call(model_id), budget
