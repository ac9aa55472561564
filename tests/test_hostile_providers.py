"""A hostile provider echoes the key it received into every part of its answers (status text,
error type, code and message, a redirect's path and query, a body, a finish reason): none of
it may reach a person, a table or a log. Only our own fixed messages may.

Each row drives one provider type against one hostile mode through the public entry points
only (the chat API as a developer, the admin as a superuser, the commands), with every log
record captured at DEBUG, then searches every surface for the key. The first type of each API
family meets every attack; the family's other types share its error handling and stream
parsing, so they meet the attacks on what is their own: the header that carries the key and
the URLs they build (for the key check too).

An account with a backup key meets the same attacks on the key its call fails over to: the
hostile provider refuses the account's own key (echoing it), and answers the backup key with
the attack.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

import httpx2
import pytest
from botocore.credentials import Credentials
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from gateway.tokens import token_mint
from llmadmin.models import BackupKey, LLMModel, Provider
from llmadmin.providers import PROVIDER_TYPES, bedrock
from llmadmin.providers.errors import sent_credentials
from tests.chat_api import post_chat
from tests.conftest import asgi_serving
from tests.factories import BackupKeyFactory, LLMModelFactory, provider_at
from tests.providers.fakes import FAKES
from tests.providers.hostile import (
    ERROR_STATUSES,
    REAL_IDS,
    Answer,
    HostileProvider,
    hostile_ids,
    serve_hostile,
)

pytestmark = pytest.mark.django_db

KEY_PREFIX = "sk-HOSTILE-"
HI = [{"role": "user", "content": "Hi"}]

# The hostile server that speaks each type's API: one per API family.
HOSTILE_FAMILIES = {
    provider_type: family if family in ("anthropic", "google", "bedrock") else "openai"
    for provider_type, (family, _) in FAKES.items()
}

# (mode, status): the status matters to "error_body" and "reason_phrase" only.
ATTACKS = [
    ("redirect", None),
    *(("error_body", status) for status in ERROR_STATUSES),
    *(("reason_phrase", status) for status in (200, 401, 500)),
    ("midstream", None),
    ("not_json", None),
    ("finish", None),
    ("bad_location", None),
    ("bad_header", None),
    ("bad_charset", None),
    ("bad_encoding", None),
    ("odd_shapes", None),
]

# The attacks on how a type sends its key and where: the redirect that would carry it on,
# the error of its key check, and what the HTTP library makes of the status line and headers.
AUTH_AND_URL_ATTACKS = [
    ("redirect", None),
    ("error_body", 401),
    ("reason_phrase", 401),
    ("bad_location", None),
    ("bad_header", None),
    ("bad_encoding", None),
]

# Bedrock signing with IAM access keys: its session token travels with every request (the
# secret only as a signature); neither may show anywhere.
BEDROCK_IAM = "bedrock-iam"
HOSTILE_FAMILIES[BEDROCK_IAM] = "bedrock"

# The first type of each family in the registry's order (Bedrock with an API key): it meets
# every attack.
FAMILY_FIRSTS = {
    family: provider_type for provider_type, family in reversed(HOSTILE_FAMILIES.items())
}.values()

ROWS = [
    pytest.param(
        provider_type,
        mode,
        status,
        id=f"{provider_type}-{mode}" + (f"-{status}" if status else ""),
    )
    for provider_type in [*PROVIDER_TYPES, BEDROCK_IAM]
    for mode, status in (ATTACKS if provider_type in FAMILY_FIRSTS else AUTH_AND_URL_ATTACKS)
]


def hostile_provider(
    provider_type: str, url: str, key: str, secret: str, **account: str
) -> Provider:
    """The type's first account (or, with a `name`, another) at the hostile server; Bedrock
    IAM sends `key` as its session token and signs with `secret`."""
    if provider_type == BEDROCK_IAM:
        return provider_at(
            "bedrock",
            url,
            api_key=None,
            auth="aws_keys",
            aws_access_key_id="AKIAHOSTILE000000000",
            aws_secret_access_key=secret,
            aws_session_token=key,
            **account,
        )
    return provider_at(provider_type, url, api_key=key, **account)


@pytest.fixture
def developer_client(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_user("developer"))
    return client


def holds_key(text: str, key: str) -> bool:
    """Whether the text holds the key, whole, urlquoted or by its random part alone."""
    random_part = key.removeprefix(KEY_PREFIX)
    forms = (key, quote(key, safe=""), quote_plus(key), random_part)
    lowered = text.lower()
    return any(form.lower() in lowered for form in forms)


@dataclass
class Surfaces:
    """What each surface showed, and whether it showed what it is there for (a surface that
    showed nothing would pass the search vacuously)."""

    text: dict[str, str] = field(default_factory=dict)
    meaningful: dict[str, bool] = field(default_factory=dict)
    chat_events: list[str] = field(default_factory=list)

    def add(self, name: str, text: str, meaningful: bool) -> None:
        self.text[name] = text
        self.meaningful[name] = meaningful


def chat_events(body: str) -> list[tuple[str, dict]]:
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines.get("event", ""), json.loads(lines.get("data", "null"))))
    return events


def page(client: Client, url: str, *words: str) -> tuple[str, bool]:
    response = client.get(url)
    text = response.content.decode()
    return text, response.status_code == 200 and all(word in text for word in words)


def landed(response, url: str, *words: str) -> tuple[str, bool]:
    """A followed response's text, and whether it is the page at `url` showing the words."""
    text = response.content.decode()
    shown = response.status_code == 200 and response.request["PATH_INFO"] == url
    return text, shown and all(word in text for word in words)


