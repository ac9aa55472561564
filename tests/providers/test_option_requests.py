"""Every option a provider type declares reaches its request, where the declaration says.

Each option is set alone to a value its declaration accepts; the request body then holds that
value at the option's path, and the body without it doesn't. An option declared but never sent
fails here, for every type in the registry.
"""

from __future__ import annotations

from typing import Any

import pytest

from llmadmin.providers import PROVIDER_TYPES
from llmadmin.providers.base import (
    BoolOption,
    ChoiceOption,
    IntOption,
    ListOption,
    MappingOption,
    ModelSettings,
    Option,
    ProviderType,
)
from llmadmin.providers.contract import ChatInput

CHAT = ChatInput(system="", messages=[{"role": "user", "content": "Hello"}])
ABSENT = object()

DECLARED = [
    pytest.param(provider_type, option, id=f"{slug}:{option.name}")
    for slug, provider_type in PROVIDER_TYPES.items()
    for option in provider_type.options
]


def valid_value(option: Option) -> Any:
    """A value the option's declaration accepts: a new kind of option needs a line here."""
    match option:
        case BoolOption():
            return True
        case IntOption():
            value = max(option.min if option.min is not None else 1, 1)
            return value if option.max is None else min(value, option.max)
        case ChoiceOption():
            return option.choices[-1]
        case ListOption():
            return ["anthropic"]
        case MappingOption():
            return {option.keys[-1]: option.choices[0]}
    pytest.fail(f"No valid value for a {type(option).__name__}.")


def at(body: dict[str, Any], path: str) -> Any:
    """The body's value at a dotted path; ABSENT when it has none."""
    value: Any = body
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return ABSENT
        value = value[key]
    return value


def request_body(provider_type: ProviderType, options: dict[str, Any]) -> dict[str, Any]:
    client = provider_type.connect(
        base_url="http://127.0.0.1:9", region="us-east-1", api_key="sk-test-OPTIONS"
    )
    # A model of the type: its options are the type's, whatever the model.
    identifier = next(iter(provider_type.seeded_models), "a-model")
    return client.chat_body(ModelSettings(identifier=identifier, options=options), CHAT)


@pytest.mark.parametrize(("provider_type", "option"), DECLARED)
def test_a_declared_option_reaches_the_request_at_its_path(provider_type, option):
    value = valid_value(option)
    assert option.clean(value) == value

    body = request_body(provider_type, {option.name: value})

    assert at(body, option.path) == option.to_request(value)
    assert at(request_body(provider_type, {}), option.path) is ABSENT


def test_no_two_options_of_a_type_share_a_name_or_a_path():
    for provider_type in PROVIDER_TYPES.values():
        names = [option.name for option in provider_type.options]
        paths = [option.path for option in provider_type.options]
        assert len(set(names)) == len(names), provider_type.slug
        assert len(set(paths)) == len(paths), provider_type.slug


def test_gemini_safety_settings_stored_empty_are_not_sent():
    # As before options declared their paths: an empty mapping (import_config takes one) is
    # Google's defaults, not an empty list.
    body = request_body(PROVIDER_TYPES["google"], {"safety_settings": {}})

    assert "safetySettings" not in body
