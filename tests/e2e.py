"""Helpers for end-to-end tests that run the real ``qcc`` command as a subprocess."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tomlkit

QCC = [sys.executable, "-m", "qcc"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(config_dir: Path, data: dict[str, Any]) -> Path:
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "config.toml"
    path.write_text(tomlkit.dumps(data))
    path.chmod(0o600)
    return path


def one_account_config(
    tmp: Path,
    base_url: str,
    api_key: str,
    *,
    proxy: dict[str, Any] | None = None,
    account: dict[str, Any] | None = None,
    **top: Any,
) -> tuple[dict[str, str], int]:
    """Write a config whose cluster ``prod`` has one account ``main`` at ``base_url``; return
    (the environment for ``qcc``, the config's port). ``top`` adds top-level tables."""
    port = free_port()
    main = {"base_url": base_url, "api_key": api_key} | (account or {})
    data: dict[str, Any] = {
        "default_cluster": "prod",
        "proxy": {"port": port, "drain_timeout": 5} | (proxy or {}),
        "clusters": {"prod": {"accounts": {"main": main}}},
    }
    write_config(tmp / "config", data | top)
    return env_for(tmp), port


async def raw_exchange(port: int, data: bytes, limit: float = 5.0) -> bytes:
    """Send ``data`` on a new connection to 127.0.0.1; everything answered until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), limit)
    finally:
        writer.close()


def qcc(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*QCC, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


@contextmanager
def running_proxy(
    env: dict[str, str], *args: str, ready_timeout: float = 15.0
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start ``qcc proxy start ARGS`` in the foreground; yield (process, url) once it listens."""
    process = subprocess.Popen(
        [*QCC, "proxy", "start", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + ready_timeout
        url = None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if "listening on " in line:
                url = line.rsplit("listening on ", 1)[1].strip()
                break
        if url is None:
            process.kill()
            _, err = process.communicate(timeout=5)
            raise AssertionError(f"proxy did not start: {err}")
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def env_for(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["QCC_CONFIG_DIR"] = str(tmp / "config")
    env["QCC_STATE_DIR"] = str(tmp / "state")
    env.pop("ANTHROPIC_BASE_URL", None)
    return env