def surfaces(
    developer_client: Client,
    admin_client: Client,
    logs: pytest.LogCaptureFixture,
    provider: Provider,
    model: LLMModel,
) -> Surfaces:
    """Drive every public entry point that talks to the provider, then gather all it showed."""
    seen = Surfaces()
    label = provider.name

    # A developer chats, then reads the conversation back.
    status, body = post_chat(developer_client, {"model_id": model.pk, "message": "Hi"})
    body = body.decode()
    events = chat_events(body) if status == 200 else []
    seen.chat_events = [name for name, _ in events]
    seen.add("chat stream", body, status == 200 and len(events) >= 2)
    conversation_id = events[0][1]["id"] if events and events[0][0] == "conversation" else 0
    response = developer_client.get(reverse("api-conversation", args=[conversation_id]))
    roles = [message["role"] for message in response.json().get("messages", [])]
    seen.add("conversation API", response.content.decode(), "user" in roles)
    seen.add("models API", *page(developer_client, reverse("api-models"), "groups"))

    # An administrator tests the connection with the button, which lands on the provider's
    # page, and with the list's action, which lands on the provider list: each page read as
    # it shows the test's message (and all else a later visit would show).
    provider_page = reverse("admin:llmadmin_provider_change", args=[provider.pk])
    response = admin_client.post(
        reverse("admin:llmadmin_provider_test_connection", args=[provider.pk]), follow=True
    )
    seen.add(
        "admin: provider page, after Test connection",
        *landed(response, provider_page, 'class="messagelist"', label),
    )
    provider_list = reverse("admin:llmadmin_provider_changelist")
    response = admin_client.post(
        provider_list,
        {"action": "test_connection", "_selected_action": [provider.pk]},
        follow=True,
    )
    seen.add(
        "admin: provider list, after the Test connection action",
        *landed(response, provider_list, 'class="messagelist"', label),
    )
    response = admin_client.get(
        reverse("admin:llmadmin_llmmodel_remote_models"), {"provider": provider.pk}
    )
    payload = response.json() if response["Content-Type"] == "application/json" else {}
    seen.add(
        "admin: remote models JSON",
        response.content.decode(),
        "models" in payload or "error" in payload,
    )
    seen.add(
        "admin: model list",
        *page(admin_client, reverse("admin:llmadmin_llmmodel_changelist"), model.display_name),
    )
    history_entries = LogEntry.objects.filter(object_id=str(provider.pk)).count()
    text, shown = page(admin_client, reverse("admin:llmadmin_provider_history", args=[provider.pk]))
    seen.add("admin: provider history", text, shown and history_entries > 0)
    seen.add(
        "LogEntry table",
        "\n".join(
            f"{entry.object_repr} {entry.change_message} {entry.get_change_message()}"
            for entry in LogEntry.objects.all()
        ),
        history_entries > 0,
    )

    # The command an operator runs.
    out, err = io.StringIO(), io.StringIO()
    with contextlib.suppress(SystemExit):  # exit status 1 when a key is rejected
        call_command("check_providers", stdout=out, stderr=err)
    seen.add("check_providers output", out.getvalue() + err.getvalue(), label in out.getvalue())

    # Every table, serialised (the key column holds ciphertext there).
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    seen.add(
        "dumpdata (every table)", out.getvalue(), '"model": "llmadmin.provider"' in out.getvalue()
    )

    # Every log record.
    records = logs.records
    at_debug = any(record.levelno == logging.DEBUG for record in records)
    seen.add("log output", logs.text, at_debug)
    seen.add(
        "log records (message and args)",
        "\n".join(f"{record.getMessage()} {record.args!s}" for record in records),
        at_debug,
    )
    return seen


