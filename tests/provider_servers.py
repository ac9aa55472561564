"""Real HTTP servers on 127.0.0.1 that speak each provider family's API.

Each checks the auth headers and paths the real provider requires and answers as it does,
including its error shapes. A mode makes it fail: "error500", "slow", "malformed", or
"redirect" (to `redirect_to`).
"""

from __future__ import annotations

import json
import threading
import time
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


@dataclass
class FakeProvider:
    family: str
    api_key: str
    mode: str = "ok"
    redirect_to: str = ""
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

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

    # --- the server ---------------------------------------------------------------------

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
