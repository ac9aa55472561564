"""Key cooldowns across server processes, on PostgreSQL: two uvicorn processes on one database
(as two machines would be) leave out the same keys, whichever of them saw the key fail."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import openai
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import connection

from gateway.tokens import token_mint
from llmadmin.models import Provider
from tests.factories import BackupKeyFactory, LLMModelFactory, provider_at
from tests.providers.key_pool_fake import OK, KeyPoolFake, rate_limited, serve_pool

pytestmark = pytest.mark.django_db(transaction=True)
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="concurrent writers (threads, processes) need PostgreSQL; SQLite serves one machine",
)

OWN_KEY, BACKUP_KEY = "sk-pool-own-0001", "sk-pool-backup-0002"
# As scripts/serve's workers serve (config.workers), on a free port of loopback.
UVICORN_OPTIONS = ["--host", "127.0.0.1", "--port", "0", "--no-proxy-headers", "--no-access-log"]


def server_start(log: Path) -> subprocess.Popen:
    """The project served by uvicorn in a process of its own, on the test database."""
    database = connection.settings_dict
    url = "postgres://{}:{}@{}:{}/{}".format(
        *(quote(str(database[name])) for name in ("USER", "PASSWORD", "HOST", "PORT", "NAME"))
    )
    # The fake provider is on loopback: no proxy stands between.
    environment = {
        name: value for name, value in os.environ.items() if not name.lower().endswith("_proxy")
    }
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", *UVICORN_OPTIONS],
        cwd=django_settings.BASE_DIR,
        env={**environment, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )


def url_of(process: subprocess.Popen, log: Path) -> str:
    """The started server's URL, from its log (within 30 s)."""
    until = time.monotonic() + 30
    while time.monotonic() < until and process.poll() is None:
        running = re.search(r"running on (http://\S+)", log.read_text())
        if running:
            return running[1]
        time.sleep(0.05)
    raise AssertionError(log.read_text())


@pytest.fixture(scope="module")
def two_servers(django_db_setup, tmp_path_factory) -> Iterator[list[str]]:
    """Two server processes on the test database, started together; their URLs."""
    if connection.vendor != "postgresql":
        pytest.skip("server processes share a PostgreSQL database")
    logs = [tmp_path_factory.mktemp("servers") / f"{index}.log" for index in range(2)]
    processes = [server_start(log) for log in logs]
    try:
        yield [url_of(process, log) for process, log in zip(processes, logs, strict=True)]
    finally:
        for process in processes:
            process.kill()
            process.wait(10)


def answer_via(server: str, secret: str) -> str:
    client = openai.OpenAI(base_url=f"{server}/gateway/openai/v1", api_key=secret, max_retries=0)
    answer = client.chat.completions.create(
        model="gpt-4.1", messages=[{"role": "user", "content": "Hi"}]
    )
    return answer.choices[0].message.content


@on_postgresql
def test_a_key_cooled_by_one_server_process_is_left_out_by_the_other(two_servers):
    first, second = two_servers
    _, secret = token_mint(user=User.objects.create_user("dev"), name="agents")
    with serve_pool(KeyPoolFake("openai", {OWN_KEY: OK, BACKUP_KEY: OK})) as fake:
        provider = provider_at("openai", fake.url, api_key=OWN_KEY)
        BackupKeyFactory(provider=provider, api_key=BACKUP_KEY)
        LLMModelFactory(provider=provider, identifier="gpt-4.1")
        # The second process has the account's keys in hand, the own key ready.
        assert answer_via(second, secret) == "Hello world"
        assert fake.used == [OWN_KEY]

        fake.keys[OWN_KEY] = rate_limited(retry_after="30")
        fake.clear()
        assert answer_via(first, secret) == "Hello world"
        assert fake.used == [OWN_KEY, BACKUP_KEY]

        fake.clear()
        assert answer_via(second, secret) == "Hello world"
        assert fake.used == [BACKUP_KEY]

    assert Provider.objects.get(pk=provider.pk).cooling_reason == "rate_limited"
