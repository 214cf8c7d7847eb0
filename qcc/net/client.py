"""The HTTP/1.1 client of the request path and of health probes: one per process.

Why not ``aiohttp.ClientSession``: under load, a third of a bare aiohttp pass-through's CPU goes
to the generic client (URL and header objects, cookie, auth, proxy and tracing hooks, a
``StreamReader`` per response, a timer re-created on every read). A proxy needs none of that: it
sends one pre-rendered head and a body it already holds, and relays what comes back.

- :class:`UpstreamClient` owns every connection; ``close()`` ends them.
- A :class:`Route` is one account's way out: its origin, its proxy (decided once, from the
  account's ``proxy`` or the environment), its TLS context, its idle connections and its
  ``max_connections`` slots. Accounts that agree on all of these share a route.
- A connection serves one request at a time (:mod:`qcc.net.connection`).
- A reused keep-alive connection that the account closed before answering is retried once, at
  once, on a fresh connection: that is the keep-alive race, not the account's failure.
- Errors are :class:`UpstreamError` (or ``TimeoutError``), with secret-free descriptions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from qcc.net import dial, proxies
from qcc.net.connection import Connection, Response
from qcc.net.errors import (
    BadSetting,
    CannotConnect,
    ConnectTimeout,
    Disconnected,
    ProxyFailed,
    UpstreamError,
)

log = logging.getLogger("qcc.net")
DEFAULT_MAX_CONNECTIONS = 100


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


class RouteSpec(Protocol):
    """What the client needs from an account (``qcc.config.model.Account`` fits)."""

    @property
    def base_url(self) -> str: ...
    @property
    def proxy(self) -> str | None: ...
    @property
    def ca_file(self) -> str | None: ...
    @property
    def max_connections(self) -> int: ...


class Route:
    """One way out to one origin: proxy, TLS, idle connections and connection slots."""

    def __init__(
        self,
        client: UpstreamClient,
        origin: Origin,
        proxy: proxies.ProxyURL | None,
        tls: ssl.SSLContext | None,
        limit: int,
        error: UpstreamError | None = None,
    ) -> None:
        self.client = client
        self.loop = client.loop
        self.origin = origin
        self.proxy = proxy
        self.tls = tls
        self.limit = limit
        self.error = error  # set when the route cannot be used as configured
        self.idle: list[Connection] = []
        self.busy = 0  # slots taken: requests between acquiring a slot and releasing it
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.host_header = origin.host_header
        self.prefix = origin.prefix
        self.forward_proxy = proxy is not None and proxy.scheme == "http" and not origin.tls
        self.proxy_line = b""
        if self.forward_proxy:
            assert proxy is not None
            # An http account through an HTTP proxy: absolute-form targets, and the proxy's
            # credentials on every request (appended to the head, never logged).
            self.prefix = f"http://{origin.host_header}{origin.prefix}"
            auth = proxy.basic_auth()
            if auth is not None:
                self.proxy_line = f"Proxy-Authorization: {auth}\r\n".encode()

    @property
    def via(self) -> str:
        return f" via proxy {self.proxy.masked()}" if self.proxy is not None else ""

    # ---- slots (max_connections) -------------------------------------------------------

    async def acquire(self, deadline: float) -> None:
        """Take a slot, waiting until ``deadline`` at most (then :class:`ConnectTimeout`)."""
        if self.busy < self.limit and not self.waiters:
            self.busy += 1
            return
        waiter = self.loop.create_future()
        self.waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter  # the releasing request hands its slot over: busy is unchanged
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return  # handed over just as time ran out: ours
            raise ConnectTimeout(
                f"cannot connect within the connect timeout: all {self.limit} connections to "
                f"this account are busy (max_connections){self.via}",
                local=True,
            ) from None
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over, but our caller is gone: pass it on
            raise
        finally:
            if waiter in self.waiters:
                self.waiters.remove(waiter)

    def release(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.busy -= 1

    # ---- connections -------------------------------------------------------------------

    def reuse(self) -> Connection | None:
        idle = self.idle
        now = self.loop.time()
        keepalive = self.client.keepalive
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < keepalive:
                conn.reused = True
                return conn
            conn.close()
        return None

    async def connect(self) -> Connection:
        """A fresh connection (the caller bounds the time)."""
        if self.error is not None:
            raise self.error
        origin = self.origin
        loop = self.loop
        resolver = self.client.resolver
        try:
            if self.proxy is None:
                sock = await dial.open_socket(origin.host, origin.port, resolver)
            else:
                sock = await dial.through_proxy(
                    self.proxy, origin.host, origin.port, resolver, origin.tls
                )
        except OSError as exc:
            raise CannotConnect(exc) from None
        try:
            _, conn = await loop.create_connection(
                lambda: Connection(self),
                sock=sock,
                ssl=self.tls,
                server_hostname=origin.host if self.tls is not None else None,
            )
        except OSError as exc:
            sock.close()
            raise CannotConnect(exc) from None
        except BaseException:
            sock.close()
            raise
        self.client.connections.add(conn)
        return conn

    def park(self, conn: Connection) -> None:
        conn.idle_since = now = self.loop.time()
        conn._arm(now + self.client.keepalive)
        self._done(conn)
        self.idle.append(conn)

    def forget(self, conn: Connection) -> None:
        self._done(conn)
        self.client.connections.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def _done(self, conn: Connection) -> None:
        if conn.holds_slot:
            conn.holds_slot = False
            self.release()


class UpstreamClient:
    """Every connection to every account of one process (the proxy, or ``qcc health check``).

    ``environ`` (default ``os.environ``) is read once per route for proxy variables;
    ``resolver`` (default the loop's ``getaddrinfo``) is injectable for tests.
    """

    def __init__(
        self,
        *,
        keepalive: float = 30.0,
        environ: Mapping[str, str] | None = None,
        resolver: dial.Resolver | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.keepalive = keepalive
        self.environ = os.environ if environ is None else environ
        self.resolver = resolver or dial.system_resolver
        self.connections: set[Connection] = set()
        self._routes: dict[tuple[str, str | None, str | None, int], Route] = {}
        self._tls: dict[str | None, ssl.SSLContext | BadSetting] = {}

    def route(self, account: RouteSpec) -> Route:
        """The account's route, made on first use (proxy and TLS decided then, once)."""
        key = (account.base_url, account.proxy, account.ca_file, account.max_connections)
        route = self._routes.get(key)
        if route is None:
            route = self._routes[key] = self._new_route(account)
        return route

    def _new_route(self, account: RouteSpec) -> Route:
        origin = Origin.parse(account.base_url)
        tls = self._tls_for(account.ca_file) if origin.tls else None
        error = tls if isinstance(tls, BadSetting) else None
        scheme = "https" if origin.tls else "http"
        proxy: proxies.ProxyURL | None = None
        try:
            proxy, why = proxies.choose(account.proxy, scheme, origin.host, self.environ)
        except ValueError as exc:
            error = BadSetting(f"{exc}; fix the variable or set the account's proxy")
        else:
            if proxy is not None:
                log.info("%s is reached through proxy %s (%s)", origin.host, proxy.masked(), why)
        route = Route(
            self,
            origin,
            proxy,
            None if isinstance(tls, BadSetting) else tls,
            max(1, account.max_connections),
            error,
        )
        return route

    def _tls_for(self, ca_file: str | None) -> ssl.SSLContext | BadSetting:
        context = self._tls.get(ca_file)
        if context is None:
            try:
                context = dial.tls_context(ca_file)
            except (OSError, ssl.SSLError) as exc:
                reason = exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
                context = BadSetting(f"ca_file {ca_file}: cannot load it ({reason})")
            self._tls[ca_file] = context
        return context

    async def request(
        self,
        route: Route,
        method: str,
        head: bytes,
        body: bytes,
        *,
        connect_timeout: float,
        deadline: float,
    ) -> Response:
        """Send one request; return once the response head is in (by ``deadline``).

        A connection slot is taken (waiting counts toward ``connect_timeout``) and given back
        when the response is released or closed.
        """
        if route.proxy_line:
            head = head[:-2] + route.proxy_line + b"\r\n"
        conn: Connection | None = None
        if route.busy < route.limit and not route.waiters:  # the hot path: no await, no clock
            route.busy += 1
            conn = route.reuse()
            if conn is None:
                route.release()
            else:
                conn.holds_slot = True
        if conn is None:
            conn = await self._open(route, self.loop.time() + connect_timeout, connect_timeout)
        retried = False
        while True:
            try:
                conn.send(method, head, body)
                while not conn.head_done:
                    if conn.error is not None:
                        raise conn.error
                    await conn.wait(deadline)
                break
            except Disconnected:
                conn.close()
                if retried or not conn.reused or conn.answered:
                    raise
            except BaseException:
                conn.close()
                raise
            # The account closed a kept-alive connection as we reused it, before any byte of
            # an answer: the keep-alive race. Once, on a fresh connection; not its failure.
            retried = True
            conn = await self._open(
                route, self.loop.time() + connect_timeout, connect_timeout, fresh=True
            )
        status = conn._parser.get_status_code()
        if status == 407 and route.forward_proxy:
            assert route.proxy is not None
            conn.close()
            raise ProxyFailed(route.proxy, "refused the request: HTTP 407 (proxy credentials)")
        return Response(conn, status)

    async def _open(
        self, route: Route, connect_by: float, limit: float, *, fresh: bool = False
    ) -> Connection:
        """A connection holding one of the route's slots: a kept-alive one, or a new one."""
        if route.busy < route.limit and not route.waiters:
            route.busy += 1
        else:
            await route.acquire(connect_by)
        try:
            conn = None if fresh else route.reuse()
            if conn is None:
                async with asyncio.timeout_at(connect_by):
                    conn = await route.connect()
        except TimeoutError:
            route.release()
            raise ConnectTimeout(f"cannot connect within {limit:g}s{route.via}") from None
        except BaseException:
            route.release()
            raise
        conn.holds_slot = True
        return conn

    @property
    def open_connections(self) -> int:
        return len(self.connections)

    def close(self) -> None:
        for conn in list(self.connections):
            conn.close()
        self.connections.clear()
        for route in self._routes.values():
            route.idle.clear()


@dataclass(frozen=True, slots=True)
class RouteSettings:
    """A :class:`RouteSpec` on its own (tests, bare URLs)."""

    base_url: str
    proxy: str | None = None
    ca_file: str | None = None
    max_connections: int = DEFAULT_MAX_CONNECTIONS
