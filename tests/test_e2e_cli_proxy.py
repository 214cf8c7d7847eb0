"""End to end: the real ``qcc`` command runs, stops and reports on a proxy; fake accounts serve."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from e2e import QCC, env_for, one_account_config, qcc, running_proxy

from qcc.fake_upstream import Behavior, FakeUpstream

pytestmark = pytest.mark.slow

ACCOUNT_KEY = "sk-ant-api03-ACCOUNTSECRETACCOUNTSECRET-q7q7"
CLIENT_KEY = "sk-ant-api03-CLIENTKEYCLIENTKEYCLIENT-c1c1"
BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


async def setup(
    aiohttp_server: Any, tmp_path: Path, behavior: Behavior | None = None, **proxy: Any
) -> tuple[FakeUpstream, dict[str, str], int]:
    fake = FakeUpstream("main", behavior)
    server = await aiohttp_server(fake.app())
    base_url = str(server.make_url("")).rstrip("/")
    env, port = one_account_config(tmp_path, base_url, ACCOUNT_KEY, proxy=proxy)
    return fake, env, port


async def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(qcc, *args, env=env)


async def test_detached_start_status_health_logs_stop(aiohttp_server: Any, tmp_path: Path) -> None:
    _, env, port = await setup(aiohttp_server, tmp_path)
    started = await run("proxy", "start", "--detach", env=env)
    assert started.returncode == 0, started.stderr
    url = f"http://127.0.0.1:{port}"
    assert url in started.stdout
    try:
        async with aiohttp.ClientSession() as session:
            for stream in (False, True):
                async with session.post(
                    url + "/v1/messages?beta=true",
                    json=BODY | {"stream": stream},
                    headers={"x-api-key": CLIENT_KEY},
                ) as resp:
                    assert resp.status == 200
                    await resp.read()
        status = await run("proxy", "status", "--json", env=env)
        assert status.returncode == 0, status.stderr
        doc = json.loads(status.stdout)
        assert doc["running"] and doc["cluster"] == "prod" and doc["url"] == url
        assert doc["requests"] == 2

        health = await run("health", "status", "--json", env=env)
        assert health.returncode == 0
        accounts = json.loads(health.stdout)["accounts"]
        assert accounts[0]["name"] == "main" and accounts[0]["state"] == "healthy"
        assert accounts[0]["usage"]["input_tokens"] == 24
        table = await run("health", env=env)
        assert table.returncode == 0 and "main" in table.stdout and "healthy" in table.stdout

        top = await run("top", "--iterations", "2", "--interval", "0.1", env=env)
        assert top.returncode == 0, top.stderr
        assert "req/s" in top.stdout and "main" in top.stdout

        logs = await run("proxy", "logs", env=env)
        assert logs.returncode == 0
        assert logs.stdout.count("account=main status=200") == 2
        for secret in (ACCOUNT_KEY, CLIENT_KEY, 'hi"}'):
            assert secret not in logs.stdout
        everything = "".join(p.read_text() for p in (tmp_path / "state").rglob("*.log"))
        assert ACCOUNT_KEY not in everything and CLIENT_KEY not in everything
    finally:
        stopped = await run("proxy", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    after = await run("proxy", "status", env=env)
    assert after.returncode == 1
    assert (
        after.stderr.strip()
        == "qcc: error: no qcc proxy is running; start one with 'qcc proxy start'"
    )
    usage = await run("usage", "--json", env=env)  # read from the store, no proxy running
    assert usage.returncode == 0, usage.stderr
    (row,) = json.loads(usage.stdout)["rows"]
    assert (row["name"], row["requests"], row["tokens"]["output"]) == ("main", 2, 14)
    assert (tmp_path / "state" / "usage.sqlite3").stat().st_mode & 0o777 == 0o600


async def test_stale_record_is_detected_and_cleaned(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    state = tmp_path / "state"
    state.mkdir(parents=True)
    dead = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
    )
    dead_pid = int(dead.stdout)
    (state / "proxy.json").write_text(
        json.dumps(
            {
                "pid": dead_pid,
                "url": "http://127.0.0.1:1",
                "host": "127.0.0.1",
                "port": 1,
                "cluster": "prod",
                "config_path": "x",
                "log_file": None,
                "started_at": 0,
            }
        )
    )
    result = await run("proxy", "status", env=env)
    assert result.returncode == 1
    assert "no qcc proxy is running" in result.stderr
    assert not (state / "proxy.json").exists()


async def test_port_in_use_is_one_line(aiohttp_server: Any, tmp_path: Path) -> None:
    _, env, port = await setup(aiohttp_server, tmp_path)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        result = await run("proxy", "start", env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        f"qcc: error: port {port} on 127.0.0.1 is already in use; stop what uses it "
        "(maybe 'qcc proxy stop') or pick another with --port"
    )
    assert "Traceback" not in result.stderr


async def test_non_loopback_needs_access_key(aiohttp_server: Any, tmp_path: Path) -> None:
    _, env, _ = await setup(aiohttp_server, tmp_path)
    result = await run("proxy", "start", "--host", "0.0.0.0", env=env)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1
    assert "refusing to listen on 0.0.0.0 without an access key" in result.stderr
    assert "proxy.access_key" in result.stderr


async def test_sigterm_drains_inflight_stream_and_exits_zero(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    _, env, _ = await setup(aiohttp_server, tmp_path, Behavior(deltas=10, interval=0.08))
    with running_proxy(env) as (process, url):
        async with (
            aiohttp.ClientSession() as session,
            session.post(url + "/v1/messages", json=BODY | {"stream": True}) as resp,
        ):
            first = await resp.content.readline()
            assert first.startswith(b"event: message_start")
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.2)
            with pytest.raises(aiohttp.ClientConnectionError):  # no new connections
                async with aiohttp.ClientSession() as other:
                    await other.get(url + "/health")
            rest = await resp.read()
        assert rest.rstrip().endswith(b'data: {"type": "message_stop"}')
        assert b"event: error" not in rest
        code = await asyncio.to_thread(process.wait, 15)
    assert code == 0


async def test_health_check_exit_codes(aiohttp_server: Any, tmp_path: Path) -> None:
    fake, env, _ = await setup(aiohttp_server, tmp_path)
    ok = await run("health", "check", "--json", env=env)
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["healthy"] and doc["accounts"][0]["outcome"] == "success"
    assert fake.requests[-1].path_qs == "/v1/messages/count_tokens"
    fake.behavior = Behavior(mode="status", status=401)
    bad = await run("health", "check", env=env)
    assert bad.returncode == 1
    assert "auth_failed" in bad.stdout
    unknown = await run("health", "check", "--cluster", "nope", env=env)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("qcc: error: no cluster named 'nope'")


async def test_qcc_run_starts_a_proxy_and_sets_env(aiohttp_server: Any, tmp_path: Path) -> None:
    _, env, port = await setup(aiohttp_server, tmp_path)
    script = (
        "import os; print(os.environ['ANTHROPIC_BASE_URL'], os.environ['ANTHROPIC_AUTH_TOKEN'])"
    )
    try:
        result = await run("run", "--", sys.executable, "-c", script, env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == f"http://127.0.0.1:{port} qcc"
        status = await run("proxy", "status", "--json", env=env)
        assert json.loads(status.stdout)["running"]
    finally:
        await run("proxy", "stop", env=env)
    missing = await run("run", "--", "no-such-command-qcc", env=env)
    assert missing.returncode != 0
    assert missing.stderr.strip() == "qcc: error: command not found: no-such-command-qcc"


def test_demo_finishes_by_itself(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    started = time.monotonic()
    result = subprocess.run(
        [*QCC, "demo", "--quick", "-n", "10"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    assert "sent 10, answered 10" in result.stdout
    assert "steady" in result.stdout and "flaky" in result.stdout
    assert not (tmp_path / "config").exists()  # never touches the user's config
    assert "demo-placeholder-key" not in result.stdout + result.stderr
