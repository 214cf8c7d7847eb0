"""Sticky sessions for SDK users: a plain ``metadata.user_id`` keeps an end user on one account."""

from __future__ import annotations

from typing import Any

import pytest
from proxyharness import MakeHarness, harness_factory

BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.fixture
def make(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


async def test_plain_user_id_sticks_to_one_account(make: MakeHarness) -> None:
    h = await make("a", "b", strategy="round-robin", sticky=True)
    for _ in range(4):
        body = BODY | {"metadata": {"user_id": "customer-4711"}}
        assert (await h.client.post("/v1/messages", json=body)).status == 200
    counts = sorted(len(h.upstreams[n].requests) for n in ("a", "b"))
    assert counts == [0, 4]
    for _ in range(2):  # no key at all: round-robin as usual
        assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    assert sorted(len(h.upstreams[n].requests) for n in ("a", "b")) == [1, 5]
