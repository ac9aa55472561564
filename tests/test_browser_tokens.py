"""The tokens page in a real headless Chromium: made, copied, gone on reload, revoked."""

from __future__ import annotations

import hashlib

import pytest
from playwright.sync_api import Page, Request, expect

from gateway.models import PersonalAccessToken
from tests.browser import log_in_as_developer, policy_violations

pytestmark = pytest.mark.django_db(transaction=True)


def navigations(page: Page) -> list[str]:
    """The methods of the page's navigations from now on."""
    methods: list[str] = []

    def seen(request: Request) -> None:
        if request.is_navigation_request():
            methods.append(request.method)

    page.on("request", seen)
    return methods


def test_a_developer_makes_copies_and_revokes_a_token_whose_secret_a_reload_does_not_show(
    page, asgi_server
):
    violations = policy_violations(page)
    user = log_in_as_developer(page, asgi_server)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=asgi_server)
    page.goto(f"{asgi_server}/agents/")
    page.click("#tokens-link")

    page.fill("#id_name", "laptop")
    page.select_option("#id_expires_in", "30")
    page.click("text=Create token")
    lines = page.locator("#token-lines")
    expect(lines).to_contain_text(f"OPENAI_BASE_URL={asgi_server}/gateway/openai/v1")
    expect(lines).to_contain_text(f"ANTHROPIC_BASE_URL={asgi_server}/gateway/anthropic")
    page.click("#copy-token-lines")
    expect(page.locator("#copy-status")).to_have_text("Copied.")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == lines.text_content()
    secret = copied.splitlines()[1].removeprefix("OPENAI_API_KEY=")
    assert f"ANTHROPIC_AUTH_TOKEN={secret}" in copied
    token = PersonalAccessToken.objects.get()
    assert (token.user, token.digest) == (user, hashlib.sha256(secret.encode()).hexdigest())

    # The create form is not sent again (a second token, or "name taken"): a plain GET.
    reloads = navigations(page)
    page.reload()
    assert reloads == ["GET"]
    row = page.locator("#tokens tbody tr")
    expect(row).to_contain_text("laptop")
    expect(row).to_contain_text(f"llma_{token.prefix}_…")
    expect(lines).to_have_count(0)
    assert secret not in page.content()
    assert PersonalAccessToken.objects.count() == 1

    page.click("text=Revoke")
    expect(row).to_contain_text("revoked")
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert violations == []
