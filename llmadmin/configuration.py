"""Configuration as code: provider accounts (never keys) and models to and from plain data.

The data describes each listed account and model completely: a field left out takes its
default (an account's slug keeps its own). Accounts and models not listed are left alone. An
account is identified by its name (in any case); a name no account has, by its slug, and
renamed (a type's first account renamed where the file was exported is slugged by its type
where it is imported); an entry without a name (files from before accounts) means its type's
first account. An import is validated and applied in one transaction: any error, and nothing
is applied.

Keys are never in the data, either way: not the accounts' own, not their backup keys, not even
how many an account has. A file is the same for every deployment it reproduces; which keys
each holds is its own, entered there. A backup key is sent only to the address it was entered
for: a file that moves an account elsewhere leaves its backup keys unsent (to be entered
again), and one that moves it back sends them again; its change says so.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from auditlog.cid import correlation_id
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.text import Truncator

from llmadmin.models import (
    ADDRESS_FIELDS,
    AUTH_MODE_FIELDS,
    MODEL_PRICE_FIELDS,
    SECRET_FIELDS,
    LLMModel,
    Provider,
    api_key_ids,
)
from llmadmin.providers import GENERAL_FIELDS, PROVIDER_TYPES
from llmadmin.providers.base import BRIEF_LENGTH, brief
from llmadmin.selectors import first_account, provider_named, providers_in_registry_order

VERSION = 1
PROVIDER_FIELDS = {"enabled": True, "base_url": "", "region": "", "auth": "api_key"}
# Never in a file, either way: the secrets, and the access key ID that goes with one.
SECRETS_NEVER_IMPORTED = {*SECRET_FIELDS, "aws_access_key_id"}
# Nor an account's backup keys, whatever is written under these names.
BACKUP_KEYS_NEVER_IMPORTED = {"backup_keys", "backup_key"}
# Written only when not the default: most accounts keep it.
ACCOUNT_TUNING = {"key_cooldown": 60}
MODEL_FIELDS = {
    "display_name": "",
    "enabled": True,
    "context_limit": None,
    "compression_threshold": 70,
    **dict.fromkeys(GENERAL_FIELDS),
    # Unpriced (None) is not free (0): both survive a round trip.
    **dict.fromkeys(MODEL_PRICE_FIELDS),
    "monthly_cap": None,
}
# Written only when the catalog's output limit is overridden: most models never are.
OVERRIDE_FIELDS = {"override_catalog_limit": False, "catalog_limit_note": ""}
# The file's names where they differ from the columns'.
MODEL_RENAMES = {"default": "is_default", "options": "provider_options"}
# Left out, a model is open to every developer; given, only to these groups and users.
ACCESS_FIELDS = {"groups", "users"}
# Of the names not found, how many an error lists.
MISSING_SHOWN = 10


class ConfigurationError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} errors")
        self.errors = errors


def export_configuration() -> dict[str, Any]:
    providers = providers_in_registry_order(Provider.objects.defer(*SECRET_FIELDS))
    models_by_provider: dict[int, list[LLMModel]] = {}
    for model in LLMModel.objects.order_by("display_name", "identifier"):
        models_by_provider.setdefault(model.provider_id, []).append(model)
    return {
        "version": VERSION,
        "providers": [
            {
                "name": provider.name,
                "type": provider.type,
                "slug": provider.slug,
                **{name: getattr(provider, name) for name in PROVIDER_FIELDS},
                **{
                    name: getattr(provider, name)
                    for name, default in ACCOUNT_TUNING.items()
                    if getattr(provider, name) != default
                },
                "models": [
                    export_model(model) for model in models_by_provider.get(provider.pk, [])
                ],
            }
            for provider in providers
        ],
    }


def export_model(model: LLMModel) -> dict[str, Any]:
    entry: dict[str, Any] = {"identifier": model.identifier}
    for name, default in MODEL_FIELDS.items():
        value = getattr(model, name)
        if isinstance(value, Decimal):
            # As text, exactly: JSON and YAML have no decimals. "3.75", not "3.750000".
            value = format(value.normalize(), "f")
        if value is not None or default is not None:
            entry[name] = value
    if model.override_catalog_limit:
        entry.update({name: getattr(model, name) for name in OVERRIDE_FIELDS})
    if model.is_default:
        entry["default"] = True
    if model.provider_options:
        entry["options"] = model.provider_options
    if model.restricted:
        # By name: ids differ from one deployment to the next.
        entry["access"] = {
            "groups": sorted(group.name for group in model.allowed_groups.all()),
            "users": sorted(user.get_username() for user in model.allowed_users.all()),
        }
    return entry


def import_configuration(data: Any, *, dry_run: bool) -> list[str]:
    """Apply the data; return the changes made (or that would be). Raises ConfigurationError.

    The audit records each change of an import under one correlation id,
    "import-<UTC time>-<random>": unique, and safe in a URL as the audit's links use it.
    """
    token = correlation_id.set(f"import-{timezone.now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}")
    try:
        with transaction.atomic():
            importer = Importer()
            importer.apply(data)
            if importer.errors:
                transaction.set_rollback(True)
                raise ConfigurationError(importer.errors)
            if dry_run:
                transaction.set_rollback(True)
    finally:
        correlation_id.reset(token)
    return importer.changes


class Importer:
    def __init__(self) -> None:
        self.changes: list[str] = []
        self.errors: list[str] = []
        self.default_at: str | None = None
        # Where each account was listed, by its id: an account is described once.
        self.listed: dict[int, str] = {}

    def apply(self, data: Any) -> None:
        if not isinstance(data, dict):
            self.errors.append("The file must hold a mapping with 'version' and 'providers'.")
            return
        if (where := not_text_at(data)) is not None:
            # Before any lookup: the database would refuse it midway, as no error of ours.
            self.errors.append(f"{where}: is not text (an escape of a lone surrogate, \\ud800).")
            return
        self.reject_unknown("", data, {"version", "providers"})
        if data.get("version") != VERSION:
            self.errors.append(f"version: must be {VERSION}.")
        providers = data.get("providers", [])
        if not isinstance(providers, list):
            self.errors.append("providers: must be a list.")
            return
        for index, entry in enumerate(providers):
            where = f"providers[{index}]"
            if not isinstance(entry, dict):
                self.errors.append(f"{where}: must be a mapping.")
                continue
            self.apply_provider(where, entry)

    def reject_unknown(self, where: str, entry: dict[str, Any], known: set[str]) -> None:
        prefix = f"{where}." if where else ""
        for name in entry:
            if name in SECRETS_NEVER_IMPORTED:
                self.errors.append(
                    f"{prefix}{name}: credentials are never imported; set them in the admin "
                    "(API keys also with manage.py set_provider_key)."
                )
            elif name in BACKUP_KEYS_NEVER_IMPORTED:
                self.errors.append(
                    f"{prefix}{name}: backup keys are never imported; add them in the admin "
                    "(or with manage.py set_provider_key --backup NAME)."
                )
            elif name not in known:
                self.errors.append(f"{prefix}{Truncator(name).chars(BRIEF_LENGTH)}: unknown field.")

    def apply_provider(self, where: str, entry: dict[str, Any]) -> None:
        known = {"name", "type", "slug", "models", *PROVIDER_FIELDS, *ACCOUNT_TUNING}
        self.reject_unknown(where, entry, known)
        type_slug = entry.get("type")
        if not isinstance(type_slug, str) or type_slug not in PROVIDER_TYPES:
            self.errors.append(
                f"{where}.type: must be one of {', '.join(PROVIDER_TYPES)} "
                f"(got {brief(type_slug)})."
            )
            return
        found = self.account(where, type_slug, entry)
        if found is None:
            return
        provider, account_name = found
        listed_at, where = where, f"{where} ({type_slug})"
        if provider.pk is not None:
            self.listed[provider.pk] = listed_at
        values = {
            "name": account_name,
            **{name: entry.get(name, default) for name, default in PROVIDER_FIELDS.items()},
        }
        if "slug" in entry:
            # Left out, an account keeps its slug (its models' names in the gateway).
            values["slug"] = entry["slug"]
        values.update({name: entry.get(name, default) for name, default in ACCOUNT_TUNING.items()})
        # Files from before "auth" existed keep each provider's way to authenticate.
        values["auth"] = entry.get("auth", provider.auth)
        moved = [name for name in ADDRESS_FIELDS if values[name] != getattr(provider, name)]
        if moved:
            # The last connection test was of the old address or way to authenticate.
            provider.forget_check()
        sent = set(AUTH_MODE_FIELDS.get(values["auth"], ())) & set(SECRET_FIELDS)
        if moved and any(getattr(provider, name) for name in sent):
            # A file carries no credentials, so none can be typed beside the new address: a
            # stored secret goes only where it was entered (the server's own AWS credentials
            # are no stored secret).
            self.errors.append(
                f"{where}.{moved[0]}: the stored credentials would go to a new address. Remove "
                "them first (in the admin, or manage.py set_provider_key --clear), import, then "
                "enter them again."
            )
            return
        # Moved, the account sends the backup keys entered for its new address only: said in
        # its change (none of them changes).
        was_sent = backup_keys_sent(provider) if moved else 0
        saved = self.save(
            where,
            provider,
            values,
            lambda account: f"provider {account.slug}",
            consequence=(lambda: backup_keys_moved(was_sent, provider)) if moved else str,
        )
        if saved:
            self.listed[provider.pk] = listed_at  # a new account has its id now
            models = entry.get("models", [])
            if not isinstance(models, list):
                self.errors.append(f"{where}.models: must be a list.")
                return
            identifiers: set[Any] = set()
            for index, model_entry in enumerate(models):
                model_where = f"{where}.models[{index}]"
                if not isinstance(model_entry, dict):
                    self.errors.append(f"{model_where}: must be a mapping.")
                elif not isinstance(model_entry.get("identifier", ""), str):
                    self.errors.append(f"{model_where}.identifier: must be text.")
                elif "\x00" in model_entry.get("identifier", ""):
                    # Looked up before it is validated: PostgreSQL refuses a NUL in a query.
                    self.errors.append(f"{model_where}.identifier: must not contain a NUL.")
                elif model_entry.get("identifier") in identifiers:
                    self.errors.append(f"{model_where}.identifier: listed twice.")
                else:
                    identifiers.add(model_entry.get("identifier"))
                    self.apply_model(model_where, provider, model_entry)

    def account(
        self, where: str, type_slug: str, entry: dict[str, Any]
    ) -> tuple[Provider, str] | None:
        """The account the entry describes and the name it is to have: the account of the
        entry's name; for a name no account has, the account of its slug (renamed: a first
        account renamed where it was exported, slugged by its type where it is imported), else
        a new one of the entry's type. Without a name, the type's first account. None after an
        error."""
        if "name" not in entry:
            # A file from before accounts; a type left without any gets its first again.
            label = PROVIDER_TYPES[type_slug].label
            provider = first_account(type_slug) or Provider(
                type=type_slug, name=label, slug=type_slug
            )
            found_by, name = "type", provider.name
        else:
            name = entry["name"]
            # Checked before the lookup: PostgreSQL refuses a NUL in a query.
            name_field = Provider._meta.get_field("name")
            message = value_error(name_field, name) if isinstance(name, str) else "must be text."
            if message:
                self.errors.append(f"{where}.name: {message}")
                return None
            found_by, provider = "name", provider_named(name)
            if provider is None:
                found_by, provider = "slug", self.account_of_slug(entry.get("slug"))
            if provider is None:
                return Provider(type=type_slug), name
        if provider.type != type_slug and found_by == "name":
            self.errors.append(
                f"{where}.type: {brief(name)} is an account of type {provider.type}, not "
                f"{type_slug}: an account's type can't change."
            )
            return None
        if provider.type != type_slug:
            self.errors.append(
                f"{where}.slug: {brief(entry['slug'])} is the slug of {brief(provider.name)}, an "
                f"account of type {provider.type}, not {type_slug}."
            )
            return None
        if provider.pk in self.listed:
            self.errors.append(
                f"{where}.{found_by}: {provider.name} is listed already at "
                f"{self.listed[provider.pk]}."
            )
            return None
        # Found by its name in another case, an account keeps its own; by its slug, it is renamed.
        return provider, name if found_by == "slug" else provider.name

    def account_of_slug(self, slug: Any) -> Provider | None:
        """The account of this slug; None for none, or for a slug its field's checks refuse
        (they say why when the entry is saved)."""
        slug_field = Provider._meta.get_field("slug")
        if not isinstance(slug, str) or value_error(slug_field, slug):
            return None
        return Provider.objects.filter(slug=slug).first()

    def apply_model(self, where: str, provider: Provider, entry: dict[str, Any]) -> None:
        known = {"identifier", *MODEL_FIELDS, *OVERRIDE_FIELDS, *MODEL_RENAMES, "access"}
        self.reject_unknown(where, entry, known)
        # Left out, the model is open; given, even empty, kept to those listed (empty: nobody).
        restricted = "access" in entry
        access = self.access(f"{where}.access", entry["access"]) if restricted else ((), ())
        if access is None:
            return
        identifier = entry.get("identifier")
        model = LLMModel.objects.filter(provider=provider, identifier=identifier).first()
        model = model or LLMModel(provider=provider, identifier=identifier)
        values = {
            name: entry.get(name, default)
            for name, default in {**MODEL_FIELDS, **OVERRIDE_FIELDS}.items()
        }
        facts = provider.provider_type.facts(identifier) if isinstance(identifier, str) else None
        if values["context_limit"] is None and facts and facts.context_limit:
            # Left out, as in the admin's form: the catalog's.
            values["context_limit"] = facts.context_limit
        for name in (*MODEL_PRICE_FIELDS, "monthly_cap"):
            if isinstance(values[name], float) and math.isfinite(values[name]):
                # The number as written (0.1), not the binary float's 0.1000000000000000055.
                values[name] = Decimal(repr(values[name]))
        values["is_default"] = entry.get("default", False)
        values["provider_options"] = entry.get("options", {})
        if values["is_default"] is True:
            if self.default_at:
                self.errors.append(f"{where}.default: {self.default_at} is the default already.")
                return
            self.default_at = where
        replaced = None
        if values["is_default"] is True:
            replaced = LLMModel.objects.filter(is_default=True).exclude(pk=model.pk).first()
        values["restricted"] = restricted
        saved = self.save(where, model, values, model_name)
        if saved:
            self.set_access(model, access, model_name(model))
        if saved and replaced:
            # Saving the new default unset the old one: say so.
            self.changes.append(f"update {model_name(replaced)}: is_default True -> False")

    def access(self, where: str, data: Any) -> tuple[tuple[Group, ...], tuple[Any, ...]] | None:
        """The groups and users named; None after an error."""
        if not isinstance(data, dict):
            # An empty "access:" in YAML reads as null: never taken to mean everyone.
            self.errors.append(
                f"{where}: must be a mapping with groups and users; leave it out to open the "
                "model to everyone."
            )
            return None
        self.reject_unknown(where, data, ACCESS_FIELDS)
        found: list[tuple[Any, ...]] = []
        for key, queryset, name_field in (
            ("groups", Group.objects.all(), "name"),
            ("users", get_user_model().objects.all(), get_user_model().USERNAME_FIELD),
        ):
            names = data.get(key, [])
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                self.errors.append(f"{where}.{key}: must be a list of names.")
                return None
            if any("\x00" in name for name in names):
                self.errors.append(f"{where}.{key}: a name must not contain a NUL.")
                return None
            rows = {
                getattr(row, name_field): row
                for row in queryset.filter(**{f"{name_field}__in": names})
            }
            missing = [name for name in names if name not in rows]
            if missing:
                shown = ", ".join(
                    Truncator(name).chars(BRIEF_LENGTH) for name in missing[:MISSING_SHOWN]
                )
                more = (
                    f" and {len(missing) - MISSING_SHOWN} more" if missing[MISSING_SHOWN:] else ""
                )
                self.errors.append(f"{where}.{key}: no such {key[:-1]}: {shown}{more}.")
                return None
            found.append(tuple(rows[name] for name in dict.fromkeys(names)))
        return found[0], found[1]

    def set_access(self, model: LLMModel, access: tuple[tuple[Any, ...], ...], name: str) -> None:
        groups, users = access
        before = (set(model.allowed_groups.all()), set(model.allowed_users.all()))
        if before == (set(groups), set(users)):
            return
        model.allowed_groups.set(groups)
        model.allowed_users.set(users)
        self.changes.append(
            f"update {name}: access {describe_access(*before)} -> "
            f"{describe_access(set(groups), set(users))}"
        )

    def save(
        self,
        where: str,
        instance: Any,
        values: dict[str, Any],
        name: Callable[[Any], str],
        consequence: Callable[[], str] = str,
    ) -> bool:
        """Set, validate and save; record the change, named by `name` of the instance once
        valid (a new account's slug is made from its name then), and what else it changed
        (`consequence`, once the values are set), or the errors. True when saved."""
        wrong = {
            field: message
            for field, value in values.items()
            if (message := value_error(instance._meta.get_field(field), value))
        }
        if wrong:
            labels = {"provider_options": "options", "is_default": "default"}
            self.errors += [
                f"{where}.{labels.get(field, field)}: {message}" for field, message in wrong.items()
            ]
            return False
        before = {field: getattr(instance, field) for field in values}
        for field, value in values.items():
            setattr(instance, field, value)
        try:
            instance.full_clean()
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                label = {"provider_options": "options", "is_default": "default"}.get(field, field)
                self.errors += [f"{where}.{label}: {message}" for message in messages]
            return False
        changed = {
            field: (before[field], getattr(instance, field))
            for field in values
            if before[field] != getattr(instance, field)
        }
        if instance.pk is None:
            self.changes.append(f"create {name(instance)}")
        elif changed:
            details = ", ".join(
                f"{field} {old!r} -> {new!r}" for field, (old, new) in changed.items()
            )
            self.changes.append(f"update {name(instance)}: {details}{consequence()}")
        if instance.pk is None or changed:
            instance.save()
        return True


def backup_keys_sent(provider: Provider) -> int:
    """How many of the account's backup keys calls send at its address as it is now: those
    stored, readable, and entered for it (BackupKey.credentials, without decrypting)."""
    if provider.pk is None:
        return 0
    return provider.backup_keys.filter(
        entered_for=provider.address, encrypted_with__in=api_key_ids()
    ).count()


def backup_keys_moved(was_sent: int, provider: Provider) -> str:
    """What an account's new address or way of signing in does to its backup keys, of which
    `was_sent` were sent at the old one: each goes only where it was entered."""
    sent = backup_keys_sent(provider)
    said = ""
    if was_sent:
        said += (
            f"; {was_sent} backup keys were entered for the old address and are no longer "
            "sent: enter them again"
        )
    if sent:
        said += f"; {sent} backup keys entered for this address are sent again"
    return said


def model_name(model: LLMModel) -> str:
    """A model as the gateway names it where identifiers repeat: its account's slug first."""
    return f"model {model.provider.slug}/{model.identifier}"


def not_text_at(data: Any) -> str | None:
    """Where the data holds a string (or a key) that is not text, or None: YAML's and JSON's
    escapes write lone surrogates ("\\ud800"), which no database takes."""
    pending: list[tuple[str, Any]] = [("", data)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str) and not is_text(value):
            return where or "the file"
        # Each's children pushed last first: the first in the file is found first.
        if isinstance(value, dict):
            if not all(is_text(key) for key in value if isinstance(key, str)):
                return f"{where or 'the file'} (a key)"
            named = [(f"{where}.{key}" if where else str(key), item) for key, item in value.items()]
            pending.extend(reversed(named))
        elif isinstance(value, list):
            pending.extend(reversed([(f"{where}[{i}]", item) for i, item in enumerate(value)]))
    return None


def is_text(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def value_error(field: models.Field, value: Any) -> str | None:
    """What is wrong with a value from the file for this column, before Django sees it.

    YAML gives booleans where numbers belong, infinities and NaN, and NUL characters; the
    model fields would take some silently (True as 1, NaN as NULL) or fail in the database.
    """
    if value is None:
        return None
    if isinstance(field, models.BooleanField):
        return None if isinstance(value, bool) else "must be true or false."
    if isinstance(field, models.IntegerField):
        whole = isinstance(value, int) and not isinstance(value, bool)
        return None if whole else "must be a whole number."
    if isinstance(field, models.DecimalField):
        # A number, or its text ("3.75"), read here: Django's message would repeat the text.
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            return "must be a number."
        try:
            number = Decimal(value)
        except InvalidOperation:
            return "must be a number."
        return None if number.is_finite() else "must be a finite number."
    if isinstance(field, models.FloatField):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number."
        try:
            finite = math.isfinite(value)
        except OverflowError:  # a whole number past any float's range
            finite = False
        return None if finite else "must be a finite number."
    if isinstance(field, models.CharField):
        if not isinstance(value, str):
            return "must be text."
        if field.choices and value not in dict(field.choices):
            # Not Django's message, which repeats the value whatever its length.
            return f"must be one of {', '.join(dict(field.choices))} (got {brief(value)})."
        return "must not contain a NUL character." if "\x00" in value else None
    return None


def describe_access(groups: set[Any], users: set[Any]) -> str:
    names = sorted(group.name for group in groups) + sorted(u.get_username() for u in users)
    return "[" + ", ".join(names) + "]"
