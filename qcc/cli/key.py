"""``qcc key ...``: member keys, one client key per team member, with optional limits.

A member key is printed once by ``qcc key add``; ``config.toml`` keeps only its salted hash
(:mod:`qcc.config.keys`). When a cluster has member keys, the proxy serving it wants one from
every client (or ``proxy.access_key``) and attributes usage to it (``qcc usage --by key``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qcc.cli import render
from qcc.config import ops

if TYPE_CHECKING:
    from qcc.cli.main import CliState
    from qcc.config.model import Cluster, MemberKey

app = typer.Typer(
    help="Manage member keys (one client key per team member). Reads QCC_CONFIG_DIR.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NameArg = Annotated[
    str, typer.Argument(metavar="NAME", show_default=False, help="Member (key) name.")
]
ClusterOpt = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        "-c",
        metavar="C",
        show_default=False,
        help="Cluster of the key. Default: the default cluster (or the only one).",
    ),
]


def _cluster(state: CliState, name: str | None) -> Cluster:
    return state.store().load().cluster(name)


@app.command("add")
def add(
    ctx: typer.Context,
    name: NameArg,
    cluster: ClusterOpt = None,
    budget_daily_usd: Annotated[
        float | None,
        typer.Option(
            "--budget-daily-usd",
            metavar="X",
            show_default=False,
            help="Most this member may spend per local day, in USD (then 429 until midnight).",
        ),
    ] = None,
    rpm: Annotated[
        int | None,
        typer.Option(
            "--rpm",
            metavar="N",
            show_default=False,
            help="Most requests per minute for this member (then 429 with retry-after).",
        ),
    ] = None,
) -> None:
    """Create a member key and print it once on stdout.

    qcc keeps only a salted hash of it in config.toml: copy the key now and hand it to the
    member, who sets it as ANTHROPIC_AUTH_TOKEN (or ANTHROPIC_API_KEY). From the first member
    key on, the proxy serving the cluster refuses clients without a member key (or
    proxy.access_key); a running proxy picks the change up within a second.

    Reads QCC_CONFIG_DIR (or --config-dir) to find config.toml.

    \b
    Example:
      qcc key add alice --cluster team --rpm 60 --budget-daily-usd 20
      KEY=$(qcc key add bob)   # stdout holds only the key
    """
    from qcc.config.keys import new_key, stored_form

    state: CliState = ctx.obj
    target = _cluster(state, cluster)
    key = new_key()
    with state.store().edit() as doc:
        ops.add_member_key(doc, target.name, name, stored_form(key), rpm, budget_daily_usd)
    typer.echo(key)
    render.success(
        f"Added member key '{name}' to cluster '{target.name}'. It is shown only this once: "
        "qcc keeps just its hash."
    )


def _limits(key: MemberKey) -> tuple[str, str]:
    rpm = "-" if key.rpm is None else str(key.rpm)
    budget = "-" if key.budget_daily_usd is None else f"${key.budget_daily_usd:g}"
    return rpm, budget


def key_dict(cluster: str, key: MemberKey, spent: float | None) -> dict[str, Any]:
    """What ``qcc key list --json`` shows of a key: never its hash."""
    return {
        "cluster": cluster,
        "name": key.name,
        "enabled": key.enabled,
        "rpm": key.rpm,
        "budget_daily_usd": key.budget_daily_usd,
        "spend_today_usd": spent,
    }


@app.command("list")
def list_(
    ctx: typer.Context,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            "-c",
            metavar="C",
            show_default=False,
            help="Only this cluster. Default: every cluster.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout instead of a table.")
    ] = False,
) -> None:
    """List member keys: name, state, limits and spend today (never a key or its hash).

    Reads QCC_CONFIG_DIR (or --config-dir); spend today comes from the usage records in
    QCC_STATE_DIR, as this machine's proxy wrote them (about a second behind).

    \b
    Example:
      qcc key list --cluster team
      qcc key list --json
    """
    from qcc.usage.budget import day_start
    from qcc.usage.store import UsageStore

    state: CliState = ctx.obj
    config = state.store().load()
    clusters = [config.cluster(cluster)] if cluster is not None else list(config.clusters.values())
    today = day_start(time.time())
    store = UsageStore()
    rows = []
    for c in clusters:
        spent = store.member_spend(c.name, today) if c.keys else {}
        rows += [(c.name, key, spent.get(key.name, 0.0)) for key in c.keys]
    if as_json:
        render.print_json({"keys": [key_dict(c, k, s) for c, k, s in rows]})
        return
    if not rows:
        render.note("No member keys yet; add one with 'qcc key add NAME'.")
        return
    out = render.table(None, ["cluster", "name", "state", "rpm", "budget/day", "spent today"])
    for cluster_name, key, spent_today in rows:
        state_word = "enabled" if key.enabled else "disabled"
        out.add_row(cluster_name, key.name, state_word, *_limits(key), f"${spent_today:.2f}")
    render.console().print(out)


@app.command("remove")
def remove(ctx: typer.Context, name: NameArg, cluster: ClusterOpt = None) -> None:
    """Remove a member key: the proxy refuses it from the next request on.

    Its recorded usage stays (qcc usage --by key). Reads QCC_CONFIG_DIR (or --config-dir).

    \b
    Example:
      qcc key remove bob --cluster team
    """
    state: CliState = ctx.obj
    cluster_name = _cluster(state, cluster).name
    with state.store().edit() as doc:
        ops.remove_member_key(doc, cluster_name, name)
    render.success(f"Removed member key '{name}' from cluster '{cluster_name}'.")


def _set_enabled(ctx: typer.Context, name: str, cluster: str | None, enabled: bool) -> None:
    state: CliState = ctx.obj
    cluster_name = _cluster(state, cluster).name
    with state.store().edit() as doc:
        ops.set_member_key_enabled(doc, cluster_name, name, enabled)
    word = "enabled" if enabled else "disabled"
    render.success(f"Member key '{name}' in cluster '{cluster_name}' is {word}.")


@app.command("disable")
def disable(ctx: typer.Context, name: NameArg, cluster: ClusterOpt = None) -> None:
    """Refuse a member key (401) without deleting it. Reads QCC_CONFIG_DIR (or --config-dir).

    \b
    Example:
      qcc key disable bob --cluster team
    """
    _set_enabled(ctx, name, cluster, False)


@app.command("enable")
def enable(ctx: typer.Context, name: NameArg, cluster: ClusterOpt = None) -> None:
    """Accept a disabled member key again. Reads QCC_CONFIG_DIR (or --config-dir).

    \b
    Example:
      qcc key enable bob --cluster team
    """
    _set_enabled(ctx, name, cluster, True)
