"""``qcc health``: the state of every account, from the running proxy or by probing now."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qcc.cli import render
from qcc.errors import QccError

if TYPE_CHECKING:
    from qcc.cli.main import CliState
    from qcc.config.model import Account, Config
    from qcc.health.probe import ProbeResult

app = typer.Typer(
    help="See which accounts are healthy. 'qcc health' alone is 'qcc health status'.",
    invoke_without_command=True,
    rich_markup_mode=None,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


class Unhealthy(QccError):
    """Some account failed its check (exit 1; the table already said which)."""

    exit_code = 1


@app.callback()
def default(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """See which accounts are healthy. 'qcc health [--json]' is 'qcc health status [--json]'.

    \b
    Example:
      qcc health            # live state from the running proxy
      qcc health --json     # the same, as one JSON document
      qcc health check      # probe every account now, no proxy needed
    """
    if ctx.invoked_subcommand is None:
        status(ctx, json_out=json_out)


def _json_wanted(ctx: typer.Context, json_out: bool) -> bool:
    """``--json`` given to the subcommand or to ``qcc health`` itself."""
    parent = ctx.parent
    return json_out or bool(parent is not None and parent.params.get("json_out"))


def _ago(wall: float | None, now: float) -> str:
    if wall is None:
        return "-"
    delta = wall - now
    if abs(delta) < 1:
        return "now"
    span = f"{abs(delta):.0f}s" if abs(delta) < 120 else f"{abs(delta) / 60:.0f}m"
    return f"in {span}" if delta > 0 else f"{span} ago"


def _tokens(usage: dict[str, int]) -> str:
    return f"{usage.get('input_tokens', 0)}/{usage.get('output_tokens', 0)}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _headroom(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _spend(acc: dict[str, Any]) -> str:
    """Today's spend, against the daily budget (else the month's, against the monthly one)."""
    today, month = acc.get("spend_today_usd") or 0.0, acc.get("spend_month_usd") or 0.0
    daily, monthly = acc.get("budget_daily_usd"), acc.get("budget_monthly_usd")
    if daily is not None:
        return f"${today:.2f}/{daily:g}"
    if monthly is not None:
        return f"${month:.2f}/{monthly:g} mo"
    return f"${today:.2f}"


def accounts_table(doc: dict[str, Any], where: str, rates: dict[str, float] | None = None) -> Any:
    """The per-account table of ``qcc health``, ``qcc top`` and ``qcc demo``."""
    now = time.time()
    title = (
        f"cluster {doc['cluster']} ({doc['strategy']}): "
        f"{doc['available_accounts']}/{doc['total_accounts']} available, "
        f"{doc['requests']} requests, {where}"
    )
    columns = ["account", "state", "reason", "since", "until", "requests", "failures"]
    if rates is not None:
        columns.append("req/s")
    columns += ["p50 ms", "tokens in/out", "cache read", "headroom", "spend", "last error"]
    table = render.table(title, columns)
    for acc in doc["accounts"]:
        row = [
            acc["name"],
            acc["state"],
            acc["reason"] or "-",
            _ago(acc["since"], now),
            _ago(acc["until"], now),
            str(acc["requests"]),
            str(acc["failures"]),
        ]
        if rates is not None:
            row.append(f"{rates.get(acc['name'], 0.0):.1f}")
        row += [
            "-" if acc["p50_ms"] is None else f"{acc['p50_ms']:.0f}",
            _tokens(acc["usage"]),
            _share(acc.get("cache_read_share")),
            _headroom(acc.get("headroom")),
            _spend(acc),
            acc["last_error"] or "-",
        ]
        table.add_row(*row)
    return table


@app.command("status")
def status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Live state of every account, from the running proxy.

    Exit code 1 (with one line) when no proxy runs.

    \b
    Example:
      qcc health status --json | jq '.accounts[] | {name, state}'
    """
    from qcc.cli.proxy import proxy_stats
    from qcc.proxy.record import require_record

    json_out = _json_wanted(ctx, json_out)
    record = require_record()
    doc = proxy_stats(record)
    if json_out:
        render.print_json(doc)
        return
    render.console().print(accounts_table(doc, f"proxy {record.url}"))
    shared = shared_line(doc)
    if shared is not None:
        render.console().print(shared)


