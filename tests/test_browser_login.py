"""Logging in, as Chromium sees it: the lockout page, and the site's icon on every page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.browser import policy_violations

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct-horse-battery"


def missing_files(page: Page) -> list[str]:
    """The URLs answered 404 to the page from now on."""
    found: list[str] = []
    page.context.on(
        "response", lambda response: response.status == 404 and found.append(response.url)
    )
    return found


def test_the_fifth_wrong_password_shows_how_long_the_lockout_lasts_and_the_way_back(
    page, asgi_server
):
    User.objects.create_user("alice", password=PASSWORD)
    violations = policy_violations(page)
    missing = missing_files(page)
    page.goto(f"{asgi_server}{reverse('login')}?next=/agents/")

    for _ in range(4):
        page.fill("#id_username", "alice")
        page.fill("#id_password", "wrong")
        page.click("button[type=submit]")
        expect(page.locator(".errorlist")).to_contain_text("enter a correct username and password")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")

    expect(page.locator("h1")).to_have_text("Too many wrong passwords")
    expect(page.locator("main")).to_contain_text("After 5 wrong passwords")
    expect(page.locator("main")).to_contain_text("Try again in 15\xa0minutes.")
    page.get_by_role("link", name="Back to the login page").click()
    expect(page.locator("#id_username")).to_be_visible()
    assert page.url == f"{asgi_server}{reverse('login')}"
    assert violations == []
    assert missing == []


@pytest.mark.parametrize(
    "login", [pytest.param("admin:login", id="admin"), pytest.param("login", id="developer")]
)
def test_a_page_shows_the_site_icon_and_asks_for_nothing_missing(page, asgi_server, login):
    missing = missing_files(page)

    with page.expect_response(lambda response: "favicon" in response.url) as icon:
        page.goto(asgi_server + reverse(login))
    page.wait_for_load_state("networkidle")

    assert icon.value.status == 200
    assert icon.value.header_value("content-type") == "image/svg+xml"
    assert missing == []


def test_favicon_ico_leads_to_the_site_icon(page, asgi_server):
    # Where a browser looks for the icon of a page that names none (the API's JSON).
    response = page.goto(f"{asgi_server}/favicon.ico")

    assert response.status == 200
    assert response.header_value("content-type") == "image/svg+xml"
