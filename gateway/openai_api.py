"""The gateway's OpenAI API under /gateway/openai/v1: the models list, chat completions and
Responses, for the models of the OpenAI family's types; errors in OpenAI's shape (the SDK's
types/shared/error_object.py), in our words."""

from __future__ import annotations

import json
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from chat.metered import gateway_names
from chat.model_list import usable_models
from gateway.calls import (
    caller_or_refusal,
    every_model,
    gateway_call,
    kind_of_status,
    method_refused,
    refused,
)
from llmadmin.providers.contract import RelayApi
from llmadmin.providers.errors import ProviderError

# The provider types whose models take OpenAI's request bodies.
OPENAI_TYPES = ("openai", "azure", "openai-compat", "openrouter", "vercel")

# Each kind of refusal as OpenAI's error type and code. A spent budget is OpenAI's own
# insufficient_quota: clients know it for a limit that waiting does not lift.
ERROR_CODES = {
    "authentication": ("invalid_request_error", "invalid_api_key"),
    "permission": ("invalid_request_error", "permission_denied"),
    "not_found": ("invalid_request_error", "model_not_found"),
    "invalid_request": ("invalid_request_error", None),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "no_endpoint": ("invalid_request_error", None),
    "budget_spent": ("insufficient_quota", "insufficient_quota"),
    "rate_limit": ("rate_limit_error", "rate_limit_exceeded"),
    "overloaded": ("server_error", "overloaded"),
    "timeout": ("server_error", "timeout"),
    "unavailable": ("server_error", "unavailable"),
}


def error_object(kind: str, message: str, param: str | None = None) -> dict[str, object]:
    error_type, code = ERROR_CODES.get(kind, ("server_error", None))
    return {"message": message, "type": error_type, "param": param, "code": code}


class ChatCompletionsWire:
    def error(
        self, status: int, kind: str, message: str, *, param: str | None = None
    ) -> HttpResponse:
        return JsonResponse({"error": error_object(kind, message, param)}, status=status)

    def stream_error(self, error: ProviderError) -> bytes:
        # A chunk with an "error" object: the SDK raises APIError on it (openai/_streaming.py);
        # no [DONE] follows, so no client takes the answer for complete.
        payload = {"error": error_object(kind_of_status(error.http_status), str(error))}
        return f"data: {json.dumps(payload)}\n\n".encode()


class ResponsesWire(ChatCompletionsWire):
    def stream_error(self, error: ProviderError) -> bytes:
        # Responses' `error` event (the SDK's ResponseErrorEvent), its error object nested as
        # well: the SDK raises APIError on an event holding one.
        error_fields = error_object(kind_of_status(error.http_status), str(error))
        payload = {**error_fields, "type": "error", "error": error_fields}
        return f"event: error\ndata: {json.dumps(payload)}\n\n".encode()


CHAT_COMPLETIONS_WIRE = ChatCompletionsWire()
RESPONSES_WIRE = ResponsesWire()


def serves(row: dict[str, Any]) -> bool:
    """The models that take OpenAI's own bodies (Responses reaches these only)."""
    return row["provider_type"] in OPENAI_TYPES


@csrf_exempt  # a POST is answered in the API's shape, not the CSRF check's page
def models(request: HttpRequest) -> HttpResponse:
    """This developer's models, every family's (Responses reaches OpenAI's family's only), by
    the names clients call them by."""
    if request.method != "GET":
        return method_refused(CHAT_COMPLETIONS_WIRE, "GET")
    try:
        caller = caller_or_refusal(request)
        if isinstance(caller, str):
            return refused(CHAT_COMPLETIONS_WIRE, caller)
        rows, _, _ = usable_models(caller.user)
    except DatabaseError:
        return refused(CHAT_COMPLETIONS_WIRE, "database")
    # Named among all their models: a name is the same in both APIs' lists.
    names = gateway_names(rows)
    data = [
        # No creation time is kept of a model: 0, as OpenAI-compatible servers without one say.
        {"id": names[row["id"]], "object": "model", "created": 0, "owned_by": row["provider_type"]}
        for row in rows
    ]
    return JsonResponse({"object": "list", "data": data})


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return method_refused(CHAT_COMPLETIONS_WIRE, "POST")
    return await gateway_call(
        request, wire=CHAT_COMPLETIONS_WIRE, api=RelayApi.CHAT_COMPLETIONS, serves=every_model
    )


@csrf_exempt
async def responses(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return method_refused(RESPONSES_WIRE, "POST")
    return await gateway_call(request, wire=RESPONSES_WIRE, api=RelayApi.RESPONSES, serves=serves)


@csrf_exempt
def no_endpoint(request: HttpRequest, path: str) -> HttpResponse:
    """Any other path under /gateway/openai/: OpenAI's 404, in its shape."""
    return refused(CHAT_COMPLETIONS_WIRE, "no_endpoint")
