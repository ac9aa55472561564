"""The fake of Anthropic's Messages API: its auth and API versions, model list pages, the
streamed answer (a thinking block first), the chat body it takes and what each Claude model
refuses (Bedrock's Claude models refuse the same)."""

from __future__ import annotations

import json
import re
import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.providers.servers import (
    Either,
    Range,
    Recorded,
    bearer_token,
    catalog_entry,
    loopback_server,
    schema_errors,
)

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

# How the type meets its fake: the server it answers as, and the path its base URL adds.
SERVERS = {"anthropic": ("anthropic", "")}
CHAT_PATHS = {"anthropic": r"/v1/messages"}


class AnthropicFake:
    """The family's answers; FakeProvider (tests/providers/fakes.py) holds the state."""

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


def claude_number(model: str) -> tuple[int, int] | None:
    match = re.search(r"claude-(?:opus|sonnet|haiku)-(\d)(?:-(\d))?(?:-|$|\.|@)", model)
    return (int(match[1]), int(match[2] or 0)) if match else None


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


# --- Messages as the gateway relays them ---------------------------------------------------
#
# The whole Messages body a client such as Claude Code sends (the SDK 2.14's
# MessageCreateParams and its block params): content blocks, tools, thinking blocks with
# their signatures, cache control. Checked by Anthropic's fake below and, in InvokeModel's
# shape, by Bedrock's (tests/providers/bedrock/fake.py).

CACHE_CONTROL = {"type!": ("ephemeral",), "ttl": ("5m", "1h")}
TEXT_BLOCK = {"type!": ("text",), "text!": str, "cache_control": CACHE_CONTROL, "citations": list}
BLOCKS = {
    "text": TEXT_BLOCK,
    "image": {
        "type!": ("image",),
        "source!": Either(
            (
                {
                    "type!": ("base64",),
                    "media_type!": ("image/jpeg", "image/png", "image/gif", "image/webp"),
                    "data!": str,
                },
                {"type!": ("url",), "url!": str},
            )
        ),
        "cache_control": CACHE_CONTROL,
    },
    "tool_use": {
        "type!": ("tool_use",),
        "id!": str,
        "name!": str,
        "input!": dict,
        "cache_control": CACHE_CONTROL,
    },
    "tool_result": {
        "type!": ("tool_result",),
        "tool_use_id!": str,
        "content": object,  # a string or text blocks: checked below
        "is_error": bool,
        "cache_control": CACHE_CONTROL,
    },
    "thinking": {"type!": ("thinking",), "thinking!": str, "signature!": str},
    "redacted_thinking": {"type!": ("redacted_thinking",), "data!": str},
}
TOOL = {
    "name!": str,
    "description": str,
    "input_schema!": dict,
    "cache_control": CACHE_CONTROL,
    "strict": bool,
    "type": ("custom",),
}
TOOL_CHOICE = {
    "type!": ("auto", "any", "tool", "none"),
    "name": str,
    "disable_parallel_tool_use": bool,
}
MESSAGES_FIELDS = {
    "max_tokens!": Range(int, 1, 10_000_000),
    "messages!": list,  # checked block by block below
    "system": list,  # or a string: checked below
    "stream": bool,
    "temperature": Range(float, 0, 1),
    "top_p": Range(float, 0, 1),
    "top_k": Range(int, 0, 10_000_000),
    "thinking": ANTHROPIC_THINKING,
    "output_config": {"effort": EFFORTS, "format": dict},
    "stop_sequences": [str],
    "metadata": {"user_id": str},
    "service_tier": ("auto", "standard_only"),
    "tools": [TOOL],
    "tool_choice": TOOL_CHOICE,
    "cache_control": CACHE_CONTROL,
}
# count_tokens takes neither max_tokens, nor sampling, nor stream (MessageCountTokensParams).
COUNT_FIELDS = {
    name: schema
    for name, schema in MESSAGES_FIELDS.items()
    if name.rstrip("!") not in ("max_tokens", "stream", "temperature", "top_p", "top_k")
    and name not in ("stop_sequences", "metadata", "service_tier")
} | {"messages!": list}

