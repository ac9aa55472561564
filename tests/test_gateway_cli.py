"""A developer's CLI tool through the gateway: simonw's `llm` in a subprocess, configured as its
docs say for an OpenAI-compatible server (an extra-openai-models.yaml entry with `api_base`
and a named key), completes a prompt through the server under uvicorn against a loopback fake
provider. Nothing leaves the machine: the tool's home is a temporary directory and its only
server is ours."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from decimal import Decimal

import openai
import yaml
from django.contrib.auth.models import User
from django.db import OperationalError

from billing.models import UsageRecord
from gateway.tokens import token_mint
from tests.factories import LLMModelFactory, provider_at
from tests.providers.fakes import FakeProvider, serve

KEY = "sk-UPSTREAM-cli-3"
# What the tool's configuration calls the model, and the name GET /models gives it.
TOOL_MODEL, GATEWAY_NAME = "work-gpt", "gpt-4.1"


def llm_configured(home, base_url: str, secret: str) -> dict[str, str]:
    """The tool's directory holding the model entry and the token as its key; the environment
    to run it in (no proxy, no OpenAI variables, its home in `home`)."""
    entry = {
        "model_id": TOOL_MODEL,
        "model_name": GATEWAY_NAME,
        "api_base": base_url,
        "api_key_name": "llmadmin",
    }
    (home / "extra-openai-models.yaml").write_text(yaml.safe_dump([entry]))
    (home / "keys.json").write_text(json.dumps({"llmadmin": secret}))
    return {"PATH": os.environ["PATH"], "HOME": str(home), "LLM_USER_PATH": str(home)}


def recorded() -> list[UsageRecord]:
    """The ledger once it holds the call (it is recorded before the stream's end reaches the
    tool; on SQLite the table may be locked a moment meanwhile)."""
    until = time.monotonic() + 5
    while time.monotonic() < until:
        with contextlib.suppress(OperationalError):
            if UsageRecord.objects.exists():
                break
        time.sleep(0.01)
    return list(UsageRecord.objects.all())


def test_llm_completes_a_prompt_through_the_gateway_and_the_ledger_names_its_client(
    asgi_server, tmp_path
):
    developer = User.objects.create_user("dev")
    token, secret = token_mint(user=developer, name="terminal")
    with serve(FakeProvider("openai", KEY)) as fake:
        model = LLMModelFactory(
            provider=provider_at("openai", fake.url, api_key=KEY),
            identifier=GATEWAY_NAME,
            input_price=Decimal(3),
            output_price=Decimal(15),
        )
        environment = llm_configured(tmp_path, f"{asgi_server}/gateway/openai/v1", secret)
        done = subprocess.run(
            [sys.executable, "-m", "llm", "prompt", "--model", TOOL_MODEL, "Hi"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "Hello world\n"
    # The tool streams and asks for the usage itself: its body reached the provider as sent.
    [sent] = fake.requests
    assert sent.body == {
        "model": GATEWAY_NAME,
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    [record] = recorded()
    assert (record.kind, record.user_id, record.model_id) == ("gateway", developer.pk, model.pk)
    assert (record.input_tokens, record.output_tokens, record.token_id) == (12, 5, token.pk)
    # `llm` calls through the OpenAI SDK, whose User-Agent it keeps.
    assert record.client == f"OpenAI/Python {openai.__version__}"
    assert record.client_product == "OpenAI/Python"
