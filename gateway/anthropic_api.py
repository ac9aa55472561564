"""The gateway's Anthropic API, under /gateway/anthropic: Messages (streamed and not), its
token count and the model list, for Anthropic's models and Claude on Bedrock.

Errors are Anthropic's shape, `{"type": "error", "error": {"type", "message"}}`, with our
words; within a stream, an `error` event of that JSON, which the SDK raises on.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from chat.metered import failover_events, gateway_names
from chat.model_list import usable_models
from gateway.calls import (
    caller_or_refusal,
    counted_for,
    decided,
    every_model,
    gateway_call,
    kind_of_status,
    method_refused,
    provider_refusal,
    refused,
    request_json,
)
from llmadmin.providers.bedrock import is_claude
from llmadmin.providers.contract import Raw, Relay, RelayApi
from llmadmin.providers.errors import ProviderError

# The client's headers passed on as sent (Anthropic's advice to gateways).
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")

# Anthropic's error type for each kind of refusal (the SDK's types/shared/error_type.py, and
# request_too_large from Anthropic's errors page).
ERROR_TYPES = {
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "invalid_request": "invalid_request_error",
    "request_too_large": "request_too_large",
    "no_endpoint": "not_found_error",
    "rate_limit": "rate_limit_error",
    # A spent budget is a rate limit that waiting a moment does not lift: x-should-retry.
    "budget_spent": "rate_limit_error",
    "overloaded": "overloaded_error",
    "timeout": "timeout_error",
}
# Of a model whose release date we don't keep (the SDK: "an epoch value if the release date
# is unknown").
UNKNOWN_DATE = "1970-01-01T00:00:00Z"


def error_json(kind: str, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(kind, "api_error"), "message": message},
    }


class AnthropicWire:
    def error(
        self, status: int, kind: str, message: str, *, param: str | None = None
    ) -> HttpResponse:
        # Anthropic's error has no field for `param`: the message names the field (a
        # translation's family may say it in `param` only).
        if param and not message.startswith(f"{param}:"):
            message = f"{param}: {message}"
        return JsonResponse(error_json(kind, message), status=status)

    def stream_error(self, error: ProviderError) -> bytes:
        data = json.dumps(error_json(kind_of_status(error.http_status), str(error)))
        return f"event: error\ndata: {data}\n\n".encode()


WIRE = AnthropicWire()


def forwarded(request: HttpRequest) -> dict[str, str]:
    return {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}


def serves(row: dict[str, Any]) -> bool:
    """The models that take Anthropic's Messages body as sent: Anthropic's, and Claude on
    Bedrock (InvokeModel takes that body for Claude only). count_tokens reaches these only."""
    return row["provider_type"] == "anthropic" or (
        row["provider_type"] == "bedrock" and is_claude(row["identifier"])
    )


@csrf_exempt
async def messages(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return method_refused(WIRE, "POST")
    # Every model: other families' (and Bedrock's models but Claude) translated.
    return await gateway_call(
        request, wire=WIRE, api=RelayApi.MESSAGES, serves=every_model, headers=forwarded(request)
    )


@csrf_exempt
async def count_tokens(request: HttpRequest) -> HttpResponse:
    """The model's count of a request's input tokens: the developer's access and requests per
    minute are checked, not their budget, and nothing is recorded (it costs nothing)."""
    if request.method != "POST":
        return method_refused(WIRE, "POST")
    read = request_json(request, WIRE)
    if isinstance(read, HttpResponse):
        return read
    body, name = read
    named = await decided(WIRE, counted_for, request, name, serves)
    if isinstance(named, HttpResponse):
        return named
    model = named[1].model
    relay = Relay(api=RelayApi.COUNT_TOKENS, body=body, headers=forwarded(request))
    try:
        # The provider's answer is {"input_tokens": n} of our making (the provider layer's).
        answer = [
            event.data
            async for event in failover_events(
                model.provider, lambda client: client.relay_call(model.settings(), relay)
            )
            if isinstance(event, Raw)
        ]
    except ProviderError as error:
        return provider_refusal(WIRE, error)
    return HttpResponse(b"".join(answer), content_type="application/json")


@csrf_exempt  # a POST is answered in the API's shape, not the CSRF check's page
def models(request: HttpRequest) -> HttpResponse:
    """This developer's models, every family's, in Anthropic's list shape (one page)."""
    if request.method != "GET":
        return method_refused(WIRE, "GET")
    try:
        caller = caller_or_refusal(request)
        if isinstance(caller, str):
            return refused(WIRE, caller)
        rows = usable_models(caller.user)[0]
    except DatabaseError:
        return refused(WIRE, "database")
    names = gateway_names(rows)
    data = [
        {
            "type": "model",
            "id": names[row["id"]],
            "display_name": row["display_name"],
            "created_at": UNKNOWN_DATE,
            "lifecycle": "active",
            "max_input_tokens": row["context_limit"],
        }
        for row in rows
    ]
    return JsonResponse(
        {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


@csrf_exempt
def no_endpoint(request: HttpRequest, path: str) -> HttpResponse:
    """Any other path under /gateway/anthropic/: Anthropic's 404, in its shape."""
    return refused(WIRE, "no_endpoint")
