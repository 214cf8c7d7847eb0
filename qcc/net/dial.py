"""Opening a connection to an account: directly (Happy Eyeballs), or through a proxy.

- Direct: the name is resolved with the loop's ``getaddrinfo`` (injectable for tests) and the
  addresses are raced per RFC 8305 by ``aiohappyeyeballs`` (250 ms head start each), so an address
  that never answers costs a quarter second, not the whole connect timeout.
- HTTP proxy: a ``CONNECT host:port`` tunnel for https accounts (TLS then runs to the account
  through it: SNI and certificate checks are the account's host); for http accounts the connection
  to the proxy is the connection (requests use absolute-form targets, see :mod:`qcc.net.client`).
- SOCKS5: ``python-socks``; the proxy resolves the account's name (remote DNS) for ``socks5://``
  and ``socks5h://`` alike, so no name leaks to the local resolver.

Every failure is an :class:`~qcc.net.errors.UpstreamError` whose text names the proxy, masked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohappyeyeballs
from python_socks import ProxyError, ProxyTimeoutError, ProxyType
from python_socks.async_.asyncio import Proxy as SocksProxy

from qcc.net.errors import CannotConnect, ProxyFailed
from qcc.net.proxies import ProxyURL

AddrInfo = tuple[Any, Any, int, str, tuple[Any, ...]]
Resolver = Callable[[str, int], Awaitable[Sequence[AddrInfo]]]
HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305's recommended "Connection Attempt Delay"
MAX_CONNECT_REPLY = 16 * 1024


async def system_resolver(host: str, port: int) -> Sequence[AddrInfo]:
    try:  # an IP address needs no resolver (and no trip to the executor's threads)
        ip = ipaddress.ip_address(host)
    except ValueError:
        loop = asyncio.get_running_loop()
        return await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    address: tuple[Any, ...] = (host, port, 0, 0) if ip.version == 6 else (host, port)
    return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)]


async def open_socket(host: str, port: int, resolver: Resolver) -> socket.socket:
    """A connected TCP socket to ``host:port``, address families raced (RFC 8305)."""
    infos = await resolver(host, port)
    if not infos:
        raise OSError(f"{host} has no address")
    return await aiohappyeyeballs.start_connection(
        infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, interleave=1
    )


async def through_proxy(
    proxy: ProxyURL, host: str, port: int, resolver: Resolver, tls: bool
) -> socket.socket:
    """A socket whose far end is the account (a tunnel), or the proxy itself for plain http."""
    if proxy.scheme == "http":
        try:
            sock = await open_socket(proxy.host, proxy.port, resolver)
        except OSError as exc:
            raise CannotConnect(exc, via=proxy) from None
        if tls:
            try:
                await _connect_tunnel(sock, proxy, host, port)
            except OSError as exc:
                sock.close()
                raise ProxyFailed(proxy, f"broke the CONNECT tunnel ({_reason(exc)})") from None
            except BaseException:
                sock.close()
                raise
        return sock
    socks = SocksProxy(
        ProxyType.SOCKS5, proxy.host, proxy.port, proxy.username, proxy.password, rdns=True
    )
    try:
        return await socks.connect(host, port, timeout=None)  # bounded by the caller
    except ProxyTimeoutError:
        raise TimeoutError from None
    except OSError as exc:  # python-socks' ProxyConnectionError: the proxy itself is unreachable
        raise ProxyFailed(proxy, f"cannot be reached ({_reason(exc)})") from None
    except ProxyError as exc:
        raise ProxyFailed(proxy, f"refused the tunnel ({_reason(exc)})") from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    return str(exc).split(" [")[0] or type(exc).__name__


async def _connect_tunnel(sock: socket.socket, proxy: ProxyURL, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    auth = proxy.basic_auth()
    if auth is not None:
        lines.append(f"Proxy-Authorization: {auth}")
    await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            raise ProxyFailed(proxy, "closed the connection during CONNECT")
        reply += chunk
        if len(reply) > MAX_CONNECT_REPLY:
            raise ProxyFailed(proxy, "sent an oversized answer to CONNECT")
    status_line = reply.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProxyFailed(proxy, "sent an invalid answer to CONNECT")
    if not 200 <= int(parts[1]) < 300:
        raise ProxyFailed(proxy, f"answered CONNECT with HTTP {' '.join(parts[1:])}"[:120])
    if not reply.endswith(b"\r\n\r\n"):
        raise ProxyFailed(proxy, "sent bytes after its answer to CONNECT")


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verification always on: the system trust (``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured by
    OpenSSL's default paths) plus ``ca_file`` when the account gives one."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context
