"""``qcc usage``: tokens and cost per account, model, day or client key, from the usage store."""

from __future__ import annotations

import re
import time
from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer

from qcc.cli import render

if TYPE_CHECKING:
    from qcc.cli.main import CliState
    from qcc.usage.report import Report, ReportRow

SINCE_HELP = "Start of the period: a number of days (7d: today and the 6 before) or a date."
_DAYS = re.compile(r"^(\d{1,5})d$")


def since_day(value: str, wall_now: float) -> str:
    """``7d`` -> the local date 6 days ago; ``2026-11-01`` -> itself. Raises BadParameter."""
    from qcc.usage.budget import days_back

    text = value.strip().lower()
    match = _DAYS.match(text)
    if match and int(match.group(1)) > 0:
        return days_back(wall_now, int(match.group(1)))
    if text == "today":
        return days_back(wall_now, 1)
    try:
        return date.fromisoformat(text).isoformat() if len(text) == 10 else _bad(value)
    except ValueError:
        return _bad(value)


def _bad(value: str) -> str:
    raise typer.BadParameter(
        f"'{value}' is neither a number of days like 7d nor a date like 2026-11-01",
        param_hint="--since",
    )


def _count(n: int) -> str:
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    if n < 1_000_000_000:
        return f"{n / 1_000_000:.1f}M"
    return f"{n / 1_000_000_000:.2f}G"


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def _cost(row: ReportRow) -> str:
    if row.cost_usd is None:
        return "price unknown" if row.requests else "-"
    return _usd(row.cost_usd) + (" *" if row.unpriced else "")


def _cells(row: ReportRow) -> list[str]:
    t = row.tokens
    return [
        row.name or "-",
        str(row.requests),
        _count(t.input),
        _count(t.output),
        _count(t.cache_write),
        _count(t.cache_read),
        _cost(row),
    ]


def _render(report: Report) -> None:
    period = f"since {report.since_day}" if report.since_day else "all time"
    where = f"cluster {report.cluster}" if report.cluster else "all clusters"
    table = render.table(
        f"usage by {report.by}, {where}, {period}",
        [report.by, "req", "input", "output", "cache wr", "cache rd", "cost"],
    )
    for column in table.columns[1:]:
        column.justify = "right"
        column.no_wrap = True  # numbers never break (narrow terminals get one block per row)
    for row in report.rows:
        table.add_row(*_cells(row))
    table.add_section()
    table.add_row(*_cells(report.total))
    out = render.console()
    out.print(table)
    total = report.total
    share = total.cache_read_share
    lines = []
    if share is not None:
        saved = f", saving {_usd(total.saved_usd)}" if total.saved_usd is not None else ""
        lines.append(f"cache reads: {share:.0%} of prompt tokens{saved}")
    if total.unpriced:
        lines.append(f"* plus {total.unpriced} requests of models with no known price;")
        lines.append('  price them with [pricing."model-prefix"] in config.toml')
    if report.prices_as_of:
        lines.append(f"list prices as of {report.prices_as_of}")
    for line in lines:
        out.print(line)


def usage(
    ctx: typer.Context,
    cluster: Annotated[
        str | None, typer.Option("--cluster", help="Only this cluster (default: all).")
    ] = None,
    since: Annotated[str, typer.Option("--since", help=SINCE_HELP)] = "30d",
    by: Annotated[
        str, typer.Option("--by", help="Group rows by account, model, day or key.")
    ] = "account",
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Tokens and cost per account, model, day or client key, from the usage records.

    Works with or without a running proxy: it reads the usage store in the state dir. Cost uses
    the price of each model when the request was made; a model with no known price shows its
    tokens and "price unknown".

    \b
    Example:
      qcc usage --since 7d --by model
      qcc usage --cluster prod --since 2026-11-01 --json

    \b
    Environment:
      QCC_STATE_DIR  where the usage records are (usage.sqlite3)
    """
    from qcc.usage.pricing import price_table
    from qcc.usage.report import GROUPINGS, build_report
    from qcc.usage.store import UsageStore

    if by not in GROUPINGS:
        raise typer.BadParameter(f"must be one of: {', '.join(GROUPINGS)}", param_hint="--by")
    start = since_day(since, time.time())
    state: CliState = ctx.obj
    prices = price_table(state.store().load().pricing)
    report = build_report(UsageStore(), prices, start, None, cluster, by)
    if json_out:
        render.print_json(report.as_dict())
        return
    if not report.rows:
        render.note(f"no usage recorded since {start}; the proxy records it as requests pass")
    _render(report)
