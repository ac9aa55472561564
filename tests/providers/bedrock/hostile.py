"""What a hostile Bedrock endpoint answers (tests/providers/hostile.py): the ids it really
lists, each status's exception, the model lists, the error body and headers, and streams in
AWS's binary event stream."""

from __future__ import annotations

from typing import Any

from tests.providers.bedrock.fake import aws_message
from tests.providers.servers import TEXT, with_echo

CONTENT_TYPE = "application/vnd.amazon.eventstream"

REAL_IDS = [
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "meta.llama3-1-70b-instruct-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
]

ERROR_KINDS = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    429: "ThrottlingException",
    500: "InternalServerException",
    529: "ServiceUnavailableException",
}


def model_list(ids: list[str] | None = None) -> dict[str, Any]:
    """Foundation models and inference profiles alike."""
    ids = ids or ["us.anthropic.claude-sonnet-4-5-20250929-v1:0"]
    return {
        "modelSummaries": [{"modelId": "anthropic.claude-sonnet-4-5-20250929-v1:0"}],
        "inferenceProfileSummaries": [{"inferenceProfileId": id_} for id_ in ids],
    }


def error(status: int, kind: str, echo: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The error body with `echo` in every field it has, and the headers it adds."""
    message = with_echo("The request was refused.", echo)
    payload = {"message": message, "Message": message, "__type": with_echo(kind, echo)}
    headers = {"x-amzn-ErrorType": f"{kind}:{echo}" if echo else kind}
    if echo:
        headers["x-amzn-ErrorMessage"] = echo
    return payload, headers


def odd_stream(echo: str) -> list[bytes]:
    """The echo where a delta belongs, and as a tool call's id, name and arguments and a
    thinking signature (what a translated answer passes on)."""
    tool = {"toolUse": {"toolUseId": echo, "name": echo}}
    return [
        aws_message("contentBlockDelta", {"delta": echo}),
        aws_message(
            "contentBlockDelta",
            {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": echo}}},
        ),
        aws_message("contentBlockStart", {"contentBlockIndex": 1, "start": tool}),
        aws_message(
            "contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": echo}}}
        ),
    ]


def stream(ending: str, echo: str) -> list[bytes]:
    events = [
        aws_message("messageStart", {"role": "assistant"}),
        aws_message("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": TEXT}}),
    ]
    if ending == "midstream":
        exception = aws_message("", {"message": echo}, exception=f"validationException {echo}")
        return [*events, exception]
    usage = {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4}
    return [
        *events,
        aws_message("contentBlockStop", {"contentBlockIndex": 0}),
        aws_message("messageStop", {"stopReason": echo if ending == "finish" else "end_turn"}),
        aws_message("metadata", {"usage": usage, "metrics": {"latencyMs": 1}}),
    ]
