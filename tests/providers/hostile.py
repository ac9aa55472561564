"""Hostile HTTP servers on 127.0.0.1: each speaks one provider API family and echoes the
credential it received into every field of its answers that a mode selects.

Families: "openai" (OpenAI, Azure OpenAI, OpenAI Compatible, OpenRouter, Vercel: it answers any
path, /v1/..., /openai/v1/..., /api/v1/...), "anthropic", "google" (Gemini) and "bedrock".
The credential is whatever header carried it (`Authorization: Bearer`, `x-api-key`,
`x-goog-api-key`, `api-key`). GET is a key check or a model list, POST a chat turn.

Modes:

- "redirect": 307 to `/echo/<credential>?k=<credential>` on the same host; `/echo/...` answers
  404 with the credential in the family's error body.
- "error_body": the family's error JSON with the credential in its type, code, message and
  status (and in the error headers), with the given status.
- "reason_phrase": the given status with the credential as the HTTP reason phrase; the body is
  the family's ordinary answer to that status (a model list or a chat stream for 200).
- "midstream": a chat answer streams one text delta, then the family's error event with the
  credential in its type, code and message. A GET gets an ordinary model list.
- "echo_text": a chat answer streams one text delta, then a text delta holding the credential
  (the model "says" the key; the chat-completions family's). A GET gets an ordinary model list.
- "not_json": a 200 whose body is the credential as text (a chat stream's one event).
- "finish": a chat answer streams one text delta, then ends with the credential as its finish
  or stop reason. A GET gets an ordinary model list.
- "bad_location": a 307 whose Location is no URL (`http://[<credential>/`).
- "bad_header": the ordinary answer with a header line that has no colon, holding the
  credential (the HTTP library logs such lines).
- "bad_charset": the ordinary answer, its Content-Type claiming the credential as charset.
- "bad_encoding": a 400 whose Content-Encoding names the credential (the body is not encoded).
- "odd_shapes": answers of the wrong shapes, the credential where an object, a list or a
  number belongs (a context limit of `<b>credential</b>`).
- "gzip_bomb": a GET gets 100 MB of spaces followed by the family's ordinary model list (still
  valid JSON), gzip-compressed to about 100 KB, though we ask for no compression.
- "listed_ids": a GET gets a model list of the family's REAL_IDS and of HOSTILE_IDS: the
  credential, an id holding it, an over-long id, ids with a space, HTML or control characters.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.providers.anthropic import hostile as anthropic
from tests.providers.bedrock import hostile as bedrock
from tests.providers.google import hostile as google
from tests.providers.openai import hostile as openai
from tests.providers.servers import loopback_server, sse

# Each family's answers: its REAL_IDS, ERROR_KINDS, model_list, error, stream, odd_stream and
# the CONTENT_TYPE of its streams.
FAMILIES = {"openai": openai, "anthropic": anthropic, "google": google, "bedrock": bedrock}
MODES = (
    "redirect",
    "error_body",
    "reason_phrase",
    "midstream",
    "echo_text",
    "not_json",
    "finish",
    "bad_location",
    "bad_header",
    "bad_charset",
    "bad_encoding",
    "odd_shapes",
    "gzip_bomb",
    "listed_ids",
)
ERROR_STATUSES = (400, 401, 403, 404, 429, 500, 529)
# Model ids each family really lists, of every shape a model id takes.
REAL_IDS = {name: family.REAL_IDS for name, family in FAMILIES.items()}


def hostile_ids(credential: str) -> list[str]:
    """Ids no page may show: the credential, whole, inside or in pieces, and ids no model has."""
    half = len(credential) // 2
    return [
        credential,
        f"ft:gpt-5:{credential}:x",
        # In two pieces, each under its own id: read together, the key.
        f"a/{credential[:half]}",
        f"b/{credential[half:]}",
        "m" * 201,
        "gpt 5",
        "<img src=x onerror=alert(1)>",
        "gpt-5\x07",
        "gpt-5\n",
        "gpt\u202e5-tpg",
    ]


@cache
def gzipped_spaces() -> tuple[Any, bytes]:
    """100 MB of spaces gzipped a megabyte at a time (the whole never in memory): the
    compressor as it is after them (to go on with each family's list), and its output."""
    compressor = zlib.compressobj(wbits=31)  # 31: the gzip format
    spaces = b" " * 1024 * 1024
    return compressor, b"".join(compressor.compress(spaces) for _ in range(100))


@cache
def gzip_bomb(family: str) -> bytes:
    """100 MB of spaces and the family's model list (JSON may begin with white space),
    gzipped: the spaces compressed once for every family (half a second each)."""
    spaces, compressed = gzipped_spaces()
    compressor = spaces.copy()
    model_list = json.dumps(FAMILIES[family].model_list()).encode()
    return b"".join([compressed, compressor.compress(model_list), compressor.flush()])


@dataclass
class Received:
    method: str
    path: str = field(repr=False)  # with its query string, which may hold the credential
    credential: str = field(repr=False)


@dataclass
class Answer:
    status: int
    chunks: list[bytes] = field(default_factory=list)
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    reason: str | None = None  # None: the standard phrase of the status
    streamed: bool = False  # no Content-Length: the answer ends when the connection closes
    raw_header_line: str = ""  # written as it is, colon or not


def credential_in(headers: dict[str, str], path: str, query: dict[str, list[str]]) -> str:
    """The credential the caller sent, wherever it put it; "" when there is none."""
    authorization = headers.get("authorization", "")
    if authorization.startswith("AWS4-HMAC-SHA256 "):  # SigV4: the token travels, not the secret
        return headers.get("x-amz-security-token", "")
    if authorization.lower().startswith("bearer "):
        return authorization[len("bearer ") :]
    for name in ("x-api-key", "x-goog-api-key", "api-key"):
        if headers.get(name):
            return headers[name]
    if query.get("key"):
        return query["key"][0]
    if path.startswith("/echo/"):  # the caller followed the redirect without its header
        return unquote(path.removeprefix("/echo/"))
    return ""


@dataclass
class HostileProvider:
    family: str
    mode: str
    status: int = 401
    url: str = ""
    requests: list[Received] = field(default_factory=list)

    @property
    def credentials(self) -> set[str]:
        """Every credential callers sent."""
        return {request.credential for request in self.requests}

    def received(self, method: str) -> bool:
        return any(request.method == method for request in self.requests)

    # --- the answers ------------------------------------------------------------------------

    def answer(self, method: str, path: str, credential: str) -> Answer:
        chat = method == "POST"
        if self.mode == "redirect":
            if path.startswith("/echo/"):
                return self.error(404, credential)
            target = quote(credential, safe="")
            return Answer(307, headers={"Location": f"/echo/{target}?k={target}"})
        if self.mode == "error_body":
            return self.error(self.status, credential)
        if self.mode == "reason_phrase":
            answer = self.ordinary(chat, self.status)
            answer.reason = f"Invalid key {credential}"
            return answer
        if self.mode == "bad_location":
            return Answer(307, headers={"Location": f"http://[{credential}/"})
        if self.mode in ("bad_header", "bad_charset"):
            answer = self.ordinary(chat, 200)
            if self.mode == "bad_header":
                answer.raw_header_line = f"X-Note {credential}"
            else:
                answer.content_type += f"; charset={credential}"
            return answer
        if self.mode == "bad_encoding":
            answer = self.error(400, "")
            answer.headers["Content-Encoding"] = f"gzip, {credential}"
            return answer
        if self.mode == "odd_shapes":
            return self.odd_shapes(chat, credential)
        if self.mode == "gzip_bomb" and not chat:
            return Answer(200, [gzip_bomb(self.family)], headers={"Content-Encoding": "gzip"})
        if self.mode == "listed_ids" and not chat:
            ids = REAL_IDS[self.family] + hostile_ids(credential)
            return Answer(200, [json.dumps(FAMILIES[self.family].model_list(ids)).encode()])
        if self.mode == "not_json":
            if not chat:
                return Answer(200, [credential.encode()])
            family = FAMILIES[self.family]
            body = credential.encode() if family is bedrock else sse(credential)
            return Answer(200, [body], family.CONTENT_TYPE, streamed=True)
        # "midstream", "echo_text" and "finish" are chat answers; a key check gets an ordinary
        # list.
        if not chat:
            return self.ordinary(chat, 200)
        return self.stream(self.mode, credential)

    def odd_shapes(self, chat: bool, echo: str) -> Answer:
        """Where an object, a list or a number belongs, the echo."""
        if not chat:
            item = {
                "id": "m",
                "name": "models/m",
                "modelId": "m",
                "inferenceProfileId": "m",
                "max_input_tokens": f"<b>{echo}</b>",
                "context_length": f"<b>{echo}</b>",
                "inputTokenLimit": f"<b>{echo}</b>",
                "supportedGenerationMethods": len(echo),
            }
            lists = ("data", "models", "modelSummaries", "inferenceProfileSummaries")
            payload = {**{key: [item] for key in lists}, "has_more": echo, "nextPageToken": echo}
            return Answer(200, [json.dumps(payload).encode()])
        family = FAMILIES[self.family]
        return Answer(200, family.odd_stream(echo), family.CONTENT_TYPE, streamed=True)

    def ordinary(self, chat: bool, status: int) -> Answer:
        """What the family answers with this status when nothing is echoed."""
        if status >= 400:
            return self.error(status, "")
        if chat:
            return self.stream("stop", "")
        return Answer(200, [json.dumps(FAMILIES[self.family].model_list()).encode()])

    def error(self, status: int, echo: str) -> Answer:
        """The family's error answer, with `echo` in every field it has."""
        family = FAMILIES[self.family]
        payload, family_headers = family.error(
            status, family.ERROR_KINDS.get(status, "error"), echo
        )
        headers = {"x-request-id": echo} if echo else {}
        headers.update(family_headers)
        return Answer(status, [json.dumps(payload).encode()], headers=headers)

    def stream(self, ending: str, echo: str) -> Answer:
        """One text delta, then: "midstream" the family's error event, "finish" the echo as
        the finish reason, "stop" an ordinary end."""
        family = FAMILIES[self.family]
        return Answer(200, family.stream(ending, echo), family.CONTENT_TYPE, streamed=True)

    # --- the server -------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        if handler.command == "POST":
            handler.rfile.read(int(headers.get("content-length") or 0))
        credential = credential_in(headers, parts.path, parse_qs(parts.query))
        self.requests.append(Received(handler.command, handler.path, credential))
        answer = self.answer(handler.command, parts.path, credential or "no-credential")
        body = b"".join(answer.chunks)
        handler.send_response(answer.status, answer.reason)
        handler.send_header("Content-Type", answer.content_type)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        if answer.raw_header_line:
            handler._headers_buffer.append(f"{answer.raw_header_line}\r\n".encode())
        if not answer.streamed:
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            for chunk in answer.chunks:
                handler.wfile.write(chunk)
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the caller stopped reading: its business


@contextmanager
def serve_hostile(family: str, mode: str, status: int | None = None) -> Iterator[HostileProvider]:
    """A hostile provider of `family` on a free loopback port; `status` for "error_body" and
    "reason_phrase" (401 when not given)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    provider = HostileProvider(family, mode, status or 401)
    if mode == "gzip_bomb":
        # Compressed before any caller connects: on a busy machine it takes longer than the
        # callers' read timeout, which would then fail the test for the wrong reason.
        gzip_bomb(family)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            provider.handle(self)

        def do_POST(self) -> None:
            provider.handle(self)

        def log_message(self, *args: Any) -> None:
            pass

    with loopback_server(Handler) as url:
        provider.url = url
        yield provider
