"""Transport shared by every provider family: auth header, timeouts, same-origin redirects,
errors from a fixed vocabulary, and server-sent-event framing.

Nothing a provider sends is ever put into a message: not its status text, error type, code or
message, a redirect target, nor a body. Providers' answers are untrusted and may echo the key.
A message is built from our own words, the admin's configured host and a status number.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import logging
import re
import traceback
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Literal
from urllib.parse import quote, urlencode, urljoin, urlsplit

import httpx2
from asgiref.sync import sync_to_async
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

logger = logging.getLogger(__name__)

# Every request says who calls, in the usual product/version form: a provider's logs and
# support can tell our calls apart.
USER_AGENT = f"llmadmin/{importlib.metadata.version('llmadmin')}"
CheckStatus = Literal["verified", "rejected", "unreachable", "no_permission"]
MAX_REDIRECTS = 3
MAX_PAGES = 20


# --- What a client is given, and what it gives back --------------------------------------


@dataclass(frozen=True)
class Connection:
    """Where and how to reach one provider account: plain settings, no database rows."""

    # Never in a repr: error reports and logs show reprs.
    api_key: str = field(default="", repr=False)
    base_url: str = ""
    region: str = ""
    # The admin's own base URL, when set (a proxy), else empty.
    base_url_override: str = ""
    # How the account authenticates, one of its type's auth modes; AWS access keys for "aws_keys".
    auth: str = "api_key"
    aws_access_key_id: str = field(default="", repr=False)
    aws_secret_access_key: str = field(default="", repr=False)
    aws_session_token: str = field(default="", repr=False)


@dataclass(frozen=True)
class RemoteModel:
    identifier: str
    context_limit: int | None = None


# What a listed model id may be before a page shows it: every id models.dev lists for our
# provider types fits (OpenRouter's `vendor/model:free` and `~vendor/alias`, Bedrock's
# inference profiles and ARNs, Gemini's `models/…` stripped), as do Azure deployment names;
# at most as long as LLMModel.identifier.
LISTED_MODEL_ID = re.compile(r"[A-Za-z0-9._:/@+~-]{1,200}")


# A listed id sharing this many characters in a row with a credential is left out: a provider
# may list the key it was sent, whole or in pieces across several ids.
SECRET_RUN = 8


@sensitive_variables("secrets", "pieces")
def showable_models(
    models: list[RemoteModel], *, secrets: Iterable[str]
) -> tuple[list[RemoteModel], int]:
    """The listed models whose ids are plausible model ids holding no piece of the account's
    credentials, and how many were left out."""
    pieces = {
        secret[start : start + SECRET_RUN]
        for secret in secrets
        if secret
        for start in range(max(len(secret) - SECRET_RUN, 0) + 1)
    }
    kept = [
        model
        for model in models
        if LISTED_MODEL_ID.fullmatch(model.identifier)
        and not any(piece in model.identifier for piece in pieces)
    ]
    return kept, len(models) - len(kept)


@dataclass(frozen=True)
class ChatInput:
    """What a chat turn sends: a summary of older messages, then the recent messages."""

    system: str
    messages: list[dict[str, str]]  # {"role": "user" | "assistant", "content": ...}


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Thinking:
    """The model is thinking (a thinking or reasoning delta): not shown nor stored, but it is
    progress, so it holds the answer open against the idle limit."""


@dataclass(frozen=True)
class Usage:
    """Tokens of a turn; input counts everything the model read, cached tokens included.

    The cache and reasoning counts are parts of those totals, priced apart; None where the
    provider did not report them (or sent a count that could not be read).
    """

    input_tokens: int | None
    output_tokens: int | None
    # Parts of input_tokens: read from, and written to, the provider's prompt cache.
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    # Part of output_tokens: the model's thinking.
    reasoning_tokens: int | None = None


class StopReason(StrEnum):
    """Why an answer ended, in our own words: each family maps its provider's reasons here."""

    COMPLETE = "complete"
    # Truncated at max output tokens.
    MAX_TOKENS = "max_tokens"
    # Truncated because the conversation filled the model's context window.
    CONTEXT_FULL = "context_full"
    # The model declined to answer.
    REFUSED = "refused"
    # A safety check blocked the prompt or the answer.
    BLOCKED = "blocked"
    CONTENT_FILTER = "content_filter"
    # The provider paused a long turn: the answer so far is kept, and a further message lets
    # the model go on (Anthropic's pause_turn).
    PAUSED = "paused"
    # The provider stopped for a reason of its own that none of the above names.
    OTHER = "other"
    # The stream ended before the provider said it was done.
    CUT_OFF = "cut_off"
    # The provider reported an error, or the answer could not be read.
    FAILED = "failed"
    # Ended by us: the answer passed its deadline, or the provider went quiet too long.
    TIMED_OUT = "timed_out"
    # The user went away (closed the page, lost the connection) before the answer ended.
    DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class Finish:
    """The provider's own end of the answer, and why."""

    reason: StopReason


