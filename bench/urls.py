"""The project's URLs plus two floors: the model list's bytes, pre-rendered, through the same
DRF view stack (session authentication, permission, renderer, headers); and a gateway
request's, a fixed answer through the same stack as the gateway's APIs."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils.cache import patch_cache_control
from django.views.decorators.csrf import csrf_exempt
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from chat.model_list import cached_model_list
from config.urls import urlpatterns as project_urlpatterns

# Each developer's list, rendered once per worker, then only served.
floors: dict[int, tuple[str, bytes]] = {}


class FloorView(APIView):
    renderer_classes = [JSONRenderer]

    def get(self, request: Request) -> HttpResponse:
        floor = floors.get(request.user.pk)
        if floor is None:
            floor = floors.setdefault(request.user.pk, cached_model_list(request.user))
        etag, body = floor
        response = HttpResponse(body, content_type="application/json")
        response["ETag"] = etag
        patch_cache_control(response, private=True, no_cache=True)
        return response


@csrf_exempt
async def gateway_floor(request: HttpRequest) -> HttpResponse:
    """An async view under /gateway/, as the gateway's APIs: Django's handler without
    middleware, on the long-lived threads (config/request_threads.py); no token, database or
    upstream."""
    return HttpResponse(b'{"object": "floor"}', content_type="application/json")


# Under /api/ and /gateway/, as the list and the gateway's APIs: served on the same long-lived
# threads, the gateway's without middleware (config/request_threads.py).
urlpatterns = [
    path("api/bench-floor/", FloorView.as_view()),
    path("gateway/bench-floor", gateway_floor),
    *project_urlpatterns,
]
