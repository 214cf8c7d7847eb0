"""``qcc account test NAME`` and ``qcc health check`` with fetched credentials: no proxy, the
command run (or the token fetched) here, each step reported, the secret masked."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from aiohttp import web
from conftest import RunCli
from credfakes import KeyedUpstream, TokenEndpoint
from test_credentials_command import runs, script

SECRET = "sk-ant-api03-ACCOUNTTESTSECRETACCOUNTTEST-7777"


@contextmanager
def serving(app: web.Application) -> Iterator[str]:
    """``app`` on 127.0.0.1 in a thread of its own (the CLI runs its own event loop)."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def write(config_path: Path, accounts: dict[str, Any]) -> None:
    doc = {"default_cluster": "prod", "clusters": {"prod": {"accounts": accounts}}}
    config_path.write_text(tomlkit.dumps(doc))
    config_path.chmod(0o600)


@pytest.fixture
def upstream() -> Iterator[tuple[KeyedUpstream, str]]:
    fake = KeyedUpstream("main", {SECRET})
    with serving(fake.app()) as url:
        yield fake, url


def test_account_test_reports_each_step(
    run_cli: RunCli, config_path: Path, tmp_path: Path, upstream: tuple[KeyedUpstream, str]
) -> None:
    fake, url = upstream
    write(
        config_path,
        {"main": {"base_url": url, "api_key_command": script(tmp_path, f"echo {SECRET}")}},
    )
    result = run_cli("account", "test", "main")
    assert result.exit_code == 0, result
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok   credential (command) fetched in ")
    assert lines[0].endswith("ms: x-api-key sk-ant-…7777 (expires in 300s)")
    assert lines[1].startswith("ok   probe success in ")
    assert "POST /v1/messages/count_tokens: HTTP 200" in lines[1]
    assert SECRET not in result.stdout + result.stderr
    assert runs(tmp_path) == 1
    assert fake.requests[0].headers["x-api-key"] == SECRET

    as_json = run_cli("account", "test", "main", "--cluster", "prod", "--json").json()
    assert as_json["ok"] is True
    fetched, probe = as_json["steps"]
    assert fetched["source"] == "command" and fetched["value"] == "sk-ant-…7777"
    assert probe["status"] == 200


def test_account_test_failing_command_exits_1(
    run_cli: RunCli, config_path: Path, tmp_path: Path, upstream: tuple[KeyedUpstream, str]
) -> None:
    _, url = upstream
    body = f"echo {SECRET}\necho '[ERROR] You are not currently signed in.' >&2\nexit 1"
    write(config_path, {"main": {"base_url": url, "api_key_command": script(tmp_path, body)}})
    result = run_cli("account", "test", "main")
    assert result.exit_code == 1
    assert result.stdout.startswith("FAIL credential (command) not fetched")
    assert "exited with status 1: [ERROR] You are not currently signed in." in result.stdout
    assert "probe" not in result.stdout  # nothing to probe with
    assert SECRET not in result.stdout + result.stderr


def test_account_test_oauth_and_a_refused_credential(
    run_cli: RunCli, config_path: Path, tmp_path: Path
) -> None:
    endpoint = TokenEndpoint(expires_in=900)
    refusing = KeyedUpstream("main", set())
    with serving(endpoint.app()) as sso, serving(refusing.app()) as url:
        oauth = {
            "token_url": f"{sso}/token",
            "client_id": "qcc-client",
            "client_secret": "client-secret-000000",
            "refresh_token": "rt-0",
        }
        write(config_path, {"gw": {"base_url": url, "oauth": oauth}})
        result = run_cli("account", "test", "gw", "--json")
    assert result.exit_code == 1
    doc = result.json()
    fetched, probe = doc["steps"]
    assert fetched["ok"] and fetched["source"] == "oauth"
    assert fetched["header"] == "authorization" and fetched["value"] == "access-…xxxx"
    assert 835 < fetched["expires"] - time.time() <= 840  # expires_in less a minute
    assert probe["ok"] is False and probe["outcome"] == "auth_failed" and probe["status"] == 401
    assert "client-secret" not in result.stdout and "rt-0" not in result.stdout


def test_health_check_runs_commands_itself(
    run_cli: RunCli, config_path: Path, tmp_path: Path, upstream: tuple[KeyedUpstream, str]
) -> None:
    _, url = upstream
    write(
        config_path,
        {
            "good": {"base_url": url, "api_key_command": script(tmp_path, f"echo {SECRET}")},
            "bad": {"base_url": url, "auth_token_command": "exit 4"},
        },
    )
    result = run_cli("health", "check", "--json")
    assert result.exit_code == 1
    rows = {row["name"]: row for row in result.json()["accounts"]}
    assert rows["good"]["healthy"] is True
    assert rows["bad"]["outcome"] == "auth_failed"
    assert "exited with status 4" in rows["bad"]["detail"]
