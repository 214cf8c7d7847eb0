"""End to end: two real ``qcc proxy`` processes sharing one pool through a real ``redis-server``
(:mod:`redisfixture`), in front of fake accounts."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from e2e import env_for, free_port, running_proxy, write_config
from redisfixture import RedisServer, redis_binary, redis_server_fixture  # noqa: F401

from qcc import wire
from qcc.config.validate import config_from
from qcc.fake_upstream import Behavior, FakeUpstream
from qcc.routing.sticky import HEADER
from qcc.usage.pricing import cost, price_table

pytestmark = pytest.mark.slow

KEY = "sk-ant-api03-SHAREDE2ESECRET-0001"
MODEL = "claude-test"
PRICING = {
    MODEL: {
        "input": 3.0,
        "output": 15.0,
        "cache_write_5m": 3.75,
        "cache_write_1h": 6.0,
        "cache_read": 0.3,
    }
}
BODY = {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
COST = cost(
    price_table(config_from({"pricing": PRICING}).pricing).lookup(MODEL),  # type: ignore[arg-type]
    wire.token_usage(),
)


async def fakes_up(aiohttp_server: Any, fakes: dict[str, FakeUpstream]) -> dict[str, str]:
    urls = {}
    for name, fake in fakes.items():
        server = await aiohttp_server(fake.app())
        urls[name] = str(server.make_url("")).rstrip("/")
    return urls


@contextlib.contextmanager
def two_proxies(tmp: Path, redis_url: str, cluster: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Instances A and B: the same cluster ``team`` and ``[shared]``, their own dirs and ports."""
    urls = []
    stack = contextlib.ExitStack()
    with stack:
        for name in ("a", "b"):
            data = {
                "default_cluster": "team",
                "proxy": {"port": free_port(), "drain_timeout": 2},
                "health": {"failure_threshold": 1, "ejection_base": 30},
                "clusters": {"team": cluster},
                "pricing": PRICING,
                "shared": {"redis_url": redis_url},
            }
            write_config(tmp / name / "config", data)
            # logs to the state dir only: nobody reads the pipes once it listens
            _, url = stack.enter_context(running_proxy(env_for(tmp / name), "--no-log-stderr"))
            urls.append(url)
        yield urls[0], urls[1]


def accounts(urls: dict[str, str], **extra: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {"base_url": url, "api_key": f"{KEY}-{name}"} | extra.get(name, {})
        for name, url in urls.items()
    }


