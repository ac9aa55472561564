"""FakeProvider: real HTTP servers on 127.0.0.1 that speak each provider family's API.

Each checks the auth headers and paths the real provider requires, refuses a chat body the
real API refuses (unknown fields, wrong types, values out of range; see chat_body_errors) and
answers as it does, including its error shapes. It also refuses what the real provider
refuses of a particular model (see model_refusals): those facts come from the models.dev data
and the providers' own answers, not from the product's rules. A mode makes it fail:
"error500", "slow", "malformed", or "redirect" (to `redirect_to`); `stop` makes the answer end
with the provider's own stop reason ("max_tokens", "length", "SAFETY"…), and the mode
"prompt_blocked" makes Gemini block the prompt.

Each family's answers, chat body and per-model refusals are in tests/providers/<family>/fake.py;
FAKES says, for every type in the registry, which of them it meets.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from llmadmin.providers import PROVIDER_TYPES
from tests.providers.anthropic import fake as anthropic
from tests.providers.anthropic.fake import AnthropicFake
from tests.providers.bedrock import fake as bedrock
from tests.providers.bedrock.fake import BedrockFake
from tests.providers.google import fake as google
from tests.providers.google.fake import GoogleFake
from tests.providers.openai import fake as openai
from tests.providers.openai.fake import OpenAIFake
from tests.providers.servers import (
    SLOW_SECONDS,
    Recorded,
    catalog_entry,
    loopback_server,
    schema_errors,
)

# How each provider type meets its fake, in the registry's order: the server that speaks its
# API, and the path its base URL adds to the server's URL. A type its family's fake module
# does not name fails here.
SERVERS = {**anthropic.SERVERS, **openai.SERVERS, **google.SERVERS, **bedrock.SERVERS}
FAKES = {provider_type: SERVERS[provider_type] for provider_type in PROVIDER_TYPES}


def fake_for(provider_type: str, api_key: str, **fields: Any) -> FakeProvider:
    """The fake provider that speaks this type's API and accepts this key."""
    return FakeProvider(FAKES[provider_type][0], api_key, **fields)


