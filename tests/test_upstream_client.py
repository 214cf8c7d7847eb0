"""The request path's HTTP/1.1 client against raw localhost servers that misbehave byte by byte.

Every scenario runs on asyncio's loop and, where installed, on uvloop (which the proxy uses).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from qcc.net.client import Origin, RouteSettings, UpstreamClient, render_head
from qcc.net.connection import HIGH_WATER, Response
from qcc.net.errors import BadResponse, BodyBroken, CannotConnect, Disconnected, ReadTimeout

LOOPS: list[str] = ["asyncio"]
try:
    import uvloop

    LOOPS.append("uvloop")
except ImportError:  # pragma: no cover - uvloop is a test dependency off Windows
    uvloop = None

Run = Callable[[Callable[[], Awaitable[None]]], None]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Served"], Awaitable[None]]


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Iterator[Run]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def go(scenario: Callable[[], Awaitable[None]]) -> None:
        async def bounded() -> None:
            async with asyncio.timeout(10):
                await scenario()

        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(bounded())

    yield go


@dataclass
class Served:
    connections: int = 0
    heads: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    closed_by_client: asyncio.Event = field(default_factory=asyncio.Event)


async def read_request(reader: asyncio.StreamReader, served: Served) -> bool:
    """One request off the connection; False when the client closed it instead."""
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
    except asyncio.IncompleteReadError:
        served.closed_by_client.set()
        return False
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    served.heads.append(head)
    served.bodies.append(await reader.readexactly(length))
    return True


async def wait_closed_by_client(reader: asyncio.StreamReader, served: Served) -> None:
    if await reader.read() == b"":
        served.closed_by_client.set()


@asynccontextmanager
async def raw_server(
    handler: Handler, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, Served]]:
    served = Served()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.connections += 1
        try:
            await handler(reader, writer, served)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}", served
    finally:
        server.close()


def ok(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def keep_answering(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Served) -> None:
    while await read_request(r, s):
        w.write(ok(b'{"n":%d}' % len(s.heads), "Content-Type: application/json"))


async def send(
    client: UpstreamClient,
    base_url: str,
    *,
    method: str = "POST",
    path: str = "/v1/messages?beta=true",
    body: bytes = b'{"model":"m"}',
    lines: tuple[str, ...] = ("x-api-key: k",),
    within: float = 2.0,
    ca_file: str | None = None,
) -> Response:
    origin = client.route(RouteSettings(base_url, ca_file=ca_file))
    head = render_head(method, origin.prefix + path, origin.host_header, [*lines], len(body))
    deadline = client.loop.time() + within
    return await client.request(origin, method, head, body, connect_timeout=5, deadline=deadline)


async def read_all(response: Response, within: float = 2.0) -> bytes:
    deadline = asyncio.get_running_loop().time() + within
    out = b""
    while chunk := await response.read(deadline):
        out += chunk
    return out


async def fetch_twice(url: str) -> list[bytes]:
    """Two requests one after the other through one client (a second connection if needed)."""
    client = UpstreamClient()
    bodies = []
    for _ in range(2):
        response = await send(client, url)
        bodies.append(await read_all(response))
        response.release()
    client.close()
    return bodies


# ---- framing and keep-alive ----------------------------------------------------------------


def test_sequential_requests_share_one_connection_and_arrive_intact(run: Run) -> None:
    async def scenario() -> None:
        async with raw_server(keep_answering) as (url, served):
            client = UpstreamClient()
            for n in (1, 2, 3):
                response = await send(client, url + "/relay/")
                assert response.status == 200
                assert response.headers["content-type"] == "application/json"
                assert await read_all(response) == b'{"n":%d}' % n
                response.release()
            client.close()
        assert served.connections == 1
        first = served.heads[0].split("\r\n")
        assert first[0] == "POST /relay/v1/messages?beta=true HTTP/1.1"  # prefix and query kept
        assert first[1] == f"Host: {url.removeprefix('http://')}"
        assert "x-api-key: k" in first and "Content-Length: 13" in first
        assert served.bodies == [b'{"model":"m"}'] * 3

    run(scenario)


def test_chunked_body_is_decoded_as_it_arrives(run: Run) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Served) -> None:
        await read_request(r, s)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
        w.write(b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await w.drain()
        await asyncio.sleep(0.05)
        w.write(b"6\r\n world\r\n0\r\n\r\n")
        await w.drain()
        await keep_answering(r, w, s)

    async def scenario() -> None:
        async with raw_server(handler) as (url, served):
            client = UpstreamClient()
            response = await send(client, url)
            deadline = client.loop.time() + 2
            assert await response.read(deadline) == b"hello"  # before the rest exists
            assert not response.at_eof()
            assert await response.read(deadline) == b" world"
            assert await response.read(deadline) == b""
            assert response.at_eof()
            response.release()
            again = await send(client, url)
            assert await read_all(again) == b'{"n":2}'
            client.close()
        assert served.connections == 1

    run(scenario)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    ],
    ids=["http-1.0", "connection-close"],
)
def test_body_delimited_by_close_completes_and_is_not_reused(run: Run, answer: bytes) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Served) -> None:
        await read_request(r, s)
        w.write(answer)

    async def scenario() -> None:
        async with raw_server(handler) as (url, served):
            assert await fetch_twice(url) == [b"until the end"] * 2
        assert served.connections == 2

    run(scenario)


def test_interim_100_continue_is_skipped(run: Run) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Served) -> None:
        await read_request(r, s)
        w.write(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"{}"))

    async def scenario() -> None:
        async with raw_server(handler) as (url, _):
            client = UpstreamClient()
            response = await send(client, url)
            assert (response.status, response.reason) == (200, "OK")
            assert await read_all(response) == b"{}"
            client.close()

    run(scenario)


def test_head_request_ends_at_the_head(run: Run) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Served) -> None:
        await read_request(r, s)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
        await wait_closed_by_client(r, s)

    async def scenario() -> None:
        async with raw_server(handler) as (url, served):
            client = UpstreamClient()
            response = await send(client, url, method="HEAD", body=b"")
            assert response.content_length == 1234
            assert await read_all(response) == b""
            response.release()
            await asyncio.wait_for(served.closed_by_client.wait(), 1)
            client.close()
        assert "Content-Length" not in served.heads[0]

    run(scenario)


def test_bytes_after_the_response_spoil_the_connection(run: Run) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Served) -> None:
        while await read_request(r, s):
            w.write(ok(b"{}") + b"HTTP/1.1 200 OK\r\n")

    async def scenario() -> None:
        async with raw_server(handler) as (url, served):
            assert await fetch_twice(url) == [b"{}"] * 2
        assert served.connections == 2

    run(scenario)


# ---- failures ------------------------------------------------------------------------------


def test_truncated_body_yields_what_arrived_then_fails(run: Run) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Served) -> None:
        await read_request(r, s)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nten bytes!")

    async def scenario() -> None:
        async with raw_server(handler) as (url, _):
            client = UpstreamClient()
            response = await send(client, url)
            deadline = client.loop.time() + 2
            assert await response.read(deadline) == b"ten bytes!"
            with pytest.raises(BodyBroken, match="response body broken off"):
                await response.read(deadline)
            client.close()

    run(scenario)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"", Disconnected),
        (b"SMTP ready\r\n\r\n", BadResponse),
        (b"HTTP/1.1 200", Disconnected),
        (b"HTTP/1.1 200 OK\r\n" + b"x-pad: %s\r\n" % (b"y" * 1000) * 70, BadResponse),
    ],
    ids=["closed", "not-http", "half-a-head", "endless-head"],
)
def test_no_valid_head(run: Run, answer: bytes, error: type[Exception]) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Served) -> None:
        await read_request(r, s)
        w.write(answer)

    async def scenario() -> None:
        async with raw_server(handler) as (url, _):
            client = UpstreamClient()
            with pytest.raises(error):
                await send(client, url)
            assert client.open_connections == 0
            client.close()

    run(scenario)


def test_refused_connection(run: Run) -> None:
    async def scenario() -> None:
        async with raw_server(keep_answering) as (url, _):
            pass  # closed: its port now refuses
        client = UpstreamClient()
        with pytest.raises(CannotConnect, match=r"cannot connect \(.*refused"):
            await send(client, url)
        client.close()

    run(scenario)


def test_head_deadline_closes_the_connection(run: Run) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Served) -> None:
        await read_request(r, s)
        await wait_closed_by_client(r, s)  # never answers

    async def scenario() -> None:
        async with raw_server(handler) as (url, served):
            client = UpstreamClient()
            started = client.loop.time()
            with pytest.raises(ReadTimeout):
                await send(client, url, within=0.1)
            assert 0.09 <= client.loop.time() - started < 1
            await asyncio.wait_for(served.closed_by_client.wait(), 1)  # the account is told
            assert client.open_connections == 0

    run(scenario)


def test_cancelled_request_closes_its_connection(run: Run) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Served) -> None:
        await read_request(r, s)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await wait_closed_by_client(r, s)

    async def scenario() -> None:
        async with raw_server(handler) as (url, served):
            client = UpstreamClient()
            response = await send(client, url)
            reading = asyncio.ensure_future(read_all(response, within=5))
            await asyncio.sleep(0.05)
            reading.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading
            response.close()
            await asyncio.wait_for(served.closed_by_client.wait(), 1)
            assert client.open_connections == 0

    run(scenario)


# ---- the pool ------------------------------------------------------------------------------


def test_connection_closed_by_the_server_while_idle_is_not_reused(run: Run) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Served) -> None:
        await read_request(r, s)
        w.write(ok(b"{}"))  # keep-alive by HTTP/1.1 default, then hangs up anyway

    async def scenario() -> None:
        async with raw_server(handler) as (url, served):
            client = UpstreamClient()
            response = await send(client, url)
            assert await read_all(response) == b"{}"
            response.release()
            for _ in range(100):
                if client.open_connections == 0:
                    break
                await asyncio.sleep(0.01)
            assert client.open_connections == 0  # it left the pool when the server hung up
            response = await send(client, url)
            assert await read_all(response) == b"{}"
            client.close()
        assert served.connections == 2

    run(scenario)


def test_reused_connection_dropped_before_any_answer_byte_is_retried_once(run: Run) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Served) -> None:
        await read_request(r, s)
        w.write(ok(b"{}"))
        await read_request(r, s)  # the reuse: read it, then hang up without a byte

    async def scenario() -> None:
        async with raw_server(handler) as (url, served):
            client = UpstreamClient()
            for _ in range(3):
                response = await send(client, url)
                assert await read_all(response) == b"{}"
                response.release()
            client.close()
        assert served.connections == 3  # each reuse failed once and went to a fresh connection
        assert len(served.heads) == 5

    run(scenario)


@pytest.mark.parametrize("partial", [b"", b"HTTP/1.1 200 OK\r\n"])
def test_no_retry_once_the_account_answered_or_on_a_fresh_connection(
    run: Run, partial: bytes
) -> None:
    """A byte of an answer means the account saw the request: resending could run it twice."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Served) -> None:
        await read_request(r, s)
        if partial and s.connections == 1:
            w.write(ok(b"{}"))
            await read_request(r, s)
        w.write(partial)

    async def scenario() -> None:
        async with raw_server(handler) as (url, served):
            client = UpstreamClient()
            if partial:
                response = await send(client, url)
                assert await read_all(response) == b"{}"
                response.release()
            with pytest.raises((Disconnected, BadResponse)):
                await send(client, url)
            client.close()
        assert served.connections == 1

    run(scenario)


