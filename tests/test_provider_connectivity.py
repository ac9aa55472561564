"""Verifying keys and listing models against real HTTP servers that speak each provider's API."""

from __future__ import annotations

import io
import logging

import pytest
from django.core.management import call_command
from django.urls import reverse

from llmadmin.models import Provider
from llmadmin.selectors import provider_remote_models
from llmadmin.services import provider_check_connection
from tests.factories import LLMModelFactory, ProviderFactory
from tests.provider_servers import FakeProvider, serve

pytestmark = pytest.mark.django_db

KEY = "sk-CONNSECRET-0123456789abcdef"

# type -> (server family, traits, path appended to the server's URL for the base URL,
#          the path and auth headers the verify call must use, models listed)
FAMILIES = {
    "openai": ("openai", {"openai": True}, "/v1", "/v1/models",
               {"authorization": f"Bearer {KEY}"}, ["gpt-5", "gpt-5-mini"]),
    "openai-compat": ("openai", {"openai_compat": True}, "/v1", "/v1/models",
                      {"authorization": f"Bearer {KEY}"}, ["gpt-5", "gpt-5-mini"]),
    "anthropic": ("anthropic", {"anthropic": True}, "", "/v1/models",
                  {"x-api-key": KEY, "anthropic-version": "2023-06-01"},
                  ["claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5"]),
    "google": ("google", {"google": True}, "", "/v1beta/models", {"x-goog-api-key": KEY},
               ["gemini-2.5-pro", "gemini-2.5-flash"]),
    "azure": ("azure", {"azure": True}, "", "/openai/v1/models", {"api-key": KEY}, ["gpt-5"]),
    "bedrock": ("bedrock", {"bedrock": True}, "", "/foundation-models",
                {"authorization": f"Bearer {KEY}"},
                ["anthropic.claude-sonnet-4-5-20250929-v1:0",
                 "us.anthropic.claude-sonnet-4-5-20250929-v1:0"]),
    "openrouter": ("openrouter", {"openrouter": True}, "/api/v1", "/api/v1/key",
                   {"authorization": f"Bearer {KEY}"}, ["openai/gpt-5"]),
    "vercel": ("vercel", {"vercel": True}, "/v1", "/v1/credits",
               {"authorization": f"Bearer {KEY}"}, ["anthropic/claude-sonnet-4.5"]),
}  # fmt: skip


@pytest.fixture(autouse=True)
def short_timeouts(settings):
    settings.PROVIDER_CONNECT_TIMEOUT = 0.5
    settings.PROVIDER_READ_TIMEOUT = 0.5


def provider_for(provider_type: str, server: FakeProvider, api_key: str = KEY) -> Provider:
    _, traits, base_path, *_ = FAMILIES[provider_type]
    return ProviderFactory(**traits, api_key=api_key, base_url=server.url + base_path)


@pytest.mark.parametrize("provider_type", FAMILIES)
def test_a_valid_key_is_verified_with_the_providers_own_auth_and_path(provider_type):
    family, _, _, path, auth_headers, _ = FAMILIES[provider_type]
    with serve(FakeProvider(family, KEY)) as server:
        provider = provider_for(provider_type, server)

        status, reason = provider_check_connection(provider=provider)

    assert (status, reason) == ("verified", "The provider accepted the API key.")
    provider.refresh_from_db()
    assert provider.check_status == "verified"
    assert provider.checked_at is not None
    request = server.requests[0]
    assert request.path == path
    for name, value in auth_headers.items():
        assert request.headers[name] == value


@pytest.mark.parametrize("provider_type", FAMILIES)
def test_a_wrong_key_is_recorded_as_rejected(provider_type):
    family = FAMILIES[provider_type][0]
    with serve(FakeProvider(family, "sk-the-right-key")) as server:
        provider = provider_for(provider_type, server)

        status, reason = provider_check_connection(provider=provider)

    assert status == "rejected"
    assert reason in (
        "The provider rejected the API key (401).",
        "The provider rejected the API key (400).",
        "The provider refused the API key (403): it is wrong or lacks permission.",
    )
    provider.refresh_from_db()
    assert (provider.check_status, provider.availability) == ("rejected", "key_rejected")


@pytest.mark.parametrize("provider_type", FAMILIES)
def test_it_lists_the_providers_models(provider_type):
    family, *_, expected = FAMILIES[provider_type]
    with serve(FakeProvider(family, KEY)) as server:
        provider = provider_for(provider_type, server)

        models = provider.client().list_models()

    assert [model.identifier for model in models] == expected
    assert all(
        KEY not in request.path and not request.query.get("key") for request in server.requests
    )


def test_context_limits_come_with_the_list_where_the_provider_reports_them():
    with serve(FakeProvider("anthropic", KEY)) as server:
        provider = provider_for("anthropic", server)
        models = provider.client().list_models()

    assert {model.identifier: model.context_limit for model in models}["claude-haiku-4-5"] == (
        200_000
    )


def test_anthropic_and_google_lists_are_followed_across_pages():
    for provider_type, page_param in (("anthropic", "after_id"), ("google", "pageToken")):
        with serve(FakeProvider(provider_type, KEY)) as server:
            provider = provider_for(provider_type, server)
            provider.client().list_models()

        assert len(server.requests) == 2
        assert page_param in server.requests[1].query