def expected_chat_endings(mode: str, status: int | None) -> tuple[bool, set[str]]:
    """Whether the answer's text delta must reach the developer, and how the stream may end."""
    if mode == "finish":  # an unknown finish reason may end well or as an error
        return True, {"done", "error"}
    if (mode, status) == ("reason_phrase", 200) or mode == "bad_charset":
        return True, {"done"}
    if mode == "bad_header":  # HTTP/1.1 has no header line without a colon: h11 refuses it
        return False, {"error"}
    if mode == "midstream":
        return True, {"error"}
    return False, {"error"}


@pytest.mark.parametrize(("provider_type", "mode", "status"), ROWS)
def test_a_hostile_provider_never_gets_the_key_onto_any_surface(
    developer_client, admin_client, every_log, provider_type, mode, status
):
    key = KEY_PREFIX + secrets.token_hex(16)
    secret = KEY_PREFIX + secrets.token_hex(20)
    with serve_hostile(HOSTILE_FAMILIES[provider_type], mode, status=status) as server:
        provider = hostile_provider(provider_type, server.url, key, secret)
        model = LLMModelFactory(provider=provider, display_name="Hostile model")

        seen = surfaces(developer_client, admin_client, every_log, provider, model)

    # The test reached the hostile provider with the key, on both paths: nothing is vacuous.
    # (Booleans and names only in these assertions, so a failure never prints the key.)
    received_the_key = key in server.credentials
    checked, chatted = server.received("GET"), server.received("POST")
    assert received_the_key, "the hostile provider never received the key"
    assert checked, "no key check or model list reached the hostile provider"
    assert chatted, "no chat turn reached the hostile provider"
    needs_delta, endings = expected_chat_endings(mode, status)
    events = seen.chat_events
    assert events[:1] == ["conversation"], f"chat stream: {events}"
    assert events[-1] in endings, f"chat stream: {events}"
    assert not needs_delta or "delta" in events, f"chat stream: {events}"
    empty = [name for name, meaningful in seen.meaningful.items() if not meaningful]
    assert not empty, f"these surfaces did not show what they are for: {empty}"

    leaking = [
        name for name, text in seen.text.items() if holds_key(text, key) or holds_key(text, secret)
    ]
    assert not leaking, f"the provider's echo of the key reached: {', '.join(leaking)}"


# A type's second account at its own hostile server, beside the first at another, on the first
# type of each family: a 401 that echoes the key (where each key goes is the same whatever the
# attack; the attacks themselves are the table above's).
SECOND_ACCOUNT_ROWS = [
    pytest.param(provider_type, "error_body", 401, id=provider_type)
    for provider_type in [*FAMILY_FIRSTS, BEDROCK_IAM]
]


