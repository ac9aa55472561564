"""A loopback provider that plays a scripted streaming answer, paced and framed as a test
needs: keep-alives or pings forever, a trickle of text, garbage after a delta, a body with no
length and no chunks (it ends when the connection closes), a pause until the test says go.

It records when the caller closed the connection: a caller that goes away must close the
upstream request at once.
"""

from __future__ import annotations

import json
import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.providers.servers import loopback_server


@dataclass
class Script:
    """What the upstream sends: each step is bytes to write (one read's worth), a pause in
    seconds, or an Event to wait for; then `forever` every `every` seconds until the caller
    goes away (nothing when None: the body ends)."""

    steps: list[bytes | float | threading.Event]
    forever: bytes | None = None
    every: float = 0.05
    # Chunked transfer coding, or a body delimited by closing the connection.
    chunked: bool = True
    # Says the body is gzip-compressed (whatever was asked for).
    gzip: bool = False
    accept_encoding: str = ""
    closed_at: float | None = None
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def caller_left(self, handler: BaseHTTPRequestHandler) -> bool:
        readable, _, _ = select.select([handler.connection], [], [], 0)
        return bool(readable) and handler.connection.recv(1) == b""

    def play(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        handler.rfile.read(length)
        with self._lock:
            self.requests += 1
        self.accept_encoding = handler.headers.get("Accept-Encoding", "")
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        if self.gzip:
            handler.send_header("Content-Encoding", "gzip")
        if self.chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Connection", "close")
        handler.end_headers()
        try:
            for step in self.steps:
                if isinstance(step, bytes):
                    self.write(handler, step)
                elif isinstance(step, threading.Event):
                    step.wait(10)
                else:
                    time.sleep(step)
            while self.forever is not None:
                time.sleep(self.every)
                if self.caller_left(handler):
                    raise ConnectionResetError
                self.write(handler, self.forever)
            if self.chunked:
                handler.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.closed_at = time.monotonic()
            return
        handler.wfile.flush()

    def write(self, handler: BaseHTTPRequestHandler, data: bytes) -> None:
        if not data:  # an empty chunk would end a chunked body
            return
        if self.chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        handler.wfile.write(data)
        handler.wfile.flush()

    def wait_for_close(self, seconds: float = 3) -> float | None:
        """When the caller closed the connection; None if it didn't within `seconds`."""
        until = time.monotonic() + seconds
        while self.closed_at is None and time.monotonic() < until:
            time.sleep(0.01)
        return self.closed_at


@contextmanager
def serve_script(script: Script) -> Iterator[str]:
    """The script's server; its URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            script.play(self)
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    with loopback_server(Handler) as url:
        yield url


# --- OpenAI's chat completion chunks, and Anthropic's events --------------------------------


def data(payload: Any) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def openai_delta(text: str) -> bytes:
    return data({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})


# The end of an answer, without usage and with it.
OPENAI_STOP = (
    data({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + b"data: [DONE]\n\n"
)
OPENAI_END = (
    data({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    + data({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
    + b"data: [DONE]\n\n"
)
KEEP_ALIVE = b": keep-alive\n\n"


def anthropic_event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **payload})}\n\n".encode()


def anthropic_start(text: str) -> bytes:
    return (
        anthropic_event("message_start", {"message": {"usage": {"input_tokens": 5}}})
        + anthropic_event(
            "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
        )
        + anthropic_event(
            "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}}
        )
    )


ANTHROPIC_PING = anthropic_event("ping", {})
