"""``qcc account ...``: add, list, remove, enable and disable the accounts of a cluster.

Parsing add's options (the credential, weight, priority, model renames) is
:mod:`qcc.cli.account_options`'s job; ``account test`` and ``account show`` live in
:mod:`qcc.cli.account_test` and :mod:`qcc.cli.account_show`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import quote

import typer

from qcc.cli import account_show, account_test, render
from qcc.cli.account_options import (
    ClusterOpt,
    NameArg,
    credential_from_options,
    model_renames,
    non_negative,
    utf8,
    warn_unusable_env,
)
from qcc.config import ops
from qcc.errors import AlreadyExistsError, ConfigValidationError, CredentialError
from qcc.redact import looks_like_secret

if TYPE_CHECKING:
    from qcc.cli.main import CliState

app = typer.Typer(
    help="Manage accounts (endpoints with credentials). Reads QCC_CONFIG_DIR.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _cluster_name(state: CliState, cluster: str | None) -> str:
    return cluster if cluster is not None else state.store().load().cluster(None).name


@app.command("add")
def add(
    ctx: typer.Context,
    name: NameArg,
    base_url: Annotated[
        str,
        typer.Option(
            "--base-url",
            "-u",
            metavar="URL",
            show_default=False,
            help="Anthropic Messages API endpoint, e.g. https://api.anthropic.com.",
        ),
    ],
    cluster: ClusterOpt = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", metavar="KEY", show_default=False, help="Sent as x-api-key."),
    ] = None,
    auth_token: Annotated[
        str | None,
        typer.Option(
            "--auth-token",
            metavar="TOKEN",
            show_default=False,
            help="Sent as Authorization: Bearer.",
        ),
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            "--api-key-env",
            metavar="VAR",
            show_default=False,
            help="Name of an env var holding the API key, read when the proxy starts.",
        ),
    ] = None,
    auth_token_env: Annotated[
        str | None,
        typer.Option(
            "--auth-token-env",
            metavar="VAR",
            show_default=False,
            help="Name of an env var holding the bearer token.",
        ),
    ] = None,
    weight: Annotated[
        str, typer.Option("--weight", "-w", metavar="N", help="Share of traffic (>= 0).")
    ] = "1",
    priority: Annotated[
        str,
        typer.Option("--priority", "-p", metavar="N", help="Lower is preferred (>= 0)."),
    ] = "0",
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            metavar="FROM=TO",
            show_default=False,
            help="Rename a model for this account; repeat for more.",
        ),
    ] = None,
    api_key_command: Annotated[
        str | None,
        typer.Option(
            "--api-key-command",
            metavar="CMD",
            show_default=False,
            help="Shell command printing the API key (e.g. 'op read op://Private/anthropic/key'); "
            "run by the proxy, its output cached for credential_ttl (300 s).",
        ),
    ] = None,
    auth_token_command: Annotated[
        str | None,
        typer.Option(
            "--auth-token-command",
            metavar="CMD",
            show_default=False,
            help="Shell command printing the bearer token.",
        ),
    ] = None,
    proxy: Annotated[
        str | None,
        typer.Option(
            "--proxy",
            metavar="URL",
            show_default=False,
            help='http://[user:pass@]host:port, socks5://host:port or "none" '
            "(default: HTTPS_PROXY/HTTP_PROXY/NO_PROXY).",
        ),
    ] = None,
) -> None:
    """Add an account to a cluster.

    Give it exactly one credential: --api-key, --auth-token, --api-key-env,
    --auth-token-env, --api-key-command or --auth-token-command. With none, qcc asks for an
    API key at a hidden prompt when stdin is a terminal, and fails otherwise. Prefer the
    *-env or *-command options: a key on the command line lands in your shell history.
    Reads QCC_CONFIG_DIR (or --config-dir) to find config.toml.

    \b
    Example:
      qcc account add main --cluster prod --base-url https://api.anthropic.com \\
          --api-key-env ANTHROPIC_API_KEY --weight 3
      qcc account add relay --cluster prod --base-url https://relay.example.com \\
          --auth-token-env RELAY_TOKEN --priority 1 \\
          --model claude-sonnet-4-5=claude-sonnet-4-5-20250929
      qcc account add vault --base-url https://api.anthropic.com \\
          --api-key-command 'op read op://Private/anthropic/key'
    """
    state: CliState = ctx.obj
    if utf8("NAME", name).startswith(("sk-", "sk_")) and looks_like_secret(name):
        raise ConfigValidationError(
            "NAME",
            "that looks like a key, not an account name; give the name first, "
            "e.g. qcc account add main --base-url URL --api-key-env ANTHROPIC_API_KEY",
        )
    utf8("--base-url", base_url)
    weight_value = non_negative("--weight", weight)
    priority_value = non_negative("--priority", priority)
    renames = model_renames(model)
    given = {
        "api_key": api_key,
        "auth_token": auth_token,
        "api_key_env": api_key_env,
        "auth_token_env": auth_token_env,
        "api_key_command": api_key_command,
        "auth_token_command": auth_token_command,
    }
    credential = credential_from_options(name, given, os.environ)
    store = state.store()
    target = store.load().cluster(cluster)  # unknown cluster fails before any prompt
    if credential is None:
        if any(account.name == name for account in target.accounts):
            raise AlreadyExistsError(
                f"account '{name}' already exists in cluster '{target.name}'; pick another name "
                f"or remove it first with 'qcc account remove {name} --cluster {target.name}'"
            )
        if not render.stdin_is_tty():
            raise CredentialError(
                f"account '{name}' needs a credential: pass one of --api-key, --auth-token, "
                "--api-key-env or --auth-token-env"
            )
        secret = typer.prompt(f"API key for account '{name}'", hide_input=True, err=True)
        credential = credential_from_options(name, {**given, "api_key": secret}, os.environ)
        assert credential is not None
    with store.edit() as doc:
        ops.add_account(
            doc,
            target.name,
            name,
            base_url,
            credential,
            weight=weight_value,
            priority=priority_value,
            models=renames,
            proxy=proxy,
        )
    render.success(
        f"Added account '{name}' to cluster '{target.name}' "
        f"({credential.kind} {credential.masked()})."
    )
    warn_unusable_env(credential, os.environ)


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
    """List accounts (credentials masked).

    Lists the accounts of one cluster, or of every cluster without --cluster.

    Reads QCC_CONFIG_DIR (or --config-dir) to find config.toml.

    \b
    Example:
      qcc account list --cluster prod
      qcc account list --json
    """
    state: CliState = ctx.obj
    config = state.store().load()
    clusters = [config.cluster(cluster)] if cluster is not None else config.clusters.values()
    rows = [(c.name, account) for c in clusters for account in c.accounts]
    if as_json:
        render.print_json({"accounts": [render.account_dict(c, a) for c, a in rows]})
        return
    if not rows:
        render.note(
            "No accounts yet; add one with "
            "'qcc account add NAME --cluster C --base-url URL --api-key-env VAR'."
        )
        return
    out = render.table(None, render.ACCOUNT_COLUMNS)
    for cluster_name, account in rows:
        out.add_row(*render.account_row(cluster_name, account))
    render.console().print(out)


@app.command("remove")
def remove(ctx: typer.Context, name: NameArg, cluster: ClusterOpt = None) -> None:
    """Remove an account.

    Reads QCC_CONFIG_DIR (or --config-dir) to find config.toml.

    \b
    Example:
      qcc account remove relay --cluster prod
    """
    state: CliState = ctx.obj
    cluster_name = _cluster_name(state, cluster)
    with state.store().edit() as doc:
        ops.remove_account(doc, cluster_name, name)
    render.success(f"Removed account '{name}' from cluster '{cluster_name}'.")


def _set_enabled(ctx: typer.Context, name: str, cluster: str | None, enabled: bool) -> None:
    state: CliState = ctx.obj
    cluster_name = _cluster_name(state, cluster)
    with state.store().edit() as doc:
        ops.set_account_enabled(doc, cluster_name, name, enabled)
    word = "enabled" if enabled else "disabled"
    render.success(f"Account '{name}' in cluster '{cluster_name}' is {word}.")


def _reset_in_running_proxy(state: CliState, cluster_name: str, name: str) -> None:
    """If a proxy serves this cluster from this config, bring the account back there at once
    (out of credit, auth failed, ejected or cooling: the user vouches for it)."""
    from qcc.cli.proxy import access_key
    from qcc.errors import ProxyError
    from qcc.proxy.record import fetch_json, read_record

    record = read_record()
    if record is None or record.cluster != cluster_name:
        return
    if Path(record.config_path).resolve() != state.config_path.resolve():
        return
    url = f"{record.url}/accounts/{quote(name, safe='')}/reset"
    try:
        status, doc = fetch_json(url, access_key(record), method="POST")
    except ProxyError as exc:
        render.note(f"could not reset it in the running proxy: {exc}")
        return
    if status != 200 or not isinstance(doc, dict):
        if status != 404:  # 404: the proxy has not loaded the account yet
            render.note(f"could not reset it in the running proxy (HTTP {status})")
        return
    before, after = doc.get("before"), doc.get("state")
    if before != after:
        render.success(
            f"Account '{name}' was {before} in the running proxy ({record.url}); reset: {after}."
        )


@app.command("enable")
def enable(ctx: typer.Context, name: NameArg, cluster: ClusterOpt = None) -> None:
    """Put an account back into rotation.

    An account that is enabled but out (exhausted, auth_failed, ejected) in the running proxy
    serving this cluster is brought back there at once.

    Reads QCC_CONFIG_DIR (or --config-dir) to find config.toml, and QCC_STATE_DIR to find
    the running proxy.

    \b
    Example:
      qcc account enable relay --cluster prod
    """
    state: CliState = ctx.obj
    _set_enabled(ctx, name, cluster, True)
    _reset_in_running_proxy(state, _cluster_name(state, cluster), name)


@app.command("disable")
def disable(ctx: typer.Context, name: NameArg, cluster: ClusterOpt = None) -> None:
    """Take an account out of rotation without deleting it.

    Reads QCC_CONFIG_DIR (or --config-dir) to find config.toml.

    \b
    Example:
      qcc account disable relay --cluster prod
    """
    _set_enabled(ctx, name, cluster, False)


app.command("test")(account_test.test)  # qcc account test NAME: in its own module
app.command("show")(account_show.show)
