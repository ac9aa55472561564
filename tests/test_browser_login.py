"""Logging in, as a browser sees it: the lockout page, and every page's files (its icon too)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.browser import policy_violations

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct-horse-battery"


def missing_files(page: Page) -> list[str]:
    """The URLs the page's loads answer 404, from now on (the icon a browser asks for too)."""
    found: list[str] = []
    page.context.on("response", lambda r: r.status == 404 and found.append(r.url))
    return found


@pytest.mark.parametrize(
    "login", [pytest.param("admin:login", id="admin"), pytest.param("login", id="developer")]
)
def test_a_page_load_asks_for_no_missing_file(page, asgi_server, login):
    missing = missing_files(page)

    page.goto(asgi_server + reverse(login))
    page.wait_for_load_state("networkidle")

    assert missing == []
