"""One HTTP/1.1 keep-alive connection on an ``asyncio.Protocol``, and the response read from it.

``httptools`` (llhttp, in C) parses responses. Every wait has a deadline (a lazily re-armed timer
per connection, not one per read). Reading is flow-controlled: past :data:`HIGH_WATER` unread
bytes the socket stops being read. A connection returns to its :class:`~qcc.net.client.Route`'s
idle stack only when its response was read to the end and HTTP allows reuse.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, cast

import httptools
from multidict import CIMultiDict

from qcc.net.errors import BadResponse, BodyBroken, Disconnected, ReadTimeout

if TYPE_CHECKING:
    from qcc.net.client import Route

HIGH_WATER = 1 << 20  # unread response bytes held before the socket is paused
MAX_HEAD = 64 * 1024  # a response head larger than this is refused (a relay gone wrong)


class Connection(asyncio.Protocol):
    """One keep-alive connection, and the response currently being read from it."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.loop = route.loop
        self.answered = False  # a byte of the current request's answer came back
        self.reused = False  # taken from the idle stack at least once
        self.holds_slot = False  # counts toward its route's max_connections
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
        self.answered = True
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
        self.route.forget(self)
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
        self.answered = False
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
        self.route.forget(self)


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
            conn.route.park(conn)
        else:
            conn.close()
