"""The credentials typed on a provider's page and not saved yet, kept encrypted in the
session for the page's next attempt, and the page's last test of typed values."""

from __future__ import annotations

from cryptography.fernet import InvalidToken
from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables

from llmadmin.models import Provider


def typed_secrets_key(provider: Provider) -> str:
    return f"llmadmin:typed-secrets:{provider.pk}"


@sensitive_variables("secrets", "cipher")
def keep_typed_secrets(request: HttpRequest, provider: Provider, secrets: dict[str, str]) -> None:
    """Keep (or, with none, forget) the secrets typed for a provider, encrypted."""
    cipher = Provider._meta.get_field("api_key").f
    if secrets:
        request.session[typed_secrets_key(provider)] = {
            name: cipher.encrypt(value.encode()).decode() for name, value in secrets.items()
        }
    else:
        request.session.pop(typed_secrets_key(provider), None)


def typed_test_key(provider: Provider) -> str:
    return f"llmadmin:typed-test:{provider.pk}"


def typed_test(request: HttpRequest, provider: Provider) -> dict[str, str]:
    """The page's last test of typed values (see ProviderAdminForm.typed_test)."""
    return request.session.get(typed_test_key(provider)) or {}


@sensitive_variables("cipher")
def typed_secrets(request: HttpRequest, provider: Provider | None) -> dict[str, str]:
    if provider is None or not hasattr(request, "session"):
        return {}
    cipher = Provider._meta.get_field("api_key").f
    kept = request.session.get(typed_secrets_key(provider)) or {}
    try:
        return {name: cipher.decrypt(value.encode()).decode() for name, value in kept.items()}
    except InvalidToken:  # the secrets rotated since: type it again
        return {}
