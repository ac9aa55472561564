"""Connection tests and provider model lists in the admin."""

from __future__ import annotations

import json

import pytest
from auditlog.models import LogEntry as AuditEntry
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from playwright.sync_api import expect

from llmadmin.models import LLMModel, Provider
from tests.admin_forms import NEW_ADDRESSES, STORED_KEY, TYPED_KEY, provider_form_data
from tests.browser import log_in_as_admin
from tests.factories import ProviderFactory
from tests.providers.fakes import FakeProvider, serve
from tests.providers.hostile import REAL_IDS, hostile_ids, serve_hostile
from tests.providers.servers import bearer_token

KEY = "sk-ADMINCONN-SECRET-987"
CHANGELIST = reverse("admin:llmadmin_provider_changelist")
REMOTE_MODELS = reverse("admin:llmadmin_llmmodel_remote_models")


def openai_at(server: FakeProvider, **fields: object) -> Provider:
    return ProviderFactory(openai=True, api_key=KEY, base_url=f"{server.url}/v1", **fields)


@pytest.mark.django_db
def test_the_test_connection_button_records_and_shows_the_result(admin_client):
    with serve(FakeProvider("openai", KEY)) as server:
        provider = openai_at(server)
        url = reverse("admin:llmadmin_provider_test_connection", args=[provider.pk])

        response = admin_client.post(url, follow=True)

    assert "OpenAI: Verified. The provider accepted the API key." in response.text
    assert KEY not in response.text
    history = LogEntry.objects.get(object_id=str(provider.pk)).get_change_message()
    assert history == "Tested the connection: Verified. The provider accepted the API key."
    provider.refresh_from_db()
    assert provider.check_status == "verified"
    change_page = admin_client.get(reverse("admin:llmadmin_provider_change", args=[provider.pk]))
    assert f'formaction="{url}"' in change_page.text
    assert "Verified" in change_page.text


@pytest.mark.django_db
def test_the_test_connection_button_refuses_get(admin_client):
    provider = ProviderFactory(openai=True)

    url = reverse("admin:llmadmin_provider_test_connection", args=[provider.pk])

    assert admin_client.get(url).status_code == 405


@pytest.mark.django_db
def test_the_list_action_tests_the_selected_providers_and_shows_each_status(admin_client):
    with (
        serve(FakeProvider("openai", "sk-other")) as rejecting,
        serve(FakeProvider("anthropic", KEY, mode="error500")) as failing,
    ):
        openai = openai_at(rejecting)
        anthropic = ProviderFactory(anthropic=True, api_key=KEY, base_url=failing.url)
        google = ProviderFactory(google=True, no_key=True)

        response = admin_client.post(
            CHANGELIST,
            {
                "action": "test_connection",
                "_selected_action": [openai.pk, anthropic.pk, google.pk],
            },
            follow=True,
        )

    text = response.text
    assert "OpenAI: Rejected by the provider. The provider rejected the API key (401)." in text
    assert "Anthropic: Connection failed. The server at " in text
    assert "Google (Gemini): Not tested: no API key." in text
    listing = admin_client.get(CHANGELIST).text
    assert "Rejected by the provider" in listing
    assert "Connection failed" in listing
    assert KEY not in text + listing


@pytest.mark.django_db
def test_staff_who_may_only_view_providers_cannot_test_them(client):
    provider = ProviderFactory(openai=True)
    viewer = User.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_provider"))
    client.force_login(viewer)

    url = reverse("admin:llmadmin_provider_test_connection", args=[provider.pk])

    assert client.post(url).status_code == 403
    assert url not in client.get(reverse("admin:llmadmin_provider_change", args=[provider.pk])).text


