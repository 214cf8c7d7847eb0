"""``qcc cluster ...``: create, list, show, remove clusters and pick the default one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from qcc.cli import render
from qcc.config import ops
from qcc.config.model import STRATEGIES

if TYPE_CHECKING:
    from qcc.cli.main import CliState

app = typer.Typer(
    help="Manage clusters (named groups of accounts). Reads QCC_CONFIG_DIR.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", show_default=False, help="Cluster name.")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout instead of a table.")
]


@app.command("add")
def add(
    ctx: typer.Context,
    name: NameArg,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            "-s",
            metavar="S",
            help=f"How requests are spread: {', '.join(STRATEGIES)}.",
        ),
    ] = "weighted",
    sticky: Annotated[
        bool,
        typer.Option(
            "--sticky/--no-sticky",
            help="Keep one conversation on one account while it is healthy.",
        ),
    ] = True,
) -> None:
    """Create a cluster. The first cluster becomes the default one.

    Reads QCC_CONFIG_DIR (or --config-dir) to find config.toml.

    \b
    Example:
      qcc cluster add prod --strategy priority --no-sticky
    """
    state: CliState = ctx.obj
    ops.check_strategy(strategy)
    with state.store().edit() as doc:
        became_default = ops.add_cluster(doc, name, strategy=strategy, sticky=sticky)
    extra = "; it is the default cluster" if became_default else ""
    render.success(
        f"Added cluster '{name}' (strategy {strategy}, sticky {render.yes_no(sticky)}){extra}."
    )


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List clusters (* marks the default).

    Shows each cluster's strategy, stickiness and enabled/total accounts.

    Reads QCC_CONFIG_DIR (or --config-dir) to find config.toml.

    \b
    Example:
      qcc cluster list
      qcc cluster list --json
    """
    state: CliState = ctx.obj
    config = state.store().load()
    clusters = list(config.clusters.values())
    if as_json:
        render.print_json(
            {
                "default_cluster": config.default_cluster,
                "clusters": [render.cluster_summary(config, c) for c in clusters],
            }
        )
        return
    if not clusters:
        render.note("No clusters yet; create one with 'qcc cluster add NAME'.")
        return
    out = render.table(None, ["default", "name", "strategy", "sticky", "accounts"])
    for cluster in clusters:
        counts = render.account_counts(cluster)
        out.add_row(
            "*" if cluster.name == config.default_cluster else "",
            cluster.name,
            cluster.strategy,
            render.yes_no(cluster.sticky),
            f"{counts['enabled']}/{counts['total']} enabled",
        )
    render.console().print(out)


@app.command("show")
def show(ctx: typer.Context, name: NameArg, as_json: JsonOpt = False) -> None:
    """Show a cluster and its accounts (credentials masked).

    Reads QCC_CONFIG_DIR (or --config-dir) to find config.toml.

    \b
    Example:
      qcc cluster show prod
      qcc cluster show prod --json
    """
    state: CliState = ctx.obj
    config = state.store().load()
    cluster = config.cluster(name)
    if as_json:
        render.print_json(render.cluster_dict(config, cluster))
        return
    default = " (default)" if config.default_cluster == cluster.name else ""
    out = render.console()
    out.print(f"cluster {cluster.name}{default}")
    out.print(f"strategy: {cluster.strategy}, sticky: {render.yes_no(cluster.sticky)}")
    if not cluster.accounts:
        render.note(
            f"No accounts yet; add one with 'qcc account add NAME --cluster {cluster.name} "
            "--base-url URL --api-key-env VAR'."
        )
        return
    accounts = render.table(None, render.ACCOUNT_COLUMNS[1:])
    for account in cluster.accounts:
        accounts.add_row(*render.account_row(cluster.name, account)[1:])
    out.print(accounts)


@app.command("remove")
def remove(
    ctx: typer.Context,
    name: NameArg,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before removing its accounts.")
    ] = False,
) -> None:
    """Remove a cluster and its accounts.

    Asks first when the cluster has accounts and stdin is a terminal (skip with --yes);
    never asks when stdin is not a terminal. Reads QCC_CONFIG_DIR (or --config-dir).

    \b
    Example:
      qcc cluster remove staging --yes
    """
    state: CliState = ctx.obj
    store = state.store()
    cluster = store.load().cluster(name)
    count = len(cluster.accounts)
    if count and not yes and render.stdin_is_tty():
        question = f"Remove cluster '{name}' and its {count} account(s)?"
        if not typer.confirm(question, default=False, err=True):
            render.note("Nothing removed.")
            raise typer.Exit(1)
    with store.edit() as doc:
        was_default = doc.get("default_cluster") == name
        ops.remove_cluster(doc, name)
    message = f"Removed cluster '{name}' and its {count} account(s)."
    if was_default:
        message += " There is no default cluster now; set one with 'qcc cluster default NAME'."
    render.success(message)


@app.command("default")
def default(ctx: typer.Context, name: NameArg) -> None:
    """Set the default cluster.

    Commands given no --cluster use the default cluster.

    Reads QCC_CONFIG_DIR (or --config-dir) to find config.toml.

    \b
    Example:
      qcc cluster default prod
    """
    state: CliState = ctx.obj
    with state.store().edit() as doc:
        ops.set_default_cluster(doc, name)
    render.success(f"Default cluster is now '{name}'.")
