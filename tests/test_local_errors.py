"""Failures on qcc's side are counted apart and never held against the account."""

from __future__ import annotations

import asyncio
import errno
from typing import Any

import pytest
from proxyharness import MakeHarness, harness_factory, wait_for

from qcc.fake_upstream import Behavior
from qcc.health.state import State
from qcc.net.errors import CannotConnect

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def make(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


async def test_busy_connection_slots_fail_over_without_blame(make: MakeHarness) -> None:
    """All of an account's connections busy past the connect timeout: the request goes to the
    next account, and the busy account keeps a clean record."""
    h = await make(
        "busy",
        "spare",
        behaviors={"busy": Behavior(delay=1.5)},
        accounts={"busy": {"max_connections": 1}},
        extra={"timeouts": {"connect": 0.2, "first_byte": 5}},
    )
    slow = asyncio.ensure_future(h.client.post("/v1/messages", json=BODY))
    await wait_for(lambda: h.upstreams["busy"].requests)  # the one slot is taken
    for _ in range(3):  # more than failure_threshold
        resp = await h.client.post("/v1/messages", json=BODY)
        assert resp.status == 200
        await resp.read()
    busy = h.member("busy")
    assert busy.stats.local_errors == 3
    assert busy.health.consecutive_failures == 0
    assert busy.health.state is State.HEALTHY
    assert len(h.upstreams["spare"].requests) == 3
    assert (await slow).status == 200


def test_out_of_descriptors_is_local() -> None:
    assert CannotConnect(OSError(errno.EMFILE, "Too many open files")).local
    assert not CannotConnect(OSError(errno.ECONNREFUSED, "refused")).local
