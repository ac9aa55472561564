"""Response headers and the client address that login throttling counts failures by."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase


class PermissionsPolicyMiddleware:
    """Sends settings.PERMISSIONS_POLICY on every response (Django has no setting for it)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response


def client_ip_address(request: HttpRequest) -> str | None:
    """The address the outermost of TRUSTED_PROXY_COUNT proxies saw, else the peer's.

    Each proxy appends the address it was called from to X-Forwarded-For, so only the last
    TRUSTED_PROXY_COUNT entries are trustworthy: anything left of them a client can write.
    """
    peer = request.META.get("REMOTE_ADDR")
    proxies = settings.TRUSTED_PROXY_COUNT
    if not proxies:
        return peer
    forwarded = [
        entry.strip()
        for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if entry.strip()
    ]
    if len(forwarded) < proxies:
        return peer  # not through every proxy: the peer is the only address known
    try:
        return str(ipaddress.ip_address(forwarded[-proxies]))
    except ValueError:  # a misconfigured proxy; axes stores addresses in an address column
        return peer
