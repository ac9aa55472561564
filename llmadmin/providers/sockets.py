"""The sockets under the stream client: asyncio's own transports, each read's timeout kept by
one timer per connection.

httpcore2's default backend goes through anyio, which opens a cancel scope with a timer for
every read: a third of the CPU of reading a streamed answer's event, and an answer is
hundreds of them. Here a read that must wait sets its deadline and the connection's one timer
moves on to it only when it fires, so most reads schedule nothing. Connecting, error kinds
and keep-alive checks are as httpcore2 expects of any backend.

TLS is run here over memory buffers, as anyio runs it, not by the loop's own TLS transport:
uvloop's kept a paused reader's last bytes from it when the provider then closed, and waited
30 s for the provider's goodbye on closing an answer left midway, the provider streaming on.
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
# What one TLS read decrypts at most.
TLS_READ = 64 * 1024
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
        # TLS: the bytes received go through `tls` (its handshake done) before the reader's.
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls: ssl.SSLObject | None = None
        self.handshaking = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.handshaking:
            self.incoming.write(data)
            self.wake()
            return
        if self.tls is not None:
            self.incoming.write(data)
            data = self.decrypted()
        if data:
            self.received.append(data)
            self.size += len(data)
            if self.size > READ_AHEAD and not self.reading_paused:
                self.reading_paused = True
                self.transport.pause_reading()
        self.wake()

    def decrypted(self) -> bytes:
        """All the TLS records received so far hold, at once: nothing waits in the TLS layer
        for a reader (or is lost with the connection)."""
        pieces = []
        try:
            while piece := self.tls.read(TLS_READ):
                pieces.append(piece)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:  # the provider's TLS goodbye: the answer's end
            self.ended = True
        except ssl.SSLError as error:  # a record that does not decrypt
            self.failure = error
            self.ended = True
            self.transport.abort()
        self.send_tls()  # what TLS itself answers (TLS 1.3's session tickets, key updates)
        return b"".join(pieces)

    def send_tls(self) -> None:
        if self.outgoing.pending:
            self.transport.write(self.outgoing.read())

    def eof_received(self) -> None:
        self.ended = True
        self.wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.failure = self.failure or exc
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
            # TLS records may hold none of the answer (TLS 1.3's session tickets).
            while not self.received and not self.ended:
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
        connection = self.connection
        if connection.ended or self.transport.is_closing():
            raise httpcore2.WriteError("connection closed")
        if connection.tls is None:
            self.transport.write(buffer)
        else:
            try:
                connection.tls.write(buffer)
            except ssl.SSLError:
                raise httpcore2.WriteError("TLS") from None
            connection.send_tls()
        if connection.writable is not None:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(connection.writable)
            except TimeoutError:
                raise httpcore2.WriteTimeout("timed out") from None
            if connection.failure is not None:
                raise httpcore2.WriteError("connection lost")

    async def aclose(self) -> None:
        self.transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        connection = self.connection
        tls = ssl_context.wrap_bio(
            connection.incoming, connection.outgoing, server_hostname=server_hostname
        )
        connection.handshaking = True
        for data in connection.received:  # sent before the handshake: the provider's part
            connection.incoming.write(data)
        connection.received.clear()
        connection.size = 0
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        tls.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        connection.send_tls()
                    if connection.ended:
                        raise ConnectionResetError
                    connection.waiter = connection.loop.create_future()
                    try:
                        await connection.waiter
                    finally:
                        connection.waiter = None
        except TimeoutError:
            self.transport.abort()
            raise httpcore2.ConnectTimeout("timed out") from None
        except (OSError, ssl.SSLError) as error:
            self.transport.abort()
            raise httpcore2.ConnectError(type(error).__name__) from None
        except BaseException:
            self.transport.abort()
            raise
        connection.send_tls()
        connection.tls, connection.handshaking = tls, False
        connection.data_received(b"")  # what came with the handshake's last records
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # An idle kept-alive connection the server closed (or wrote to) is not reused.
            return bool(self.connection.received) or self.connection.ended
        if info == "ssl_object":
            return self.connection.tls
        name = {
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
    settled = False

    async def attempt(open_one: Callable[[], Awaitable[Any]]) -> Any:
        transport, connection = await open_one()
        if settled:  # connected after the caller went away: nobody will use it
            transport.close()
            raise ConnectionAbortedError
        opened.append(transport)
        return transport, connection

    winner = None
    try:
        winner, _, errors = await staggered_race(
            [partial(attempt, open_one) for open_one in attempts], HAPPY_EYEBALLS_DELAY
        )
    finally:
        # Cancelled (the caller went away, or the connect timed out) or done: every connection
        # but the one returned is closed, those made since too.
        settled = True
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
