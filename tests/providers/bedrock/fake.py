"""The fake of Amazon Bedrock: a bearer API key or a SigV4 signature checked as AWS checks it,
the model and inference-profile lists, ConverseStream in AWS's binary event stream, the body
botocore's own service model accepts, what Converse checks beyond it (the user's turn first,
tool calls and their results across turns, images, blank text), what Nova models refuse
(Claude's refusals are Anthropic's: tests/providers/anthropic/fake.py, and Claude's with
thinking on here), and a tool loop answered (tool_loop_answer)."""

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
from botocore.client import BaseClient
from botocore.config import Config
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

# The Bedrock API key the tests' fakes take, and botocore sends (conftest.py).
KEY = "ABSK-TESTSECRET-42"
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
        body = self.requests[-1].body
        if self.mode == "ok" and "toolConfig" in body:
            return tool_loop_answer(body, self.input_tokens)
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


# A tool loop as Converse streams it: while the last turn holds no tool results, a call of
# the first tool (after a line of text, and Claude's signed thinking where it is on), its
# input in fragments as models stream it; then a text that quotes the results.
TOOL_USE_ID_SENT = "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"
TOOL_INPUT = {"city": "Paris", "days": 2}
FRAGMENT = 7
THOUGHT = ("Weather needs ", "the tool.")
SIGNATURE = "EqQBCkYIBxgCKkBsig=="


def tool_loop_answer(body: dict, input_tokens: int) -> list[bytes]:
    last = body["messages"][-1]["content"]
    results = [block["toolResult"] for block in last if "toolResult" in block]
    if results:
        quoted = " ".join(
            item["text"] for result in results for item in result["content"] if "text" in item
        )
        text = [{"text": "The tool said: "}, {"text": quoted}]
        return answer_blocks([(None, text)], "end_turn", input_tokens)
    blocks: list[tuple[dict | None, list[dict]]] = []
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking") or {}
    if thinking.get("type") in ("enabled", "adaptive"):
        reasoning = [{"reasoningContent": {"text": text}} for text in THOUGHT]
        blocks.append((None, [*reasoning, {"reasoningContent": {"signature": SIGNATURE}}]))
    blocks.append((None, [{"text": "Let me look."}]))
    tool = body["toolConfig"]["tools"][0]["toolSpec"]["name"]
    arguments = json.dumps(TOOL_INPUT)
    fragments = [
        {"toolUse": {"input": arguments[at : at + FRAGMENT]}}
        for at in range(0, len(arguments), FRAGMENT)
    ]
    blocks.append(({"toolUse": {"toolUseId": TOOL_USE_ID_SENT, "name": tool}}, fragments))
    return answer_blocks(blocks, "tool_use", input_tokens)


