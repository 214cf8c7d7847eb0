"""Starting, pinning, watching and stopping the benchmark's processes (Linux: taskset, /proc)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import tomlkit

BENCH = Path(__file__).resolve().parent
PROXY_CORE = "0"  # the proxy under test
LOAD_CORE = "1"  # upstream, wrk and the Python client
_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    url: str
    log: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid


def start(
    name: str,
    argv: list[str],
    core: str,
    log: Path,
    env: dict[str, str] | None = None,
    timeout: float = 20.0,
) -> Proc:
    """Start ``argv`` pinned to ``core``; return once it prints ``listening on URL``.

    stdout and stderr go to files (``log`` and ``log`` + ``.out``): a pipe nobody drains would
    block the process, and one closed early would break its next print.
    """
    out = log.with_suffix(".out")
    with open(log, "wb") as err, open(out, "wb") as stdout:
        popen = subprocess.Popen(
            pinned(core, argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=err, env=env
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and popen.poll() is None:
        seen = out.read_bytes()
        if b"listening on " in seen:
            url = seen.split(b"listening on ", 1)[1].split(b"\n", 1)[0].decode().strip()
            return Proc(name, popen, url, log)
        time.sleep(0.05)
    stop(Proc(name, popen, "", log))
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"{name} did not start: {out.read_text(errors='replace')}{tail}")


def stop(proc: Proc, timeout: float = 10.0) -> None:
    if proc.popen.poll() is None:
        proc.popen.send_signal(signal.SIGTERM)
        try:
            proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime: fields 14 and 15


def memory_mb(pid: int) -> dict[str, float]:
    """``rss`` (VmRSS) and ``peak`` (VmHWM) in MiB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key = "rss" if line.startswith("VmRSS") else "peak"
            out[key] = int(line.split()[1]) / 1024
    return out


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (``/proc/stat``, idle and iowait out)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / _TICK


def own_seconds(started: list[Proc]) -> float:
    """CPU seconds of this process, its finished children (wrk, clients) and ``started``."""
    times = os.times()
    own = times.user + times.system + times.children_user + times.children_system
    return own + sum(cpu_seconds(p.pid) for p in started if p.popen.poll() is None)


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, same user). False when not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def python_argv(script: str, *args: str) -> list[str]:
    return [sys.executable, str(BENCH / script), *args]


def start_upstream(workdir: Path) -> Proc:
    port = free_port()
    return start("upstream", python_argv("upstream.py", "--port", str(port)), LOAD_CORE,
                 workdir / "upstream.log")  # fmt: skip


def loop_env(loop: str) -> dict[str, str]:
    """The environment that puts a proxy (qcc or the pass-through) on ``loop``."""
    return os.environ | {"QCC_LOOP": loop}


def start_passthrough(workdir: Path, upstream: str, loop: str = "uvloop") -> Proc:
    port = free_port()
    argv = python_argv("passthrough.py", "--port", str(port), "--upstream", upstream)
    log = workdir / f"passthrough-{loop}.log"
    return start("pass-through", argv, PROXY_CORE, log, env=loop_env(loop))


def start_qcc(
    workdir: Path,
    upstream: str | list[str],
    accounts: int = 1,
    name: str = "qcc",
    *,
    loop: str = "uvloop",
    strategy: str | None = None,
    extra: dict[str, object] | None = None,
) -> Proc:
    """qcc for a one-cluster config whose accounts point at the bench upstream.

    ``upstream``: one base URL for ``accounts`` accounts, or one base URL per account (in
    priority order). Its stderr (one access-log line per request) goes to a file, as with
    ``--detach``.
    """
    label = f"{name}-{loop}"
    config_dir = workdir / f"{label}-config"
    state_dir = workdir / f"{label}-state"
    config_dir.mkdir()
    state_dir.mkdir()
    urls = [upstream] * accounts if isinstance(upstream, str) else upstream
    accounts_table = {
        f"acct{i}": {"base_url": url, "api_key": f"sk-bench-dummy-{i}"}
        for i, url in enumerate(urls, 1)
    }
    cluster: dict[str, object] = {"accounts": accounts_table}
    if strategy is not None:
        cluster["strategy"] = strategy
    config = {
        "default_cluster": "bench",
        "proxy": {"drain_timeout": 1.0},
        "clusters": {"bench": cluster},
    } | (extra or {})  # more top-level tables, e.g. [shared] (S7)
    path = config_dir / "config.toml"
    path.write_text(tomlkit.dumps(config))
    path.chmod(0o600)
    port = free_port()
    env = loop_env(loop) | {"QCC_STATE_DIR": str(state_dir), "QCC_CONFIG_DIR": str(config_dir)}
    argv = [sys.executable, "-m", "qcc", "--config-dir", str(config_dir), "proxy", "start"]
    argv += ["--port", str(port)]
    return start(name, argv, PROXY_CORE, workdir / f"{label}.stderr.log", env=env)
