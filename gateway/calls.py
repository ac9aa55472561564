"""A gateway request from start to end, whichever API it speaks: the token, the model, the
budget, then the provider's answer passed on; each API's module (openai_api, anthropic_api)
says how its requests, lists and errors look on the wire.

Everything is decided before any byte goes to the provider: a refused request costs nothing.
A streamed answer's status is chosen once the provider's answer has begun: a refusal before
that is the API's error with its status; a failure after it, the API's error event, never a
clean end.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, suppress
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from asgiref.sync import sync_to_async
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from billing.limits import LimitReached, request_count
from chat.metered import (
    Admission,
    BudgetSpent,
    MeteredCall,
    ModelUnavailable,
    OtherApi,
    Resolution,
    named_resolve,
    spend_admit,
)
from gateway.models import PersonalAccessToken
from gateway.tokens import secret_of, token_holder, token_used
from llmadmin.providers.contract import Raw, Relay, RelayApi
from llmadmin.providers.errors import SETUP_FAULTS, ProviderError, RequestRefused

logger = logging.getLogger(__name__)
T = TypeVar("T")
# An API's test of a model (a row of usable_models): does it serve it?
Serves = Callable[[dict[str, Any]], bool]

# At most this much of a client's User-Agent is kept, as the ledger's client name.
CLIENT_NAME_LENGTH = 100
# A request body past this is refused (a conversation with images fits). Django's
# DATA_UPLOAD_MAX_MEMORY_SIZE, a bound for the site's forms, is not ours: see request_json.
MAX_REQUEST_BYTES = 32 * 1024 * 1024

UNAVAILABLE = "This model is unavailable right now: pick another one, or ask an administrator."


def every_model(row: dict[str, Any]) -> bool:
    """The Serves of an API that reaches every model: other families' translated."""
    return True


class Wire(Protocol):
    """How one API's errors look: a response before the answer began, an event within it."""

    def error(
        self, status: int, kind: str, message: str, *, param: str | None = None
    ) -> HttpResponse:
        """The API's error answer; `param`: the request's field to change, where one is."""
        ...

    def stream_error(self, error: ProviderError) -> bytes: ...


@dataclass(frozen=True)
class Caller:
    """Who calls, through which token, with which client."""

    token: PersonalAccessToken
    client_name: str

    @property
    def user(self) -> Any:
        return self.token.user


# Our words for each refusal, by kind: (status, the API's kind of error, message).
REFUSALS = {
    "unauthenticated": (401, "authentication", "Invalid, expired or revoked access token."),
    "gateway_closed": (
        403,
        "permission",
        "The gateway is closed to you: ask an administrator to open it.",
    ),
    "not_found": (404, "not_found", "No such model, or not one you may use."),
    "other_api": (
        400,
        "invalid_request",
        "This model is not served through this API: its /models lists those that are.",
    ),
    "bad_json": (400, "invalid_request", "The request body must be a JSON object."),
    "no_model": (400, "invalid_request", "The request must name a model."),
    "too_large": (413, "request_too_large", "The request body is too large."),
    "no_endpoint": (404, "no_endpoint", "This API of the gateway has no such endpoint."),
    "method": (405, "invalid_request", "This method is not allowed here."),
    "database": (503, "unavailable", "The server's database did not respond: try again."),
}


def refused(wire: Wire, kind: str) -> HttpResponse:
    return wire.error(*REFUSALS[kind])


def method_refused(wire: Wire, allowed: str) -> HttpResponse:
    response = refused(wire, "method")
    response["Allow"] = allowed
    return response


class GatewayClosed(Exception):
    """The admins' policy refuses this caller (REFUSALS["gateway_closed"])."""


