"""Hot reload: config edits reach a running proxy within about a second, streams survive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from proxyharness import MakeHarness, harness_factory, wait_for

from qcc.config import ops
from qcc.config.model import Credential
from qcc.config.store import ConfigStore
from qcc.fake_upstream import Behavior

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def make(aiohttp_server: Any, aiohttp_client: Any) -> MakeHarness:
    return harness_factory(aiohttp_server, aiohttp_client)


async def test_reload_under_inflight_stream(make: MakeHarness, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    h = await make(
        "a", "spare", config_path=path, behaviors={"a": Behavior(interval=0.05, deltas=10)}
    )
    spare_url = str(h.servers["spare"].make_url("")).rstrip("/")
    member_a = h.member("a")
    stream = await h.client.post("/v1/messages", json=BODY | {"stream": True})
    first = await stream.content.readline()
    assert first.startswith(b"event: message_start")

    store = ConfigStore(path)
    with store.edit() as doc:  # what `qcc account add` does
        ops.add_account(doc, "test", "b", spare_url, Credential("api_key", "k" * 24), weight=2)
    latency = await wait_for(lambda: "b" in h.runtime.pool.members)
    assert latency < 1.0
    assert h.member("a") is member_a  # unchanged account keeps its state
    assert h.runtime.reloads == 1

    rest = await stream.read()
    assert rest.rstrip().endswith(b'data: {"type": "message_stop"}')
    assert b"event: error" not in rest
    assert member_a.stats.requests == 1 and member_a.stats.in_flight == 0


async def test_invalid_edit_is_refused_and_old_config_serves(
    make: MakeHarness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.toml"
    h = await make("a", config_path=path)
    good = path.read_text()
    path.write_text(good.replace('strategy = "priority"', 'strategy = "fastest"'))
    await wait_for(lambda: h.runtime.reload_error is not None)
    assert "clusters.test.strategy: must be one of" in h.runtime.reload_error  # type: ignore[operator]
    assert "config change refused" in caplog.text
    assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    path.write_text(good.replace("[clusters.test]", "[clusters.test\n"))  # broken TOML
    await wait_for(lambda: "invalid TOML" in (h.runtime.reload_error or ""))
    assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    path.write_text(good.replace("sticky = false", "sticky = true"))
    await wait_for(lambda: h.runtime.reload_error is None and h.runtime.pool.cluster.sticky)


async def test_disable_by_cli_takes_account_out(make: MakeHarness, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    h = await make("a", "b", config_path=path)
    with ConfigStore(path).edit() as doc:
        ops.set_account_enabled(doc, "test", "a", False)
    await wait_for(lambda: h.member("a").health.state.value == "disabled")
    for _ in range(3):
        assert (await h.client.post("/v1/messages", json=BODY)).status == 200
    assert not any(r.path_qs == "/v1/messages" for r in h.upstreams["a"].requests)
    with ConfigStore(path).edit() as doc:
        ops.remove_account(doc, "test", "b")
    await wait_for(lambda: "b" not in h.runtime.pool.members)
    resp = await h.client.post("/v1/messages", json=BODY)
    assert resp.status == 503
    assert resp.headers["x-should-retry"] == "false"