async def until(check: Callable[[], Awaitable[bool]], within: float, step: float = 0.02) -> float:
    """Seconds until ``check()`` held; fails after ``within``."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, f"not within {within}s"
        await asyncio.sleep(step)
    return time.monotonic() - started


async def get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        return await response.json()


async def post(http: aiohttp.ClientSession, url: str, session: str | None = None) -> int:
    headers = {"x-api-key": "client", "anthropic-version": "2023-06-01"}
    if session is not None:
        headers[HEADER] = session
    async with http.post(f"{url}/v1/messages", json=BODY, headers=headers) as response:
        await response.read()
        return response.status


def messages(fake: FakeUpstream) -> list[Any]:
    return [r for r in fake.requests if r.path_qs == "/v1/messages"]


async def test_an_account_ejected_by_one_instance_is_skipped_by_the_other_within_1s(
    aiohttp_server: Any, tmp_path: Path, redis_server: RedisServer
) -> None:
    fakes = {"bad": FakeUpstream("bad"), "good": FakeUpstream("good")}
    urls = await fakes_up(aiohttp_server, fakes)
    cluster = {"strategy": "priority", "accounts": accounts(urls, good={"priority": 1})}
    with two_proxies(tmp_path, redis_server.url, cluster) as (a, b):
        async with aiohttp.ClientSession() as http:

            async def probed() -> bool:  # both instances' start-up probes are done
                return len(fakes["bad"].requests) >= 2

            await until(probed, within=3.0)
            fakes["bad"].behavior = Behavior(mode="status", status=500)  # breaks now
            assert await post(http, a) == 200  # bad failed once: ejected on A, good answered
            assert len(messages(fakes["bad"])) == 1

            async def ejected_on_b() -> bool:
                doc = await get(http, f"{b}/accounts/stats")
                return next(x for x in doc["accounts"] if x["name"] == "bad")["state"] == "ejected"

            assert await until(ejected_on_b, within=1.0) < 1.0
            assert [await post(http, b) for _ in range(5)] == [200] * 5
            assert len(messages(fakes["bad"])) == 1  # B never tried it
            stats = await get(http, f"{b}/accounts/stats")
            assert stats["shared"]["state"] == "ok" and len(stats["shared"]["instances"]) == 2
            bad = next(x for x in stats["accounts"] if x["name"] == "bad")
            assert "from instance" in bad["reason"]
            health = await get(http, f"{a}/health")
            assert health["shared"] == "ok"


async def redis_hash(url: str, key: str) -> dict[str, str]:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        return dict(await client.hgetall(key))  # type: ignore[misc]
    finally:
        await client.aclose()


def today(kind: str) -> str:
    return f"qcc:team:{kind}:{time.strftime('%Y-%m-%d')}"


async def test_1000_concurrent_requests_over_two_instances_add_up_exactly(
    aiohttp_server: Any, tmp_path: Path, redis_server: RedisServer
) -> None:
    urls = await fakes_up(aiohttp_server, {"main": FakeUpstream("main")})
    with two_proxies(tmp_path, redis_server.url, {"accounts": accounts(urls)}) as (a, b):
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector) as http:
            targets = itertools.islice(itertools.cycle((a, b)), 1000)
            statuses = await asyncio.gather(*(post(http, url) for url in targets))
        assert statuses == [200] * 1000

        async def counted() -> bool:
            usage = await redis_hash(redis_server.url, today("usage"))
            return usage.get("a:main:requests") == "1000"

        await until(counted, within=3.0, step=0.1)
        usage = await redis_hash(redis_server.url, today("usage"))
        for kind, count in wire.token_usage().items():
            assert int(usage[f"a:main:{kind}"]) == 1000 * count
        spend = await redis_hash(redis_server.url, today("spend"))
        assert float(spend["a:main"]) == pytest.approx(1000 * COST, rel=1e-9)


async def test_a_budget_shared_by_two_instances_stops_at_the_limit_not_twice(
    aiohttp_server: Any, tmp_path: Path, redis_server: RedisServer
) -> None:
    urls = await fakes_up(aiohttp_server, {"main": FakeUpstream("main")})
    budget = {"main": {"budget_daily_usd": 8.5 * COST}}  # the 9th request reaches it
    with two_proxies(tmp_path, redis_server.url, {"accounts": accounts(urls, **budget)}) as (a, b):
        async with aiohttp.ClientSession() as http:
            served = 0
            for url in itertools.islice(itertools.cycle((a, b)), 30):
                served += await post(http, url) == 200
                await asyncio.sleep(0.06)
        # alone, each instance would serve 9 (18 in all); shared, the team stops at 9, give or
        # take what the other instance served before its next tick (0.25 s)
        assert 9 <= served <= 13


async def test_a_session_alternating_between_instances_stays_on_one_account(
    aiohttp_server: Any, tmp_path: Path, redis_server: RedisServer
) -> None:
    fakes = {name: FakeUpstream(name) for name in ("one", "two", "three")}
    urls = await fakes_up(aiohttp_server, fakes)
    cluster = {"strategy": "round-robin", "sticky": True, "accounts": accounts(urls)}
    sessions = [f"sess-{i}-{uuid.uuid4().hex[:8]}" for i in range(4)]
    with two_proxies(tmp_path, redis_server.url, cluster) as (a, b):
        async with aiohttp.ClientSession() as http:
            for turn in range(4):
                statuses = await asyncio.gather(
                    *(post(http, (a, b)[(turn + i) % 2], s) for i, s in enumerate(sessions))
                )
                assert statuses == [200] * len(sessions)
                await asyncio.sleep(0.1)  # a conversation's next turn comes seconds later
    for session in sessions:
        served_by = {
            name
            for name, fake in fakes.items()
            for r in messages(fake)
            if {k.lower(): v for k, v in r.headers.items()}.get(HEADER) == session
        }
        assert len(served_by) == 1, (session, served_by)


async def test_redis_killed_under_load_no_client_fails_and_sharing_resumes(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    redis = RedisServer(redis_binary(), tmp_path, persistent=True)  # comes back with its data
    redis.start()
    urls = await fakes_up(aiohttp_server, {"main": FakeUpstream("main")})
    try:
        with two_proxies(tmp_path, redis.url, {"accounts": accounts(urls)}) as (a, b):
            results: list[int] = []
            stop = asyncio.Event()
            async with aiohttp.ClientSession() as http:

                async def load(worker: int) -> None:
                    for n in itertools.count():
                        if stop.is_set():
                            return
                        url = (a, b)[(worker + n) % 2]
                        results.append(await post(http, url, f"s-{worker}-{n}"))

                async def shared_is(state: str) -> bool:
                    docs = [await get(http, f"{u}/health") for u in (a, b)]
                    return all(d["shared"] == state for d in docs)

                workers = [asyncio.create_task(load(w)) for w in range(6)]
                await asyncio.sleep(0.4)
                redis.kill()
                await until(lambda: shared_is("down"), within=2.0)
                await asyncio.sleep(0.3)
                redis.start()
                await until(lambda: shared_is("ok"), within=4.0, step=0.1)
                await asyncio.sleep(0.3)
                stop.set()
                await asyncio.gather(*workers)
                assert results and set(results) == {200}  # zero client-visible failures

                async def all_counted() -> bool:
                    usage = await redis_hash(redis.url, today("usage"))
                    return usage.get("a:main:requests") == str(len(results))

                await until(all_counted, within=3.0, step=0.1)  # once each: none lost, none twice
                stats = await get(http, f"{b}/accounts/stats")
                assert len(stats["shared"]["instances"]) == 2
    finally:
        redis.stop()
