from __future__ import annotations

import hashlib
import json
import unicodedata
import uuid
from collections.abc import Collection
from typing import Any, Literal

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.sessions.base_session import AbstractBaseSession
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import connection, models, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.debug import sensitive_variables

from llmadmin import audit
from llmadmin.fields import (
    APIKeyField,
    UnreadableKey,
    validate_api_key,
    validate_base_url,
    validate_no_hidden_characters,
    validate_no_surrounding_whitespace,
    validate_no_whitespace,
)
from llmadmin.providers import (
    GENERAL_FIELDS,
    PROVIDER_TYPES,
    ProviderType,
    provider_type_choices,
)
from llmadmin.providers.base import ModelSettings
from llmadmin.providers.catalog import ModelFacts
from llmadmin.providers.transport import ProviderClient

KeyState = Literal["missing", "unreadable", "set", "server"]

# The fields that hold secrets: encrypted at rest, never shown, exported or logged.
SECRET_FIELDS = ("api_key", "aws_secret_access_key", "aws_session_token")
# Where and how the credentials are sent: a stored secret goes only where it was entered.
ADDRESS_FIELDS = ("base_url", "region", "auth")


class AuthMode(models.TextChoices):
    """How a provider account authenticates; a type offers some (ProviderType.auth_modes)."""

    API_KEY = "api_key", "API key"
    AWS_KEYS = "aws_keys", "IAM access key"
    DEFAULT_CHAIN = "default_chain", "The server's AWS credentials"


# The fields each auth mode reads; the others are left as stored.
AUTH_MODE_FIELDS = {
    AuthMode.API_KEY: ("api_key",),
    AuthMode.AWS_KEYS: ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"),
    AuthMode.DEFAULT_CHAIN: (),
}


class CheckStatus(models.TextChoices):
    """The outcome of the last connection test (the provider layer's status names)."""

    VERIFIED = "verified", "Verified"
    REJECTED = "rejected", "Key rejected"
    UNREACHABLE = "unreachable", "Unreachable"
    NO_PERMISSION = "no_permission", "Lacks permission"


class Availability(models.TextChoices):
    """Whether developers get a provider's models, and if not, why."""

    AVAILABLE = "available", "Available"
    PROVIDER_DISABLED = "provider_disabled", "Provider disabled"
    MISSING_KEY = "missing_key", "No key"
    KEY_UNREADABLE = "key_unreadable", "Key unreadable"
    KEY_REJECTED = "key_rejected", "Key rejected"
    CONNECTION_FAILED = "connection_failed", "Connection test failed"


# What a failed connection test makes of the provider's models until a test passes or the
# credentials or address change. Lacking permission is not among them: the test lists
# models, which a role allowed only to chat may not do.
FAILED_CHECKS = {
    CheckStatus.REJECTED: Availability.KEY_REJECTED,
    CheckStatus.UNREACHABLE: Availability.CONNECTION_FAILED,
}


# Lowercase, so that no two accounts' gateway names differ by case alone.
SLUG_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]*\Z",
    "Enter lowercase letters, digits, hyphens or underscores, beginning with a letter or digit.",
)


class KeyFault(models.TextChoices):
    """Why a key of an account cools down (the provider layer's KEY_FAULTS)."""

    REJECTED = "rejected", "Refused by the provider"
    RATE_LIMITED = "rate_limited", "Rate-limited"
    OUT_OF_CREDIT = "out_of_credit", "Out of credit"
    FAILED = "failed", "The provider failed"
    UNREACHABLE = "unreachable", "No connection"


# Written by calls, not forms (KeyUse).
KEY_USE_FIELDS = ("last_used_at", "cooling_until", "cooling_reason")


