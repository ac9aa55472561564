"""Reads of providers and models, shared by the admin, the API and commands."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import models
from django.db.models import Case, QuerySet, Value, When
from django.utils.text import capfirst

from llmadmin.access import access_lists
from llmadmin.models import (
    LONG_CONTEXT_PRICE_FIELDS,
    SECRET_FIELDS,
    Availability,
    LLMModel,
    Provider,
)
from llmadmin.providers import PROVIDER_TYPES
from llmadmin.providers.base import GENERAL_LABELS
from llmadmin.providers.contract import RemoteModel, showable_models


def registry_position(type_field: str = "type") -> Case:
    """A provider type's place in the registry, the order every list shows providers in."""
    return Case(
        *(
            When(**{type_field: slug}, then=Value(index))
            for index, slug in enumerate(PROVIDER_TYPES)
        ),
        output_field=models.IntegerField(),
    )


def providers_in_registry_order(queryset: QuerySet[Provider] | None = None) -> QuerySet[Provider]:
    """Providers in the registry's order; a type's accounts in the order they were added."""
    queryset = Provider.objects.all() if queryset is None else queryset
    return queryset.alias(registry_position=registry_position()).order_by("registry_position", "pk")


def provider_named(name: str) -> Provider | None:
    """The account of this name in any case, read as names are stored (NFKC). Compared in
    Python over the few accounts: SQLite's lower() folds ASCII letters only."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    names = Provider.objects.values_list("pk", "name")
    pk = next((pk for pk, stored in names if stored.casefold() == folded), None)
    return None if pk is None else Provider.objects.get(pk=pk)


def first_account(type_slug: str) -> Provider | None:
    """A type's first account: where a file or command that gives only a type applies."""
    return Provider.objects.filter(type=type_slug).order_by("pk").first()


@dataclass(frozen=True)
class Seen:
    """One model as a user or group sees it: whether they get it, and if not, why."""

    model: LLMModel
    reason: str  # empty when they get it


def models_in_list_order() -> QuerySet[LLMModel]:
    """Every model with its provider (no secret loaded), as the lists show them."""
    return (
        LLMModel.objects.annotate(registry_position=registry_position("provider__type"))
        .select_related("provider")
        .defer(*(f"provider__{name}" for name in SECRET_FIELDS))
        .order_by("registry_position", "provider_id", "display_name", "pk")
    )


def what_developers_see(
    models: Iterable[LLMModel],
    *,
    user: AbstractBaseUser | None = None,
    group: Group | None = None,
) -> list[Seen]:
    """These models (see models_in_list_order; a page of them), for a user or a group, with
    why they don't get each one they don't.

    Who gets what is llmadmin.access's rule, as in the developers' own list.
    """
    models = list(models)
    if user is not None:
        group_ids = set(user.groups.values_list("pk", flat=True))
        user_id = user.pk
    else:
        group_ids, user_id = {group.pk} if group else set(), None
    lists = access_lists(model.pk for model in models)
    seen = []
    for model in models:
        availability = model.provider.availability
        if not model.enabled:
            reason = "Disabled"
        elif availability != Availability.AVAILABLE:
            reason = Availability(availability).label
        elif not lists.permits(
            model.pk, restricted=model.restricted, group_ids=group_ids, user_id=user_id
        ):
            listed = model.pk in lists.groups or model.pk in lists.users
            reason = "Restricted to other groups or users" if listed else "Restricted to nobody"
        else:
            reason = ""
        seen.append(Seen(model, reason))
    return seen


def remote_models_cache_key(provider: Provider) -> str:
    # Any change to the provider (key, base URL, region) makes a new list.
    return f"llmadmin:model-list:{provider.pk}:{provider.updated_at.isoformat()}"


@dataclass(frozen=True)
class ModelList:
    """The provider's models fit to show, and how many listed ids were left out."""

    models: list[RemoteModel]
    left_out: int


def provider_remote_models(*, provider: Provider) -> ModelList:
    """The provider's model list, kept for 10 minutes; raises ProviderError.

    Ids that are not plausible model ids, or that hold one of the provider's credentials,
    are left out before anything is kept or shown."""
    model_list = cache.get(remote_models_cache_key(provider))
    if model_list is None:
        client = provider.client()
        models, left_out = showable_models(client.list_models(), secrets=client.secrets())
        model_list = ModelList(models, left_out)
        cache.set(remote_models_cache_key(provider), model_list, timeout=600)
    return model_list


def provider_reported_context_limit(*, provider: Provider, identifier: str) -> int | None:
    """The context limit the provider reported for this model, from a list already fetched."""
    model_list = cache.get(remote_models_cache_key(provider))
    for model in model_list.models if model_list else []:
        if model.identifier == identifier:
            return model.context_limit
    return None


@dataclass(frozen=True)
class Finding:
    """Something check_models reports about a configured model."""

    # refused: the provider will refuse its settings; tier: long calls are costed too low;
    # the others are worth a look.
    kind: Literal["refused", "tier", "unknown", "deprecated", "limits"]
    message: str

    @property
    def problem(self) -> bool:
        """To fix (check_models fails on it), not merely worth a look."""
        return self.kind in ("refused", "tier")


def model_findings(model: LLMModel) -> list[Finding]:
    """What the catalog and the provider's rules say of a configured model."""
    findings = []
    provider_type = model.provider.provider_type
    _, errors = model.check_options()
    options = provider_type.options_by_name
    for name, messages in errors.items():
        label = capfirst(GENERAL_LABELS.get(name)) or (
            options[name].label if name in options else name
        )
        findings += [Finding("refused", f"{label}: {message}") for message in messages]
    facts = model.catalog_facts
    if facts is None:
        if provider_type.catalog:
            findings.append(
                Finding(
                    "unknown",
                    f"Not in the catalog: only {provider_type.label}'s own rules check it.",
                )
            )
        return findings
    if facts.deprecated:
        findings.append(Finding("deprecated", "The catalog marks it deprecated."))
    if facts.context_limit and model.context_limit != facts.context_limit:
        findings.append(
            Finding(
                "limits",
                f"Context limit {model.context_limit}; the catalog says {facts.context_limit}.",
            )
        )
    over = (
        model.max_output_tokens
        and facts.output_limit
        and model.max_output_tokens > facts.output_limit
    )
    if over and model.override_catalog_limit:
        # Accepted knowingly (the snapshot lags the provider's docs), but still worth a look.
        findings.append(
            Finding(
                "limits",
                f"Max output tokens {model.max_output_tokens} over the catalog's "
                f"{facts.output_limit}, overridden: {model.catalog_limit_note}",
            )
        )
    catalog_tier = facts.long_context_prices.as_tuple()
    for name, listed in zip(LONG_CONTEXT_PRICE_FIELDS, catalog_tier, strict=True):
        if listed is not None and getattr(model, name) is None:
            label = capfirst(LLMModel._meta.get_field(name).verbose_name)
            findings.append(
                Finding(
                    "tier",
                    f"{label} empty; the catalog says {format(listed.normalize(), 'f')}: "
                    "calls with a long prompt are costed at less than they cost.",
                )
            )
    return findings