StreamEvent = TextDelta | Thinking | Usage | Finish


# --- The fixed vocabulary ------------------------------------------------------------------


class ProviderError(Exception):
    """A call that did not succeed. The message is ours alone: safe to show, store and log."""

    status: CheckStatus = "unreachable"
    # How an answer that ends with this error is recorded.
    stop_reason = StopReason.FAILED


class KeyRejected(ProviderError):
    status: CheckStatus = "rejected"


class Unreachable(ProviderError):
    pass


class ChatError(ProviderError):
    pass


class LacksPermission(ProviderError):
    """The credentials are valid but may not make this call."""

    status: CheckStatus = "no_permission"


class NoCredentials(ProviderError):
    """No credentials to call with: none stored or readable, or none on the server."""


# What these say is how the server is set up, for an administrator to fix: a developer is
# told only that the model is unavailable.
SETUP_FAULTS = (KeyRejected, LacksPermission, NoCredentials)


def key_rejected(status: int) -> KeyRejected:
    if status == 403:
        return KeyRejected(
            "The provider refused the API key (403): it is wrong or lacks permission."
        )
    return KeyRejected(f"The provider rejected the API key ({status}).")


def answered(host: str, status: int) -> str:
    """Our words for an error answer that is no refused key: what it means, the status
    number and its standard name (never the provider's own reason text)."""
    try:
        code = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        code = str(status)
    if status in (404, 405, 410):
        return f"Wrong address: the server at {host} answered {code}; check the base URL."
    if status >= 500:
        return f"The server at {host} failed: it answered {code}."
    return f"The server at {host} refused the call: it answered {code}."


def rate_limited() -> ChatError:
    return ChatError("The provider's rate limit was reached: try again in a moment.")


def overloaded() -> ChatError:
    return ChatError("The provider is overloaded: try again in a moment.")


def context_too_long() -> ChatError:
    return ChatError("The conversation is too long for this model's context limit.")


def refused(status: int) -> ChatError:
    return ChatError(f"The provider refused the request ({status}).")


def malformed() -> ChatError:
    return ChatError("The provider sent a malformed answer.")


def cut_off() -> ChatError:
    error = ChatError("The provider's answer was cut off before it finished.")
    error.stop_reason = StopReason.CUT_OFF
    return error


def failed_mid_answer() -> ChatError:
    return ChatError("The provider reported an error mid-answer.")


# A lone surrogate can't be encoded for the database, nor NUL stored by PostgreSQL: what the
# user is sent must be what is stored.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    return UNSTORABLE.sub("\ufffd", text)


def timed_out(message: str) -> ChatError:
    error = ChatError(message)
    error.stop_reason = StopReason.TIMED_OUT
    return error


def went_silent() -> ChatError:
    return timed_out(
        f"The provider sent nothing for {settings.PROVIDER_READ_TIMEOUT:g} s: the answer was "
        "ended there."
    )


def idle_too_long() -> ChatError:
    return timed_out(
        f"The provider sent no answer text for {settings.PROVIDER_STREAM_IDLE_TIMEOUT:g} s: "
        "the answer was ended there."
    )


def past_deadline() -> ChatError:
    return timed_out(
        f"The answer took longer than {settings.PROVIDER_STREAM_TIMEOUT:g} s: it was ended there."
    )


# Words in a refused request's body that mean the conversation is too long. The body is only
# matched against these, never repeated.
CONTEXT_WORDS = (
    "context length",
    "context window",
    "too long",
    "too many tokens",
    "input token count",
)


def chat_error_for(status: int, body: str) -> ProviderError:
    """Our message for a refused chat request."""
    if status in (401, 403):
        return key_rejected(status)
    if status == 429:
        return rate_limited()
    if status in (503, 529):
        return overloaded()
    if status in (400, 413) and any(words in body.lower() for words in CONTEXT_WORDS):
        return context_too_long()
    return refused(status)


