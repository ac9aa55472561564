"""An account's backup keys: a call that fails before its answer began with the key refused,
rate-limited, the provider failing or no connection is tried once more on the next key; the
failed key cools down for every process.

Proved through the chat (/api/v1/chat/ under ASGI) and the gateway (the official openai and
anthropic SDKs against uvicorn), against a provider that holds the account's keys and answers
each as the test tells it (tests/providers/key_pool_fake.py).
"""

from __future__ import annotations

import io
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta

import anthropic
import openai
import pytest
import time_machine
from asgiref.sync import async_to_sync
from auditlog.models import LogEntry
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import UsageRecord
from chat.metered import Admission, call_admit
from chat.models import Message
from chat.services import UNAVAILABLE
from gateway.tokens import token_mint
from llmadmin.key_pools import key_cool, pool_of
from llmadmin.models import BackupKey, KeyFault, LLMModel, Provider
from llmadmin.providers import errors
from llmadmin.providers.contract import ChatInput
from llmadmin.providers.errors import LacksPermission
from llmadmin.services import provider_check_connection
from tests.chat_api import send, texts
from tests.conftest import asgi_serving
from tests.factories import BackupKeyFactory, LLMModelFactory, ProviderFactory, provider_at
from tests.gateway_sdks import HI, answer_text, raw_answer, said, sdk
from tests.providers.bedrock.fake import SIGNATURE_VERDICT
from tests.providers.fakes import FakeProvider, serve
from tests.providers.key_pool_fake import (
    CUT,
    ERRORS,
    FORBIDDEN,
    HUNG_UP,
    OK,
    REFUSED,
    Behaviour,
    KeyPoolFake,
    failing,
    rate_limited,
    serve_pool,
)

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = ChatInput(system="", messages=[{"role": "user", "content": "Hi"}])
GOOD_KEY = "sk-good-backup-0001"
FAMILIES = ["openai", "anthropic"]
# Each family's model on its fake.
IDENTIFIERS = {"openai": "gpt-4.1", "anthropic": "claude-sonnet-4-6"}
# The account's own key, then its backup keys.
KEYS = ("sk-pool-own-0001", "sk-pool-backup-0002", "sk-pool-backup-0003")


@pytest.fixture
def user() -> User:
    return User.objects.create_user("dev")


def answered(user: User, model_id: int) -> str:
    """One metered call from its admission to its record, as the chat and gateway run it:
    the answer's text."""
    return answer_of(call_admit(user=user, model_id=model_id))


def answer_of(admission: Admission) -> str:
    """The answer of a call admitted before: it runs with the account as it was then."""

    async def run() -> str:
        async with admission.call(chat=HELLO) as call:
            async for _ in call:
                pass
        return call.answer

    return async_to_sync(run)()


def test_a_refused_key_fails_over_to_the_backup_key_and_is_left_out_after(user):
    with serve(FakeProvider("openai", GOOD_KEY)) as fake:
        provider = provider_at("openai", fake.url, api_key="sk-revoked-0001")
        BackupKeyFactory(provider=provider, api_key=GOOD_KEY)
        model = LLMModelFactory(provider=provider, identifier="gpt-4.1")

        assert answered(user, model.pk) == "Hello world"
        provider.refresh_from_db()
        assert provider.cooling_reason == KeyFault.REJECTED
        assert BackupKey.objects.get().last_used_at is not None

        fake.requests.clear()
        assert answered(user, model.pk) == "Hello world"
        assert [r.headers["authorization"] for r in fake.requests] == [f"Bearer {GOOD_KEY}"]
        assert Provider.objects.filter(pk=provider.pk, cooling_reason="rejected").exists()


# --- What the tests share ---------------------------------------------------------------------


@contextmanager
def pool(
    family: str, *behaviours: Behaviour, key_cooldown: int = 60
) -> Iterator[tuple[KeyPoolFake, LLMModel]]:
    """The family's provider holding an account's keys (KEYS, as many as `behaviours`), each
    answering as its behaviour says; the account's model on it."""
    keys = KEYS[: len(behaviours)]
    with serve_pool(KeyPoolFake(family, dict(zip(keys, behaviours, strict=True)))) as fake:
        provider = provider_at(family, fake.url, api_key=keys[0], key_cooldown=key_cooldown)
        for position, key in enumerate(keys[1:], start=1):
            BackupKeyFactory(provider=provider, api_key=key, position=position)
        yield fake, LLMModelFactory(provider=provider, identifier=IDENTIFIERS[family])


