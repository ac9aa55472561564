"""What a hostile Anthropic server answers (tests/providers/hostile.py): the ids it really
lists, each status's error type, the model list, the error body and streams."""

from __future__ import annotations

from typing import Any

from tests.providers.servers import SSE, TEXT, sse, with_echo

CONTENT_TYPE = SSE

REAL_IDS = ["claude-sonnet-4-5-20250929", "claude-opus-4-1"]

ERROR_KINDS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def model_list(ids: list[str] | None = None) -> dict[str, Any]:
    ids = ids or ["claude-sonnet-4-6"]
    return {
        "data": [{"type": "model", "id": id_, "display_name": id_} for id_ in ids],
        "has_more": False,
        "first_id": ids[0],
        "last_id": ids[-1],
    }


def error(status: int, kind: str, echo: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The error body with `echo` in every field it has, and the headers it adds."""
    payload = {
        "type": "error",
        "error": {
            "type": with_echo(kind, echo),
            "message": with_echo("Request refused.", echo),
        },
        "request_id": echo,
    }
    return payload, {}


def odd_stream(echo: str) -> list[bytes]:
    return [
        sse({"type": "message_start", "message": echo}, "message_start"),
        sse({"type": "content_block_delta", "delta": [echo]}, "content_block_delta"),
    ]


def stream(ending: str, echo: str) -> list[bytes]:
    message = {"id": "msg_hostile", "type": "message", "role": "assistant", "content": []}
    events = [
        sse(
            {"type": "message_start", "message": {**message, "usage": {"input_tokens": 3}}},
            "message_start",
        ),
        sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        ),
        sse(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": TEXT},
            },
            "content_block_delta",
        ),
    ]
    if ending == "midstream":
        error = {"type": f"invalid_key {echo}", "message": echo}
        return [*events, sse({"type": "error", "error": error}, "error")]
    finish = ending == "finish"
    delta = {"stop_reason": echo if finish else "end_turn", "stop_sequence": echo or None}
    return [
        *events,
        sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse(
            {"type": "message_delta", "delta": delta, "usage": {"output_tokens": 1}},
            "message_delta",
        ),
        sse({"type": "message_stop"}, "message_stop"),
    ]