# The one signature this fake signs its thinking with: a thinking block sent back with any
# other is refused, as Anthropic refuses a changed one.
SIGNATURE = "c2lnbmF0dXJlLW9mLXRoZS1mYWtl"
# The tool input the fake's tool use streams, in input_json_delta fragments.
TOOL_INPUT = {"city": "Paris", "unit": "celsius"}
TOOL_USE_ID = "toolu_01fake"


def messages_errors(body: Any, fields: dict[str, Any]) -> list[str]:
    """What the Messages API refuses of a body (the model's own refusals apart)."""
    if not isinstance(body, dict):
        return ["body: expected an object"]
    errors = schema_errors(
        {name: value for name, value in body.items() if name not in ("messages", "system")},
        {name: schema for name, schema in fields.items() if name not in ("messages!", "system")},
        "body",
    )
    if "messages" not in body:
        errors.append("body.messages: required")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        errors += schema_errors(system, [TEXT_BLOCK], "body.system")
    messages = body.get("messages") or []
    for index, message in enumerate(messages):
        errors += message_errors(message, f"body.messages[{index}]", index == len(messages) - 1)
    if errors:
        return errors
    errors += tool_loop_errors(messages)
    thinking = body.get("thinking") or {}
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    if budget is not None and "max_tokens" in body and budget >= body["max_tokens"]:
        errors.append("max_tokens must be greater than thinking.budget_tokens")
    thinking_on = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    if thinking_on and (body.get("temperature") not in (None, 1) or "top_k" in body):
        errors.append("temperature and top_k may not be changed when thinking is enabled")
    choice = body.get("tool_choice") or {}
    # Anthropic's extended-thinking docs: with thinking, tool_choice auto or none only.
    if thinking_on and choice.get("type") in ("any", "tool"):
        errors.append("Thinking may not be enabled when tool_choice forces tool use.")
    if thinking_on:
        errors += unthought_tool_use(messages)
    tools = body.get("tools") or []
    for index, tool in enumerate(tools):
        if tool["input_schema"].get("type") != "object":
            errors.append(f"tools.{index}.custom.input_schema.type: Input should be 'object'")
    if choice.get("type") == "tool" and choice.get("name") not in [t["name"] for t in tools]:
        errors.append("tool_choice.name: Tool not found")
    return errors


def message_errors(message: Any, where: str, last: bool) -> list[str]:
    errors = schema_errors(message, {"role!": ("user", "assistant"), "content!": object}, where)
    if errors:
        return errors
    content = message["content"]
    # Empty content is refused but in a final assistant message (a prefill).
    if not content and not (last and message["role"] == "assistant"):
        return [f"{where}: all messages must have non-empty content"]
    if isinstance(content, str):
        return []
    if not isinstance(content, list):
        return [f"{where}.content: expected a string or a list"]
    for index, block in enumerate(content):
        at = f"{where}.content[{index}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in BLOCKS:
            errors.append(f"{at}.type: unknown block type")
            continue
        errors += schema_errors(block, BLOCKS[kind], at)
        if kind == "text" and block.get("text") == "":
            errors.append(f"{at}: text content blocks must be non-empty")
        if kind == "thinking" and block.get("signature") != SIGNATURE:
            errors.append(f"{at}: Invalid `signature` in `thinking` block")
        if kind == "tool_result":
            inner = block.get("content")
            if inner is not None and not isinstance(inner, str):
                errors += schema_errors(inner, [Either((TEXT_BLOCK, BLOCKS["image"]))], at)
    return errors


def blocks_of(message: dict, kind: str) -> list[dict]:
    content = message["content"]
    return (
        [block for block in content if block["type"] == kind] if isinstance(content, list) else []
    )


def tool_loop_errors(messages: list[dict]) -> list[str]:
    """The API's tool loop (Anthropic's tool-use docs): each assistant message's tool uses
    answered by tool results in the next message, first in its content; no result of a call
    not made just before."""
    errors = []
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        before = messages[index - 1] if index else None
        called = {
            block["id"]
            for block in (blocks_of(before, "tool_use") if before else [])
            if before["role"] == "assistant"
        }
        results = blocks_of(message, "tool_result")
        answered = {block["tool_use_id"] for block in results}
        if message["role"] == "user" and answered - called:
            errors.append(
                f"{where}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                "each must have a corresponding `tool_use` block in the previous message."
            )
        if called and called - answered:
            errors.append(
                f"{where}: `tool_use` ids were found without `tool_result` blocks immediately after"
            )
        kinds = [block["type"] for block in message["content"]] if results else []
        if kinds[: len(results)] != ["tool_result"] * len(results):
            errors.append(f"{where}.content: tool_result blocks must come first")
    return errors


