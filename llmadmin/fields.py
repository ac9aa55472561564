"""The encrypted API key field, and the validators of provider settings."""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import InvalidToken
from django.core.exceptions import ValidationError
from django.utils.functional import cached_property
from encrypted_fields.fields import EncryptedCharField


class UnreadableKey(str):
    """A stored ciphertext that none of the configured secrets decrypts.

    django-fernet-encrypted-fields hands back the ciphertext unchanged when decryption fails,
    where it would pass for a key. This type marks it so it is never used as one.
    """


class APIKeyField(EncryptedCharField):
    """A Fernet-encrypted key whose unreadable values are recognised, never mistaken for keys.

    NULL in the column means "no key", so whether a key is set is answerable in SQL.
    """

    @cached_property
    def key_ids(self) -> tuple[str, ...]:
        """Short one-way ids of the Fernet keys in use; the first one encrypts.

        A row records the id it was encrypted with, so readability is known without
        decrypting: the key is readable while that id is among these.
        """
        return tuple(
            hashlib.sha256(b"llmadmin-key-id:" + key).hexdigest()[:16] for key in self.keys
        )

    def to_python(self, value: Any) -> Any:
        if value is None or isinstance(value, UnreadableKey):
            return value
        try:
            return self.f.decrypt(value.encode("utf-8")).decode("utf-8")
        except (InvalidToken, ValueError):
            return UnreadableKey(value)

    def get_prep_value(self, value: Any) -> Any:
        # An unreadable key keeps its ciphertext: restoring the old secret makes it readable.
        if isinstance(value, UnreadableKey):
            return str(value)
        return super().get_prep_value(value)

    def clean(self, value: Any, model_instance: Any) -> Any:
        # The library's clean() marks the shared field instance to skip decryption, which
        # races between threads. The value here is already plaintext: validate it as is.
        if isinstance(value, UnreadableKey):
            # Stored ciphertext, kept as it is: its length is no key's, and must not block
            # the provider's other edits.
            return value
        self.validate(value, model_instance)
        self.run_validators(value)
        return value

    def value_to_string(self, obj: Any) -> str | None:
        # Serialisation (dumpdata) writes ciphertext, never the plaintext key.
        return self.get_prep_value(self.value_from_object(obj))


def validate_api_key(value: str) -> None:
    if isinstance(value, UnreadableKey):
        return
    if value != value.strip():
        raise ValidationError(
            "The key starts or ends with a space or line break: paste the key alone.",
            code="whitespace",
        )
    if any(character.isspace() for character in value):
        raise ValidationError(
            "The key has a space or line break inside: paste the key alone.", code="whitespace"
        )


def validate_base_url(value: str) -> None:
    """An absolute http(s) URL with a host; hosts without a dot (http://litellm:4000) are fine."""
    message = (
        "Enter an absolute http:// or https:// URL with a host, e.g. https://proxy.example.com/v1."
    )
    if any(character.isspace() for character in value):
        raise ValidationError(message, code="invalid")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        raise ValidationError(message, code="invalid") from error
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(message, code="invalid")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValidationError(
            "Leave credentials, query strings and fragments out of the base URL.",
            code="invalid",
        )


def validate_no_whitespace(value: str) -> None:
    if any(character.isspace() for character in value):
        raise ValidationError("Remove the spaces: an identifier has none.", code="whitespace")


def validate_no_surrounding_whitespace(value: str) -> None:
    if value != value.strip():
        raise ValidationError("Remove the spaces before or after the text.", code="whitespace")


# Unicode's bidirectional controls reorder how text reads, and zero-width characters hide in
# it: a name or identifier holding one passes for another ("Trojan Source", CVE-2021-42574).
DIRECTION_CONTROLS = frozenset(
    "\u061c\u200e\u200f"
    + "".join(map(chr, range(0x202A, 0x202F)))
    + "".join(map(chr, range(0x2066, 0x206A)))
)
ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")


def validate_no_hidden_characters(value: str) -> None:
    for character in value:
        if character in DIRECTION_CONTROLS:
            message = "Remove the text-direction control %(code)s: it reorders the text."
        elif character in ZERO_WIDTH:
            message = "Remove the zero-width character %(code)s: it is invisible in the text."
        elif unicodedata.category(character) == "Cc" and character != "\t":
            # Line breaks and escapes: printed to a terminal, they forge lines or drive it.
            message = "Remove the control character %(code)s: it is not part of a name."
        elif unicodedata.category(character) == "Cf":
            # The other formatting characters: invisible operators, the soft hyphen, tag
            # characters (which spell hidden ASCII).
            message = "Remove the invisible character %(code)s: it hides in the text."
        else:
            continue
        raise ValidationError(message, code="hidden", params={"code": f"U+{ord(character):04X}"})
