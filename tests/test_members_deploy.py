"""The files that run qcc as a service (Dockerfile, compose.yaml, deploy/config.example.toml),
checked without Docker: the example config loads, the bind rule holds, the healthcheck works."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from proxyharness import harness_factory

from qcc.config.keys import new_key, stored_form
from qcc.config.validate import TOP_KEYS, config_from
from qcc.errors import ProxyError
from qcc.proxy.guard import check_bind

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def example() -> dict[str, Any]:
    data = tomllib.loads((ROOT / "deploy" / "config.example.toml").read_text())
    assert data["shared"]["redis_url"] == "redis://redis:6379/0"  # the compose service
    if "shared" not in TOP_KEYS:  # [shared] comes with the Redis half of the gateway
        del data["shared"]
    return data


def test_example_config_loads_and_needs_a_key_to_listen_beyond_loopback() -> None:
    data = example()
    config = config_from(data)
    assert config.proxy.host == "0.0.0.0" and config.proxy.access_key is None
    with pytest.raises(ProxyError, match="qcc key add"):
        check_bind(config, "0.0.0.0", cluster="team")
    data["clusters"]["team"]["keys"] = {"alice": {"hash": stored_form(new_key())}}
    check_bind(config_from(data), "0.0.0.0", cluster="team")


def instruction(name: str) -> str:
    match = re.search(rf"^{name} (.*?)(?<!\\)$", DOCKERFILE, re.MULTILINE | re.DOTALL)
    assert match is not None, name
    return match.group(1).replace("\\\n", " ")


def test_dockerfile_runs_qcc_unprivileged_on_all_interfaces() -> None:
    assert DOCKERFILE.startswith("#") and "FROM python:3.12-slim" in DOCKERFILE
    assert instruction("USER").strip() == "qcc"
    assert json.loads(instruction("CMD")) == [
        "qcc", "proxy", "start", "--host", "0.0.0.0", "--port", "7860",
    ]  # fmt: skip
    assert "EXPOSE 7860" in DOCKERFILE and "QCC_CONFIG_DIR=/config" in DOCKERFILE
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored and "**/config.toml" in ignored  # no secrets baked into the image


async def test_dockerfile_healthcheck_asks_health(aiohttp_server: Any, aiohttp_client: Any) -> None:
    command = json.loads(instruction("HEALTHCHECK").partition("CMD")[2])
    assert command[:2] == ["python", "-c"]
    h = await harness_factory(aiohttp_server, aiohttp_client)("a")
    code = command[2].replace("127.0.0.1:7860", f"127.0.0.1:{h.client.port}")
    assert code != command[2]

    async def check() -> int:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stderr=asyncio.subprocess.DEVNULL
        )
        return await process.wait()

    assert await check() == 0
    await h.client.close()
    assert await check() != 0  # nothing listens: unhealthy


def test_compose_runs_two_instances_and_redis() -> None:
    doc = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = doc["services"]
    assert set(services) == {"redis", "qcc-a", "qcc-b"}
    states = {services[n]["volumes"][1] for n in ("qcc-a", "qcc-b")}
    assert len(states) == 2  # one state dir per instance: one proxy per state dir
    assert services["qcc-a"]["build"] == "." and services["qcc-a"]["user"].startswith("${QCC_UID")
