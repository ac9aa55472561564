"""What a hostile Gemini server answers (tests/providers/hostile.py): the ids it really lists,
each status's error status, the model list, the error body and streams."""

from __future__ import annotations

from typing import Any

from tests.providers.servers import SSE, TEXT, sse, with_echo

CONTENT_TYPE = SSE

REAL_IDS = ["gemini-2.5-pro", "gemini-2.0-flash-001", "tunedModels/support-bot-7f3k"]

ERROR_KINDS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    529: "UNAVAILABLE",
}


def model_list(ids: list[str] | None = None) -> dict[str, Any]:
    ids = ids or ["gemini-2.5-pro"]
    return {
        "models": [
            {
                "name": f"models/{id_}",
                "inputTokenLimit": 1_048_576,
                "supportedGenerationMethods": ["generateContent"],
            }
            for id_ in ids
        ]
    }


def error(status: int, kind: str, echo: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The error body with `echo` in every field it has, and the headers it adds."""
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID" if status == 400 else kind,
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com", "key": echo},
        }
    ]
    if echo:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": echo,
            }
        )
    payload = {
        "error": {
            "code": echo or status,
            "message": with_echo("API key not valid.", echo),
            "status": with_echo(kind, echo),
            "details": details,
        }
    }
    return payload, {}


def odd_stream(echo: str) -> list[bytes]:
    return [sse({"candidates": [echo]}), sse({"candidates": [{"content": [echo]}]})]


def stream(ending: str, echo: str) -> list[bytes]:
    content = {"parts": [{"text": TEXT}], "role": "model"}
    events = [sse({"candidates": [{"content": content, "index": 0}]})]
    if ending == "midstream":
        return [*events, sse({"error": {"code": echo, "message": echo, "status": echo}})]
    candidate: dict[str, Any] = {
        "content": {"parts": [{"text": ""}], "role": "model"},
        "finishReason": echo if ending == "finish" else "STOP",
        "index": 0,
    }
    if echo:
        candidate["finishMessage"] = echo
    usage = {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4}
    return [*events, sse({"candidates": [candidate], "usageMetadata": usage})]
