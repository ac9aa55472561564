"""The provider change form as the admin's browser posts it."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from llmadmin.models import Provider


def provider_form_data(provider: Provider, **overrides: object) -> dict[str, object]:
    """Every field as stored (secrets blank: they are never rendered), the models inline's
    management form, then the overrides; an override of None leaves that field out."""
    data = {
        "name": provider.name,
        "slug": provider.slug,
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


STORED_KEY = "sk-ant-STORED-KEY-never-elsewhere-0001"
TYPED_KEY = "sk-ant-TYPED-KEY-for-the-new-address-0002"
STORED_SECRET = "wJalrXUtnFEMI/K7MDENG/STOREDSECRETKEY"

# A stored secret, and a form that would send it elsewhere or otherwise: (the provider as
# stored, what is typed, the field whose secret must be typed again). "{attacker}" is a
# server's URL.
# fmt: off
NEW_ADDRESSES = [
    pytest.param({"type": "anthropic", "api_key": STORED_KEY, "base_url": "https://llm.corp"},
                 {"base_url": "{attacker}"}, "api_key", id="a typed base URL"),
    pytest.param({"type": "anthropic", "api_key": STORED_KEY, "base_url": "https://llm.corp"},
                 {"base_url": ""}, "api_key", id="the base URL back to the default"),
    pytest.param({"type": "bedrock", "api_key": STORED_KEY, "region": "us-east-1"},
                 {"region": "eu-west-1"}, "api_key", id="another region"),
    pytest.param({"type": "bedrock", "api_key": None, "region": "us-east-1",
                  "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
                  "aws_secret_access_key": STORED_SECRET},
                 {"auth": "aws_keys"}, "aws_secret_access_key", id="another way to authenticate"),
]
# fmt: on


def form_as_loaded(client: Client, url: str, **overrides: object) -> dict[str, object]:
    """A change form as the browser posts it back (what the page shows, with the version it
    was loaded at), then the overrides; an override of None leaves that field out."""
    form = client.get(url).context["adminform"].form
    return form_as_shown(form, **overrides)


def form_as_shown(form: Any, **overrides: object) -> dict[str, object]:
    """What a rendered form posts back, then the overrides."""
    data: dict[str, object] = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, list | tuple):
            data[name] = [str(item) for item in value]
        else:
            data[name] = "" if value is None else str(value)
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}
