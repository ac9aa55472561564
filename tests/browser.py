"""What the browser tests share: logging in through the real login form, and hearing of the
policy violations the browser reports."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import Page, expect


def log_in_as_admin(page: Page, base_url: str, path: str = "/admin/") -> None:
    """Create a superuser and open an admin page as them (the index unless told: a test that
    starts on another page goes there at once), with a session made on the server (the
    admin's login form has its own test: test_security_headers)."""
    user = User.objects.create_superuser("root", password="correct-horse-battery")
    give_session(page, base_url, user)
    page.goto(f"{base_url}{path}")
    expect(page.locator("#site-name")).to_have_text("llmadmin")


def log_in_through_the_admin_form(page: Page, base_url: str) -> None:
    """Create a superuser and log in as them through the admin's login form."""
    User.objects.create_superuser("root", password="correct-horse-battery")
    page.goto(f"{base_url}/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_have_text("llmadmin")


def give_session(page: Page, base_url: str, user: User) -> None:
    """Give the browser a session of this user, made as the login view makes one."""
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base_url}]
    )


def log_in_as_developer(page: Page, base_url: str) -> User:
    """Create a developer and give the browser their session (the login form has its own
    test)."""
    user = User.objects.create_user("dev", password="pw")
    give_session(page, base_url, user)
    return user


def policy_violations(page: Page) -> list[str]:
    """The list the browser's securitypolicyviolation events are appended to, from now on."""
    found: list[str] = []
    page.context.expose_function("reportViolation", lambda text: found.append(text))
    page.context.add_init_script(
        """document.addEventListener("securitypolicyviolation", (e) => window.reportViolation(
            `${e.effectiveDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`
        ));"""
    )
    return found
