"""Accounts behind outbound proxies, raced addresses, connection slots, trust and the keep-alive
race: real servers on 127.0.0.1 (an HTTP proxy, pproxy's SOCKS5, a TLS fake account)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from netfakes import (
    blackhole,
    ca_files,
    connect_proxy,
    fixed_resolver,
    socks5_proxy,
    tls_account,
)
from proxyharness import SECRET, cluster_config

from qcc.config.model import Account, Credential
from qcc.health.probe import check_once
from qcc.net.client import RouteSettings, UpstreamClient, render_head
from qcc.net.connection import Response
from qcc.net.errors import BadSetting, CannotConnect, ConnectTimeout, ProxyFailed
from qcc.proxy.app import create_app
from qcc.proxy.runtime import RUNTIME_KEY

HEADER = ("x-api-key", SECRET)
MESSAGE = (
    b'{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
)


@pytest.fixture
def ca(tmp_path: Path) -> tuple[trustme.CA, str]:
    return ca_files(tmp_path)


async def post(client: UpstreamClient, spec: Any, within: float = 3.0) -> tuple[int, bytes]:
    route = client.route(spec)
    lines = [f"{HEADER[0]}: {HEADER[1]}", "anthropic-version: 2023-06-01"]
    head = render_head(
        "POST", route.prefix + "/v1/messages", route.host_header, lines, len(MESSAGE)
    )
    deadline = client.loop.time() + within
    response = await client.request(
        route, "POST", head, MESSAGE, connect_timeout=within, deadline=deadline
    )
    return response.status, await drain(response, deadline)


async def drain(response: Response, deadline: float) -> bytes:
    body = b""
    while chunk := await response.read(deadline):
        body += chunk
    response.release() if response.at_eof() else response.close()
    return body


def account(url: str, **settings: Any) -> Account:
    return Account("acc", url, Credential("api_key", SECRET), **settings)


# ---- HTTP CONNECT ----------------------------------------------------------------------------


async def test_traffic_and_probes_of_the_proxy_app_go_through_an_http_proxy(
    ca: tuple[trustme.CA, str], aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    authority, ca_file = ca
    async with (
        tls_account(authority) as upstream,
        connect_proxy(credentials="alice:s3cr3t-pw") as proxy,
    ):
        proxy_url = proxy.url.replace("http://", "http://alice:s3cr3t-pw@")
        config = cluster_config(
            {"a": upstream.url("127.0.0.1")},
            accounts={"a": {"proxy": proxy_url, "ca_file": ca_file}},
        )
        client = await aiohttp_client(create_app(config, "test", monitor=False))
        for _ in range(3):
            response = await client.post("/v1/messages", data=MESSAGE)
            assert response.status == 200, await response.text()
            await response.read()
        assert proxy.tunnels == 1  # one tunnel, kept alive across requests
        assert proxy.request_lines[0] == f"CONNECT 127.0.0.1:{upstream.port} HTTP/1.1"
        assert len(upstream.fake.requests) == 3
        # The probe takes the same route: through the proxy, with the same trust.
        runtime = client.app[RUNTIME_KEY]
        member = runtime.pool.members["a"]
        result = await check_once(runtime.client, member.account, HEADER, 3)
        assert result.ok, result.detail
        assert upstream.fake.requests[-1].path_qs == "/v1/messages/count_tokens"
    logged = caplog.text
    assert "s3cr3t-pw" not in logged
    assert f"proxy http://alice:***@127.0.0.1:{proxy.url.rsplit(':', 1)[1]}" in logged


async def test_http_account_through_http_proxy_uses_absolute_form(aiohttp_server: Any) -> None:
    from qcc.fake_upstream import FakeUpstream

    server = await aiohttp_server(FakeUpstream("plain").app())
    async with connect_proxy(credentials="bob:pw") as proxy:
        client = UpstreamClient()
        spec = RouteSettings(
            f"http://127.0.0.1:{server.port}", proxy=proxy.url.replace("//", "//bob:pw@")
        )
        for _ in range(2):
            status, _ = await post(client, spec)
            assert status == 200
        client.close()
    assert proxy.request_lines[0] == f"POST http://127.0.0.1:{server.port}/v1/messages HTTP/1.1"
    assert proxy.tunnels == 0 and proxy.forwarded == 1
    assert proxy.authorizations[0] == "Basic Ym9iOnB3"


async def test_https_proxy_variable_no_proxy_and_loopback(ca: tuple[trustme.CA, str]) -> None:
    authority, ca_file = ca
    async with tls_account(authority) as upstream, connect_proxy() as proxy:
        resolver = fixed_resolver({"api.qcc.test": [("127.0.0.1", upstream.port)]})
        url = upstream.url("api.qcc.test")
        spec = RouteSettings(url, ca_file=ca_file)

        env = {"HTTPS_PROXY": proxy.url}
        client = UpstreamClient(environ=env, resolver=resolver)
        assert (await post(client, spec))[0] == 200
        assert proxy.tunnels == 1
        # Loopback never goes through a proxy from the environment.
        assert (await post(client, RouteSettings(upstream.url("127.0.0.1"), ca_file=ca_file)))[
            0
        ] == 200
        assert proxy.tunnels == 1
        client.close()

        for no_proxy in ("api.qcc.test", ".qcc.test", "qcc.test", "*", "127.0.0.0/8,x"):
            env = {"https_proxy": proxy.url, "NO_PROXY": no_proxy}
            direct = UpstreamClient(environ=env, resolver=resolver)
            if no_proxy.startswith("127"):
                continue  # a CIDR entry matches addresses, not names (pure tests cover it)
            assert (await post(direct, spec))[0] == 200, no_proxy
            direct.close()
        assert proxy.tunnels == 1

        # HTTP_PROXY is for http accounts: an https one goes direct.
        direct = UpstreamClient(environ={"HTTP_PROXY": proxy.url}, resolver=resolver)
        assert (await post(direct, spec))[0] == 200
        assert proxy.tunnels == 1
        direct.close()


@pytest.mark.parametrize(("names", "works"), [(["api.qcc.test"], True), (["other.test"], False)])
async def test_tls_through_the_tunnel_checks_the_account_host(
    ca: tuple[trustme.CA, str], names: list[str], works: bool
) -> None:
    authority, ca_file = ca
    async with tls_account(authority, names=names) as upstream, connect_proxy() as proxy:
        client = UpstreamClient()
        spec = RouteSettings(upstream.url("api.qcc.test"), proxy=proxy.url, ca_file=ca_file)
        if works:
            assert (await post(client, spec))[0] == 200
        else:
            with pytest.raises(CannotConnect, match="TLS certificate"):
                await post(client, spec)
        client.close()
        assert proxy.tunnels == 1


@pytest.mark.parametrize("answer", [407, 403, "refused"])
async def test_a_bad_proxy_fails_over_to_a_direct_account(
    answer: Any, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    from qcc.fake_upstream import FakeUpstream

    direct = await aiohttp_server(FakeUpstream("direct").app())
    async with (
        connect_proxy(credentials="u:right", answer=None if answer == 407 else 403) as proxy,
    ):
        port = proxy.url.rsplit(":", 1)[1]
        if answer == "refused":
            port = "9"  # discard port: nothing listens
        config = cluster_config(
            {"proxied": "https://api.qcc.test", "direct": f"http://127.0.0.1:{direct.port}"},
            accounts={
                "proxied": {"proxy": f"http://u:wrong-pw@127.0.0.1:{port}", "priority": 0},
                "direct": {"priority": 1},
            },
        )
        client = await aiohttp_client(create_app(config, "test", monitor=False))
        response = await client.post("/v1/messages", data=MESSAGE)
        assert response.status == 200
        assert response.headers.get("x-qcc-account", "direct") == "direct"
        member = client.app[RUNTIME_KEY].pool.members["proxied"]
        error = member.stats.last_error or ""
        assert f"proxy http://u:***@127.0.0.1:{port}" in error
        assert "wrong-pw" not in error
        assert member.stats.failures == 1
        if answer == 407:
            assert "407" in error


# ---- SOCKS5 ----------------------------------------------------------------------------------


def _resolves_localhost() -> bool:
    try:
        return bool(socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM))
    except OSError:
        return False


@pytest.mark.skipif(
    not _resolves_localhost(),
    reason="this machine cannot resolve 'localhost' (no /etc/hosts entry): the SOCKS proxy "
    "must resolve a name for this test",
)
async def test_traffic_and_probes_through_socks5_with_remote_dns(
    ca: tuple[trustme.CA, str],
) -> None:
    authority, ca_file = ca

    async def no_local_dns(host: str, port: int) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, f"local DNS asked for {host}")

    async with tls_account(authority) as upstream:
        with socks5_proxy() as socks:
            client = UpstreamClient(resolver=no_local_dns)
            acc = account(upstream.url(), proxy=socks, ca_file=ca_file)
            assert (await post(client, acc))[0] == 200
            result = await check_once(client, acc, HEADER, 3)
            assert result.ok, result.detail
            client.close()
        # The same SOCKS proxy gone: a network failure that names it.
        client = UpstreamClient(resolver=no_local_dns)
        with pytest.raises(ProxyFailed, match=r"proxy socks5://127\.0\.0\.1:\d+ cannot be reached"):
            await post(client, acc)
        result = await check_once(client, acc, HEADER, 3)
        assert not result.ok and "socks5://127.0.0.1" in result.detail
        client.close()


# ---- connections -----------------------------------------------------------------------------


async def test_happy_eyeballs_skips_an_address_that_never_answers(
    ca: tuple[trustme.CA, str],
) -> None:
    authority, ca_file = ca
    async with tls_account(authority) as upstream:
        with blackhole() as (ip, dead_port):
            resolve = fixed_resolver(
                {"api.qcc.test": [(ip, dead_port), ("127.0.0.1", upstream.port)]}
            )
            client = UpstreamClient(resolver=resolve)
            loop = asyncio.get_running_loop()
            started = loop.time()
            spec = RouteSettings(f"https://api.qcc.test:{upstream.port}", ca_file=ca_file)
            assert (await post(client, spec, within=5))[0] == 200
            assert loop.time() - started < 1.0
            client.close()


async def test_max_connections_bounds_and_the_wait_counts_toward_connect_timeout(
    aiohttp_server: Any,
) -> None:
    from qcc.fake_upstream import Behavior, FakeUpstream

    server = await aiohttp_server(FakeUpstream("slow", Behavior(delay=0.1)).app())
    client = UpstreamClient()
    spec = RouteSettings(f"http://127.0.0.1:{server.port}", max_connections=1)
    route = client.route(spec)
    lines = [f"{HEADER[0]}: {HEADER[1]}"]
    head = render_head("POST", "/v1/messages", route.host_header, lines, len(MESSAGE))
    loop = asyncio.get_running_loop()

    async def one(connect_timeout: float) -> int:
        deadline = loop.time() + 3
        response = await client.request(
            route, "POST", head, MESSAGE, connect_timeout=connect_timeout, deadline=deadline
        )
        await drain(response, deadline)
        return response.status

    # Three at once with room to wait: served one after the other on one connection.
    assert await asyncio.gather(one(2), one(2), one(2)) == [200, 200, 200]
    assert client.open_connections == 1
    # A second request that cannot get a slot within its connect timeout.
    first = asyncio.ensure_future(one(2))
    await asyncio.sleep(0.02)
    with pytest.raises(ConnectTimeout, match="all 1 connections to this account are busy") as e:
        await one(0.04)
    assert e.value.local  # qcc's own limit: not to be held against the account
    assert await first == 200
    assert route.busy == 0 and not route.waiters
    client.close()


async def test_ssl_cert_file_is_honoured_and_a_bad_ca_file_is_named(
    ca: tuple[trustme.CA, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    authority, ca_file = ca
    async with tls_account(authority) as upstream:
        client = UpstreamClient()
        with pytest.raises(Exception, match="TLS certificate"):
            await post(client, RouteSettings(upstream.url("127.0.0.1")))
        client.close()
        monkeypatch.setenv("SSL_CERT_FILE", ca_file)
        client = UpstreamClient()
        assert (await post(client, RouteSettings(upstream.url("127.0.0.1"))))[0] == 200
        missing = str(tmp_path / "nope.pem")
        with pytest.raises(BadSetting, match=f"ca_file {missing}: cannot load it"):
            await post(client, RouteSettings(upstream.url("127.0.0.1"), ca_file=missing))
        client.close()


async def answer_once_then_close_on_reuse(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answers the first request of a connection (keep-alive, no ``Connection: close``), then
    reads the next one and closes without a byte: the keep-alive race, every time."""
    body = (
        b'{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],'
        b'"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}'
    )
    try:
        for answered in (False, True):
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if answered:
                break
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def racing_account() -> AsyncIterator[str]:
    server = await asyncio.start_server(answer_once_then_close_on_reuse, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()


async def test_stale_keepalive_is_retried_and_never_counted(
    racing_account: str, aiohttp_client: Any
) -> None:
    config = cluster_config({"a": racing_account})
    client = await aiohttp_client(create_app(config, "test", monitor=False))
    for _ in range(200):
        response = await client.post("/v1/messages", data=MESSAGE)
        assert response.status == 200, await response.text()
        await response.read()
    member = client.app[RUNTIME_KEY].pool.members["a"]
    assert member.stats.failures == 0
    assert member.stats.last_error is None


async def test_socks5_credentials_and_a_refusal_that_hides_them(
    ca: tuple[trustme.CA, str],
) -> None:
    authority, ca_file = ca
    async with tls_account(authority) as upstream:
        with socks5_proxy(auth="carol:right-pw") as socks:
            client = UpstreamClient()
            good = account(upstream.url("127.0.0.1"), proxy=socks, ca_file=ca_file)
            assert (await post(client, good))[0] == 200
            bad = account(upstream.url("127.0.0.1"), proxy=socks.replace("right-pw", "wrong-pw"))
            with pytest.raises(ProxyFailed) as caught:
                await post(client, bad)
            client.close()
    message = str(caught.value)
    assert message.startswith(f"proxy {socks.replace('right-pw', '***')} refused the tunnel")
    assert "-pw" not in message
