"""End to end: whichever way the proxy starts, its state and log files are the user's alone."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from e2e import env_for, free_port, qcc, running_proxy, write_config

from qcc.fake_upstream import FakeUpstream

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.name != "posix", reason="POSIX file modes"),
]

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
NOT_MINE = {"proxy-start.err"}  # the detached start's own stderr file: qcc/cli/proxy.py


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)  # the common default, under which a bare open() makes 0644 files
    try:
        yield
    finally:
        os.umask(old)


def _modes(state: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(state.stat().st_mode)}
    for path in state.rglob("*"):
        if path.name not in NOT_MINE:
            found[str(path.relative_to(state))] = stat.S_IMODE(path.stat().st_mode)
    return found


def _assert_private(state: Path) -> None:
    modes = _modes(state)
    assert "logs/proxy.log" in modes, modes
    loose = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o700 if (state / name).is_dir() else 0o600)
    }
    assert loose == {}


@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize("mode", ["foreground", "detached", "run"])
async def test_state_and_logs_are_private_in_every_start_mode(
    aiohttp_server: Any, tmp_path: Path, mode: str
) -> None:
    server = await aiohttp_server(FakeUpstream("main").app())
    port = free_port()
    env = env_for(tmp_path)
    state = tmp_path / "deep" / "state"  # neither it nor its parent exists yet
    env["QCC_STATE_DIR"] = str(state)
    account = {"base_url": str(server.make_url("")).rstrip("/"), "api_key_env": "QCC_E2E_KEY"}
    env["QCC_E2E_KEY"] = "sk-ant-api03-E2EMODESE2EMODES-0000"
    write_config(
        tmp_path / "config",
        {"proxy": {"port": port}, "clusters": {"prod": {"accounts": {"main": account}}}},
    )
    url = f"http://127.0.0.1:{port}"

    async def one_request() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url + "/v1/messages", json=BODY) as resp,
        ):
            assert resp.status == 200
            await resp.read()

    if mode == "foreground":
        with running_proxy(env):
            await one_request()
            await asyncio.sleep(0.4)  # the log flusher writes every 0.25 s
            _assert_private(state)
        return
    if mode == "detached":
        started = await asyncio.to_thread(qcc, "proxy", "start", "--detach", env=env)
    else:
        started = await asyncio.to_thread(qcc, "run", "--", sys.executable, "-c", "pass", env=env)
    try:
        assert started.returncode == 0, started.stderr
        await one_request()
        await asyncio.sleep(0.4)
        _assert_private(state)
    finally:
        await asyncio.to_thread(qcc, "proxy", "stop", env=env)