def fault(name: str, family: str) -> Behaviour:
    """A key's failure before its answer began, as the family answers it."""
    return {
        "refused": REFUSED,
        "forbidden": FORBIDDEN,
        "rate_limited": rate_limited(),
        "failing": failing(family),
        "hung_up": HUNG_UP,
    }[name]


# Each failure that fails over, and what it cools the key down for.
FAULTS = [
    pytest.param("refused", KeyFault.REJECTED, id="401"),
    pytest.param("forbidden", KeyFault.REJECTED, id="403"),
    pytest.param("rate_limited", KeyFault.RATE_LIMITED, id="429"),
    pytest.param("failing", KeyFault.FAILED, id="503 or 529"),
    pytest.param("hung_up", KeyFault.UNREACHABLE, id="no answer"),
]


def own_key_cooling(model: LLMModel) -> str:
    """Why the model's account's own key is cooling down; empty when it is not."""
    return Provider.objects.get(pk=model.provider_id).cooling_reason


def cooling_until(model: LLMModel) -> datetime | None:
    """Until when the model's account's own key is left out."""
    return Provider.objects.get(pk=model.provider_id).cooling_until


def ending(events: list[tuple[str, dict]]) -> tuple[str, dict]:
    return events[-1]


def eventually(check: Callable[[], bool], seconds: float = 10) -> bool:
    """Whether `check()` holds within `seconds`: for what the server writes after the client
    has its answer (the ledger's row). SQLite's shared in-memory database may be locked a
    moment meanwhile."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        with suppress(OperationalError):
            if check():
                return True
        time.sleep(0.02)
    return False


# --- The gateway, through the official SDKs ---------------------------------------------------


@pytest.fixture(scope="module")
def server(django_db_blocker) -> Iterator[str]:
    """One server for the module's gateway tests (each brings its own rows, and waits for the
    server's writes of its calls to end)."""
    with (
        django_db_blocker.unblock(),
        override_settings(ALLOWED_HOSTS=["127.0.0.1", "testserver"]),
        asgi_serving() as url,
    ):
        yield url


@pytest.fixture
def secret(developer) -> str:
    return token_mint(user=developer, name="laptop")[1]


def billed_once() -> bool:
    """Whether the ledger has the call, once (the server writes it after the answer's last
    byte)."""
    return eventually(UsageRecord.objects.exists) and UsageRecord.objects.count() == 1


STATUS_ERRORS = (openai.APIStatusError, anthropic.APIStatusError)


# --- Failover: the developer sees one answer, billed once -------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("failure", "reason"), FAULTS)
def test_a_chat_turn_whose_key_fails_before_answering_is_answered_by_the_next_key(
    client, developer, family, failure, reason
):
    with pool(family, fault(failure, family), OK, OK) as (fake, model):
        events = send(client, model)

    assert texts(events) == ["Hello", " world"]
    assert ending(events) == ("done", {})
    assert fake.used == list(KEYS[:2])
    assert Message.objects.get(role="assistant").content == "Hello world"
    assert UsageRecord.objects.count() == 1
    assert own_key_cooling(model) == reason
    assert BackupKey.objects.filter(cooling_reason="").count() == 2


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(("failure", "reason"), FAULTS)
def test_a_gateway_call_whose_key_fails_before_answering_is_answered_by_the_next_key(
    server, secret, family, stream, failure, reason
):
    with pool(family, fault(failure, family), OK, OK) as (fake, model):
        text = answer_text(sdk(family, server, secret), stream)

    assert text == "Hello world"
    assert fake.used == list(KEYS[:2])
    assert billed_once()
    assert own_key_cooling(model) == reason


# --- Cooldown: the failed key is left out, for as long as it should be ------------------------


@pytest.mark.parametrize(
    ("failure", "seconds"),
    [
        pytest.param(rate_limited(retry_after="7"), 7, id="429 with Retry-After"),
        pytest.param(rate_limited(retry_after="0.2"), 1, id="429 with Retry-After under 1 s"),
        pytest.param(rate_limited(), 45, id="429 without"),
        pytest.param(
            rate_limited(retry_after="Wed, 21 Oct 2037 07:28:00 GMT"), 45, id="429 with a date"
        ),
        pytest.param(Behaviour(503), 45, id="503"),
        pytest.param(HUNG_UP, 45, id="no answer"),
    ],
)
def test_a_failed_key_cools_down_for_its_retry_after_else_the_accounts_key_cooldown(
    client, developer, failure, seconds
):
    with pool("openai", failure, OK, key_cooldown=45) as (_, model):
        before = timezone.now()
        send(client, model)
        after = timezone.now()

    until = cooling_until(model)
    assert before + timedelta(seconds=seconds) <= until <= after + timedelta(seconds=seconds)


