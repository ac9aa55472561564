"""What a hostile chat-completions server answers (tests/providers/hostile.py): the ids such
servers really list, each status's error kind, the model list, the error body and streams."""

from __future__ import annotations

from typing import Any

from tests.providers.servers import SSE, TEXT, sse, with_echo

CONTENT_TYPE = SSE

# Model ids the family's servers really list, of every shape a model id takes.
REAL_IDS = [
    "gpt-5",
    "ft:gpt-4o-mini-2024-07-18:acme:support:A1b2C3d4",  # a fine-tune
    "openai/gpt-oss-120b:free",  # OpenRouter
    "~anthropic/claude-sonnet-latest",  # an OpenRouter alias
    "support-bot_v2.1",  # an Azure deployment name
    "accounts/fireworks/models/llama-v3p1-8b-instruct",
    "qwen2.5-coder:32b",  # Ollama
    "anthropic/claude-3.5-sonnet@20240620",
]

# The family's own name for the error of a status.
ERROR_KINDS = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    529: "server_error",
}


def model_list(ids: list[str] | None = None) -> dict[str, Any]:
    # OpenRouter's /key and Vercel's /credits only need JSON.
    ids = ids or ["gpt-5"]
    return {"object": "list", "data": [{"id": id_, "object": "model"} for id_ in ids]}


def error(status: int, kind: str, echo: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The error body with `echo` in every field it has, and the headers it adds."""
    payload = {
        "error": {
            "message": with_echo("Incorrect API key provided:", echo),
            "type": with_echo(kind, echo),
            "code": echo or None,
            "param": echo or None,
        }
    }
    return payload, {}


def odd_stream(echo: str) -> list[bytes]:
    return [sse({"choices": echo}), sse({"choices": [echo]}), sse({"usage": echo})]


def stream(ending: str, echo: str) -> list[bytes]:
    chunk = {"id": "chatcmpl-hostile", "object": "chat.completion.chunk", "model": "m"}
    delta = {"role": "assistant", "content": TEXT}
    events = [sse({**chunk, "choices": [{"index": 0, "delta": delta}]})]
    if ending == "midstream":
        error = {"type": f"invalid_key {echo}", "code": echo, "message": echo}
        return [*events, sse({"error": error})]
    if ending == "echo_text":
        said = {"content": f" Your key is {echo}."}
        events.append(sse({**chunk, "choices": [{"index": 0, "delta": said}]}))
    reason = echo if ending == "finish" else "stop"
    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    return [
        *events,
        sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}),
        sse({**chunk, "choices": [], "usage": usage}),
        sse("[DONE]"),
    ]