@pytest.mark.parametrize(("provider_type", "mode", "status"), SECOND_ACCOUNT_ROWS)
def test_a_hostile_account_never_gets_another_accounts_key_nor_any_key_onto_a_surface(
    developer_client, admin_client, every_log, provider_type, mode, status
):
    """Each account's credentials go to its own address only: a hostile server behind one
    account never learns another's key, so it cannot echo it; the search of its answers for
    credentials is of the calling account's own (transport.relay_call)."""
    keys = [KEY_PREFIX + secrets.token_hex(16) for _ in range(2)]
    signing = [KEY_PREFIX + secrets.token_hex(20) for _ in range(2)]
    family = HOSTILE_FAMILIES[provider_type]
    with (
        serve_hostile(family, mode, status=status) as first_server,
        serve_hostile(family, mode, status=status) as second_server,
    ):
        hostile_provider(provider_type, first_server.url, keys[0], signing[0])
        second = hostile_provider(
            provider_type, second_server.url, keys[1], signing[1], name="Second account"
        )
        model = LLMModelFactory(provider=second, display_name="Hostile model")

        seen = surfaces(developer_client, admin_client, every_log, second, model)

    # check_providers called both accounts, each at its own server with its own key only.
    # (Booleans only in these assertions, so a failure never prints a key.)
    first_got = [key in first_server.credentials for key in keys]
    second_got = [key in second_server.credentials for key in keys]
    assert first_got == [True, False], f"the first account's server got: {first_got}"
    assert second_got == [False, True], f"the second account's server got: {second_got}"
    assert second_server.received("POST"), "no chat turn reached the second account's server"
    empty = [name for name, meaningful in seen.meaningful.items() if not meaningful]
    assert not empty, f"these surfaces did not show what they are for: {empty}"
    leaking = [
        name
        for name, text in seen.text.items()
        if any(holds_key(text, credential) for credential in [*keys, *signing])
    ]
    assert not leaking, f"an echo of a key reached: {', '.join(leaking)}"


# --- a backup key: the key a call fails over to ---------------------------------------------

# A call that fails over reads its answer as any call does (every attack meets every type
# above); what differs is the key it sends and where: the first type of each family, and
# Bedrock signing with IAM access keys, meet the attacks on how keys travel.
BACKUP_ROWS = [
    pytest.param(
        provider_type,
        mode,
        status,
        id=f"{provider_type}-{mode}" + (f"-{status}" if status else ""),
    )
    for provider_type in [*FAMILY_FIRSTS, BEDROCK_IAM]
    for mode, status in AUTH_AND_URL_ATTACKS
]


def refusing_the_own_key(server: HostileProvider, own: str) -> None:
    """The server refuses the account's own key as its family refuses a key, echoing it (401,
    a key fault: the call fails over); any other key meets the server's attack."""
    attack = server.answer

    def answer(method: str, path: str, credential: str) -> Answer:
        if credential == own:
            return server.error(401, credential)
        return attack(method, path, credential)

    server.answer = answer  # type: ignore[method-assign]


def with_backup_key(provider: Provider, provider_type: str, key: str, secret: str) -> BackupKey:
    """A backup key of the account, entered for its address; Bedrock IAM's sends `key` as its
    session token and signs with `secret`."""
    if provider_type == BEDROCK_IAM:
        return BackupKeyFactory(
            provider=provider,
            name="Team B",
            api_key=None,
            aws_access_key_id="AKIAHOSTILEBACKUP000",
            aws_secret_access_key=secret,
            aws_session_token=key,
        )
    return BackupKeyFactory(provider=provider, name="Team B", api_key=key)