def calls_until_key_1(call: Callable[[], object], fake: KeyPoolFake) -> list[datetime]:
    """Calls made every 0.1 s until one is sent with key 1 (within 10 s), each left out
    checked to have gone to key 2: when each started, the last the first with key 1."""
    starts = []
    until = time.monotonic() + 10
    while time.monotonic() < until:
        fake.clear()
        starts.append(timezone.now())
        call()
        if KEYS[0] in fake.used:
            return starts
        assert fake.used == [KEYS[1]]
        time.sleep(0.1)
    raise AssertionError("key 1 was never tried again")


@pytest.mark.parametrize(
    ("failure", "key_cooldown"),
    [
        pytest.param(rate_limited(retry_after="1"), 60, id="Retry-After"),
        pytest.param(rate_limited(), 1, id="the account's key cooldown"),
    ],
)
def test_a_chat_leaves_a_failed_key_out_until_its_cooldown_passes(
    client, developer, failure, key_cooldown
):
    with pool("openai", failure, OK, key_cooldown=key_cooldown) as (fake, model):
        send(client, model)
        fake.keys[KEYS[0]] = OK
        starts = calls_until_key_1(lambda: send(client, model), fake)

    # Left out while it cooled (at least once; within 10 s), and tried first again by the
    # call after the last that started while it did.
    assert len(starts) > 1
    assert starts[-2] < cooling_until(model)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_gateway_leaves_a_rate_limited_key_out_until_its_retry_after_passes(
    server, secret, family
):
    client = sdk(family, server, secret)
    with pool(family, rate_limited(retry_after="1"), OK) as (fake, model):
        answer_text(client)
        fake.keys[KEYS[0]] = OK
        starts = calls_until_key_1(lambda: answer_text(client), fake)

    assert len(starts) > 1
    assert starts[-2] < cooling_until(model)


def test_a_refused_own_key_stays_out_until_an_admin_clears_it(client, developer):
    with pool("openai", REFUSED, OK, key_cooldown=1) as (fake, model):
        send(client, model)
        fake.keys[KEYS[0]] = OK  # the provider would take it again: only an admin can tell
        # A day later, past any cooldown.
        with time_machine.travel(timezone.now() + timedelta(days=1)):
            fake.clear()
            assert texts(send(client, model)) == ["Hello", " world"]
            assert fake.used == [KEYS[1]]

        provider = model.provider
        provider.refresh_from_db()
        provider.forget_cooling()
        provider.save()
        fake.clear()
        send(client, model)

    assert fake.used == [KEYS[0]]
    assert own_key_cooling(model) == ""


def test_a_refused_backup_key_stays_out_until_it_is_pasted_again(client, developer):
    with pool("openai", REFUSED, REFUSED, OK) as (fake, model):
        events = send(client, model)
        assert ending(events)[1]["message"] == UNAVAILABLE  # both refused: one retry only
        fake.clear()
        send(client, model)
        assert fake.used == [KEYS[2]]  # the only key left

        fake.keys[KEYS[1]] = OK
        backup = BackupKey.objects.order_by("position").first()
        assert backup.cooling_reason == KeyFault.REJECTED
        backup.api_key = KEYS[1]
        backup.enter_for(model.provider)
        backup.save()
        fake.clear()
        send(client, model)

    assert fake.used == [KEYS[1]]


# --- One retry only ---------------------------------------------------------------------------


def test_a_chat_turn_tries_two_keys_at_most_and_tells_the_second_ones_failure(client, developer):
    with pool("openai", rate_limited(), Behaviour(503), OK) as (fake, model):
        events = send(client, model)

    assert ending(events) == (
        "error",
        {"message": str(errors.overloaded()), "stop_reason": "failed"},
    )
    assert fake.used == list(KEYS[:2])
    assert UsageRecord.objects.count() == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_a_gateway_call_tries_two_keys_at_most_and_tells_the_second_ones_failure(
    server, secret, family
):
    with (
        pool(family, rate_limited(), failing(family), OK) as (fake, _),
        pytest.raises(STATUS_ERRORS) as failed,
    ):
        answer_text(sdk(family, server, secret))

    assert failed.value.status_code == 503
    assert said(failed.value) == str(errors.overloaded())
    assert fake.used == list(KEYS[:2])


