"""KeyPoolFake: one loopback provider that holds several keys of an account, each answering as
the test tells it (a Behaviour): the answer, a refusal (401, 403), a rate limit (429, with or
without Retry-After), the provider failing (503; Anthropic's 529), the connection closed
before any answer, or the answer cut after its first delta. A key it does not hold gets the
family's own refusal of a bad key. It records which key each request used.

The answers themselves are the family fakes' (OpenAI's chat completions and Anthropic's
Messages, streamed and whole; Bedrock's ConverseStream signed with IAM access keys), one fake
per key: what those refuse of a body, this refuses too. Error bodies and headers are each
API's own (its error shape; AWS names the error in x-amzn-ErrorType); a hostile key's error
body quotes the key, as a careless proxy does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.providers.anthropic.fake import MessagesFake
from tests.providers.fakes import FakeProvider
from tests.providers.servers import Recorded, bearer_token, loopback_server


@dataclass(frozen=True)
class Behaviour:
    """How the provider answers a key."""

    # 200: the answer; else an error answer with this status.
    status: int = 200
    # The 429's Retry-After header, as sent; None: none.
    retry_after: str | None = None
    # The error's message quotes the key (a hostile or careless provider).
    echo: bool = False
    # The connection is closed before any answer: no status, no byte.
    hang_up: bool = False
    # The answer begins, then the connection closes after its first delta.
    cut: bool = False


OK = Behaviour()
REFUSED = Behaviour(401)
FORBIDDEN = Behaviour(403)
HUNG_UP = Behaviour(hang_up=True)
CUT = Behaviour(cut=True)


def rate_limited(retry_after: str | None = None, echo: bool = False) -> Behaviour:
    return Behaviour(429, retry_after=retry_after, echo=echo)


def failing(family: str) -> Behaviour:
    """The family's answer when it can't serve: Anthropic's overloaded 529, else 503."""
    return Behaviour(529 if family == "anthropic" else 503)


# Each family's error answer by status: (its error type or code, its message). From the
# providers' API references (OpenAI's error codes, Anthropic's errors page, Bedrock's
# ConverseStream errors). AWS answers no 401: Bedrock refuses a key it doesn't know with 403
# UnrecognizedClientException, which is what its 401 here is sent as.
ERRORS = {
    "openai": {
        401: ("invalid_api_key", "Incorrect API key provided."),
        403: ("unsupported_country_region_territory", "Country, region, or territory not "
              "supported."),
        429: ("rate_limit_exceeded", "Rate limit reached for requests."),
        503: ("server_error", "The server is overloaded or not ready yet."),
    },
    "anthropic": {
        401: ("authentication_error", "invalid x-api-key"),
        403: ("permission_error", "Your API key does not have permission to use the "
              "specified resource."),
        429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
        503: ("api_error", "Service unavailable."),
        529: ("overloaded_error", "Overloaded"),
    },
    "bedrock": {
        401: ("UnrecognizedClientException", "The security token included in the request is "
              "invalid."),
        403: ("AccessDeniedException", "You don't have access to the model with the "
              "specified model ID."),
        429: ("ThrottlingException", "Too many requests, please wait before trying again."),
        503: ("ServiceUnavailableException", "Service unavailable."),
    },
}  # fmt: skip


