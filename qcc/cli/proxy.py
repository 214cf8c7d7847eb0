"""``qcc proxy ...``: run the proxy (foreground or detached), stop it, see its status and logs.

Starting is a service shared with ``qcc run``: :mod:`qcc.cli.proxy_start`.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from pathlib import Path
from typing import Annotated, Any

import typer

from qcc.cli import render
from qcc.errors import ProxyError, QccError
from qcc.proxy.record import (
    ProxyRecord,
    fetch_json,
    pid_alive,
    read_record,
    remove_record,
    require_record,
    terminate,
)

app = typer.Typer(
    help="Run the local proxy that Claude Code talks to. Reads QCC_CONFIG_DIR and QCC_STATE_DIR.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

ClusterOpt = Annotated[
    str | None,
    typer.Option(
        "--cluster", "-c", metavar="C", help="Cluster to serve (default: default_cluster)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


@app.command("start")
def start(
    ctx: typer.Context,
    cluster: ClusterOpt = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host", metavar="H", help="Address to listen on (default: proxy.host, 127.0.0.1)."
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", "-p", metavar="P", help="Port (default: proxy.port, 7860)."),
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run in the background; return once it answers.")
    ] = False,
    log_stderr: Annotated[bool, typer.Option("--log-stderr/--no-log-stderr", hidden=True)] = True,
) -> None:
    """Start the proxy for one cluster, and print the environment that points clients at it.

    One proxy runs per state dir (QCC_STATE_DIR): while one runs, on any port, another start
    is refused with a line naming it. In the foreground it logs one line per request to stderr
    and to the log file, and stops on Ctrl-C or SIGTERM after letting in-flight requests finish
    (proxy.drain_timeout). Detached, it logs to the log file only ('qcc proxy logs').
    Listening beyond loopback requires proxy.access_key. It runs on uvloop when installed
    (not on Windows); QCC_LOOP=asyncio forces asyncio's own loop.

    \b
    Example:
      qcc proxy start --cluster prod
      qcc proxy start --detach && eval "$(qcc claude env)"
    """
    from qcc.cli.proxy_start import start_proxy

    start_proxy(ctx.obj, cluster, host, port, detach=detach, log_stderr=log_stderr)


@app.command("stop")
def stop(
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the drain.")
    ] = 40.0,
) -> None:
    """Stop the running proxy gracefully (in-flight requests finish first).

    \b
    Example:
      qcc proxy stop
    """
    record = require_record()
    terminate(record.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(record.pid):
            break
        time.sleep(0.05)
    else:
        raise ProxyError(f"the proxy (pid {record.pid}) did not stop within {timeout:g}s")
    remove_record(record.pid)
    render.success(f"qcc proxy (pid {record.pid}) stopped")


def proxy_stats(record: ProxyRecord, key: str | None = None) -> dict[str, Any]:
    """``/accounts/stats`` of the running proxy, with its access key (read from its config
    unless given)."""
    key = key if key is not None else access_key(record)
    status, doc = fetch_json(record.url + "/accounts/stats", key)
    if status != 200 or not isinstance(doc, dict):
        raise ProxyError(f"the proxy at {record.url} answered HTTP {status} to /accounts/stats")
    return doc


def access_key(record: ProxyRecord) -> str | None:
    from qcc.config.store import ConfigStore

    try:
        return ConfigStore(Path(record.config_path)).load().proxy.access_key
    except QccError:
        return None


@app.command("status")
def status(json_out: JsonOpt = False) -> None:
    """Is a proxy running? Where, for which cluster, since when, how many requests.

    Exit code 0 when running, 1 when not.

    \b
    Example:
      qcc proxy status --json
    """
    record = read_record()
    if record is None:
        if json_out:
            render.print_json({"running": False})
        raise ProxyError("no qcc proxy is running; start one with 'qcc proxy start'")
    doc = proxy_stats(record)
    summary = {
        "running": True,
        "pid": record.pid,
        "url": record.url,
        "cluster": record.cluster,
        "uptime_s": doc.get("uptime_s"),
        "requests": doc.get("requests"),
        "loop": doc.get("loop"),
        "total_accounts": doc.get("total_accounts"),
        "available_accounts": doc.get("available_accounts"),
        "log_file": record.log_file,
        "config_path": record.config_path,
    }
    if json_out:
        render.print_json(summary)
        return
    out = render.console()
    out.print(f"qcc proxy running (pid {record.pid}) at {record.url}")
    out.print(f"  cluster   {record.cluster} ({doc.get('strategy')})")
    out.print(f"  uptime    {_duration(float(doc.get('uptime_s') or 0))}")
    out.print(f"  requests  {doc.get('requests')}")
    out.print(f"  loop      {doc.get('loop') or 'unknown'}")
    out.print(f"  accounts  {doc.get('available_accounts')}/{doc.get('total_accounts')} available")
    out.print(f"  log       {record.log_file}")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


@app.command("logs")
def logs(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many recent lines.")] = 50,
) -> None:
    """Show the proxy's log (one line per request, plus state changes).

    \b
    Example:
      qcc proxy logs -f
    """
    from qcc.logs import log_file

    path = log_file()
    if not path.exists():
        raise ProxyError(f"no log yet at {path}; start the proxy with 'qcc proxy start'")
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for line in deque(handle, maxlen=max(lines, 0)):
            sys.stdout.write(line)
        sys.stdout.flush()
        if not follow:
            return
        try:
            while True:
                line = handle.readline()
                if line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                    continue
                time.sleep(0.2)
                if _rotated(path, handle.tell()):
                    handle.close()
                    handle = path.open("r", encoding="utf-8", errors="replace")
        except KeyboardInterrupt:
            return


def _rotated(path: Path, position: int) -> bool:
    try:
        return path.stat().st_size < position
    except OSError:
        return False