@pytest.mark.django_db
def test_the_model_form_gets_the_providers_model_list(admin_client):
    with serve(FakeProvider("anthropic", KEY)) as server:
        provider = ProviderFactory(anthropic=True, api_key=KEY, base_url=server.url)

        response = admin_client.get(REMOTE_MODELS, {"provider": provider.pk})

    assert response.json() == {
        "provider_label": "Anthropic",
        "models": [
            {"identifier": "claude-opus-4-6", "context_limit": 1_000_000},
            {"identifier": "claude-sonnet-4-6", "context_limit": 1_000_000},
            {"identifier": "claude-haiku-4-5", "context_limit": 200_000},
        ],
        "left_out": 0,
    }
    assert KEY not in response.text


@pytest.mark.django_db
def test_the_model_list_says_why_it_is_not_available(admin_client):
    with serve(FakeProvider("openai", "sk-other")) as server:
        provider = openai_at(server)

        response = admin_client.get(REMOTE_MODELS, {"provider": provider.pk})

    assert response.status_code == 502
    assert response.json() == {"error": "The provider rejected the API key (401)."}


@pytest.mark.django_db
def test_the_model_list_of_a_provider_without_a_key_says_so_without_an_error_status(
    admin_client,
):
    provider = ProviderFactory(openai=True, no_key=True)

    response = admin_client.get(REMOTE_MODELS, {"provider": provider.pk})

    assert response.status_code == 200
    assert response.json() == {"provider_label": "OpenAI", "unavailable": "no API key."}


@pytest.mark.django_db
def test_the_model_list_needs_permission_on_models(client):
    provider = ProviderFactory(openai=True)
    client.force_login(User.objects.create_user("staff", is_staff=True))

    assert client.get(REMOTE_MODELS, {"provider": provider.pk}).status_code == 403


@pytest.mark.django_db
def test_saving_a_model_warns_when_the_provider_reports_another_context_limit(admin_client):
    with serve(FakeProvider("anthropic", KEY)) as server:
        provider = ProviderFactory(anthropic=True, api_key=KEY, base_url=server.url)
        admin_client.get(REMOTE_MODELS, {"provider": provider.pk})

    response = admin_client.post(
        reverse("admin:llmadmin_llmmodel_add"),
        {
            "provider": provider.pk,
            "identifier": "claude-haiku-4-5",
            "display_name": "Haiku",
            "enabled": "on",
            "context_limit": "100000",
            "compression_threshold": "70",
        },
        follow=True,
    )

    assert LLMModel.objects.get().context_limit == 100_000
    assert (
        "Anthropic reports a context limit of 200000 for claude-haiku-4-5; this model has 100000."
        in response.text
    )


@pytest.mark.django_db(transaction=True)
def test_the_model_form_offers_the_reported_identifiers_and_warns_in_the_browser(page, asgi_server):
    with serve(FakeProvider("openrouter", KEY)) as server:
        ProviderFactory(openrouter=True, api_key=KEY, base_url=f"{server.url}/api/v1")

        log_in_as_admin(page, asgi_server, "/admin/llmadmin/llmmodel/add/")
        page.select_option("#id_provider", label="OpenRouter")

        expect(page.locator(".remote-models-status")).to_contain_text(
            "1 models reported by OpenRouter"
        )
        # The provider's own and the catalog's identifiers, each once.
        options = page.locator("#remote-model-ids option")
        expect(options.locator("xpath=self::*[@value='openai/gpt-5']")).to_have_count(1)
        expect(
            options.locator("xpath=self::*[@value='anthropic/claude-sonnet-4.6']")
        ).to_have_count(1)
        page.fill("#id_identifier", "openai/gpt-5")
        expect(page.locator("#id_context_limit")).to_have_value("400000")
        page.fill("#id_context_limit", "128000")
        expect(page.locator(".context-warning")).to_have_text(
            "OpenRouter reports a context limit of 400000 for openai/gpt-5."
        )


def connection_test_url(provider: Provider) -> str:
    return reverse("admin:llmadmin_provider_test_connection", args=[provider.pk])