@pytest.mark.parametrize(("provider_type", "mode", "status"), BACKUP_ROWS)
def test_a_hostile_provider_never_gets_the_backup_key_it_was_failed_over_to_onto_any_surface(
    developer_client, admin_client, every_log, provider_type, mode, status
):
    own, backup = (KEY_PREFIX + secrets.token_hex(16) for _ in range(2))
    signing = [KEY_PREFIX + secrets.token_hex(20) for _ in range(2)]
    with serve_hostile(HOSTILE_FAMILIES[provider_type], mode, status=status) as server:
        refusing_the_own_key(server, own)
        provider = hostile_provider(provider_type, server.url, own, signing[0])
        with_backup_key(provider, provider_type, backup, signing[1])
        model = LLMModelFactory(provider=provider, display_name="Hostile model")

        seen = surfaces(developer_client, admin_client, every_log, provider, model)

    # The chat was refused on the own key and sent again with the backup key, which met the
    # attack. (Booleans and names only in these assertions, so a failure never prints a key.)
    chats = [request.credential for request in server.requests if request.method == "POST"]
    assert chats[:2] == [own, backup], "the chat did not fail over to the backup key"
    assert "failed (refused by the provider) before its answer began; trying backup key" in (
        every_log.text
    )
    needs_delta, endings = expected_chat_endings(mode, status)
    events = seen.chat_events
    assert events[:1] == ["conversation"], f"chat stream: {events}"
    assert events[-1] in endings, f"chat stream: {events}"
    assert not needs_delta or "delta" in events, f"chat stream: {events}"
    empty = [name for name, meaningful in seen.meaningful.items() if not meaningful]
    assert not empty, f"these surfaces did not show what they are for: {empty}"
    leaking = [
        name
        for name, text in seen.text.items()
        if any(holds_key(text, credential) for credential in [own, backup, *signing])
    ]
    assert not leaking, f"an echo of a key reached: {', '.join(leaking)}"


@pytest.fixture(scope="module")
def gateway(django_db_blocker) -> Iterator[str]:
    """The gateway under uvicorn, for the module: no test here changes how it serves."""
    with (
        django_db_blocker.unblock(),
        override_settings(ALLOWED_HOSTS=["127.0.0.1"]),
        asgi_serving() as url,
    ):
        yield f"{url}/gateway/openai/v1/chat/completions"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "echoed",
    [
        pytest.param("backup", id="the backup key it was called with"),
        pytest.param(
            "own",
            id="the account's own key, refused just before",
        ),
    ],
)
def test_a_model_saying_a_key_of_the_account_never_gets_it_to_a_gateway_client(
    gateway, every_log, echoed
):
    """The gateway passes a model's words on as they come: after a failover, the answer of the
    backup key's call must be searched for every key the provider was sent."""
    own, backup = (KEY_PREFIX + secrets.token_hex(16) for _ in range(2))
    developer = get_user_model().objects.create_user("developer")
    token = token_mint(user=developer, name="laptop")[1]
    with serve_hostile("openai", "echo_text") as server:
        said = {"own": own, "backup": backup}[echoed]

        def answer(method: str, path: str, credential: str) -> Answer:
            if credential == own:
                return server.error(401, credential)
            return server.stream("echo_text", said)

        server.answer = answer  # type: ignore[method-assign]
        provider = provider_at("openai", server.url, api_key=own)
        BackupKeyFactory(provider=provider, name="Team B", api_key=backup)
        LLMModelFactory(provider=provider, identifier="gpt-4.1")
        answers = [
            httpx2.post(
                gateway,
                headers={"Authorization": f"Bearer {token}"},
                json={"model": "gpt-4.1", "stream": streamed, "messages": HI},
                timeout=10,
            )
            for streamed in (True, False)
        ]

    # (Booleans and names only in these assertions, so a failure never prints a key.)
    chats = [request.credential for request in server.requests if request.method == "POST"]
    assert chats == [own, backup, backup], "the calls did not fail over to the backup key"
    passed_on = [holds_key(f"{a.text} {a.headers}", said) for a in answers]
    assert passed_on == [False, False], f"the key reached the client (streamed, whole): {passed_on}"
    assert str(sent_credentials()) in answers[0].text
    assert not holds_key(every_log.text, own) and not holds_key(every_log.text, backup)


REMOTE_MODELS = reverse("admin:llmadmin_llmmodel_remote_models")
# Bedrock signing with the server's own AWS credentials.
BEDROCK_CHAIN = "bedrock-chain"


