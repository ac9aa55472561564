"""The sockets under the stream client: asyncio's own transports, each read's timeout kept by
one timer per connection.

httpcore2's default backend goes through anyio, which opens a cancel scope with a timer for
every read: a third of the CPU of reading a streamed answer's event, and an answer is
hundreds of them. Here a read that must wait sets its deadline and the connection's one timer
moves on to it only when it fires, so most reads schedule nothing. Connecting, TLS, error
kinds and keep-alive checks are as httpcore2 expects of any backend.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import math
import socket
import ssl
from asyncio.staggered import staggered_race
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any

import httpcore2
import httpx2
from httpcore2 import AsyncNetworkBackend, AsyncNetworkStream

# Bytes read ahead of the reader before the socket stops being read (the client reads
# httpcore2's 64 KiB at a time).
READ_AHEAD = 256 * 1024
# anyio's wait before trying a host's next address (RFC 8305's recommended 250 ms).
HAPPY_EYEBALLS_DELAY = 0.25


class Connection(asyncio.Protocol):
    """One connection's bytes as they arrive, and whether it ended (cleanly or not)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.received: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.ended = False
        self.failure: Exception | None = None
        self.reading_paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.writable: asyncio.Future[None] | None = None
        # The waiting read's deadline, and the one timer that checks it.
        self.read_by = math.inf
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received.append(data)
        self.size += len(data)
        if self.size > READ_AHEAD and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        self.wake()

    def eof_received(self) -> None:
        self.ended = True
        self.wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.failure = exc
        self.wake()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def pause_writing(self) -> None:
        self.writable = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def check_read_time(self) -> None:
        """The timer: fails the waiting read past its deadline, else moves on to it."""
        self.timer = None
        if self.waiter is None or self.waiter.done() or self.read_by == math.inf:
            return  # no read waits on a deadline: the next one that does sets the timer
        if self.loop.time() < self.read_by:
            self.timer = self.loop.call_at(self.read_by, self.check_read_time)
        else:
            self.waiter.set_exception(httpcore2.ReadTimeout("timed out"))

    async def read(self, max_bytes: int, timeout: float | None) -> bytes:
        if not self.received and not self.ended:
            self.read_by = math.inf if timeout is None else self.loop.time() + timeout
            if self.timer is not None and self.timer.when() > self.read_by:
                self.timer.cancel()  # a shorter timeout than the last read's
                self.timer = None
            if self.timer is None and self.read_by != math.inf:
                self.timer = self.loop.call_at(self.read_by, self.check_read_time)
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        if not self.received:
            if self.failure is not None:
                raise httpcore2.ReadError("connection lost")
            return b""
        data = self.received.popleft()
        if len(data) > max_bytes:
            data, rest = data[:max_bytes], data[max_bytes:]
            self.received.appendleft(rest)
        self.size -= len(data)
        if self.reading_paused and self.size <= READ_AHEAD:
            self.reading_paused = False
            self.transport.resume_reading()
        return data


class Stream(AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, connection: Connection) -> None:
        self.transport = transport
        self.connection = connection

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self.connection.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self.connection.ended or self.transport.is_closing():
            raise httpcore2.WriteError("connection closed")
        self.transport.write(buffer)
        if self.connection.writable is not None:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self.connection.writable)
            except TimeoutError:
                raise httpcore2.WriteTimeout("timed out") from None
            if self.connection.failure is not None:
                raise httpcore2.WriteError("connection lost")

    async def aclose(self) -> None:
        self.transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self.transport, self.connection, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            self.transport.close()
            raise httpcore2.ConnectTimeout("timed out") from None
        except (OSError, ssl.SSLError, ConnectionError) as error:
            self.transport.close()
            raise httpcore2.ConnectError(type(error).__name__) from None
        self.connection.transport = transport
        return Stream(transport, self.connection)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # An idle kept-alive connection the server closed (or wrote to) is not reused.
            return bool(self.connection.received) or self.connection.ended
        name = {
            "ssl_object": "ssl_object",
            "client_addr": "sockname",
            "server_addr": "peername",
            "socket": "socket",
        }.get(info)
        return self.transport.get_extra_info(name) if name else None


async def connect(
    host: str, port: int, local_address: str | None
) -> tuple[asyncio.Transport, Connection]:
    """A connection to the first of the host's addresses to answer, as anyio connects (and
    uvloop's create_connection does not): each next address tried HAPPY_EYEBALLS_DELAY after
    the one before, IPv6 and IPv4 in turn, the first connected kept and the rest closed."""
    loop = asyncio.get_running_loop()
    found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    by_family: dict[int, list[Any]] = {}
    for family, *_, address in found:
        if address not in by_family.setdefault(family, []):
            by_family[family].append(address)
    addresses = [
        address
        for addresses in itertools.zip_longest(*by_family.values())
        for address in addresses
        if address is not None
    ]
    local = (local_address, 0) if local_address else None
    attempts = [
        partial(loop.create_connection, Connection, address[0], address[1], local_addr=local)
        for address in addresses
    ]
    if len(attempts) == 1:
        return await attempts[0]()
    opened: list[asyncio.Transport] = []

    async def attempt(open_one: Callable[[], Awaitable[Any]]) -> Any:
        transport, connection = await open_one()
        opened.append(transport)
        return transport, connection

    winner, _, errors = await staggered_race(
        [partial(attempt, open_one) for open_one in attempts], HAPPY_EYEBALLS_DELAY
    )
    for transport in opened:
        if winner is None or transport is not winner[0]:
            transport.close()
    if winner is None:
        raise next((error for error in errors if error is not None), OSError("no address"))
    return winner


class Backend(AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                transport, connection = await connect(host, port, local_address)
        except TimeoutError:
            raise httpcore2.ConnectTimeout("timed out") from None
        except OSError as error:
            raise httpcore2.ConnectError(type(error).__name__) from None
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return Stream(transport, connection)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncNetworkStream:
        raise httpcore2.ConnectError("providers are reached over TCP")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def stream_transport(
    ssl_context: ssl.SSLContext, limits: httpx2.Limits
) -> httpx2.AsyncHTTPTransport:
    """httpx2's transport with its connection pool on this backend (it takes no backend of
    its own: the pool it built is replaced, unused, by one built the same way)."""
    transport = httpx2.AsyncHTTPTransport(verify=ssl_context, limits=limits)
    transport._pool = httpcore2.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=Backend(),
    )
    return transport