class KeyUse(models.Model):
    """A key's use by calls: when it was last used, and whether it is cooling down after a
    failure. Written by calls (key_pools), never by a form; shared by every process."""

    last_used_at = models.DateTimeField("last used", null=True, blank=True, editable=False)
    # Not tried until then; a refused key (KeyFault.REJECTED) has no end: an admin acts.
    cooling_until = models.DateTimeField(null=True, blank=True, editable=False)
    cooling_reason = models.CharField(
        max_length=16, blank=True, editable=False, choices=KeyFault.choices
    )

    class Meta:
        abstract = True

    # Whether this save is to write the key's use: only when forget_cooling was called.
    cooling_forgotten = False
    # Fields others keep (signals), which a save of this row never writes back.
    kept_elsewhere: tuple[str, ...] = ()

    def save(self, *args: Any, **kwargs: Any) -> None:
        """A save of a stored key leaves its use (KEY_USE_FIELDS) as calls wrote it meanwhile
        (an admin's form loaded it earlier), unless the cooldown was forgotten here; and
        what others keep (kept_elsewhere) as they wrote it."""
        if not self._state.adding and not args and kwargs.get("update_fields") is None:
            left = {*self.kept_elsewhere, *(() if self.cooling_forgotten else KEY_USE_FIELDS)}
            kwargs["update_fields"] = [
                field.name
                for field in self._meta.concrete_fields
                if not field.primary_key and field.name not in left
            ]
        super().save(*args, **kwargs)
        self.cooling_forgotten = False

    def cooling(self, now: Any) -> bool:
        return self.cooling_reason == KeyFault.REJECTED or bool(
            self.cooling_until and self.cooling_until > now
        )

    def forget_cooling(self) -> None:
        """Try the key again: an admin acted, or its credentials changed."""
        self.cooling_until, self.cooling_reason = None, ""
        self.cooling_forgotten = True


class Credentials(models.Model):
    """A provider account's credentials, or one of its backup keys': an API key, or an IAM
    access key (ID, secret, session token). The secrets are encrypted at rest, never shown,
    exported or logged."""

    api_key = APIKeyField(
        "API key",
        max_length=500,
        blank=True,
        null=True,
        validators=[validate_api_key],
    )
    aws_access_key_id = models.CharField(
        "AWS access key ID",
        max_length=128,
        blank=True,
        validators=[RegexValidator(r"^[A-Z0-9]{16,128}$", "Enter an access key ID such as AKIA….")],
    )
    aws_secret_access_key = APIKeyField(
        "AWS secret access key",
        max_length=128,
        blank=True,
        null=True,
        validators=[validate_api_key],
    )
    aws_session_token = APIKeyField(
        "AWS session token",
        max_length=4096,
        blank=True,
        null=True,
        validators=[validate_api_key],
    )

    class Meta:
        abstract = True


