"""Load generators: wrk for request/response scenarios, the Python client for long streams."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

from procs import BENCH, LOAD_CORE, pinned

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.M)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


@dataclass
class WrkResult:
    rps: float
    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int  # socket errors (connect, read, write, timeout) plus non-2xx responses

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_wrk(text: str) -> WrkResult:
    """The numbers of a ``wrk --latency`` report. Raises ValueError if it has none."""
    rps = _RPS.search(text)
    total = _TOTAL.search(text)
    if rps is None or total is None:
        raise ValueError(f"not a wrk report:\n{text}")
    pct = {int(p): float(v) * _UNITS[u] * 1000 for p, v, u in _PERCENTILE.findall(text)}
    socket = _SOCKET.search(text)
    non_2xx = _NON_2XX.search(text)
    errors = sum(int(n) for n in socket.groups()) if socket else 0
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return WrkResult(
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        p50_ms=pct.get(50, float("nan")),
        p90_ms=pct.get(90, float("nan")),
        p99_ms=pct.get(99, float("nan")),
        errors=errors,
    )


def wrk(url: str, body: str, connections: int, duration: float) -> WrkResult:
    """One ``wrk -t1`` run on the load core; ``body`` is small | stream | big (see post.lua)."""
    argv = pinned(
        LOAD_CORE,
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(BENCH / "post.lua"),
            url.rstrip("/") + "/v1/messages",
            "--",
            body,
        ],
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def client_command(
    mode: str, url: str, count: int, seconds: float = 0.0, stream: bool = False
) -> list[str]:
    argv = [sys.executable, str(BENCH / "client.py"), mode, url, "--count", str(count)]
    return pinned(LOAD_CORE, [*argv, "--seconds", str(seconds)] + ["--stream"] * stream)


def run_client(
    mode: str, url: str, count: int, seconds: float = 0.0, stream: bool = False
) -> dict[str, Any]:
    """Run bench/client.py to completion and return its JSON report."""
    done = subprocess.run(
        client_command(mode, url, count, seconds, stream),
        capture_output=True,
        text=True,
        timeout=seconds + count * 0.05 + 120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"client.py {mode} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result
