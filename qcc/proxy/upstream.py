"""The HTTP/1.1 client of the request path: keep-alive connections to each account's origin.

Why not ``aiohttp.ClientSession``: under load, a third of a bare aiohttp pass-through's CPU goes
to the generic client (URL and header objects, cookie, auth, proxy and tracing hooks, a
``StreamReader`` per response, a timer re-created on every read). A proxy needs none of that: it
sends one pre-rendered head and a body it already holds, and relays what comes back. This module
does just that on an ``asyncio.Protocol``, with ``httptools`` (llhttp, in C) parsing responses.

- One :class:`UpstreamClient` per running proxy owns every connection; ``close()`` ends them.
- A connection serves one request at a time; it goes back to its origin's idle stack only when
  its response was read to the end and HTTP allows reuse, and is closed after ``keepalive`` s idle.
- Every wait has a deadline (a lazily re-armed timer per connection, not one per read).
- Reading is flow-controlled: past :data:`HIGH_WATER` unread bytes the socket stops being read.
- Errors are :class:`UpstreamError` (or ``TimeoutError``), with secret-free descriptions.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict

HIGH_WATER = 1 << 20  # unread response bytes held before the socket is paused
MAX_HEAD = 64 * 1024  # a response head larger than this is refused (a relay gone wrong)


class UpstreamError(Exception):
    """A network-level failure talking to an account (never includes request headers)."""

    describe = "network error"

    def __str__(self) -> str:
        return self.describe


class CannotConnect(UpstreamError):
    def __init__(self, os_error: OSError) -> None:
        super().__init__()
        self.os_error = os_error
        self.describe = f"cannot connect ({_why(os_error)})"


def _why(error: OSError) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS: {error.reason or type(error).__name__}"
    if error.errno and error.errno > 0 and not isinstance(error, socket.gaierror):
        return os.strerror(error.errno)  # asyncio's own text names the address; this is shorter
    return error.strerror or type(error).__name__


class ConnectTimeout(UpstreamError, TimeoutError):
    describe = "connect timed out"


class ReadTimeout(TimeoutError):
    """No byte arrived before the deadline."""


class Disconnected(UpstreamError):
    describe = "server disconnected"


class BodyBroken(UpstreamError):
    describe = "response body broken off"


class BadResponse(UpstreamError):
    describe = "invalid HTTP response"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an account's requests go: parsed once from its ``base_url``."""

    tls: bool
    host: str
    port: int
    host_header: str
    prefix: str  # the base URL's path, without a trailing slash

    @classmethod
    def parse(cls, base_url: str) -> Origin:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        default = port == (443 if tls else 80)
        return cls(tls, host, port, shown if default else f"{shown}:{port}", parts.path.rstrip("/"))


def render_head(method: str, target: str, host: str, lines: list[str], body_length: int) -> bytes:
    """The request head: request line, Host, the given ``Name: value`` lines, Content-Length."""
    parts = [f"{method} {target} HTTP/1.1", f"Host: {host}", *lines]
    if body_length or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        parts.append(f"Content-Length: {body_length}")
    head = "\r\n".join(parts) + "\r\n\r\n"
    # Each line must be one line: a CR or LF inside a value would smuggle in a header.
    if head.count("\n") != len(parts) + 1 or head.count("\r") != len(parts) + 1:
        raise ValueError("a request header contains a line break")
    return head.encode("utf-8", "surrogateescape")


