"""``qcc run -- CMD``: run a command (e.g. ``claude``) pointed at the proxy, started if needed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from qcc.errors import ProxyError, QccError

if TYPE_CHECKING:
    from qcc.cli.main import CliState

CLAUDE_NAMES = frozenset({"claude", "claude.exe", "claude.cmd"})
CLAUDE_INSTALL = "npm install -g @anthropic-ai/claude-code"
CLAUDE_DOCS = "https://docs.anthropic.com/en/docs/claude-code"


def run_command(
    ctx: typer.Context,
    command: Annotated[list[str], typer.Argument(metavar="-- CMD [ARGS...]", show_default=False)],
    cluster: Annotated[
        str | None,
        typer.Option("--cluster", "-c", metavar="C", help="Cluster if a proxy must be started."),
    ] = None,
) -> None:
    """Run CMD with ANTHROPIC_BASE_URL (and a token) pointing at the running proxy.

    If no proxy runs, one is started in the background first (qcc proxy start --detach);
    its messages go to stderr, so CMD's stdout stays its own (qcc run -- claude -p ... | jq).

    \b
    Example:
      qcc run -- claude
      qcc run --cluster cheap -- claude -p "explain this repo"
    """
    from qcc.claude_env import proxy_env
    from qcc.cli import render
    from qcc.cli.proxy_start import start_proxy
    from qcc.proxy.record import client_url, read_record

    state: CliState = ctx.obj
    if not command:
        raise QccError("nothing to run; usage: qcc run -- CMD [ARGS...]")
    executable = shutil.which(command[0])
    if executable is None:
        if os.path.basename(command[0]) in CLAUDE_NAMES:
            raise QccError(
                f"command not found: {command[0]}; Claude Code is not installed: install it with "
                f"'{CLAUDE_INSTALL}' (needs Node.js 18+; see {CLAUDE_DOCS})"
            )
        raise QccError(f"command not found: {command[0]}")
    record = read_record()
    if record is None:
        try:
            start_proxy(state, cluster, None, None, detach=True, out=render.err_console())
        except ProxyError:
            if read_record() is None:  # not a start that lost a race to another one
                raise
        record = read_record()
        if record is None:
            raise QccError("the proxy did not start; see 'qcc proxy logs'")
    config = state.store().load()
    env = dict(os.environ) | proxy_env(config, client_url(record.host, record.port))
    sys.stdout.flush()
    sys.stderr.flush()
    if sys.platform == "win32":  # pragma: no cover - no exec there
        raise typer.Exit(subprocess.call([executable, *command[1:]], env=env))
    os.execve(executable, command, env)
