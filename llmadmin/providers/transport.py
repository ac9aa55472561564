"""Transport shared by every provider family: the client base (auth header, timeouts,
same-origin redirects, size limits, an answer's deadlines) and the connection pool.

What a provider answers is untrusted: errors.py holds the only words a failure is told in.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import json
import math
import re
import ssl
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from functools import partial
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import quote, urlencode, urljoin, urlsplit

import httpx2
from asgiref.sync import sync_to_async
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from llmadmin.providers.contract import (
    ChatInput,
    ClientApi,
    Connection,
    Conversation,
    OtherOutput,
    Raw,
    Relay,
    RelayApi,
    RemoteModel,
    StreamEvent,
    TextDelta,
)
from llmadmin.providers.errors import (
    ChatError,
    NoCredentials,
    ProviderError,
    Unreachable,
    answered,
    chat_error_for,
    idle_too_long,
    key_fault_of,
    key_rejected,
    malformed,
    past_deadline,
    retry_after_of,
    sent_credentials,
    unexpected,
    untrusted_answer,
    went_silent,
)
from llmadmin.providers.sockets import stream_transport
from llmadmin.providers.sse import chunks_of

# Every request says who calls, in the usual product/version form: a provider's logs and
# support can tell our calls apart.
USER_AGENT = f"llmadmin/{importlib.metadata.version('llmadmin')}"
MAX_REDIRECTS = 3
MAX_PAGES = 20


class ProviderClient:
    """Calls to one provider account: the key only in the auth header, to the configured host.

    A family's client says how to authenticate (auth_headers), verify a key (verify_key), list
    models (fetch_models) and chat (stream). The public calls around them turn anything
    unexpected in an answer into one of our own errors.
    """

    # Whether building a request may block (loading credentials to sign it with).
    signs_in_thread = False
    # The account's other keys (its backup keys): the provider was sent them too, so its
    # answers are searched for them as for this client's own.
    other_secrets: tuple[str, ...] = ()

    @sensitive_variables("connection")
    def __init__(self, connection: Connection, *, options: tuple[Any, ...] = ()) -> None:
        self.connection = connection
        self.base_url = connection.base_url
        # The options its type declares (base.Option, which builds on this module), each with
        # its place in the request: the one list the request is built from.
        self.options = options
        # Whether the provider may bill the last chat request: it was sent and not refused
        # (whatever came after; a user may leave before its answer's headers come).
        self.billable = False
        if not self.has_credentials():
            raise NoCredentials("No readable API key is set.")

    def has_credentials(self) -> bool:
        return bool(self.connection.api_key)

    def secrets(self) -> list[str]:
        """The credentials this client calls with (empty ones too): shown nowhere, not even
        as a listed model id."""
        connection = self.connection
        return [
            connection.api_key,
            connection.aws_access_key_id,
            connection.aws_secret_access_key,
            connection.aws_session_token,
            *self.other_secrets,
        ]

    def auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    @sensitive_variables("headers")
    def authorize(
        self, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> dict[str, str]:
        """The headers to send, credentials included (a signer signs the exact request)."""
        return {**self.auth_headers(), **headers}

    def verify_key(self) -> None:
        raise NotImplementedError

    def fetch_models(self) -> list[RemoteModel]:
        raise NotImplementedError

    def stream(self, model: Any, chat: ChatInput) -> AsyncIterator[StreamEvent]:
        raise NotImplementedError

    def verify(self) -> None:
        """The cheapest authenticated call that costs nothing; raises ProviderError."""
        with untrusted_answer(self.unreadable):
            self.verify_key()

    def list_models(self) -> list[RemoteModel]:
        """The models the account can use; raises ProviderError."""
        with untrusted_answer(self.unreadable):
            return self.fetch_models()

    async def stream_chat(self, model: Any, chat: ChatInput) -> AsyncIterator[StreamEvent]:
        """Send the turn; yield the answer's text as it streams in (with its other output,
        which the call counts and the chat does not show), then its usage and end. Bounded as
        `bounded` says."""
        async with aclosing(self.bounded(self.stream(model, chat))) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    yield TextDelta(storable(event.text))
                else:
                    yield event

    def relay(self, model: Any, request: Relay) -> AsyncIterator[StreamEvent]:
        """A gateway client's request in this family's own API: the answer's Raw events for the
        client, each after the TextDelta, OtherOutput, Usage and Finish read from it (so that
        what it says is checked before it goes out). A family that takes no request in its
        own API has none."""
        raise NotImplementedError

    def speaks(self, api: RelayApi, identifier: str) -> bool:
        """Whether this model takes a request of `api` as its client sent it (relay), rather
        than translated (converse)."""
        return False

    def converse(self, model: Any, conversation: Conversation) -> AsyncIterator[StreamEvent]:
        """A translated gateway request in this family's own API, built from the client's
        Conversation and the model's settings (the admin's options as defaults, its limits as
        caps; RequestRefused naming the client's field, from conversation.params, where
        there is no counterpart): the answer as neutral events (no Raw), tool calls and
        thinking included."""
        raise NotImplementedError

    async def relay_call(
        self, model: Any, request: Relay, *, translation: ClientApi | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Send a gateway client's request, as sent (relay) or, with the client's API's
        `translation`, translated (converse); yield the answer's events, bounded as `bounded`
        says. Nothing that holds one of the account's credentials reaches the client: the
        answer ends there, with our error. Both the bytes sent on and the text the client
        decodes from them are searched: a key split over two events, or written in JSON
        escapes, is in no run of bytes but in what the client reads."""
        secrets = [secret for secret in self.secrets() if secret]
        encoded = [secret.encode() for secret in secrets]
        # The ends of the bytes passed on and of the text said so far, long enough for a
        # credential to end in the next event even written all in \uXXXX escapes.
        keep = 6 * max(map(len, secrets), default=0)
        tail, said = b"", ""
        if translation is None:
            source = self.relay(model, request)
        else:
            conversation = translation.conversation(request)
            source = translation.answer(self.converse(model, conversation), request)
        # A translation streams upstream even for a whole answer: the idle limit holds there.
        streamed = request.streamed or translation is not None
        async with aclosing(self.bounded(source, idle_limit=streamed)) as events:
            async for event in events:
                if secrets and isinstance(event, TextDelta | OtherOutput):
                    said += event.text
                    if holds_any(said, secrets) or holds_any(json_unescaped(said), secrets):
                        raise sent_credentials()
                    said = said[-keep:]
                elif secrets and isinstance(event, Raw):
                    seen = tail + event.data
                    if holds_any(seen, encoded):
                        raise sent_credentials()
                    tail = seen[-keep:]
                yield event

    async def bounded(
        self, source: AsyncIterator[StreamEvent], *, idle_limit: bool = True
    ) -> AsyncIterator[StreamEvent]:
        """A provider's answer, ended in time: PROVIDER_STREAM_TIMEOUT from the request on, or
        PROVIDER_STREAM_IDLE_TIMEOUT after the last output (with `idle_limit`: a
        whole answer sends nothing until it is done). Keep-alive comments, pings and usage
        counts don't hold an answer open. Either limit closes the upstream request and raises
        a ChatError (stop reason timed_out); anything unexpected becomes malformed().

        The limits are kept by one timer that moves on to the next limit only when it fires,
        and cancels the wait for the next event once it has passed: a timeout of its own
        around each event's wait was a tenth of a streamed event's CPU."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        deadline = loop.time() + settings.PROVIDER_STREAM_TIMEOUT
        idle = settings.PROVIDER_STREAM_IDLE_TIMEOUT if idle_limit else math.inf
        quiet_until = loop.time() + idle
        waiting = timed_out = False
        timer: asyncio.TimerHandle | None = None

        def check_time() -> None:
            nonlocal timer, timed_out
            timer = None
            if not waiting:
                return  # the next wait sets the timer again
            if loop.time() < min(deadline, quiet_until):
                timer = loop.call_at(min(deadline, quiet_until), check_time)
            else:
                timed_out = True
                task.cancel()

        events = aiter(source)
        try:
            while True:
                if timer is None:
                    # The timer fired between waits (or this is the first): a wait that never
                    # suspends (its bytes were read already) would never meet it again.
                    if loop.time() >= min(deadline, quiet_until):
                        raise past_deadline() if loop.time() >= deadline else idle_too_long()
                    timer = loop.call_at(min(deadline, quiet_until), check_time)
                waiting = True
                try:
                    event = await anext(events, None)
                except asyncio.CancelledError:
                    if timed_out and task.uncancel() == 0:
                        raise (
                            past_deadline() if loop.time() >= deadline else idle_too_long()
                        ) from None
                    raise
                except ProviderError:
                    raise
                except Exception as error:
                    raise unexpected(error, malformed) from None
                finally:
                    waiting = False
                if event is None:
                    return
                if isinstance(event, TextDelta | OtherOutput):
                    quiet_until = loop.time() + idle
                yield event
        finally:
            if timer is not None:
                timer.cancel()
            await events.aclose()

    def unreadable(self) -> Unreachable:
        return Unreachable(f"{self.host} sent an answer that could not be read.")

    def is_rejected(self, status: int, body: str) -> bool:
        """Whether an answer says the key is wrong; the body is only matched, never shown."""
        return status in (401, 403)

    def refusal(
        self, method: str, status: int, body: str, headers: Mapping[str, str]
    ) -> ProviderError | None:
        """Our error for a refused key or permission; None when the refusal is another kind.

        The body and headers are only matched against known words, never repeated.
        """
        return key_rejected(status) if self.is_rejected(status, body) else None

    def retry_delay(self, body: str) -> int | None:
        """Seconds a rate limit's body says to wait, where the API says it there and not in
        Retry-After; only read as a number, never repeated."""
        return None

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    def get_json(self, url: str, params: dict[str, Any] | None = None) -> Any:
        """GET with the auth header, following redirects only within the same origin."""
        origin = urlsplit(url)[:2]
        host = urlsplit(url).netloc
        for _ in range(MAX_REDIRECTS + 1):
            response = self.send("GET", url, params=params)
            if not response.is_redirect:
                break
            try:
                target = urljoin(url, response.headers.get("Location", ""))
                same_origin = urlsplit(target)[:2] == origin
            except ValueError:  # an unparsable Location: its text is not repeated
                same_origin = False
            if not same_origin:
                raise Unreachable(f"{host} redirected to another host; the key was not sent there.")
            url, params = target, None
        else:
            raise Unreachable(f"{host} redirected too many times.")

        refusal = self.refusal("GET", response.status_code, response.text, response.headers)
        if refusal:
            raise refusal
        if response.status_code >= 400:
            raise Unreachable(answered(host, response.status_code))
        try:
            return response.json()
        except (ValueError, RecursionError):
            raise Unreachable(f"{host} answered with something that is not JSON.") from None

    def items(self, payload: Any, key: str, id_field: str = "id") -> list[dict[str, Any]]:
        """The entries of a model list, each with a string id; raises Unreachable otherwise."""
        items = payload.get(key) if isinstance(payload, dict) else None
        if not isinstance(items, list) or not all(
            isinstance(item, dict) and isinstance(item.get(id_field), str) for item in items
        ):
            raise Unreachable(f"{self.host} answered with an unexpected model list.")
        return items

    @asynccontextmanager
    async def open_stream(
        self,
        url: str,
        body: dict[str, Any],
        *,
        stream: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[httpx2.Response]:
        """POST a chat request and hold its answer open (streamed, or one JSON body when
        `stream` is false); closed on leaving, however that happens (the answer ended, the
        client went away, a limit passed). A refusal becomes our own ChatError. `headers`:
        the client's own a relayed request passes on."""
        host = urlsplit(url).netloc
        try:
            build = partial(
                self.build,
                "POST",
                url,
                body=json.dumps(body).encode(),
                stream=stream,
                headers=headers,
            )
            # In a thread where signing may load credentials over the network (Bedrock's
            # chain); else here: a thread's hand-off costs more than a header.
            if self.signs_in_thread:
                request = await sync_to_async(build, thread_sensitive=False)()
            else:
                request = build()
            if not stream:
                # A whole answer's first byte comes when it is done: as late as a stream's end.
                request.extensions["timeout"] = timeouts(settings.PROVIDER_STREAM_TIMEOUT).as_dict()
            self.billable = True
            response = await stream_client().send(request, stream=True)
        except ProviderError:
            raise
        except httpx2.ReadTimeout:  # the request was sent and no answer began
            raise went_silent() from None
        except Exception as error:
            self.billable = False  # the request never reached a provider that took it
            failure = unreachable(ChatError, host, error)
            failure.key_fault = key_fault_of(failure, None)
            raise failure from None
        try:
            if response.status_code >= 300:
                self.billable = False
                head = await head_of(response)
                refusal = self.refusal("POST", response.status_code, head, response.headers)
                failure = refusal or chat_error_for(response.status_code, head)
                failure.key_fault = key_fault_of(failure, response.status_code)
                if failure.key_fault == "rate_limited":
                    failure.retry_after = retry_after_of(
                        response.headers.get("Retry-After")
                    ) or self.retry_delay(head)
                raise failure
            if not is_plain(response):
                raise malformed()  # compressed though we asked for it plain: not expanded
            yield response
        finally:
            await response.aclose()

    @sensitive_variables("headers")
    def build(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        body: bytes = b"",
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> httpx2.Request:
        """The request with credentials and timeouts; the URL (with its query) and body are
        final before `authorize` sees them, so a signature covers exactly what is sent."""
        if params:
            # %20 for a space, as SigV4 canonicalises a query.
            url = f"{url}?{urlencode(params, quote_via=quote)}"
        request = httpx2.Request(method, url, content=body or None)
        accept = "text/event-stream" if stream else "application/json"
        # Before authorize: a signer sees every header sent (SigV4 leaves User-Agent unsigned,
        # as botocore's own client does, since proxies rewrite it).
        # The client's own first: ours and the credentials win over any of the same name.
        sent = {**(headers or {}), "Accept": accept, "User-Agent": USER_AGENT}
        if body:
            sent["Content-Type"] = "application/json"
        request.headers.update(self.authorize(method, str(request.url), sent, body))
        # Uncompressed (a small compressed answer can expand without bound); not signed, so
        # a SigV4 signature covers what botocore's own client signs.
        request.headers["Accept-Encoding"] = "identity"
        request.extensions["timeout"] = timeouts().as_dict()
        return request

    def send(self, method: str, url: str, params: dict[str, Any] | None = None) -> httpx2.Response:
        """One call, its answer read whole (at most MAX_BODY bytes); redirects are the caller's
        to follow. A compressed answer (we ask for none) is refused unread: a few hundred KB
        of gzip can expand to gigabytes."""
        host = urlsplit(url).netloc
        try:
            request = self.build(method, url, params=params)
            with httpx2.Client(cookies=NO_COOKIES, verify=tls_context()) as client:
                response = client.send(request, stream=True)
                try:
                    if not is_plain(response):
                        raise Unreachable(f"{host} answered in a form we can't read (compressed).")
                    body = b""
                    for chunk in response.iter_raw():
                        body += chunk
                        if len(body) > MAX_BODY:
                            raise Unreachable(f"{host} sent an answer too large to read.")
                finally:
                    response.close()
        except ProviderError:  # no credentials to sign with, or too large
            raise
        except Exception as error:
            raise unreachable(Unreachable, host, error) from None
        return httpx2.Response(response.status_code, headers=response.headers, content=body)


# A model list (OpenRouter's is a few MB) or a key check's answer, read whole.
MAX_BODY = 32 * 1024 * 1024
# Providers' cookies are neither sent nor kept.
NO_COOKIES = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The trust store and TLS settings of every call, built once per process: building them
    reads the CA bundle (about 30 ms of CPU), which a client of its own did on every call."""
    return httpx2.create_ssl_context()


def is_plain(response: httpx2.Response) -> bool:
    """Whether the body is sent as is, as we ask (Accept-Encoding: identity)."""
    return response.headers.get("Content-Encoding", "").strip().lower() in ("", "identity")


def timeouts(read: float | None = None) -> httpx2.Timeout:
    return httpx2.Timeout(
        read or settings.PROVIDER_READ_TIMEOUT, connect=settings.PROVIDER_CONNECT_TIMEOUT
    )


def unreachable(failure: type[ProviderError], host: str, error: Exception) -> ProviderError:
    """Our message for a call that got no answer; the library's text is not repeated (it
    may quote a Location or a header)."""
    if isinstance(error, httpx2.TimeoutException):
        return failure(
            f"Could not reach {host}: timed out after {settings.PROVIDER_READ_TIMEOUT:g} s."
        )
    if isinstance(error, httpx2.ConnectError):
        return failure(f"Could not reach {host}: connection refused or host not found.")
    return failure(f"Could not reach {host}.")


async def body_of(response: httpx2.Response) -> bytes:
    """A whole (non-streamed) answer, at most MAX_BODY bytes; malformed() past that."""
    body = b""
    async for chunk in chunks_of(response):
        body += chunk
        if len(body) > MAX_BODY:
            raise malformed()
    return body


async def head_of(response: httpx2.Response) -> str:
    """At most 4,000 bytes of a refusal's body, only to recognise what it says."""
    head = b""
    try:
        async for chunk in response.aiter_raw():
            head += chunk
            if len(head) >= 4000:
                break
    except Exception:  # an unreadable body refuses all the same
        head = b""
    return head[:4000].decode("utf-8", "replace")


