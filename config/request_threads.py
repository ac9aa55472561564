"""Each request's sync work on one of a few long-lived threads of the process.

Django's ASGI handler runs a request's sync part (the middleware chain, a sync view) in a
thread made for that request alone: a new thread, and with it a new database connection (per
thread in Django), for every request. Here each request of the developers' API and pages
(SHARED_THREAD_PATHS) is given one of a fixed set of threads instead, kept for the whole
request (its transactions and connection stay on one thread), and the threads keep their
SQLite connections from one request to the next.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

T = TypeVar("T")

# The requests that share the long-lived threads: the developers' API and pages, each a few
# queries. The others (the admin: a connection test waits on a provider for up to 15 s, an
# export streams from an open cursor, a dashboard reads for half a second; the login forms:
# hashing a password) run on a thread of their own, as Django runs every request: they would
# hold up every request queued on a shared thread, and an export's open cursor would pin its
# thread's SQLite connection to an old snapshot.
SHARED_THREAD_PATHS = ("/api/", "/agents/", "/gateway/")
# The gateway's APIs, served without middleware (GatewayHandler).
GATEWAY_PATH = "/gateway/"
ASGIApp = Callable[[dict[str, Any], Callable[..., Any], Callable[..., Any]], Awaitable[None]]


class RequestThread(ThreadPoolExecutor):
    """One thread, and how busy it is: the calls sent to it and not yet done, and the
    requests it serves (a streaming answer's request lives for minutes, calling on it only
    now and then)."""

    def __init__(self, name: str) -> None:
        super().__init__(max_workers=1, thread_name_prefix=name)
        # Each counter has one writer (the event loop, or this thread): no lock needed.
        self.sent = self.done = self.requests = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.sent += 1
        return super().submit(self.counted, fn, *args, **kwargs)

    def counted(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            self.done += 1

    def load(self) -> tuple[int, int]:
        """Calls waiting or running first: a thread blocked (a write retried through a
        database outage, a provider checked from the admin) is passed over while another is
        free; then the requests, to spread a burst arriving at once."""
        return self.sent - self.done, self.requests


class RequestThreads:
    """An ASGI application (Django's) whose requests each run their sync work on the least
    busy of `count` long-lived threads."""

    def __init__(self, application: ASGIApp, *, count: int, gateway: ASGIApp | None = None) -> None:
        self.application = application
        # The gateway's requests' application, when it is another.
        self.gateway = gateway or application
        self.threads = [RequestThread(f"request-{number}") for number in range(count)]

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(SHARED_THREAD_PATHS):
            await self.application(scope, receive, send)
            return
        thread = min(self.threads, key=RequestThread.load)
        thread.requests += 1
        try:
            # Django's own context inside this one defers to it: sync_to_async calls in the
            # request (and in tasks it awaits) run on this thread. A sync call that calls async
            # code that calls sync code again runs that on the same thread, as asgiref does for
            # any request (no deadlock).
            async with ThreadSensitiveContext(executor=thread):
                if scope["path"].startswith(GATEWAY_PATH):
                    await self.gateway(scope, receive, send)
                else:
                    await self.application(scope, receive, send)
        finally:
            thread.requests -= 1


class GatewayHandler(ASGIHandler):
    """Django's ASGI handler without middleware, for the gateway's APIs. Every middleware of
    the site is for browsers (sessions, CSRF, the logged-in user, messages, page policies, the
    audit's actor, login lockouts) and the gateway's clients are API clients with tokens.
    With a sync middleware in the chain, an async view's request went from the event loop to
    a thread and back for the chain alone; without any, the view runs on the loop."""

    def load_middleware(self, is_async: bool = False) -> None:
        # Django's BaseHandler.load_middleware over an empty list.
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        get_response = self._get_response_async if is_async else self._get_response
        self._middleware_chain = convert_exception_to_response(get_response)


def serving_application() -> RequestThreads:
    """Django's ASGI application, as served: on REQUEST_THREADS threads per process, the
    gateway's requests without middleware."""
    application = get_asgi_application()
    return RequestThreads(application, gateway=GatewayHandler(), count=settings.REQUEST_THREADS)
