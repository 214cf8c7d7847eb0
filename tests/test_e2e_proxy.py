"""The real ``qcc proxy start`` with the official anthropic SDK as its client."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import pytest
from e2e import env_for, free_port, running_proxy, write_config

from qcc.fake_upstream import Behavior, FakeUpstream

pytestmark = pytest.mark.slow

KEY = "sk-ant-api03-E2ESECRETE2ESECRETE2E-zz99"


async def start_upstreams(
    aiohttp_server: Any, **behaviors: Behavior
) -> dict[str, tuple[FakeUpstream, str]]:
    out = {}
    for name, behavior in behaviors.items():
        fake = FakeUpstream(name, behavior)
        server = await aiohttp_server(fake.app())
        out[name] = (fake, str(server.make_url("")).rstrip("/"))
    return out


def config_for(urls: dict[str, str], port: int, strategy: str = "round-robin") -> dict[str, Any]:
    return {
        "default_cluster": "prod",
        "proxy": {"port": port, "drain_timeout": 5},
        "clusters": {
            "prod": {
                "strategy": strategy,
                "accounts": {
                    name: {"base_url": url, "api_key": f"{KEY}-{name}"}
                    for name, url in urls.items()
                },
            }
        },
    }


async def test_sdk_through_real_proxy_with_failover(aiohttp_server: Any, tmp_path: Path) -> None:
    ups = await start_upstreams(
        aiohttp_server,
        broken=Behavior(mode="status", status=529),
        good=Behavior(deltas=4),
    )
    port = free_port()
    env = env_for(tmp_path)
    write_config(
        tmp_path / "config", config_for({n: u for n, (_, u) in ups.items()}, port, "priority")
    )
    with running_proxy(env) as (process, url):
        client = anthropic.AsyncAnthropic(base_url=url, api_key="anything", max_retries=0)
        message = await client.messages.create(
            model="qcc-test-model", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
        assert message.content[0].text == "Hello from a fake account."  # type: ignore[union-attr]
        async with client.messages.stream(
            model="qcc-test-model", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            text = "".join([t async for t in stream.text_stream])
        assert text == "Hello from a fake account."
        final = await stream.get_final_message()
        assert final.usage.output_tokens == 7
        await client.close()
        # The broken account was tried and failed over, invisibly; the client key never left.
        assert ups["broken"][0].requests
        for fake, _ in ups.values():
            for seen in fake.requests:
                assert "anything" not in str(seen.headers)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0


async def test_sdk_gets_anthropic_error_when_all_fail(aiohttp_server: Any, tmp_path: Path) -> None:
    ups = await start_upstreams(aiohttp_server, a=Behavior(mode="status", status=500))
    port = free_port()
    env = env_for(tmp_path)
    write_config(tmp_path / "config", config_for({n: u for n, (_, u) in ups.items()}, port))
    with running_proxy(env) as (_, url):
        client = anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as info:
            await client.messages.create(
                model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
            )
        assert info.value.status_code == 503
        assert "1 accounts tried" in str(info.value) or "all 1 accounts" in str(info.value)
        await client.close()


async def test_200_concurrent_streams_byte_exact(aiohttp_server: Any, tmp_path: Path) -> None:
    ups = await start_upstreams(
        aiohttp_server, a=Behavior(deltas=20, interval=0.005), b=Behavior(deltas=20, interval=0.005)
    )
    port = free_port()
    env = env_for(tmp_path)
    write_config(tmp_path / "config", config_for({n: u for n, (_, u) in ups.items()}, port))
    body = {
        "model": "m",
        "max_tokens": 5,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with aiohttp.ClientSession() as session:
        direct = {}
        for name, (_, upstream_url) in ups.items():
            async with session.post(upstream_url + "/v1/messages", json=body) as resp:
                direct[name] = await resp.read()
        with running_proxy(env) as (_, url):

            async def one() -> bytes:
                async with session.post(
                    url + "/v1/messages", json=body, headers={"x-api-key": "x"}
                ) as resp:
                    assert resp.status == 200
                    return await resp.read()

            results = await asyncio.gather(*(one() for _ in range(200)))
    expected = set(direct.values())
    assert all(r in expected for r in results)
    served = sum(f.completed for f, _ in ups.values())
    assert served == 200 + 2
    assert min(f.completed for f, _ in ups.values()) >= 90  # round-robin spread them
