"""End to end, daily use: one proxy per state dir, the environment it prints, ``qcc claude env``
following the running proxy, ``qcc run`` keeping stdout clean, and the admin client ignoring
``http_proxy``. Real ``qcc`` processes; a fake account on localhost."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from e2e import QCC, env_for, free_port, one_account_config, qcc, running_proxy, write_config

from qcc.fake_upstream import FakeUpstream

pytestmark = pytest.mark.slow

ACCOUNT_KEY = "sk-ant-api03-ACCOUNTSECRETACCOUNTSECRET-d4d4"
ACCESS_KEY = "qcc-access-DAILYSECRETDAILYSECRET-5e5e"
BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


async def setup(aiohttp_server: Any, tmp_path: Path, **proxy: Any) -> tuple[dict[str, str], int]:
    """A config with one fake account; returns (env, the config's port)."""
    server = await aiohttp_server(FakeUpstream("main").app())
    base_url = str(server.make_url("")).rstrip("/")
    env, port = one_account_config(tmp_path, base_url, ACCOUNT_KEY, proxy=proxy)
    return env, port


async def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(qcc, *args, env=env)


def answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stderr_size(pid: int) -> int | None:
    """Size of the file a process writes its stderr to (None where /proc is missing)."""
    path = Path(f"/proc/{pid}/fd/2")
    return path.stat().st_size if path.exists() else None


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qcc: error: "), result.stderr
    return lines[0]


async def test_one_proxy_per_state_dir_on_any_port(aiohttp_server: Any, tmp_path: Path) -> None:
    env, config_port = await setup(aiohttp_server, tmp_path, access_key=ACCESS_KEY)
    state = tmp_path / "state"
    assert not state.exists()
    port, other = free_port(), free_port()
    assert config_port not in (port, other)
    url = f"http://127.0.0.1:{port}"
    started = await run("proxy", "start", "--detach", "--port", str(port), env=env)
    assert started.returncode == 0, started.stderr
    try:
        # the complete environment, the access key masked
        assert f"ANTHROPIC_BASE_URL={url}\n" in started.stdout
        assert "ANTHROPIC_AUTH_TOKEN=qcc-acc…5e5e" in started.stdout
        assert 'eval "$(qcc claude env)"' in started.stdout
        assert ACCESS_KEY not in started.stdout + started.stderr
        # private state dir; the start-up error file is gone once the proxy answers
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE((state / "proxy.lock").stat().st_mode) == 0o600
        assert not list(state.glob("proxy-start*"))
        record = json.loads((state / "proxy.json").read_text())
        pid = record["pid"]

        # a second start, on another port, detached or not, is refused and names the first
        for detach in (["--detach"], []):
            again = await run("proxy", "start", *detach, "--port", str(other), env=env)
            line = one_error_line(again)
            assert f"a qcc proxy (pid {pid}) already serves cluster 'prod' at {url}" in line
            assert "qcc proxy stop" in line
            assert not answers(other)
        assert json.loads((state / "proxy.json").read_text()) == record

        # requests are logged to proxy.log only: the child's stderr does not grow
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.post(
                    url + "/v1/messages", json=BODY, headers={"x-api-key": ACCESS_KEY}
                ) as resp:
                    assert resp.status == 200
        await asyncio.sleep(0.5)  # the log flusher runs every 0.25 s
        assert (state / "logs" / "proxy.log").read_text().count("account=main status=200") == 3
        assert stderr_size(pid) in (0, None)

        # Claude Code is pointed at the proxy that runs, not at the config's port
        shell = await run("claude", "env", "--shell", "bash", env=env)
        assert shell.returncode == 0, shell.stderr
        assert shell.stdout == (
            f"export ANTHROPIC_BASE_URL='{url}'\nexport ANTHROPIC_AUTH_TOKEN='{ACCESS_KEY}'\n"
        )
        assert shell.stderr == (
            f"using the running qcc proxy (pid {pid}, cluster 'prod') at {url}\n"
        )
        claude_dir = tmp_path / "claude"
        enabled = await run("claude", "enable", env=env | {"CLAUDE_CONFIG_DIR": str(claude_dir)})
        assert enabled.returncode == 0, enabled.stderr
        assert "Using the running qcc proxy" in enabled.stderr
        settings = json.loads((claude_dir / "settings.json").read_text())
        assert settings["env"]["ANTHROPIC_BASE_URL"] == url
    finally:
        stopped = await run("proxy", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert f"pid {pid}" in stopped.stderr
    assert not answers(port) and not answers(other)
    assert not (state / "proxy.json").exists()


async def test_racing_detached_starts_run_exactly_one(aiohttp_server: Any, tmp_path: Path) -> None:
    env, _ = await setup(aiohttp_server, tmp_path)
    ports = [free_port(), free_port()]
    results = await asyncio.gather(
        *(run("proxy", "start", "--detach", "--port", str(p), env=env) for p in ports)
    )
    try:
        codes = sorted(r.returncode for r in results)
        assert codes == [0, 1], [(r.returncode, r.stderr) for r in results]
        loser = next(r for r in results if r.returncode == 1)
        line = one_error_line(loser)
        assert "already serves cluster 'prod'" in line or "is starting" in line, line
        winner = ports[[r.returncode for r in results].index(0)]
        assert [answers(p) for p in ports] == [p == winner for p in ports]
        record = json.loads((tmp_path / "state" / "proxy.json").read_text())
        assert record["port"] == winner
    finally:
        stopped = await run("proxy", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert not any(answers(p) for p in ports)


async def test_admin_client_ignores_http_proxy(aiohttp_server: Any, tmp_path: Path) -> None:
    env, port = await setup(aiohttp_server, tmp_path)
    closed = free_port()  # nothing listens here: anything sent through it fails
    for name in ("no_proxy", "NO_PROXY"):
        env.pop(name, None)
    env |= {"http_proxy": f"http://127.0.0.1:{closed}", "HTTP_PROXY": f"http://127.0.0.1:{closed}"}
    started = await run("proxy", "start", "--detach", env=env)  # waits on /health
    assert started.returncode == 0, started.stderr
    try:
        short = await run("health", "--json", env=env)
        assert short.returncode == 0, short.stderr
        full = await run("health", "status", "--json", env=env)
        assert full.returncode == 0, full.stderr
        doc, same = json.loads(short.stdout), json.loads(full.stdout)
        assert doc["cluster"] == same["cluster"] == "prod"
        assert [a["name"] for a in doc["accounts"]] == ["main"]
        narrow = await run("health", env=env | {"COLUMNS": "80"})
        assert narrow.returncode == 0, narrow.stderr
        assert all(len(line) <= 80 for line in narrow.stdout.splitlines()), narrow.stdout
        assert " main " in narrow.stdout and " healthy " in narrow.stdout
        assert f"http://127.0.0.1:{port}" in narrow.stdout
    finally:
        stopped = await run("proxy", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr


async def test_run_keeps_stdout_clean_and_warns_why_none_can_serve(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    env.pop("QCC_DAILY_UNSET", None)
    write_config(
        tmp_path / "config",
        {
            "default_cluster": "prod",
            "proxy": {"port": free_port()},
            "clusters": {
                "prod": {
                    "accounts": {
                        "main": {
                            "base_url": "http://127.0.0.1:9",
                            "api_key_env": "QCC_DAILY_UNSET",
                        },
                        "spare": {
                            "base_url": "http://127.0.0.1:9",
                            "api_key": ACCOUNT_KEY,
                            "enabled": False,
                        },
                    }
                }
            },
        },
    )
    try:
        result = await run("run", "--", sys.executable, "-c", "print(1)", env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "1\n"
        assert "qcc proxy (pid " in result.stderr
        warning = next(line for line in result.stderr.splitlines() if "warning" in line)
        assert "no account of cluster 'prod' can serve requests" in warning
        assert "main: environment variable QCC_DAILY_UNSET is not set" in warning
        assert "spare: disabled" in warning
        assert ACCOUNT_KEY not in result.stderr
    finally:
        await run("proxy", "stop", env=env)


async def test_run_claude_without_claude_code_says_how_to_install(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    empty = tmp_path / "bin"
    empty.mkdir()
    result = await run("run", "--", "claude", "-p", "hi", env=env | {"PATH": str(empty)})
    line = one_error_line(result) if result.returncode == 1 else result.stderr.strip()
    assert result.returncode != 0 and result.stdout == ""
    assert line.startswith("qcc: error: command not found: claude; Claude Code is not installed")
    assert "npm install -g @anthropic-ai/claude-code" in line
    assert "https://docs.anthropic.com/en/docs/claude-code" in line


async def test_foreground_start_prints_env_and_keeps_state_private(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    env, port = await setup(aiohttp_server, tmp_path)
    state = tmp_path / "state"
    os.umask(old := os.umask(0o022))
    assert old & 0o077 != 0o077  # the default would make the dir group/world readable
    with running_proxy(env) as (process, url):
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE((state / "proxy.json").stat().st_mode) == 0o600
        refused = await run("proxy", "start", "--detach", "--port", str(free_port()), env=env)
        assert "already serves cluster 'prod'" in one_error_line(refused)
    assert url == f"http://127.0.0.1:{port}"
    assert f"    ANTHROPIC_BASE_URL={url}\n" in lines
    assert any(line.startswith("    ANTHROPIC_AUTH_TOKEN=qcc  ") for line in lines), lines


def test_demo_introduces_its_accounts_and_fits_80_columns(tmp_path: Path) -> None:
    result = subprocess.run(
        [*QCC, "demo", "--quick", "-n", "6"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env_for(tmp_path) | {"COLUMNS": "80"},
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    first_request = next(i for i, line in enumerate(lines) if line.startswith("#1: "))
    intro = "\n".join(lines[:first_request])
    for name in ("steady", "slow", "flaky"):
        assert f"  {name}  " in intro
    assert "0.4 s" in intro and "529" in intro
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
