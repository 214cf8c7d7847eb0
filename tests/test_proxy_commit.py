"""When a response is committed, what counts against an account, and what the client and the log
see when things break (issue 11: items 8, 9, 10, 15b and the echo part of item 3)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import Any

import aiohttp
import pytest
from proxyharness import SECRET, MakeHarness, harness_factory, wait_for

from qcc.fake_upstream import Behavior
from qcc.health.state import State

BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "hi"}],
}
STREAM = BODY | {"stream": True}
FAST = {"timeouts": {"connect": 1, "first_byte": 0.5, "stream_first_byte": 0.3, "stream_idle": 0.5}}
CLIENT_KEY = "sk-ant-api03-CLIENTKEYCLIENTKEY-zz99"


@pytest.fixture
def make(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "qcc.access"]


def field(line: str, name: str) -> str:
    for part in line.split():
        key, _, value = part.partition("=")
        if key == name:
            return value
    raise AssertionError(f"{name}= not in {line!r}")


# ---- item 8: a stream is committed at its first content ------------------------------------


@pytest.mark.parametrize("mode", ["error_after_start", "reset_after_start", "stall_after"])
async def test_failure_after_message_start_fails_over_invisibly(
    make: MakeHarness, mode: str
) -> None:
    bad = Behavior(mode=mode, die_after=0)
    h = await make("a", "b", extra=FAST, behaviors={"a": bad})
    resp = await h.client.post("/v1/messages", json=STREAM)
    text = await resp.text()
    assert resp.status == 200
    assert text.count("event: message_start") == 1  # only the successful account's
    assert '"id": "msg_b"' in text and "msg_a" not in text
    assert "event: error" not in text and text.count("event: ping") == 1
    assert text.rstrip().endswith('data: {"type": "message_stop"}')
    assert h.member("a").stats.failures == 1
    expected = {"error_after_start": "overloaded", "reset_after_start": "network"}
    assert h.member("a").stats.outcomes[expected.get(mode, "timeout")] == 1
    # message_start was held back, but its usage still counts (for b, which answered).
    usage = h.member("b").stats.usage
    assert usage.input_tokens == 12 and usage.output_tokens == 7
    assert usage.cache_read_input_tokens == 30


async def test_empty_answer_commits_at_message_delta(make: MakeHarness) -> None:
    h = await make("a", behaviors={"a": Behavior(deltas=0, text="")})
    resp = await h.client.post("/v1/messages", json=STREAM)
    text = await resp.text()
    assert "content_block_delta" not in text
    assert text.count("event: message_start") == 1 and "event: message_stop" in text
    assert h.member("a").stats.usage.output_tokens == 7


# ---- item 9: deaths after the head count ---------------------------------------------------


@pytest.mark.parametrize(
    ("behavior", "stream"),
    [
        (Behavior(mode="die_after", die_after=1), True),
        (Behavior(mode="cut_body"), False),
        (Behavior(mode="cut_body", chunked=True), False),
    ],
    ids=["stream", "body-with-length", "body-chunked"],
)
async def test_account_dying_mid_response_is_ejected(
    make: MakeHarness, behavior: Behavior, stream: bool
) -> None:
    h = await make("a", "b", behaviors={"a": behavior}, extra={"health": {"failure_threshold": 3}})
    member = h.member("a")
    for i in range(3):
        assert member.health.state is State.HEALTHY
        resp = await h.client.post("/v1/messages", json=BODY | {"stream": stream})
        with pytest.raises(aiohttp.ClientPayloadError) if not stream else _nothing():
            await resp.read()
        assert member.health.consecutive_failures == i + 1
    assert member.health.state is State.EJECTED
    assert member.stats.failures == 3
    resp = await h.client.post("/v1/messages", json=BODY | {"stream": stream})
    assert resp.status == 200 and "msg_b" in await resp.text()  # a is out of rotation


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK on the model's name
async def test_cut_body_is_an_sdk_error_not_a_short_answer(make: MakeHarness) -> None:
    anthropic = pytest.importorskip("anthropic")
    h = await make("a", behaviors={"a": Behavior(mode="cut_body", chunked=True)})
    sdk = anthropic.AsyncAnthropic(
        base_url=str(h.client.make_url("")), api_key=CLIENT_KEY, max_retries=0
    )
    with pytest.raises(anthropic.APIConnectionError):
        await sdk.messages.create(**BODY)
    await sdk.close()


async def test_broken_stream_is_logged_as_broken(
    make: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    h = await make("a", behaviors={"a": Behavior(mode="die_after", die_after=1)})
    resp = await h.client.post("/v1/messages", json=STREAM)
    assert "event: error" in await resp.text()
    (line,) = access_lines(caplog)
    assert field(line, "status") == "200" and field(line, "outcome") == "broken"


# ---- item 10: clients that leave ----------------------------------------------------------


async def test_client_leaving_mid_stream_is_logged_and_its_usage_kept(
    make: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    h = await make("a", behaviors={"a": Behavior(interval=0.05, deltas=50)})
    resp = await h.client.post("/v1/messages", json=STREAM)
    async for line in resp.content:
        if line.startswith(b"event: content_block_delta"):
            break
    resp.close()
    await wait_for(lambda: access_lines(caplog))
    (line,) = access_lines(caplog)
    assert field(line, "status") == "499" and field(line, "outcome") == "client_closed"
    assert field(line, "account") == "a" and float(field(line, "duration_ms")) > 0
    assert field(line, "in") == "12"
    member = h.member("a")
    assert member.stats.usage.input_tokens == 12  # message_start's usage had arrived
    assert member.stats.failures == 0 and member.health.consecutive_failures == 0


async def test_client_leaving_before_the_head_is_logged(
    make: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    h = await make("a", behaviors={"a": Behavior(delay=5)})
    task = asyncio.ensure_future(h.client.post("/v1/messages", json=BODY))
    await wait_for(lambda: h.upstreams["a"].requests)
    task.cancel()
    await wait_for(lambda: access_lines(caplog))
    (line,) = access_lines(caplog)
    assert field(line, "status") == "499" and field(line, "account") == "a"
    assert h.member("a").stats.failures == 0  # within its timeout: not the account's fault


# ---- item 15b: qcc's own words -------------------------------------------------------------


async def test_all_failed_names_statuses_and_types_in_qccs_words(make: MakeHarness) -> None:
    h = await make(
        "a",
        "b",
        behaviors={
            "a": Behavior(mode="status", status=401, echo_key=True),
            "b": Behavior(mode="status", status=529),
        },
    )
    resp = await h.client.post("/v1/messages", json=BODY, headers={"x-api-key": CLIENT_KEY})
    assert resp.status == 503
    message = (await resp.json())["error"]["message"]
    assert "a: HTTP 401 authentication_error" in message
    assert "b: HTTP 529 overloaded_error" in message
    assert "x-api-key" not in message.lower() and "invalid" not in message
    assert "sk-" not in message


async def test_529_has_a_reason_phrase(make: MakeHarness) -> None:
    h = await make("a", behaviors={"a": Behavior(mode="status", status=529)})
    resp = await h.client.post("/v1/messages", json=BODY)
    assert resp.status == 529 and resp.reason == "Overloaded"


async def test_no_account_can_serve_names_each_reason(
    make: MakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QCC_TEST_UNSET_KEY", raising=False)
    h = await make(
        "main",
        "spare",
        accounts={"main": {"api_key_env": "QCC_TEST_UNSET_KEY"}},
        behaviors={"spare": Behavior(mode="status", status=500)},
        extra={"health": {"failure_threshold": 1}},
    )
    resp = await h.client.post("/v1/messages", json=BODY)  # ejects spare
    message = (await resp.json())["error"]["message"]
    assert "spare: HTTP 500 api_error" in message
    assert "main: auth_failed (environment variable QCC_TEST_UNSET_KEY is not set" in message
    assert message.count("not tried") == 1
    h.member("spare").health.disable(0.0)
    resp = await h.client.post("/v1/messages", json=BODY)
    message = (await resp.json())["error"]["message"]
    assert resp.status == 503
    assert "can serve right now (2 configured, 0 available: main: auth_failed (" in message
    assert "; spare: disabled (disabled)" in message
    assert SECRET not in message


async def test_ttfb_counts_from_the_clients_request(
    make: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    h = await make("a", "b", extra=FAST, behaviors={"a": Behavior(mode="hang")})
    resp = await h.client.post("/v1/messages", json=STREAM)
    await resp.read()
    (line,) = access_lines(caplog)
    assert field(line, "account") == "b" and field(line, "outcome") == "ok"
    assert float(field(line, "ttfb_ms")) >= 300  # a's whole stream_first_byte included


# ---- item 3: an account echoing its key -----------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_echoed_key_appears_nowhere(
    make: MakeHarness, caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    h = await make("a", "b", behaviors={"a": Behavior(mode="status", status=401, echo_key=True)})
    h.upstreams["b"].behavior = Behavior(mode="status", status=500, echo_key=True)
    resp = await h.client.post(
        "/v1/messages", json=BODY | {"stream": stream}, headers={"x-api-key": CLIENT_KEY}
    )
    answer = await resp.text()
    stats = await (await h.client.get("/accounts/stats")).text()
    assert "invalid x-api-key: [redacted]" in stats  # the detail is kept, without the key
    logged = caplog.text
    for key in (f"{SECRET}-a", f"{SECRET}-b", CLIENT_KEY, SECRET):
        assert key not in answer and key not in stats and key not in logged
    assert h.upstreams["a"].requests[0].headers["x-api-key"] == f"{SECRET}-a"  # it was echoed


async def test_echoed_client_error_passes_through_unchanged(make: MakeHarness) -> None:
    h = await make("a", behaviors={"a": Behavior(mode="status", status=400, echo_key=True)})
    resp = await h.client.post("/v1/messages", json=BODY)
    body = json.loads(await resp.read())
    assert resp.status == 400
    assert body["error"]["message"] == f"invalid x-api-key: {SECRET}-a"  # byte-identical relay


async def test_no_account_message_never_names_x_api_key(make: MakeHarness) -> None:
    h = await make("main")
    loop = asyncio.get_running_loop()
    h.member("main").health.record_auth_failure(loop.time(), "probe: HTTP 401 invalid x-api-key")
    resp = await h.client.post("/v1/messages", json=BODY)
    message = (await resp.json())["error"]["message"]
    assert resp.status == 503 and "main: auth_failed (probe: HTTP 401 invalid API key)" in message


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK on the model's name
async def test_sdk_stream_survives_an_overload_after_message_start(make: MakeHarness) -> None:
    anthropic = pytest.importorskip("anthropic")
    h = await make("a", "b", behaviors={"a": Behavior(mode="error_after_start")})
    sdk = anthropic.AsyncAnthropic(
        base_url=str(h.client.make_url("")), api_key=CLIENT_KEY, max_retries=0
    )
    async with sdk.messages.stream(**BODY) as stream:
        message = await stream.get_final_message()
    await sdk.close()
    assert message.id == "msg_b" and message.content[0].text == "Hello from a fake account."
    assert message.usage.input_tokens == 12 and message.usage.output_tokens == 7


async def test_client_leaving_after_the_deadline_counts_the_timeout(
    make: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """The client gives up when the attempt is already overdue, before qcc's timer has fired:
    the timeout still counts against the account."""
    caplog.set_level(logging.INFO)
    h = await make("a", extra=FAST, behaviors={"a": Behavior(delay=5)})
    payload = json.dumps(BODY).encode()
    sock = socket.create_connection(("127.0.0.1", h.client.port))
    sock.sendall(
        b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
        % (h.client.port, len(payload), payload)
    )
    await wait_for(lambda: h.upstreams["a"].requests)
    time.sleep(0.55)  # noqa: ASYNC251 -- the loop is blocked past first_byte (0.5 s) on purpose
    sock.close()  # ...and the client gives up, seen in the same loop turn as the timer
    await wait_for(lambda: access_lines(caplog))
    (line,) = access_lines(caplog)
    assert field(line, "status") == "499"
    member = h.member("a")
    assert member.stats.failures == 1 and member.stats.outcomes["timeout"] == 1
    assert "client gave up" in (member.stats.last_error or "")
