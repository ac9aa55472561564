"""The sockets under the stream client (llmadmin.providers.sockets): an answer read over TLS
as it arrives, each read's timeout kept however the reads before it were timed, a large
answer read through whole (over TLS too, the provider closing after it), a kept-alive
connection the provider closed never reused, and no connection left open by a caller that
went away (midway through an answer over TLS, or through connecting).

The chat and gateway tests read every answer through these sockets over plain HTTP; here is
what they don't reach. Each runs on asyncio's loop and on uvloop, which uvicorn serves on.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler

import httpx2
import pytest
import uvloop

from llmadmin.providers.sockets import stream_transport
from tests.providers.servers import loopback_server, tls_contexts

EVENTS = 20
BIG = 3 * 1024 * 1024 + 7


class Answers(BaseHTTPRequestHandler):
    """/events: EVENTS chunks, each written alone; /pause/S: headers, then nothing for S
    seconds; /big: BIG bytes at once; /once: a whole answer, and the connection closed after
    it though HTTP/1.1 keeps it."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/pause/"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            time.sleep(float(self.path.removeprefix("/pause/")))
            self.wfile.write(b"1\r\nx\r\n0\r\n\r\n")
            return
        if self.path == "/big":
            self.send_response(200)
            self.send_header("Content-Length", str(BIG))
            self.end_headers()
            self.wfile.write(b"b" * BIG)
            return
        if self.path == "/once":
            self.send_response(200)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"once")
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for number in range(EVENTS):
            event = f"data: {number}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args) -> None:
        pass


LOOPS = [
    pytest.param(asyncio.run, id="asyncio"),
    pytest.param(uvloop.run, id="uvloop"),
]


def client(verify: ssl.SSLContext) -> httpx2.AsyncClient:
    limits = httpx2.Limits(max_connections=None, max_keepalive_connections=8)
    return httpx2.AsyncClient(transport=stream_transport(verify, limits), trust_env=False)


@pytest.fixture(scope="module")
def tls_server():
    server_context, client_context = tls_contexts()
    with loopback_server(Answers, tls=server_context) as url:
        yield url, client_context


@pytest.mark.parametrize("run", LOOPS)
def test_an_answer_over_tls_is_read_event_by_event_and_the_certificate_checked(run, tls_server):
    url, trusted = tls_server

    async def read() -> tuple[list[bytes], str]:
        async with client(trusted) as http, http.stream("GET", f"{url}/events") as response:
            chunks = [chunk async for chunk in response.aiter_raw()]
        # A trust store without the server's certificate: the connection fails, unread.
        async with client(ssl.create_default_context()) as http:
            with pytest.raises(httpx2.ConnectError) as refused:
                await http.get(f"{url}/events")
        return chunks, type(refused.value).__name__

    chunks, refused = run(read())
    assert b"".join(chunks) == b"".join(f"data: {n}\n\n".encode() for n in range(EVENTS))
    assert len(chunks) > 1  # read as it came, not at the end
    assert refused == "ConnectError"


@pytest.mark.parametrize("run", LOOPS)
def test_a_read_times_out_at_its_own_timeout_after_longer_ones_on_the_connection(run):
    """The connection's timer was set for the first request's long timeout; the second,
    on the same kept-alive connection, waits only its own 0.2 s."""

    async def read(http: httpx2.AsyncClient, url: str, timeout: float) -> float:
        started = time.monotonic()
        with pytest.raises(httpx2.ReadTimeout):
            async with http.stream("GET", url, timeout=timeout) as response:
                await response.aread()
        return time.monotonic() - started

    async def both(url: str) -> tuple[bytes, float]:
        async with client(ssl.create_default_context()) as http:
            first = await http.get(f"{url}/events", timeout=30)
            waited = await read(http, f"{url}/pause/2", timeout=0.2)
        return first.content, waited

    with loopback_server(Answers) as url:
        first, waited = run(both(url))
    assert first.startswith(b"data: 0")
    assert 0.2 <= waited < 1.5


@pytest.mark.parametrize("run", LOOPS)
def test_a_read_that_waits_less_than_its_timeout_is_not_timed_out(run):
    async def read(url: str) -> bytes:
        async with client(ssl.create_default_context()) as http:
            response = await http.get(f"{url}/pause/0.3", timeout=0.25 + 0.3)
            return response.content

    with loopback_server(Answers) as url:
        assert run(read(url)) == b"x"


@pytest.mark.parametrize("run", LOOPS)
def test_a_large_answer_read_slowly_arrives_whole(run):
    """More than the socket is read ahead of the reader: reading pauses and resumes."""

    async def read(url: str) -> bytes:
        body = b""
        http = client(ssl.create_default_context())
        async with http, http.stream("GET", f"{url}/big") as response:
            async for chunk in response.aiter_raw():
                body += chunk
                await asyncio.sleep(0.001)
        return body

    with loopback_server(Answers) as url:
        assert run(read(url)) == b"b" * BIG


