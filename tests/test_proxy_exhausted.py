"""Account-level failures hidden in error bodies, end to end through the proxy (issue 14).

Fake accounts answer with the error bodies real ones send (Anthropic's credit 400, an
organization disabled 403, "long context" 400, relays' own quota wordings); the rule table
decides, the client sees the other account's answer or the error unchanged.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

import pytest
from proxyharness import MakeHarness, harness_factory

from qcc import wire
from qcc.fake_upstream import Behavior
from qcc.health.state import State

BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "hi"}],
}
CREDIT = wire.encode(
    wire.error(
        "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API. "
        "Please go to Plans & Billing to upgrade or purchase credits.",
    )
)
ORG_DISABLED = wire.encode(wire.error("permission_error", "This organization has been disabled."))
LONG_CONTEXT = wire.encode(
    wire.error("invalid_request_error", "Extra usage is required for long context requests.")
)
RECHECK = {"health": {"exhausted_recheck": 0.2}}


@pytest.fixture
def make(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


def failing(status: int, body: bytes | str, **kwargs: Any) -> Behavior:
    return Behavior(mode="status", status=status, body=body, **kwargs)


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "qcc.access"]


async def stats_of(h: Any, name: str) -> dict[str, Any]:
    resp = await h.client.get("/accounts/stats")
    assert resp.status == 200
    doc = await resp.json()
    return next(a for a in doc["accounts"] if a["name"] == name)


# ---- credit exhausted ------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_credit_400_fails_over_and_the_account_is_exhausted(
    make: MakeHarness, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="qcc.access")
    h = await make("a", "b", behaviors={"a": failing(400, CREDIT)})
    resp = await h.client.post("/v1/messages", json=BODY | {"stream": stream})
    assert resp.status == 200
    assert "Hello" in await resp.text()
    assert len(h.upstreams["b"].requests) == 1
    a = h.member("a")
    assert a.health.state is State.EXHAUSTED
    assert a.health.consecutive_failures == 0 and a.health.ejections == 0  # not a health failure
    doc = await stats_of(h, "a")
    assert doc["state"] == "exhausted" and not doc["available"]
    assert doc["reason"] == (
        "HTTP 400 credit or quota exhausted: matched built-in rule 'credit-balance'"
    )
    assert doc["last_rule"] == "built-in: credit-balance"
    assert doc["until"] is not None and doc["until"] > doc["since"] + 1000  # the 30 min recheck
    assert "credit balance is too low" in doc["last_error"]
    assert "failed_over=a:exhausted" in access_lines(caplog)[-1]
    # out of rotation: the next request goes straight to b
    resp = await h.client.post("/v1/messages", json=BODY)
    assert resp.status == 200
    assert len(h.upstreams["a"].requests) == 1


async def test_gzip_credit_error_is_read_decoded(make: MakeHarness) -> None:
    h = await make("a", "b", behaviors={"a": failing(400, CREDIT, compress=True)})
    resp = await h.client.post("/v1/messages", json=BODY)
    assert resp.status == 200
    assert h.member("a").health.state is State.EXHAUSTED


@pytest.mark.parametrize("still_out", [False, True], ids=["credit-back", "still-out"])
async def test_exhausted_account_gets_exactly_one_trial_after_the_recheck(
    make: MakeHarness, still_out: bool
) -> None:
    h = await make("a", "b", behaviors={"a": failing(400, CREDIT)}, extra=RECHECK)
    assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    a, fake_a, fake_b = h.member("a"), h.upstreams["a"], h.upstreams["b"]
    assert a.health.state is State.EXHAUSTED
    if not still_out:  # credit was bought; the trial takes a while, others arrive meanwhile
        fake_a.behavior = Behavior(delay=0.15)
    await asyncio.sleep(0.25)  # past exhausted_recheck
    before_a, before_b = len(fake_a.requests), len(fake_b.requests)
    answers = await asyncio.gather(*(h.client.post("/v1/messages", json=BODY) for _ in range(10)))
    assert [r.status for r in answers] == [200] * 10
    assert len(fake_a.requests) - before_a == 1  # exactly one trial went through
    if still_out:
        assert len(fake_b.requests) - before_b == 10  # the trial failed over too
        assert a.health.state is State.EXHAUSTED
        loop = asyncio.get_running_loop()
        assert a.health.until is not None and a.health.until > loop.time()  # another recheck
    else:
        assert len(fake_b.requests) - before_b == 9
        assert a.health.state is State.HEALTHY
        assert a.health.reason == "request succeeded"
        # back in rotation for everyone
        assert (await h.client.post("/v1/messages", json=BODY)).status == 200
        assert len(fake_a.requests) - before_a == 2


async def test_all_accounts_exhausted_is_a_503_not_worth_retrying(make: MakeHarness) -> None:
    h = await make("a", "b", behaviors={n: failing(400, CREDIT) for n in "ab"})
    for _ in range(2):  # both tried, then neither tried (panic mode never picks them)
        resp = await h.client.post("/v1/messages", json=BODY)
        assert resp.status == 503
        assert resp.headers["x-should-retry"] == "false"
        assert resp.headers["retry-after"].isdigit()
        assert int(resp.headers["retry-after"]) > 1000  # the recheck, in whole seconds
        message = (await resp.json())["error"]["message"]
        assert "exhausted" in message
    assert [len(f.requests) for f in h.upstreams.values()] == [1, 1]


async def test_exhausted_soon_is_worth_retrying(make: MakeHarness) -> None:
    h = await make("a", "b", behaviors={n: failing(400, CREDIT) for n in "ab"}, extra=RECHECK)
    resp = await h.client.post("/v1/messages", json=BODY)
    assert resp.status == 503
    assert resp.headers["x-should-retry"] == "true"
    assert resp.headers["retry-after"] == "1"


# ---- other rules -------------------------------------------------------------------------


RELAY_ERRORS = {
    "openai-json": (
        402,
        json.dumps({"error": {"code": "plan_limit_reached", "message": "upgrade your plan"}}),
        {"status": 402, "match": r"re:plan_limit_\w+", "action": "exhausted", "cooldown": 600},
    ),
    "plain-text": (
        400,
        "Sorry: this key's monthly allowance is finished.",
        {"match": "ALLOWANCE IS FINISHED", "action": "exhausted", "cooldown": 600},
    ),
}


@pytest.mark.parametrize("case", list(RELAY_ERRORS))
@pytest.mark.parametrize("with_rule", [True, False], ids=["rule", "no-rule"])
async def test_relay_quota_error_matched_by_a_user_rule(
    make: MakeHarness, case: str, with_rule: bool
) -> None:
    status, body, rule = RELAY_ERRORS[case]
    ctype = "application/json" if case == "openai-json" else "text/plain"
    extra: dict[str, Any] = {}
    h = await make(
        "a",
        "b",
        behaviors={"a": failing(status, body, content_type=ctype)},
        extra=extra,
        **({"rules": [rule]} if with_rule else {}),
    )
    resp = await h.client.post("/v1/messages", json=BODY)
    a = h.member("a")
    if not with_rule:  # the status keeps its meaning: passed through, no penalty
        assert resp.status == status
        assert await resp.read() == body.encode()
        assert a.health.state is State.HEALTHY
        return
    assert resp.status == 200
    assert a.health.state is State.EXHAUSTED
    loop = asyncio.get_running_loop()
    assert a.health.until == pytest.approx(loop.time() + 600, abs=5)  # the rule's cooldown
    doc = await stats_of(h, "a")
    assert doc["last_rule"] == "clusters.test.rules[0]"
    assert "config rule 'clusters.test.rules[0]'" in doc["reason"]


async def test_organization_disabled_403_is_auth_failed(make: MakeHarness) -> None:
    h = await make("a", "b", behaviors={"a": failing(403, ORG_DISABLED)})
    resp = await h.client.post("/v1/messages", json=BODY)
    assert resp.status == 200
    a = h.member("a")
    assert a.health.state is State.AUTH_FAILED
    assert a.stats.last_rule == "built-in: organization-disabled"


@pytest.mark.parametrize("status", [400, 429])
async def test_long_context_fails_over_without_penalty(
    make: MakeHarness, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="qcc.access")
    h = await make("a", "b", behaviors={"a": failing(status, LONG_CONTEXT)})
    for _ in range(3):
        resp = await h.client.post("/v1/messages", json=BODY)
        assert resp.status == 200
        assert "Hello" in await resp.text()
    a = h.member("a")
    assert len(h.upstreams["a"].requests) == 3  # still in rotation: no penalty
    assert a.health.state is State.HEALTHY
    assert a.health.consecutive_failures == 0
    assert a.stats.failures == 0
    assert a.latency.score(asyncio.get_running_loop().time()) == 0.0  # never penalized
    assert a.stats.last_rule == "built-in: long-context"
    assert "failed_over=a:capability" in access_lines(caplog)[-1]


async def test_long_context_everywhere_is_a_400_not_worth_retrying(make: MakeHarness) -> None:
    h = await make("a", "b", behaviors={n: failing(400, LONG_CONTEXT) for n in "ab"})
    resp = await h.client.post("/v1/messages", json=BODY)
    assert resp.status == 400
    assert resp.headers["x-should-retry"] == "false"
    assert (await resp.json())["error"]["type"] == "invalid_request_error"


async def test_rate_limited_rule_uses_its_cooldown(make: MakeHarness) -> None:
    rule = {"status": 400, "match": "slow down", "action": "rate_limited", "cooldown": 42}
    h = await make("a", "b", behaviors={"a": failing(400, "please slow down")}, rules=[rule])
    assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    a = h.member("a")
    assert a.health.state is State.RATE_LIMITED
    assert a.health.until == pytest.approx(asyncio.get_running_loop().time() + 42, abs=2)


# ---- pass-through fidelity ---------------------------------------------------------------

ACCOUNT_HEADERS = {
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-ratelimit-requests-reset": "2026-11-30T03:00:00Z",
    "anthropic-ratelimit-unified-5h-utilization": "0.42",
    "retry-after": "17",
    "x-should-retry": "true",
    "request-id": "req_011CTESTTESTTEST",
}


async def test_pass_through_rule_returns_the_429_unchanged(make: MakeHarness) -> None:
    body = wire.encode(wire.error("rate_limit_error", "per-request cap reached"))
    rule = {"status": 429, "match": "per-request cap", "action": "pass_through"}
    h = await make(
        "a", "b", behaviors={"a": failing(429, body, headers=ACCOUNT_HEADERS)}, rules=[rule]
    )
    resp = await h.client.post("/v1/messages", json=BODY)
    assert resp.status == 429
    assert await resp.read() == body
    for name, value in ACCOUNT_HEADERS.items():
        assert resp.headers[name] == value
    assert h.upstreams["b"].requests == []
    a = h.member("a")
    assert a.health.state is State.HEALTHY and a.stats.failures == 0
    assert a.stats.last_rule == "clusters.test.rules[0]"


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
@pytest.mark.parametrize("size", [100, 40_000])
async def test_passed_through_400_is_byte_identical(
    make: MakeHarness, chunked: bool, size: int
) -> None:
    # not JSON-normalised: odd spacing, a key order of its own, and (big) more than 16 KB
    body = (
        b'{ "type" :"error",  "error":{"message":"prompt is too long: '
        + b"x" * size
        + b'", "type":"invalid_request_error"}}\n'
    )
    h = await make("a", "b", behaviors={"a": failing(400, body, chunked=chunked)})
    resp = await h.client.post("/v1/messages", json=BODY)
    assert resp.status == 400
    assert await resp.read() == body
    assert h.upstreams["b"].requests == []


async def test_passed_through_gzip_400_keeps_its_encoding(make: MakeHarness) -> None:
    body = wire.encode(wire.error("invalid_request_error", "max_tokens: " + "y" * 30_000))
    h = await make("a", "b", behaviors={"a": failing(400, body, compress=True)})
    resp = await h.client.post("/v1/messages", json=BODY, auto_decompress=False)
    assert resp.status == 400
    assert resp.headers["content-encoding"] == "gzip"
    assert gzip.decompress(await resp.read()) == body


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_account_headers_reach_the_client_unchanged(make: MakeHarness, stream: bool) -> None:
    h = await make("a", behaviors={"a": Behavior(headers=ACCOUNT_HEADERS)})
    resp = await h.client.post("/v1/messages", json=BODY | {"stream": stream})
    assert resp.status == 200
    await resp.read()
    for name, value in ACCOUNT_HEADERS.items():
        assert resp.headers[name] == value


# ---- the user brings an account back -------------------------------------------------------


async def test_reset_route_brings_an_exhausted_account_back(make: MakeHarness) -> None:
    h = await make("a", "b", behaviors={"a": failing(400, CREDIT)})
    await h.client.post("/v1/messages", json=BODY)
    assert h.member("a").health.state is State.EXHAUSTED
    resp = await h.client.post("/accounts/a/reset")
    assert resp.status == 200
    assert await resp.json() == {
        "cluster": "test",
        "account": "a",
        "before": "exhausted",
        "state": "healthy",
    }
    assert h.member("a").health.state is State.HEALTHY
    assert h.member("a").health.reason == "reset by the user"
    resp = await h.client.post("/accounts/nobody/reset")
    assert resp.status == 404
    assert "no account 'nobody'" in (await resp.json())["error"]["message"]


async def test_reset_route_needs_the_access_key_and_refuses_web_pages(make: MakeHarness) -> None:
    key = "qcc-access-RESETRESETRESET-0000"
    h = await make(
        "a", "b", behaviors={"a": failing(403, ORG_DISABLED)}, extra={"proxy": {"access_key": key}}
    )
    await h.client.post("/v1/messages", json=BODY, headers={"x-api-key": key})
    assert h.member("a").health.state is State.AUTH_FAILED
    assert (await h.client.post("/accounts/a/reset")).status == 401
    evil = {"x-api-key": key, "origin": "https://evil.example"}
    assert (await h.client.post("/accounts/a/reset", headers=evil)).status == 403
    assert h.member("a").health.state is State.AUTH_FAILED
    resp = await h.client.post("/accounts/a/reset", headers={"x-api-key": key})
    assert resp.status == 200
    assert h.member("a").health.state is State.HEALTHY


async def test_config_change_of_the_account_resets_it(make: MakeHarness, tmp_path: Any) -> None:
    from proxyharness import wait_for

    from qcc.config.store import ConfigStore

    path = tmp_path / "config.toml"
    h = await make("a", "b", behaviors={"a": failing(400, CREDIT)}, config_path=path)
    await h.client.post("/v1/messages", json=BODY)
    a = h.member("a")
    assert a.health.state is State.EXHAUSTED
    with ConfigStore(path).edit() as doc:
        doc["clusters"]["test"]["accounts"]["a"]["budget_daily_usd"] = 20.0  # type: ignore[index]
    await wait_for(lambda: h.member("a").health.state is State.HEALTHY)
    assert "config changed" in h.member("a").health.reason
