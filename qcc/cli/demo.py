"""``qcc demo``: see failover happen, offline, without touching your config."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.text import Text

from qcc.cli import render
from qcc.cli.health import accounts_table

NEXT_STEPS = """\
That was qcc in front of three built-in fake accounts. To use it for real:
  qcc cluster add prod
  qcc account add main --cluster prod --base-url https://api.anthropic.com \\
      --api-key-env ANTHROPIC_API_KEY
  qcc account add relay --cluster prod --base-url https://relay.example.com \\
      --auth-token-env RELAY_TOKEN --priority 1
  qcc proxy start --detach
  qcc run -- claude          # or: eval "$(qcc claude env)"; claude
Your config was not touched by this demo."""


def demo(
    requests: Annotated[
        int, typer.Option("--requests", "-n", help="How many requests to send.")
    ] = 24,
    quick: Annotated[
        bool, typer.Option("--quick", help="No pauses between requests (what CI uses).")
    ] = False,
) -> None:
    """Offline demo: three fake accounts (steady, slow, flaky), a temporary cluster and the
    real proxy; a burst of streaming requests shows accounts' states and failovers live.

    It never reads or writes your config. It finishes by itself; with stdin not a terminal it
    runs without pauses.

    \b
    Example:
      qcc demo
      qcc demo --quick -n 10
    """
    from qcc.demo import DemoReport, intro, run_demo

    if requests < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--requests")
    quiet = logging.getLogger("qcc")  # the demo shows failovers itself
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    interactive = render.stdin_is_tty() and render.console().is_terminal and not quick
    pace = 0.35 if interactive else 0.0
    out = render.console()
    for line in intro(requests):
        out.print(line)

    def view(report: DemoReport) -> Group:
        table = accounts_table(report.stats, f"demo proxy {report.url}")
        lines = [Text(line) for line in report.events[-8:]]
        summary = Text(f"sent {report.sent}, answered {report.ok}, failed {report.failed}")
        return Group(table, *lines, summary)

    if interactive:
        with Live(console=out, refresh_per_second=8, transient=False) as live:
            report = asyncio.run(run_demo(requests, pace, lambda r: live.update(view(r))))
    else:
        seen = 0

        def plain(r: DemoReport) -> None:
            nonlocal seen
            for line in r.events[seen:]:
                out.print(line)
            seen = len(r.events)

        report = asyncio.run(run_demo(requests, pace, plain))
        out.print(accounts_table(report.stats, f"demo proxy {report.url}"))
        out.print(f"sent {report.sent}, answered {report.ok}, failed {report.failed}")
    out.print()
    out.print(NEXT_STEPS)
