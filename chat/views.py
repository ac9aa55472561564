from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from csp.constants import NONCE
from csp.decorators import csp_update
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotModified,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, render
from django.template import loader
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.utils.decorators import method_decorator
from django.utils.http import parse_etags
from django.views import defaults
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework.exceptions import NotAcceptable, ParseError
from rest_framework.generics import RetrieveAPIView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.budgets import ZERO, month_start
from billing.limits import LimitReached
from billing.report import own_usage
from chat.context import conversation_new
from chat.metered import BudgetSpent, spend_admit
from chat.model_list import budget_and_caps, cached_model_list
from chat.models import Conversation
from chat.serializers import (
    BudgetRefusalSerializer,
    ChatTurnInputSerializer,
    ConversationSerializer,
    DatabaseUnavailableSerializer,
    ErrorSerializer,
    LimitRefusalSerializer,
    ModelListSerializer,
    OwnUsageSerializer,
    UsageQuerySerializer,
)
from chat.services import turn_answer, turn_start
from llmadmin.models import LLMModel
from llmadmin.money import usd, usd_left

# Every operation needs a logged-in user (SessionAuthentication answers 403, not 401).
NOT_LOGGED_IN = OpenApiResponse(ErrorSerializer, description="Not logged in.")
# Any request while the database is unreachable (see server_error).
DATABASE_UNAVAILABLE = OpenApiResponse(
    DatabaseUnavailableSerializer,
    description="The database did not respond: nothing was done. Retry-After says when to "
    "try again.",
)


class ModelListView(APIView):
    """The models available for chat, grouped by provider."""

    renderer_classes = [JSONRenderer]

    @extend_schema(
        operation_id="listChatModels",
        summary="Models available for chat",
        description=(
            "Enabled models whose provider is enabled and has a usable API key, and that this "
            "developer may use (a model may be restricted to some groups and users), grouped "
            "by provider in a stable order (registry order, then display name). When nothing "
            "is available, `unavailable_providers` says why for each provider with models "
            "this developer could use, and `restricted_model_count` counts the models kept "
            "from them. The ETag is this developer's list's. "
            "Answers 304 to a matching If-None-Match."
        ),
        responses={
            200: ModelListSerializer,
            304: OpenApiResponse(description="Not modified."),
            403: NOT_LOGGED_IN,
            503: DATABASE_UNAVAILABLE,
        },
    )
    def get(self, request: Request) -> HttpResponse:
        etag, body = cached_model_list(request.user)
        if etag in parse_etags(request.headers.get("If-None-Match", "")):
            response = HttpResponseNotModified()
        else:
            response = HttpResponse(body, content_type="application/json")
        response["ETag"] = etag
        # Always revalidate: an admin change must show at once.
        patch_cache_control(response, private=True, no_cache=True)
        return response


class EventStreamNegotiation(DefaultContentNegotiation):
    """An event-stream client may say so (Accept: text/event-stream): the answer streams as
    events all the same, and a refusal before it (field errors, not logged in) is JSON, as
    streaming APIs answer them."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            if not request.accepts("text/event-stream"):
                raise
            return renderers[0], renderers[0].media_type


class NestingCheckedJSONParser(JSONParser):
    """DRF's, with JSON nested past Python's limit refused as any JSON that doesn't parse
    (DRF lets its RecursionError through: a 500)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None


