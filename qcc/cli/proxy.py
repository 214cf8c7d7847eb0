"""``qcc proxy ...``: run the proxy (foreground or detached), stop it, see its status and logs."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qcc.cli import render
from qcc.errors import ProxyError, QccError
from qcc.proxy.record import (
    ProxyRecord,
    already_running,
    fetch_json,
    pid_alive,
    read_record,
    remove_record,
    require_record,
    terminate,
)

if TYPE_CHECKING:
    from rich.console import Console

    from qcc.cli.main import CliState
    from qcc.config.model import Cluster
    from qcc.proxy.runtime import Runtime

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
DETACH_WAIT = 15.0


def _check_port(port: int | None) -> None:
    if port is not None and not 1 <= port <= 65535:
        raise QccError(f"--port: must be an integer from 1 to 65535, got {port}")


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
    Listening beyond loopback requires proxy.access_key.

    \b
    Example:
      qcc proxy start --cluster prod
      qcc proxy start --detach && eval "$(qcc claude env)"
    """
    start_proxy(ctx.obj, cluster, host, port, detach=detach, log_stderr=log_stderr)


def start_proxy(
    state: CliState,
    cluster: str | None,
    host: str | None,
    port: int | None,
    *,
    detach: bool,
    log_stderr: bool = True,
    out: Console | None = None,
) -> None:
    """Start a proxy (the service behind ``qcc proxy start`` and ``qcc run``).

    Human messages go to ``out`` (stdout by default; ``qcc run`` passes stderr so the command
    it runs owns stdout). Warnings go to stderr.
    """
    _check_port(port)
    config = state.store().load()
    chosen = config.cluster(cluster)
    if not chosen.accounts:
        raise QccError(
            f"cluster '{chosen.name}' has no accounts; add one with "
            f"'qcc account add NAME --cluster {chosen.name} --base-url URL --api-key-env VAR'"
        )
    host = host or config.proxy.host
    port = port or config.proxy.port
    running = read_record()
    if running is not None:
        raise ProxyError(already_running(running))
    problems = serving_problems(chosen)
    if problems:
        render.note(
            f"qcc: warning: no account of cluster '{chosen.name}' can serve requests "
            f"({'; '.join(problems)}); the proxy answers 503 until one can"
        )
    if detach:
        _start_detached(
            state, chosen.name, host, port, out or render.console(), show_env=out is None
        )
        return
    _serve_foreground(state, chosen.name, host, port, log_stderr)


def serving_problems(cluster: Cluster) -> list[str]:
    """Why no account of ``cluster`` can serve (one reason per account), or [] if one can."""
    from qcc.errors import CredentialError
    from qcc.redact import scrub

    reasons = []
    for account in cluster.accounts:
        if not account.enabled:
            reasons.append(
                f"{account.name}: disabled, enable it with "
                f"'qcc account enable {account.name} --cluster {cluster.name}'"
            )
            continue
        try:
            account.credential.header()
        except CredentialError as exc:
            env_value = (
                os.environ.get(account.credential.value) if account.credential.from_env else None
            )
            reasons.append(f"{account.name}: {scrub(str(exc), [env_value])}")
            continue
        return []
    return reasons


def environment_lines(url: str, access_key: str | None) -> list[str]:
    """What to tell the user once a proxy runs: both variables, the key masked, and the
    commands that set them (``qcc claude env`` prints the key in full, for ``eval``)."""
    from qcc.claude_settings import BASE_URL_KEY, PLACEHOLDER_TOKEN, TOKEN_KEY
    from qcc.config.model import mask_secret

    if access_key:
        token = f"{TOKEN_KEY}={mask_secret(access_key)}  (your proxy.access_key, masked here)"
    else:
        token = f"{TOKEN_KEY}={PLACEHOLDER_TOKEN}  (any value: qcc sends each account's own key)"
    return [
        "  point Claude Code (or any Anthropic SDK) at it with:",
        f"    {BASE_URL_KEY}={url}",
        f"    {token}",
        '  in this shell: eval "$(qcc claude env)"   for good: qcc claude enable',
    ]


def _serve_foreground(
    state: CliState, cluster: str, host: str, port: int, log_stderr: bool = True
) -> None:
    from qcc import logs
    from qcc.proxy.record import client_url, ensure_state_dir, hold_lock
    from qcc.proxy.server import check_bind, run, serve

    store = state.store()
    config = store.load()
    check_bind(config, host)
    ensure_state_dir()  # 0700 before anything (log dir, lock, record) is created in it
    lock = hold_lock()  # one proxy per state dir; held until this process ends
    records: list[ProxyRecord] = []
    try:
        log_path = logs.setup(to_stderr=log_stderr)

        def announce(url: str, runtime: Runtime) -> None:
            record = ProxyRecord(
                pid=os.getpid(),
                url=url,
                host=host,
                port=port,
                cluster=cluster,
                config_path=str(store.path),
                log_file=str(log_path) if log_path else None,
                started_at=time.time(),
            )
            record.save()
            records.append(record)
            out = render.console()
            out.print(f"qcc proxy for cluster '{cluster}' listening on {url}")
            for line in environment_lines(client_url(host, port), config.proxy.access_key):
                out.print(line)
            sys.stdout.flush()

        try:
            run(lambda: serve(config, cluster, host, port, store=store, announce=announce))
        finally:
            if records:
                remove_record(records[0].pid)
            logs.shutdown()
    finally:
        lock.release()
    render.err_console().print("qcc proxy stopped")


def _start_detached(
    state: CliState, cluster: str, host: str, port: int, out: Console, show_env: bool
) -> None:
    from qcc.proxy.record import client_url, ensure_state_dir

    directory = ensure_state_dir()
    command = [
        sys.executable,
        "-m",
        "qcc",
        "--config-dir",
        str(state.config_path.parent),
        "proxy",
        "start",
        "--cluster",
        cluster,
        "--host",
        host,
        "--port",
        str(port),
        "--no-log-stderr",  # it logs to the rotating proxy.log only
    ]
    # The child's stderr is a private file that only ever holds a start-up failure (qcc's
    # one-line error): it is read if the child exits, and removed once the proxy answers.
    fd, err_name = tempfile.mkstemp(prefix="proxy-start-", suffix=".err", dir=directory)
    err_path = Path(err_name)
    try:
        with open(os.devnull, "rb") as devnull:
            process = subprocess.Popen(
                command,
                stdin=devnull,
                stdout=subprocess.DEVNULL,
                stderr=fd,
                start_new_session=True,
                close_fds=True,
            )
        os.close(fd)
        deadline = time.monotonic() + DETACH_WAIT
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                raise ProxyError(_last_error(err_path) or f"the proxy exited with code {code}")
            record = read_record()
            if record is not None and record.pid == process.pid:
                status, _ = fetch_json(record.url + "/health")
                if status in (200, 503):
                    out.print(
                        f"qcc proxy (pid {record.pid}) for cluster '{cluster}' "
                        f"running at {record.url}"
                    )
                    if show_env:
                        config = state.store().load()
                        for line in environment_lines(
                            client_url(host, port), config.proxy.access_key
                        ):
                            out.print(line)
                    render.note("logs: qcc proxy logs -f   stop: qcc proxy stop")
                    return
            time.sleep(0.1)
        terminate(process.pid)
        raise ProxyError(f"the proxy did not answer within {DETACH_WAIT:g}s; see 'qcc proxy logs'")
    finally:
        with contextlib.suppress(OSError):
            err_path.unlink()


def _last_error(path: Path) -> str | None:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("qcc: "):
            return line.removeprefix("qcc: ").removeprefix("error: ")
    return lines[-1] if lines else None


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