def answer_blocks(
    blocks: list[tuple[dict | None, list[dict]]], stop: str, input_tokens: int
) -> list[bytes]:
    """A Converse answer of these content blocks (each its start, where it has one, and its
    deltas), then the stop reason and the usage."""
    events = [aws_message("messageStart", {"role": "assistant"})]
    for index, (start, deltas) in enumerate(blocks):
        if start is not None:
            events.append(
                aws_message("contentBlockStart", {"contentBlockIndex": index, "start": start})
            )
        events += [
            aws_message("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})
            for delta in deltas
        ]
        events.append(aws_message("contentBlockStop", {"contentBlockIndex": index}))
    usage = {"inputTokens": input_tokens, "outputTokens": 5, "totalTokens": input_tokens + 5}
    return [
        *events,
        aws_message("messageStop", {"stopReason": stop}),
        aws_message("metadata", {"usage": usage, "metrics": {"latencyMs": 120}}),
    ]


def botocore_client(service: str, tls_fake: Any) -> BaseClient:
    """A botocore client of the fake (a FakeProvider served over TLS: botocore sends a Bedrock
    API key over HTTPS only)."""
    return botocore.session.get_session().create_client(
        service,
        region_name="us-east-1",
        endpoint_url=tls_fake.url,
        verify=False,
        config=Config(retries={"max_attempts": 1}),
    )


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
    errors += schema_errors(checked, BEDROCK_RANGES, "body")
    # What botocore leaves to the service: patterns, enums, lengths, and the rules across
    # the conversation's turns; they read a body of the right shape.
    return errors or content_errors(body) or tool_errors(body) or thinking_errors(body)


# Converse's shapes that botocore's validator doesn't check (it checks minimums only):
# ToolUseId and ToolName's patterns and maximum lengths, ImageFormat, ToolResultStatus.
TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")
TOOL_RESULT_STATUSES = ("success", "error")


def content_errors(body: dict) -> list[str]:
    """The conversation begun by the user, and each block of each message as Converse takes
    it: text not blank (Converse's own messages), images as base64 bytes of a known format,
    tool calls from the assistant with an object as input, tool results from the user."""
    messages = body.get("messages") or []
    if messages and messages[0]["role"] != "user":
        return [
            "A conversation must start with a user message. Try again with a conversation that "
            "starts with a user message."
        ]
    errors = []
    for i, message in enumerate(messages):
        role = message["role"]
        for j, block in enumerate(message["content"]):
            where = f"messages.{i}.content.{j}"
            if "text" in block and not block["text"].strip():
                errors.append(
                    f"The text field in the ContentBlock object at {where} is blank. Add text "
                    "to the text field, and try again."
                )
            if "image" in block:
                errors += image_errors(block["image"], where)
            if "toolUse" in block:
                use = block["toolUse"]
                if role != "assistant":
                    errors.append(f"{where}: toolUse blocks come from the assistant.")
                if not TOOL_USE_ID.fullmatch(use["toolUseId"]):
                    errors.append(f"{where}.toolUse.toolUseId: does not match the pattern.")
                if not TOOL_NAME.fullmatch(use["name"]):
                    errors.append(f"{where}.toolUse.name: does not match the pattern.")
                if not isinstance(use["input"], dict):
                    errors.append(f"{where}.toolUse.input: must be a JSON object.")
            if "toolResult" in block:
                result = block["toolResult"]
                if role != "user":
                    errors.append(f"{where}: toolResult blocks come from the user.")
                if result.get("status", "success") not in TOOL_RESULT_STATUSES:
                    errors.append(f"{where}.toolResult.status: not one of success, error.")
                for k, item in enumerate(result["content"]):
                    if "image" in item:
                        errors += image_errors(item["image"], f"{where}.toolResult.content.{k}")
            if "reasoningContent" in block and role != "assistant":
                errors.append(f"{where}: reasoningContent blocks come from the assistant.")
    return errors


def image_errors(image: dict, where: str) -> list[str]:
    errors = []
    if image["format"] not in IMAGE_FORMATS:
        errors.append(f"{where}.image.format: not one of {', '.join(IMAGE_FORMATS)}.")
    data = image["source"].get("bytes")
    try:
        valid = isinstance(data, str) and bool(base64.b64decode(data, validate=True))
    except ValueError:
        valid = False
    if not valid:
        errors.append(f"{where}.image.source.bytes: not base64 of an image.")
    return errors


def tool_errors(body: dict) -> list[str]:
    """Tools as Converse takes them: a toolConfig wherever the messages hold tool calls or
    results (Converse's own message), each tool's name Converse's pattern, a tool choice of
    one of them; each toolResult answers a toolUse of the assistant turn before it, and each
    toolUse is answered in the next user turn."""
    messages = body.get("messages") or []
    blocks = [block for message in messages for block in message["content"]]
    config = body.get("toolConfig")
    if config is None:
        if any("toolUse" in block or "toolResult" in block for block in blocks):
            return [
                "The toolConfig field must be defined when using toolUse and toolResult "
                "content blocks."
            ]
        return []
    names = [tool["toolSpec"]["name"] for tool in config["tools"] if "toolSpec" in tool]
    errors = [
        f"toolConfig.tools: {name!r} does not match the pattern."
        for name in names
        if not TOOL_NAME.fullmatch(name)
    ]
    chosen = (config.get("toolChoice") or {}).get("tool")
    if chosen and chosen["name"] not in names:
        errors.append(f"toolConfig.toolChoice.tool.name: {chosen['name']!r} is not a tool.")
    asked: set[str] = set()
    for i, message in enumerate(messages):
        uses = [b["toolUse"]["toolUseId"] for b in message["content"] if "toolUse" in b]
        answers = [b["toolResult"]["toolUseId"] for b in message["content"] if "toolResult" in b]
        if message["role"] == "user":
            if any(answer not in asked for answer in answers):
                errors.append(
                    f"messages.{i}.content: a toolResult answers no toolUse of the previous turn."
                )
            if unanswered := sorted(asked - set(answers)):
                errors.append(
                    f"Expected toolResult blocks at messages.{i}.content for the following "
                    f"Ids: {', '.join(unanswered)}"
                )
            asked = set()
        else:
            asked = set(uses)
    return errors


def thinking_errors(body: dict) -> list[str]:
    """Claude's own refusals with thinking on (only Claude takes Anthropic's thinking in the
    additional fields): the budget is part of max tokens, a tool call can't be forced while
    thinking (as the Anthropic fake: "thinking isn't compatible with forced tool use",
    Anthropic's extended-thinking docs, which name no exception for adaptive), and a final
    assistant turn with tool calls must begin with its signed thinking (the same docs)."""
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking") or {}
    if thinking.get("type") not in ("enabled", "adaptive"):
        return []
    errors = []
    max_tokens = (body.get("inferenceConfig") or {}).get("maxTokens")
    budget = thinking.get("budget_tokens")
    if budget is not None and max_tokens is not None and budget >= max_tokens:
        errors.append("max_tokens must be greater than thinking.budget_tokens")
    choice = (body.get("toolConfig") or {}).get("toolChoice") or {}
    if "any" in choice or "tool" in choice:
        errors.append("Thinking may not be enabled when tool_choice forces tool use.")
    assistant = [m for m in body.get("messages") or [] if m["role"] == "assistant"]
    last = assistant[-1]["content"] if assistant else []
    if any("toolUse" in block for block in last):
        reasoning = last[0].get("reasoningContent", {}).get("reasoningText", {})
        if not reasoning.get("signature"):
            errors.append(
                "messages: Expected `thinking` or `redacted_thinking`, but found `tool_use`. "
                "When `thinking` is enabled, a final `assistant` message must start with a "
                "thinking block."
            )
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
