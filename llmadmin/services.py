"""Writes with side effects on providers and models, shared by the admin, the API and commands."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Q, QuerySet
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from llmadmin import audit
from llmadmin.fields import UnreadableKey
from llmadmin.models import (
    SECRET_FIELDS,
    AuthMode,
    BackupKey,
    CheckStatus,
    ConfigurationChange,
    LLMModel,
    Provider,
    configuration_changed,
    lock_default_changes,
)
from llmadmin.providers import PROVIDER_TYPES
from llmadmin.providers.catalog import ModelFacts
from llmadmin.providers.errors import ProviderError

logger = logging.getLogger(__name__)


@sensitive_variables("api_key")
def provider_set_api_key(*, provider: Provider, api_key: str | None) -> Provider:
    """Store a new key (None or empty removes it); raises ValidationError without saving.
    One of the account's backup keys is refused: it would fail over to the key that just
    failed."""
    if api_key and any(
        provider.usable(backup.api_key) == api_key for backup in provider.backup_keys.all()
    ):
        message = f"{provider.label} holds this key as a backup key: its own must be another."
        raise ValidationError({"api_key": message})
    provider.replace_api_key(api_key)
    provider.full_clean()
    provider.save()
    return provider


def provider_missing_credentials(*, provider: Provider) -> str:
    """Why there is nothing to call the provider with, e.g. "no API key."; empty when there is."""
    if provider.key_state == "missing":
        return f"no {AuthMode(provider.auth).label}."
    if provider.key_state == "unreadable":
        return "the stored credentials can't be read (the encryption keys changed): set them again."
    return ""


def provider_try_connection(*, provider: Provider) -> tuple[CheckStatus | None, str]:
    """Test the provider's credentials as they are on this instance (saved or not) with its
    cheapest free call; record nothing.

    Returns the status (None when there is no readable key to test) and a short reason in
    our own words (the provider layer's fixed vocabulary): safe to show, log and store.
    """
    missing = provider_missing_credentials(provider=provider)
    if missing:
        return None, missing
    try:
        provider.client().verify()
    except ProviderError as error:
        status, reason = CheckStatus(error.status), str(error)
    else:
        status, reason = CheckStatus.VERIFIED, "The provider accepted the API key."
    logger.info("Connection test of %s: %s. %s", provider, status.label, reason)
    return status, reason


def provider_check_connection(*, provider: Provider) -> tuple[CheckStatus | None, str]:
    """Test the stored credentials and record the outcome on the provider."""
    status, reason = provider_try_connection(provider=provider)
    if status is None:
        return status, reason
    provider.check_status, provider.check_reason = status, reason[:300]
    provider.checked_at = timezone.now()
    fields = ["check_status", "check_reason", "checked_at", "updated_at"]
    if status == "verified":
        # The key works: calls try it again, though it was refused before.
        provider.forget_cooling()
        fields += ["cooling_until", "cooling_reason"]
    provider.save(update_fields=fields)
    return status, reason


def models_set_enabled(*, models: QuerySet[LLMModel], enabled: bool, actor: Any = None) -> int:
    """Enable or disable these models at once, audited as the actor's; the number changed."""
    with transaction.atomic():
        # By id: the admin's queryset carries annotations that FOR UPDATE can't take.
        ids = list(models.values_list("pk", flat=True))
        changing = LLMModel.objects.filter(pk__in=ids).exclude(enabled=enabled).select_for_update()
        changed = list(changing)
        if changed:
            LLMModel.objects.filter(pk__in=[m.pk for m in changed]).update(
                enabled=enabled, updated_at=timezone.now()
            )
            audit.log_bulk_change(changed, "enabled", not enabled, enabled, actor=actor)
            configuration_changed(ConfigurationChange.Kind.MODELS, [m.pk for m in changed])
    return len(changed)


def model_make_default(*, model: LLMModel) -> LLMModel:
    """Make this model the one default; the previous default is unset in the same transaction."""
    model.is_default = True
    model.full_clean()
    model.save()
    return model


@dataclass
class RotationReport:
    # Provider labels; backup keys by backup_key_label.
    reencrypted: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    backups_reencrypted: list[str] = field(default_factory=list)
    backups_unreadable: list[str] = field(default_factory=list)


def providers_reencrypt_keys() -> RotationReport:
    """Re-encrypt every account's stored secrets, its backup keys' too, with the current
    SECRET_KEY and first SALT_KEY.

    Run after putting a new secret first (the old one in SECRET_KEY_FALLBACKS or later in
    SALT_KEY); afterwards the old secret can go. Unreadable keys are reported, left as stored.
    """
    report = RotationReport()
    with transaction.atomic():
        stored = Q()
        for name in SECRET_FIELDS:
            stored |= Q(**{f"{name}__isnull": False})
        for provider in Provider.objects.filter(stored).select_for_update():
            # What can't be read stays as stored; the rest is re-encrypted all the same.
            provider.save(update_fields=[*SECRET_FIELDS, "api_key_encrypted_with", "updated_at"])
            if any(isinstance(getattr(provider, name), UnreadableKey) for name in SECRET_FIELDS):
                report.unreadable.append(provider.label)
                continue
            audit.log_reencrypted(provider, [n for n in SECRET_FIELDS if getattr(provider, n)])
            report.reencrypted.append(provider.label)
        backups = (
            BackupKey.objects.filter(stored)
            .select_related("provider")
            .select_for_update(of=("self",))
            .order_by("provider_id", "position", "pk")
        )
        for backup in backups:
            # encrypted_with follows (BackupKey.save): the new secret's id, or kept as it was
            # for a key no secret reads (restoring the old secret makes it readable again).
            backup.save(update_fields=[*SECRET_FIELDS, "encrypted_with"])
            label = backup_key_label(backup)
            if any(isinstance(getattr(backup, name), UnreadableKey) for name in SECRET_FIELDS):
                report.backups_unreadable.append(label)
                continue
            audit.log_reencrypted(backup, [n for n in SECRET_FIELDS if getattr(backup, n)])
            report.backups_reencrypted.append(label)
    return report


def backup_key_label(backup: BackupKey) -> str:
    """A backup key as commands name it, never by any part of it: "backup key 2 (Team A) of
    OpenAI"; the number is its order among the account's backup keys."""
    named = f" ({backup.name})" if backup.name else ""
    return f"backup key {backup.position}{named} of {backup.provider.label}"


def backup_key_named(provider: Provider, name: str) -> BackupKey | None:
    """The account's backup key of this name, in any case (few keys: compared in Python, as
    provider_named does)."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return next(
        (
            backup
            for backup in provider.backup_keys.defer(*SECRET_FIELDS)
            if backup.name and unicodedata.normalize("NFKC", backup.name).casefold() == folded
        ),
        None,
    )


@sensitive_variables("api_key", "taken")
def backup_key_set(*, provider: Provider, name: str, api_key: str) -> tuple[BackupKey, bool]:
    """Store the account's backup key of this name (any case), or add one of this name after
    its others; entered for the account's address as it is now, and tried again. Returns the
    key and whether it was added. Raises ValidationError, field by field, without saving.

    A backup key the account holds already (its own, or another backup key) is refused: it
    would fail over to the key that just failed."""
    with transaction.atomic():
        # Locked: two scripts setting one name at once store one key, at the address as it is.
        provider = Provider.objects.select_for_update().get(pk=provider.pk)
        if provider.auth != AuthMode.API_KEY:
            raise ValidationError(
                f"{provider.label} does not sign in with an API key "
                f"({AuthMode(provider.auth).label}): add its backup keys in the admin."
            )
        if not name:
            raise ValidationError({"name": "Enter a name: a backup key is found again by it."})
        if not api_key:
            raise ValidationError({"api_key": "Enter the key."})
        # As the admin stores names: compatibility forms read as the plain name.
        name = unicodedata.normalize("NFKC", name)
        backup = backup_key_named(provider, name)
        added = backup is None
        if backup is None:
            last = provider.backup_keys.aggregate(last=Max("position"))["last"] or 0
            backup = BackupKey(provider=provider, name=name, position=last + 1)
        else:
            # Found without its secrets; saved with them.
            backup = BackupKey.objects.get(pk=backup.pk)
        backup.api_key = api_key
        backup.enter_for(provider)
        backup.full_clean()
        taken = [provider.usable(provider.api_key)] + [
            provider.usable(other.api_key) for other in provider.backup_keys.exclude(pk=backup.pk)
        ]
        if api_key in taken:
            message = f"{provider.label} holds this key already: a backup key must be another."
            raise ValidationError({"api_key": message})
        backup.save()
    return backup, added


def backup_key_delete(*, provider: Provider, name: str) -> BackupKey | None:
    """Delete the account's backup key of this name (any case); the key deleted, or None when
    it has none of this name."""
    with transaction.atomic():
        backup = backup_key_named(provider, name)
        if backup is not None:
            backup.delete()
    return backup


def catalog_values(facts: ModelFacts) -> dict[str, object]:
    """A model's display name, limits and prices as the catalog gives them."""
    return {
        "display_name": facts.name,
        "context_limit": facts.context_limit,
        "max_output_tokens": facts.output_limit,
        "input_price": facts.prices.input,
        "output_price": facts.prices.output,
        "cache_read_price": facts.prices.cache_read,
        "cache_write_price": facts.prices.cache_write,
        "long_context_input_price": facts.long_context_prices.input,
        "long_context_output_price": facts.long_context_prices.output,
        "long_context_cache_read_price": facts.long_context_prices.cache_read,
        "long_context_cache_write_price": facts.long_context_prices.cache_write,
    }


@dataclass
class SeedReport:
    catalogs_seeded: list[str] = field(default_factory=list)
    models_created: list[str] = field(default_factory=list)
    keys_set: list[str] = field(default_factory=list)
    # (provider label, message) for keys that were found but not accepted.
    key_errors: list[tuple[str, str]] = field(default_factory=list)
    # (variable, type) for keys whose type has no account slugged by the type.
    keys_unused: list[tuple[str, str]] = field(default_factory=list)
    default: str | None = None


@transaction.atomic
def seed_defaults(*, environ: Mapping[str, str] | None = None) -> SeedReport:
    """Seed each type's first account with the type's catalog models, once.

    An account's catalog is seeded only once, so a re-run never brings back a model an
    administrator deleted, nor touches one they edited; the other accounts of a type (an
    internal vLLM beside the first OpenAI Compatible one) hold what their admin adds, never
    the catalog's. With `environ`, a type's variable gives its key to the account slugged by
    the type (the one migrate creates) when it has none yet, and to no other: another account
    stands for another server (once the account a key was for is deleted, the type's first
    may be an internal vLLM).
    """
    report = SeedReport()
    created_models: list[LLMModel] = []
    first_accounts: dict[str, Provider] = {}
    accounts_slugged_by_type: dict[str, Provider] = {}
    for account in Provider.objects.order_by("pk").select_for_update():
        first_accounts.setdefault(account.type, account)
        if account.slug == account.type:
            accounts_slugged_by_type[account.type] = account
    for provider in first_accounts.values():
        if provider.catalog_seeded:
            continue
        provider.catalog_seeded = True
        provider.save(update_fields=["catalog_seeded"])
        report.catalogs_seeded.append(provider.label)
        for identifier in provider.provider_type.seeded_models:
            facts = provider.provider_type.facts(identifier)
            if facts is None:  # a snapshot that dropped the model: nothing to seed it from
                logger.warning("%s is not in the catalog; not seeded.", identifier)
                continue
            model = LLMModel(provider=provider, identifier=identifier, **catalog_values(facts))
            model.full_clean()
            model.save()
            created_models.append(model)
            report.models_created.append(f"{provider.label}: {model.display_name}")

    for type_slug, provider_type in PROVIDER_TYPES.items():
        key = (environ or {}).get(provider_type.key_env_var, "")
        if not key:
            continue
        key_account = accounts_slugged_by_type.get(type_slug)
        if key_account is None:
            report.keys_unused.append((provider_type.key_env_var, type_slug))
        elif key_account.api_key is None:
            try:
                with transaction.atomic():
                    provider_set_api_key(provider=key_account, api_key=key)
            except ValidationError as error:
                report.key_errors.append((key_account.label, " ".join(error.messages)))
            else:
                report.keys_set.append(key_account.label)

    # Only a freshly created catalog default becomes the default: an admin who removed
    # the default on purpose keeps having none.
    for model in created_models:
        is_catalog_default = model.identifier == model.provider.provider_type.seeded_default
        if is_catalog_default and not LLMModel.objects.filter(is_default=True).exists():
            model_make_default(model=model)
            report.default = model.display_name
    return report


def provider_deletion_refused(*, provider: Provider) -> str:
    """Why this account may not be deleted ("" when it may): every type keeps an account, and
    the default model is changed on purpose, never deleted with its account."""
    if not Provider.objects.filter(type=provider.type).exclude(pk=provider.pk).exists():
        return (
            f"{provider} is the only {provider.provider_type.label} account: every provider "
            "type keeps one."
        )
    default = provider.models.filter(is_default=True).first()
    if default is not None:
        return (
            f"{provider} holds the default model ({default.display_name}): make another "
            "model the default first."
        )
    return ""


@transaction.atomic
def provider_delete(*, provider: Provider) -> None:
    """Delete an account and its models; raises ValidationError when it may not be deleted.
    Checked under locks: two admins deleting a type's last two accounts at once, or making one
    of its models the default meanwhile, find the other's change."""
    lock_default_changes()
    list(Provider.objects.select_for_update().filter(type=provider.type).order_by("pk"))
    refused = provider_deletion_refused(provider=provider)
    if refused:
        raise ValidationError(refused)
    provider.delete()
