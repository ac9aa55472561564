"""Start-up configuration: secrets are required, defaults are safe."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

PRINT_SETTINGS = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.DEBUG, s.SALT_KEY, s.DATABASES['default']['ENGINE'])"
)


def start(**overrides: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"SECRET_KEY", "SALT_KEY", "DEBUG", "DATABASE_URL"}
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="config.settings", ENV_FILE="/nonexistent/.env", **overrides
    )
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        env=environment,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("present", "missing"), [({"SALT_KEY": "s"}, "SECRET_KEY"), ({"SECRET_KEY": "k"}, "SALT_KEY")]
)
def test_a_missing_secret_stops_start_up_with_a_clear_error(present, missing):
    result = start(**present)

    assert result.returncode != 0
    assert f"Set the {missing} environment variable" in result.stderr


@pytest.mark.parametrize("salts", [pytest.param("", id="empty"), pytest.param(" , ", id="blank")])
def test_an_empty_salt_key_stops_start_up_with_a_clear_error(salts):
    result = start(SECRET_KEY="k", SALT_KEY=salts)

    assert result.returncode != 0
    assert "Set the SALT_KEY environment variable (it is empty)." in result.stderr


@pytest.mark.parametrize(
    "seconds",
    [
        pytest.param("0", id="zero"),
        pytest.param("0.5", id="half"),
        pytest.param("86401", id="over a day"),
    ],
)
def test_a_turn_lease_out_of_range_stops_start_up_with_a_clear_error(seconds):
    result = start(SECRET_KEY="k", SALT_KEY="s", TURN_LEASE_SECONDS=seconds)

    assert result.returncode != 0
    assert "Set TURN_LEASE_SECONDS to 1 to 86400 (seconds)." in result.stderr


def test_it_starts_with_debug_off_and_sqlite_by_default():
    result = start(SECRET_KEY="k", SALT_KEY="new,old")

    assert result.returncode == 0, result.stderr
    # Django's backend, waiting for the write lock in short pauses
    assert result.stdout.split() == ["False", "['new',", "'old']", "config.sqlite"]


def test_it_reads_the_database_from_database_url():
    result = start(SECRET_KEY="k", SALT_KEY="s", DATABASE_URL="postgres://u:p@127.0.0.1:5/db")

    assert result.stdout.split()[-1] == "config.postgresql"  # Django's, with a checked pool
