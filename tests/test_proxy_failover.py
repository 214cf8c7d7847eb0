"""One test per failover rule of the contract, streaming and not, against misbehaving upstreams."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from proxyharness import MakeHarness, harness_factory

from qcc.fake_upstream import Behavior
from qcc.health.state import State

BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "hi"}],
}
FAST = {"timeouts": {"connect": 1, "first_byte": 0.5, "stream_first_byte": 0.5, "stream_idle": 0.5}}


@pytest.fixture
def make(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


FAILING = {
    "refused": dict(dead=("bad",)),
    "reset": dict(behaviors={"bad": Behavior(mode="reset")}),
    "hang": dict(behaviors={"bad": Behavior(mode="hang")}),
    "500": dict(behaviors={"bad": Behavior(mode="status", status=500)}),
    "503": dict(behaviors={"bad": Behavior(mode="status", status=503)}),
    "529": dict(behaviors={"bad": Behavior(mode="status", status=529)}),
    "429": dict(
        behaviors={"bad": Behavior(mode="status", status=429, headers={"retry-after": "7"})}
    ),
    "401": dict(behaviors={"bad": Behavior(mode="status", status=401)}),
    "403": dict(behaviors={"bad": Behavior(mode="status", status=403)}),
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("failure", list(FAILING))
async def test_failure_fails_over_invisibly(make: MakeHarness, failure: str, stream: bool) -> None:
    h = await make("bad", "good", extra=FAST, **FAILING[failure])  # type: ignore[arg-type]
    resp = await h.client.post("/v1/messages", json=BODY | {"stream": stream})
    assert resp.status == 200
    text = await resp.text()
    assert "Hello" in text or "fake account" in text
    assert len(h.upstreams["good"].requests) == 1
    if "bad" in h.upstreams:
        assert len(h.upstreams["bad"].requests) == 1  # each account tried at most once
    bad = h.member("bad")
    assert bad.stats.failures == 1
    if failure == "429":
        assert bad.health.state is State.RATE_LIMITED
        loop = asyncio.get_running_loop()
        assert bad.health.until == pytest.approx(loop.time() + 7, abs=1)
    elif failure in ("401", "403"):
        assert bad.health.state is State.AUTH_FAILED
    else:
        assert bad.health.consecutive_failures == 1


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("status", [400, 404, 413, 422])
async def test_client_errors_pass_through_without_penalty(
    make: MakeHarness, status: int, stream: bool
) -> None:
    h = await make("a", "b", behaviors={"a": Behavior(mode="status", status=status)})
    resp = await h.client.post("/v1/messages", json=BODY | {"stream": stream})
    assert resp.status == status
    assert (await resp.json())["error"]["message"].startswith("a: ")
    assert h.upstreams["b"].requests == []
    a = h.member("a")
    assert a.stats.failures == 0 and a.health.consecutive_failures == 0
    assert a.health.state is State.HEALTHY


async def test_sse_error_event_first_fails_over(make: MakeHarness) -> None:
    h = await make("a", "b", behaviors={"a": Behavior(mode="error_event")})
    resp = await h.client.post("/v1/messages", json=BODY | {"stream": True})
    text = await resp.text()
    assert resp.status == 200
    assert "event: error" not in text
    assert "message_stop" in text
    assert h.member("a").stats.outcomes["overloaded"] == 1


async def test_stream_dying_after_commit_ends_with_error_event(make: MakeHarness) -> None:
    h = await make("a", "b", behaviors={"a": Behavior(mode="die_after", die_after=2, deltas=5)})
    resp = await h.client.post("/v1/messages", json=BODY | {"stream": True})
    text = await resp.text()
    assert text.count("event: content_block_delta") == 2
    assert text.rstrip().splitlines()[-2] == "event: error"
    error = json.loads(text.rstrip().splitlines()[-1][len("data: ") :])
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert h.upstreams["b"].requests == []  # committed: never retried after bytes went out


async def test_stream_going_silent_after_commit_ends_with_error(make: MakeHarness) -> None:
    stall = Behavior(mode="stall_after", die_after=1, deltas=3)
    h = await make("a", "b", extra=FAST, behaviors={"a": stall})
    resp = await h.client.post("/v1/messages", json=BODY | {"stream": True})
    assert resp.status == 200
    text = await resp.text()
    assert "message_start" in text
    assert "event: error" in text and "silent" in text
    assert h.upstreams["b"].requests == []


async def test_all_accounts_fail_gives_anthropic_error(make: MakeHarness) -> None:
    h = await make(
        "a",
        "b",
        behaviors={
            "a": Behavior(mode="status", status=500),
            "b": Behavior(mode="status", status=529),
        },
    )
    resp = await h.client.post("/v1/messages", json=BODY)
    assert resp.status == 529
    doc = await resp.json()
    assert doc["type"] == "error" and doc["error"]["type"] == "overloaded_error"
    assert "2 accounts" in doc["error"]["message"]
    assert "a: HTTP 500" in doc["error"]["message"] and "b: HTTP 529" in doc["error"]["message"]
    assert "sk-ant" not in json.dumps(doc)
    assert resp.headers["x-should-retry"] == "true"


async def test_all_rate_limited_says_when_to_retry(make: MakeHarness) -> None:
    h = await make(
        "a",
        "b",
        behaviors={
            "a": Behavior(mode="status", status=429, headers={"retry-after": "20"}),
            "b": Behavior(mode="status", status=429, headers={"retry-after": "5"}),
        },
    )
    resp = await h.client.post("/v1/messages", json=BODY)
    assert resp.status == 429
    assert (await resp.json())["error"]["type"] == "rate_limit_error"
    assert 4 <= int(resp.headers["retry-after"]) <= 6
    assert resp.headers["x-should-retry"] == "true"


async def test_all_auth_failed_says_do_not_retry(make: MakeHarness) -> None:
    h = await make(
        "a",
        "b",
        behaviors={
            "a": Behavior(mode="status", status=401),
            "b": Behavior(mode="status", status=403),
        },
    )
    resp = await h.client.post("/v1/messages", json=BODY)
    assert resp.status == 503
    assert resp.headers["x-should-retry"] == "false"
    assert "retry-after" not in resp.headers
    # A second request finds no usable account and does not hammer the bad credentials.
    resp = await h.client.post("/v1/messages", json=BODY)
    assert resp.status == 503
    assert len(h.upstreams["a"].requests) == 1 and len(h.upstreams["b"].requests) == 1


async def test_streaming_is_not_buffered(make: MakeHarness) -> None:
    h = await make("a", behaviors={"a": Behavior(interval=0.1, deltas=10)})
    loop = asyncio.get_running_loop()
    started = loop.time()
    resp = await h.client.post("/v1/messages", json=BODY | {"stream": True})
    first_delta_at = None
    async for line in resp.content:
        if line.startswith(b"event: content_block_delta") and first_delta_at is None:
            first_delta_at = loop.time() - started
    total = loop.time() - started
    assert first_delta_at is not None
    # 15 events at 100 ms: the whole stream takes ~1.5 s; the first delta arrives after ~0.3 s.
    assert total > 1.2
    assert first_delta_at < total - 0.8


async def test_client_disconnect_cancels_upstream(make: MakeHarness) -> None:
    h = await make("a", behaviors={"a": Behavior(interval=0.1, deltas=50)})
    resp = await h.client.post("/v1/messages", json=BODY | {"stream": True})
    await resp.content.readline()
    resp.close()  # the client goes away mid-stream
    for _ in range(50):
        if h.upstreams["a"].disconnects:
            break
        await asyncio.sleep(0.02)
    assert h.upstreams["a"].disconnects == 1
    await asyncio.sleep(0.05)
    member = h.member("a")
    assert member.stats.in_flight == 0
    assert member.stats.failures == 0  # a client leaving is not the account's fault


async def test_client_disconnect_while_waiting_for_head(make: MakeHarness) -> None:
    h = await make("a", behaviors={"a": Behavior(delay=5)})
    task = asyncio.ensure_future(h.client.post("/v1/messages", json=BODY))
    for _ in range(50):
        if h.upstreams["a"].requests:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    for _ in range(50):
        if h.upstreams["a"].disconnects:
            break
        await asyncio.sleep(0.02)
    assert h.upstreams["a"].disconnects == 1