def caller_of(request: HttpRequest) -> Caller | None:
    """The caller with a usable token, or None; raises GatewayClosed when the admins' policy
    refuses them, and DatabaseError when the database is down. One query, and a second once
    a minute at most to record the token's use."""
    token = token_holder(secret_of(request))
    if token is None:
        return None
    if token.gateway_closed:
        raise GatewayClosed
    token_used(token=token)
    client_name = request.headers.get("User-Agent", "")[:CLIENT_NAME_LENGTH]
    return Caller(token=token, client_name=client_name)


def caller_or_refusal(request: HttpRequest) -> Caller | str:
    """The caller, or the kind of refusal (REFUSALS) when there is none; raises DatabaseError
    when the database is down. What every gateway endpoint starts with."""
    try:
        caller = caller_of(request)
    except GatewayClosed:
        return "gateway_closed"
    return caller or "unauthenticated"


def request_json(request: HttpRequest, wire: Wire) -> tuple[dict[str, Any], str] | HttpResponse:
    """The request's JSON object and the model it names, or the refusal in the API's shape.
    Read from the request's stream, which DATA_UPLOAD_MAX_MEMORY_SIZE (request.body's bound)
    does not bound, at most MAX_REQUEST_BYTES + 1 bytes: a body past ours is a 413."""
    length = request.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > MAX_REQUEST_BYTES:
        return refused(wire, "too_large")
    raw = request.read(MAX_REQUEST_BYTES + 1)
    if len(raw) > MAX_REQUEST_BYTES:
        return refused(wire, "too_large")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return refused(wire, "bad_json")
    if not isinstance(body, dict):
        return refused(wire, "bad_json")
    name = body.get("model")
    if not isinstance(name, str) or not name:
        return refused(wire, "no_model")
    return body, name


async def decided(wire: Wire, decide: Callable[..., T | str], *args: Any) -> T | HttpResponse:
    """What `decide(*args)` (a step that reads the database: admit, named_for) gives, or its
    refusal in the API's shape."""
    try:
        decision = await sync_to_async(decide)(*args)
    except DatabaseError:
        return refused(wire, "database")
    except BudgetSpent as spent:
        response = wire.error(429, "budget_spent", spent.detail)
        # Both official SDKs retry a 429 unless told not to: a spent budget stays spent.
        response["x-should-retry"] = "false"
        return response
    except LimitReached as reached:
        return limit_refusal(wire, reached)
    return refused(wire, decision) if isinstance(decision, str) else decision


def limit_refusal(wire: Wire, reached: LimitReached) -> HttpResponse:
    # A limit frees up: the SDKs wait Retry-After, then try again.
    response = wire.error(429, "rate_limit", reached.detail)
    response["Retry-After"] = str(reached.retry_after)
    return response


async def relayed(call: MeteredCall[None], wire: Wire) -> AsyncIterator[bytes]:
    """The provider's answer as the client's API shapes it; recorded however it ends. A
    failure before the first byte of a stream, or anywhere in an answer that is not streamed,
    is raised (the response is still to be chosen); after a stream's first byte, the API's
    error event ends it.

    What comes once the provider has finished (a stream's `[DONE]` or `message_stop`, a whole
    answer) is passed on only after the call is recorded and its slot freed: a client that
    calls again as soon as it reads the end (the openai SDK hangs up there) is never refused
    for a call that has ended, and its next call's budget check counts this one's cost."""
    began = False
    end: list[bytes] = []
    try:
        async with call.admission.held(), call:
            async for event in call:
                if isinstance(event, Raw):
                    began = True
                    if call.finished:
                        end.append(event.data)
                    else:
                        yield event.data
    except ProviderError as error:
        logger.warning("A gateway call of %s ended with an error: %s", call.admission.model, error)
        if not began or not call.sent.streamed:
            raise
        yield wire.stream_error(error)
        return
    for data in end:
        yield data