@dataclass
class KeyPoolFake:
    """The family's provider ("openai", "anthropic" or "bedrock") holding `keys`, each with its
    Behaviour (change them between calls). Bedrock's keys are IAM access key IDs, signed with
    their `aws_secrets`."""

    family: str
    keys: dict[str, Behaviour]
    aws_secrets: dict[str, str] = field(default_factory=dict)
    # Every request, and the key it used ("" when it named none), in order.
    requests: list[Recorded] = field(default_factory=list)
    used: list[str] = field(default_factory=list)
    url: str = ""
    # What an answer streams.
    reply: tuple[str, ...] = ("Hello", " world")
    # The family fake answering each key, made on its first request.
    answering: dict[str, Any] = field(default_factory=dict)

    def clear(self) -> None:
        self.requests.clear()
        self.used.clear()

    def key_of(self, headers: dict[str, str]) -> str:
        """The key a request was made with: the bearer token, Anthropic's x-api-key, or the
        access key ID of an AWS signature."""
        if self.family == "anthropic" and "x-api-key" in headers:
            return headers["x-api-key"]
        signed = re.match(
            r"AWS4-HMAC-SHA256 Credential=([^/,]+)/", headers.get("authorization", "")
        )
        if signed:
            return signed[1]
        return bearer_token(headers) or ""

    def fake_of(self, key: str) -> Any:
        """The family's fake that takes this key, and answers as the real API does."""
        if key not in self.answering:
            if self.family == "anthropic":
                fake: Any = MessagesFake(api_key=key, reply=self.reply)
            elif self.family == "bedrock":
                fake = FakeProvider(
                    "bedrock",
                    "",
                    aws_access_key_id=key,
                    aws_secret_access_key=self.aws_secrets.get(key, ""),
                    reply=self.reply,
                )
            else:
                fake = FakeProvider(self.family, key, reply=self.reply)
            self.answering[key] = fake
        return self.answering[key]

    def answer(
        self, handler: BaseHTTPRequestHandler, raw: bytes
    ) -> tuple[int, dict[str, str], Iterator[bytes]] | None:
        """The status, headers and body chunks of the answer; None: hang up instead."""
        parts = urlsplit(handler.path)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        key = self.key_of(headers)
        body = json.loads(raw or b"null")
        self.requests.append(Recorded("POST", parts.path, parse_qs(parts.query), headers, body))
        self.used.append(key)
        behaviour = self.keys.get(key)
        if behaviour is None:
            # A key this account never had: the family's own refusal of a bad key.
            return self.error(401, key, echo=False)
        if behaviour.hang_up:
            return None
        if behaviour.status != 200:
            headers_sent = {}
            if behaviour.retry_after is not None:
                headers_sent["Retry-After"] = behaviour.retry_after
            status, sent, chunks = self.error(behaviour.status, key, behaviour.echo)
            return status, {**sent, **headers_sent}, chunks
        status, content_type, chunks = self.family_answer(key, handler, headers, raw, body)
        chunks = list(chunks)
        if behaviour.cut:
            chunks = until_first_delta(chunks, self.reply[0].encode())
        return status, {"Content-Type": content_type}, iter(chunks)

    def family_answer(
        self,
        key: str,
        handler: BaseHTTPRequestHandler,
        headers: dict[str, str],
        raw: bytes,
        body: Any,
    ) -> tuple[int, str, Any]:
        fake = self.fake_of(key)
        parts = urlsplit(handler.path)
        if self.family == "anthropic":
            return fake.answer(parts.path, headers, body)
        # Bedrock's fake takes a request whose signature it checked; OpenAI's reads the request
        # it answers from its record.
        fake.check_signature(handler, headers, raw)
        query = parse_qs(parts.query)
        fake.requests.append(Recorded("POST", parts.path, query, headers, body))
        return fake.chat(parts.path, query, headers, body)

    def error(
        self, status: int, key: str, echo: bool
    ) -> tuple[int, dict[str, str], Iterator[bytes]]:
        """The family's error answer with this status; its message quotes the key when
        `echo`."""
        kind, message = ERRORS[self.family].get(status, ("api_error", "Something went wrong."))
        if self.family == "bedrock" and status == 401:
            status = 403  # AWS refuses a key it doesn't know with 403 UnrecognizedClient
        if echo:
            message = f"{message} The key was {key}."
        headers = {"Content-Type": "application/json"}
        if self.family == "anthropic":
            payload: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
        elif self.family == "bedrock":
            payload = {"message": message}
            headers["x-amzn-ErrorType"] = (
                f"{kind}:http://internal.amazon.com/coral/com.amazon.coral/"
            )
        else:
            error_type = "requests" if status == 429 else "invalid_request_error"
            payload = {"error": {"message": message, "type": error_type, "code": kind}}
        return status, headers, iter([json.dumps(payload).encode()])


def until_first_delta(chunks: list[bytes], marker: bytes) -> list[bytes]:
    """The answer's chunks up to the first that holds the first piece of text."""
    kept = []
    for chunk in chunks:
        kept.append(chunk)
        if marker in chunk:
            break
    return kept


@contextmanager
def serve_pool(fake: KeyPoolFake) -> Iterator[KeyPoolFake]:
    """Serve the fake on a free port of 127.0.0.1."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = fake.answer(self, raw)
            if answer is None:
                # Nothing written: the server closes the connection when this returns.
                self.close_connection = True
                return
            status, headers, chunks = answer
            with suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                for chunk in chunks:  # no Content-Length: the end is the connection's
                    self.wfile.write(chunk)
                    self.wfile.flush()

        def log_message(self, *args: Any) -> None:
            pass

    with loopback_server(Handler) as url:
        fake.url = url
        yield fake