@pytest.mark.parametrize("provider_type", [*PROVIDER_TYPES, BEDROCK_IAM])
def test_a_gzip_bomb_is_not_expanded_and_fails_the_key_check_and_the_model_list(
    admin_client, provider_type
):
    """100 MB of valid JSON in 100 KB of gzip, which we never asked for: refused unread."""
    key = KEY_PREFIX + secrets.token_hex(16)
    secret = KEY_PREFIX + secrets.token_hex(20)
    with serve_hostile(HOSTILE_FAMILIES[provider_type], "gzip_bomb") as server:
        provider = hostile_provider(provider_type, server.url, key, secret)
        admin_client.post(
            reverse("admin:llmadmin_provider_changelist"),
            {"action": "test_connection", "_selected_action": [provider.pk]},
        )
        listing = admin_client.get(REMOTE_MODELS, {"provider": provider.pk})

    assert server.received("GET")
    provider.refresh_from_db()
    assert provider.check_status == "unreachable"
    assert provider.check_reason.endswith("answered in a form we can't read (compressed).")
    assert listing.status_code == 502
    assert listing.json()["error"].endswith("answered in a form we can't read (compressed).")


@pytest.mark.parametrize("provider_type", [*PROVIDER_TYPES, BEDROCK_IAM, BEDROCK_CHAIN])
def test_listed_ids_holding_a_credential_or_unlike_a_model_id_are_left_out(
    admin_client, monkeypatch, provider_type
):
    key = KEY_PREFIX + secrets.token_hex(16)
    secret = KEY_PREFIX + secrets.token_hex(20)
    family = HOSTILE_FAMILIES.get(provider_type, "bedrock")
    with serve_hostile(family, "listed_ids") as server:
        if provider_type == BEDROCK_CHAIN:
            # The server's own credentials, never this machine's: its session token travels.
            chain = Credentials("AKIAHOSTILE000000000", secret, key)
            monkeypatch.setattr(bedrock, "server_credentials", lambda: chain)
            provider = provider_at("bedrock", server.url, api_key=None, auth="default_chain")
        else:
            provider = hostile_provider(provider_type, server.url, key, secret)
        response = admin_client.get(REMOTE_MODELS, {"provider": provider.pk})

    assert key in server.credentials
    assert response.status_code == 200
    assert [model["identifier"] for model in response.json()["models"]] == REAL_IDS[family]
    assert response.json()["left_out"] == len(hostile_ids(key))
    assert not holds_key(response.text, key)


# The app as it runs, with the production settings and LOG_LEVEL=DEBUG: a key check and a chat
# turn against a hostile provider, everything the process logs on its stderr.
AT_DEBUG = """
import asyncio, logging, sys
import django
django.setup()
from llmadmin.providers import PROVIDER_TYPES
from llmadmin.providers.base import ModelSettings
from llmadmin.providers.contract import ChatInput
from llmadmin.providers.errors import ProviderError
logging.getLogger("llmadmin").debug("DEBUG reaches the log.")
client = PROVIDER_TYPES["openai"].connect(base_url=sys.argv[1], region="", api_key=sys.argv[2])
async def chat():
    hi = ChatInput("", [{"role": "user", "content": "Hi"}])
    async for _ in client.stream_chat(ModelSettings("gpt-4.1"), hi):
        pass
for call in (client.verify, lambda: asyncio.run(chat())):
    try:
        call()
    except ProviderError:
        pass
"""


@pytest.mark.parametrize(
    ("mode", "status"),
    [
        pytest.param("redirect", None, id="a redirect's Location"),
        pytest.param("reason_phrase", 200, id="the status line's reason phrase"),
        pytest.param("error_body", 400, id="error headers"),
    ],
)
def test_at_log_level_debug_the_http_librarys_logs_never_carry_the_key(mode, status):
    key = KEY_PREFIX + secrets.token_hex(16)
    environment = {
        name: value for name, value in os.environ.items() if name not in ("DATABASE_URL",)
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        ENV_FILE="/nonexistent/.env",
        SECRET_KEY="k",
        SALT_KEY="s",
        LOG_LEVEL="DEBUG",
    )
    with serve_hostile("openai", mode, status=status) as server:
        run = subprocess.run(
            [sys.executable, "-c", AT_DEBUG, f"{server.url}/v1", key],
            env=environment,
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            check=False,
        )

    assert run.returncode == 0, run.stderr[-2000:]
    assert server.received("GET") and server.received("POST")
    assert "DEBUG reaches the log." in run.stderr
    assert not holds_key(run.stdout + run.stderr, key)
