"""The developers' model selector in a real headless Chromium."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from llmadmin.models import LLMModel
from tests.browser import log_in_as_developer
from tests.factories import LLMModelFactory, ProviderFactory

pytestmark = pytest.mark.django_db(transaction=True)

LAST_USED = "llmadmin.lastModelId"


def open_selector(page: Page, base_url: str, last_used: int | str | None = None) -> None:
    """Log in as a developer and open /agents/, optionally with a stored last-used model."""
    log_in_as_developer(page, base_url)
    page.goto(f"{base_url}/agents/")
    if last_used is not None:
        page.evaluate(
            "([key, value]) => localStorage.setItem(key, value)", [LAST_USED, str(last_used)]
        )
        page.reload()


def selected_label(page: Page) -> str:
    return page.eval_on_selector("#model-select", "s => s.selectedOptions[0].textContent")


def stored(page: Page) -> str | None:
    return page.evaluate("key => localStorage.getItem(key)", LAST_USED)


@pytest.fixture
def two_providers() -> dict[str, LLMModel]:
    anthropic = ProviderFactory(anthropic=True)
    openai = ProviderFactory(openai=True)
    return {
        "haiku": LLMModelFactory(provider=anthropic, display_name="Claude Haiku"),
        "sonnet": LLMModelFactory(provider=anthropic, display_name="Claude Sonnet"),
        "gpt": LLMModelFactory(provider=openai, display_name="GPT-5", is_default=True),
    }


def test_it_preselects_the_last_used_model(page, asgi_server, two_providers):
    open_selector(page, asgi_server, last_used=two_providers["sonnet"].pk)

    expect(page.locator("#model-select")).to_be_visible()
    assert selected_label(page) == "Claude Sonnet"


def test_it_preselects_the_admin_default_without_a_last_used_model(
    page, asgi_server, two_providers
):
    open_selector(page, asgi_server)

    expect(page.locator("#model-select")).to_be_visible()
    assert selected_label(page) == "GPT-5"


def test_it_preselects_the_first_model_without_a_default(page, asgi_server, two_providers):
    LLMModel.objects.filter(is_default=True).delete()

    open_selector(page, asgi_server)

    expect(page.locator("#model-select")).to_be_visible()
    assert selected_label(page) == "Claude Haiku"


def test_a_stale_last_used_model_is_forgotten(page, asgi_server, two_providers):
    open_selector(page, asgi_server, last_used=987654)

    expect(page.locator("#model-select")).to_be_visible()
    assert selected_label(page) == "GPT-5"
    assert stored(page) is None


def test_choosing_a_model_remembers_it_for_next_time(page, asgi_server, two_providers):
    open_selector(page, asgi_server)
    page.select_option("#model-select", label="Claude Haiku")

    page.reload()

    expect(page.locator("#model-select")).to_be_visible()
    assert stored(page) == str(two_providers["haiku"].pk)
    assert selected_label(page) == "Claude Haiku"


def test_models_of_several_providers_are_grouped(page, asgi_server, two_providers):
    open_selector(page, asgi_server)

    groups = page.locator("#model-select optgroup")
    expect(groups).to_have_count(2)
    expect(groups.nth(0)).to_have_attribute("label", "Anthropic")
    expect(groups.nth(1).locator("option")).to_have_text(["GPT-5"])


def test_models_of_one_provider_are_not_grouped(page, asgi_server):
    provider = ProviderFactory(anthropic=True)
    LLMModelFactory(provider=provider, display_name="Claude Haiku")
    LLMModelFactory(provider=provider, display_name="Claude Sonnet")

    open_selector(page, asgi_server)

    expect(page.locator("#model-select option")).to_have_text(["Claude Haiku", "Claude Sonnet"])
    expect(page.locator("#model-select optgroup")).to_have_count(0)


def test_with_no_models_it_says_to_contact_an_administrator(page, asgi_server):
    ProviderFactory(anthropic=True)

    open_selector(page, asgi_server)

    expect(page.locator("#model-status")).to_have_text(
        "No models are configured. Contact an administrator."
    )
    expect(page.locator("#model-select")).to_be_hidden()
    expect(page.locator("#chat-input")).to_be_disabled()
    expect(page.locator("#chat-form button")).to_be_disabled()


def test_with_models_but_no_usable_provider_it_keeps_the_setup_to_the_admins(page, asgi_server):
    LLMModelFactory(provider=ProviderFactory(anthropic=True, no_key=True))
    LLMModelFactory(provider=ProviderFactory(openai=True, enabled=False))

    open_selector(page, asgi_server)

    # Which provider lacks a key or is switched off is for the admin page, not the developer.
    expect(page.locator("#model-status")).to_have_text(
        "No model is available right now: the providers of your models are not ready. "
        "Contact an administrator."
    )
    expect(page.locator("#model-select")).to_be_hidden()
    expect(page.locator("#chat-input")).to_be_disabled()


def test_with_every_model_kept_for_others_it_says_to_ask_for_access(page, asgi_server):
    kept = LLMModelFactory(provider=ProviderFactory(anthropic=True), restricted=True)
    kept.allowed_groups.set([Group.objects.create(name="Platform")])
    LLMModelFactory(provider=ProviderFactory(openai=True, no_key=True))

    open_selector(page, asgi_server)

    expect(page.locator("#model-status")).to_have_text(
        "No model is open to you: the models here are for some groups and users only. "
        "Ask an administrator for access."
    )
    expect(page.locator("#chat-form button")).to_be_disabled()


def test_a_developer_logs_in_and_lands_on_the_selector(page, asgi_server):
    LLMModelFactory(display_name="Claude Sonnet")
    User.objects.create_user("dev", password="a-long-password")

    page.goto(f"{asgi_server}/agents/")
    page.fill("#id_username", "dev")
    page.fill("#id_password", "a-long-password")
    page.click("button[type=submit]")

    expect(page).to_have_url(f"{asgi_server}/agents/")
    expect(page.locator("#model-select option")).to_have_text(["Claude Sonnet"])


def test_a_developer_chats_and_watches_the_answer_stream_in(page, asgi_server, settings):
    from tests.providers.fakes import FakeProvider, serve

    with serve(
        FakeProvider("anthropic", "sk-browser-chat", reply=("Hel", "lo ", "there"))
    ) as server:
        provider = ProviderFactory(anthropic=True, api_key="sk-browser-chat", base_url=server.url)
        LLMModelFactory(provider=provider, display_name="Claude Haiku")
        open_selector(page, asgi_server)
        expect(page.locator("#model-select")).to_be_visible()

        page.fill("#chat-input", "Say hello")
        page.click("#chat-form button")
        expect(page.locator(".message.assistant .text")).to_have_text("Hello there")
        page.fill("#chat-input", "Again")
        page.click("#chat-form button")
        expect(page.locator(".message.assistant .text").nth(1)).to_have_text("Hello there")

    expect(page.locator(".message.user .text")).to_have_text(["Say hello", "Again"])
    assert len(server.requests[-1].body["messages"]) == 3  # the same conversation goes on
    assert "sk-browser-chat" not in page.content()


def test_a_provider_error_shows_in_the_chat(page, asgi_server):
    from tests.providers.fakes import FakeProvider, serve

    with serve(FakeProvider("openai", "sk-right", mode="rate429")) as server:
        provider = ProviderFactory(openai=True, api_key="sk-right", base_url=f"{server.url}/v1")
        LLMModelFactory(provider=provider, display_name="GPT-5")
        open_selector(page, asgi_server)
        expect(page.locator("#model-select")).to_be_visible()

        page.fill("#chat-input", "Hi")
        page.click("#chat-form button")

        expect(page.locator(".message.error")).to_have_text(
            "The provider's rate limit was reached: try again in a moment."
        )


def test_the_login_page_is_styled_and_says_what_went_wrong(page, asgi_server):
    page.goto(f"{asgi_server}/accounts/login/")
    form = page.locator("form.card")
    expect(form).to_be_visible()
    # The site's stylesheet applies: the form is a bordered card, not bare browser defaults.
    assert form.evaluate("element => getComputedStyle(element).borderTopStyle") == "solid"

    page.fill("#id_username", "nobody")
    page.fill("#id_password", "wrong")
    page.click("form.card button[type=submit]")

    expect(page.locator("form.card .errorlist")).to_contain_text("Please enter a correct")


def test_staff_have_a_link_to_the_administration_and_developers_do_not(page, asgi_server):
    User.objects.create_user("dev", password="a-long-password")
    User.objects.create_user("ops", password="a-long-password", is_staff=True)

    for username, links in (("dev", 0), ("ops", 1)):
        page.context.clear_cookies()
        page.goto(f"{asgi_server}/agents/")
        page.fill("#id_username", username)
        page.fill("#id_password", "a-long-password")
        page.click("button[type=submit]")
        expect(page.locator("header .user")).to_have_text(username)
        expect(page.get_by_role("link", name="Administration")).to_have_count(links)

    page.get_by_role("link", name="Administration").click()
    expect(page.locator("#site-name")).to_have_text("llmadmin")