# --- Every key cooling, or refused ------------------------------------------------------------


def test_a_chat_turn_when_every_key_is_cooling_says_when_to_retry_and_sends_nothing(
    client, developer
):
    limited = rate_limited(retry_after="30")
    with pool("openai", limited, limited) as (fake, model):
        send(client, model)
        fake.clear()
        events = send(client, model)

    name, error = ending(events)
    assert name == "error"
    assert re.fullmatch(
        r"Every key of this model's provider is cooling down: try again in (29|30) s\.",
        error["message"],
    )
    assert fake.requests == []


def test_a_chat_turn_when_every_key_is_cooling_records_no_call(client, developer):
    limited = rate_limited(retry_after="30")
    with pool("openai", limited, limited) as (fake, model):
        send(client, model)  # sent twice, refused twice: one call in the ledger
        fake.clear()
        send(client, model)

    assert fake.requests == []
    assert UsageRecord.objects.count() == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_a_gateway_call_when_every_key_is_cooling_is_the_sdks_rate_limit_error_with_when(
    server, secret, family
):
    limited = rate_limited(retry_after="30")
    client = sdk(family, server, secret)
    with pool(family, limited, limited) as (fake, _):
        with pytest.raises((openai.RateLimitError, anthropic.RateLimitError)) as first:
            answer_text(client)
        fake.clear()
        with pytest.raises((openai.RateLimitError, anthropic.RateLimitError)) as refused:
            answer_text(client)

    # The provider's own wait first; then ours, what is left of it.
    assert first.value.response.headers["retry-after"] == "30"
    assert refused.value.response.headers["retry-after"] in ("29", "30")
    assert said(refused.value).startswith("Every key of this model's provider is cooling down")
    assert fake.requests == []


def test_a_chat_turn_when_every_key_was_refused_finds_the_model_unavailable(client, developer):
    with pool("openai", REFUSED, FORBIDDEN) as (fake, model):
        first = send(client, model)
        fake.clear()
        then = send(client, model)

    assert ending(first) == ("error", {"message": UNAVAILABLE, "stop_reason": "failed"})
    assert ending(then) == ("error", {"message": UNAVAILABLE, "stop_reason": "failed"})
    assert fake.requests == []


@pytest.mark.parametrize("family", FAMILIES)
def test_a_gateway_call_when_every_key_was_refused_finds_the_model_unavailable(
    server, secret, family
):
    client = sdk(family, server, secret)
    with pool(family, REFUSED, FORBIDDEN) as (fake, _):
        with pytest.raises(STATUS_ERRORS) as first:
            answer_text(client)
        fake.clear()
        with pytest.raises(STATUS_ERRORS) as then:
            answer_text(client)

    for refused in (first.value, then.value):
        assert refused.status_code == 503
        assert said(refused) == UNAVAILABLE
        # As any fault of the server's setup: OpenAI's code, Anthropic's type of error.
        if isinstance(refused, openai.APIStatusError):
            assert refused.body["code"] == "unavailable"
        else:
            assert refused.body["error"]["type"] == "api_error"
    assert fake.requests == []


# --- No retry once the answer began -----------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_a_chat_answer_cut_after_its_first_delta_is_not_tried_on_another_key(
    client, developer, family
):
    with pool(family, CUT, OK) as (fake, model):
        events = send(client, model)

    assert texts(events) == ["Hello"]
    assert ending(events) == ("error", {"message": str(errors.cut_off()), "stop_reason": "cut_off"})
    assert fake.used == [KEYS[0]]
    assert own_key_cooling(model) == ""
    assert UsageRecord.objects.count() == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_a_gateway_stream_cut_after_its_first_delta_is_not_tried_on_another_key(
    server, secret, family
):
    client = sdk(family, server, secret)
    with (
        pool(family, CUT, OK) as (fake, _),
        pytest.raises((openai.APIError, anthropic.APIError)) as cut,
    ):
        answer_text(client, stream=True)

    assert str(errors.cut_off()) in str(cut.value)
    assert fake.used == [KEYS[0]]
    assert billed_once()


