"""What the browser tests share: logging in through the real login form."""

from __future__ import annotations

from django.contrib.auth.models import User
from playwright.sync_api import Page, expect


def log_in_as_admin(page: Page, base_url: str) -> None:
    """Create a superuser and log in as them through the admin's login form."""
    User.objects.create_superuser("root", password="correct-horse-battery")
    page.goto(f"{base_url}/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_have_text("llmadmin")
