"""The provider change form as the admin's browser posts it."""

from __future__ import annotations

from llmadmin.models import Provider


def provider_form_data(provider: Provider, **overrides: object) -> dict[str, object]:
    """Every field as stored (secrets blank: they are never rendered), the models inline's
    management form, then the overrides; an override of None leaves that field out."""
    data = {
        "auth": provider.auth,
        "api_key": "",
        "aws_access_key_id": provider.aws_access_key_id,
        "aws_secret_access_key": "",
        "aws_session_token": "",
        "base_url": provider.base_url,
        "region": provider.region,
        "enabled": "on" if provider.enabled else "",
        "models-TOTAL_FORMS": "0",
        "models-INITIAL_FORMS": str(provider.models.count()),
        "models-MIN_NUM_FORMS": "0",
        "models-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}
