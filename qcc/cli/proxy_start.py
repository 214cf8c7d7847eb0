"""Starting a proxy: the service behind ``qcc proxy start`` and ``qcc run``.

One proxy per state dir (the serving process holds ``proxy.lock``, see :mod:`qcc.proxy.record`).
In the foreground the process serves itself; detached, it starts ``qcc proxy start
--no-log-stderr`` in a new session, and returns once that child's record is written and its
``/health`` answers. Either way the user is told the complete environment to use.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from qcc.cli import render
from qcc.errors import ProxyError, QccError
from qcc.proxy.record import (
    ProxyRecord,
    already_running,
    fetch_json,
    read_record,
    remove_record,
    terminate,
)

if TYPE_CHECKING:
    from rich.console import Console

    from qcc.cli.main import CliState
    from qcc.config.model import Cluster
    from qcc.proxy.runtime import Runtime

DETACH_WAIT = 15.0


def _check_port(port: int | None) -> None:
    if port is not None and not 1 <= port <= 65535:
        raise QccError(f"--port: must be an integer from 1 to 65535, got {port}")


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


def environment_lines(url: str, access_key: str | None, member_keys: bool = False) -> list[str]:
    """What to tell the user once a proxy runs: both variables, the key masked, and the
    commands that set them (``qcc claude env`` prints the key in full, for ``eval``)."""
    from qcc.claude_env import BASE_URL_KEY, PLACEHOLDER_TOKEN, TOKEN_KEY
    from qcc.config.model import mask_secret

    if access_key:
        token = f"{TOKEN_KEY}={mask_secret(access_key)}  (your proxy.access_key, masked here)"
    elif member_keys:
        token = f"{TOKEN_KEY}=<a member key>  (this cluster has member keys: qcc key add NAME)"
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
    from qcc.proxy.loops import running as running_loop
    from qcc.proxy.record import client_url, ensure_state_dir, hold_lock
    from qcc.proxy.server import check_bind, run, serve

    store = state.store()
    config = store.load()
    check_bind(config, host, cluster=cluster)
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
            loop = running_loop()
            out.print(f"qcc proxy for cluster '{cluster}' on {loop}, listening on {url}")
            keys = bool(config.cluster(cluster).keys)
            for line in environment_lines(client_url(host, port), config.proxy.access_key, keys):
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
                            client_url(host, port),
                            config.proxy.access_key,
                            bool(config.cluster(cluster).keys),
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
