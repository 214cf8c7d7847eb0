"""The real ``qcc proxy start`` with a credential helper command, and the official SDK as the
client: the key is fetched at start-up, re-fetched once after it was rotated, never logged."""

from __future__ import annotations

import json
import signal
import stat
import time
from pathlib import Path
from typing import Any

import anthropic
import pytest
from credfakes import KeyedUpstream
from e2e import env_for, free_port, qcc, running_proxy, write_config

pytestmark = pytest.mark.slow

OLD = "sk-ant-api03-E2EOLDKEYE2EOLDKEYE2E-1111"
NEW = "sk-ant-api03-E2ENEWKEYE2ENEWKEYE2E-2222"


async def test_sdk_through_a_proxy_whose_key_comes_from_a_command(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    upstream = KeyedUpstream("main", {OLD})
    server = await aiohttp_server(upstream.app())
    key = tmp_path / "key"
    key.write_text(OLD + "\n")
    helper = tmp_path / "helper.sh"
    helper.write_text(f'#!/bin/sh\necho run >> "{tmp_path}/runs"\ncat "{key}"\n')
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    main = {"base_url": str(server.make_url("")).rstrip("/"), "api_key_command": f"sh {helper}"}
    config = {
        "default_cluster": "prod",
        "proxy": {"port": free_port(), "drain_timeout": 5},
        "health": {"probe_interval": 3600},
        "clusters": {"prod": {"accounts": {"main": main}}},
    }
    write_config(tmp_path / "config", config)
    env = env_for(tmp_path)
    listed = qcc("account", "list", "--json", env=env)
    assert '"source": "command"' in listed.stdout
    with running_proxy(env) as (process, url):
        client = anthropic.AsyncAnthropic(base_url=url, api_key="anything", max_retries=0)
        first = await client.messages.create(
            model="qcc-test-model", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
        assert first.content[0].text == "Hello from a fake account."  # type: ignore[union-attr]
        key.write_text(NEW + "\n")  # rotated in the password manager...
        upstream.accepted = {NEW}  # ...and the old one revoked
        async with client.messages.stream(
            model="qcc-test-model", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            text = "".join([t async for t in stream.text_stream])
        assert text == "Hello from a fake account."
        await client.close()
        shown = json.loads(qcc("account", "show", "main", "--json", env=env).stdout)
        live = shown["live"]["credential"]
        assert live["source"] == "command" and live["last_result"] == "ok"
        assert live["refreshes"] == 2 and live["expires"] > time.time() + 250
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        _, err = process.communicate(timeout=5)
    assert len((tmp_path / "runs").read_text().splitlines()) == 2  # start-up, and the 401
    assert upstream.refused == 1
    logs = err + "".join(p.read_text() for p in (tmp_path / "state").rglob("*.log"))
    assert OLD not in logs and NEW not in logs
