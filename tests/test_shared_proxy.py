"""A proxy app with ``[shared]``, in-process: served on local state while Redis is unreachable,
and its ``/health`` and ``/accounts/stats`` saying so."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from e2e import free_port
from proxyharness import MakeHarness, harness_factory
from redisfixture import RedisServer, redis_binary, redis_server_fixture  # noqa: F401

from qcc.routing.sticky import HEADER

BODY = {"model": "claude-test", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}


@pytest.fixture
def make(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


async def test_redis_unreachable_requests_are_served_and_health_says_down(
    make: MakeHarness,
) -> None:
    shared = {"redis_url": f"redis://127.0.0.1:{free_port()}/0"}  # nothing listens there
    h = await make("main", sticky=True, extra={"shared": shared})
    started = time.monotonic()
    for n in range(5):
        response = await h.client.post("/v1/messages", json=BODY, headers={HEADER: f"s{n}"})
        assert response.status == 200
    assert time.monotonic() - started < 1.0  # no request waited on Redis
    health = await (await h.client.get("/health")).json()
    assert health["shared"] == "down" and health["status"] == "healthy"
    stats = await (await h.client.get("/accounts/stats")).json()
    assert stats["shared"]["state"] == "down"
    assert stats["shared"]["redis"] == shared["redis_url"]


async def test_health_has_no_shared_field_without_shared(make: MakeHarness) -> None:
    h = await make("main")
    assert "shared" not in await (await h.client.get("/health")).json()
    assert "shared" not in await (await h.client.get("/accounts/stats")).json()
    assert h.runtime.shared is None and h.runtime.pool.listener is None


async def test_a_session_served_here_is_written_for_the_other_instances(
    make: MakeHarness, redis_server: RedisServer
) -> None:
    h = await make("main", "spare", sticky=True, extra={"shared": {"redis_url": redis_server.url}})
    assert (await (await h.client.get("/health")).json())["shared"] == "ok"
    response = await h.client.post("/v1/messages", json=BODY, headers={HEADER: "conv-1"})
    assert response.status == 200
    shared = h.runtime.shared
    assert shared is not None
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        key = shared.keys.sticky("conv-1")
        deadline = time.monotonic() + 1.0
        while (value := await client.get(key)) is None:  # written within a tick
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert value == b"main"
        assert 0 < await client.ttl(key) <= 3600
    finally:
        await client.aclose()
    stats = await (await h.client.get("/accounts/stats")).json()
    assert [i["id"] for i in stats["shared"]["instances"]] == [shared.id]


async def test_a_password_from_its_env_var_is_used_and_never_shown(
    make: MakeHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "team-redis-pw-4f9a2c"
    server = RedisServer(redis_binary(), tmp_path, password=password)
    server.start()
    try:
        monkeypatch.setenv("QCC_TEST_REDIS_PW", password)
        shared = {"redis_url": server.url, "redis_password_env": "QCC_TEST_REDIS_PW"}
        h = await make("main", extra={"shared": shared})
        assert (await (await h.client.get("/health")).json())["shared"] == "ok"
        stats = await (await h.client.get("/accounts/stats")).text()
        assert '"state": "ok"' in stats and password not in stats
    finally:
        server.stop()
    wrong = {"redis_url": f"redis://:not-{password}@127.0.0.1:{server.port}/0"}
    server.start()
    try:
        h = await make("main", extra={"shared": wrong})
        assert (await (await h.client.get("/health")).json())["shared"] == "down"
        stats = await (await h.client.get("/accounts/stats")).text()
        assert password not in stats and "redis://***@127.0.0.1" in stats
    finally:
        server.stop()
