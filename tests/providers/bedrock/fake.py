"""The fake of Amazon Bedrock: a bearer API key or a SigV4 signature checked as AWS checks it,
the model and inference-profile lists, ConverseStream in AWS's binary event stream, the body
botocore's own service model accepts and what Nova models refuse (Claude's refusals are
Anthropic's: tests/providers/anthropic/fake.py)."""

from __future__ import annotations

import base64
import datetime
import hmac
import json
import re
import struct
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.validate import ParamValidator

from tests.providers.anthropic.fake import (
    ANTHROPIC_THINKING,
    MESSAGES_FIELDS,
    REFUSALS,
    answer_events,
    claude_refusals,
    messages_errors,
    whole_message,
)
from tests.providers.servers import Range, Recorded, catalog_entry, schema_errors

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

# How the type meets its fake: the server it answers as, and the path its base URL adds.
SERVERS = {"bedrock": ("bedrock", "")}
CHAT_PATHS = {"bedrock": r"/model/[^/]+/converse-stream"}


class BedrockFake:
    """The family's answers; FakeProvider (tests/providers/fakes.py) holds the state."""

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


# --- Claude's Messages body through InvokeModel, as the gateway relays it -----------------
#
# AWS's "Anthropic Claude Messages API" page for Bedrock: the body is Anthropic's without
# `model` (in the URL) and `stream` (the action says it), with anthropic_version
# "bedrock-2023-05-31" and the betas as an `anthropic_beta` list. The stream's `chunk`
# events carry each Messages event's JSON as base64 `bytes` (botocore's PayloadPart), the
# last with Bedrock's invocation metrics. CountTokens takes the InvokeModel body as a blob,
# base64 in its JSON (botocore's rest-json serializer).

INVOKE_FIELDS = {
    **{name: schema for name, schema in MESSAGES_FIELDS.items() if name != "stream"},
    "anthropic_version!": ("bedrock-2023-05-31",),
    "anthropic_beta": [str],
}
INVOKE_PATH = re.compile(r"/model/([^/]+)/(invoke|invoke-with-response-stream|count-tokens)")
COUNT_TOKENS = (
    botocore.session.get_session()
    .get_service_model("bedrock-runtime")
    .operation_model("CountTokens")
    .input_shape
)


@dataclass
class InvokeFake(BedrockFake):
    """Bedrock's InvokeModel, InvokeModelWithResponseStream and CountTokens for Claude: a
    Bedrock API key or a SigV4 signature (BedrockFake's check), the body checked as AWS and
    Claude check it. Each request recorded."""

    api_key: str = ""
    aws_access_key_id: str = ""
    aws_secret_access_key: str = ""
    aws_session_token: str = ""
    mode: str = "ok"
    reply: tuple[str, ...] = ("Hello", " world")
    input_tokens: int = 20
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def answer(self, path: str, headers: dict[str, str], body: Any) -> tuple[int, str, Any]:
        bearer = self.api_key and headers.get("authorization") == f"Bearer {self.api_key}"
        if not (bearer or headers.get(SIGNATURE_VERDICT) == "valid"):
            return aws_error(403, "UnrecognizedClientException", "The security token is invalid.")
        match = INVOKE_PATH.fullmatch(path)
        if not match:
            return aws_error(404, "UnknownOperationException", "Not found")
        if self.mode in REFUSALS:
            status = REFUSALS[self.mode][0]
            kind = {429: "ThrottlingException", 529: "ServiceUnavailableException"}.get(
                status, "InternalServerException"
            )
            return aws_error(status, kind, f"refused; the key was {self.api_key}")
        model, action = unquote(match[1]), match[2]
        if action == "count-tokens":
            report = ParamValidator().validate({"modelId": model, **body}, COUNT_TOKENS)
            if report.has_errors():
                return aws_error(400, "ValidationException", report.generate_report())
            body = json.loads(base64.b64decode(body["input"]["invokeModel"]["body"]))
        # Claude's own refusals: the body is Anthropic's, not Converse's.
        entry = catalog_entry("bedrock", model)
        errors = messages_errors(body, INVOKE_FIELDS) or claude_refusals(
            model, entry, body, "anthropic"
        )
        if errors:
            return aws_error(400, "ValidationException", "; ".join(errors))
        if action == "count-tokens":
            return 200, "application/json", [json.dumps({"inputTokens": 42}).encode()]
        events = answer_events(body, model, self.reply, self.input_tokens)
        events[-1]["amazon-bedrock-invocationMetrics"] = BEDROCK_METRICS
        if action == "invoke":
            return 200, "application/json", [json.dumps(whole_message(events)).encode()]
        chunks = [
            aws_message("chunk", {"bytes": base64.b64encode(json.dumps(event).encode()).decode()})
            for event in events
        ]
        if self.mode == "midstream_error":
            throttled = aws_message("", {"message": "slow down"}, exception="throttlingException")
            return 200, EVENT_STREAM, [*chunks[:-3], throttled]
        if self.mode == "drop":
            return 200, EVENT_STREAM, chunks[:-3]
        if self.mode == "garbled":
            return 200, EVENT_STREAM, [*chunks[:-3], b"\x00\x00\x00\x10garbage!garbage!"]
        return 200, EVENT_STREAM, chunks


EVENT_STREAM = "application/vnd.amazon.eventstream"
# What Bedrock adds to Claude's message_stop event.
BEDROCK_METRICS = {
    "inputTokenCount": 20,
    "outputTokenCount": 9,
    "invocationLatency": 120,
    "firstByteLatency": 40,
}


def aws_error(status: int, kind: str, message: str) -> tuple[int, str, list[bytes]]:
    return status, "application/json", [json.dumps({"message": message, "__type": kind}).encode()]