# --- In our words: the log, and a hostile provider --------------------------------------------


@pytest.mark.parametrize(
    ("failure", "words"),
    [
        pytest.param(REFUSED, "refused by the provider", id="refused"),
        pytest.param(rate_limited(retry_after="5"), "rate-limited", id="rate-limited"),
        pytest.param(Behaviour(503), "the provider failed", id="failing"),
        pytest.param(HUNG_UP, "no connection", id="no answer"),
    ],
)
def test_a_failover_is_logged_in_our_words_without_the_key_or_the_providers_text(
    client, developer, every_log, failure, words
):
    with pool("openai", failure, OK) as (_, model):
        send(client, model)

    failovers = [r for r in every_log.records if r.name == "llmadmin.key_pools"]
    assert [(r.levelname, r.getMessage()) for r in failovers] == [
        (
            "WARNING",
            f"OpenAI: its own key failed ({words}) before its answer began; trying backup key 1.",
        )
    ]
    theirs = [message for _, message in ERRORS["openai"].values()]
    for secret_or_theirs in (*KEYS[:2], *theirs):
        assert secret_or_theirs not in every_log.text


def hostile_key() -> str:
    return "sk-HOSTILE-" + secrets.token_hex(16)


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(rate_limited(retry_after="1", echo=True), id="429"),
        pytest.param(Behaviour(401, echo=True), id="401"),
    ],
)
def test_a_key_a_hostile_provider_echoes_before_failing_over_reaches_no_chat_nor_log(
    client, developer, every_log, failure
):
    key = hostile_key()
    with serve_pool(KeyPoolFake("openai", {key: failure, GOOD_KEY: OK})) as fake:
        provider = provider_at("openai", fake.url, api_key=key)
        BackupKeyFactory(provider=provider, api_key=GOOD_KEY)
        events = send(client, LLMModelFactory(provider=provider, identifier="gpt-4.1"))

    assert texts(events) == ["Hello", " world"]
    assert fake.used == [key, GOOD_KEY]
    assert key not in json.dumps(events)
    assert key not in every_log.text
    assert not any(key in str(row) for row in Message.objects.values_list())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_key_a_hostile_provider_echoes_before_failing_over_reaches_no_gateway_client_nor_log(
    server, secret, every_log, family, stream
):
    key = hostile_key()
    behaviours = {key: rate_limited(retry_after="1", echo=True), GOOD_KEY: OK}
    with serve_pool(KeyPoolFake(family, behaviours)) as fake:
        provider = provider_at(family, fake.url, api_key=key)
        BackupKeyFactory(provider=provider, api_key=GOOD_KEY)
        LLMModelFactory(provider=provider, identifier=IDENTIFIERS[family])
        status, answer = raw_answer(sdk(family, server, secret), stream)

    assert status == 200
    assert "Hello" in answer
    assert fake.used == [key, GOOD_KEY]
    assert key not in answer
    assert billed_once()
    assert key not in every_log.text


@pytest.mark.parametrize("family", FAMILIES)
def test_a_gateway_answer_that_echoes_the_key_failed_over_from_is_not_passed_on(
    server, secret, family
):
    key = hostile_key()
    behaviours = {key: rate_limited(), GOOD_KEY: OK}
    with serve_pool(KeyPoolFake(family, behaviours, reply=("Hello", f" {key}"))) as fake:
        provider = provider_at(family, fake.url, api_key=key)
        BackupKeyFactory(provider=provider, api_key=GOOD_KEY)
        LLMModelFactory(provider=provider, identifier=IDENTIFIERS[family])
        _, answer = raw_answer(sdk(family, server, secret), stream=True)

    assert fake.used == [key, GOOD_KEY]
    assert key not in answer
    assert str(errors.sent_credentials()) in answer


# --- Which keys are sent at all ---------------------------------------------------------------


def test_a_backup_key_entered_for_another_address_is_never_sent(client, developer):
    with serve_pool(KeyPoolFake("openai", {KEYS[0]: rate_limited(), KEYS[1]: OK})) as fake:
        provider = provider_at("openai", "http://127.0.0.1:9", api_key=KEYS[0])
        backup = BackupKeyFactory(provider=provider, api_key=KEYS[1])
        # The account now sends its keys elsewhere: the backup key was meant for the old place.
        provider.base_url = f"{fake.url}/v1"
        provider.forget_check()
        provider.save()
        model = LLMModelFactory(provider=provider, identifier="gpt-4.1")
        events = send(client, model)
        assert fake.used == [KEYS[0]]
        assert ending(events)[1]["message"] == str(errors.rate_limited())

        # Pasted again for the new address, it is sent.
        backup.refresh_from_db()
        backup.enter_for(provider)
        backup.save()
        fake.clear()
        assert texts(send(client, model)) == ["Hello", " world"]

    assert fake.used == list(KEYS[:2])