def test_idle_connection_closes_after_keepalive(run: Run) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Served) -> None:
        await keep_answering(r, w, s)
        s.closed_by_client.set()

    async def scenario() -> None:
        async with raw_server(handler) as (url, served):
            client = UpstreamClient(keepalive=0.05)
            response = await send(client, url)
            await read_all(response)
            response.release()
            assert client.open_connections == 1
            await asyncio.wait_for(served.closed_by_client.wait(), 1)
            assert client.open_connections == 0

    run(scenario)


def test_a_slow_reader_pauses_the_socket(run: Run) -> None:
    size = 16 * HIGH_WATER

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Served) -> None:
        await read_request(r, s)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        w.write(b"x" * size)
        await w.drain()

    async def scenario() -> None:
        async with raw_server(handler) as (url, _):
            client = UpstreamClient()
            response = await send(client, url)
            await asyncio.sleep(0.2)  # the account writes as fast as it can; nobody reads
            held = response._conn.size
            assert held <= 2 * HIGH_WATER, f"{held} bytes buffered"
            assert len(await read_all(response)) == size
            client.close()

    run(scenario)


def test_close_ends_every_connection(run: Run) -> None:
    closed: list[int] = []

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Served) -> None:
        while await read_request(r, s):
            if "/stream" in s.heads[-1].split("\r\n")[0]:
                w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            else:
                w.write(ok(b"{}"))
        closed.append(1)

    async def scenario() -> None:
        async with raw_server(handler) as (url, served):
            client = UpstreamClient()
            idle = await send(client, url)
            await read_all(idle)
            idle.release()
            busy = await send(client, url, path="/stream")
            await send(client, url, path="/stream")  # a third connection, busy too
            assert client.open_connections == 2  # the idle one was reused for the first stream
            client.close()
            assert client.open_connections == 0
            for _ in range(100):
                if len(closed) == 2:
                    break
                await asyncio.sleep(0.01)
            assert len(closed) == 2 and served.connections == 2
            with pytest.raises(BodyBroken):
                await read_all(busy)

    run(scenario)


