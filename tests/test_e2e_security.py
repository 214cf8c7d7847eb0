"""The real ``qcc proxy start``, attacked at its edge: a rebinding Host, a web page's Origin, a
path that climbs out of /v1, a malformed request carrying the client's key, a slow client."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import anthropic
import pytest
from e2e import one_account_config, raw_exchange, running_proxy

from qcc.fake_upstream import FakeUpstream

pytestmark = pytest.mark.slow

ACCOUNT_KEY = "sk-ant-api03-E2EACCOUNTKEY-edge-0000-zz11"
CLIENT_KEY = "sk-ant-api03-E2ECLIENTKEY-edge-must-not-leak-9"


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


async def test_real_proxy_edge(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeUpstream("main")
    server = await aiohttp_server(fake.app())
    env, port = one_account_config(
        tmp_path,
        str(server.make_url("")).rstrip("/"),
        ACCOUNT_KEY,
        proxy={"drain_timeout": 2},
        account={"probe": "count_tokens"},
        timeouts={"client_read": 1},
    )
    with running_proxy(env) as (process, url):
        # The official SDK is not affected by any of the rules.
        client = anthropic.AsyncAnthropic(base_url=url, api_key=CLIENT_KEY, max_retries=0)
        message = await client.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
        assert message.content
        await client.close()

        def forwarded() -> list[str]:  # health probes aside
            return [r.path_qs for r in fake.requests if r.path_qs != "/v1/messages/count_tokens"]

        assert forwarded() == ["/v1/messages"]

        def get(target: str, host: str = f"127.0.0.1:{port}", extra: str = "") -> bytes:
            return (
                f"GET {target} HTTP/1.1\r\nHost: {host}\r\nx-api-key: {CLIENT_KEY}\r\n"
                f"{extra}Connection: close\r\n\r\n"
            ).encode()

        rebinding = await raw_exchange(port, get("/v1/models", host=f"attacker.example:{port}"))
        assert status(rebinding) == 403
        page = await raw_exchange(
            port, get("/v1/models", extra="Origin: https://attacker.example\r\n")
        )
        assert status(page) == 403
        assert status(await raw_exchange(port, get("/v1/%2e%2e/admin"))) == 404
        assert status(await raw_exchange(port, get("http://attacker.example/v1/models"))) == 400
        malformed = get("/v1/models", extra=f"X-Bad: {CLIENT_KEY}\x01\r\n")
        assert status(await raw_exchange(port, malformed)) == 400
        assert forwarded() == ["/v1/messages"]  # none of these reached the account

        # A client that never finishes its head is cut after timeouts.client_read.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        await writer.drain()
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert loop.time() - started < 3
        writer.close()

        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    logs = "".join(p.read_text() for p in (tmp_path / "state").rglob("*.log*"))
    written = logs + stderr
    assert "refused a request for Host 'attacker.example:" in written
    assert "refused a malformed request" in written
    assert CLIENT_KEY not in written and ACCOUNT_KEY not in written
    assert "Traceback" not in written