def shared_line(doc: dict[str, Any]) -> str | None:
    """With ``[shared]``: Redis ok/down and the live instances, this one marked."""
    shared = doc.get("shared")
    if not shared:
        return None
    instances = ", ".join(
        f"{i['id']}{' (this one)' if i['id'] == shared['instance'] else ''}"
        for i in shared["instances"]
    )
    return (
        f"shared via {shared['redis']}: {shared['state']}; "
        f"{len(shared['instances'])} live instance(s): {instances or '-'}"
    )


async def _check_all(config: Config, cluster: str, accounts: list[Account]) -> list[ProbeResult]:
    from qcc.credentials.command import COMMAND_TIMEOUT
    from qcc.credentials.keeper import source_for
    from qcc.errors import CredentialError
    from qcc.health.probe import ProbeResult, check_member
    from qcc.net.client import UpstreamClient
    from qcc.routing.classify import Outcome

    async def one(account: Account) -> ProbeResult:
        # A command is run, an OAuth2 token fetched, here and now: no proxy needed.
        source = source_for(account.credential, cluster, account.name)
        header = None
        if source is None:
            try:
                header = account.credential.header()
            except CredentialError as exc:
                return ProbeResult(Outcome.AUTH_FAILED, str(exc))
        timeout = config.health.probe_timeout
        if source is not None and source.kind == "command":
            timeout += COMMAND_TIMEOUT  # the command's own bound comes first
        return await check_member(client, account, source, header, timeout)

    client = UpstreamClient()  # the proxy's own HTTP path: same proxies, same TLS
    try:
        return list(await asyncio.gather(*(one(a) for a in accounts)))
    finally:
        client.close()


@app.command("check")
def check(
    ctx: typer.Context,
    cluster: Annotated[
        str | None,
        typer.Option("--cluster", "-c", metavar="C", help="Cluster (default: default_cluster)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Probe every account of a cluster now; no proxy needed.

    Probes cost no tokens (count_tokens, else the models list) unless an account sets
    probe = "message". Exit code 0 when all are healthy, 1 when some are not, 2 on bad input.

    \b
    Example:
      qcc health check --cluster prod
    """
    state: CliState = ctx.obj
    json_out = _json_wanted(ctx, json_out)
    config = state.store().load()
    chosen = config.cluster(cluster)
    accounts = [a for a in chosen.accounts if a.enabled]
    results = asyncio.run(_check_all(config, chosen.name, accounts))
    rows: list[dict[str, Any]] = []
    for account, result in zip(accounts, results, strict=True):
        rows.append(
            {
                "name": account.name,
                "base_url": account.base_url,
                "healthy": result.ok,
                "outcome": result.outcome.value,
                "status": result.status,
                "latency_ms": None if result.latency is None else round(result.latency * 1000, 1),
                "detail": result.detail,
            }
        )
    skipped = [a.name for a in chosen.accounts if not a.enabled]
    healthy = all(row["healthy"] for row in rows)
    if json_out:
        render.print_json(
            {"cluster": chosen.name, "healthy": healthy, "accounts": rows, "disabled": skipped}
        )
    else:
        table = render.table(
            f"cluster {chosen.name}: {sum(r['healthy'] for r in rows)}/{len(rows)} healthy",
            ["account", "healthy", "outcome", "latency ms", "detail"],
        )
        for row in rows:
            table.add_row(
                row["name"],
                "yes" if row["healthy"] else "NO",
                row["outcome"],
                "-" if row["latency_ms"] is None else f"{row['latency_ms']:.0f}",
                row["detail"],
            )
        render.console().print(table)
        if skipped:
            render.note(f"disabled, not checked: {', '.join(skipped)}")
    if not healthy:
        raise typer.Exit(1)
