"""A second account of a provider type in a real headless Chromium: added from the provider
list, set up on its page, given a model, and offered to developers beside the first."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from llmadmin.models import LLMModel, Provider
from tests.browser import log_in_as_admin, log_in_as_developer
from tests.factories import LLMModelFactory, ProviderFactory
from tests.providers.fakes import FakeProvider, serve

pytestmark = pytest.mark.django_db(transaction=True)

VLLM_KEY = "sk-vllm-BROWSERSECRET-7c1e"


def test_an_admin_adds_a_second_compatible_account_and_developers_see_both(page, asgi_server):
    litellm = ProviderFactory(openai_compat=True, base_url="http://127.0.0.1:9/v1")
    LLMModelFactory(provider=litellm, display_name="Llama 3.3", identifier="llama-3.3")
    with serve(FakeProvider("openai", VLLM_KEY)) as vllm_server:
        log_in_as_admin(page, asgi_server, "/admin/llmadmin/provider/")
        page.get_by_role("link", name="Add provider").click()
        page.select_option("#id_type", label="OpenAI Compatible")
        # Filled whole, then left as a person leaves it: typed key by key, the page's
        # autofocus (applied late on a loaded machine) once took the rest of the keys.
        page.fill("#id_name", "Internal vLLM")
        page.locator("#id_name").press("Tab")
        expect(page.locator("#id_slug")).to_have_value("internal-vllm")  # made from the name
        page.click("input[name=_save]")

        # Its own page, to enter where it is and its key.
        expect(page.locator(".messagelist")).to_contain_text(
            "Now enter Internal vLLM's credentials and address below and save"
        )
        page.fill("#id_base_url", f"{vllm_server.url}/v1")
        page.fill("#id_api_key", VLLM_KEY)
        page.click("input[name=_continue]")
        expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
        expect(page.locator(".field-key_status")).to_contain_text("Key set")

        # A model of it: its type's options, the models its own server lists.
        page.get_by_role("link", name="Add a model to Internal vLLM").click()
        expect(page.locator("#id_provider option:checked")).to_have_text(
            "Internal vLLM (OpenAI Compatible)"
        )
        expect(page.locator("fieldset.provider-options-openai-compat")).to_be_visible()
        expect(page.locator("fieldset.provider-options-openai")).to_be_hidden()
        expect(page.locator("#remote-model-ids option[value=gpt-5-mini]")).to_have_count(1)
        page.fill("#id_identifier", "gpt-5-mini")
        page.fill("#id_display_name", "Qwen3 Coder")
        page.fill("#id_context_limit", "131072")
        page.click("input[name=_save]")
        expect(page.locator(".messagelist")).to_contain_text("was added successfully")
        expect(page.locator("#result_list tr", has_text="Qwen3 Coder")).to_contain_text(
            "Internal vLLM (OpenAI Compatible)"
        )
        assert "BROWSERSECRET" not in page.content()

    account = Provider.objects.get(name="Internal vLLM")
    assert (account.type, account.slug, account.api_key) == (
        "openai-compat",
        "internal-vllm",
        VLLM_KEY,
    )
    assert LLMModel.objects.get(display_name="Qwen3 Coder").provider == account
    assert {request.path for request in vllm_server.requests} == {"/v1/models"}

    log_in_as_developer(page, asgi_server)
    page.goto(f"{asgi_server}/agents/")
    expect(page.locator("#model-select")).to_be_visible()
    groups = page.locator("#model-select optgroup")
    expect(groups).to_have_count(2)
    assert groups.evaluate_all("gs => gs.map((g) => [g.label, g.textContent])") == [
        ["OpenAI Compatible", "Llama 3.3"],
        ["Internal vLLM (OpenAI Compatible)", "Qwen3 Coder"],
    ]
