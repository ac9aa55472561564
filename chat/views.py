from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.shortcuts import render
from django.utils.cache import patch_cache_control
from django.utils.http import parse_etags
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from chat.model_list import cached_model_list
from chat.serializers import ModelListSerializer


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


@login_required
def agents(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/agents.html")