class Provider(KeyUse, Credentials):
    """An LLM provider account, configured by an administrator: a type may have several (an
    internal vLLM and a LiteLLM gateway, Azure in two regions), each with its own name,
    credentials, address and models. Every type has at least one (apps.create_provider_rows)."""

    type = models.CharField(max_length=32, choices=provider_type_choices)
    name = models.CharField(
        max_length=100,
        validators=[validate_no_surrounding_whitespace, validate_no_hidden_characters],
        help_text="What admins and developers call this account, e.g. Internal vLLM or Azure EU.",
    )
    slug = models.CharField(
        max_length=50,
        unique=True,
        blank=True,
        validators=[SLUG_VALIDATOR],
        help_text="Names this account's models in the gateway where identifiers repeat "
        "(slug/identifier). Empty: made from the name. Changing it renames them for clients.",
        error_messages={"unique": "Another provider account has this slug."},
    )
    base_url = models.CharField(
        "base URL",
        max_length=500,
        blank=True,
        validators=[validate_base_url],
        help_text="Leave empty for the provider's own endpoint; set it for a proxy such as "
        "LiteLLM, an AI gateway, or a regional or self-hosted endpoint.",
    )
    auth = models.CharField(
        "authentication",
        max_length=16,
        choices=AuthMode.choices,
        default=AuthMode.API_KEY,
        help_text="How the server authenticates to the provider.",
    )
    # Which encryption key (by APIKeyField.key_ids) encrypted the secrets the auth mode uses;
    # empty when they are not all stored. Tells readability without decrypting.
    api_key_encrypted_with = models.CharField(max_length=16, blank=True, editable=False)
    region = models.CharField(
        max_length=32,
        blank=True,
        validators=[
            RegexValidator(r"^[a-z]{2}(-[a-z]+)+-\d$", "Enter an AWS region such as us-east-1.")
        ],
        help_text="AWS region of the Bedrock endpoint, such as us-east-1.",
    )
    enabled = models.BooleanField(default=True)
    key_cooldown = models.PositiveIntegerField(
        "key cooldown (seconds)",
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(86400)],
        help_text="How long a key that failed is left out, unless the provider says how "
        "long (a rate limit's Retry-After). A refused key is left out until you act.",
    )
    # The last connection test of the current key; cleared when the key changes.
    check_status = models.CharField(
        "connection",
        max_length=16,
        blank=True,
        editable=False,
        choices=CheckStatus.choices,
    )
    check_reason = models.CharField(max_length=300, blank=True, editable=False)
    # Whether seed_defaults created this type's catalog models: once only, so a model an
    # administrator deleted never comes back.
    catalog_seeded = models.BooleanField(default=False, editable=False)
    checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Whether it has backup keys: kept by their saves and deletions (signals), so that lists
    # tell availability and calls their keys without a query.
    backup_keys_stored = models.BooleanField(default=False, editable=False)
    kept_elsewhere = ("backup_keys_stored",)
    # The keys a call tries, in order (key_pools.pool_of), where the account has backup
    # keys: set where calls load their provider (chat.model_list). None: its own key alone.
    key_pool: list[Any] | None = None

    class Meta:
        ordering = ["type", "pk"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="unique_provider_name",
                violation_error_code="duplicate_name",
                violation_error_message="Another provider account has this name.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    # The ORM's frames below hold the plaintext secrets (pre_save): cleansed in error reports.
    @sensitive_variables()
    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._state.adding and Provider.objects.filter(type=self.type).exists():
            # seed_defaults gives the catalog's models to a type's first account only: one
            # added beside it never gets them, not even once it is the first.
            self.catalog_seeded = True
        required = self.required_secrets
        missing = any(getattr(self, name) is None for name in required)
        if (
            not required
            or missing
            or (self.auth == AuthMode.AWS_KEYS and not self.aws_access_key_id)
        ):
            self.api_key_encrypted_with = ""
        elif not any(isinstance(getattr(self, name), UnreadableKey) for name in self.mode_secrets):
            self.api_key_encrypted_with = api_key_ids()[0]
        elif self.api_key_encrypted_with in api_key_ids():
            # An unreadable secret (the other way's, before a switch) must not pass for one
            # that today's keys read; an old key's id stays, so restoring it restores all.
            self.api_key_encrypted_with = "unreadable"
        super().save(*args, **kwargs)

    @property
    def label(self) -> str:
        """The account's name, and its type where the name doesn't say it."""
        return provider_label(self.name, self.type)

    @property
    def required_secrets(self) -> tuple[str, ...]:
        """The secret fields the auth mode needs; the server's own credentials need none."""
        return self.mode_secrets[:1]

    @property
    def mode_secrets(self) -> tuple[str, ...]:
        """The secret fields the auth mode uses, required one first."""
        return {
            AuthMode.API_KEY: ("api_key",),
            AuthMode.AWS_KEYS: ("aws_secret_access_key", "aws_session_token"),
        }.get(self.auth, ())

    def credentials(self) -> dict[str, str]:
        """The plaintext credentials of the auth mode, for the client; empty when a required
        one is missing or unreadable (the client then refuses to call)."""
        if self.key_state != "set":
            return {}
        if self.auth == AuthMode.AWS_KEYS:
            return {
                "aws_access_key_id": self.aws_access_key_id,
                "aws_secret_access_key": self.aws_secret_access_key,
                "aws_session_token": self.usable(self.aws_session_token),
            }
        return {"api_key": self.api_key}

    @staticmethod
    def usable(secret: str | None) -> str:
        return "" if secret is None or isinstance(secret, UnreadableKey) else secret

    @property
    def provider_type(self) -> ProviderType:
        return PROVIDER_TYPES[self.type]

    @property
    def key_state(self) -> KeyState:
        if self.auth == AuthMode.DEFAULT_CHAIN:
            return "server"
        if self.auth == AuthMode.AWS_KEYS and not self.aws_access_key_id:
            return "missing"
        if any(getattr(self, name) is None for name in self.required_secrets):
            return "missing"
        if any(isinstance(getattr(self, name), UnreadableKey) for name in self.mode_secrets):
            return "unreadable"
        return "set"

    @property
    def availability(self) -> Availability:
        """Whether developers can use this provider's models, known without decrypting. An
        account with backup keys is available without a key of its own, or with its own
        refused by the last test: calls use its backup keys then."""
        if not self.enabled:
            return Availability.PROVIDER_DISABLED
        if self.auth != AuthMode.DEFAULT_CHAIN:
            # The server's own credentials are resolved when called: only a test tells.
            if not self.api_key_encrypted_with and not self.backup_keys_stored:
                return Availability.MISSING_KEY
            if self.api_key_encrypted_with not in ("", *api_key_ids()):
                return Availability.KEY_UNREADABLE
        if self.check_status == CheckStatus.REJECTED and self.backup_keys_stored:
            return Availability.AVAILABLE
        # What the last test of these credentials found holds until the next test.
        return FAILED_CHECKS.get(self.check_status, Availability.AVAILABLE)

    def replace_api_key(self, api_key: str | None) -> None:
        """Set a new key (None removes it); the last connection test no longer applies."""
        self.api_key = api_key or None
        self.forget_check()

    def forget_check(self) -> None:
        """New credentials: the last connection test no longer applies, nor the key's
        cooldown."""
        self.check_status, self.check_reason, self.checked_at = "", "", None
        self.forget_cooling()

    @property
    def address(self) -> str:
        """Where and how this account's credentials are sent, as a digest: a backup key
        entered for another address is not sent to this one."""
        text = json.dumps([self.auth, self.base_url, self.region])
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def usable_api_key(self) -> str | None:
        """The plaintext key to send to the provider, or None when missing or unreadable."""
        return self.api_key if self.key_state == "set" else None

    @property
    def effective_base_url(self) -> str:
        return self.provider_type.effective_base_url(base_url=self.base_url, region=self.region)

    def client(self, credentials: dict[str, str] | None = None) -> ProviderClient:
        """A client of this account's API, with its own credentials or those given (a
        backup key's); raises ProviderError without a readable key."""
        if credentials is None:
            credentials = self.credentials()
        return self.provider_type.connect(
            base_url=self.base_url, region=self.region, auth=self.auth, **credentials
        )

    def validate_constraints(self, exclude: Collection[str] | None = None) -> None:
        try:
            super().validate_constraints(exclude)
        except ValidationError as error:
            raise on_field(error, "duplicate_name", "name") from None

    def name_clashes(self) -> dict[str, str]:
        """The name's error where another account has it in any case (the database's lower()
        folds ASCII only on SQLite), or reads alike in lists."""
        name, label = self.name.casefold(), self.label.casefold()
        others = list(Provider.objects.exclude(pk=self.pk).values_list("name", "type"))
        if any(other_name.casefold() == name for other_name, _ in others):
            return {"name": "Another provider account has this name."}
        if any(provider_label(*other).casefold() == label for other in others):
            return {
                "name": f"Another provider account reads as {self.label!r}: choose a name "
                "that tells them apart."
            }
        return {}

    def clean(self) -> None:
        if isinstance(self.name, str):
            # Compatibility forms (fullwidth, mathematical letters) read as the plain name.
            self.name = unicodedata.normalize("NFKC", self.name)
        if not self.slug and isinstance(self.name, str):
            self.slug = slugify(self.name)[:50].strip("-")
        if self.api_key == "":
            self.api_key = None
        for name in ("aws_secret_access_key", "aws_session_token"):
            if getattr(self, name) == "":
                setattr(self, name, None)
        errors: dict[str, str] = {}
        if not self.slug and self.name:
            errors["slug"] = "Enter a slug: the name has no letters or digits to make one of."
        if self.pk is not None:
            stored_type = Provider.objects.filter(pk=self.pk).values_list("type", flat=True)
            if stored_type.first() not in (None, self.type):
                # Its models' options are its type's; another type is another account.
                errors["type"] = "An account's type can't change: add an account of that type."
        if isinstance(self.name, str) and self.name:
            errors.update(self.name_clashes())
        provider_type = PROVIDER_TYPES.get(self.type)
        if provider_type and self.auth not in provider_type.auth_modes:
            errors["auth"] = f"{provider_type.label} authenticates with an API key."
        elif self.auth == AuthMode.AWS_KEYS:
            if not self.aws_access_key_id:
                errors["aws_access_key_id"] = "Enter the access key ID of the IAM access key."
            if self.aws_secret_access_key is None:
                errors["aws_secret_access_key"] = "Enter the secret access key."  # noqa: S105
        has_credentials = self.api_key is not None or self.auth != AuthMode.API_KEY
        if provider_type and has_credentials:
            if provider_type.base_url_required and not self.base_url:
                errors["base_url"] = (
                    f"{provider_type.label} has no default endpoint: enter its base URL, "
                    f"e.g. {provider_type.base_url_example}."
                )
            if provider_type.region_required and not self.region:
                errors["region"] = f"{provider_type.label} needs a region, such as us-east-1."
        if errors:
            raise ValidationError(errors)


def provider_label(name: str, type_slug: str) -> str:
    """An account's name, and its type where the name doesn't say it: "OpenAI",
    "Internal vLLM (OpenAI Compatible)", "Azure OpenAI EU (OpenAI)" (another type's label
    holding its type's does not say it)."""
    provider_type = PROVIDER_TYPES.get(type_slug)
    if provider_type is None:
        return name
    folded, own = name.casefold(), provider_type.label.casefold()
    said = own in folded and not any(
        own in other and other in folded
        for other in (other.label.casefold() for other in PROVIDER_TYPES.values())
        if other != own
    )
    return name if said else f"{name} ({provider_type.label})"


def on_field(error: ValidationError, code: str, field: str) -> ValidationError:
    """A constraint's error of this code on the field it is about, not the whole form."""
    errors = error.update_error_dict({})
    for item in errors.pop(NON_FIELD_ERRORS, []):
        errors.setdefault(field if item.code == code else NON_FIELD_ERRORS, []).append(item)
    return ValidationError(errors)


class BackupKey(KeyUse, Credentials):
    """Another key of a provider account, tried after the account's own key (and the backup
    keys before it) when that one is refused, rate-limited or failing (key_pools). Sent only
    to the address it was entered for: the account's address then."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="backup_keys")
    position = models.PositiveSmallIntegerField(
        "order", default=1, help_text="Backup keys are tried in this order, lowest first."
    )
    name = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_no_surrounding_whitespace, validate_no_hidden_characters],
        help_text="What tells this key apart, e.g. the project or team it belongs to.",
    )
    # Which encryption key (by APIKeyField.key_ids) encrypted the secrets; empty when the
    # required ones are not stored. Tells readability without decrypting.
    encrypted_with = models.CharField(max_length=16, blank=True, editable=False)
    # The account's address (Provider.address) when the key was entered.
    entered_for = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # Changed by every save, never by a call's: a call tells by it that the key it cools is
    # still the one it sent (key_pools.key_cool).
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "position", "pk"]

    def __str__(self) -> str:
        return self.name or f"Backup key {self.position}"

    @sensitive_variables()
    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.api_key == "":
            self.api_key = None
        secrets = (self.api_key, self.aws_secret_access_key, self.aws_session_token)
        if not any(secret is not None for secret in secrets[:2]):
            self.encrypted_with = ""
        elif not any(isinstance(secret, UnreadableKey) for secret in secrets):
            self.encrypted_with = api_key_ids()[0]
        elif self.encrypted_with in api_key_ids():
            self.encrypted_with = "unreadable"
        super().save(*args, **kwargs)

    def enter_for(self, provider: Provider) -> None:
        """The key was typed for the account as it is now: sent to its address, and tried
        again."""
        self.entered_for = provider.address
        self.forget_cooling()

    def credentials(self, provider: Provider) -> dict[str, str]:
        """The plaintext credentials for the account's auth mode; empty unless the key is
        stored, readable and entered for the account's address."""
        if self.entered_for != provider.address or self.encrypted_with not in api_key_ids():
            return {}
        if provider.auth == AuthMode.AWS_KEYS:
            if not self.aws_access_key_id or self.aws_secret_access_key is None:
                return {}
            return {
                "aws_access_key_id": self.aws_access_key_id,
                "aws_secret_access_key": self.aws_secret_access_key,
                "aws_session_token": Provider.usable(self.aws_session_token),
            }
        if provider.auth == AuthMode.API_KEY and self.api_key is not None:
            return {"api_key": self.api_key}
        return {}

    def state(self, provider: Provider, now: Any) -> str:
        """In words, for the admin: whether the key is tried, and if not, why."""
        if self.entered_for != provider.address:
            return "Entered for another address or way of signing in: paste it again."
        if not self.encrypted_with:
            return "No key stored."
        if self.encrypted_with not in api_key_ids():
            return "Unreadable with the server's encryption keys: paste it again."
        return key_use_state(self, now)


def key_use_state(key: KeyUse, now: Any) -> str:
    """A key's cooldown and last use, in words."""
    if key.cooling_reason == KeyFault.REJECTED:
        return "Refused by the provider: left out until you paste it again or tick Try again."
    if key.cooling(now):
        until = timezone.localtime(key.cooling_until).strftime("%Y-%m-%d %H:%M:%S")
        return f"Cooling down ({key.get_cooling_reason_display().lower()}) until {until}."
    if key.last_used_at is None:
        return "Ready; not used yet."
    used = timezone.localtime(key.last_used_at).strftime("%Y-%m-%d %H:%M")
    return f"Ready; last used {used}."


def api_key_ids() -> tuple[str, ...]:
    return Provider._meta.get_field("api_key").key_ids


class ConfigurationVersion(models.Model):
    """One row naming the state developers' model lists depend on.

    A new token is written in the transaction of each change, under the row's lock: a later
    change waits for an earlier one to commit, so what a reader sees follows commit order
    (timestamps follow clocks). Random, not counted: a database restored or rolled back to an
    earlier state never meets a number a process already built a list for.
    """

    token = models.UUIDField(default=uuid.uuid4)

    def __str__(self) -> str:
        return f"Configuration {self.token}"


class ConfigurationChange(models.Model):
    """What one change touched, so that a process updates only that (chat.model_list).

    Written under ConfigurationVersion's lock, so ids follow commit order; its token is the one
    the change wrote there, so a process can tell that the change it applied last is still in
    this database's history (not restored, rolled back or pruned away).
    """

    class Kind(models.TextChoices):
        MODELS = "models", "Models or their access lists"
        PROVIDERS = "providers", "Providers"
        EVERYTHING = "everything", "Anything"

    token = models.UUIDField()
    # The token this change replaced: a change that wrote a token without a row here (a
    # process of the previous release, during a rolling deploy) breaks the chain.
    previous = models.UUIDField(null=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    ids = models.JSONField(default=list)

    def __str__(self) -> str:
        return f"Change {self.pk} of {self.kind}"


# Changes kept: a process that missed more rebuilds everything once.
KEPT_CHANGES = 1000


def configuration_changed(
    kind: ConfigurationChange.Kind = ConfigurationChange.Kind.EVERYTHING,
    ids: Collection[int] = (),
) -> None:
    """Mark a change to providers, models or who may use them, in its transaction: of these
    models (their rows or access lists) or providers, by id, or of anything."""
    token = uuid.uuid4()
    with transaction.atomic():
        # The row's lock first: the change's id below then follows commit order.
        versions = ConfigurationVersion.objects.select_for_update().filter(pk=1)
        previous = versions.values_list("token", flat=True).first()
        if previous is None:
            ConfigurationVersion.objects.update_or_create(pk=1, defaults={"token": token})
        else:
            versions.update(token=token)
        change = ConfigurationChange.objects.create(
            token=token, previous=previous, kind=kind, ids=sorted(ids)
        )
    if change.pk % 100 == 0:
        ConfigurationChange.objects.filter(pk__lte=change.pk - KEPT_CHANGES).delete()


# Any number that no other advisory lock of this database uses.
DEFAULT_MODEL_LOCK = 0x6C6C6D_0001


def lock_default_changes() -> None:
    """Serialise every change of the default model until the transaction ends.

    Two concurrent "make default" would otherwise each unset the other's old default and
    collide on the one-default index (or deadlock) on PostgreSQL. SQLite serialises writers
    itself.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [DEFAULT_MODEL_LOCK])


PRICE_FIELDS = ("input_price", "output_price", "cache_read_price", "cache_write_price")
# The prices of a call whose prompt is over the long-context threshold (billing.ledger), in the
# same order: models.dev's context_over_200k tier.
LONG_CONTEXT_PRICE_FIELDS = tuple(f"long_context_{name}" for name in PRICE_FIELDS)
MODEL_PRICE_FIELDS = (*PRICE_FIELDS, *LONG_CONTEXT_PRICE_FIELDS)
LONG_CONTEXT_HELP = (
    "USD per 1M tokens for the whole of a call whose prompt is over 200k tokens (272k for "
    "OpenAI's GPT-5.4 and 5.5). All four empty: such calls cost the prices above."
)


def price_field(verbose_name: str, help_text: str = "") -> models.DecimalField:
    return models.DecimalField(
        verbose_name,
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=help_text
        or "USD per 1M tokens. Empty means unpriced, which is not the same as 0 (free).",
    )


# Above any context window models.dev lists (the largest: 20M for a chat model, 99,999,999
# for a video model): a larger number is a typo.
MAX_CONTEXT_LIMIT = 100_000_000


# Named LLMModel so that it never reads like django.db.models.Model.
class LLMModel(models.Model):
    """A model of a provider that developers can chat with, with its request options."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="models")
    identifier = models.CharField(
        max_length=200,
        validators=[validate_no_whitespace],
        help_text="The exact model id the provider expects, e.g. claude-sonnet-4-5. "
        "For Azure OpenAI, the deployment name.",
    )
    display_name = models.CharField(max_length=200, validators=[validate_no_surrounding_whitespace])
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField("default", default=False)
    context_limit = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_CONTEXT_LIMIT)],
        help_text="Context window in tokens.",
    )
    compression_threshold = models.PositiveSmallIntegerField(
        default=70,
        validators=[MaxValueValidator(100)],
        help_text="Percent of the context limit at which older messages are summarised; "
        "100 turns summarising off.",
    )
    max_output_tokens = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    temperature = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(2)]
    )
    top_p = models.FloatField(
        "top P", null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(1)]
    )
    top_k = models.PositiveIntegerField(
        "top K", null=True, blank=True, validators=[MinValueValidator(1)]
    )
    presence_penalty = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(-2), MaxValueValidator(2)]
    )
    frequency_penalty = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(-2), MaxValueValidator(2)]
    )
    # The models.dev snapshot can lag a provider's docs (Claude Sonnet 4.6 writes 128K; the
    # snapshot says 64,000): an admin may go above its output limit knowingly, saying why.
    override_catalog_limit = models.BooleanField(
        "override the catalog's output limit",
        default=False,
        help_text="Allow max output tokens above the models.dev limit, where the provider "
        "documents a higher one. Say why below.",
    )
    catalog_limit_note = models.CharField(
        "why the catalog's limit doesn't hold",
        max_length=300,
        blank=True,
        help_text="E.g. the provider's page that gives the higher limit. Required with the "
        "override.",
    )
    # USD per 1M tokens, from the catalog when the model is chosen; empty is unpriced.
    input_price = price_field("input price")
    output_price = price_field("output price")
    cache_read_price = price_field("cache read price")
    cache_write_price = price_field("cache write price")
    long_context_input_price = price_field("long-context input price", LONG_CONTEXT_HELP)
    long_context_output_price = price_field("long-context output price", LONG_CONTEXT_HELP)
    long_context_cache_read_price = price_field("long-context cache read price", LONG_CONTEXT_HELP)
    long_context_cache_write_price = price_field(
        "long-context cache write price", LONG_CONTEXT_HELP
    )
    monthly_cap = models.DecimalField(
        "monthly cap per developer",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="USD each developer may spend on this model per calendar month, within "
        "their monthly budget. Empty: only their budget limits it.",
    )
    # Who may use it: everyone, or (restricted) only the groups and users listed.
    restricted = models.BooleanField(
        "only for the groups and users below",
        default=False,
        help_text="Leave unticked to offer the model to every developer. Ticked with no group "
        "or user, nobody gets it.",
    )
    allowed_groups = models.ManyToManyField(
        Group, blank=True, related_name="+", verbose_name="groups"
    )
    allowed_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="+", verbose_name="users"
    )
    provider_options = models.JSONField(
        default=dict,
        blank=True,
        help_text="Options of the provider type, as defined in its registry schema.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "model"
        ordering = ["provider__type", "provider", "display_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "identifier"],
                name="unique_identifier_per_provider",
                violation_error_code="duplicate_identifier",
                violation_error_message="This provider already has a model with this identifier.",
            ),
            # At most one default model, whatever code writes the rows.
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_model"
            ),
            models.CheckConstraint(condition=Q(context_limit__gt=0), name="context_limit_positive"),
            models.CheckConstraint(
                condition=Q(compression_threshold__lte=100), name="compression_threshold_percent"
            ),
            models.CheckConstraint(
                condition=Q(max_output_tokens__isnull=True)
                | Q(max_output_tokens__gt=0, max_output_tokens__lte=models.F("context_limit")),
                name="max_output_tokens_within_context",
            ),
            models.CheckConstraint(
                condition=Q(temperature__isnull=True) | Q(temperature__gte=0, temperature__lte=2),
                name="temperature_range",
            ),
            models.CheckConstraint(
                condition=Q(top_p__isnull=True) | Q(top_p__gte=0, top_p__lte=1), name="top_p_range"
            ),
            models.CheckConstraint(
                condition=Q(top_k__isnull=True) | Q(top_k__gte=1), name="top_k_range"
            ),
            models.CheckConstraint(
                condition=Q(presence_penalty__isnull=True)
                | Q(presence_penalty__gte=-2, presence_penalty__lte=2),
                name="presence_penalty_range",
            ),
            models.CheckConstraint(
                condition=Q(frequency_penalty__isnull=True)
                | Q(frequency_penalty__gte=-2, frequency_penalty__lte=2),
                name="frequency_penalty_range",
            ),
            *(
                models.CheckConstraint(
                    condition=Q(**{f"{name}__isnull": True}) | Q(**{f"{name}__gte": 0}),
                    name=f"{name}_not_negative",
                )
                for name in MODEL_PRICE_FIELDS
            ),
            models.CheckConstraint(
                condition=Q(monthly_cap__isnull=True) | Q(monthly_cap__gte=0),
                name="monthly_cap_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Making a model the default unsets the previous one in the same transaction; which
        # one it was is kept for the admin to say so.
        self.replaced_default: LLMModel | None = None
        with transaction.atomic():
            if self.is_default:
                lock_default_changes()
                previous = LLMModel.objects.filter(is_default=True).exclude(pk=self.pk)
                unset = list(previous)
                previous.update(is_default=False, updated_at=timezone.now())
                for model in unset:  # one at most
                    audit.log_change(model, "is_default", True, False)
                    self.replaced_default = model
            # In the transaction: billing writes the price history on post_save.
            super().save(*args, **kwargs)

    @classmethod
    def from_db(cls, db: str, field_names: Collection[str], values: Collection[Any]) -> LLMModel:
        model = super().from_db(db, field_names, values)
        if set(MODEL_PRICE_FIELDS) <= set(field_names):
            # To tell a change of prices at save() (billing's price history).
            model.saved_prices = model.prices
        return model

    @property
    def prices(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in MODEL_PRICE_FIELDS)

    @property
    def general_options(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in GENERAL_FIELDS}

    def settings(self) -> ModelSettings:
        """What a client needs of this model to build its request."""
        return ModelSettings(
            identifier=self.identifier,
            options=dict(self.provider_options),
            **self.general_options,
        )

    @property
    def catalog_facts(self) -> ModelFacts | None:
        """What models.dev knows of this model; None when it isn't listed."""
        return self.provider.provider_type.facts(self.identifier)

    def check_options(self) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """Validate the general fields and provider options against the provider's type and
        the model's catalog facts."""
        provider_type = self.provider.provider_type
        options = self.provider_options if isinstance(self.provider_options, dict) else {}
        general = {
            **self.general_options,
            "context_limit": self.context_limit,
            "identifier": self.identifier,
            "override_catalog_limit": self.override_catalog_limit,
        }
        return provider_type.check_model(general, options)

    def validate_constraints(self, exclude: Collection[str] | None = None) -> None:
        # save() unsets the previous default, so another default is never a conflict here.
        exclude = {*(exclude or ()), "is_default"}
        try:
            super().validate_constraints(exclude)
        except ValidationError as error:
            raise on_field(error, "duplicate_identifier", "identifier") from None

    def clean(self) -> None:
        errors: dict[str, list[Any]] = {}
        if self.pk is not None and self.provider_id is not None:
            stored = LLMModel.objects.filter(pk=self.pk).values_list("provider_id", flat=True)
            if stored.first() not in (None, self.provider_id):
                # Its options are its account's type's, and its spend is its account's.
                errors["provider"] = [
                    "A model stays with its provider account: add it to the other account."
                ]
        if (
            self.max_output_tokens is not None
            and self.context_limit is not None
            and self.max_output_tokens > self.context_limit
        ):
            errors["max_output_tokens"] = [
                f"Must be at most the context limit ({self.context_limit})."
            ]
        note = self.catalog_limit_note
        if self.override_catalog_limit and not (isinstance(note, str) and note.strip()):
            errors["catalog_limit_note"] = [
                "Say why the catalog's limit doesn't hold, e.g. the provider's page that "
                "gives the higher limit."
            ]
        for name in ("identifier", "display_name", "catalog_limit_note"):
            # Not a field validator: that would be a migration. Not text: clean_fields said so.
            value = getattr(self, name)
            try:
                validate_no_hidden_characters(value if isinstance(value, str) else "")
            except ValidationError as error:
                errors[name] = error.messages
        if self.is_default and not self.enabled:
            errors["is_default"] = [
                "A disabled model can't be the default: enable it, or choose another default."
            ]
        if not isinstance(self.provider_options, dict):
            errors["provider_options"] = ["Options must be an object of option names to values."]
        elif self.provider_id is not None:
            cleaned, option_errors = self.check_options()
            labels = self.provider.provider_type.options_by_name
            for name, messages in option_errors.items():
                if name in GENERAL_FIELDS:
                    errors.setdefault(name, []).extend(messages)
                else:
                    label = labels[name].label if name in labels else repr(name)
                    errors.setdefault("provider_options", []).extend(
                        # The option's name lets a form show the error on that option's field.
                        ValidationError(
                            "%(label)s: %(message)s",
                            code="invalid_option",
                            params={"option": name, "label": label, "message": message},
                        )
                        for message in messages
                    )
            if not option_errors:
                self.provider_options = cleaned
        if errors:
            raise ValidationError(errors)


class LoginSession(AbstractBaseSession):
    """Django's database session with the user it logs in (config.sessions): a request reads
    both in one query instead of the session, then the user."""

    # Written from the session's own data on each save. No database constraint: a session
    # saved as its user is deleted must not fail the request (the ORM still deletes a deleted
    # user's sessions); a session whose user is gone reads as logged out.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        db_constraint=False,
        null=True,
        related_name="+",
    )

    def __str__(self) -> str:
        # Not the key (Django's own session shows it): the admin lists a user's sessions when
        # it asks to confirm their deletion, and the key is the cookie that logs in as them.
        return f"Login session until {self.expire_date:%Y-%m-%d %H:%M} UTC"
