"""``qcc account test NAME``: fetch an account's credential through its source, probe it once,
and report each step. No proxy needed: a command runs here, an OAuth2 token is fetched here (a
rotated refresh token is saved where the proxy finds it)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import typer

from qcc.cli import render
from qcc.cli.account_options import ClusterOpt, JsonLinesOpt, NameArg
from qcc.config.model import Account, Config, mask_secret
from qcc.errors import CredentialError
from qcc.redact import scrub

if TYPE_CHECKING:
    from qcc.cli.main import CliState


def _masked(header: tuple[str, str]) -> str:
    value = header[1]
    return mask_secret(value[7:] if value[:7].lower() == "bearer " else value)


async def _fetch(cluster: str, account: Account) -> tuple[dict[str, Any], tuple[str, str] | None]:
    from qcc.credentials.command import COMMAND_TIMEOUT  # here: aiohttp loads slowly
    from qcc.credentials.keeper import source_for

    credential = account.credential
    step: dict[str, Any] = {"step": "credential", "source": credential.source}
    started = time.monotonic()
    source = source_for(credential, cluster, account.name)
    try:
        if source is None:
            header = credential.header()
        else:
            timeout = COMMAND_TIMEOUT + 1 if source.kind == "command" else 60.0
            header = await source.fresh(asyncio.get_running_loop().time(), timeout)
    except (CredentialError, TimeoutError) as exc:
        reason = str(exc) if isinstance(exc, CredentialError) else "timed out"
        step |= {"ok": False, "ms": _ms(started), "detail": reason}
        return step, None
    step |= {"ok": True, "ms": _ms(started), "header": header[0], "value": _masked(header)}
    if source is not None and source.expires is not None:
        step["expires"] = source.expires
    return step, header


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


async def run_test(config: Config, cluster: str, account: Account) -> dict[str, Any]:
    """The report: ``{"account", "cluster", "ok", "steps": [credential, probe]}``."""
    from qcc.health.probe import check_once
    from qcc.net.client import UpstreamClient

    fetched, header = await _fetch(cluster, account)
    steps = [fetched]
    if header is not None:
        client = UpstreamClient()
        try:
            result = await check_once(client, account, header, config.health.probe_timeout)
        finally:
            client.close()
        steps.append(
            {
                "step": "probe",
                "ok": result.ok,
                "outcome": result.outcome.value,
                "status": result.status,
                "ms": None if result.latency is None else round(result.latency * 1000, 1),
                "detail": scrub(result.detail, [header[1], header[1][7:]]),
            }
        )
    ok = all(step["ok"] for step in steps) and len(steps) == 2
    return {"account": account.name, "cluster": cluster, "ok": ok, "steps": steps}


def lines(report: dict[str, Any]) -> list[str]:
    """The report for a terminal: one line per step."""
    out = []
    for step in report["steps"]:
        mark = "ok  " if step["ok"] else "FAIL"
        if step["step"] == "credential":
            if step["ok"]:
                what = f"fetched in {step['ms']:.0f} ms: {step['header']} {step['value']}"
                if "expires" in step:
                    what += f" (expires in {step['expires'] - time.time():.0f}s)"
            else:
                what = f"not fetched ({step['ms']:.0f} ms): {step['detail']}"
            out.append(f"{mark} credential ({step['source']}) {what}")
        else:
            took = "" if step["ms"] is None else f" in {step['ms']:.0f} ms"
            out.append(f"{mark} probe {step['outcome']}{took}: {step['detail']}")
    return out


def test(
    ctx: typer.Context,
    name: NameArg,
    cluster: ClusterOpt = None,
    as_json: JsonLinesOpt = False,
) -> None:
    """Fetch an account's credential through its source, probe the account once, and report
    each step (time taken, the credential masked, the probe's answer). No proxy needed.

    Exit code 0 when both steps succeed, 1 when one fails. Reads QCC_CONFIG_DIR (or
    --config-dir) to find config.toml.

    \b
    Example:
      qcc account test main --cluster prod
      qcc account test gateway --json
    """
    from qcc.cli.health import Unhealthy

    state: CliState = ctx.obj
    config = state.store().load()
    chosen = config.cluster(cluster)
    account = chosen.account(name)
    report = asyncio.run(run_test(config, chosen.name, account))
    if as_json:
        render.print_json(report)
    else:
        for line in lines(report):
            render.console().print(line, highlight=False, markup=False)
    if not report["ok"]:
        raise Unhealthy(f"account '{name}' failed its test; see the steps above")
