"""Content-Security-Policy and Permissions-Policy on every page, and the pages under them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from playwright.sync_api import Page, expect

from llmadmin.models import Provider
from tests.browser import log_in_through_the_admin_form, policy_violations
from tests.factories import LLMModelFactory, ProviderFactory

POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "object-src": ["'none'"],
}
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


def directives(header: str) -> dict[str, list[str]]:
    """A policy header as {directive: sources}; django-csp's directive order is not fixed."""
    name_and_sources = (part.split() for part in header.split(";") if part.strip())
    return {name: sources for name, *sources in name_and_sources}


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("root", password="pw")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "logged_in", "status"),
    [
        pytest.param(reverse("admin:login"), False, 200, id="admin login"),
        pytest.param(reverse("admin:llmadmin_provider_changelist"), True, 200, id="admin list"),
        pytest.param(reverse("admin:llmadmin_llmmodel_add"), True, 200, id="admin model form"),
        pytest.param(reverse("login"), False, 200, id="developer login"),
        pytest.param(reverse("agents"), True, 200, id="agents page"),
        pytest.param(reverse("agents"), False, 302, id="redirect to log in"),
        pytest.param(reverse("api-models"), True, 200, id="API JSON"),
        pytest.param(reverse("api-models"), False, 403, id="API refusal"),
        pytest.param(reverse("api-schema"), True, 200, id="OpenAPI schema"),
        pytest.param("/api/v1/conversations/999/", True, 404, id="API not found"),
        pytest.param("/no-such-page/", False, 404, id="page not found"),
    ],
)
def test_every_kind_of_response_carries_both_policies(client, admin_user, url, logged_in, status):
    if logged_in:
        client.force_login(admin_user)

    response = client.get(url)

    assert response.status_code == status
    assert directives(response["Content-Security-Policy"]) == POLICY
    assert response["Permissions-Policy"] == PERMISSIONS_POLICY


@pytest.mark.django_db
def test_the_api_docs_allow_their_one_inline_style_by_a_nonce_and_nothing_else(client, admin_user):
    client.force_login(admin_user)

    response = client.get(reverse("api-docs"))

    policy = directives(response["Content-Security-Policy"])
    (nonce,) = re.findall(r'<style nonce="([^"]+)">', response.text)
    assert policy == {**POLICY, "style-src": ["'self'", f"'nonce-{nonce}'"]}
    assert response["Permissions-Policy"] == PERMISSIONS_POLICY
    assert "<script>" not in response.text  # the init script is a file, not inline


@pytest.mark.django_db
def test_the_api_docs_init_script_is_served_as_a_file_under_the_plain_policy(client, admin_user):
    client.force_login(admin_user)

    response = client.get(reverse("api-docs"), {"script": ""})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/javascript"
    assert "SwaggerUIBundle(" in response.text
    assert directives(response["Content-Security-Policy"]) == POLICY


def test_every_docs_page_gets_a_new_nonce(admin_client):
    first, second = (admin_client.get(reverse("api-docs")).text for _ in range(2))

    assert re.findall(r'nonce="([^"]+)"', first) != re.findall(r'nonce="([^"]+)"', second)


# In the browser: the pages work under the policy, and the browser reports no violation.


@pytest.fixture
def violations(page: Page) -> Iterator[list[str]]:
    """Every policy violation the browser reports, as an event or on the console."""
    found = policy_violations(page)
    page.on(
        "console",
        lambda message: (
            found.append(message.text)
            if "Content Security Policy" in message.text or "Permissions policy" in message.text
            else None
        ),
    )
    yield found


def log_in_as_developer(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    User.objects.create_user("dev", password="a-long-password")
    page.fill("#id_username", "dev")
    page.fill("#id_password", "a-long-password")
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base_url}/agents/")


@pytest.mark.django_db(transaction=True)
def test_the_admin_works_under_the_policy(page, asgi_server, violations):
    anthropic = Provider.objects.get(type="anthropic")

    log_in_through_the_admin_form(page, asgi_server)
    page.get_by_role("link", name="Providers", exact=True).first.click()
    page.click("#result_list >> text=Anthropic")
    expect(page).to_have_url(re.compile(rf"/provider/{anthropic.pk}/change/$"))
    expect(page.locator("input[name=api_key]")).to_have_attribute("type", "password")
    page.goto(f"{asgi_server}/admin/llmadmin/llmmodel/add/")
    page.select_option("#id_provider", label="Anthropic")
    expect(page.locator("fieldset.provider-options-anthropic")).to_be_visible()
    expect(page.locator("fieldset.provider-options-openai")).to_be_hidden()
    page.select_option("#id_provider", label="OpenAI")
    expect(page.locator("fieldset.provider-options-openai")).to_be_visible()
    expect(page.locator("fieldset.provider-options-anthropic")).to_be_hidden()

    assert violations == []


@pytest.mark.django_db(transaction=True)
def test_the_agents_page_works_under_the_policy(page, asgi_server, violations):
    LLMModelFactory(provider=ProviderFactory(anthropic=True), display_name="Claude Haiku")

    log_in_as_developer(page, asgi_server)

    expect(page.locator("#model-select option")).to_have_text(["Claude Haiku"])
    expect(page.locator("#chat-form textarea#chat-input")).to_be_visible()
    expect(page.locator("#chat-form button")).to_have_text("Send")
    assert violations == []


@pytest.mark.django_db(transaction=True)
def test_the_api_docs_render_under_the_policy(page, asgi_server, violations):
    log_in_as_developer(page, asgi_server)

    page.goto(f"{asgi_server}/api/docs/")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("llmadmin API")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    expect(page.locator("#operations-v1-listChatModels")).to_be_visible()
    # The nonce'd inline style applied: the page's margin is gone.
    assert page.evaluate("getComputedStyle(document.body).margin") == "0px"
    assert violations == []