class Connection(asyncio.Protocol):
    """One keep-alive connection, and the response currently being read from it."""

    def __init__(self, client: UpstreamClient, origin: Origin) -> None:
        self.client = client
        self.origin = origin
        self.loop = client.loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._reset()

    def _reset(self) -> None:
        self.head_done = False
        self.complete = False
        self.reusable = False
        self.error: BaseException | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.reason = b""
        self.pieces: list[bytes] = []
        self.size = 0
        self.paused = False
        self.head_only = False

    # ---- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.idle_since:
            self._fail(BadResponse())  # bytes nobody asked for: this connection is not reusable
            return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade, BadResponse):
            self._fail(BadResponse())

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.client.forget(self)
        if self.head_done and not self.complete and self.error is None and self._unframed:
            self.complete = True  # a body delimited by the end of the connection (HTTP/1.0 style)
        elif not self.complete and self.error is None:
            self.error = BodyBroken() if self.head_done else Disconnected()
        self._wake()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ---- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            self.reusable = False  # more bytes after the response: never reuse this connection

    def on_status(self, reason: bytes) -> None:
        self.reason += reason
        self._count_head(len(reason))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self._count_head(len(name) + len(value))

    def _count_head(self, size: int) -> None:
        self.head_size += size
        if self.head_size > MAX_HEAD:
            raise BadResponse()  # surfaces from feed_data as a callback error

    def on_headers_complete(self) -> None:
        if self._parser.get_status_code() < 200:
            self.headers = []  # 1xx: an interim answer; the real head follows
            self.reason = b""
            self.head_size = 0
            return
        self.head_done = True
        if self.head_only:
            self._finish(reusable=False)  # HEAD: no body follows, whatever the headers say
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.pieces.append(body)
        self.size += len(body)
        if self.size > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.head_done and not self.complete:
            self._finish(self._parser.should_keep_alive())

    # ---- the request side ----------------------------------------------------------------

    @property
    def _unframed(self) -> bool:
        for name, _ in self.headers:
            if name.lower() in (b"content-length", b"transfer-encoding"):
                return False
        return True

    def _finish(self, reusable: bool) -> None:
        self.complete = True
        self.reusable = reusable
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_timer(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None:
            if self.idle_since and self.loop.time() >= self._deadline:
                self.close()  # idle past keep-alive
            elif self.idle_since:
                self._arm(self._deadline)
            return
        if waiter.done():
            return
        if self.loop.time() >= self._deadline:
            waiter.set_exception(ReadTimeout())
        else:
            self._arm(self._deadline)

    def _arm(self, deadline: float) -> None:
        self._deadline = deadline
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    async def wait(self, deadline: float) -> None:
        """Until the parser has news (or the connection ends); ``ReadTimeout`` at ``deadline``."""
        waiter = self.loop.create_future()
        self._waiter = waiter
        self._arm(deadline)
        try:
            await waiter
        finally:
            self._waiter = None

    def send(self, method: str, head: bytes, body: bytes) -> None:
        self._reset()
        self.head_only = method == "HEAD"
        self.idle_since = 0.0
        assert self.transport is not None
        if len(body) < 65536:
            self.transport.write(head + body)  # one small copy saves a second send
        else:
            self.transport.writelines((head, body))

    def take(self) -> bytes:
        data = self.pieces[0] if len(self.pieces) == 1 else b"".join(self.pieces)
        self.pieces = []
        self.size = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
        self.client.forget(self)


class Response:
    """The head of an account's answer, and its body as it arrives."""

    __slots__ = ("_conn", "_headers", "_released", "pairs", "reason", "status")

    def __init__(self, conn: Connection, status: int) -> None:
        self.status = status
        self.reason = conn.reason.decode("latin-1")
        self.pairs = [
            (name.decode("latin-1"), value.decode("utf-8", "surrogateescape"))
            for name, value in conn.headers
        ]
        self._headers: CIMultiDict[str] | None = None
        self._conn = conn
        self._released = False

    @property
    def headers(self) -> CIMultiDict[str]:
        """Every response header (built on first use; the relay works from :attr:`pairs`)."""
        if self._headers is None:
            self._headers = CIMultiDict(self.pairs)
        return self._headers

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None and value.isdigit() else None

    def at_eof(self) -> bool:
        """The whole body has arrived and been read."""
        conn = self._conn
        return conn.complete and not conn.pieces

    def ready(self) -> bytes:
        """Body bytes that have already arrived (none waited for)."""
        return self._conn.take() if self._conn.pieces else b""

    async def read(self, deadline: float) -> bytes:
        """The next body bytes (all that have arrived); ``b""`` at the end of the body.

        Bytes that arrived before a failure are returned first; the failure is raised next time.
        """
        conn = self._conn
        while not conn.pieces:
            if conn.complete:
                return b""
            if conn.error is not None:
                raise conn.error
            await conn.wait(deadline)
        return conn.take()

    def close(self) -> None:
        """Done early: the connection is closed, which also tells the account to stop."""
        self._released = True
        self._conn.close()

    def release(self) -> None:
        """Done with the response: its connection is reused if that is safe, else closed."""
        if self._released:
            return
        self._released = True
        conn = self._conn
        if conn.complete and conn.reusable and not conn.pieces and not conn.closed:
            conn.client.park(conn)
        else:
            conn.close()


class UpstreamClient:
    """Every connection to every account of one running proxy."""

    def __init__(self, *, keepalive: float = 30.0, tls: ssl.SSLContext | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.keepalive = keepalive
        self._idle: dict[Origin, list[Connection]] = {}
        self._busy: set[Connection] = set()
        self._origins: dict[str, Origin] = {}
        self._tls = tls  # default: the system's trust store, as created on first https use

    def origin(self, base_url: str) -> Origin:
        origin = self._origins.get(base_url)
        if origin is None:
            origin = self._origins[base_url] = Origin.parse(base_url)
        return origin

    async def request(
        self,
        origin: Origin,
        method: str,
        head: bytes,
        body: bytes,
        *,
        connect_timeout: float,
        deadline: float,
    ) -> Response:
        """Send one request; return once the response head is in (by ``deadline``)."""
        conn = self._reuse(origin)
        if conn is None:
            conn = await self._connect(origin, connect_timeout)
        self._busy.add(conn)
        try:
            conn.send(method, head, body)
            while not conn.head_done:
                if conn.error is not None:
                    raise conn.error
                await conn.wait(deadline)
        except BaseException:
            conn.close()
            raise
        return Response(conn, conn._parser.get_status_code())

    def _reuse(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        now = self.loop.time()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive:
                return conn
            conn.close()
        return None

    async def _connect(self, origin: Origin, limit: float) -> Connection:
        tls: ssl.SSLContext | None = None
        if origin.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        try:
            async with asyncio.timeout(limit):
                _, conn = await self.loop.create_connection(
                    lambda: Connection(self, origin),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls else None,
                )
        except TimeoutError:
            raise ConnectTimeout() from None
        except OSError as exc:
            raise CannotConnect(exc) from None
        return conn

    def park(self, conn: Connection) -> None:
        self._busy.discard(conn)
        conn.idle_since = now = self.loop.time()
        conn._arm(now + self.keepalive)
        self._idle.setdefault(conn.origin, []).append(conn)

    def forget(self, conn: Connection) -> None:
        self._busy.discard(conn)
        idle = self._idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)

    @property
    def open_connections(self) -> int:
        return len(self._busy) + sum(len(idle) for idle in self._idle.values())

    def close(self) -> None:
        for conn in [*self._busy, *(c for idle in self._idle.values() for c in idle)]:
            conn.close()
        self._idle.clear()
        self._busy.clear()