@pytest.mark.django_db
def test_the_page_tests_a_typed_key_and_base_url_before_saving(admin_client):
    provider = ProviderFactory(openai_compat=True, no_key=True, base_url="")
    with serve(FakeProvider("openai", KEY)) as server:
        typed = provider_form_data(provider, api_key=KEY, base_url=f"{server.url}/v1")

        answer = admin_client.post(
            connection_test_url(provider), typed, HTTP_ACCEPT="application/json"
        )

    assert answer.json() == {
        "level": "success",
        "message": "Verified (what is typed, not saved yet). The provider accepted the API key.",
        "last_test": "Just now, of what is typed: saving it records this.",
    }
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    provider.refresh_from_db()  # nothing saved, nothing recorded
    assert (provider.key_state, provider.base_url, provider.check_status) == ("missing", "", "")


@pytest.mark.django_db
def test_the_page_tests_the_stored_key_when_nothing_is_typed_and_records_it(admin_client):
    with serve(FakeProvider("openai", "sk-other")) as server:
        provider = openai_at(server)

        answer = admin_client.post(
            connection_test_url(provider),
            provider_form_data(provider),
            HTTP_ACCEPT="application/json",
        )

    assert answer.json() == {
        "level": "error",
        "message": "Rejected by the provider. The provider rejected the API key (401).",
        "last_test": "Just now. The provider rejected the API key (401).",
    }
    provider.refresh_from_db()
    assert provider.check_status == "rejected"


@pytest.mark.django_db
def test_the_page_does_not_test_fields_it_would_refuse(admin_client):
    provider = ProviderFactory(openai_compat=True, no_key=True, base_url="")

    answer = admin_client.post(
        connection_test_url(provider),
        provider_form_data(provider, api_key=KEY, base_url="not a url"),
        HTTP_ACCEPT="application/json",
    )

    assert answer.json() == {
        "level": "error",
        "message": "Not tested: correct the fields below first.",
        "last_test": None,
    }
    assert KEY not in answer.content.decode()


@pytest.mark.django_db(transaction=True)
def test_test_connection_in_a_browser_keeps_what_was_typed(page, asgi_server):
    provider = Provider.objects.get(type="openai-compat")
    with serve(FakeProvider("openai", KEY)) as server:
        log_in_as_admin(page, asgi_server, f"/admin/llmadmin/provider/{provider.pk}/change/")
        page.fill("#id_api_key", KEY)
        page.fill("#id_base_url", f"{server.url}/v1")

        page.get_by_role("button", name="Test connection").click()

        expect(page.locator(".test-result")).to_have_text(
            "Verified (what is typed, not saved yet). The provider accepted the API key."
        )
        # Still on the page, with everything typed: a save stores it.
        expect(page.locator("#id_base_url")).to_have_value(f"{server.url}/v1")
        page.click("input[name=_save]")
        expect(page.locator(".messagelist")).to_contain_text("was changed successfully")

    provider.refresh_from_db()
    assert (provider.api_key, provider.base_url) == (KEY, f"{server.url}/v1")


# --- A stored key goes only where it was entered -------------------------------------------


@pytest.fixture
def editor(client):
    """Staff who may change providers, and nothing else."""
    user = User.objects.create_user("editor", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["change_provider", "view_provider"])
    )
    client.force_login(user)
    return user


def typed(posted: dict[str, object], attacker: FakeProvider) -> dict[str, object]:
    return {name: str(value).format(attacker=attacker.url) for name, value in posted.items()}


def audit_table() -> str:
    return json.dumps(list(AuditEntry.objects.values()), default=str)


@pytest.mark.django_db
@pytest.mark.parametrize(("stored", "posted", "key_field"), NEW_ADDRESSES)
def test_a_new_address_is_not_tested_with_the_stored_key(
    client, admin_client, editor, stored, posted, key_field
):
    provider = ProviderFactory(**stored)
    with serve(FakeProvider("anthropic", STORED_KEY)) as attacker:
        answer = client.post(
            connection_test_url(provider),
            provider_form_data(provider, **typed(posted, attacker)),
            HTTP_ACCEPT="application/json",
        )

    assert attacker.requests == []
    assert answer.json() == {
        "level": "error",
        "message": "Not tested: re-enter the key to use it with a new address.",
        "last_test": None,
    }
    entry = AuditEntry.objects.get(action=AuditEntry.Action.ACCESS)
    assert (entry.actor, entry.object_id) == (editor, provider.pk)
    assert entry.changes == {
        **{name: ["(stored)", "(typed for a test, not saved)"] for name in posted},
        "connection test": ["", "Not tested: re-enter the key to use it with a new address."],
    }
    assert STORED_KEY not in audit_table()
    (typed_field,) = posted
    listed = admin_client.get(reverse("admin:auditlog_logentry_changelist")).text
    assert f"Connection test with typed {FIELD_LABELS[typed_field]}" in listed


