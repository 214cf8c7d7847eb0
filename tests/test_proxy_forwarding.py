"""Faithful forwarding: path, query, body, headers, credentials, streaming."""

from __future__ import annotations

import json
from typing import Any

import pytest
from proxyharness import SECRET, MakeHarness, harness_factory


@pytest.fixture
def make(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "hi"}],
}


async def test_non_streaming_message_is_forwarded(make: MakeHarness) -> None:
    h = await make("a")
    raw = json.dumps(BODY, indent=3).encode()  # odd formatting must survive byte for byte
    resp = await h.client.post(
        "/v1/messages?beta=true",
        data=raw,
        headers={
            "x-api-key": "client-key",
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "prompt-caching-2024-07-31",
            "content-type": "application/json",
            "x-stainless-lang": "python",
            "x-app": "cli",
            "user-agent": "claude-cli/1.0",
            "connection": "keep-alive, x-hop",
            "x-hop": "must-not-pass",
        },
    )
    assert resp.status == 200
    doc = await resp.json()
    assert doc["usage"]["input_tokens"] == 12
    seen = h.upstreams["a"].requests[0]
    assert seen.path_qs == "/v1/messages?beta=true"
    assert seen.body == raw
    headers = {k.lower(): v for k, v in seen.headers.items()}
    assert headers["x-api-key"] == f"{SECRET}-a"
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert headers["x-stainless-lang"] == "python"
    assert headers["x-app"] == "cli"
    assert headers["user-agent"] == "claude-cli/1.0"
    assert "x-hop" not in headers
    assert "client-key" not in json.dumps(seen.headers)


async def test_client_bearer_replaced_case_insensitively(make: MakeHarness) -> None:
    h = await make("a", accounts={"a": {}})
    resp = await h.client.post("/v1/messages", json=BODY, headers={"AUTHORIZATION": "Bearer nope"})
    assert resp.status == 200
    headers = {k.lower(): v for k, v in h.upstreams["a"].requests[0].headers.items()}
    assert "authorization" not in headers
    assert headers["x-api-key"] == f"{SECRET}-a"


async def test_auth_token_account_sends_bearer_and_model_rename(make: MakeHarness) -> None:
    h = await make(
        "a",
        accounts={
            "a": {
                "auth_token": "relay-token-0123456789",
                "models": {"claude-sonnet-4-5": "vendor-x"},
            }
        },
    )
    resp = await h.client.post("/v1/messages", json=BODY, headers={"x-api-key": "client"})
    assert resp.status == 200
    seen = h.upstreams["a"].requests[0]
    headers = {k.lower(): v for k, v in seen.headers.items()}
    assert headers["authorization"] == "Bearer relay-token-0123456789"
    assert "x-api-key" not in headers
    sent = json.loads(seen.body)
    assert sent["model"] == "vendor-x"
    assert sent["messages"] == BODY["messages"] and sent["max_tokens"] == BODY["max_tokens"]
    # A model without a rename is forwarded byte for byte.
    raw = json.dumps(BODY | {"model": "claude-opus-4-5"}, indent=1).encode()
    await h.client.post("/v1/messages", data=raw, headers={"content-type": "application/json"})
    assert h.upstreams["a"].requests[1].body == raw


async def test_streaming_relays_sse_with_usage(make: MakeHarness) -> None:
    h = await make("a")
    resp = await h.client.post("/v1/messages", json=BODY | {"stream": True})
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    text = await resp.text()
    assert text.count("event: content_block_delta") == 3
    assert text.rstrip().endswith('data: {"type": "message_stop"}')
    usage = h.member("a").stats.usage.as_dict()
    assert usage == {
        "input_tokens": 12,
        "output_tokens": 7,
        "cache_read_input_tokens": 30,
        "cache_creation_input_tokens": 5,
    }


async def test_other_v1_paths_and_query(make: MakeHarness) -> None:
    h = await make("a")
    resp = await h.client.get("/v1/models?limit=5&after_id=x%20y")
    assert resp.status == 200
    assert h.upstreams["a"].requests[0].path_qs == "/v1/models?limit=5&after_id=x%20y"
    resp = await h.client.post("/v1/messages/count_tokens", json=BODY)
    assert (await resp.json()) == {"input_tokens": 3}


async def test_non_api_paths_answered_locally(make: MakeHarness) -> None:
    h = await make("a")
    assert (await h.client.head("/")).status == 200
    resp = await h.client.post("/api/event_logging/batch", json={})
    assert resp.status == 404
    assert (await resp.json())["type"] == "error"
    assert h.upstreams["a"].requests == []
    assert h.member("a").stats.requests == 0


async def test_content_encoding_passes_through_untouched(make: MakeHarness) -> None:
    from qcc.fake_upstream import Behavior

    h = await make("a", behaviors={"a": Behavior(compress=True)})
    resp = await h.client.post(
        "/v1/messages", json=BODY, headers={"accept-encoding": "gzip"}, auto_decompress=False
    )
    assert resp.headers["content-encoding"] == "gzip"
    raw = await resp.read()
    import gzip

    assert json.loads(gzip.decompress(raw))["usage"]["output_tokens"] == 7  # decoded once, by us
    assert h.member("a").stats.usage.output_tokens == 7  # usage read from a decoded copy
    # A streaming request asks the account for identity, so the proxy can read events.
    await h.client.post(
        "/v1/messages", json=BODY | {"stream": True}, headers={"accept-encoding": "gzip, br"}
    )
    sent = {k.lower(): v for k, v in h.upstreams["a"].requests[-1].headers.items()}
    assert sent["accept-encoding"] == "identity"
    first = {k.lower(): v for k, v in h.upstreams["a"].requests[0].headers.items()}
    assert first["accept-encoding"] == "gzip"
