"""Real HTTP servers on 127.0.0.1 that speak each provider family's API.

Each checks the auth headers and paths the real provider requires and answers as it does,
including its error shapes. A mode makes it fail: "error500", "slow", "malformed", or
"redirect" (to `redirect_to`).
"""

from __future__ import annotations

import json
import re
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SLOW_SECONDS = 2.0


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any = None


@dataclass
class FakeProvider:
    family: str
    api_key: str
    mode: str = "ok"
    redirect_to: str = ""
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    # What a chat answer streams, and the input tokens it reports.
    reply: tuple[str, ...] = ("Hello", " world")
    input_tokens: int = 12

    # --- the providers' answers -------------------------------------------------------

    def answer(self, path: str, query: dict[str, list[str]], headers: dict[str, str]):
        return getattr(self, f"answer_{self.family}")(path, query, headers)

    def answer_openai(self, path, query, headers):
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {
                "error": {
                    "message": "Incorrect API key provided.",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            }
        if path == "/v1/models":
            return 200, {
                "object": "list",
                "data": [
                    {"id": "gpt-5", "object": "model", "created": 1754000000, "owned_by": "openai"},
                    {"id": "gpt-5-mini", "object": "model", "created": 1754000000},
                ],
            }
        return 404, {"error": {"message": f"Unknown path {path}", "type": "invalid_request_error"}}

    def answer_anthropic(self, path, query, headers):
        if headers.get("x-api-key") != self.api_key:
            return 401, {
                "type": "error",
                "error": {"type": "authentication_error", "message": "invalid x-api-key"},
            }
        if headers.get("anthropic-version") != "2023-06-01":
            return 400, {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "anthropic-version"},
            }
        if path != "/v1/models":
            return 404, {"type": "error", "error": {"type": "not_found_error", "message": path}}
        pages = [
            [("claude-opus-4-6", 1_000_000), ("claude-sonnet-4-6", 1_000_000)],
            [("claude-haiku-4-5", 200_000)],
        ]
        page = 1 if query.get("after_id") == ["claude-sonnet-4-6"] else 0
        items = pages[page]
        return 200, {
            "data": [
                {
                    "type": "model",
                    "id": model_id,
                    "display_name": model_id,
                    "created_at": "2026-02-01T00:00:00Z",
                    "max_input_tokens": context,
                }
                for model_id, context in items
            ],
            "has_more": page == 0,
            "first_id": items[0][0],
            "last_id": items[-1][0],
        }

    def answer_google(self, path, query, headers):
        if "key" in query:
            return 400, {"error": {"code": 400, "message": "the test refuses ?key= URLs"}}
        if headers.get("x-goog-api-key") != self.api_key:
            # Gemini answers a bad key with 400, not 401.
            return 400, {
                "error": {
                    "code": 400,
                    "message": "API key not valid. Please pass a valid API key.",
                    "status": "INVALID_ARGUMENT",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "API_KEY_INVALID",
                            "domain": "googleapis.com",
                        }
                    ],
                }
            }
        if path != "/v1beta/models":
            return 404, {"error": {"code": 404, "message": path, "status": "NOT_FOUND"}}
        if query.get("pageToken") == ["page-2"]:
            return 200, {
                "models": [
                    {
                        "name": "models/gemini-2.5-flash",
                        "inputTokenLimit": 1_048_576,
                        "outputTokenLimit": 65_536,
                        "supportedGenerationMethods": ["generateContent", "countTokens"],
                    }
                ]
            }
        return 200, {
            "models": [
                {
                    "name": "models/gemini-2.5-pro",
                    "inputTokenLimit": 1_048_576,
                    "outputTokenLimit": 65_536,
                    "supportedGenerationMethods": ["generateContent", "countTokens"],
                },
                {
                    "name": "models/text-embedding-004",
                    "inputTokenLimit": 2048,
                    "supportedGenerationMethods": ["embedContent"],
                },
            ],
            "nextPageToken": "page-2",
        }

    def answer_azure(self, path, query, headers):
        if headers.get("api-key") != self.api_key:
            return 401, {
                "error": {
                    "code": "401",
                    "message": "Access denied due to invalid subscription key or wrong API "
                    "endpoint.",
                }
            }
        if path == "/openai/v1/models":
            return 200, {"object": "list", "data": [{"id": "gpt-5", "object": "model"}]}
        return 404, {"error": {"code": "404", "message": "Resource not found"}}

    def answer_bedrock(self, path, query, headers):
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 403, {"message": "The security token included in the request is invalid."}
        if path == "/foundation-models":
            return 200, {
                "modelSummaries": [
                    {"modelId": "anthropic.claude-sonnet-4-5-20250929-v1:0", "providerName": "x"}
                ]
            }
        if path == "/inference-profiles":
            return 200, {
                "inferenceProfileSummaries": [
                    {"inferenceProfileId": "us.anthropic.claude-sonnet-4-5-20250929-v1:0"}
                ]
            }
        return 404, {"message": "Not found"}

    def answer_openrouter(self, path, query, headers):
        if path == "/api/v1/models":  # public: answers without checking the key
            return 200, {"data": [{"id": "openai/gpt-5", "context_length": 400_000}]}
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": {"message": "No auth credentials found", "code": 401}}
        if path == "/api/v1/key":
            return 200, {"data": {"label": "sk-or-v1-abc...xyz", "limit": None, "usage": 0}}
        return 404, {"error": {"message": "Not Found", "code": 404}}

    def answer_vercel(self, path, query, headers):
        if path == "/v1/models":
            return 200, {
                "object": "list",
                "data": [{"id": "anthropic/claude-sonnet-4.5", "context_window": 200_000}],
            }
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": {"message": "Invalid API key", "type": "authentication_error"}}
        if path == "/v1/credits":
            return 200, {"balance": "95.50", "total_used": "4.50"}
        return 404, {"error": {"message": "Not found"}}

    # --- chat: each family's streaming answer ---------------------------------------------

    CHAT_PATHS = {
        "openai": r"/v1/chat/completions",
        "azure": r"/openai/v1/chat/completions",
        "openrouter": r"/api/v1/chat/completions",
        "vercel": r"/v1/chat/completions",
        "anthropic": r"/v1/messages",
        "google": r"/v1beta/models/[^/:]+:streamGenerateContent",
        "bedrock": r"/model/[^/]+/converse-stream",
    }

    def chat(self, path: str, query, headers) -> tuple[int, str, list[bytes]]:
        status, payload = self.answer("/not-a-real-path", {}, headers)
        if status != 404:  # the family's own answer to a bad key
            return status, "application/json", [json.dumps(payload).encode()]
        if not re.fullmatch(self.CHAT_PATHS[self.family], path):
            return 404, "application/json", [b'{"error": {"message": "Not found"}}']
        if self.family == "google" and query.get("alt") != ["sse"]:
            return 400, "application/json", [b'{"error": {"message": "alt=sse expected"}}']
        refusal = self.chat_refusal()
        if refusal:
            return refusal[0], "application/json", [json.dumps(refusal[1]).encode()]
        events = getattr(self, f"stream_{self.stream_family}")()
        if self.mode == "drop":  # the connection closes after part of the answer
            events = events[: len(events) // 2 + 1]
        if self.family == "bedrock":
            return 200, "application/vnd.amazon.eventstream", events
        return 200, "text/event-stream", events

    @property
    def stream_family(self) -> str:
        return self.family if self.family in ("anthropic", "google", "bedrock") else "openai"

    def chat_refusal(self) -> tuple[int, dict] | None:
        anthropic = self.family == "anthropic"
        if self.mode == "rate429":
            if anthropic:
                return 429, {"type": "error", "error": {"type": "rate_limit_error", "message": "x"}}
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
        text = data if isinstance(data, str) else json.dumps(data)
        return f"{name}data: {text}\n\n".encode()

    def stream_openai(self) -> list[bytes]:
        chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m"}
        events = [b": OPENROUTER PROCESSING\n\n"] if self.family == "openrouter" else []
        events.append(
            self.sse(
                {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
            )
        )
        events += [
            self.sse({**chunk, "choices": [{"index": 0, "delta": {"content": text}}]})
            for text in self.reply
        ]
        if self.mode == "midstream_error":
            return [
                *events[:2],
                self.sse(
                    {
                        **chunk,
                        "error": {"code": "server_error", "message": "upstream"},
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}],
                    }
                ),
            ]
        events.append(
            self.sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        )
        events.append(
            self.sse(
                {
                    **chunk,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": self.input_tokens,
                        "completion_tokens": 5,
                        "total_tokens": self.input_tokens + 5,
                    },
                }
            )
        )
        events.append(self.sse("[DONE]"))
        return events

    def stream_anthropic(self) -> list[bytes]:
        usage = {
            "input_tokens": self.input_tokens - 2,
            "cache_read_input_tokens": 2,
            "output_tokens": 1,
        }
        events = [
            self.sse(
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_1",
                        "type": "message",
                        "role": "assistant",
                        "content": [],
                        "usage": usage,
                    },
                },
                "message_start",
            ),
            self.sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
            self.sse({"type": "ping"}, "ping"),
            self.sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": "hmm"},
                },
                "content_block_delta",
            ),
        ]
        events += [
            self.sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text},
                },
                "content_block_delta",
            )
            for text in self.reply
        ]
        if self.mode == "midstream_error":
            return [
                *events[:5],
                self.sse(
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    },
                    "error",
                ),
            ]
        events += [
            self.sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            self.sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 5},
                },
                "message_delta",
            ),
            self.sse({"type": "message_stop"}, "message_stop"),
        ]
        return events

    def stream_google(self) -> list[bytes]:
        events = [
            self.sse(
                {
                    "candidates": [
                        {
                            "content": {
                                "parts": [{"text": "thinking...", "thought": True}],
                                "role": "model",
                            },
                            "index": 0,
                        }
                    ]
                }
            )
        ]
        events += [
            self.sse(
                {
                    "candidates": [
                        {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
                    ]
                }
            )
            for text in self.reply
        ]
        if self.mode == "midstream_error":
            return [
                *events[:2],
                self.sse(
                    {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}
                ),
            ]
        events.append(
            self.sse(
                {
                    "candidates": [
                        {
                            "content": {"parts": [{"text": ""}], "role": "model"},
                            "finishReason": "STOP",
                            "index": 0,
                        }
                    ],
                    "usageMetadata": {
                        "promptTokenCount": self.input_tokens,
                        "candidatesTokenCount": 5,
                        "totalTokenCount": self.input_tokens + 5,
                    },
                }
            )
        )
        return events

    def stream_bedrock(self) -> list[bytes]:
        events = [aws_message("messageStart", {"role": "assistant"})]
        events += [
            aws_message("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}})
            for text in self.reply
        ]
        if self.mode == "midstream_error":
            return [
                *events[:2],
                aws_message("", {"message": "Too many requests"}, exception="throttlingException"),
            ]
        events += [
            aws_message("contentBlockStop", {"contentBlockIndex": 0}),
            aws_message("messageStop", {"stopReason": "end_turn"}),
            aws_message(
                "metadata",
                {
                    "usage": {
                        "inputTokens": self.input_tokens,
                        "outputTokens": 5,
                        "totalTokens": self.input_tokens + 5,
                    },
                    "metrics": {"latencyMs": 120},
                },
            ),
        ]
        return events

    # --- the server ---------------------------------------------------------------------

    def handle_post(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        query = parse_qs(parts.query)
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"null")
        self.requests.append(Recorded("POST", parts.path, query, headers, body))
        if self.mode == "slow":
            time.sleep(SLOW_SECONDS)
        status, content_type, chunks = self.chat(parts.path, query, headers)
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.end_headers()
        for chunk in chunks:  # no Content-Length: the answer ends when the connection closes
            handler.wfile.write(chunk)
            handler.wfile.flush()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        query = parse_qs(parts.query)
        self.requests.append(Recorded(handler.command, parts.path, query, headers))
        if self.mode == "slow":
            time.sleep(SLOW_SECONDS)
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
            body = json.dumps(payload).encode()
        handler.send_response(status)
        if status == 307:
            handler.send_header("Location", location)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


@contextmanager
def serve(provider: FakeProvider) -> Iterator[FakeProvider]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            provider.handle(self)

        def do_POST(self) -> None:
            provider.handle_post(self)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    provider.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()


def aws_message(event: str, payload: dict, exception: str = "") -> bytes:
    """One message of AWS's binary event stream, with its CRCs."""
    headers = (
        {
            ":message-type": "exception",
            ":exception-type": exception,
            ":content-type": "application/json",
        }
        if exception
        else {":event-type": event, ":content-type": "application/json", ":message-type": "event"}
    )
    raw_headers = b"".join(
        bytes([len(name)])
        + name.encode()
        + b"\x07"
        + struct.pack(">H", len(value))
        + value.encode()
        for name, value in headers.items()
    )
    body = json.dumps(payload).encode()
    total = 12 + len(raw_headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + raw_headers + body
    return message + struct.pack(">I", zlib.crc32(message))