@pytest.mark.parametrize("run", LOOPS)
def test_a_kept_alive_connection_the_provider_closed_is_not_reused(run):
    async def twice(url: str) -> list[bytes]:
        async with client(ssl.create_default_context()) as http:
            first = await http.get(f"{url}/once")
            await asyncio.sleep(0.05)  # the server's close arrives
            second = await http.get(f"{url}/once")
        return [first.content, second.content]

    with loopback_server(Answers) as url:
        assert run(twice(url)) == [b"once", b"once"]


@pytest.mark.parametrize("run", LOOPS)
def test_a_provider_that_refuses_the_connection_is_a_connect_error(run):
    async def connect() -> None:
        async with client(ssl.create_default_context()) as http:
            with pytest.raises(httpx2.ConnectError):
                await http.get("http://127.0.0.1:9/")

    run(connect())


# --- Leaving an answer, and connecting, leave no connection open ------------------------------


class Forever(BaseHTTPRequestHandler):
    """/forever: an event every 20 ms until the caller goes away; when that was noticed (a
    write failed) is put in `gone`."""

    protocol_version = "HTTP/1.1"
    gone: threading.Event

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"8\r\ndata: x\n\r\n")
                self.wfile.flush()
                time.sleep(0.02)
        except OSError:
            type(self).gone.set()

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("run", LOOPS)
def test_an_answer_over_tls_left_midway_closes_the_connection_at_once(run):
    server_context, trusted = tls_contexts()
    Forever.gone = threading.Event()

    async def leave(url: str) -> bool:
        async with client(trusted) as http:
            async with http.stream("GET", f"{url}/forever") as response:
                async for _ in response.aiter_raw():
                    break  # the caller leaves after the first bytes
            # The worker's loop runs on (as a server's does): does the provider see us gone?
            for _ in range(100):
                if Forever.gone.is_set():
                    return True
                await asyncio.sleep(0.02)
        return False

    with loopback_server(Forever, tls=server_context) as url:
        assert run(leave(url))


def test_a_connect_the_caller_leaves_midway_leaves_no_connection_open(monkeypatch):
    """A host of two addresses: whenever the caller goes away, every connection made is
    closed, the one made after too. (asyncio's loop only: uvloop resolves names without
    socket.getaddrinfo.)"""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(100)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    refused_port = refused.getsockname()[1]
    refused.close()
    real = socket.getaddrinfo

    def two_addresses(host, *args, **kwargs):  # the provider's host has two addresses
        if host == "two.test":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", refused_port)),
            ]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)

    def open_ones() -> int:
        """The connections made (a loopback connect is in the backlog once it returns) that
        are neither closed nor closing."""
        count = 0
        while True:
            try:
                sock = listener.accept()[0]
            except BlockingIOError:
                return count
            with sock:
                sock.setblocking(False)
                try:
                    while sock.recv(65536):
                        pass
                except BlockingIOError:
                    count += 1
                except OSError:
                    pass

    async def sweep() -> list[int]:
        left_open = []
        context = ssl.create_default_context()
        for turns in range(60):  # the caller goes away after this many turns of the loop
            async with client(context) as http:
                call = asyncio.ensure_future(http.get(f"http://two.test:{port}/"))
                for _ in range(turns):
                    await asyncio.sleep(0)
                call.cancel()
                with pytest.raises((asyncio.CancelledError, httpx2.ConnectError)):
                    await call
            await asyncio.sleep(0.01)  # closes scheduled on the loop run
            if open_ones():
                left_open.append(turns)
        return left_open

    try:
        assert asyncio.run(sweep()) == []
    finally:
        listener.close()


# --- TLS: nothing lost in its layer ------------------------------------------------------------


class BigThenClose(BaseHTTPRequestHandler):
    """/len: BIG bytes with their length, /close: BIG bytes ended by closing the connection;
    the connection closed right after either."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        if self.path == "/len":
            self.send_header("Content-Length", str(BIG))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"b" * BIG)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("run", LOOPS)
@pytest.mark.parametrize("path", ["/len", "/close"])
def test_a_large_tls_answer_the_provider_closes_after_arrives_whole(run, path):
    server_context, trusted = tls_contexts()

    async def read(url: str) -> int:
        body = 0
        http = client(trusted)
        async with http, http.stream("GET", f"{url}{path}") as response:
            async for chunk in response.aiter_raw():
                body += len(chunk)
                await asyncio.sleep(0.001)  # the reader lags; the provider has closed
        return body

    with loopback_server(BigThenClose, tls=server_context) as url:
        assert run(read(url)) == BIG