def unthought_tool_use(messages: list[dict]) -> list[str]:
    """With thinking on, the API refuses a final assistant message with tool use that does
    not start with a thinking block (its answer continues that turn): the 400 users report,
    e.g. sigoden/llm-functions#222."""
    assistant = [message for message in messages if message["role"] == "assistant"]
    if not assistant or not blocks_of(assistant[-1], "tool_use"):
        return []
    first = assistant[-1]["content"][0]["type"]
    if first in ("thinking", "redacted_thinking"):
        return []
    return [
        f"Expected `thinking` or `redacted_thinking`, but found `{first}`. When `thinking` is "
        "enabled, a final `assistant` message must start with a thinking block."
    ]


def answer_events(body: dict, model: str, reply: tuple[str, ...], input_tokens: int) -> list[dict]:
    """The Messages events of the fake's answer to this body: a tool use when tools are
    offered and no tool result came back yet; otherwise text, after a signed thinking block
    when thinking is on."""
    messages = body["messages"]
    last = messages[-1]["content"] if messages else ""
    answered_tool = isinstance(last, list) and any(
        block.get("type") == "tool_result" for block in last
    )
    thinking = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
    usage = {
        "input_tokens": input_tokens,
        "cache_read_input_tokens": 4,
        "cache_creation_input_tokens": 2,
        "output_tokens": 1,
    }
    message = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    events: list[dict] = [{"type": "message_start", "message": message}, {"type": "ping"}]
    index = 0
    if thinking:
        events += [
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "Let me see."},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "signature_delta", "signature": SIGNATURE},
            },
            {"type": "content_block_stop", "index": 0},
        ]
        index = 1
    if body.get("tools") and not answered_tool:
        arguments = json.dumps(TOOL_INPUT)
        events.append(
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {
                    "type": "tool_use",
                    "id": TOOL_USE_ID,
                    "name": body["tools"][0]["name"],
                    "input": {},
                },
            }
        )
        events += [
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": arguments[start : start + 7]},
            }
            for start in range(0, len(arguments), 7)
        ]
        stop_reason = "tool_use"
    else:
        events.append(
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            }
        )
        events += [
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "text_delta", "text": text},
            }
            for text in reply
        ]
        stop_reason = "end_turn"
    details = {"output_tokens_details": {"thinking_tokens": 3}} if thinking else {}
    events += [
        {"type": "content_block_stop", "index": index},
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": 9, **details},
        },
        {"type": "message_stop"},
    ]
    return events


def whole_message(events: list[dict]) -> dict:
    """The answer not streamed: its events put together, as the API returns it."""
    message = dict(events[0]["message"])
    blocks: list[dict] = []
    partial = ""
    for event in events[1:]:
        kind, delta = event["type"], event.get("delta") or {}
        if kind == "content_block_start":
            blocks.append(dict(event["content_block"]))
            partial = ""
        elif kind == "content_block_delta":
            block = blocks[-1]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            else:
                partial += delta["partial_json"]
                block["input"] = json.loads(partial) if partial.endswith("}") else {}
        elif kind == "message_delta":
            message["stop_reason"] = delta["stop_reason"]
            message["usage"] = {**message["usage"], **event["usage"]}
    return {**message, "content": blocks}


# How a relayed answer goes wrong: after its first text or tool delta, the connection drops
# ("drop"), a line of garbage comes ("garbled"), the provider goes quiet ("stall"), or its
# error event comes ("midstream_error"). Or the request is refused first, the key echoed in
# the body: (status, error type).
BROKEN = ("drop", "garbled", "stall", "midstream_error")
REFUSALS = {
    "rate429": (429, "rate_limit_error"),
    "overloaded529": (529, "overloaded_error"),
    "error500": (500, "api_error"),
    "unauthorized": (401, "authentication_error"),
}
STALL_SECONDS = 3.0
# Where a stalled answer goes quiet: the server waits for the caller to hang up.
STALL = b""


