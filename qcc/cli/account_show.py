"""``qcc account show NAME``: one account's settings, where its credential comes from (never the
secret), and, when a proxy serves its cluster from this config, how its credential is doing
there (the access token's expiry, the last refresh's result)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from qcc.cli import render
from qcc.cli.account_options import ClusterOpt, JsonLinesOpt, NameArg
from qcc.config.model import Account
from qcc.errors import ProxyError

if TYPE_CHECKING:
    from qcc.cli.main import CliState


def credential_settings(account: Account) -> dict[str, Any]:
    """The credential as configured: kind, masked value, source, and its non-secret settings."""
    credential = account.credential
    doc: dict[str, Any] = render.credential_dict(credential)
    if credential.kind.endswith("_command"):
        doc["ttl"] = credential.ttl
    oauth = credential.oauth
    if oauth is not None:
        doc["oauth"] = {
            "token_url": oauth.token_url,
            "client_id": oauth.client_id,
            "client_secret": "$" + oauth.client_secret_env
            if oauth.client_secret_env
            else ("set" if oauth.client_secret else None),
            "refresh_token": "$" + oauth.refresh_token_env
            if oauth.refresh_token_env
            else ("set" if oauth.refresh_token else None),
            "scope": oauth.scope,
            "header": oauth.header,
        }
    return doc


def _live(state: CliState, cluster: str, name: str) -> dict[str, Any] | None:
    """The account as the running proxy sees it, if one serves ``cluster`` from this config."""
    from qcc.cli.proxy import proxy_stats
    from qcc.proxy.record import read_record

    record = read_record()
    if record is None or record.cluster != cluster:
        return None
    if Path(record.config_path).resolve() != state.config_path.resolve():
        return None
    try:
        doc = proxy_stats(record)
    except ProxyError:
        return None
    for account in doc.get("accounts", []):
        if isinstance(account, dict) and account.get("name") == name:
            return {
                "proxy": record.url,
                "state": account.get("state"),
                "reason": account.get("reason"),
                "credential": account.get("credential"),
            }
    return None


def _when(wall: Any) -> str:
    if not isinstance(wall, int | float):
        return "-"
    delta = wall - time.time()
    return f"in {delta:.0f}s" if delta >= 0 else f"{-delta:.0f}s ago"


def show(
    ctx: typer.Context,
    name: NameArg,
    cluster: ClusterOpt = None,
    as_json: JsonLinesOpt = False,
) -> None:
    """Show one account: its settings, where its credential comes from (inline, env:VAR,
    command, oauth; never the secret) and, if a proxy serves its cluster, the credential's
    state there (expiry, last refresh).

    Reads QCC_CONFIG_DIR (or --config-dir) to find config.toml, and QCC_STATE_DIR to find
    the running proxy.

    \\b
    Example:
      qcc account show gateway --cluster prod
    """
    state: CliState = ctx.obj
    chosen = state.store().load().cluster(cluster)
    account = chosen.account(name)
    doc = render.account_dict(chosen.name, account)
    doc["credential"] = credential_settings(account)
    doc["live"] = _live(state, chosen.name, name)
    if as_json:
        render.print_json(doc)
        return
    credential = doc["credential"]
    out = [
        f"account   {account.name} (cluster {chosen.name})",
        f"base_url  {account.base_url}",
        f"source    {credential['source']}: {credential['value']}",
    ]
    if "ttl" in credential:
        out.append(f"ttl       {credential['ttl']:g}s")
    for key, value in (credential.get("oauth") or {}).items():
        out.append(f"oauth     {key} = {value if value is not None else '-'}")
    live = doc["live"]
    if live is not None:
        out.append(f"proxy     {live['proxy']}: {live['state']}")
        fetched = live.get("credential") or {}
        if "last_result" in fetched:
            out.append(
                f"refresh   {fetched['last_result']} ({_when(fetched.get('last_refresh'))}); "
                f"expires {_when(fetched.get('expires'))}"
            )
    for line in out:
        render.console().print(line, highlight=False, markup=False)
