"""S7: qcc sharing its pool through a local ``redis-server`` (``[shared]``), against qcc alone.

S1's shapes (small JSON, 1 and 32 connections) on both, alternating, same minutes. Redis runs on
the load core (a team's Redis is another machine; here it competes with wrk and the upstream,
not with the proxy). Reported: req/s and p50 of each, their ratio, the proxy's CPU per request,
and Redis commands per request (``INFO stats`` before and after, the idle ticks included).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import procs
import redis
from loadgen import wrk

CONNECTIONS = (1, 32)


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("S7 needs redis-server (apt-get install redis-server)")
    port = procs.free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    popen = subprocess.Popen(
        procs.pinned(procs.LOAD_CORE, argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            return popen, url
        except redis.ConnectionError:
            time.sleep(0.05)
    popen.kill()
    raise RuntimeError("redis-server did not start")


def commands(url: str) -> int:
    return int(redis.Redis.from_url(url).info("stats")["total_commands_processed"])


def run_shared(
    workdir: Path, upstream: str, loop: str, plain: procs.Proc, reps: int, duration: float, log: Any
) -> dict[str, Any]:
    """S7 on ``loop``: ``plain`` (qcc alone) and a qcc sharing through a fresh redis-server."""
    server, url = start_redis(workdir)
    shared = procs.start_qcc(
        workdir, upstream, name="qcc-shared", loop=loop, extra={"shared": {"redis_url": url}}
    )
    out: dict[str, Any] = {}
    try:
        for conns in CONNECTIONS:
            runs: dict[str, list[dict[str, Any]]] = {"qcc": [], "qcc-shared": []}
            for proc in (plain, shared):
                wrk(proc.url, "small", conns, min(1.0, duration))  # warm-up
            for rep in range(reps):
                order = [("qcc", plain), ("qcc-shared", shared)]
                for name, proc in order if rep % 2 == 0 else order[::-1]:
                    cpu_before, ops_before = procs.cpu_seconds(proc.pid), commands(url)
                    result = wrk(proc.url, "small", conns, duration)
                    cpu = procs.cpu_seconds(proc.pid) - cpu_before
                    ops = commands(url) - ops_before - 1  # the INFO itself
                    n = result.requests or 1
                    per_request = {"cpu_us_per_req": cpu / n * 1e6, "redis_per_req": ops / n}
                    runs[name].append(result.as_dict() | per_request)
                    log(f"  S7-{conns} rep {rep + 1} {name} ({loop}): {result.rps:,.0f} req/s")
                    time.sleep(0.3)
            out[f"S7-{conns}"] = runs
    finally:
        procs.stop(shared)
        server.terminate()
        server.wait(5)
    return out


def _median(runs: list[dict[str, Any]], key: str) -> float:
    values = sorted(r[key] for r in runs)
    return values[len(values) // 2] if values else math.nan


def shared_table(raw: dict[str, Any]) -> str:
    lines = [
        "| S7 (small JSON) | qcc req/s | qcc + Redis req/s | ratio | p50 ms (qcc / + Redis) "
        "| CPU/req µs (qcc / + Redis) | Redis commands/req |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, runs in raw.items():
        plain, shared = runs["qcc"], runs["qcc-shared"]
        rps, rps_shared = _median(plain, "rps"), _median(shared, "rps")
        lines.append(
            f"| {name} conns | {rps:,.0f} | {rps_shared:,.0f} | {rps_shared / rps:.3f} "
            f"| {_median(plain, 'p50_ms'):.3f} / {_median(shared, 'p50_ms'):.3f} "
            f"| {_median(plain, 'cpu_us_per_req'):.0f} / {_median(shared, 'cpu_us_per_req'):.0f} "
            f"| {_median(shared, 'redis_per_req'):.4f} |"
        )
    return "\n".join(lines)
