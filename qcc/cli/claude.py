"""``qcc claude ...``: point Claude Code at the proxy, for one shell or in its settings.json."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qcc import claude_settings as cs
from qcc.cli import render

if TYPE_CHECKING:
    from qcc.cli.main import CliState


def target_env(state: CliState) -> tuple[dict[str, str], str]:
    """The variables for Claude Code, and a line saying which proxy they point at.

    The running proxy's real address (from its record) when one runs, with the access key of
    the config it serves; else proxy.host/proxy.port of config.toml.
    """
    from qcc.cli.proxy import access_key
    from qcc.proxy.record import client_url, read_record

    config = state.store().load()
    record = read_record()
    if record is None:
        env_vars = cs.proxy_env(config)
        return env_vars, (
            f"no qcc proxy is running: using proxy.host/proxy.port of {state.config_path} "
            f"({env_vars[cs.BASE_URL_KEY]}); start it with 'qcc proxy start'"
        )
    if Path(record.config_path) != state.config_path:
        key = access_key(record) or config.proxy.access_key
        config = replace(config, proxy=replace(config.proxy, access_key=key))
    url = client_url(record.host, record.port)
    return cs.proxy_env(config, url), (
        f"using the running qcc proxy (pid {record.pid}, cluster '{record.cluster}') at {url}"
    )


app = typer.Typer(
    help="Point Claude Code at the proxy (shell env or ~/.claude/settings.json). "
    "Reads QCC_CONFIG_DIR, QCC_STATE_DIR and CLAUDE_CONFIG_DIR.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("env")
def env(
    ctx: typer.Context,
    shell: Annotated[
        str | None,
        typer.Option(
            "--shell",
            metavar="SHELL",
            show_default=False,
            help=f"One of {', '.join(cs.SHELLS)}. Default: the shell named by $SHELL.",
        ),
    ] = None,
) -> None:
    """Print the shell lines that point Claude Code at the proxy.

    Sets ANTHROPIC_BASE_URL to the running proxy's address (from its record in the state
    dir), or, when none runs, to proxy.host and proxy.port of config.toml; one line on stderr
    says which. ANTHROPIC_AUTH_TOKEN is proxy.access_key, or the placeholder 'qcc' when there
    is none (the proxy swaps in each account's own credential). The access key is printed in
    full: that is what the lines are for. Stdout holds only the shell lines.

    Reads QCC_CONFIG_DIR (or --config-dir) to find config.toml, QCC_STATE_DIR for the
    running proxy.

    \b
    Example:
      eval "$(qcc claude env)"                        # sh, bash, zsh
      qcc claude env --shell fish | source
      qcc claude env --shell powershell | Invoke-Expression
    """
    state: CliState = ctx.obj
    env_vars, which = target_env(state)
    lines = cs.shell_lines(env_vars, shell)
    sys.stdout.write(lines)
    sys.stdout.flush()
    render.note(which)
    if sys.stdout.isatty():
        render.note('Apply these with: eval "$(qcc claude env)" (fish: qcc claude env | source)')


@app.command("enable")
def enable(ctx: typer.Context) -> None:
    """Merge the proxy's variables into the "env" of Claude Code's settings.json.

    Only ANTHROPIC_BASE_URL and ANTHROPIC_AUTH_TOKEN change; every other setting, hook,
    permission and env key stays as it is. What was there before is saved first in qcc's
    state dir, so 'qcc claude disable' can put it back. The file is rewritten as JSON with its
    own indentation; other formatting may change. Running it again is safe.

    The file is $CLAUDE_CONFIG_DIR/settings.json, else ~/.claude/settings.json; it is created
    if missing. The address is the running proxy's (from its record) when one runs, else
    proxy.host and proxy.port of config.toml; the output says which. Reads QCC_CONFIG_DIR (or
    --config-dir) for the access key, and QCC_STATE_DIR for the running proxy and the backup.

    \b
    Example:
      qcc claude enable
      CLAUDE_CONFIG_DIR=~/.claude-work qcc claude enable
    """
    state: CliState = ctx.obj
    env_vars, which = target_env(state)
    result = cs.enable(cs.settings_path(), env_vars, cs.backup_path())
    where = cs.shown(result.settings_path)
    changes = ", ".join(f"{c.key}={c.value} ({c.action})" for c in result.changes)
    verb = "Created" if result.created else "Updated"
    if all(c.action == "unchanged" for c in result.changes) and not result.created:
        verb = "Already set in"
    lines = [f'{verb} {where} "env": {changes}.', which[0].upper() + which[1:] + "."]
    if result.first:
        saved = f"Saved the previous values in {result.backup_path}"
        if result.copy_path is not None:
            saved += f" and a copy of the file in {result.copy_path}"
        lines.append(saved + ".")
    else:
        lines.append(f"Kept the values from before the first enable in {result.backup_path}.")
    lines.extend(f"Note: {note}." for note in result.notes)
    lines.append(
        "Claude Code reads this when it starts; run 'qcc proxy start' first. "
        "Undo with 'qcc claude disable'."
    )
    render.success("\n".join(lines))


@app.command("disable")
def disable(ctx: typer.Context) -> None:
    """Restore what 'qcc claude enable' changed in Claude Code's settings.json.

    Each key qcc set gets back its value from before enable, or is removed if there was none;
    a key you changed by hand since is left as it is (and reported). A settings.json (or "env")
    that enable created is removed again if nothing else is in it. Everything else in the file
    stays as it is.

    Reads QCC_STATE_DIR for the backup; the file restored is the one enable changed
    ($CLAUDE_CONFIG_DIR/settings.json, else ~/.claude/settings.json).

    \b
    Example:
      qcc claude disable
    """
    del ctx  # only the backup is needed
    result = cs.disable(cs.settings_path(), cs.backup_path())
    where = cs.shown(result.settings_path)
    done = [f"{c.action} {c.key}" for c in result.changes]
    if result.deleted:
        lines = [f"Removed {where}: qcc had created it and nothing else is in it."]
    elif done:
        lines = [f'Restored {where} "env": {", ".join(done)}.']
    else:
        lines = [f"Nothing to restore in {where}."]
    lines.extend(f"Note: {note}." for note in result.notes)
    render.success("\n".join(lines))
