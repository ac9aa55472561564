"""Verifying keys and listing models: what holds for every provider type in the registry.

Each family's own paths, paging and auth headers are in tests/test_provider_<family>.py.
"""

from __future__ import annotations

import importlib.metadata
import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from llmadmin.providers import PROVIDER_TYPES
from llmadmin.selectors import provider_remote_models
from llmadmin.services import provider_check_connection, provider_set_api_key
from tests.chat_api import send
from tests.factories import LLMModelFactory, ProviderFactory, provider_at
from tests.providers.fakes import fake_for, serve
from tests.providers.servers import SLOW_READ_TIMEOUT

pytestmark = pytest.mark.django_db

KEY = "sk-CONNSECRET-0123456789abcdef"
EVERY_TYPE = [pytest.param(slug, id=slug) for slug in PROVIDER_TYPES]

# How each type's fake answers a wrong key, as the real API does (Gemini: 400, AWS: 403).
WRONG_KEY_MESSAGES = {
    "anthropic": "The provider rejected the API key (401).",
    "openai": "The provider rejected the API key (401).",
    "google": "The provider rejected the API key (400).",
    "azure": "The provider rejected the API key (401).",
    "bedrock": "The provider refused the API key (403): it is wrong or lacks permission.",
    "openai-compat": "The provider rejected the API key (401).",
    "openrouter": "The provider rejected the API key (401).",
    "vercel": "The provider rejected the API key (401).",
}


def test_every_type_has_a_fake_and_a_wrong_key_message():
    assert set(WRONG_KEY_MESSAGES) == set(PROVIDER_TYPES)


@pytest.mark.parametrize("provider_type", EVERY_TYPE)
def test_a_valid_key_is_verified_and_recorded(provider_type):
    with serve(fake_for(provider_type, KEY)) as server:
        provider = provider_at(provider_type, server.url, api_key=KEY)

        result = provider_check_connection(provider=provider)

    assert result == ("verified", "The provider accepted the API key.")
    provider.refresh_from_db()
    assert (provider.check_status, provider.check_reason) == result
    assert provider.checked_at is not None
    assert len(server.requests) == 1


@pytest.mark.parametrize("provider_type", EVERY_TYPE)
def test_every_request_names_llmadmin_and_its_version(client, developer, provider_type):
    with serve(fake_for(provider_type, KEY)) as server:
        provider = provider_at(provider_type, server.url, api_key=KEY)
        provider_check_connection(provider=provider)  # a key check and a model list: sync
        provider.client().list_models()
        events = send(client, LLMModelFactory(provider=provider))  # a chat: streamed

    assert events[-1] == ("done", {})
    agents = {(request.method, request.headers.get("user-agent")) for request in server.requests}
    version = importlib.metadata.version("llmadmin")
    assert agents == {("GET", f"llmadmin/{version}"), ("POST", f"llmadmin/{version}")}


@pytest.mark.parametrize("provider_type", EVERY_TYPE)
def test_a_wrong_key_is_recorded_as_rejected_and_takes_the_models_out(provider_type):
    with serve(fake_for(provider_type, "sk-the-right-key")) as server:
        provider = provider_at(provider_type, server.url, api_key=KEY)

        result = provider_check_connection(provider=provider)

    assert result == ("rejected", WRONG_KEY_MESSAGES[provider_type])
    provider.refresh_from_db()
    assert (provider.check_status, provider.availability) == ("rejected", "key_rejected")


@pytest.mark.parametrize("provider_type", EVERY_TYPE)
def test_the_model_list_never_carries_the_key_in_a_url(provider_type):
    with serve(fake_for(provider_type, KEY)) as server:
        provider = provider_at(provider_type, server.url, api_key=KEY)

        models = provider.client().list_models()

    assert models
    assert all(KEY not in request.path for request in server.requests)
    assert all(KEY not in str(request.query) for request in server.requests)


@pytest.mark.parametrize("provider_type", EVERY_TYPE)
@pytest.mark.parametrize(
    ("mode", "message"),
    [
        pytest.param(
            "error500",
            "The server at {host} failed: it answered 500 Internal Server Error.",
            id="server-error",
        ),
        pytest.param(
            "slow",
            f"Could not reach {{host}}: timed out after {SLOW_READ_TIMEOUT:g} s.",
            id="timeout",
        ),
        pytest.param(
            "malformed", "{host} answered with something that is not JSON.", id="not-json"
        ),
    ],
)
def test_an_outage_is_recorded_as_unreachable_and_takes_the_models_out(
    provider_type, mode, message, settings
):
    if mode == "slow":
        settings.PROVIDER_READ_TIMEOUT = SLOW_READ_TIMEOUT
    with serve(fake_for(provider_type, KEY, mode=mode)) as server:
        provider = provider_at(provider_type, server.url, api_key=KEY)
        LLMModelFactory(provider=provider)

        result = provider_check_connection(provider=provider)

    host = server.url.removeprefix("http://")
    assert result == ("unreachable", message.format(host=host))
    provider.refresh_from_db()
    assert provider.availability == "connection_failed"


def test_nothing_listening_is_unreachable():
    provider = ProviderFactory(openai=True, base_url="http://127.0.0.1:9/v1")

    result = provider_check_connection(provider=provider)

    assert result == (
        "unreachable",
        "Could not reach 127.0.0.1:9: connection refused or host not found.",
    )