# AWS's documented example key pair shape; only the fake knows these secrets.
OWN_KEY_ID, OWN_SECRET = "AKIAIOSFODNN7OWNKEY1", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYOWNKEY1"
BACKUP_KEY_ID, BACKUP_SECRET = "AKIAIOSFODNN7BACKUP2", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYBACKUP2"
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


def bedrock_pool(own: Behaviour, backup: Behaviour) -> KeyPoolFake:
    """Bedrock holding the two IAM key pairs, answering each as told."""
    return KeyPoolFake(
        "bedrock",
        {OWN_KEY_ID: own, BACKUP_KEY_ID: backup},
        aws_secrets={OWN_KEY_ID: OWN_SECRET, BACKUP_KEY_ID: BACKUP_SECRET},
    )


def bedrock_account(url: str) -> Provider:
    """A Bedrock account at `url` signing with its own IAM key pair, the other its backup."""
    provider = provider_at(
        "bedrock",
        url,
        auth="aws_keys",
        api_key=None,
        aws_access_key_id=OWN_KEY_ID,
        aws_secret_access_key=OWN_SECRET,
    )
    BackupKeyFactory(
        provider=provider,
        api_key=None,
        aws_access_key_id=BACKUP_KEY_ID,
        aws_secret_access_key=BACKUP_SECRET,
    )
    return provider


def test_a_bedrock_backup_key_pair_signs_the_call_its_own_key_failed(client, developer):
    fake = bedrock_pool(rate_limited(), OK)
    with serve_pool(fake):
        provider = bedrock_account(fake.url)
        model = LLMModelFactory(provider=provider, identifier=SONNET)
        events = send(client, model)

    assert texts(events) == ["Hello", " world"]
    assert fake.used == [OWN_KEY_ID, BACKUP_KEY_ID]
    # Signed with the backup key's secret: the fake checked the signature with it.
    assert fake.requests[1].headers[SIGNATURE_VERDICT] == "valid"
    assert own_key_cooling(model) == KeyFault.RATE_LIMITED


def test_count_tokens_leaves_out_a_refused_own_key_as_messages_do(server, secret):
    client = sdk("anthropic", server, secret)
    with pool("anthropic", REFUSED, OK) as (fake, _):
        assert answer_text(client) == "Hello world"  # the own key refused, and left out
        fake.clear()
        counted = client.messages.count_tokens(model="claude-sonnet-4-6", messages=HI)

    assert counted.input_tokens == 42
    assert fake.used == [KEYS[1]]


# --- Which refusals fail over -----------------------------------------------------------------


def test_a_gemini_key_refused_with_400_api_key_invalid_fails_over_to_the_backup_key(developer):
    with serve(FakeProvider("google", GOOD_KEY)) as fake:
        provider = provider_at("google", fake.url, api_key="AIza-revoked-key-0001")
        BackupKeyFactory(provider=provider, api_key=GOOD_KEY)
        model = LLMModelFactory(provider=provider, identifier="gemini-2.5-flash")

        assert answered(developer, model.pk) == "Hello world"

    assert Provider.objects.get(pk=provider.pk).cooling_reason == KeyFault.REJECTED


def test_a_gemini_rate_limit_cools_its_key_for_the_retry_delay_gemini_gives(developer):
    # Gemini says when to try again in its error's details (RetryInfo "46s"), in no header.
    with serve(FakeProvider("google", KEYS[0], mode="rate429")) as fake:
        provider = provider_at("google", fake.url, api_key=KEYS[0])
        BackupKeyFactory(provider=provider, api_key=KEYS[1])
        model = LLMModelFactory(provider=provider, identifier="gemini-2.5-flash")
        before = timezone.now()

        with pytest.raises(errors.ProviderError):
            answered(developer, model.pk)  # the backup key is not this fake's either

    provider.refresh_from_db()
    assert provider.cooling_reason == KeyFault.RATE_LIMITED
    cooled_for = (provider.cooling_until - before).total_seconds()
    assert 46 <= cooled_for < 50  # not the account's key cooldown of 60 s


