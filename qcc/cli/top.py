"""``qcc top``: a live view of the running proxy until Ctrl-C."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.live import Live

from qcc.cli import render
from qcc.cli.health import accounts_table


def _rates(
    previous: dict[str, Any] | None, current: dict[str, Any], elapsed: float
) -> dict[str, float]:
    if previous is None or elapsed <= 0:
        return {}
    before = {a["name"]: a["requests"] for a in previous["accounts"]}
    return {
        a["name"]: max(0.0, (a["requests"] - before.get(a["name"], a["requests"])) / elapsed)
        for a in current["accounts"]
    }


def top(
    interval: Annotated[float, typer.Option("--interval", help="Seconds between refreshes.")] = 1.0,
    iterations: Annotated[
        int, typer.Option("--iterations", help="Stop after N refreshes (0: until Ctrl-C).")
    ] = 0,
) -> None:
    """Live view of the running proxy: per account state, requests/s, latency, errors, tokens.

    Refreshes in place until Ctrl-C.

    \b
    Example:
      qcc top --interval 2
    """
    from qcc.cli.proxy import access_key, proxy_stats
    from qcc.proxy.record import require_record

    if interval <= 0:
        raise typer.BadParameter("must be > 0", param_hint="--interval")
    record = require_record()
    key = access_key(record)
    previous: dict[str, Any] | None = None
    last = time.monotonic()
    count = 0
    try:
        with Live(console=render.console(), auto_refresh=False) as live:
            while True:
                doc = proxy_stats(record, key)
                now = time.monotonic()
                rates = _rates(previous, doc, now - last)
                previous, last = doc, now
                live.update(accounts_table(doc, f"proxy {record.url}", rates), refresh=True)
                count += 1
                if iterations and count >= iterations:
                    return
                time.sleep(interval)
    except KeyboardInterrupt:
        return