FIELD_LABELS = {"base_url": "base URL", "region": "region", "auth": "authentication"}


@pytest.mark.django_db
def test_a_new_address_is_tested_with_the_key_typed_beside_it(client, editor):
    provider = ProviderFactory(anthropic=True, api_key=STORED_KEY, base_url="https://llm.corp")
    with serve(FakeProvider("anthropic", TYPED_KEY)) as server:
        answer = client.post(
            connection_test_url(provider),
            provider_form_data(provider, base_url=server.url, api_key=TYPED_KEY),
            HTTP_ACCEPT="application/json",
        )

    assert answer.json()["message"] == (
        "Verified (what is typed, not saved yet). The provider accepted the API key."
    )
    assert [bearer_token(request.headers) for request in server.requests] == [TYPED_KEY]
    entry = AuditEntry.objects.get(action=AuditEntry.Action.ACCESS)
    assert entry.actor == editor
    assert set(entry.changes) == {"api_key", "base_url", "connection test"}
    table = audit_table()
    assert TYPED_KEY not in table
    assert STORED_KEY not in table
    provider.refresh_from_db()  # nothing saved
    assert (provider.api_key, provider.base_url) == (STORED_KEY, "https://llm.corp")


@pytest.mark.django_db
def test_without_a_script_the_button_tests_only_what_is_stored(client, editor):
    with (
        serve(FakeProvider("anthropic", STORED_KEY)) as home,
        serve(FakeProvider("anthropic", STORED_KEY)) as attacker,
    ):
        provider = ProviderFactory(anthropic=True, api_key=STORED_KEY, base_url=home.url)
        response = client.post(
            connection_test_url(provider),
            provider_form_data(provider, base_url=attacker.url),
            follow=True,
        )

    assert attacker.requests == []
    assert len(home.requests) == 1
    assert "Anthropic: Verified." in response.text


@pytest.mark.django_db
def test_the_servers_own_aws_credentials_are_tested_at_a_new_address_without_a_key(client, editor):
    # No stored secret goes with them: the server's chain signs, wherever it is sent.
    provider = ProviderFactory(
        bedrock=True, auth="default_chain", api_key=STORED_KEY, base_url="https://llm.corp"
    )

    answer = client.post(
        connection_test_url(provider),
        provider_form_data(provider, base_url="http://127.0.0.1:9"),
        HTTP_ACCEPT="application/json",
    )

    assert "(what is typed, not saved yet)" in answer.json()["message"]
    entry = AuditEntry.objects.get(action=AuditEntry.Action.ACCESS)
    assert set(entry.changes) == {"base_url", "connection test"}


@pytest.mark.django_db(transaction=True)
def test_the_model_form_says_how_many_listed_ids_were_left_out(page, asgi_server):
    with serve_hostile("openai", "listed_ids") as server:
        ProviderFactory(openrouter=True, api_key=KEY, base_url=f"{server.url}/api/v1")

        log_in_as_admin(page, asgi_server, "/admin/llmadmin/llmmodel/add/")
        page.select_option("#id_provider", label="OpenRouter")

        expect(page.locator(".remote-models-status")).to_have_text(
            f"{len(REAL_IDS['openai'])} models reported by OpenRouter: pick one or type an "
            f"identifier. {len(hostile_ids(KEY))} listed ids were left out: they are not model "
            "ids we can show."
        )
        assert KEY not in page.content()
