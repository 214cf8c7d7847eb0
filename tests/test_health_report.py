"""Traffic and probes reach the one health decision: the pool's report, the monitor's callable,
and the configured rate-limit default, against real fake accounts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from proxyharness import MakeHarness, cluster_config, harness_factory, wait_for

from qcc.accounts.member import Member
from qcc.accounts.monitor import HealthMonitor
from qcc.accounts.observe import Observation, Source
from qcc.accounts.pool import AccountPool
from qcc.config.store import parse
from qcc.errors import ConfigValidationError
from qcc.fake_upstream import Behavior
from qcc.health.state import State
from qcc.routing.classify import Outcome

PATH = Path("/cfg/config.toml")
BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def make(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


def make_pool(**extra: Any) -> AccountPool:
    config = cluster_config({"a": "http://127.0.0.1:1", "b": "http://127.0.0.1:2"}, extra=extra)
    return AccountPool(config.cluster("test"), config.health, now=0.0)


def test_pool_report_wakes_the_monitor_only_when_an_account_leaves_rotation() -> None:
    pool = make_pool()
    member = pool.members["a"]
    pool.report(member, Observation(Source.TRAFFIC, Outcome.RATE_LIMITED), 1.0, 0.0)
    assert member.health.state is State.RATE_LIMITED and not pool.out_of_rotation.is_set()
    pool.report(member, Observation(Source.TRAFFIC, Outcome.AUTH_FAILED, status=401), 2.0, 0.0)
    assert member.health.state is State.AUTH_FAILED and pool.out_of_rotation.is_set()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_429_without_reset_headers_rests_for_the_configured_default(
    make: MakeHarness, stream: bool
) -> None:
    """Was 30 s, written four times; now ``health.rate_limit_default``."""
    h = await make(
        "limited",
        "good",
        extra={"health": {"rate_limit_default": 3}},
        behaviors={"limited": Behavior(mode="status", status=429)},
    )
    resp = await h.client.post("/v1/messages", json=BODY | {"stream": stream})
    assert resp.status == 200
    health = h.member("limited").health
    assert health.state is State.RATE_LIMITED
    assert health.until == pytest.approx(asyncio.get_running_loop().time() + 3, abs=0.5)


async def test_probe_429_without_reset_headers_rests_for_the_configured_default(
    make: MakeHarness,
) -> None:
    h = await make(
        "limited",
        monitor=True,
        extra={"health": {"rate_limit_default": 4}},
        behaviors={"limited": Behavior(mode="status", status=429)},
    )
    member = h.member("limited")
    await wait_for(lambda: member.health.state is State.RATE_LIMITED)
    until = member.health.until
    assert until == pytest.approx(asyncio.get_running_loop().time() + 4, abs=0.5)
    assert member.stats.last_error.startswith("probe: POST /v1/messages/count_tokens: HTTP 429")
    assert member.stats.outcomes == {}  # a probe is not a request
    stats = await (await h.client.get("/accounts/stats")).json()
    assert stats["accounts"][0]["local_errors"] == 0


async def test_monitor_takes_any_probe_callable() -> None:
    """The monitor knows the pool and a callable, not HTTP nor the proxy."""
    pool = make_pool(health={"failure_threshold": 1, "ejection_base": 0.05, "ejection_max": 0.1})
    answers = {"a": Outcome.NETWORK, "b": Outcome.SUCCESS}
    probed: list[str] = []

    async def probe(member: Member) -> Observation:
        probed.append(member.name)
        return Observation(Source.PROBE, answers[member.name], "fake probe")

    monitor = HealthMonitor(pool, probe)
    task = asyncio.get_running_loop().create_task(monitor.run(), name="test-monitor")
    try:
        a = pool.members["a"]
        await wait_for(lambda: a.health.state is State.EJECTED)
        answers["a"] = Outcome.SUCCESS
        await wait_for(lambda: a.health.state is State.HEALTHY and a.health.ejections == 0)
        assert a.stats.last_error == "probe: fake probe"
        assert probed.count("a") >= 2 and "b" in probed
    finally:
        task.cancel("test over")
        with pytest.raises(asyncio.CancelledError):
            await task


def test_rate_limit_default_is_validated() -> None:
    with pytest.raises(ConfigValidationError) as info:
        parse("[health]\nrate_limit_default = 0\n", PATH)
    assert str(info.value) == "health.rate_limit_default: must be a number of seconds > 0"
    assert parse("[health]\nrate_limit_default = 2.5\n", PATH).health.rate_limit_default == 2.5