def test_https_to_an_account_with_a_trusted_certificate(run: Run, tmp_path: Path) -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    async def scenario() -> None:
        async with raw_server(keep_answering, tls=server_tls) as (url, served):
            trusted = UpstreamClient()
            for _ in range(2):
                response = await send(trusted, url, ca_file=str(ca_file))
                assert await read_all(response) == b'{"n":%d}' % len(served.heads)
                response.release()
            trusted.close()
            assert served.connections == 1
            system = UpstreamClient()  # the system trust store does not know this CA
            with pytest.raises(CannotConnect, match="TLS certificate"):
                await send(system, url)
            system.close()

    run(scenario)


# ---- pure helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://api.anthropic.com",
            Origin(True, "api.anthropic.com", 443, "api.anthropic.com", ""),
        ),
        (
            "http://127.0.0.1:8080/relay/",
            Origin(False, "127.0.0.1", 8080, "127.0.0.1:8080", "/relay"),
        ),
        ("https://[::1]:8443/x", Origin(True, "::1", 8443, "[::1]:8443", "/x")),
        ("http://h.example:80", Origin(False, "h.example", 80, "h.example", "")),
    ],
)
def test_origin_parse(url: str, expected: Origin) -> None:
    assert Origin.parse(url) == expected


def test_origin_refuses_other_schemes() -> None:
    with pytest.raises(ValueError, match="not an http"):
        Origin.parse("ftp://example.com")


@pytest.mark.parametrize("value", ["a\r\nx-injected: 1", "a\nb", "a\rb"])
def test_render_head_refuses_line_breaks(value: str) -> None:
    with pytest.raises(ValueError, match="line break"):
        render_head("POST", "/v1/messages", "h", [f"x-api-key: {value}"], 2)


def test_render_head_sends_no_length_for_a_bodiless_get() -> None:
    assert (
        render_head("GET", "/v1/models", "h", [], 0)
        == b"GET /v1/models HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    assert b"Content-Length: 0" in render_head("POST", "/v1/messages", "h", [], 0)