def mid_stream_error(kind: str) -> ChatError:
    """Our message for an error event inside a stream, from the provider's error type or code.

    The type is only compared with known words, never repeated.
    """
    kind = kind.lower()
    if "overloaded" in kind or kind in ("503", "529", "unavailable", "servicesunavailable"):
        return overloaded()
    if "rate_limit" in kind or "throttling" in kind or kind in ("429", "resource_exhausted"):
        return rate_limited()
    return failed_mid_answer()


def error_kind(error: Any) -> str:
    """The type or code of an error object, for mid_stream_error to compare; never shown."""
    if not isinstance(error, dict):
        return ""
    return str(error.get("type") or error.get("status") or error.get("code") or "")


# --- The client base: one account's calls over HTTP ----------------------------------------


class ProviderClient:
    """Calls to one provider account: the key only in the auth header, to the configured host.

    A family's client says how to authenticate (auth_headers), verify a key (verify_key), list
    models (fetch_models) and chat (stream). The public calls around them turn anything
    unexpected in an answer into one of our own errors.
    """

    @sensitive_variables("connection")
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.base_url = connection.base_url
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
        """Send the turn; yield the answer's text as it streams in, then its usage and end.

        Every answer has an end: PROVIDER_STREAM_TIMEOUT from the request on, or
        PROVIDER_STREAM_IDLE_TIMEOUT after the last text or thinking. Keep-alive comments,
        pings and usage counts don't hold an answer open. Either limit closes the upstream
        request and raises a ChatError (stop reason timed_out). Thinking is not passed on.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.PROVIDER_STREAM_TIMEOUT
        quiet_until = loop.time() + settings.PROVIDER_STREAM_IDLE_TIMEOUT
        events = aiter(self.stream(model, chat))
        try:
            while True:
                try:
                    async with asyncio.timeout_at(min(deadline, quiet_until)):
                        with untrusted_answer(malformed):
                            event = await anext(events, None)
                except TimeoutError:
                    raise (
                        past_deadline() if loop.time() >= deadline else idle_too_long()
                    ) from None
                if event is None:
                    return
                if isinstance(event, TextDelta | Thinking):
                    quiet_until = loop.time() + settings.PROVIDER_STREAM_IDLE_TIMEOUT
                if isinstance(event, TextDelta):
                    yield TextDelta(storable(event.text))
                elif not isinstance(event, Thinking):
                    yield event
        finally:
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
    async def open_stream(self, url: str, body: dict[str, Any]) -> AsyncIterator[httpx2.Response]:
        """POST a chat request and hold its streaming answer open; closed on leaving, however
        that happens (the answer ended, the client went away, a limit passed). A refusal
        becomes our own ChatError."""
        host = urlsplit(url).netloc
        try:
            # In a thread: signing may load credentials over the network (Bedrock's chain).
            request = await sync_to_async(self.build, thread_sensitive=False)(
                "POST", url, body=json.dumps(body).encode(), stream=True
            )
            self.billable = True
            response = await stream_client().send(request, stream=True)
        except ProviderError:
            raise
        except httpx2.ReadTimeout:  # the request was sent and no answer began
            raise went_silent() from None
        except Exception as error:
            self.billable = False  # the request never reached a provider that took it
            raise unreachable(ChatError, host, error) from None
        try:
            if response.status_code >= 300:
                self.billable = False
                head = await head_of(response)
                refusal = self.refusal("POST", response.status_code, head, response.headers)
                raise refusal or chat_error_for(response.status_code, head)
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
        headers = {"Accept": accept, "User-Agent": USER_AGENT}
        if body:
            headers["Content-Type"] = "application/json"
        request.headers.update(self.authorize(method, str(request.url), headers, body))
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
            with httpx2.Client(cookies=NO_COOKIES) as client:
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


def is_plain(response: httpx2.Response) -> bool:
    """Whether the body is sent as is, as we ask (Accept-Encoding: identity)."""
    return response.headers.get("Content-Encoding", "").strip().lower() in ("", "identity")


def timeouts() -> httpx2.Timeout:
    return httpx2.Timeout(settings.PROVIDER_READ_TIMEOUT, connect=settings.PROVIDER_CONNECT_TIMEOUT)


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
        client = _stream_clients[loop] = httpx2.AsyncClient(
            cookies=NO_COOKIES,
            limits=httpx2.Limits(max_connections=None, max_keepalive_connections=64),
        )
    return client


# --- Streams -------------------------------------------------------------------------------


async def sse_events(response: httpx2.Response) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) of a server-sent event stream as each event arrives; comments are
    skipped.

    Lines are split as bytes and decoded as UTF-8 (as SSE is defined), whatever charset the
    provider claims. Each chunk is split as soon as it is read: nothing waits for more bytes.
    """
    event, data = "", []
    async for raw_line in lines_of(response):
        line = raw_line.decode("utf-8", "replace")
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
            if len(data) > MAX_EVENT_LINES:
                raise malformed()
    if data:
        yield event, "\n".join(data)


