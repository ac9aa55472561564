"""Hostile review of issue 27: defects proven by failing tests."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import httpx2
import pytest
from django.contrib.auth.models import User
from django.db import OperationalError
from django.test import override_settings

from billing.models import UsageRecord
from gateway.tokens import token_mint
from tests.conftest import asgi_serving
from tests.factories import LLMModelFactory, provider_at
from tests.stream_servers import (
    OPENAI_END,
    Script,
    anthropic_event,
    data,
    openai_delta,
    serve_script,
)

KEY = "sk-HOSTILE-0123456789abcdef0123456789abcdef"
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def gateway_server(django_db_blocker) -> Iterator[str]:
    with (
        django_db_blocker.unblock(),
        override_settings(ALLOWED_HOSTS=["127.0.0.1"]),
        asgi_serving() as url,
    ):
        yield url


@pytest.fixture
def base_url(gateway_server, transactional_db) -> str:
    return f"{gateway_server}/gateway/openai/v1"


@pytest.fixture
def secret() -> str:
    return token_mint(user=User.objects.create_user("dev"), name="laptop")[1]


def records(count: int) -> list[UsageRecord]:
    """The ledger once it holds `count` rows (a streamed call is recorded after its end)."""
    until = time.monotonic() + 5
    while time.monotonic() < until:
        with contextlib.suppress(OperationalError):
            if UsageRecord.objects.count() >= count:
                break
        time.sleep(0.01)
    return list(UsageRecord.objects.order_by("pk"))


def said(text: str) -> str:
    """What an OpenAI client assembles from a stream: its content deltas, JSON-decoded."""
    parts = []
    for event in text.split("\n\n"):
        line = event.partition("data: ")[2]
        if line and line != "[DONE]":
            for choice in json.loads(line).get("choices") or []:
                parts.append(choice.get("delta", {}).get("content") or "")
    return "".join(parts)


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param(
            [openai_delta("Your key is " + KEY[:20]), openai_delta(KEY[20:] + ".")],
            id="split over two content deltas",
        ),
        pytest.param(
            # The same key, JSON-escaped: no byte run equals it, every JSON parser decodes it.
            [
                data(
                    {"choices": [{"index": 0, "delta": {"content": "Your key is " + KEY}}]}
                ).replace(b"sk-", b"\\u0073k-")
            ],
            id="json-escaped",
        ),
    ],
)
def test_a_provider_that_says_its_key_never_gets_it_to_the_client(base_url, secret, steps):
    with serve_script(Script([*steps, OPENAI_END])) as url:
        LLMModelFactory(provider=provider_at("openai", url, api_key=KEY), identifier="gpt-4.1")
        with httpx2.stream(
            "POST",
            f"{base_url}/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": "gpt-4.1", "messages": HI, "stream": True},
        ) as response:
            body = response.read().decode()

    assert KEY not in said(body)


def tool_delta(arguments: str) -> bytes:
    call = {"index": 0, "function": {"arguments": arguments}}
    return data({"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]})


def anthropic_tool_delta(partial: str) -> bytes:
    delta = {"type": "input_json_delta", "partial_json": partial}
    return anthropic_event("content_block_delta", {"index": 0, "delta": delta})


ANTHROPIC_TOOL_START = anthropic_event(
    "message_start", {"message": {"usage": {"input_tokens": 5, "output_tokens": 1}}}
) + anthropic_event(
    "content_block_start",
    {"index": 0, "content_block": {"type": "tool_use", "id": "t1", "name": "w", "input": {}}},
)


@pytest.mark.parametrize(
    ("provider_type", "path", "body", "first", "forever"),
    [
        pytest.param(
            "openai",
            "openai/v1/chat/completions",
            {"model": "gpt-4.1", "messages": HI, "stream": True},
            tool_delta('{"path": "a.py", "content": "'),
            tool_delta("x = 1\\n" * 50),
            id="openai tool call",
        ),
        pytest.param(
            "anthropic",
            "anthropic/v1/messages",
            {"model": "claude-sonnet-4-6", "max_tokens": 64000, "messages": HI, "stream": True},
            ANTHROPIC_TOOL_START + anthropic_tool_delta('{"path": "a.py", "content": "'),
            anthropic_tool_delta("x = 1\\n" * 50),
            id="anthropic tool_use",
        ),
    ],
)
def test_a_client_that_leaves_mid_tool_call_is_charged_for_what_was_streamed(
    gateway_server, transactional_db, secret, provider_type, path, body, first, forever
):
    script = Script([first], forever=forever, every=0.01)
    with serve_script(script) as url:
        identifier = body["model"]
        LLMModelFactory(
            provider=provider_at(provider_type, url, api_key=KEY), identifier=identifier
        )
        with httpx2.stream(
            "POST",
            f"{gateway_server}/gateway/{path}",
            headers={"Authorization": f"Bearer {secret}"},
            json=body,
        ) as response:
            received = b""
            for chunk in response.iter_bytes():
                received += chunk
                if len(received) > 20_000:  # some thousands of tokens of a file being written
                    break
        script.wait_for_close()

    [record] = records(1)
    assert record.output_tokens >= 1000, (record.output_tokens, record.pricing)


ANTHROPIC_TOOL_END = (
    anthropic_event("content_block_stop", {"index": 0})
    + anthropic_event(
        "message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 400}}
    )
    + anthropic_event("message_stop", {})
)


def test_a_tool_call_streaming_steadily_is_not_ended_as_idle(
    gateway_server, transactional_db, secret, settings
):
    settings.PROVIDER_STREAM_IDLE_TIMEOUT = 0.3
    # A file written through a tool: its arguments stream steadily, longer than the idle limit.
    steps = [ANTHROPIC_TOOL_START]
    for _ in range(10):
        steps += [anthropic_tool_delta("x = 1\\n"), 0.1]
    with serve_script(Script([*steps, ANTHROPIC_TOOL_END])) as url:
        LLMModelFactory(
            provider=provider_at("anthropic", url, api_key=KEY), identifier="claude-sonnet-4-6"
        )
        response = httpx2.post(
            f"{gateway_server}/gateway/anthropic/v1/messages",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": "claude-sonnet-4-6", "max_tokens": 1000, "messages": HI, "stream": True},
        )

    assert "event: error" not in response.text
    assert response.text.rstrip().endswith('"message_stop"}')


def test_the_admins_default_temperature_does_not_refuse_a_client_that_turns_thinking_on(
    gateway_server, transactional_db, secret
):
    # The admin's Claude: a default temperature (valid: thinking is off in its settings).
    # Claude Code turns thinking on and sends no temperature.
    answer = ANTHROPIC_TOOL_START + ANTHROPIC_TOOL_END
    with serve_script(Script([answer])) as url:
        LLMModelFactory(
            provider=provider_at("anthropic", url, api_key=KEY),
            identifier="claude-sonnet-4-6",
            temperature=0.5,
        )
        response = httpx2.post(
            f"{gateway_server}/gateway/anthropic/v1/messages",
            headers={"Authorization": f"Bearer {secret}"},
            json={
                "model": "claude-sonnet-4-6",
                "max_tokens": 20000,
                "thinking": {"type": "enabled", "budget_tokens": 10000},
                "messages": HI,
                "stream": True,
            },
        )

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"error": {"message": "PROVIDER WORDS", "code": 502}}, id="chat: error"),
        pytest.param(
            {
                "object": "response",
                "status": "failed",
                "error": {"code": "server_error", "message": "PROVIDER WORDS"},
                "output": [],
            },
            id="responses: failed",
        ),
    ],
)
def test_a_whole_answer_that_is_the_providers_error_is_told_in_our_words(base_url, secret, answer):
    with serve_script(Script([json.dumps(answer).encode()])) as url:
        LLMModelFactory(provider=provider_at("openai", url, api_key=KEY), identifier="gpt-4.1")
        response = httpx2.post(
            f"{base_url}/{'responses' if 'status' in answer else 'chat/completions'}",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": "gpt-4.1", "messages": HI, "input": "Hi"},
        )

    assert "PROVIDER WORDS" not in response.text, (response.status_code, response.text)
