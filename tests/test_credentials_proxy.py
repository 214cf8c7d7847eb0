"""A running proxy with credentials from commands (issue 15): the first fetch at start-up,
one shared re-fetch after 401s, failures as auth_failed with a reason and never the secret."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from credfakes import KeyedUpstream
from proxyharness import SECRET, harness_factory, wait_for
from test_credentials_command import runs, script

from qcc.config.validate import config_from
from qcc.health.state import State
from qcc.proxy.app import create_app
from qcc.proxy.runtime import RUNTIME_KEY

BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "hi"}],
}
OLD = "sk-ant-api03-OLDOLDOLDOLDOLDOLDOLD-0001"
NEW = "sk-ant-api03-NEWNEWNEWNEWNEWNEWNEW-0002"


async def proxy_for(
    aiohttp_server: Any,
    aiohttp_client: Any,
    accounts: dict[str, dict[str, Any]],
    upstreams: dict[str, KeyedUpstream],
) -> TestClient[Any, Any]:
    accs = {}
    for name, credential in accounts.items():
        server = await aiohttp_server(upstreams[name].app())
        accs[name] = {"base_url": str(server.make_url("")).rstrip("/")} | credential
    config = config_from(
        {
            "timeouts": {"connect": 2},
            "clusters": {"test": {"strategy": "priority", "sticky": False, "accounts": accs}},
        }
    )
    return await aiohttp_client(create_app(config, "test", monitor=False, persist_usage=False))


async def test_fifty_requests_refused_after_rotation_share_one_command_run(
    aiohttp_server: Any, aiohttp_client: Any, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    key.write_text(OLD + "\n")
    upstream = KeyedUpstream("main", {OLD})
    client = await proxy_for(
        aiohttp_server,
        aiohttp_client,
        {"main": {"api_key_command": script(tmp_path, f"sleep 0.05\ncat {key}")}},
        {"main": upstream},
    )
    assert runs(tmp_path) == 1  # fetched at start-up, before the first request
    assert (await client.post("/v1/messages", json=BODY)).status == 200
    key.write_text(NEW + "\n")  # the key is rotated: the account refuses the old one
    upstream.accepted = {NEW}
    answers = await asyncio.gather(*(client.post("/v1/messages", json=BODY) for _ in range(50)))
    assert [a.status for a in answers] == [200] * 50
    assert runs(tmp_path) == 2  # one re-fetch for all fifty
    assert upstream.refused == 50  # each tried the old key once, then the new one
    member = client.app[RUNTIME_KEY].pool.members["main"]
    assert member.health.state is State.HEALTHY
    assert member.header == ("x-api-key", NEW)


async def test_refetch_that_changes_nothing_is_an_auth_failure(
    aiohttp_server: Any, aiohttp_client: Any, tmp_path: Path
) -> None:
    upstream = KeyedUpstream("main", set())  # refuses everything
    client = await proxy_for(
        aiohttp_server,
        aiohttp_client,
        {"main": {"api_key_command": script(tmp_path, f"echo {OLD}")}},
        {"main": upstream},
    )
    answer = await client.post("/v1/messages", json=BODY)
    assert answer.status == 503  # no account could serve...
    assert answer.headers["x-should-retry"] == "false"  # ...and none will by itself
    assert upstream.refused == 1  # not tried again with the same key
    assert runs(tmp_path) == 2  # fetched once more after the 401, and it was the same
    member = client.app[RUNTIME_KEY].pool.members["main"]
    assert member.health.state is State.AUTH_FAILED


async def test_failing_command_makes_the_account_auth_failed_without_leaking(
    aiohttp_server: Any, aiohttp_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = f"echo {OLD}\necho 'pass: gpg: decryption failed: No secret key' >&2\nexit 2"
    client = await proxy_for(
        aiohttp_server,
        aiohttp_client,
        {
            "broken": {"api_key_command": script(tmp_path, body)},
            "good": {"api_key": NEW},
        },
        {"broken": KeyedUpstream("broken", {OLD}), "good": KeyedUpstream("good", {NEW})},
    )
    member = client.app[RUNTIME_KEY].pool.members["broken"]
    assert member.health.state is State.AUTH_FAILED
    assert "exited with status 2: pass: gpg: decryption failed" in member.health.reason
    assert (await client.post("/v1/messages", json=BODY)).status == 200  # the other serves
    stats = await (await client.get("/accounts/stats")).text()
    assert "decryption failed" in stats
    assert OLD not in stats and OLD not in caplog.text


async def test_stats_show_where_credentials_come_from(
    aiohttp_server: Any, aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QCC_TEST_KEY", NEW)
    client = await proxy_for(
        aiohttp_server,
        aiohttp_client,
        {
            "cmd": {"api_key_command": script(tmp_path, f"echo {OLD}"), "credential_ttl": 60},
            "env": {"api_key_env": "QCC_TEST_KEY"},
            "inline": {"api_key": NEW},
        },
        {n: KeyedUpstream(n, {OLD, NEW}) for n in ("cmd", "env", "inline")},
    )
    doc = await (await client.get("/accounts/stats")).json()
    by_name = {a["name"]: a["credential"] for a in doc["accounts"]}
    assert by_name["env"] == {"source": "env:QCC_TEST_KEY"}
    assert by_name["inline"] == {"source": "inline"}
    cmd = by_name["cmd"]
    assert cmd["source"] == "command" and cmd["last_result"] == "ok" and cmd["refreshes"] == 1
    assert 55 < cmd["expires"] - cmd["last_refresh"] <= 60
    text = str(doc)
    assert OLD not in text and NEW not in text


async def test_background_refresh_before_expiry_keeps_traffic_from_waiting(
    aiohttp_server: Any, aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await proxy_for(
        aiohttp_server,
        aiohttp_client,
        {"main": {"api_key_command": script(tmp_path, f"echo {OLD}"), "credential_ttl": 0.3}},
        {"main": KeyedUpstream("main", {OLD})},
    )
    source = client.app[RUNTIME_KEY].pool.members["main"].source
    await wait_for(lambda: runs(tmp_path) >= 3, limit=3)  # refreshed at 80% of 0.3 s, twice
    loop = asyncio.get_running_loop()
    assert source.current(loop.time()) is not None  # never let go stale meanwhile


async def test_reload_brings_in_a_command_account_and_replaces_a_changed_one(
    aiohttp_server: Any, aiohttp_client: Any, tmp_path: Path
) -> None:
    h = await harness_factory(aiohttp_server, aiohttp_client)(
        "a", "b", config_path=tmp_path / "c.toml"
    )
    path = tmp_path / "c.toml"
    first = script(tmp_path, f"echo {OLD}", "first.sh")
    path.write_text(
        path.read_text().replace(f'api_key = "{SECRET}-b"', f'api_key_command = "{first}"')
    )
    await wait_for(lambda: h.member("b").header == ("x-api-key", OLD))  # fetched by the keeper
    old_member = h.member("b")
    second = script(tmp_path, f"echo {NEW}", "second.sh")
    path.write_text(path.read_text().replace(first, second))
    await wait_for(lambda: h.member("b").header == ("x-api-key", NEW))
    assert h.member("b") is not old_member and old_member.source is not None
    assert not old_member.source.refreshing  # the replaced source stopped
    assert runs(tmp_path) == 2
