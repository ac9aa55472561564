"""Response headers, and login throttling's client address and lockout page."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from axes.helpers import get_cool_off
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.utils import timezone
from django.utils.timesince import timeuntil


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


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """axes' answer to a login while its username and address are locked out: the site's page
    with the limit, when to try again and a link back to the login form posted to."""
    now = timezone.now()
    context = {
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        # The cool-off runs from the latest attempt, this one: "15 minutes", "1 hour".
        "cool_off": timeuntil(now + get_cool_off(request), now),
        "login_url": request.path,
    }
    return render(request, "registration/locked_out.html", context, status=429)
