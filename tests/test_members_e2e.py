"""Member keys end to end: ``qcc key add`` and the real ``qcc proxy start`` (bound beyond
loopback, as in Docker), with the official anthropic SDK as the member's client."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from pathlib import Path
from typing import Any

import anthropic
import pytest
from e2e import one_account_config, qcc, running_proxy

from qcc.fake_upstream import FakeUpstream

pytestmark = pytest.mark.slow

ACCOUNT_KEY = "sk-ant-api03-E2EACCOUNTKEY-members-0000-zz11"
HI = [{"role": "user", "content": "hi"}]


def health_status(url: str) -> int:
    with urllib.request.urlopen(url + "/health", timeout=5) as response:
        return int(response.status)


async def test_member_key_through_real_proxy_with_sdk(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeUpstream("main")
    server = await aiohttp_server(fake.app())
    env, port = one_account_config(
        tmp_path, str(server.make_url("")).rstrip("/"), ACCOUNT_KEY, account={"probe": "models"}
    )
    added = qcc("key", "add", "alice", "--rpm", "3", env=env)
    assert added.returncode == 0, added.stderr
    alice = added.stdout.strip()
    assert alice.startswith("qcc-") and alice not in (tmp_path / "config/config.toml").read_text()
    # 0.0.0.0 without proxy.access_key: allowed because the cluster has member keys
    with running_proxy(env, "--host", "0.0.0.0") as (process, _):
        url = f"http://127.0.0.1:{port}"
        assert await asyncio.to_thread(health_status, url) == 200  # as the Docker healthcheck
        client = anthropic.AsyncAnthropic(base_url=url, api_key=alice, max_retries=0)
        message = await client.messages.create(model="m", max_tokens=5, messages=HI)
        assert message.content
        # as Claude Code sends ANTHROPIC_AUTH_TOKEN: Authorization: Bearer
        bearer = anthropic.AsyncAnthropic(base_url=url, auth_token=alice, max_retries=0)
        async with bearer.messages.stream(model="m", max_tokens=5, messages=HI) as stream:
            assert "".join([t async for t in stream.text_stream])
        stranger = anthropic.AsyncAnthropic(base_url=url, api_key="qcc-nope", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError):
            await stranger.messages.create(model="m", max_tokens=5, messages=HI)
        await client.messages.create(model="m", max_tokens=5, messages=HI)  # the third
        with pytest.raises(anthropic.RateLimitError) as limited:
            await client.messages.create(model="m", max_tokens=5, messages=HI)
        assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
        for c in (client, bearer, stranger):
            await c.close()
        forwarded = [r for r in fake.requests if r.path_qs == "/v1/messages"]
        assert len(forwarded) == 3
        assert all(alice not in str(r.headers) for r in fake.requests)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
        assert process.returncode == 0
    assert alice not in out + err
    assert "ANTHROPIC_AUTH_TOKEN=<a member key>" in out  # what start tells the user to set
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert alice.encode() not in path.read_bytes(), path
    usage = qcc("usage", "--by", "key", "--json", env=env)
    assert usage.returncode == 0, usage.stderr
    rows = {row["name"]: row["requests"] for row in json.loads(usage.stdout)["rows"]}
    assert rows == {"alice": 3}
    listed = qcc("key", "list", env=env)
    assert "alice" in listed.stdout and alice not in listed.stdout
