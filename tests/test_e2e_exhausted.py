"""End to end: the real ``qcc proxy start``, the official SDK, an account out of credit, and
``qcc account enable`` bringing it back in the running proxy."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import anthropic
import pytest
from e2e import env_for, free_port, qcc, running_proxy, write_config

from qcc import wire
from qcc.fake_upstream import Behavior, FakeUpstream

pytestmark = pytest.mark.slow

KEY = "sk-ant-api03-E2ESECRETE2ESECRETE2E-ex01"
ACCESS = "qcc-access-E2EEXHAUSTEDE2E-0001"
CREDIT = wire.encode(
    wire.error("invalid_request_error", "Your credit balance is too low to access the API.")
)


async def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(qcc, *args, env=env)


async def test_sdk_credit_400_fails_over_and_enable_resets(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    fakes = {
        "broke": FakeUpstream("broke", Behavior(mode="status", status=400, body=CREDIT)),
        "good": FakeUpstream("good"),
    }
    urls = {}
    for name, fake in fakes.items():
        server = await aiohttp_server(fake.app())
        urls[name] = str(server.make_url("")).rstrip("/")
    port = free_port()
    env = env_for(tmp_path)
    write_config(
        tmp_path / "config",
        {
            "default_cluster": "prod",
            "proxy": {"port": port, "drain_timeout": 5, "access_key": ACCESS},
            "clusters": {
                "prod": {
                    "strategy": "priority",
                    "accounts": {
                        name: {"base_url": url, "api_key": f"{KEY}-{name}"}
                        for name, url in urls.items()
                    },
                }
            },
        },
    )
    with running_proxy(env) as (_, url):
        client = anthropic.AsyncAnthropic(base_url=url, api_key=ACCESS, max_retries=0)
        message = await client.messages.create(
            model="claude-test", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
        await client.close()
        assert message.content[0].text == "Hello from a fake account."  # type: ignore[union-attr]
        sent = {n: [r for r in f.requests if r.path_qs == "/v1/messages"] for n, f in fakes.items()}
        assert len(sent["broke"]) == 1 and len(sent["good"]) == 1  # (probes aside)

        health = await run("health", "--json", env=env)
        assert health.returncode == 0, health.stderr
        broke = next(a for a in json.loads(health.stdout)["accounts"] if a["name"] == "broke")
        assert broke["state"] == "exhausted"
        assert broke["last_rule"] == "built-in: credit-balance"
        assert "credit-balance" in broke["reason"] and broke["until"] is not None
        assert KEY not in health.stdout

        enabled = await run("account", "enable", "broke", env=env)
        assert enabled.returncode == 0, enabled.stderr
        assert "was exhausted in the running proxy" in enabled.stderr
        assert "reset: healthy" in enabled.stderr

        health = await run("health", "--json", env=env)
        broke = next(a for a in json.loads(health.stdout)["accounts"] if a["name"] == "broke")
        assert broke["state"] == "healthy"
        assert broke["reason"] == "reset by the user"