@dataclass
class FakeProvider(AnthropicFake, OpenAIFake, GoogleFake, BedrockFake):
    family: str
    api_key: str
    mode: str = "ok"
    redirect_to: str = ""
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    # IAM access keys whose SigV4 signatures the fake accepts (Bedrock).
    aws_access_key_id: str = ""
    aws_secret_access_key: str = ""
    aws_session_token: str = ""
    # What a chat answer streams, and the input tokens it reports.
    reply: tuple[str, ...] = ("Hello", " world")
    input_tokens: int = 12
    # The provider's own word for why the answer ended; empty: the family's normal end.
    stop: str = ""

    # --- the providers' answers -------------------------------------------------------

    def answer(self, path: str, query: dict[str, list[str]], headers: dict[str, str]):
        return getattr(self, f"answer_{self.family}")(path, query, headers)

    # --- chat: each family's streaming answer ---------------------------------------------

    CHAT_PATHS = {
        **anthropic.CHAT_PATHS,
        **openai.CHAT_PATHS,
        **google.CHAT_PATHS,
        **bedrock.CHAT_PATHS,
    }

    def invalid_body(
        self, body: Any, headers: dict[str, str], path: str
    ) -> tuple[int, dict] | None:
        """The real API's 400 for a body it refuses, in the family's error shape; Anthropic's
        refusals depend on the API version the request names, OpenAI's on the endpoint."""
        if self.stream_family == "openai":
            errors = openai.body_errors(body, path)
        else:
            errors = chat_body_errors(self.stream_family, body)
        if self.family == "anthropic" and isinstance(body, dict):
            removed = anthropic.ANTHROPIC_REMOVED_FIELDS[headers["anthropic-version"]]
            errors += [
                f"{name}: Extra inputs are not permitted" for name in removed if name in body
            ]
        return self.bad_request(errors) if errors else None

    def bad_request(self, errors: list[str]) -> tuple[int, dict]:
        """A 400 in the family's error shape."""
        message = "; ".join(errors)
        if self.family == "anthropic":
            return 400, {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": message},
            }
        if self.family == "google":
            return 400, {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
        if self.family == "bedrock":
            return 400, {"message": message}
        return 400, {"error": {"message": message, "type": "invalid_request_error"}}

    def refused_for_model(self, path: str, body: Any) -> tuple[int, dict] | None:
        """The real API's 400 for settings this model refuses, in the family's error shape."""
        if self.stream_family == "google":  # /v1/models/{model}:streamGenerateContent
            model = unquote(path.rsplit("/", 1)[-1].split(":")[0])
        elif self.stream_family == "bedrock":  # /model/{model}/converse-stream
            model = unquote(path.split("/")[2])
        else:
            model = body.get("model", "")
        errors = model_refusals(self.family, model, body)
        return self.bad_request(errors) if errors else None

    def chat(self, path: str, query, headers, body=None) -> tuple[int, str, list[bytes]]:
        status, payload = self.answer("/not-a-real-path", {}, headers)
        if status != 404:  # the family's own answer to a bad key
            return status, "application/json", [json.dumps(payload).encode()]
        if not re.fullmatch(self.CHAT_PATHS[self.family], path):
            return 404, "application/json", [b'{"error": {"message": "Not found"}}']
        if self.family == "google" and query.get("alt") != ["sse"]:
            return 400, "application/json", [b'{"error": {"message": "alt=sse expected"}}']
        refusal = (
            self.chat_refusal()
            or self.invalid_body(body, headers, path)
            or self.refused_for_model(path, body)
        )
        if refusal:
            return refusal[0], "application/json", [json.dumps(refusal[1]).encode()]
        events = getattr(self, f"stream_{self.stream_family}")()
        if self.mode == "drop":  # the connection closes after the text, before the end
            text = self.reply[-1].encode()
            last_text = max(i for i, event in enumerate(events) if text in event)
            events = events[: last_text + 1]
        if self.family == "bedrock":
            return 200, "application/vnd.amazon.eventstream", events
        if self.stream_family == "openai" and body.get("stream") is not True:
            return 200, "application/json", events  # a whole answer (the gateway's)
        return 200, "text/event-stream", events

    @property
    def stream_family(self) -> str:
        return self.family if self.family in ("anthropic", "google", "bedrock") else "openai"

    def chat_refusal(self) -> tuple[int, dict] | None:
        anthropic = self.family == "anthropic"
        if self.mode == "rate429":
            if anthropic:
                return 429, {"type": "error", "error": {"type": "rate_limit_error", "message": "x"}}
            if self.family == "google":
                # Gemini says when to try again in its error's details, not in a header.
                return 429, {
                    "error": {
                        "code": 429,
                        "message": "You exceeded your current quota. Please retry in 46.2s.",
                        "status": "RESOURCE_EXHAUSTED",
                        "details": [
                            {"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
                            {
                                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                                "retryDelay": "46s",
                            },
                        ],
                    }
                }
            return 429, {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}
        if self.mode == "overloaded":
            if anthropic:
                return 529, {"type": "error", "error": {"type": "overloaded_error", "message": "x"}}
            return 503, {"error": {"message": "The service is temporarily unavailable."}}
        if self.mode == "context":
            message = {
                "anthropic": "prompt is too long: 210000 tokens > 200000 maximum",
                "google": "The input token count (1200000) exceeds the maximum number of "
                "tokens allowed (1048576).",
                "bedrock": "Input is too long for requested model.",
            }.get(self.family, "This model's maximum context length is 128000 tokens.")
            if anthropic:
                return 400, {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": message},
                }
            return 400, {"error": {"message": message, "code": "context_length_exceeded"}}
        return None

    def sse(self, data: Any, event: str = "") -> bytes:
        name = f"event: {event}\n" if event else ""
        # Raw UTF-8, as providers send it (not \u escapes).
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        return f"{name}data: {text}\n\n".encode()

    # --- the server ---------------------------------------------------------------------

    def handle_post(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        query = parse_qs(parts.query)
        length = int(handler.headers.get("Content-Length") or 0)
        raw_body = handler.rfile.read(length)
        self.check_signature(handler, headers, raw_body)
        body = json.loads(raw_body or b"null")
        self.requests.append(Recorded("POST", parts.path, query, headers, body))
        if self.mode == "slow":
            time.sleep(SLOW_SECONDS)
        status, content_type, chunks = self.chat(parts.path, query, headers, body)
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.end_headers()
        for chunk in chunks:  # no Content-Length: the answer ends when the connection closes
            handler.wfile.write(chunk)
            handler.wfile.flush()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        self.check_signature(handler, headers, b"")
        query = parse_qs(parts.query)
        self.requests.append(Recorded(handler.command, parts.path, query, headers))
        if self.mode == "slow":
            time.sleep(SLOW_SECONDS)
        error_type = None
        if self.mode == "redirect" and not parts.path.startswith("/moved"):
            status, body = 307, b""
            location = f"{self.redirect_to}{handler.path}"
        elif self.mode == "error500":
            status, body = 500, b'{"error": {"message": "Internal server error"}}'
        elif self.mode == "malformed":
            status, body = 200, b"<html>Bad gateway</html>"
        else:
            path = parts.path.removeprefix("/moved")
            status, payload = self.answer(path, query, headers)
            # AWS names an error's type in a header, not in the body.
            error_type = payload.pop("__type", None) if isinstance(payload, dict) else None
            body = json.dumps(payload).encode()
        handler.send_response(status)
        if status == 307:
            handler.send_header("Location", location)
        if status >= 400 and self.family == "bedrock" and error_type:
            handler.send_header("x-amzn-ErrorType", error_type)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


@contextmanager
def serve(provider: FakeProvider, tls: bool = False) -> Iterator[FakeProvider]:
    """Serve the fake on a free port of 127.0.0.1; with `tls`, over HTTPS with a self-signed
    certificate (botocore sends a Bedrock API key only over HTTPS)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            # A client that gave up (a timeout test) closes the connection: nothing to answer.
            with suppress(BrokenPipeError, ConnectionResetError):
                provider.handle(self)

        def do_POST(self) -> None:
            with suppress(BrokenPipeError, ConnectionResetError):
                provider.handle_post(self)

        def log_message(self, *args: Any) -> None:
            pass

    with loopback_server(Handler, tls) as url:
        provider.url = url
        yield provider


CHAT_BODIES = {
    "anthropic": anthropic.ANTHROPIC_BODY,
    "openai": openai.OPENAI_BODY,
    "google": google.GOOGLE_BODY,
}


def chat_body_errors(family: str, body: Any) -> list[str]:
    if family == "bedrock":
        return bedrock.converse_errors(body)
    errors = schema_errors(body, CHAT_BODIES[family], "body")
    if family == "anthropic" and not errors:
        # The API's own cross-field rule: the thinking budget is part of max_tokens.
        budget = (body.get("thinking") or {}).get("budget_tokens")
        if budget is not None and budget >= body["max_tokens"]:
            errors.append("max_tokens must be greater than thinking.budget_tokens")
    return errors


def model_refusals(family: str, model: str, body: Any) -> list[str]:
    entry = catalog_entry(family, model)
    if family == "bedrock" and re.search(r"(^|\.)amazon\.nova-", model):
        return bedrock.nova_refusals(model, body)
    if family in ("anthropic", "bedrock"):
        return anthropic.claude_refusals(model, entry, body, family)
    if family in ("openai", "azure") and entry is not None:
        return openai.openai_refusals(model, entry, body)
    if family == "google":
        return google.gemini_refusals(model, entry, body)
    return []


class CountingProvider(FakeProvider):
    """The OpenAI fake with this key, holding each call for `hold` seconds (or until
    `released` is set) and counting the calls it holds at once: turns overlap, and a test
    reads how many reached the provider together."""

    def __init__(self, api_key: str, hold: float = 0.0, input_tokens: int = 12) -> None:
        super().__init__("openai", api_key, input_tokens=input_tokens)
        self.hold = hold
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0

    def handle_post(self, handler) -> None:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.hold:
                time.sleep(self.hold)
            else:
                self.released.wait(10)
            super().handle_post(handler)
        finally:
            with self.lock:
                self.in_flight -= 1