# An event's data lines; every provider sends one.
MAX_EVENT_LINES = 64
# SSE ends a line with CRLF, LF or CR.
LINE_END = re.compile(rb"\r\n|\n|\r")
# No event of any provider comes near this: a longer line is garbage (or an attack).
MAX_LINE = 1024 * 1024


async def lines_of(response: httpx2.Response) -> AsyncIterator[bytes]:
    """The body's lines, each as soon as its end arrives; a last unterminated line too. Only
    each new chunk is searched, so a long line costs linear time; it may not pass MAX_LINE."""
    pending: list[bytes] = []  # the line not yet ended, in pieces
    pending_size = 0
    after_cr = False
    async for chunk in chunks_of(response):
        if after_cr and chunk.startswith(b"\n"):  # the second half of a CRLF
            chunk = chunk[1:]
        after_cr = chunk.endswith(b"\r")
        *ended, rest = LINE_END.split(chunk)
        for line in ended:
            yield b"".join([*pending, line])
            pending, pending_size = [], 0
        pending.append(rest)
        pending_size += len(rest)
        if pending_size > MAX_LINE:
            raise malformed()
    if pending_size:
        yield b"".join(pending)


async def chunks_of(response: httpx2.Response) -> AsyncIterator[bytes]:
    """The body as it arrives, decompressed; a connection that breaks mid-answer cuts it off."""
    try:
        # As sent: an encoding we didn't ask for is not decoded (it then fails to parse).
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx2.TimeoutException:
        raise went_silent() from None
    except httpx2.HTTPError:
        raise cut_off() from None


def json_data(data: str | bytes) -> dict[str, Any]:
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):
        raise malformed() from None
    if not isinstance(payload, dict):
        raise malformed()
    return payload


# More than any context window: a larger count is garbage (and overflows the column).
MAX_TOKEN_COUNT = 2**31 - 1


def token_count(usage: Mapping[str, Any], name: str) -> int | None:
    """A token count from a usage object: 0 when absent (Gemini's JSON leaves zeros out),
    None when it is not a plausible whole number (-5, "lots", 1e20): a bad count is ignored,
    never stored."""
    value = usage.get(name, 0)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_COUNT:
        return value
    return None


def reported(usage: Any, *path: str) -> int | None:
    """A part of a total that the provider may leave out, at a path of keys (usage,
    "prompt_tokens_details", "cached_tokens"): None when it is bad, or absent: not reported is
    not the same as none, which token_count's 0 for an absent count would say."""
    *parents, name = path
    for parent in parents:
        usage = usage.get(parent) if isinstance(usage, Mapping) else None
    if not isinstance(usage, Mapping) or name not in usage:
        return None
    return token_count(usage, name)


def token_total(usage: Mapping[str, Any], *names: str) -> int | None:
    """The sum of counts (input and cache reads, output and thinking); None when one is bad."""
    counts = [token_count(usage, name) for name in names]
    if None in counts:
        return None
    return min(MAX_TOKEN_COUNT, sum(counts))


def set_if(target: dict[str, Any], key: str, value: Any) -> None:
    """Unset options are not sent: the provider's default applies."""
    if value is not None:
        target[key] = value


@contextmanager
def untrusted_answer(failure: Any) -> Iterator[None]:
    """Anything unexpected while calling a provider or reading its answer (a shape the parser
    did not foresee, a header the HTTP library chokes on) becomes `failure()`.

    The log says where it happened, never the error's text: that may quote the answer.
    """
    try:
        yield
    except ProviderError:
        raise
    except Exception as error:
        frame = traceback.extract_tb(error.__traceback__)[-1]
        logger.warning(
            "Unexpected %s at %s:%s while reading a provider's answer.",
            type(error).__name__,
            frame.filename,
            frame.lineno,
        )
        raise failure() from None
