from __future__ import annotations

import json
from collections.abc import Iterator

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.cache import patch_cache_control
from django.utils.http import parse_etags
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.generics import RetrieveAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.model_list import cached_model_list
from chat.models import Conversation
from chat.serializers import (
    ChatTurnInputSerializer,
    ConversationSerializer,
    ModelListSerializer,
)
from chat.services import chat_turn


class ModelListView(APIView):
    """The models available for chat, grouped by provider."""

    renderer_classes = [JSONRenderer]

    @extend_schema(
        operation_id="listChatModels",
        summary="Models available for chat",
        description=(
            "Enabled models whose provider is enabled and has a usable API key, grouped by "
            "provider in a stable order (registry order, then display name). When nothing is "
            "available, `unavailable_providers` says why for each provider with models. "
            "Answers 304 to a matching If-None-Match."
        ),
        responses={200: ModelListSerializer, 304: OpenApiResponse(description="Not modified.")},
    )
    def get(self, request: Request) -> HttpResponse:
        etag, body = cached_model_list()
        if etag in parse_etags(request.headers.get("If-None-Match", "")):
            response = HttpResponseNotModified()
        else:
            response = HttpResponse(body, content_type="application/json")
        response["ETag"] = etag
        # Always revalidate: an admin change must show at once.
        patch_cache_control(response, private=True, no_cache=True)
        return response


class ChatTurnView(APIView):
    """Send a message; the answer streams back as server-sent events."""

    @extend_schema(
        operation_id="sendChatMessage",
        summary="Send a message and stream the answer",
        request=ChatTurnInputSerializer,
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                description="Events: conversation {id}, delta {text} (repeated), message "
                "{id, input_tokens, output_tokens}, compacted {summary_id}, done {}; or error "
                "{message} when the provider fails (the conversation keeps what it had)."
            ),
            400: OpenApiResponse(description="Field errors, e.g. a model not available."),
        },
    )
    def post(self, request: Request) -> HttpResponse:
        serializer = ChatTurnInputSerializer(data=request.data, context={"user": request.user})
        if not serializer.is_valid():
            return Response(serializer.errors, status=400)
        data = serializer.validated_data
        conversation = data.get("conversation_id") or Conversation(owner=request.user)
        events = chat_turn(conversation=conversation, model=data["model_id"], text=data["message"])
        response = StreamingHttpResponse(server_sent(events), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # proxies must pass each event on at once
        return response


def server_sent(events: Iterator[tuple[str, dict]]) -> Iterator[bytes]:
    for name, data in events:
        yield f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


class ConversationView(RetrieveAPIView):
    """One of your conversations with all its messages, summarised ones included."""

    serializer_class = ConversationSerializer

    def get_object(self) -> Conversation:
        return get_object_or_404(
            Conversation.objects.prefetch_related("messages"),
            pk=self.kwargs["pk"],
            owner=self.request.user,
        )


@login_required
def agents(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/agents.html")