# One pool of connections to the providers per event loop (a worker process has one): a
# chat turn reuses a warm TLS connection instead of a new handshake. No cap on connections:
# each open answer holds one, and hundreds stream at once.
_stream_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx2.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def stream_client() -> httpx2.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _stream_clients.get(loop)
    if client is None:
        limits = httpx2.Limits(max_connections=None, max_keepalive_connections=64)
        client = _stream_clients[loop] = httpx2.AsyncClient(
            cookies=NO_COOKIES,
            # The environment's proxies, if any, go through httpx2's own transports.
            verify=tls_context(),
            limits=limits,
            transport=stream_transport(tls_context(), limits),
        )
    return client


# A lone surrogate can't be encoded for the database, nor NUL stored by PostgreSQL: what the
# user is sent must be what is stored.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    return UNSTORABLE.sub("\ufffd", text)


def holds_any(text: str | bytes, secrets: list[str] | list[bytes]) -> bool:
    return any(secret in text for secret in secrets)


# A JSON string's escapes: a tool call's arguments are JSON text, which the client decodes.
JSON_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|(.))", re.DOTALL)
JSON_ESCAPED = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def json_unescaped(text: str) -> str:
    """The text with JSON's escapes decoded (an escape cut at the end left as it is)."""
    return JSON_ESCAPE.sub(
        lambda match: chr(int(match[1], 16)) if match[1] else JSON_ESCAPED.get(match[2], match[2]),
        text,
    )


def set_if(target: dict[str, Any], key: str, value: Any) -> None:
    """Unset options are not sent: the provider's default applies."""
    if value is not None:
        target[key] = value
