"""Account selection through the running app: strategies, tiers, stickiness, budget, access key."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from proxyharness import MakeHarness, harness_factory

from qcc.fake_upstream import Behavior

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def make(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


def served(h: Any) -> Counter[str]:
    return Counter({name: len(fake.requests) for name, fake in h.upstreams.items()})


async def test_weighted_spreads_by_weight(make: MakeHarness) -> None:
    h = await make("a", "b", strategy="weighted", accounts={"a": {"weight": 3}, "b": {"weight": 1}})
    for _ in range(40):
        assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    assert served(h) == Counter({"a": 30, "b": 10})


async def test_lower_tier_only_when_higher_cannot_serve(make: MakeHarness) -> None:
    h = await make(
        "main",
        "backup",
        strategy="round-robin",
        accounts={"main": {"priority": 0}, "backup": {"priority": 1}},
    )
    for _ in range(5):
        await h.client.post("/v1/messages", json=BODY)
    assert served(h) == Counter({"main": 5, "backup": 0})
    h.upstreams["main"].behavior = Behavior(mode="status", status=503)
    resp = await h.client.post("/v1/messages", json=BODY)
    assert resp.status == 200
    assert served(h)["backup"] == 1


def with_session(session: str, form: str) -> dict[str, Any]:
    if form == "json":
        user_id = json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": session})
    else:
        user_id = f"user_{'a' * 64}_account__session_{session}"
    return BODY | {"metadata": {"user_id": user_id}}


@pytest.mark.parametrize("form", ["json", "legacy", "header"])
async def test_sticky_sessions_keep_a_conversation_on_one_account(
    make: MakeHarness, form: str
) -> None:
    h = await make("a", "b", "c", strategy="round-robin", sticky=True)
    sessions = [f"0f3c{i:04d}-1111-2222-3333-444455556666" for i in range(6)]
    placed: dict[str, set[str]] = {s: set() for s in sessions}
    for _ in range(4):
        for s in sessions:
            if form == "header":
                resp = await h.client.post(
                    "/v1/messages", json=BODY, headers={"X-Claude-Code-Session-Id": s}
                )
            else:
                resp = await h.client.post("/v1/messages", json=with_session(s, form))
            assert resp.status == 200
    for name, fake in h.upstreams.items():
        for seen in fake.requests:
            key = seen.headers.get("X-Claude-Code-Session-Id") or next(
                s for s in sessions if s in seen.body.decode()
            )
            placed[key].add(name)
    assert all(len(accounts) == 1 for accounts in placed.values()), placed
    assert len({next(iter(a)) for a in placed.values()}) == 3  # spread across accounts


async def test_sticky_yields_when_account_unavailable(make: MakeHarness) -> None:
    h = await make("a", "b", strategy="priority", sticky=True)
    s = "0f3c0000-1111-2222-3333-444455556666"
    headers = {"x-claude-code-session-id": s}
    await h.client.post("/v1/messages", json=BODY, headers=headers)
    assert served(h) == Counter({"a": 1, "b": 0})
    h.upstreams["a"].behavior = Behavior(mode="status", status=429, headers={"retry-after": "60"})
    assert (await h.client.post("/v1/messages", json=BODY, headers=headers)).status == 200
    assert served(h) == Counter({"a": 2, "b": 1})
    # a is cooling down: the conversation stays on b without touching a.
    assert (await h.client.post("/v1/messages", json=BODY, headers=headers)).status == 200
    assert served(h) == Counter({"a": 2, "b": 2})


async def test_retry_budget_bounds_failovers(make: MakeHarness) -> None:
    names = [f"n{i}" for i in range(5)]
    h = await make(
        *names,
        strategy="round-robin",
        behaviors={n: Behavior(mode="status", status=500) for n in names},
        extra={
            "retry": {"budget_ratio": 0.0, "budget_min": 3},
            "health": {"failure_threshold": 100},
        },
    )
    resp = await h.client.post("/v1/messages", json=BODY)
    doc = await resp.json()
    assert resp.status == 503
    assert sum(served(h).values()) == 4  # first attempt + 3 failovers from the budget
    assert "retry budget exhausted" in doc["error"]["message"]
    resp = await h.client.post("/v1/messages", json=BODY)
    assert sum(served(h).values()) == 5  # budget spent: one attempt, no failover


async def test_panic_mode_tries_ejected_accounts(make: MakeHarness) -> None:
    h = await make(
        "a",
        "b",
        behaviors={
            "a": Behavior(mode="status", status=500),
            "b": Behavior(mode="status", status=500),
        },
        extra={"health": {"failure_threshold": 1, "ejection_base": 60, "ejection_max": 60}},
    )
    assert (await h.client.post("/v1/messages", json=BODY)).status == 503
    assert (await (await h.client.get("/health")).json())["status"] == "unhealthy"
    h.upstreams["b"].behavior = Behavior()
    resp = await h.client.post("/v1/messages", json=BODY)
    assert resp.status == 200  # both out, yet tried anyway: b had recovered
    assert h.runtime.pool.panics >= 1
    stats = await (await h.client.get("/accounts/stats")).json()
    assert stats["panics"] >= 1


async def test_access_key_required_when_configured(make: MakeHarness) -> None:
    h = await make("a", extra={"proxy": {"access_key": "local-secret-key"}})
    assert (await h.client.post("/v1/messages", json=BODY)).status == 401
    bad = await h.client.post("/v1/messages", json=BODY, headers={"x-api-key": "wrong"})
    assert bad.status == 401
    ok = await h.client.post("/v1/messages", json=BODY, headers={"x-api-key": "local-secret-key"})
    assert ok.status == 200
    bearer = await h.client.post(
        "/v1/messages", json=BODY, headers={"Authorization": "Bearer local-secret-key"}
    )
    assert bearer.status == 200
    assert len(h.upstreams["a"].requests) == 2
    sent = h.upstreams["a"].requests[1].headers
    assert "local-secret-key" not in json.dumps(sent)
    assert (await h.client.get("/accounts/stats")).status == 401
    assert (await h.client.get("/health")).status == 200


async def test_admin_routes_match_contract(make: MakeHarness) -> None:
    h = await make("a", "b", dead=("b",), extra={"timeouts": {"connect": 1}})
    await h.client.post("/v1/messages", json=BODY | {"stream": True})
    doc = await (await h.client.get("/accounts/stats")).json()
    assert doc["cluster"] == "test" and doc["strategy"] == "priority"
    assert doc["total_accounts"] == 2
    account = doc["accounts"][0]
    for key in (
        "name",
        "base_url",
        "state",
        "weight",
        "priority",
        "requests",
        "failures",
        "consecutive_failures",
        "in_flight",
        "latency_ms",
        "last_error",
        "usage",
    ):
        assert key in account
    assert set(account["usage"]) == {
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    }
    assert "sk-ant" not in json.dumps(doc)
    health = await h.client.get("/health")
    assert health.status == 200
    assert (await health.json()) == {
        "status": "healthy",
        "cluster": "test",
        "accounts": {"total": 2, "available": 2, "unavailable": 0},
    }
    metrics = await (await h.client.get("/metrics")).text()
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }
    a = (("account", "a"), ("cluster", "test"))
    assert found["qcc_account_state", (*a, ("state", "healthy"))] == 1
    assert found["qcc_account_ttfb_seconds_count", a] == 1
    assert found["qcc_account_tokens_total", (*a, ("kind", "input_tokens"))] == 12


async def test_health_route_degraded_and_unhealthy(make: MakeHarness) -> None:
    h = await make("a", "b", behaviors={"a": Behavior(mode="status", status=401)})
    assert (await h.client.post("/v1/messages", json=BODY)).status == 200  # a fails auth, b serves
    degraded = await h.client.get("/health")
    assert degraded.status == 200
    assert (await degraded.json())["status"] == "degraded"
    h.upstreams["b"].behavior = Behavior(mode="status", status=401)
    assert (await h.client.post("/v1/messages", json=BODY)).status == 503
    unhealthy = await h.client.get("/health")
    assert unhealthy.status == 503
    assert (await unhealthy.json())["accounts"] == {"total": 2, "available": 0, "unavailable": 2}
