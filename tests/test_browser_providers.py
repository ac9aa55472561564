"""The provider pages in a real headless Chromium: what a connection test found is what the
admin and the developers get."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from llmadmin.models import Provider
from llmadmin.providers import bedrock
from tests.browser import log_in_as_admin
from tests.factories import LLMModelFactory, ProviderFactory
from tests.providers.fakes import FakeProvider, serve

pytestmark = pytest.mark.django_db(transaction=True)

WRONG_KEY = "sk-BROWSERSECRET-rejected-4f2a"
CONFIRM = "I understand, save anyway"


def test_saving_a_key_the_test_rejected_asks_first_and_takes_its_models_out(page, asgi_server):
    provider = Provider.objects.get(type="openai-compat")
    LLMModelFactory(provider=provider, display_name="Qwen Coder")
    with serve(FakeProvider("openai", "sk-the-right-one")) as server:
        log_in_as_admin(page, asgi_server, f"/admin/llmadmin/provider/{provider.pk}/change/")
        expect(page.locator(".field-remove_api_key")).to_have_count(0)  # nothing stored
        page.fill("#id_api_key", WRONG_KEY)
        page.fill("#id_base_url", f"{server.url}/v1")

        page.get_by_role("button", name="Test connection").click()
        expect(page.locator(".test-result")).to_have_text(
            "Rejected by the provider (what is typed, not saved yet). "
            "The provider rejected the API key (401)."
        )
        # "Last test" follows the test, in place.
        expect(page.locator(".last-test")).to_have_text(
            "Just now, of what is typed: saving it records this."
        )
        page.get_by_role("button", name="Test connection").click()  # a test asks no confirmation
        expect(page.locator(".test-result")).to_contain_text("The provider rejected the API key")

        page.click("input[name=_continue]")
        # Nothing saved yet; nothing typed lost, and the key not in the page.
        expect(page.locator(".errorlist.nonfield")).to_contain_text(
            "Test connection just found what you are saving failing: Rejected by the provider."
        )
        assert "BROWSERSECRET" not in page.content()
        expect(page.locator("#id_base_url")).to_have_value(f"{server.url}/v1")
        expect(page.locator(".field-api_key .help")).to_contain_text("The value you typed is kept")
        assert Provider.objects.get(pk=provider.pk).api_key is None

        page.get_by_label(CONFIRM).check()
        page.click("input[name=_continue]")

    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    expect(page.locator(".field-key_status")).to_contain_text("Rejected by the provider")
    expect(page.locator(".field-models_and_add_link")).to_contain_text(
        "Developers don't get them: the last connection test found the key rejected."
    )
    assert "BROWSERSECRET" not in page.content()
    provider.refresh_from_db()
    assert (provider.api_key, provider.check_status) == (WRONG_KEY, "rejected")
    page.goto(f"{asgi_server}/admin/llmadmin/llmmodel/")
    expect(page.locator("#result_list .field-developers_get_it")).to_have_text(["No: key rejected"])


def test_the_servers_missing_aws_credentials_keep_its_models_from_developers(
    page, asgi_server, monkeypatch
):
    monkeypatch.setattr(bedrock, "server_credentials", lambda: None)
    provider = ProviderFactory(bedrock=True, no_key=True, region="us-east-1")
    LLMModelFactory(provider=provider, display_name="Claude on Bedrock")
    log_in_as_admin(page, asgi_server, f"/admin/llmadmin/provider/{provider.pk}/change/")
    expect(page.locator(".field-key_status")).to_contain_text("No key")

    page.select_option("#id_auth", label="The server's AWS credentials")
    # The stored key's status and its removal don't apply to the server's credentials.
    expect(page.locator(".field-key_status")).to_be_hidden()
    expect(page.locator(".field-remove_api_key")).to_have_count(0)
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator(".test-result")).to_have_text(
        "Connection failed (what is typed, not saved yet). The server has no AWS credentials "
        "(environment, shared config, or a container or instance role)."
    )
    page.click("input[name=_continue]")
    page.get_by_label(CONFIRM).check()
    page.click("input[name=_continue]")

    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    expect(page.locator(".field-key_status")).to_contain_text("Connection failed")
    expect(page.locator(".field-models_and_add_link")).to_contain_text(
        "Developers don't get them: the last connection test failed."
    )
    page.goto(f"{asgi_server}/admin/llmadmin/llmmodel/")
    expect(page.locator("#result_list .field-developers_get_it")).to_have_text(
        ["No: connection test failed"]
    )


def test_the_provider_list_fits_a_1280_pixel_screen(page, asgi_server):
    long_url = "https://my-company-resource-name.openai.azure.com/openai/deployments/gpt-5"
    ProviderFactory(azure=True, base_url=long_url)
    ProviderFactory(openai_compat=True, base_url="https://litellm.internal.example.com:4000/v1")
    page.set_viewport_size({"width": 1280, "height": 800})
    log_in_as_admin(page, asgi_server, "/admin/llmadmin/provider/")

    results = page.locator("#changelist .results")
    expect(results).to_contain_text("Vercel AI Gateway")
    assert results.evaluate("element => element.scrollWidth <= element.clientWidth")


def test_a_test_connection_to_a_wrong_address_says_the_server_answered(page, asgi_server):
    provider = Provider.objects.get(type="openai-compat")
    with serve(FakeProvider("openai", "sk-the-right-one")) as server:
        log_in_as_admin(page, asgi_server, f"/admin/llmadmin/provider/{provider.pk}/change/")
        page.fill("#id_api_key", "sk-the-right-one")
        page.fill("#id_base_url", f"{server.url}/v9")  # the right host, not the API's path

        page.get_by_role("button", name="Test connection").click()

        host = server.url.removeprefix("http://")
        expect(page.locator(".test-result")).to_have_text(
            "Connection failed (what is typed, not saved yet). "
            f"Wrong address: the server at {host} answered 404 Not Found; check the base URL."
        )