def test_a_key_lacking_permission_for_one_model_still_answers_the_accounts_other_models(developer):
    fake = bedrock_pool(FORBIDDEN, FORBIDDEN)
    with serve_pool(fake):
        provider = bedrock_account(fake.url)
        not_granted = LLMModelFactory(provider=provider, identifier="anthropic.claude-opus-4-1")
        granted = LLMModelFactory(provider=provider, identifier=SONNET)
        # Neither key was granted this model: AWS answers 403 AccessDeniedException.
        with pytest.raises(LacksPermission):
            answered(developer, not_granted.pk)
        # Both may call this one.
        fake.keys.update({OWN_KEY_ID: OK, BACKUP_KEY_ID: OK})
        fake.clear()

        assert answered(developer, granted.pk) == "Hello world"


class OpenRouterPool(KeyPoolFake):
    """OpenRouter's API (an OpenAI-style one) holding the keys; its 402 as its errors page
    gives it: the key's account has no credits left."""

    def error(
        self, status: int, key: str, echo: bool
    ) -> tuple[int, dict[str, str], Iterator[bytes]]:
        assert status == 402
        message = "Insufficient credits. Add more using https://openrouter.ai/credits"
        payload = {"error": {"code": 402, "message": message}}
        return 402, {"Content-Type": "application/json"}, iter([json.dumps(payload).encode()])


def test_an_openrouter_key_out_of_credits_fails_over_to_the_backup_key(developer):
    with serve_pool(OpenRouterPool("openrouter", {KEYS[0]: Behaviour(402), KEYS[1]: OK})) as fake:
        provider = provider_at("openrouter", fake.url, api_key=KEYS[0])
        BackupKeyFactory(provider=provider, api_key=KEYS[1])
        model = LLMModelFactory(provider=provider, identifier="openai/gpt-4.1")

        assert answered(developer, model.pk) == "Hello world"

    assert fake.used == list(KEYS[:2])


# --- Backup keys the account's own key keeps from being used ----------------------------------


def test_a_failed_connection_test_of_the_own_key_leaves_the_backup_keys_answering(developer):
    with serve(FakeProvider("openai", GOOD_KEY)) as fake:
        provider = provider_at("openai", fake.url, api_key="sk-revoked-0001")
        BackupKeyFactory(provider=provider, api_key=GOOD_KEY)
        model = LLMModelFactory(provider=provider, identifier="gpt-4.1")
        assert provider_check_connection(provider=provider)[0] == "rejected"

        assert answered(developer, model.pk) == "Hello world"


def test_an_account_whose_own_key_was_removed_is_answered_by_its_backup_key(developer):
    with serve(FakeProvider("openai", GOOD_KEY)) as fake:
        provider = provider_at("openai", fake.url, api_key="sk-revoked-0001")
        BackupKeyFactory(provider=provider, api_key=GOOD_KEY)
        model = LLMModelFactory(provider=provider, identifier="gpt-4.1")
        provider.replace_api_key(None)
        provider.save()

        assert answered(developer, model.pk) == "Hello world"


# --- An account with its own key alone: nothing more than before ------------------------------


def test_an_account_with_its_own_key_alone_reads_and_writes_no_key_pool(user):
    with serve_pool(KeyPoolFake("openai", {KEYS[0]: OK, KEYS[1]: OK})) as fake:
        model = LLMModelFactory(
            provider=provider_at("openai", fake.url, api_key=KEYS[0]), identifier="gpt-4.1"
        )
        answered(user, model.pk)  # the configuration cached
        # The admission's one query (tests/test_metered_call.py), the ledger's row in its
        # transaction, and nothing of a key pool: no cooldown read, no last use written.
        with CaptureQueriesContext(connection) as alone:
            assert answered(user, model.pk) == "Hello world"

        BackupKeyFactory(provider=model.provider, api_key=KEYS[1])
        answered(user, model.pk)  # the configuration cached, the own key's use noted
        # With a backup key, the same and the cooldowns read: the one query more.
        with CaptureQueriesContext(connection) as pooled:
            assert answered(user, model.pk) == "Hello world"

    assert fake.used == [KEYS[0]] * 4
    assert len(pooled) == len(alone) + 1
    assert not any(
        word in query["sql"].lower()
        for query in alone.captured_queries
        for word in ("backupkey", "cooling", "last_used")
    )
    assert sum("cooling" in query["sql"].lower() for query in pooled.captured_queries) == 1


