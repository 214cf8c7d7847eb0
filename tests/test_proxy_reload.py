"""Hot reload: config edits reach a running proxy within about a second, streams survive."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from proxyharness import MakeHarness, config_data, harness_factory, wait_for

from qcc.config import ops
from qcc.config.model import Credential
from qcc.config.store import ConfigStore, atomic_write
from qcc.fake_upstream import Behavior, FakeUpstream
from qcc.proxy.app import create_app
from qcc.proxy.runtime import RUNTIME_KEY

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


KEY = "qcc-access-key-0123456789abcdef"


async def test_removing_the_access_key_beyond_loopback_is_refused(
    aiohttp_server: Any, aiohttp_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await aiohttp_server(FakeUpstream("a").app())
    data = config_data(
        {"a": str(fake.make_url("")).rstrip("/")}, extra={"proxy": {"access_key": KEY}}
    )
    path = tmp_path / "config.toml"
    atomic_write(path, tomlkit.dumps(data))
    store = ConfigStore(path)
    # Listening beyond loopback (the test itself connects through 127.0.0.1).
    app = create_app(
        store.load(), "test", host="0.0.0.0", store=store, monitor=False, reload_interval=0.05
    )
    client = await aiohttp_client(app)
    runtime = app[RUNTIME_KEY]
    good = path.read_text()
    path.write_text(good.replace(f'access_key = "{KEY}"', 'access_key = ""'))  # emptied
    await wait_for(lambda: "proxy.access_key: must be a non-empty" in (runtime.reload_error or ""))
    assert (await client.post("/v1/messages", json=BODY)).status == 401
    path.write_text(good)
    await wait_for(lambda: runtime.reload_error is None)
    with store.edit() as doc:  # the key removed
        del doc["proxy"]["access_key"]  # type: ignore[union-attr]
    await wait_for(lambda: runtime.reload_error is not None)
    assert "proxy.access_key: cannot be removed while the proxy listens on 0.0.0.0" in (
        runtime.reload_error or ""
    )
    assert "config change refused" in caplog.text
    assert KEY not in caplog.text
    assert (await client.post("/v1/messages", json=BODY)).status == 401  # the key still holds
    ok = await client.post("/v1/messages", json=BODY, headers={"x-api-key": KEY})
    assert ok.status == 200
    stats = await (await client.get("/accounts/stats", headers={"x-api-key": KEY})).json()
    assert stats["reload_error"].startswith("proxy.access_key: cannot be removed")
    # Putting the key back clears the error (the file holds the running config again).
    with store.edit() as doc:
        doc["proxy"]["access_key"] = KEY  # type: ignore[index]
    await wait_for(lambda: runtime.reload_error is None)
    assert runtime.reloads == 0


async def test_reload_error_clears_when_the_file_holds_the_running_config_again(
    make: MakeHarness, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    h = await make("a", config_path=path)
    good = path.read_text()
    path.write_text(good.replace('strategy = "priority"', 'strategy = "fastest"'))
    await wait_for(lambda: h.runtime.reload_error is not None)
    path.write_text(good + "\n")  # the same config as the running one
    await wait_for(lambda: h.runtime.reload_error is None)
    assert h.runtime.reloads == 0


async def test_the_file_is_read_off_the_event_loop(make: MakeHarness, tmp_path: Path) -> None:
    """A read that blocks (here a FIFO nobody writes to yet) never stalls the proxy."""
    path = tmp_path / "config.toml"
    h = await make("a", config_path=path)
    sticky = path.read_text().replace("sticky = false", "sticky = true")
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    os.link(fifo, tmp_path / "fifo-kept")
    os.replace(fifo, path)  # the watcher sees a new file; opening it blocks until written

    def feed() -> None:
        with open(tmp_path / "fifo-kept", "w") as pipe:
            pipe.write(sticky)
        atomic_write(path, sticky)  # a plain file again, so no later read blocks

    feeder = threading.Timer(1.0, feed)
    feeder.start()
    try:
        await asyncio.sleep(0.2)  # the watcher is now stuck in open()
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await h.client.get("/health")).status == 200
        assert loop.time() - started < 0.5  # answered while the read is still blocked
        assert not h.runtime.pool.cluster.sticky
    finally:
        feeder.join()
        await wait_for(lambda: h.runtime.pool.cluster.sticky)
        with contextlib.suppress(OSError):  # release a reader that opened the FIFO again
            os.close(os.open(tmp_path / "fifo-kept", os.O_WRONLY | os.O_NONBLOCK))
