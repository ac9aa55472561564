"""Login throttling (django-axes): wrong passwords lock out one username from one address."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from datetime import timedelta

import httpx2
import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.db.models import F
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from gunicorn.config import Config
from gunicorn.glogging import Logger
from pytest_django.asserts import assertTemplateUsed

from config.security import client_ip_address

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"
WRONG = "wrong-PASSWORDMARKER"

LOGINS = [
    pytest.param("admin:login", id="admin login"),
    pytest.param("login", id="developer login"),
]


@pytest.fixture
def users(django_user_model):
    # Staff, so that both logins would let them in.
    return [
        django_user_model.objects.create_user(name, password=PASSWORD, is_staff=True)
        for name in ("alice", "bob")
    ]


def attempt(client: Client, login: str, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(
        reverse(login), {"username": username, "password": password}, REMOTE_ADDR=address
    )


def fail(client: Client, login: str, username: str, times: int, address: str = "10.0.0.1"):
    return [attempt(client, login, username, WRONG, address).status_code for _ in range(times)]


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("login", LOGINS)
def test_five_wrong_passwords_lock_out_the_right_one(client, users, login):
    statuses = fail(client, login, "alice", 5)

    response = attempt(client, login, "alice", PASSWORD)

    assert statuses == [200, 200, 200, 200, 429]  # the form again, then the lockout
    assert response.status_code == 429
    assert "Too many wrong passwords" in response.text
    assert not logged_in(client)


@pytest.mark.parametrize(
    ("cool_off", "said"),
    [
        pytest.param(timedelta(minutes=15), "15 minutes", id="the default"),
        pytest.param(timedelta(hours=1), "1 hour", id="an hour"),
        pytest.param(timedelta(minutes=90), "1 hour, 30 minutes", id="an hour and a half"),
    ],
)
def test_the_lockout_page_says_how_long_it_lasts(client, users, settings, cool_off, said):
    settings.AXES_COOLOFF_TIME = cool_off

    fail(client, "login", "alice", 4)

    response = attempt(client, "login", "alice", WRONG)

    assert response.status_code == 429
    # A no-break space: "15 minutes" doesn't break across lines.
    assert f"Try again in {said}." in response.text.replace("\xa0", " ")


@pytest.mark.parametrize("login", LOGINS)
def test_the_lockout_page_is_the_sites_page_with_a_link_back_to_the_login(client, users, login):
    statuses = fail(client, login, "alice", 4)

    response = attempt(client, login, "alice", WRONG)

    assert statuses == [200] * 4
    assert response.status_code == 429
    assertTemplateUsed(response, "base.html")
    assert "After 5 wrong passwords, this username can't log in from your address" in response.text
    assert f'<a href="{reverse(login)}">Back to the login page</a>' in response.text


@pytest.mark.parametrize("login", LOGINS)
def test_four_wrong_passwords_do_not_lock_out(client, users, login):
    fail(client, login, "alice", 4)

    response = attempt(client, login, "alice", PASSWORD)

    assert response.status_code == 302
    assert logged_in(client)


@pytest.mark.parametrize("login", LOGINS)
def test_another_user_from_the_same_address_is_not_locked_out(client, users, login):
    fail(client, login, "alice", 5)

    response = attempt(client, login, "bob", PASSWORD)

    assert response.status_code == 302
    assert logged_in(client)


@pytest.mark.parametrize("login", LOGINS)
def test_the_same_user_from_another_address_is_not_locked_out(client, users, login):
    fail(client, login, "alice", 5, address="10.0.0.1")

    response = attempt(client, login, "alice", PASSWORD, address="10.0.0.2")

    assert response.status_code == 302
    assert logged_in(client)


def test_failures_on_either_login_count_together(client, users):
    fail(client, "admin:login", "alice", 3)
    fail(client, "login", "alice", 2)

    response = attempt(client, "admin:login", "alice", PASSWORD)

    assert response.status_code == 429
    assert not logged_in(client)


@pytest.mark.parametrize("login", LOGINS)
def test_the_login_works_again_after_the_cool_off(client, users, login):
    fail(client, login, "alice", 5)
    assert attempt(client, login, "alice", PASSWORD).status_code == 429

    # 15 minutes and a second later, as far as the stored failures can tell.
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )
    response = attempt(client, login, "alice", PASSWORD)

    assert response.status_code == 302
    assert logged_in(client)


PRINT_THROTTLING = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME, s.TRUSTED_PROXY_COUNT)"
)


@pytest.mark.parametrize(
    ("environment", "printed"),
    [
        pytest.param({}, "5 0:15:00 0", id="defaults"),
        pytest.param(
            {"AXES_FAILURE_LIMIT": "3", "AXES_COOLOFF_MINUTES": "60", "TRUSTED_PROXY_COUNT": "1"},
            "3 1:00:00 1",
            id="overridden",
        ),
    ],
)
def test_the_limit_cool_off_and_proxies_come_from_the_environment(environment, printed):
    names = {"AXES_FAILURE_LIMIT", "AXES_COOLOFF_MINUTES", "TRUSTED_PROXY_COUNT"}
    result = subprocess.run(
        [sys.executable, "-c", PRINT_THROTTLING],
        env={
            **{key: value for key, value in os.environ.items() if key not in names},
            **environment,
            "SECRET_KEY": "k",
            "SALT_KEY": "s",
            "ENV_FILE": "/nonexistent/.env",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        },
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == printed


def test_a_lockout_still_holds_just_before_the_cool_off_ends(client, users):
    fail(client, "login", "alice", 5)
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME + timedelta(seconds=30)
    )

    response = attempt(client, "login", "alice", PASSWORD)

    assert response.status_code == 429
    assert not logged_in(client)


def test_an_attempt_during_the_lockout_starts_the_cool_off_again(client, users):
    fail(client, "login", "alice", 5)
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=10))
    assert attempt(client, "login", "alice", PASSWORD).status_code == 429

    # Twenty minutes after the lockout, but ten after the last attempt.
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=10))
    response = attempt(client, "login", "alice", PASSWORD)

    assert response.status_code == 429
    assert not logged_in(client)


def test_axes_reset_lifts_every_lockout_at_once(client, users):
    fail(client, "login", "alice", 5)
    stdout = io.StringIO()

    call_command("axes_reset", stdout=stdout)
    response = attempt(client, "login", "alice", PASSWORD)

    assert stdout.getvalue() == "1 attempts removed.\n"
    assert response.status_code == 302
    assert logged_in(client)


def test_a_successful_login_forgets_earlier_failures(client, users):
    fail(client, "login", "alice", 4)
    assert attempt(client, "login", "alice", PASSWORD).status_code == 302
    client.logout()

    fail(client, "login", "alice", 4)
    response = attempt(client, "login", "alice", PASSWORD)

    assert response.status_code == 302
    assert logged_in(client)


def test_a_logged_in_session_is_not_affected_by_a_lockout(client, users):
    client.force_login(users[0])

    fail(Client(), "login", "alice", 5)

    assert client.get(reverse("agents")).status_code == 200


def test_the_wrong_password_is_neither_stored_nor_logged(client, users, caplog):
    caplog.set_level(logging.DEBUG)

    fail(client, "admin:login", "alice", 5)

    (stored,) = AccessAttempt.objects.values_list("post_data", flat=True)
    assert "PASSWORDMARKER" not in stored
    assert "PASSWORDMARKER" not in caplog.text
    assert caplog.text.count("AXES: Locking out") == 1  # logging was captured


# Behind proxies, the address is read from X-Forwarded-For.


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "address"),
    [
        pytest.param(0, "203.0.113.9", "10.0.0.1", id="no proxy: the header is ignored"),
        pytest.param(1, "203.0.113.9", "203.0.113.9", id="one proxy"),
        pytest.param(1, "198.51.100.7, 203.0.113.9", "203.0.113.9", id="one proxy, spoofed"),
        pytest.param(2, "198.51.100.7, 203.0.113.9, 10.0.0.5", "203.0.113.9", id="two proxies"),
        pytest.param(1, "2001:db8::1", "2001:db8::1", id="IPv6"),
        pytest.param(2, "203.0.113.9", "10.0.0.1", id="fewer entries than proxies"),
        pytest.param(1, "", "10.0.0.1", id="no header"),
        pytest.param(1, "198.51.100.7, not-an-address", "10.0.0.1", id="not an address"),
    ],
)
def test_the_client_address_behind_trusted_proxies(settings, proxies, forwarded_for, address):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1")
    if forwarded_for:
        request.META["HTTP_X_FORWARDED_FOR"] = forwarded_for

    assert client_ip_address(request) == address


def test_behind_a_proxy_a_lockout_holds_only_for_the_address_the_proxy_saw(client, users, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.1"
    for _ in range(5):
        client.post(
            reverse("login"),
            {"username": "alice", "password": WRONG},
            REMOTE_ADDR=proxy,
            HTTP_X_FORWARDED_FOR="203.0.113.9",
        )

    def log_in_from(address: str) -> int:
        return client.post(
            reverse("login"),
            {"username": "alice", "password": PASSWORD},
            REMOTE_ADDR=proxy,
            HTTP_X_FORWARDED_FOR=address,
        ).status_code

    assert log_in_from("203.0.113.9") == 429
    assert log_in_from("198.51.100.7") == 302
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["203.0.113.9"]


# Through uvicorn, configured as scripts/serve configures it: the server rewrites no address.


def test_the_production_worker_leaves_the_connecting_address_alone():
    serve = (settings.BASE_DIR / "scripts" / "serve").read_text()
    config = Config()
    config.set("worker_class", re.search(r"--worker-class (\S+)", serve)[1])

    worker = config.worker_class(0, os.getpid(), [], None, 30, config, Logger(config))

    # Not even from FORWARDED_ALLOW_IPS, which gunicorn still passes on.
    assert worker.config.proxy_headers is False


CSRF = "c" * 32


def fail_through(server: str, forwarded_for: list[str]) -> list[int]:
    """A wrong password for alice from the loopback peer with each X-Forwarded-For value."""
    with httpx2.Client(base_url=server, cookies={"csrftoken": CSRF}, timeout=5) as http:
        return [
            http.post(
                reverse("login"),
                data={"username": "alice", "password": WRONG},
                headers={"X-CSRFToken": CSRF, "X-Forwarded-For": value},
            ).status_code
            for value in forwarded_for
        ]


def test_without_trusted_proxies_a_rotating_forwarded_for_is_still_locked_out(asgi_server, users):
    rotating = [f"198.51.100.{n}" for n in range(1, 6)]

    statuses = fail_through(asgi_server, rotating)

    assert statuses == [200, 200, 200, 200, 429]
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["127.0.0.1"]


def test_behind_one_trusted_proxy_the_right_most_forwarded_address_is_counted(
    asgi_server, users, settings
):
    settings.TRUSTED_PROXY_COUNT = 1
    # What the client wrote rotates; what the proxy appended (the client's address) doesn't.
    forwarded = [f"198.51.100.{n}, 203.0.113.9" for n in range(1, 6)]

    statuses = fail_through(asgi_server, forwarded)

    assert statuses == [200, 200, 200, 200, 429]
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["203.0.113.9"]