def provider_refusal(wire: Wire, error: ProviderError) -> HttpResponse:
    """A call the provider refused or failed before its answer began, in our words."""
    if isinstance(error, RequestRefused):
        return wire.error(400, "invalid_request", str(error), param=error.param)
    if isinstance(error, SETUP_FAULTS):
        # How the server is set up is the admin's to read, in the log and the admin.
        return wire.error(503, "unavailable", UNAVAILABLE)
    response = wire.error(error.http_status, kind_of_status(error.http_status), str(error))
    if error.retry_after is not None:
        # A rate limit, or every key cooling down: the SDKs wait this long, then try again.
        response["Retry-After"] = str(error.retry_after)
    return response


def kind_of_status(status: int) -> str:
    return {
        400: "invalid_request",
        404: "not_found",
        413: "request_too_large",
        429: "rate_limit",
        503: "overloaded",
        504: "timeout",
    }.get(status, "invalid_request" if 400 <= status < 500 else "api_error")


async def gateway_call(
    request: HttpRequest,
    *,
    wire: Wire,
    api: RelayApi,
    serves: Serves,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    """A gateway request in a provider's own API, from the token to the answer; `serves`: the
    API's test of a model (a usable_models row)."""
    read = request_json(request, wire)
    if isinstance(read, HttpResponse):
        return read
    body, name = read
    admitting = asyncio.ensure_future(decided(wire, admit, request, name, serves))
    try:
        admitted = await asyncio.shield(admitting)
    except asyncio.CancelledError:
        # The client went away while it was let through (the developer's row may be locked by
        # their other admissions): the slot it was given is freed at once, not when its lease
        # expires.
        admitted = await admitting
        if not isinstance(admitted, HttpResponse):
            with suppress(LimitReached):  # too late: its slot lapsed already
                async with admitted[1].held():
                    pass
        raise
    if isinstance(admitted, HttpResponse):
        return admitted
    caller, admission = admitted
    call = admission.relay(
        request=Relay(api=api, body=body, headers=headers or {}),
        token_id=caller.token.pk,
        client_name=caller.client_name,
    )
    answer = relayed(call, wire)
    try:
        first = await anext(answer)
    except ProviderError as error:
        return provider_refusal(wire, error)
    except LimitReached as late:  # its start came after its slot lapsed
        return limit_refusal(wire, late)
    if not call.sent.streamed:
        try:
            rest = [chunk async for chunk in answer]
        except ProviderError as error:
            return provider_refusal(wire, error)
        return HttpResponse(b"".join([first, *rest]), content_type="application/json")
    response = StreamingHttpResponse(then(first, answer), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # proxies must pass each event on at once
    return response


def named_for(request: HttpRequest, name: str, serves: Serves) -> tuple[Caller, Resolution] | str:
    """The caller and the model they name, if theirs and served by this API, or the kind of
    refusal; raises DatabaseError when the database is down."""
    caller = caller_or_refusal(request)
    if isinstance(caller, str):
        return caller
    try:
        return caller, named_resolve(user=caller.user, name=name, serves=serves)
    except OtherApi:
        return "other_api"
    except ModelUnavailable:
        return "not_found"


def counted_for(request: HttpRequest, name: str, serves: Serves) -> tuple[Caller, Resolution] | str:
    """named_for, then the caller's requests per minute, for a request that calls the
    provider but bills nothing (a count of tokens); raises LimitReached, and DatabaseError
    when the database is down."""
    named = named_for(request, name, serves)
    if isinstance(named, str):
        return named
    request_count(named[0].user.pk, named[1].budget.limits)
    return named


def admit(request: HttpRequest, name: str, serves: Serves) -> tuple[Caller, Admission] | str:
    """named_for, then the caller's budget: their admission to the model, or the kind of
    refusal; raises BudgetSpent, and DatabaseError when the database is down."""
    named = named_for(request, name, serves)
    if isinstance(named, str):
        return named
    caller, resolution = named
    return caller, spend_admit(user=caller.user, resolution=resolution)


async def then(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`first`, then the rest; closing this closes the rest at once (a client gone away)."""
    async with aclosing(rest):
        yield first
        async for chunk in rest:
            yield chunk
