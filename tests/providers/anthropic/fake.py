"""The fake of Anthropic's Messages API: its auth and API versions, model list pages, the
streamed answer (a thinking block first), the chat body it takes and what each Claude model
refuses (Bedrock's Claude models refuse the same)."""

from __future__ import annotations

import re
from typing import Any

from tests.providers.servers import Range, bearer_token

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