@pytest.mark.parametrize("provider_type", EVERY_TYPE)
def test_a_redirect_to_another_host_does_not_carry_the_key(provider_type):
    # Same machine, other port: another origin all the same.
    with (
        serve(fake_for(provider_type, KEY)) as elsewhere,
        serve(fake_for(provider_type, KEY, mode="redirect", redirect_to=elsewhere.url)) as server,
    ):
        provider = provider_at(provider_type, server.url, api_key=KEY)

        result = provider_check_connection(provider=provider)

    host = server.url.removeprefix("http://")
    # Where it redirected to is the provider's choice: it is not repeated.
    assert result == (
        "unreachable",
        f"{host} redirected to another host; the key was not sent there.",
    )
    assert elsewhere.requests == []


@pytest.mark.parametrize("provider_type", EVERY_TYPE)
def test_a_redirect_within_the_same_host_is_followed_with_the_key(provider_type):
    with serve(fake_for(provider_type, KEY, mode="redirect")) as server:
        server.redirect_to = server.url + "/moved"
        provider = provider_at(provider_type, server.url, api_key=KEY)

        result = provider_check_connection(provider=provider)

    assert result[0] == "verified"
    first, second = server.requests
    assert second.path == "/moved" + first.path
    auth = {name: value for name, value in first.headers.items() if KEY in value}
    assert auth
    assert all(second.headers[name] == value for name, value in auth.items())


def test_a_rejected_key_takes_the_models_out_of_the_developers_list(client, django_user_model):
    with serve(fake_for("openai", "sk-other")) as server:
        provider = provider_at("openai", server.url, api_key=KEY)
        LLMModelFactory(provider=provider, display_name="GPT-5")
        client.force_login(django_user_model.objects.create_user("dev"))
        assert client.get(reverse("api-models")).json()["groups"]

        provider_check_connection(provider=provider)

    payload = client.get(reverse("api-models")).json()
    assert payload["groups"] == []
    assert payload["unavailable_providers"][0]["reason"] == "key_rejected"


def test_a_new_key_clears_the_rejection():
    with serve(fake_for("openai", "sk-other")) as server:
        provider = provider_at("openai", server.url, api_key=KEY)
        provider_check_connection(provider=provider)

    provider_set_api_key(provider=provider, api_key="sk-new")

    provider.refresh_from_db()
    assert (provider.check_status, provider.availability) == ("", "available")


def test_no_key_no_call():
    provider = ProviderFactory(openai=True, no_key=True)

    assert provider_check_connection(provider=provider) == (None, "no API key.")
    provider.refresh_from_db()
    assert provider.check_status == ""


def test_remote_models_are_fetched_once_and_reused():
    with serve(fake_for("openai", KEY)) as server:
        provider = provider_at("openai", server.url, api_key=KEY)

        first = provider_remote_models(provider=provider)
        second = provider_remote_models(provider=provider)

    assert first == second
    assert len(server.requests) == 1


def test_check_providers_prints_a_table_and_fails_on_a_rejected_key():
    with (
        serve(fake_for("openai", KEY)) as good,
        serve(fake_for("anthropic", "sk-other")) as bad,
    ):
        provider_at("openai", good.url, api_key=KEY)
        provider_at("anthropic", bad.url, api_key=KEY)
        ProviderFactory(google=True, no_key=True)
        out = io.StringIO()

        with pytest.raises(SystemExit) as exit_code:
            call_command("check_providers", stdout=out)

    assert exit_code.value.code == 1
    lines = out.getvalue().splitlines()
    assert lines[0] == "Provider           Status       Reason"
    assert "Anthropic          rejected     The provider rejected the API key (401)." in lines
    assert "OpenAI             verified     The provider accepted the API key." in lines
    # Every other provider has no key: nothing to test.
    assert "Google (Gemini)    no key       No API key." in lines
    assert len(lines) == 1 + len(PROVIDER_TYPES)


def test_check_providers_succeeds_when_no_key_is_rejected():
    with serve(fake_for("openai", KEY)) as server:
        provider_at("openai", server.url, api_key=KEY)
        out = io.StringIO()

        call_command("check_providers", stdout=out)

    assert "verified" in out.getvalue()


def test_a_wrong_base_url_says_the_server_answered_not_that_it_was_unreachable():
    with serve(fake_for("openai", KEY)) as server:
        # The key is right; the path is not the API's.
        provider = ProviderFactory(openai_compat=True, api_key=KEY, base_url=f"{server.url}/v9")

        result = provider_check_connection(provider=provider)

    host = server.url.removeprefix("http://")
    assert result == (
        "unreachable",
        f"Wrong address: the server at {host} answered 404 Not Found; check the base URL.",
    )


def test_a_failed_test_takes_the_models_out_of_the_developers_list_until_a_test_passes(
    client, developer
):
    with serve(fake_for("openai", KEY, mode="error500")) as server:
        provider = provider_at("openai", server.url, api_key=KEY)
        model = LLMModelFactory(provider=provider)
        assert client.get("/api/v1/models/").json()["groups"]  # untested: offered
        provider_check_connection(provider=provider)
        failed = client.get("/api/v1/models/").json()
        server.mode = "ok"
        provider_check_connection(provider=provider)
        passed = client.get("/api/v1/models/").json()

    assert failed["groups"] == []
    assert failed["unavailable_providers"] == [
        {
            "provider_id": provider.pk,
            "provider_type": "openai",
            "provider_label": "OpenAI",
            "reason": "connection_failed",
            "model_count": 1,
        }
    ]
    assert [m["id"] for g in passed["groups"] for m in g["models"]] == [model.pk]
