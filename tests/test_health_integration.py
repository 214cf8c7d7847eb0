"""Passive and active health checking in a running app against real fake upstreams."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from proxyharness import MakeHarness, harness_factory, wait_for

from qcc.fake_upstream import Behavior
from qcc.health.state import State

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
QUICK_HEALTH = {
    "health": {
        "failure_threshold": 3,
        "ejection_base": 0.3,
        "ejection_max": 1.0,
        "probe_interval": 60,
        "probe_timeout": 1,
    }
}


@pytest.fixture
def make(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


def messages(fake: Any) -> int:
    return sum(1 for seen in fake.requests if seen.path_qs == "/v1/messages")


def probes(fake: Any) -> list[str]:
    return [seen.path_qs for seen in fake.requests if seen.path_qs != "/v1/messages"]


async def test_failing_account_is_ejected_probed_and_returns(make: MakeHarness) -> None:
    h = await make(
        "flaky",
        "steady",
        strategy="round-robin",
        monitor=True,
        extra=QUICK_HEALTH,
        behaviors={"flaky": Behavior(mode="status", status=500)},
    )
    flaky, steady = h.upstreams["flaky"], h.upstreams["steady"]
    await wait_for(lambda: probes(flaky) and probes(steady))  # start-up probes
    assert probes(flaky) == ["/v1/messages/count_tokens"]  # token-free probe

    member = h.member("flaky")
    for _ in range(6):  # every request succeeds for the client, flaky or not
        assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    assert member.health.state is State.EJECTED
    assert member.health.consecutive_failures >= 3
    tried_while_healthy = messages(flaky)
    # Probe failures count like traffic: the start-up probe + 2 requests reach the threshold.
    assert tried_while_healthy + len(probes(flaky)) == 3

    for _ in range(5):  # while out, it gets no traffic
        assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    assert messages(flaky) == tried_while_healthy

    flaky.behavior = Behavior()  # it recovers
    ejected_for = member.health.until - asyncio.get_running_loop().time()
    recovered_in = await wait_for(lambda: member.health.state is State.HEALTHY, limit=3)
    assert recovered_in <= ejected_for + 0.5  # ejection time plus one probe
    assert any(t.to_state is State.PROBING for t in member.health.transitions)

    before = messages(flaky)
    for _ in range(4):
        await h.client.post("/v1/messages", json=BODY)
    assert messages(flaky) == before + 2  # back in rotation


async def test_probe_failure_lengthens_ejection(make: MakeHarness) -> None:
    h = await make(
        "bad",
        "good",
        monitor=True,
        extra=QUICK_HEALTH,
        behaviors={"bad": Behavior(mode="status", status=503)},
    )
    member = h.member("bad")
    for _ in range(3):
        await h.client.post("/v1/messages", json=BODY)
        member.health.record_failure(asyncio.get_running_loop().time(), "forced")
    await wait_for(lambda: member.health.state is State.EJECTED)
    await wait_for(lambda: member.health.ejections >= 2, limit=3)  # a probe failed: longer
    assert member.health.state in (State.EJECTED, State.PROBING)


async def test_hung_account_never_delays_other_probes(make: MakeHarness) -> None:
    h = await make(
        "hung",
        "fine",
        monitor=True,
        extra={"health": {"probe_timeout": 0.5, "probe_interval": 60}},
        behaviors={"hung": Behavior(mode="hang")},
    )
    waited = await wait_for(lambda: probes(h.upstreams["fine"]) and h.member("fine").stats)
    assert waited < 0.4
    await wait_for(lambda: h.member("hung").health.consecutive_failures == 1, limit=2)
    assert "no answer within 0.5s" in (h.member("hung").stats.last_error or "")


async def test_auth_failed_account_recovers_when_probe_succeeds(make: MakeHarness) -> None:
    h = await make(
        "a",
        "b",
        monitor=True,
        extra=QUICK_HEALTH,
        behaviors={"a": Behavior(mode="status", status=401)},
    )
    await wait_for(lambda: h.member("a").health.state is State.AUTH_FAILED)
    assert "401" in h.member("a").health.reason
    h.upstreams["a"].behavior = Behavior()
    await wait_for(lambda: h.member("a").health.state is State.HEALTHY, limit=3)


async def test_probe_falls_back_and_reports_missing_endpoints(make: MakeHarness) -> None:
    from qcc.config.model import Account, Credential
    from qcc.health.probe import check_once

    h = await make("relay")
    url = str(h.servers["relay"].make_url("")).rstrip("/")
    credential = Credential("api_key", "k" * 20)
    client = h.runtime.client  # probes share the proxy's own client
    # A base URL where neither probe endpoint exists: both tried, reported, unhealthy.
    wrong = Account("relay", url + "/nothing-here", credential)
    result = await check_once(client, wrong, ("x-api-key", "k"), 2)
    assert not result.ok
    assert "count_tokens: HTTP 404" in result.detail
    assert "models: HTTP 404" in result.detail
    # A relay configured for the models probe.
    relay = Account("relay", url, credential, probe="models")
    result = await check_once(client, relay, ("x-api-key", "k"), 2)
    assert result.ok and result.method == "GET /v1/models"
    # probe = "message" sends a real one-token message.
    message = Account("relay", url, credential, probe="message")
    result = await check_once(client, message, ("x-api-key", "k"), 2)
    assert result.ok and result.method == "POST /v1/messages"
    assert b'"max_tokens":1' in h.upstreams["relay"].requests[-1].body.replace(b" ", b"")


def test_rate_limit_cools_for_retry_after_and_no_more() -> None:
    from qcc.config.model import HealthSettings
    from qcc.health.state import AccountHealth
    from qcc.routing.ratelimit import rest_after_429

    health = AccountHealth(HealthSettings(), now=100.0)
    cooldown = rest_after_429({"retry-after": "2"}, wall_now=0.0)
    assert cooldown is not None
    health.record_rate_limited(100.0, 100.0 + cooldown, "HTTP 429")
    assert not health.usable(101.9)
    assert health.usable(102.1)
    assert health.state is State.HEALTHY