# --- An admin's change meeting a call ---------------------------------------------------------


def test_a_key_saved_from_an_earlier_read_keeps_the_cooldown_a_call_wrote_meanwhile():
    provider = provider_at("openai", "http://127.0.0.1:9", api_key=KEYS[0])
    backup = BackupKeyFactory(provider=provider, api_key=KEYS[1])
    # An admin's page read them; then a call cooled both.
    read_provider, read_backup = Provider.objects.get(pk=provider.pk), BackupKey.objects.get()
    until = timezone.now() + timedelta(minutes=5)
    for rows in (Provider.objects.filter(pk=provider.pk), BackupKey.objects.all()):
        rows.update(cooling_until=until, cooling_reason=KeyFault.RATE_LIMITED)

    read_provider.key_cooldown, read_backup.name = 120, "Team B"
    read_provider.save()
    read_backup.save()

    provider.refresh_from_db()
    backup.refresh_from_db()
    assert (provider.key_cooldown, backup.name) == (120, "Team B")
    assert (provider.cooling_until, backup.cooling_until) == (until, until)
    # An admin's "Try again" does write it.
    read_backup.forget_cooling()
    read_backup.save()
    backup.refresh_from_db()
    assert (backup.cooling_until, backup.cooling_reason) == (None, "")


def test_a_rate_limit_met_by_a_call_that_read_the_key_earlier_leaves_its_refusal_standing():
    provider = provider_at("openai", "http://127.0.0.1:9", api_key=KEYS[0])
    BackupKeyFactory(provider=provider, api_key=KEYS[1])
    provider = Provider.objects.get(pk=provider.pk)
    # Two calls read the pool while key 1 was ready; one met its refusal, the other a 429.
    own = pool_of(provider)[0]
    refusal, rate_limit = errors.key_rejected(401), errors.rate_limited()
    refusal.key_fault, rate_limit.key_fault = "rejected", "rate_limited"

    key_cool(provider, own, refusal)
    key_cool(provider, own, rate_limit)

    provider.refresh_from_db()
    assert (provider.cooling_reason, provider.cooling_until) == (KeyFault.REJECTED, None)


def test_a_call_refused_with_the_old_key_does_not_cool_the_key_an_admin_just_pasted(developer):
    new_key = "sk-pool-own-renewed-0009"
    with pool("openai", REFUSED, OK) as (fake, model):
        fake.keys[new_key] = OK
        # A call admitted with the account as it is: its own key, revoked at the provider.
        admission = call_admit(user=developer, model_id=model.pk)
        # Meanwhile the admin pastes the account's new key.
        provider = Provider.objects.get(pk=model.provider_id)
        provider.replace_api_key(new_key)
        provider.save()
        # The call sends the old key, refused, and fails over.
        assert answer_of(admission) == "Hello world"
        fake.clear()

        assert answered(developer, model.pk) == "Hello world"

    assert fake.used == [new_key]
    assert Provider.objects.get(pk=model.provider_id).cooling_reason == ""


# --- The audit --------------------------------------------------------------------------------


def test_a_backup_key_added_by_set_provider_key_is_in_the_audit_without_the_key():
    ProviderFactory(openai=True, api_key="sk-own")
    secret = "sk-proj-AUDITEDBACKUP-0001"

    call_command(
        "set_provider_key",
        "openai",
        "--backup",
        "Team A",
        stdin=io.StringIO(secret + "\n"),
        stdout=io.StringIO(),
    )

    entries = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(BackupKey))
    assert [entry.action for entry in entries] == [LogEntry.Action.CREATE]
    assert "AUDITEDBACKUP" not in repr(list(LogEntry.objects.values()))


# --- One key twice in a pool ------------------------------------------------------------------


def test_set_provider_key_refuses_as_the_own_key_one_of_the_accounts_backup_keys():
    provider = ProviderFactory(openai=True, api_key="sk-own")
    BackupKeyFactory(provider=provider, name="Team A", api_key="sk-team-a-key")

    with pytest.raises(CommandError):
        call_command(
            "set_provider_key", "openai", stdin=io.StringIO("sk-team-a-key\n"), stdout=io.StringIO()
        )

    assert Provider.objects.get(pk=provider.pk).api_key == "sk-own"
