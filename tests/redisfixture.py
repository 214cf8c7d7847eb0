"""A real ``redis-server`` (the Debian package) on a free loopback port, for the shared-state
tests. Import the fixture into a test module: ``from redisfixture import redis_server_fixture``.

Skipped, with the reason, only when the binary is missing (``.ci/run`` installs it).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e import free_port


class RedisServer:
    """One redis-server process; :meth:`kill` (SIGKILL) and :meth:`start` again on the same port.
    ``persistent``: an append-only file fsynced on every write, so a killed server comes back
    with everything it acknowledged."""

    def __init__(
        self, binary: str, workdir: Path, *, persistent: bool = False, password: str | None = None
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.persistent = persistent
        self.password = password
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else []
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + (aof or ["--appendonly", "no"])
            + ["--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log")]
            + (["--requirepass", self.password] if self.password else []),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.02)
        raise AssertionError(f"redis-server did not answer on port {self.port}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(
            "redis-server is not installed (apt-get install redis-server): the shared-state "
            "tests run against the real engine"
        )
    return binary


@pytest.fixture(name="redis_server")
def redis_server_fixture(tmp_path: Path) -> Iterator[RedisServer]:
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServer(redis_binary(), workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
