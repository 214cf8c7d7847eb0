"""Limits an account announces, used before they bite: skipped while it says it is out of room,
cooled until a rejected window's reset, and shown in /accounts/stats, /metrics and qcc health."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from proxyharness import Harness, MakeHarness, harness_factory

from qcc.cli.health import accounts_table
from qcc.cli.render import FitTable
from qcc.fake_upstream import Behavior

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
STRATEGIES = ("priority", "weighted", "round-robin", "least-latency")


@pytest.fixture
def make(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


def quota(remaining: int, limit: int = 100, reset_in: float = 600.0) -> dict[str, str]:
    """API-key request limits, reset as RFC 3339 (as Anthropic sends it)."""
    reset = datetime.fromtimestamp(time.time() + reset_in, UTC).isoformat()
    return {
        "anthropic-ratelimit-requests-limit": str(limit),
        "anthropic-ratelimit-requests-remaining": str(remaining),
        "anthropic-ratelimit-requests-reset": reset,
    }


async def announce(h: Harness, name: str, limit: int = 60) -> None:
    """Send requests until ``name`` has answered once (and so announced its limits)."""
    for _ in range(limit):
        if h.upstreams[name].requests:
            return
        assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    raise AssertionError(f"{name} never served")


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_account_announcing_no_room_is_skipped_and_sees_no_429(
    make: MakeHarness, strategy: str
) -> None:
    full = Behavior(headers=quota(0))
    h = await make(
        "a",
        "b",
        strategy=strategy,
        behaviors={"a": full, "b": Behavior(headers=quota(80))},
        accounts={"a": {"priority": 0}, "b": {"priority": 1}},
    )
    await announce(h, "a")
    # From now on a would answer 429, as a real account at its limit does.
    h.upstreams["a"].behavior = Behavior(mode="status", status=429, headers=quota(0))
    seen_by_a = len(h.upstreams["a"].requests)
    for _ in range(20):
        assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    assert len(h.upstreams["a"].requests) == seen_by_a  # zero 429s: it was never asked
    assert h.member("a").stats.outcomes["rate_limited"] == 0
    assert h.member("a").health.state.value == "healthy"  # skipped, not penalised


async def test_sticky_session_leaves_an_account_out_of_room(make: MakeHarness) -> None:
    h = await make(
        "a",
        "b",
        sticky=True,
        behaviors={"a": Behavior(headers=quota(0)), "b": Behavior()},
        accounts={"a": {"priority": 0}, "b": {"priority": 1}},
    )
    headers = {"x-claude-code-session-id": "s1"}
    assert (await h.client.post("/v1/messages", json=BODY, headers=headers)).status == 200
    assert len(h.upstreams["a"].requests) == 1  # the session started on a, which is now full
    for _ in range(5):
        assert (await h.client.post("/v1/messages", json=BODY, headers=headers)).status == 200
    assert (len(h.upstreams["a"].requests), len(h.upstreams["b"].requests)) == (1, 5)


async def test_when_every_account_is_out_of_room_traffic_still_flows(make: MakeHarness) -> None:
    h = await make(
        "a",
        "b",
        strategy="round-robin",
        behaviors={"a": Behavior(headers=quota(0)), "b": Behavior(headers=quota(1, 1000))},
    )
    for _ in range(10):
        assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    served = (len(h.upstreams["a"].requests), len(h.upstreams["b"].requests))
    assert sum(served) == 10 and min(served) > 0  # no refusal for headroom alone
    assert h.runtime.pool.full_members == 2


async def test_room_comes_back_with_the_next_announcement(make: MakeHarness) -> None:
    h = await make(
        "a", "b", behaviors={"a": Behavior(headers=quota(0))}, accounts={"b": {"priority": 1}}
    )
    await announce(h, "a")
    assert h.runtime.pool.full_members == 1
    # Its reset passes: the account is asked again.
    h.member("a").full_until = 0.0
    h.upstreams["a"].behavior = Behavior(headers=quota(50))
    assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    assert len(h.upstreams["a"].requests) == 2
    assert h.runtime.pool.full_members == 0


async def test_a_rejected_5h_window_cools_until_its_reset(make: MakeHarness) -> None:
    reset = int(time.time()) + 3 * 3600
    window = {
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-5h-status": "rejected",
        "anthropic-ratelimit-unified-5h-utilization": "1.0",
        "anthropic-ratelimit-unified-5h-reset": str(reset),
        "retry-after": "7",
    }
    h = await make(
        "a",
        "b",
        behaviors={"a": Behavior(mode="status", status=429, headers=window)},
        accounts={"b": {"priority": 1}},
    )
    assert (await h.client.post("/v1/messages", json=BODY)).status == 200  # b answered
    doc = await (await h.client.get("/accounts/stats")).json()
    a = next(acc for acc in doc["accounts"] if acc["name"] == "a")
    assert a["state"] == "rate_limited"
    assert a["until"] == pytest.approx(reset, abs=5)  # the window's reset, not retry-after
    assert a["limits"]["unified"]["5h"] == {
        "status": "rejected",
        "utilization": 1.0,
        "reset": reset,
    }


async def test_a_429_without_limit_headers_is_short(make: MakeHarness) -> None:
    h = await make(
        "a",
        "b",
        behaviors={"a": Behavior(mode="status", status=429, headers={"retry-after": "3"})},
        accounts={"b": {"priority": 1}},
    )
    assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    doc = await (await h.client.get("/accounts/stats")).json()
    a = next(acc for acc in doc["accounts"] if acc["name"] == "a")
    assert a["until"] == pytest.approx(time.time() + 3, abs=1.5)
    assert a["limits"] is None and a["headroom"] is None


async def test_limits_shown_in_stats_metrics_and_health(make: MakeHarness) -> None:
    h = await make("a", "b", behaviors={"a": Behavior(headers=quota(40))})
    assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    doc = await (await h.client.get("/accounts/stats")).json()
    a, b = doc["accounts"]
    assert a["headroom"] == pytest.approx(0.4)
    assert a["limits"]["quotas"]["requests"]["remaining"] == 40
    assert b["limits"] is None and b["headroom"] is None
    text = await (await h.client.get("/metrics")).text()
    gauges = [line for line in text.splitlines() if line.startswith("qcc_account_headroom")]
    assert gauges == ['qcc_account_headroom{account="a",cluster="test"} 0.4']
    table = accounts_table(doc, "test")
    assert isinstance(table, FitTable)
    headers = [str(column.header) for column in table.columns]
    column = [str(c) for c in table.columns[headers.index("headroom")].cells]
    assert column == ["40%", "-"]