def broken_after_start(events: list[bytes], mode: str, marker: bytes) -> Iterator[bytes]:
    """The events up to the first that holds `marker` (a delta), then the `mode`'s failure."""
    for event in events:
        yield event
        if marker in event and mode in BROKEN:
            if mode == "garbled":
                yield b"event: content_block_delta\ndata: {not json\n\n"
            elif mode == "stall":
                yield STALL
            elif mode == "midstream_error":
                error = {"type": "error", "error": {"type": "overloaded_error", "message": "x"}}
                yield f"event: error\ndata: {json.dumps(error)}\n\n".encode()
            return


@dataclass
class MessagesFake:
    """Anthropic's Messages API for the gateway: /v1/messages streamed and not, and
    /v1/messages/count_tokens; the key as x-api-key or a Bearer token; the API versions the
    fake knows, each refusing its removed fields; any anthropic-beta. Each request recorded."""

    api_key: str
    mode: str = "ok"
    reply: tuple[str, ...] = ("Hello", " world")
    input_tokens: int = 20
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    # Set when a caller hangs up on a stalled answer.
    hung_up: threading.Event = field(default_factory=threading.Event)

    def answer(
        self, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, str, Iterator[bytes]]:
        if self.api_key not in (headers.get("x-api-key"), bearer_token(headers)):
            return error_answer(401, "authentication_error", "invalid x-api-key")
        version = headers.get("anthropic-version")
        if version not in ANTHROPIC_VERSIONS:
            return error_answer(400, "invalid_request_error", "anthropic-version")
        if self.mode in REFUSALS:
            status, kind = REFUSALS[self.mode]
            return error_answer(status, kind, f"refused; the key was {self.api_key}")
        if path == "/v1/messages/count_tokens":
            errors = messages_errors(body, {"model!": str, **COUNT_FIELDS})
            if errors:
                return error_answer(400, "invalid_request_error", "; ".join(errors))
            return 200, "application/json", iter([json.dumps({"input_tokens": 42}).encode()])
        if path != "/v1/messages":
            return error_answer(404, "not_found_error", path)
        errors = messages_errors(body, {"model!": str, **MESSAGES_FIELDS})
        errors += [
            f"{name}: Extra inputs are not permitted"
            for name in ANTHROPIC_REMOVED_FIELDS[version]
            if isinstance(body, dict) and name in body
        ]
        if not errors:
            model = body["model"]
            errors = claude_refusals(model, catalog_entry("anthropic", model), body, "anthropic")
        if errors:
            return error_answer(400, "invalid_request_error", "; ".join(errors))
        events = answer_events(body, body["model"], self.reply, self.input_tokens)
        if not body.get("stream"):
            return 200, "application/json", iter([json.dumps(whole_message(events)).encode()])
        frames = [
            f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode() for event in events
        ]
        return 200, "text/event-stream", broken_after_start(frames, self.mode, b'_delta"')


def error_answer(status: int, kind: str, message: str) -> tuple[int, str, Iterator[bytes]]:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return status, "application/json", iter([json.dumps(body).encode()])


@contextmanager
def serve_messages(fake: Any) -> Iterator[Any]:
    """Serve a Messages fake (Anthropic's, or Bedrock's InvokeModel) on a free loopback port."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if hasattr(fake, "check_signature"):
                fake.check_signature(self, headers, raw)
            body = json.loads(raw or b"null")
            path = urlsplit(self.path).path
            fake.requests.append(Recorded("POST", path, {}, headers, body))
            status, content_type, chunks = fake.answer(path, headers, body)
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.end_headers()
                for chunk in chunks:  # no Content-Length: the end is the connection's
                    if chunk is STALL:
                        self.wait_for_hang_up()
                        return
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                # The caller hung up before the answer went quiet (a fast one, on a slow
                # machine): a hang-up all the same.
                fake.hung_up.set()

        def wait_for_hang_up(self) -> None:
            """Quiet for STALL_SECONDS, or until the caller closes the connection: then
            `hung_up` is set."""
            readable, _, _ = select.select([self.connection], [], [], STALL_SECONDS)
            if not readable:
                return
            try:
                hung_up = not self.connection.recv(1)
            except ConnectionResetError:
                # Closed with our events still unread on its side: a hang-up all the same.
                hung_up = True
            if hung_up:
                fake.hung_up.set()

        def log_message(self, *args: Any) -> None:
            pass

    with loopback_server(Handler) as url:
        fake.url = url
        yield fake