@pytest.mark.parametrize("provider_type", FAMILIES)
@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("error500", "answered 500."),
        ("slow", "timed out after 0.5 s"),
        ("malformed", "not JSON"),
    ],
)
def test_an_outage_is_recorded_as_unreachable_and_keeps_the_models(provider_type, mode, words):
    family = FAMILIES[provider_type][0]
    with serve(FakeProvider(family, KEY, mode=mode)) as server:
        provider = provider_for(provider_type, server)
        LLMModelFactory(provider=provider)

        status, reason = provider_check_connection(provider=provider)

    assert status == "unreachable"
    assert words in reason
    assert "127.0.0.1" in reason
    provider.refresh_from_db()
    assert provider.availability == "available"


def test_nothing_listens_is_unreachable():
    provider = ProviderFactory(openai=True, base_url="http://127.0.0.1:9/v1")

    status, reason = provider_check_connection(provider=provider)

    assert status == "unreachable"
    assert reason.startswith("Could not reach 127.0.0.1:9")


def test_a_redirect_to_another_host_does_not_carry_the_key():
    # Same machine, other port: another origin all the same.
    with (
        serve(FakeProvider("anthropic", KEY)) as elsewhere,
        serve(FakeProvider("anthropic", KEY, mode="redirect", redirect_to=elsewhere.url)) as server,
    ):
        provider = provider_for("anthropic", server)

        status, reason = provider_check_connection(provider=provider)

    assert status == "unreachable"
    assert "the key was not sent there" in reason
    assert elsewhere.requests == []


def test_a_redirect_within_the_same_host_is_followed_with_the_key():
    with serve(FakeProvider("anthropic", KEY, mode="redirect")) as server:
        server.redirect_to = server.url + "/moved"
        provider = provider_for("anthropic", server)

        status, _ = provider_check_connection(provider=provider)

    assert status == "verified"
    assert server.requests[1].path == "/moved/v1/models"
    assert server.requests[1].headers["x-api-key"] == KEY


def test_a_rejected_key_takes_the_models_out_of_the_developers_list(client, django_user_model):
    with serve(FakeProvider("openai", "sk-other")) as server:
        provider = provider_for("openai", server)
        LLMModelFactory(provider=provider, display_name="GPT-5")
        client.force_login(django_user_model.objects.create_user("dev"))
        assert client.get(reverse("api-models")).json()["groups"]

        provider_check_connection(provider=provider)

    payload = client.get(reverse("api-models")).json()
    assert payload["groups"] == []
    assert payload["unavailable_providers"][0]["reason"] == "key_rejected"


def test_a_new_key_clears_the_rejection(admin_client):
    with serve(FakeProvider("openai", "sk-other")) as server:
        provider = provider_for("openai", server)
        provider_check_connection(provider=provider)

    from llmadmin.services import provider_set_api_key

    provider_set_api_key(provider=provider, api_key="sk-new")

    provider.refresh_from_db()
    assert (provider.check_status, provider.availability) == ("", "available")


def test_no_key_no_call():
    provider = ProviderFactory(openai=True, no_key=True)

    assert provider_check_connection(provider=provider) == (None, "No readable API key to test.")
    provider.refresh_from_db()
    assert provider.check_status == ""


def test_the_bedrock_client_lists_on_the_regions_control_plane():
    provider = ProviderFactory(bedrock=True, region="eu-west-1", api_key=KEY)

    client = provider.client()

    assert client.control_url == "https://bedrock.eu-west-1.amazonaws.com"
    assert client.base_url == "https://bedrock-runtime.eu-west-1.amazonaws.com"


def test_remote_models_are_fetched_once_and_reused():
    with serve(FakeProvider("openai", KEY)) as server:
        provider = provider_for("openai", server)

        first = provider_remote_models(provider=provider)
        second = provider_remote_models(provider=provider)

    assert first == second
    assert len(server.requests) == 1


def test_no_log_record_holds_the_key(caplog):
    caplog.set_level(logging.DEBUG)
    for mode in ("ok", "error500", "malformed"):
        with serve(FakeProvider("google", KEY, mode=mode)) as server:
            provider = provider_for("google", server)
            provider_check_connection(provider=provider)
            provider.delete()

    assert caplog.records
    assert all("CONNSECRET" not in record.getMessage() for record in caplog.records)


def test_check_providers_prints_a_table_and_fails_on_a_rejected_key():
    with (
        serve(FakeProvider("openai", KEY)) as good,
        serve(FakeProvider("anthropic", "sk-other")) as bad,
    ):
        provider_for("openai", good)
        provider_for("anthropic", bad)
        ProviderFactory(google=True, no_key=True)
        out = io.StringIO()

        with pytest.raises(SystemExit) as exit_code:
            call_command("check_providers", stdout=out)

    assert exit_code.value.code == 1
    lines = out.getvalue().splitlines()
    assert any(line.startswith("OpenAI") and "verified" in line for line in lines)
    assert any(line.startswith("Anthropic") and "rejected" in line for line in lines)
    assert any(line.startswith("Google (Gemini)") and "no key" in line for line in lines)
    assert "CONNSECRET" not in out.getvalue()


def test_check_providers_succeeds_when_no_key_is_rejected():
    with serve(FakeProvider("openai", KEY)) as server:
        provider_for("openai", server)
        out = io.StringIO()

        call_command("check_providers", stdout=out)

    assert "verified" in out.getvalue()