class ChatTurnView(APIView):
    """Send a message; the answer streams back as server-sent events."""

    # JSON only (what the chat page sends): no form or multipart bodies to document or parse.
    parser_classes = [NestingCheckedJSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = EventStreamNegotiation

    @extend_schema(
        operation_id="sendChatMessage",
        summary="Send a message and stream the answer",
        request=ChatTurnInputSerializer,
        parameters=[
            OpenApiParameter(
                "Retry-After",
                int,
                OpenApiParameter.HEADER,
                description="Seconds to wait before trying again.",
                response=[429],
            )
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                description="Events: conversation {id}, delta {text} (repeated), message "
                "{id, input_tokens, output_tokens, stop_reason, notice}, compacted "
                "{summary_id}, done {}; or error {message, stop_reason} when the provider "
                "fails (the conversation keeps what it had, and the text received; an error "
                "in summarising older messages after a complete answer has no stop_reason). "
                "stop_reason: complete, max_tokens (truncated), context_full (truncated: the "
                "context window filled), refused, blocked (safety), "
                "content_filter, paused (the provider paused a long turn: another message lets the "
                "model go on), other, cut_off, failed, or timed_out (the answer passed "
                "its deadline or went quiet too long); notice says in words how an answer "
                "that is not complete ended (null when complete). An answer whose client "
                "went away is stored as far as it went, stop_reason disconnected."
            ),
            400: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description='Field errors, e.g. {"message": ["This field may not be blank."]} '
                'or {"model_id": ["This model is not available for chat."]}; '
                '{"detail": "..."} for malformed JSON.',
            ),
            403: OpenApiResponse(
                ErrorSerializer, description="Not logged in, or no CSRF token (session auth)."
            ),
            402: OpenApiResponse(
                BudgetRefusalSerializer,
                description="This developer's monthly budget, or their monthly cap for this "
                "model, is spent: nothing was stored or sent. The detail says when it resets.",
            ),
            429: OpenApiResponse(
                LimitRefusalSerializer,
                description="A limit of this developer's is reached (turns at once, requests "
                "or tokens per minute; code limit_reached): nothing was stored or sent. "
                "Retry-After says in how many seconds to try again.",
            ),
            415: OpenApiResponse(ErrorSerializer, description="The body is not JSON."),
            503: DATABASE_UNAVAILABLE,
        },
    )
    def post(self, request: Request) -> HttpResponse:
        serializer = ChatTurnInputSerializer(data=request.data, context={"user": request.user})
        if not serializer.is_valid():
            return Response(serializer.errors, status=400)
        data = serializer.validated_data
        so_far = data.get("conversation_id") or conversation_new(request.user)
        try:
            # Checked before anything is stored or sent: a refused turn costs nothing.
            admission = spend_admit(user=request.user, resolution=data["model_id"])
            turn = turn_start(so_far=so_far, admission=admission, text=data["message"])
        except BudgetSpent as refusal:
            return Response({"detail": refusal.detail, "code": "budget_spent"}, status=402)
        except LimitReached as refusal:
            response = Response({"detail": refusal.detail, "code": "limit_reached"}, status=429)
            response["Retry-After"] = str(refusal.retry_after)
            return response
        except DatabaseError:
            return database_unavailable(request)
        # The answer streams on the event loop (under ASGI): this thread's work is done.
        response = StreamingHttpResponse(
            server_sent(turn_answer(turn)), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # proxies must pass each event on at once
        return response


async def server_sent(events: AsyncIterator[tuple[str, dict]]) -> AsyncIterator[bytes]:
    # Closing this closes the turn at once (a client that went away), not when it is collected.
    async with aclosing(events):
        async for name, data in events:
            yield f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


class UsageView(APIView):
    """Your own usage, budget and limits."""

    renderer_classes = [JSONRenderer]

    @extend_schema(
        operation_id="getOwnUsage",
        summary="Your usage, budget and limits",
        description="Your calls, tokens and costs in a month, by model and by day; your "
        "budget: allowance, spent, remaining, the day it resets, and your models' caps; and "
        "your limits now (turns at once, requests and tokens per minute).",
        parameters=[UsageQuerySerializer],
        responses={
            200: OwnUsageSerializer,
            400: OpenApiResponse(OpenApiTypes.OBJECT, description='{"month": ["..."]}'),
            403: NOT_LOGGED_IN,
            503: DATABASE_UNAVAILABLE,
        },
    )
    def get(self, request: Request) -> Response:
        # A plain dict: a blank month is refused, not taken for one left out.
        query = UsageQuerySerializer(data=request.query_params.dict())
        if not query.is_valid():
            return Response(query.errors, status=400)
        month = query.validated_data.get("month") or month_start(timezone.localdate())
        budget, caps = budget_and_caps(request.user)
        return Response(own_usage(request.user.pk, month, caps, budget))


class ConversationView(RetrieveAPIView):
    """One of your conversations with all its messages, summarised ones included."""

    serializer_class = ConversationSerializer

    @extend_schema(
        operation_id="getConversation",
        summary="One of your conversations",
        responses={
            200: ConversationSerializer,
            403: NOT_LOGGED_IN,
            404: OpenApiResponse(
                ErrorSerializer, description="No such conversation, or it is not yours."
            ),
            503: DATABASE_UNAVAILABLE,
        },
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_object(self) -> Conversation:
        return get_object_or_404(
            Conversation.objects.prefetch_related("messages__model"),
            pk=self.kwargs["pk"],
            owner=self.request.user,
        )


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404 page; under /api/ the JSON an API client reads, as DRF's views answer.

    A URL that matches no route (`/api/v1/conversations/abc/`) never reaches DRF.
    """
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500 page; a 503 when the request failed on the database connection (the
    database is down, restarting or unreachable), wherever it failed: a view, the session or
    user a middleware loaded, a response's session save."""
    if isinstance(sys.exc_info()[1], (OperationalError, InterfaceError)):
        return database_unavailable(request)
    return defaults.server_error(request)


# A client may try again this many seconds after a 503.
RETRY_AFTER_SECONDS = 10


def database_unavailable(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After: JSON under /api/, else a plain page that needs no database.
    Never the error's own text."""
    if request.path.startswith("/api/"):
        response = JsonResponse(
            {
                "detail": "The database did not respond: try again in a moment.",
                "code": "database_unavailable",
            },
            status=503,
        )
    else:
        # Without the request: its context would load the user, from the database.
        response = HttpResponse(loader.render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def usage_panel(user: AbstractBaseUser) -> dict[str, Any]:
    """What the usage panel shows: the budget, the caps of this developer's models, the
    month's usage, and what is spent out (the chat turns Send off for it)."""
    budget, caps = budget_and_caps(user)
    names = dict(LLMModel.objects.filter(pk__in=caps).values_list("pk", "display_name"))
    return {
        "budget": budget,
        "budget_spent": budget.remaining == 0,
        "capped_model_ids": [
            model_id
            for model_id, cap in caps.items()
            if budget.spent_by_model.get(model_id, 0) >= cap
        ],
        "caps": [
            {
                "model": names.get(model_id, ""),
                "cap": usd(cap),
                "spent": usd(budget.spent_by_model.get(model_id, ZERO)),
                "remaining": usd_left(budget.model_remaining(model_id, cap)),
            }
            for model_id, cap in caps.items()
        ],
        "usage": own_usage(user.pk, budget.month, caps, budget),
    }


@login_required
def agents(request: HttpRequest) -> HttpResponse:
    context = usage_panel(request.user)
    # The conversation the page was showing (its address names it): read back after a reload.
    conversation = request.GET.get("conversation", "")
    # Digits only ("٤٢" is decimal too), at most 18: int() refuses thousands of digits, and
    # more than 18 is no database id.
    if conversation.isascii() and conversation.isdigit() and len(conversation) <= 18:
        context["conversation_url"] = reverse("api-conversation", args=[int(conversation)])
    return render(request, "chat/agents.html", context)


@login_required
def agents_usage(request: HttpRequest) -> HttpResponse:
    """The usage panel alone: the page swaps it in after each turn and each refusal."""
    return render(request, "chat/usage.html", usage_panel(request.user))


class APIDocsView(SpectacularSwaggerSplitView):
    """Swagger UI under the site's Content-Security-Policy.

    Its init script comes from this view as a file (script-src 'self' allows it); its one
    inline style carries a nonce that only this page's policy allows.
    """

    template_name = "chat/api_docs.html"

    @extend_schema(exclude=True)
    @method_decorator(csp_update({"style-src": NONCE}))
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)
