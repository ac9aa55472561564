from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import uvicorn
    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"


def pytest_report_header() -> str:
    from django.db import connection

    return f"database: {connection.vendor}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """The budget alert checks a test's calls and refusals asked for end with the test,
    before its fixtures (its database) are torn down: no check reads or writes the next
    test's rows, nor mails into its outbox."""
    from tests.held_mail import alert_checks_done

    # A test's held mail server answers within 5 s (tests/held_mail.py) at the latest.
    alert_checks_done(seconds=15)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup) -> None:
    """The test database, migrated; from then on a flush that keeps content types and
    permissions does not have them written again (tests/flush.py)."""
    from tests.flush import skip_rewriting_kept_tables

    skip_rewriting_kept_tables()


BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # This machine has no network beyond loopback: no background fetches.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium, driven by Playwright; no browser is ever downloaded.

    One per test file: Playwright's event loop and the setting below last only as long as
    that file's tests, so the tests run after them in the same process (in any order, as
    pytest-xdist's workers run them) see neither. Imported here: only browser tests pay for it."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # alongside it are still plain synchronous calls.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            yield browser
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def encryption_secrets(settings):
    """Switch the secrets that API keys are encrypted with, as an operator would."""
    from llmadmin.fields import APIKeyField
    from llmadmin.models import BackupKey, Provider

    # Each encrypted field derives (and caches) its own keys from the settings.
    fields = [
        field
        for model in (Provider, BackupKey)
        for field in model._meta.get_fields()
        if isinstance(field, APIKeyField)
    ]

    def forget_derived_keys() -> None:
        for field in fields:
            for name in ("keys", "f", "key_ids"):
                field.__dict__.pop(name, None)

    def use(secret_key: str, fallbacks: tuple[str, ...] = (), salts: tuple[str, ...] = ()) -> None:
        settings.SECRET_KEY = secret_key
        settings.SECRET_KEY_FALLBACKS = list(fallbacks)
        settings.SALT_KEY = list(salts or settings.SALT_KEY)
        forget_derived_keys()

    yield use
    forget_derived_keys()


@pytest.fixture(autouse=True)
def short_provider_timeouts(settings):
    """Every provider in the tests is a loopback fake: it answers at once or not at all
    (the "slow" mode waits 2 s; a test meeting it on purpose waits SLOW_READ_TIMEOUT,
    tests/providers/servers.py). 1.5 s, not less: a loaded CI machine once took 0.5 s."""
    settings.PROVIDER_CONNECT_TIMEOUT = 1.5
    settings.PROVIDER_READ_TIMEOUT = 1.5


# What the official SDKs (and botocore) would read from the environment.
PROVIDER_ENVIRONMENT = ("ANTHROPIC_", "OPENAI_", "AZURE_OPENAI", "GEMINI_", "GOOGLE_", "AWS_")


@pytest.fixture(autouse=True)
def no_provider_environment(monkeypatch):
    """No key, endpoint, API version or proxy comes from the machine's environment."""
    for name in list(os.environ):
        if name.startswith(PROVIDER_ENVIRONMENT) or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    # botocore's credential chain must find nothing here, and never ask the instance
    # metadata address (no network but loopback).
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")


@pytest.fixture
def developer(client, django_user_model):
    """A logged-in developer: any user, no staff rights."""
    user = django_user_model.objects.create_user("dev")
    client.force_login(user)
    return user


@pytest.fixture
def every_log(caplog) -> Iterator[pytest.LogCaptureFixture]:
    """Every record at DEBUG, the "django" loggers' too (they don't propagate to the root)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django")
    django_logger = logging.getLogger("django")
    django_logger.addHandler(caplog.handler)
    yield caplog
    django_logger.removeHandler(caplog.handler)


def connections_in_use() -> int:
    """Connections taken from this process's PostgreSQL pool (the server's threads share it)."""
    from django.db import connection

    stats = connection.pool.get_stats()
    return stats["pool_size"] - stats["pool_available"]


@pytest.fixture
def held_mail(settings) -> Iterator[threading.Event]:
    """Mail goes out through tests/held_mail.py's server, which answers once this is set."""
    from tests.held_mail import HeldMail

    settings.EMAIL_BACKEND = "tests.held_mail.HeldMail"
    HeldMail.answer.clear()
    HeldMail.waiting.clear()
    yield HeldMail.answer
    HeldMail.answer.set()


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache, as a freshly started process does."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def asgi_server(transactional_db, settings) -> Iterator[str]:
    """The project's ASGI application served by uvicorn on loopback, as in production (with
    scripts/serve's options); its URL. (pytest-django's live_server is a WSGI server.)"""
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    with asgi_serving() as url:
        yield url


def prompt_server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn's server, noticing that it is to stop within 5 ms: uvicorn looks at its exit
    flag every 100 ms, then gives the connections it asked to close 100 ms (kept: work a test
    started, e.g. an answer stored after the client left, ends before the next test counts
    connections). About 190 -> 105 ms on every server a test stops (some 80 a run). uvicorn
    is imported here: only the tests that serve pay for it (0.2 s)."""
    import uvicorn

    class PromptServer(uvicorn.Server):
        async def main_loop(self) -> None:
            ticks = 0  # on_tick refreshes the Date header every 10th: every 50 ms here
            while not await self.on_tick(ticks):
                await asyncio.sleep(0.005)
                ticks = (ticks + 1) % 1000

    return PromptServer(config)


@contextmanager
def asgi_serving() -> Iterator[str]:
    """asgi_server's server, for as long as the block runs: a module's tests that don't
    interact share one (each test still needs the database, e.g. transactional_db)."""
    import uvicorn

    from config.request_threads import serving_application
    from config.workers import UVICORN_OPTIONS

    application = serving_application()
    server = prompt_server(
        uvicorn.Config(
            application,
            host="127.0.0.1",
            port=0,
            lifespan="off",
            log_level="error",
            **UVICORN_OPTIONS,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    until = time.monotonic() + 10
    while not server.started and time.monotonic() < until:
        time.sleep(0.01)
    assert server.started
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        for request_thread in application.threads:
            request_thread.shutdown(wait=False)
