"""Each request's sync work on one of a few long-lived threads of the process.

Django's ASGI handler runs a request's sync part (the middleware chain, a sync view) in a
thread made for that request alone: a new thread, and with it a new database connection (per
thread in Django), for every request. Here each request of the developers' API and pages
(SHARED_THREAD_PATHS) is given one of a fixed set of threads instead, kept for the whole
request (its transactions and connection stay on one thread), and the threads keep their
SQLite connections from one request to the next. Its sync part runs there in one call
(OneCallHandler), and the gateway's requests skip the site's middleware (GatewayHandler).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from tempfile import SpooledTemporaryFile
from typing import Any, TypeVar

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.asgi import get_asgi_application
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.http import FileResponse
from django.http.response import HttpResponseBase
from django.urls import set_script_prefix

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

    def __init__(
        self,
        application: ASGIApp,
        *,
        count: int,
        shared: ASGIApp | None = None,
        gateway: ASGIApp | None = None,
    ) -> None:
        self.application = application
        # The applications of the requests on the shared threads, and of the gateway's among
        # them, when they are others.
        self.shared = shared or application
        self.gateway = gateway or self.shared
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
                    await self.shared(scope, receive, send)
        finally:
            thread.requests -= 1


class OneCallHandler(ASGIHandler):
    """Django's ASGI handler with a request's whole sync part in one call on its thread, as
    under WSGI: the request_started signal, the middleware chain (in its sync mode) and the
    view, and a whole answer's close (request_finished). Django's own handler goes to a thread
    and back for each of these, and for each change between sync and async middleware: under
    load, each return waits for the event loop behind the streams' events. A streaming answer
    is sent from the loop as Django sends it, stopped when the client goes away."""

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def handle(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        listening = asyncio.create_task(self.listen_for_disconnect(receive))
        try:
            response = await sync_to_async(self.respond, thread_sensitive=True)(scope, body_file)
            if response.streaming:
                await self.stream(response, listening, send)
            elif not listening.done():  # a client gone meanwhile is sent nothing
                await self.send_response(response, send)
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError, RequestAborted):
                await listening
            body_file.close()

    def respond(self, scope: dict[str, Any], body_file: SpooledTemporaryFile) -> HttpResponseBase:
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size  # the server chunks the file, as in Django
        if not response.streaming:
            response.close()  # its content is all here: what it held is released now
        return response

    async def stream(
        self, response: HttpResponseBase, listening: asyncio.Task, send: Callable[..., Any]
    ) -> None:
        """Send a streaming answer until it ends or the client goes away (a chat turn then
        stores it as disconnected). A client gone before it starts never starts it: a chat
        turn then holds its slot for its start's lease alone."""
        try:
            if listening.done():
                return
            sending = asyncio.create_task(self.send_response(response, send))
            try:
                await asyncio.wait((sending, listening), return_when=asyncio.FIRST_COMPLETED)
            finally:
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError, RequestAborted):
                    await sending
        finally:
            await sync_to_async(response.close, thread_sensitive=True)()


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
    """Django's ASGI application, as served: the developers' requests on REQUEST_THREADS
    threads per process, each in one call there, the gateway's without middleware."""
    application = get_asgi_application()
    return RequestThreads(
        application,
        shared=OneCallHandler(),
        gateway=GatewayHandler(),
        count=settings.REQUEST_THREADS,
    )
