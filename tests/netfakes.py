"""Network fakes for the proxy tests: an HTTP CONNECT/forward proxy, a SOCKS5 proxy (pproxy, in a
subprocess), a TLS fake account (throwaway CA), and an address that never answers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trustme
from aiohttp import web

from qcc.fake_upstream import Behavior, FakeUpstream

NAMES = ("localhost", "127.0.0.1", "api.qcc.test")  # what the fake account's certificate names


@dataclass
class ConnectProxy:
    """A small HTTP proxy: CONNECT tunnels and absolute-form forwarding, both piped raw.

    ``answer`` (e.g. 403) refuses every request; ``credentials`` demands Proxy-Authorization
    (407 without it); ``hosts`` is the proxy's own name resolution.
    """

    credentials: str | None = None
    answer: int | None = None
    hosts: Mapping[str, str] = field(default_factory=lambda: {"api.qcc.test": "127.0.0.1"})
    tunnels: int = 0
    forwarded: int = 0
    request_lines: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    url: str = ""
    handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            line, *rest = head.split("\r\n")
            self.request_lines.append(line)
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in rest if h)
            }
            auth = headers.get("proxy-authorization")
            self.authorizations.append(auth)
            if self.answer is not None:
                writer.write(
                    f"HTTP/1.1 {self.answer} Forbidden\r\nContent-Length: 0\r\n\r\n".encode()
                )
                return
            if self.credentials is not None:
                expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
                if auth != expected:
                    writer.write(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                        b'Proxy-Authenticate: Basic realm="t"\r\nContent-Length: 0\r\n\r\n'
                    )
                    return
            method, target, _ = line.split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                self.tunnels += 1
                up_reader, up_writer = await asyncio.open_connection(
                    self.hosts.get(host.strip("[]"), host.strip("[]")), int(port)
                )
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                authority = target.split("/")[2]
                host, _, port = authority.rpartition(":")
                self.forwarded += 1
                up_reader, up_writer = await asyncio.open_connection(
                    self.hosts.get(host, host), int(port)
                )
                up_writer.write(head.encode("latin-1"))
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.asynccontextmanager
async def connect_proxy(**kwargs: Any) -> AsyncIterator[ConnectProxy]:
    proxy = ConnectProxy(**kwargs)
    server = await asyncio.start_server(proxy.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy.url = f"http://127.0.0.1:{port}"
    try:
        yield proxy
    finally:
        server.close()
        for task in proxy.handlers:
            task.cancel()
        await asyncio.gather(*proxy.handlers, return_exceptions=True)


@dataclass
class TlsAccount:
    fake: FakeUpstream
    port: int

    def url(self, host: str = "localhost") -> str:
        return f"https://{host}:{self.port}"


def ca_files(tmp: Any) -> tuple[trustme.CA, str]:
    ca = trustme.CA()
    path = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, str(path)


@contextlib.asynccontextmanager
async def tls_account(
    ca: trustme.CA, behavior: Behavior | None = None, names: Sequence[str] = NAMES
) -> AsyncIterator[TlsAccount]:
    """qcc's fake account served over TLS on 127.0.0.1, certificate from ``ca``."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    fake = FakeUpstream("tls", behavior)
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield TlsAccount(fake, port)
    finally:
        await runner.cleanup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def socks5_proxy(auth: str | None = None) -> Iterator[str]:
    """pproxy (a maintained SOCKS5 server from PyPI) in a subprocess on 127.0.0.1."""
    port = free_port()
    listen = f"socks5://127.0.0.1:{port}" + (f"#{auth}" if auth else "")
    # pproxy picks uvloop when it can and then asks for a loop the old way: keep it on asyncio.
    script = (
        "import asyncio, sys; sys.modules['uvloop'] = None; "
        "asyncio.set_event_loop(asyncio.new_event_loop()); "
        f"sys.argv = ['pproxy', '-l', {listen!r}, '--auth', '0']; "
        "from pproxy.server import main; main()"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("pproxy did not start")
            time.sleep(0.05)
        yield f"socks5://{auth + '@' if auth else ''}127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(5)


@contextlib.contextmanager
def blackhole() -> Iterator[tuple[str, int]]:
    """A 127.0.0.1 port whose accept queue is full: new connections hang (SYNs dropped)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    address = server.getsockname()
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(address)
        fillers.append(filler)
    time.sleep(0.05)
    try:
        yield address
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def fixed_resolver(names: Mapping[str, Sequence[tuple[str, int]]]) -> Any:
    """A resolver answering ``names`` (host -> addresses, in order); IP literals as themselves."""

    async def resolve(host: str, port: int) -> list[tuple[Any, ...]]:
        addresses = names.get(host)
        if addresses is None:
            loop = asyncio.get_running_loop()
            return list(await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        return [
            (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, p))
            for ip, p in addresses
        ]

    return resolve
