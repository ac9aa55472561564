"""Admin forms: the write-only API key, and model option fields generated from the registry."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db import models
from django.forms.utils import ErrorDict
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.functional import cached_property
from django.utils.text import capfirst
from django.views.decorators.debug import sensitive_variables

from llmadmin.fields import validate_api_key
from llmadmin.models import (
    ADDRESS_FIELDS,
    AUTH_MODE_FIELDS,
    FAILED_CHECKS,
    MODEL_PRICE_FIELDS,
    SECRET_FIELDS,
    BackupKey,
    KeyUse,
    LLMModel,
    Provider,
    lock_default_changes,
)
from llmadmin.providers import GENERAL_FIELDS, PROVIDER_TYPES, ProviderType


def secret_field(label: str, help_text: str) -> forms.CharField:
    # Write-only: a stored secret is never rendered, not even masked. Blank keeps it.
    return forms.CharField(
        label=label,
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=help_text,
    )


KEPT_VALUE_HELP = (
    "The value you typed is kept for the next save (never shown): leave this blank to use "
    "it, or type another."
)

NEW_ADDRESS = "new_address"
RETYPE_FOR_NEW_ADDRESS = {
    "api_key": "Re-enter the key to use it with a new address.",
    "aws_secret_access_key": "Re-enter the secret access key to use it with a new address.",
}


@sensitive_variables("credentials", "values", "text")
def connection_digest(provider: Provider) -> str:
    """A keyed digest of where a provider's calls go and with what credentials: tells a save
    that it stores what Test connection tried, and puts no secret in the session."""
    credentials = provider.credentials()
    values = [provider.auth, provider.base_url, provider.region, credentials]
    text = json.dumps(values, sort_keys=True)
    return salted_hmac("llmadmin.forms.connection_digest", text).hexdigest()


def stored_version(obj: models.Model) -> dict[str, str]:
    """A short keyed digest of each stored value an admin can edit, secrets included: tells
    which changed since a form was loaded, and puts no value (nor a plain hash of one) in
    the page."""
    digests = {}
    for field in [*obj._meta.concrete_fields, *obj._meta.many_to_many]:
        if not field.editable or field.primary_key:
            continue
        value = field.value_from_object(obj)
        if field.many_to_many:
            value = sorted(related.pk for related in value)
        text = json.dumps(value, default=str, sort_keys=True)
        digest = salted_hmac("llmadmin.forms.stored_version", f"{field.name}={text}")
        digests[field.name] = digest.hexdigest()[:12]
    return digests


def version_token(version: dict[str, str]) -> str:
    return ",".join(f"{name}:{digest}" for name, digest in version.items())


class VersionField(forms.CharField):
    widget = forms.HiddenInput

    def has_changed(self, initial: Any, data: Any) -> bool:
        return False  # what the page was loaded at, not a change the admin makes


class VersionedForm(forms.ModelForm):
    """A change form that refuses to save over changes made since it was loaded: two admins
    editing the same object would otherwise silently revert each other.

    The page carries the stored row's version (hidden); a form posted without one (a script,
    not the browser's page) is not checked.
    """

    version = VersionField(required=False)

    def __init__(self, *args: Any, check_version: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.check_version = check_version
        if self.instance.pk:
            self.initial["version"] = version_token(self.version_of(self.instance))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        posted = self.data.get(self.add_prefix("version"))
        if self.check_version and self.instance.pk and posted:
            self.refuse_if_stale(posted)
        return cleaned

    def version_of(self, obj: models.Model) -> dict[str, str]:
        """What the page is checked against: the stored values it edits."""
        return stored_version(obj)

    def refuse_if_stale(self, posted: str) -> None:
        version = self.version_of(self.stored_for_update())
        loaded = dict(item.split(":", 1) for item in posted.split(",") if ":" in item)
        changed = [name for name, digest in version.items() if loaded.get(name) != digest]
        if not changed:
            return
        # Shown again with everything typed, and the version now stored: saving it again
        # is a decision taken knowing what changed.
        self.data = self.data.copy()
        self.data[self.add_prefix("version")] = version_token(version)
        labels = ", ".join(self.field_label(name) for name in changed)
        self.add_error(
            None,
            f"This {self.instance._meta.verbose_name} was changed by someone else since you "
            f"opened it ({labels}). Nothing was saved; what you typed is kept below: review "
            "it against the change and save again.",
        )

    def stored_for_update(self) -> models.Model:
        # Read under a lock (the admin saves in a transaction): a save of the same object
        # at the same moment waits for this one, then finds its form stale.
        return type(self.instance)._default_manager.select_for_update().get(pk=self.instance.pk)

    def field_label(self, name: str) -> str:
        if name in self.fields and self.fields[name].label:
            return str(self.fields[name].label)
        if name in self.other_versions:
            return self.other_versions[name]
        return capfirst(self.instance._meta.get_field(name).verbose_name)

    # What the page edits besides the object's own fields (version_of), by name: its label.
    other_versions: dict[str, str] = {}


class ProviderAddForm(forms.ModelForm):
    """The add page asks only what fixes an account: its type, name and slug. Its credentials
    and address go on its change page (as Django's UserAdmin asks a user's password)."""

    class Meta:
        model = Provider
        fields = ["type", "name", "slug"]


class ProviderAdminForm(VersionedForm):
    # Secrets typed into the attempt just refused for another field (set by the admin):
    # used when their field is left blank, so nothing typed is lost and nothing is re-rendered.
    kept_secrets: dict[str, str] = {}
    other_versions = {"backup_keys": "Backup keys"}

    def version_of(self, obj: models.Model) -> dict[str, str]:
        """The account's fields and its backup keys on the page: a key another admin added,
        changed or deleted since the page was loaded makes its save stale too (each key's
        updated_at changes with every save, never with a call's cooldown)."""
        keys = list(
            BackupKey.objects.filter(provider=obj).order_by("pk").values_list("pk", "updated_at")
        )
        text = json.dumps(keys, default=str)
        digest = salted_hmac("llmadmin.forms.stored_version", f"backup_keys={text}")
        return {**stored_version(obj), "backup_keys": digest.hexdigest()[:12]}

    # Secret fields this save changes without text typed into them (a kept secret used, the
    # old session token dropped): they count as changed.
    changed_untyped: list[str] = []
    # The page's last Test connection of typed values (set by the admin): {digest, status,
    # reason, checked_at}. Saving what it tested records its outcome.
    typed_test: dict[str, str] = {}

    api_key = secret_field(
        "API key", "Paste a new key to replace the stored one; leave blank to keep it."
    )
    aws_secret_access_key = secret_field(
        "AWS secret access key",
        "Paste a new secret to replace the stored one; leave blank to keep it.",
    )
    aws_session_token = secret_field(
        "AWS session token",
        "Only for temporary credentials; leave blank to keep the stored one.",
    )
    remove_api_key = forms.BooleanField(
        label="Remove the stored credentials",
        required=False,
        help_text="The provider's models leave the developers' list until new ones are set.",
    )
    # Shown while the account's own key cools down beside backup keys (the admin's fieldsets).
    try_key_again = forms.BooleanField(
        label="Try key 1 again",
        required=False,
        help_text="Clears its cooldown: the next call tries it first again.",
    )
    # Hidden until a save needs it: see confirm_failed_test.
    save_anyway = forms.BooleanField(
        label="I understand, save anyway", required=False, widget=forms.HiddenInput
    )

    class Meta:
        model = Provider
        fields = [
            "name",
            "slug",
            "auth",
            "api_key",
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
            "remove_api_key",
            "save_anyway",
            "base_url",
            "region",
            "enabled",
            "key_cooldown",
        ]

    def __init__(self, *args: Any, testing: bool = False, **kwargs: Any) -> None:
        # testing: a connection test of what the form holds, not a save; neither the version
        # nor a confirmation is asked.
        super().__init__(*args, check_version=not testing, **kwargs)
        self.testing = testing
        # Never keep the plaintext in the form: not rendered, not compared for changes.
        for name in SECRET_FIELDS:
            self.initial.pop(name, None)
        if "auth" in self.fields and self.instance.type:
            modes = self.instance.provider_type.auth_modes
            self.fields["auth"].choices = list(modes.items())
            # The page's script tells a way chosen from the one stored by this.
            self.fields["auth"].widget.attrs["data-stored"] = self.instance.auth
        if "key_cooldown" in self.fields:
            cooldown = Provider._meta.get_field("key_cooldown")
            bound_by(self.fields["key_cooldown"], cooldown.validators)
            if self.is_bound and self.add_prefix("key_cooldown") not in self.data:
                # Posted without it (a script older than key pools; the page always sends
                # it): the stored cooldown stays.
                self.fields["key_cooldown"].disabled = True
        self.show_kept(self.kept_secrets)

    def show_kept(self, names: Any) -> None:
        for name in names:
            if name in self.fields:
                # The bound field copies its help text when made (a refused form has made it).
                self.fields[name].help_text = self[name].help_text = KEPT_VALUE_HELP
        if "base_url" in self.fields and self.instance.type:
            provider_type = self.instance.provider_type
            self.fields["base_url"].help_text = (
                f"Default: {provider_type.default_base_url}. Set it for a proxy such as LiteLLM "
                "or an AI gateway, or a regional or self-hosted endpoint, e.g. "
                f"{provider_type.base_url_example}."
                if provider_type.default_base_url
                else f"Required: {provider_type.label} has no default endpoint. Enter yours, "
                f"e.g. {provider_type.base_url_example}."
            )

    @property
    def chosen_mode_fields(self) -> tuple[str, ...]:
        mode = (getattr(self, "cleaned_data", None) or {}).get("auth") or self.data.get(
            self.add_prefix("auth"), self.instance.auth
        )
        return AUTH_MODE_FIELDS.get(mode, ())

    @cached_property
    def changed_data(self) -> list[str]:
        # Text in another mode's (hidden) fields changes nothing; a kept secret that is used
        # does change its field.
        credentials = {"aws_access_key_id", *SECRET_FIELDS}
        changed = [
            name
            for name in super().changed_data
            if (name not in credentials or name in self.chosen_mode_fields)
            and name != "save_anyway"
        ]
        return changed + [name for name in self.changed_untyped if name not in changed]

    @sensitive_variables("cleaned", "value")
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        mode_fields = self.chosen_mode_fields
        self.changed_untyped = [
            name for name in self.kept_secrets if name in mode_fields and not cleaned.get(name)
        ]
        for name in self.changed_untyped:
            cleaned[name] = self.kept_secrets[name]
        for name in (*SECRET_FIELDS, "aws_access_key_id"):
            # Only the chosen mode's fields are read; a blank secret keeps the stored one.
            if name not in mode_fields or (name in SECRET_FIELDS and not cleaned.get(name)):
                cleaned[name] = getattr(self.instance, name)
        new_access_key = cleaned.get("aws_access_key_id") != self.instance.aws_access_key_id
        token_typed = "aws_session_token" in self.changed_untyped or self.data.get(
            self.add_prefix("aws_session_token")
        )
        # A new access key comes with its own session token, or none: never the old one.
        old_token = cleaned.get("aws_session_token") is not None
        if "aws_session_token" in mode_fields and new_access_key and old_token and not token_typed:
            cleaned["aws_session_token"] = None
            self.changed_untyped.append("aws_session_token")
        if cleaned.get("remove_api_key"):
            typed = [name for name in SECRET_FIELDS if self.data.get(self.add_prefix(name))]
            for name in typed:
                self.add_error(name, "Either paste new credentials or remove them, not both.")
            for name in SECRET_FIELDS:
                cleaned[name] = None
            cleaned["aws_access_key_id"] = ""
            # Nothing stored is left to authenticate with: back to the type's first way.
            cleaned["auth"] = next(iter(self.instance.provider_type.auth_modes))
        elif self.new_address(cleaned):
            self.keep_stored_secrets_home(cleaned)
        return cleaned

    def new_address(self, cleaned: dict[str, Any]) -> bool:
        """Whether the credentials would go elsewhere, or be sent otherwise, than stored
        (clearing the base URL back to the type's default is another address too)."""
        return any(
            name in cleaned and cleaned[name] != getattr(self.instance, name)
            for name in ADDRESS_FIELDS
        )

    @sensitive_variables("cleaned")
    def keep_stored_secrets_home(self, cleaned: dict[str, Any]) -> None:
        """A new address takes only the secrets typed into this form: a stored key sent to
        a typed host would be handed to whoever runs it, by anyone who may edit the form."""
        for name in SECRET_FIELDS:
            typed = self.data.get(self.add_prefix(name)) or name in self.changed_untyped
            if name not in self.chosen_mode_fields or typed or cleaned.get(name) is None:
                continue
            if name in RETYPE_FOR_NEW_ADDRESS:
                self.add_error(
                    name, ValidationError(RETYPE_FOR_NEW_ADDRESS[name], code=NEW_ADDRESS)
                )
            else:
                # Not a secret one re-enters alone: a session token belongs to its secret.
                cleaned[name] = None
                self.changed_untyped.append(name)

    def _post_clean(self) -> None:
        super()._post_clean()
        # New or removed credentials, another way to authenticate or another endpoint void
        # the last test.
        changed = {"auth", "aws_access_key_id", *SECRET_FIELDS, "base_url", "region"}
        if changed & set(self.changed_data) or self.cleaned_data.get("remove_api_key"):
            self.instance.forget_check()
            self.confirm_failed_test()

    def confirm_failed_test(self) -> None:
        """Saving exactly what Test connection just tried records what it found; when that
        takes the models out (a rejected key, a failed connection), only once confirmed."""
        test = self.typed_test
        if self.testing or not test or test["digest"] != connection_digest(self.instance):
            return
        if test["status"] in FAILED_CHECKS and not self.cleaned_data.get("save_anyway"):
            self.fields["save_anyway"].widget = forms.CheckboxInput()
            self.add_error(
                None,
                f"Test connection just found what you are saving failing: {test['outcome']} "
                "Saved, it gives developers none of this provider's models until a test "
                "passes. Tick “I understand, save anyway” to save it all the same.",
            )
            return
        instance = self.instance
        instance.check_status, instance.check_reason = test["status"], test["reason"]
        instance.checked_at = datetime.fromisoformat(test["checked_at"])


# What a backup key needs first, by the account's way of signing in.
# A backup key's credentials on its row, named apart from the account's own (one page holds
# both): the field of BackupKey each one fills.
BACKUP_KEY_FIELDS = {
    "key": "api_key",
    "access_key_id": "aws_access_key_id",
    "secret_access_key": "aws_secret_access_key",
    "session_token": "aws_session_token",
}
# Its secrets, the one a key needs first leading for each way of signing in.
BACKUP_KEY_SECRETS = ("key", "secret_access_key", "session_token")
BACKUP_KEY_REQUIRED = {
    "key": "Enter the API key.",
    "secret_access_key": "Enter the secret access key that goes with this access key ID.",
}
WAY_CHANGES = (
    "The account's way of signing in changes with this save: save that first, then paste "
    "its backup keys."
)


def backup_key_fields(auth: str | None) -> list[str]:
    """A backup key's credential fields for the account's way of signing in."""
    used = AUTH_MODE_FIELDS.get(auth, ())
    return [name for name, field in BACKUP_KEY_FIELDS.items() if field in used]


def backup_secret_field(name: str, label: str, help_text: str) -> forms.CharField:
    """A write-only secret of a backup key, checked as the model checks the field it fills
    (the save sets it, unseen by the model's validation)."""
    field = secret_field(label, help_text)
    field.max_length = BackupKey._meta.get_field(BACKUP_KEY_FIELDS[name]).max_length
    field.validators += [MaxLengthValidator(field.max_length), validate_api_key]
    return field


class BackupKeyForm(forms.ModelForm):
    """A backup key on its account's page. Its secrets are write-only, as the account's own:
    blank keeps the stored one; one typed is entered for the account's address as saved
    (BackupKey.enter_for). The admin offers the credential fields of the account's way of
    signing in as stored; only those are read."""

    position = forms.IntegerField(
        label="Order",
        required=False,
        min_value=0,
        max_value=32767,
        help_text="Keys are tried in this order, lowest first. Empty: after the others.",
    )
    key = backup_secret_field("key", "API key", "Paste the key; on a stored key, blank keeps it.")
    access_key_id = forms.CharField(
        label="AWS access key ID",
        required=False,
        max_length=128,
        validators=BackupKey._meta.get_field("aws_access_key_id").validators,
    )
    secret_access_key = backup_secret_field(
        "secret_access_key",
        "AWS secret access key",
        "Paste the secret; on a stored key, blank keeps it.",
    )
    session_token = backup_secret_field(
        "session_token",
        "AWS session token",
        "Only for temporary credentials; blank keeps the stored one unless the secret is new.",
    )
    try_again = forms.BooleanField(
        label="Try again",
        required=False,
        help_text="Clears its cooldown: calls may use it at once.",
    )

    class Meta:
        model = BackupKey
        fields = ["position", "name"]

    def __init__(
        self,
        *args: Any,
        provider: Provider,
        kept_secrets: dict[str, str] | None = None,
        vanished: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # A row of a key deleted since the page was loaded: left out, unchecked.
        self.vanished = vanished
        # The account as this save leaves it: a secret typed is entered for its address.
        self.provider = provider
        # Secrets typed into the attempt just refused, used where their field is left blank.
        self.kept_secrets = kept_secrets or {}
        # What the save writes to the key's credentials (clean), whether its secret was
        # typed (entered again), whether it goes after the others, and its cooldown when Try
        # again cleared it (for the audit).
        self.credentials: dict[str, str | None] = {}
        self.entered = self.placed_last = self.entered_again = False
        self.tried_again = ""
        # Declared fields are always a form's: only those the admin offers stay.
        for name in [*BACKUP_KEY_FIELDS, "try_again"]:
            if name in self.fields and name not in (self._meta.fields or ()):
                del self.fields[name]
        stored = not self.instance._state.adding
        if "access_key_id" in self.fields and stored:
            self.initial["access_key_id"] = self.instance.aws_access_key_id
        for name in self.secret_names:
            if stored and getattr(self.instance, BACKUP_KEY_FIELDS[name]) is not None:
                self.fields[name].widget.attrs["placeholder"] = "Stored: blank keeps it"
        self.show_kept(self.kept_secrets)
        if not stored:
            self.initial["position"] = None  # after the others, unless a number is typed
            if "try_again" in self.fields:
                self.fields["try_again"].disabled = True

    def show_kept(self, names: Any) -> None:
        for name in names:
            if name in self.fields:
                self.fields[name].widget.attrs["placeholder"] = "Kept from your last try"

    @property
    def secret_names(self) -> list[str]:
        """The secrets of the way of signing in offered, the one a key needs first."""
        return [name for name in BACKUP_KEY_SECRETS if name in self.fields]

    def offered_for(self, auth: str) -> bool:
        """Whether the credential fields offered are those of this way of signing in."""
        offered = [name for name in BACKUP_KEY_FIELDS if name in self.fields]
        return offered == backup_key_fields(auth)

    def full_clean(self) -> None:
        if self.vanished:
            self._errors, self.cleaned_data = ErrorDict(), {"DELETE": True}
            return
        super().full_clean()

    def has_changed(self) -> bool:
        # A secret kept from the last try is a change, though its field is blank.
        return super().has_changed() or bool(self.kept_secrets)

    @cached_property
    def changed_data(self) -> list[str]:
        changed = super().changed_data
        kept = [name for name in self.kept_secrets if name in self.fields]
        return changed + [name for name in kept if name not in changed]

    @sensitive_variables("cleaned")
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("position") is None:
            cleaned.pop("position", None)
            self.placed_last = "position" not in self.errors
        names = self.secret_names
        if not names:
            return cleaned
        for name in names:
            if not cleaned.get(name) and self.kept_secrets.get(name):
                cleaned[name] = self.kept_secrets[name]
        typed = [name for name in names if cleaned.get(name)]
        if typed and not self.offered_for(self.provider.auth):
            for name in typed:
                self.add_error(name, WAY_CHANGES)
            return cleaned
        adding, required = self.instance._state.adding, names[0]
        # An access key ID and its secret are a pair: a new ID, or a new session token,
        # comes with its secret.
        new_pair = "access_key_id" in self.changed_data or "session_token" in typed
        missing = required not in typed and required not in self.errors
        if missing and (adding or (required == "secret_access_key" and new_pair)):
            self.add_error(required, BACKUP_KEY_REQUIRED[required])
        no_key_id = "access_key_id" in self.fields and not cleaned.get("access_key_id")
        if no_key_id and "access_key_id" not in self.errors and (adding or typed):
            self.add_error("access_key_id", "Enter the access key ID of the IAM access key.")
        self.entered = required in typed
        if not self.entered:
            return cleaned  # blank secrets keep the stored ones
        # Entered again: what another way of signing in stored is no longer the key's, and
        # a new secret comes with its own session token, or none.
        self.credentials = dict.fromkeys(SECRET_FIELDS) | {"aws_access_key_id": ""}
        for name in self.fields:
            if name in BACKUP_KEY_FIELDS and cleaned.get(name):
                self.credentials[BACKUP_KEY_FIELDS[name]] = cleaned[name]
        return cleaned

    @sensitive_variables()
    def save(self, commit: bool = True) -> BackupKey:
        key = super().save(commit=False)
        if self.entered:
            stored = not key._state.adding
            same = all(getattr(key, name) == value for name, value in self.credentials.items())
            # Pasted again as it was: no change the audit sees, but sent anew.
            self.entered_again = stored and same
            for name, value in self.credentials.items():
                setattr(key, name, value)
            key.enter_for(self.provider)
        elif self.cleaned_data.get("try_again") and key.cooling(timezone.now()):
            self.tried_again = cooldown_in_words(key)
            key.forget_cooling()
        if commit:
            key.save()
        return key


def cooldown_in_words(key: KeyUse) -> str:
    """Why and until when a key cools down, for the audit: "Rate-limited until …"."""
    reason = key.get_cooling_reason_display()
    if key.cooling_until is None:
        return reason
    return f"{reason} until {timezone.localtime(key.cooling_until):%Y-%m-%d %H:%M:%S}"


class BackupKeyFormSet(forms.BaseInlineFormSet):
    """An account's backup keys on its page, in order: numbers typed apart, an empty one put
    after the others."""

    def __init__(
        self,
        data: Any = None,
        *args: Any,
        prefix: str | None = None,
        kept_rows: dict[str, dict[str, str]] | None = None,
        **kwargs: Any,
    ) -> None:
        # The secrets typed into the attempt just refused, by row (row_key).
        self.kept_rows = kept_rows or {}
        # The rows of keys deleted since the page was loaded (drop_vanished_rows).
        self.vanished: set[int] = set()
        prefix = prefix or self.get_default_prefix()
        # Posted without its rows (a script older than key pools; the page always sends
        # them), the account's backup keys are left as they are.
        self.left_out = data is not None and f"{prefix}-TOTAL_FORMS" not in data
        super().__init__(None if self.left_out else data, *args, prefix=prefix, **kwargs)
        if self.is_bound and not self.left_out:
            self.drop_vanished_rows()

    def drop_vanished_rows(self) -> None:
        """Rows of keys deleted since the page was loaded are left out (as if deleted here):
        the account's form says the keys changed meanwhile (its version check)."""
        stored = {str(pk) for pk in self.get_queryset().values_list("pk", flat=True)}
        id_name = self.model._meta.pk.name
        try:
            # The rows the formset builds: at most its total, which Django caps (a crafted
            # initial count is any number).
            rows = range(min(self.initial_form_count(), self.total_form_count()))
        except forms.ValidationError:
            return  # no management form: the formset says so
        vanished = [
            index
            for index in rows
            if self.data.get(f"{self.add_prefix(index)}-{id_name}", "") not in stored
        ]
        self.vanished = set(vanished)
        if vanished:
            self.data = self.data.copy()
            for index in vanished:
                self.data[f"{self.add_prefix(index)}-DELETE"] = "on"

    def is_valid(self) -> bool:
        return self.left_out or super().is_valid()

    def save(self, commit: bool = True) -> list[BackupKey]:
        if self.left_out:
            self.new_objects, self.changed_objects, self.deleted_objects = [], [], []
            return []
        return super().save(commit)

    def row_key(self, index: int) -> str:
        """A row as the admin posts it: a stored key by its id; a new one by its place and
        name (the page's script renumbers new rows when one is removed)."""
        posted = self.data.get(f"{self.add_prefix(index)}-{self.model._meta.pk.name}")
        if index < self.initial_form_count() and posted:
            return f"key-{posted}"
        # With how many new rows there are: once one is added or removed, a place may be
        # another row's, and no kept secret is put back into a new row.
        new_rows = self.total_form_count() - self.initial_form_count()
        return f"new-{new_rows}-{index}-{self.data.get(self.add_prefix(index) + '-name', '')}"

    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        kept = {}
        if self.is_bound and index is not None:
            kept = self.kept_rows.get(self.row_key(index), {})
        return {
            **super().get_form_kwargs(index),
            "provider": self.instance,
            "kept_secrets": kept,
            "vanished": index in self.vanished,
        }

    @sensitive_variables("typed")
    def typed_secrets(self) -> dict[str, dict[str, str]]:
        """The secrets typed into each row kept, to keep for the next attempt (not those
        refused on their field, nor those of rows deleted)."""
        rows = {}
        for index, form in enumerate(self.forms):
            if self._should_delete_form(form):
                continue
            typed = {
                name: form.data.get(form.add_prefix(name)) or form.kept_secrets.get(name)
                for name in form.secret_names
                if name not in form.errors
            }
            typed = {name: value for name, value in typed.items() if value}
            if typed:
                rows[self.row_key(index)] = typed
        return rows

    def show_kept(self, rows: dict[str, dict[str, str]]) -> None:
        for index, form in enumerate(self.forms):
            form.show_kept(rows.get(self.row_key(index), {}))

    def clean(self) -> None:
        super().clean()
        kept = [
            form
            for form in self.forms
            if not self._should_delete_form(form) and (form.instance.pk or form.has_changed())
        ]
        numbered: dict[int, list[forms.ModelForm]] = {}
        for form in kept:
            if not form.placed_last and "position" not in form.errors:
                numbered.setdefault(form.instance.position, []).append(form)
        for position, same in numbered.items():
            if len(same) > 1:
                for form in same:
                    form.add_error(
                        "position", f"Another backup key has order {position}: give each its own."
                    )
        last = max(numbered, default=0)
        highest = self.form.base_fields["position"].max_value
        for form in kept:
            if form.placed_last:
                if last >= highest:
                    form.add_error(
                        "position", f"No order is left after {last}: number the keys lower."
                    )
                    continue
                last += 1
                form.instance.position = last


class ProviderChoiceField(forms.ModelChoiceField):
    """A provider account by its label: two OpenAI Compatible accounts are told apart."""

    def label_from_instance(self, obj: Provider) -> str:
        return obj.label


def bound_by(field: forms.Field, validators: list[Any]) -> None:
    """The model field's bounds as the form field's own (and its number box's), in place of
    the form field's: a value out of range then gets one message, with the true bound.

    (A positive integer's form field would say "at least 0" where the model says 1, and a
    temperature of 3 would get the model's "at most 2" and the provider type's range.)
    """
    for validator in validators:
        if isinstance(validator, MinValueValidator | MaxValueValidator):
            kind = type(validator)
            field.validators = [v for v in field.validators if not isinstance(v, kind)]
            field.validators.append(validator)
            attr = "min" if kind is MinValueValidator else "max"
            setattr(field, f"{attr}_value", validator.limit_value)
            field.widget.attrs[attr] = validator.limit_value


# The model's fields with bounds: number boxes.
MODEL_NUMBER_FIELDS = {
    field.name
    for field in LLMModel._meta.concrete_fields
    if isinstance(field, models.IntegerField | models.FloatField | models.DecimalField)
}


def option_field_names(provider_type: ProviderType) -> list[str]:
    return [
        name
        for option in provider_type.options
        for name in option.form_fields(provider_type.option_prefix(option))
    ]


class LLMModelAdminForm(VersionedForm):
    """The model form with one fieldset of generated fields per provider type.

    Only the selected provider's fields are read on save; a small script shows only them.
    """

    class Meta:
        model = LLMModel
        fields = [
            "provider",
            "identifier",
            "display_name",
            "enabled",
            "is_default",
            "context_limit",
            "compression_threshold",
            "restricted",
            "allowed_groups",
            "allowed_users",
            *GENERAL_FIELDS,
            "override_catalog_limit",
            "catalog_limit_note",
            *MODEL_PRICE_FIELDS,
            "monthly_cap",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if name in MODEL_NUMBER_FIELDS:
                bound_by(field, LLMModel._meta.get_field(name).validators)
        if "context_limit" in self.fields:
            # Left empty, it comes from the catalog (see clean).
            self.fields["context_limit"].required = False
            self.fields[
                "context_limit"
            ].help_text = "Context window in tokens. Leave empty to take the catalog's."
        stored = self.instance.provider_options if self.instance.provider_id else {}
        own_type = self.instance.provider.type if self.instance.provider_id else None
        if own_type:
            provider_type = PROVIDER_TYPES[own_type]
            for option in provider_type.options:
                if option.name in stored:
                    prefix = provider_type.option_prefix(option)
                    self.initial.update(option.initial(prefix, stored[option.name]))
        provider_field = self.fields.get("provider")
        if provider_field is not None:
            # The admin wraps the select (with add/change links): the attribute goes inside.
            select = getattr(provider_field.widget, "widget", provider_field.widget)
            select.attrs["data-remote-models-url"] = reverse(
                "admin:llmadmin_llmmodel_remote_models"
            )
            select.attrs["data-catalog-url"] = reverse("admin:llmadmin_llmmodel_catalog")
            select.attrs["data-provider-types"] = json.dumps(
                {
                    provider.pk: {
                        "type": provider.type,
                        "general": sorted(provider.provider_type.general_fields),
                    }
                    for provider in Provider.objects.defer(*SECRET_FIELDS)
                }
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        provider_type = self.selected_type()
        if provider_type is None:
            return cleaned
        # Only the chosen provider's options count (the others' fieldsets are hidden): a value
        # left in another type's option neither blocks the save nor is saved. (A sampling
        # field the type doesn't take stays in view while filled, with its error.)
        own_options = set(option_field_names(provider_type))
        for name in OPTION_FIELDS:
            if name not in own_options:
                self._errors.pop(name, None)
                cleaned.pop(name, None)
        listed = cleaned.get("allowed_groups") or cleaned.get("allowed_users")
        if "restricted" in cleaned and not cleaned["restricted"] and listed:
            self.add_error(
                "restricted",
                "Tick this to keep the model to the groups and users chosen below, or clear "
                "them to offer it to everyone.",
            )
        identifier = cleaned.get("identifier")
        if "context_limit" in cleaned and cleaned["context_limit"] is None and identifier:
            facts = provider_type.facts(identifier)
            if facts and facts.context_limit:
                cleaned["context_limit"] = facts.context_limit
            else:
                self.add_error(
                    "context_limit",
                    f"{identifier} is not in the catalog: enter its context limit.",
                )
        return cleaned

    def stored_for_update(self) -> models.Model:
        # Locks in the order a change of the default takes them (LLMModel.save): the
        # default's lock, then the row; the other way round two admins could deadlock.
        if self.cleaned_data.get("is_default"):
            lock_default_changes()
        return super().stored_for_update()

    def selected_type(self) -> ProviderType | None:
        provider = self.cleaned_data.get("provider")
        return provider.provider_type if provider else None

    def _post_clean(self) -> None:
        provider_type = self.selected_type()
        if provider_type is not None:
            options = {}
            for option in provider_type.options:
                prefix = provider_type.option_prefix(option)
                value = option.posted_value(self.cleaned_data, prefix)
                if value is not None:
                    options[option.name] = value
            self.instance.provider_options = options
        super()._post_clean()

    def _update_errors(self, errors: ValidationError) -> None:
        # Show each option's error on its own generated field.
        option_errors = (
            errors.error_dict.pop("provider_options", []) if hasattr(errors, "error_dict") else []
        )
        provider_type = self.selected_type()
        for error in option_errors:
            params = error.params or {}
            option = (
                provider_type.options_by_name.get(params.get("option")) if provider_type else None
            )
            if option is None:
                self.add_error(None, error)
                continue
            self.add_error(
                option.error_field(provider_type.option_prefix(option)), params["message"]
            )
        super()._update_errors(errors)


# Declared on the class, not per instance, so that the admin's fieldsets can name them.
OPTION_FIELDS = {
    name: field
    for provider_type in PROVIDER_TYPES.values()
    for option in provider_type.options
    for name, field in option.form_fields(provider_type.option_prefix(option)).items()
}
LLMModelAdminForm.declared_fields.update(OPTION_FIELDS)
LLMModelAdminForm.base_fields.update(OPTION_FIELDS)


class WhoForm(forms.Form):
    """The user or the group whose view of the models the admin wants to see; only the
    choices the admin may see (users, groups) are offered."""

    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.order_by("username"), required=False
    )
    group = forms.ModelChoiceField(queryset=Group.objects.order_by("name"), required=False)

    def __init__(self, *args: Any, users: bool = True, groups: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not users:
            del self.fields["user"]
        if not groups:
            del self.fields["group"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("user") and cleaned.get("group"):
            raise ValidationError("Pick a user or a group, not both.")
        return cleaned
