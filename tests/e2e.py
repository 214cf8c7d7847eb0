"""Helpers for end-to-end tests that run the real ``qcc`` command as a subprocess."""

from __future__ import annotations

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
