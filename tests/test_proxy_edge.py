"""The proxy's edge with raw HTTP over a socket (aiohttp's client would normalise what we send):
paths outside /v1, Host and Origin, encoded bodies, slow clients, malformed requests."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import zlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from e2e import raw_exchange
from proxyharness import Harness, MakeHarness, harness_factory

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
CLIENT_KEY = "sk-ant-api03-CLIENTKEY-must-never-be-logged-Zz9"


@pytest.fixture
def make(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


def port_of(h: Harness) -> int:
    port = h.client.server.port
    assert port is not None
    return port


async def raw(port: int, data: bytes, *, limit: float = 2.0) -> bytes:
    """Send ``data`` on a new connection; everything the proxy sends until it closes."""
    return await raw_exchange(port, data, limit)


def request(
    port: int,
    target: str,
    *,
    method: str = "GET",
    host: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def status_and_body(response: bytes) -> tuple[int, Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body.startswith(b"{") else body


def seen(h: Harness) -> list[str]:
    return [r.path_qs for name in h.upstreams for r in h.upstreams[name].requests]


# ---- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/v1/../admin", 404),
        ("/v1/%2e%2e/admin", 404),
        ("/v1/%2E%2E/%2e%2e/secret", 404),
        ("/v1/messages/..%2f..%2fadmin", 400),
        ("/v1%2f..%2fadmin", 400),
        ("http://evil.example/v1/models", 400),
    ],
)
async def test_paths_leaving_v1_never_reach_an_account(
    make: MakeHarness, target: str, status: int
) -> None:
    h = await make("a")
    got, body = status_and_body(await raw(port_of(h), request(port_of(h), target)))
    assert got == status
    assert body["type"] == "error" and body["error"]["message"].startswith("qcc: ")
    assert seen(h) == []


async def test_forwarded_path_is_normalised_under_the_base_url_prefix(
    aiohttp_server: Any, aiohttp_client: Any
) -> None:
    paths: list[str] = []

    async def record(request: web.Request) -> web.Response:
        paths.append(request.raw_path)
        return web.json_response({"data": []})

    upstream = web.Application()
    upstream.router.add_route("*", "/{tail:.*}", record)
    server = await aiohttp_server(upstream)
    make = harness_factory(aiohttp_server, aiohttp_client)
    h = await make(
        "a", accounts={"a": {"base_url": str(server.make_url("/relay/anthropic")).rstrip("/")}}
    )
    port = port_of(h)
    for target in ("/v1/x/%2e%2e/models?after_id=a%2Fb", "/v1/./models"):
        got, _ = status_and_body(await raw(port, request(port, target)))
        assert got == 200
    assert paths == ["/relay/anthropic/v1/models?after_id=a%2Fb", "/relay/anthropic/v1/models"]


# ---- Host and Origin ------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/v1/messages", "/health", "/accounts/stats", "/metrics"])
async def test_a_foreign_host_is_refused_on_every_route(
    make: MakeHarness, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    h = await make("a")
    port = port_of(h)
    data = request(port, target, method="POST", host=f"rebind.evil.example:{port}", body=b"{}")
    got, body = status_and_body(await raw(port, data))
    assert got == 403
    assert body["error"]["type"] == "permission_error"
    assert "allowed_hosts" in body["error"]["message"]
    assert seen(h) == []
    assert sum("refused a request for Host" in r.getMessage() for r in caplog.records) == 1


async def test_own_addresses_pass(make: MakeHarness) -> None:
    h = await make("a")
    port = port_of(h)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        got, _ = status_and_body(await raw(port, request(port, "/health", host=host)))
        assert got == 200, host
    got, _ = status_and_body(await raw(port, request(port, "/health", host="127.0.0.1:7860")))
    assert got == 403  # the port the connection arrived on, not any port


async def test_allowed_hosts_from_config(make: MakeHarness) -> None:
    h = await make("a", extra={"proxy": {"allowed_hosts": ["qcc.internal"]}})
    port = port_of(h)
    got, _ = status_and_body(await raw(port, request(port, "/health", host=f"qcc.internal:{port}")))
    assert got == 200


async def test_a_web_page_origin_is_refused(make: MakeHarness) -> None:
    h = await make("a", extra={"proxy": {"allowed_origins": ["https://ok.example"]}})
    port = port_of(h)
    body = json.dumps(BODY).encode()
    evil = request(
        port,
        "/v1/messages",
        method="POST",
        headers={"Origin": "https://evil.example", "Content-Type": "text/plain"},
        body=body,
    )
    got, doc = status_and_body(await raw(port, evil))
    assert got == 403 and "allowed_origins" in doc["error"]["message"]
    assert seen(h) == []
    ok = request(
        port, "/v1/messages", method="POST", headers={"Origin": "https://ok.example"}, body=body
    )
    got, _ = status_and_body(await raw(port, ok))
    assert got == 200 and seen(h) == ["/v1/messages"]


# ---- encoded bodies -------------------------------------------------------------------------


async def raw_upstream(
    aiohttp_server: Any, seen_bodies: list[tuple[str, bytes]], heads: list[Any] | None = None
) -> str:
    """An account that records the exact bytes and Content-Encoding it receives."""

    async def record(request: web.Request) -> web.Response:
        seen_bodies.append((request.headers.get("content-encoding", ""), await request.read()))
        if heads is not None:
            heads.append(request.headers)
        return web.json_response({"type": "message", "content": [], "usage": {}})

    app = web.Application(handler_args={"auto_decompress": False})
    app.router.add_route("*", "/{tail:.*}", record)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def test_encoded_body_is_forwarded_as_sent(aiohttp_server: Any, aiohttp_client: Any) -> None:
    got_bodies: list[tuple[str, bytes]] = []
    url = await raw_upstream(aiohttp_server, got_bodies)
    make = harness_factory(aiohttp_server, aiohttp_client)
    h = await make("a", "b", accounts={"a": {"base_url": url}, "b": {"base_url": url}})
    compressed = gzip.compress(json.dumps(BODY).encode())
    response = await h.client.post(
        "/v1/messages",
        data=compressed,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status == 200
    assert got_bodies == [("gzip", compressed)]


async def test_stream_flag_is_read_from_an_encoded_body(
    aiohttp_server: Any, aiohttp_client: Any
) -> None:
    got_bodies: list[tuple[str, bytes]] = []
    heads: list[Any] = []
    url = await raw_upstream(aiohttp_server, got_bodies, heads)
    h = await harness_factory(aiohttp_server, aiohttp_client)(
        "a", accounts={"a": {"base_url": url}}
    )
    compressed = zlib.compress(json.dumps(BODY | {"stream": True}).encode())
    await h.client.post("/v1/messages", data=compressed, headers={"Content-Encoding": "deflate"})
    assert got_bodies == [("deflate", compressed)]
    assert heads[0].get("Accept-Encoding") == "identity"  # qcc read it as a stream request


async def test_rename_on_an_encoded_body_is_applied_and_re_encoded(
    aiohttp_server: Any, aiohttp_client: Any
) -> None:
    got_bodies: list[tuple[str, bytes]] = []
    url = await raw_upstream(aiohttp_server, got_bodies)
    make = harness_factory(aiohttp_server, aiohttp_client)
    h = await make("a", accounts={"a": {"base_url": url, "models": {"m": "m-2025"}}})
    compressed = gzip.compress(json.dumps(BODY).encode())
    response = await h.client.post(
        "/v1/messages", data=compressed, headers={"Content-Encoding": "gzip"}
    )
    assert response.status == 200
    [(encoding, sent)] = got_bodies
    assert encoding == "gzip"
    assert json.loads(gzip.decompress(sent))["model"] == "m-2025"


@pytest.mark.parametrize(
    ("data", "encoding", "status"),
    [
        (b"\x1f\x8b garbage that is not gzip", "gzip", 400),
        (b"{}", "br", 415),
        (b"{}", "zstd", 415),
    ],
)
async def test_unreadable_encoded_bodies_are_refused(
    make: MakeHarness, data: bytes, encoding: str, status: int
) -> None:
    h = await make("a")
    response = await h.client.post(
        "/v1/messages", data=data, headers={"Content-Encoding": encoding}
    )
    assert response.status == status
    assert (await response.json())["type"] == "error"
    assert seen(h) == []


# ---- slow clients ---------------------------------------------------------------------------


async def test_slow_request_head_is_cut(make: MakeHarness) -> None:
    h = await make("a", extra={"timeouts": {"client_read": 0.3}})
    port = port_of(h)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and no more
        await writer.drain()
        started = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(reader.read(), 3.0) == b""
        assert asyncio.get_running_loop().time() - started < 1.5
    finally:
        writer.close()
    assert seen(h) == []


async def test_slow_request_body_is_cut(
    make: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = await make("a", extra={"timeouts": {"client_read": 0.3}})
    port = port_of(h)
    head = (
        f"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        'Content-Length: 1000\r\n\r\n{"model"'
    ).encode()
    started = asyncio.get_running_loop().time()
    got, body = status_and_body(await raw(port, head, limit=3.0))
    assert got == 408 and body["error"]["type"] == "timeout_error"
    assert asyncio.get_running_loop().time() - started < 1.5
    assert seen(h) == []
    assert "timeouts.client_read" in caplog.text


# ---- malformed requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_line",
    [
        b"Bad Header: \x01value",
        b"X-Long: " + b"a" * 9000,
        b"x-api-key-2: " + CLIENT_KEY.encode() + b"\x01",
    ],
)
async def test_malformed_request_never_logs_its_headers(
    make: MakeHarness,
    bad_line: bytes,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from qcc import logs

    log_path = logs.setup(to_stderr=True)  # the proxy's real handlers: file and stderr
    try:
        h = await make("a")
        port = port_of(h)
        data = (
            (
                f"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"x-api-key: {CLIENT_KEY}\r\n"
            ).encode()
            + bad_line
            + b"\r\n\r\n"
        )
        with caplog.at_level(logging.DEBUG):
            response = await raw(port, data)
        assert response.startswith(b"HTTP/1.") and b" 400 " in response.split(b"\r\n")[0]
    finally:
        logs.shutdown()
    assert log_path is not None
    written = log_path.read_text() + capsys.readouterr().err + caplog.text
    assert "refused a malformed request" in written
    assert CLIENT_KEY not in written
    assert "Traceback" not in written
