"""The ``qcc`` command: global options, the command groups, and one-line error reporting.

Every command reaches the config through the :class:`CliState` the root callback puts in
``ctx.obj``::

    state: CliState = ctx.obj
    with state.store().edit() as doc:
        ops.add_cluster(doc, name)

Commands raise :class:`~qcc.errors.QccError` for bad input and never print errors themselves:
:func:`main` turns every failure into exactly one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from qcc import __version__
from qcc.cli import account, claude, cluster, dashboard, demo, health, key, proxy, top, usage
from qcc.cli.run import run_command
from qcc.config.store import ConfigStore
from qcc.errors import QccError
from qcc.paths import config_path
from qcc.redact import scrub

EXIT_USAGE = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE
EXIT_INTERRUPTED = 130  # 128 + SIGINT


@dataclass(frozen=True)
class CliState:
    """What the global options resolved to; shared by every command through ``ctx.obj``."""

    config_path: Path

    def store(self) -> ConfigStore:
        return ConfigStore(self.config_path)


app = typer.Typer(
    name="qcc",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# ---------------------------------------------------------------------------------------------
# Command groups and top-level commands, in the order `qcc --help` lists them.
# To add yours: import the module above (`from qcc.cli import account, cluster, proxy`) and
# append one entry. A group module exposes `app = typer.Typer(...)`; a command is a function.
GROUPS: list[tuple[str, typer.Typer]] = [
    ("cluster", cluster.app),
    ("account", account.app),
    ("proxy", proxy.app),
    ("health", health.app),
    ("claude", claude.app),
    ("key", key.app),
]
COMMANDS: list[tuple[str, Callable[..., Any]]] = [
    ("run", run_command),
    ("top", top.top),
    ("dashboard", dashboard.dashboard),
    ("usage", usage.usage),
    ("demo", demo.demo),
]
# ---------------------------------------------------------------------------------------------

for _name, _group in GROUPS:
    app.add_typer(_group, name=_name)
for _name, _command in COMMANDS:
    app.command(_name)(_command)


def _print_version(value: bool) -> None:
    if value:
        import platform

        from qcc.proxy.loops import describe

        typer.echo(f"qcc {__version__} (Python {platform.python_version()}, {describe()})")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config_dir: Annotated[
        str | None,
        typer.Option(
            "--config-dir",
            metavar="DIR",
            show_default=False,
            help="Directory holding config.toml. Default: $QCC_CONFIG_DIR, else the "
            "platform's user config directory for qcc.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """One stable local URL for Claude Code in front of many Anthropic-API accounts.

    Accounts (upstream endpoints with their credentials) are grouped into clusters; a proxy
    serves one cluster and fails over between its accounts.

    \b
    Example:
      qcc cluster add prod --strategy weighted
      qcc account add main --cluster prod --base-url https://api.anthropic.com \\
          --api-key-env ANTHROPIC_API_KEY
      qcc account list

    \b
    Environment:
      QCC_CONFIG_DIR  directory of config.toml (overridden by --config-dir)
      QCC_STATE_DIR   directory of runtime state: pid file, logs, usage records
    """
    ctx.obj = CliState(config_path(config_dir))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(message: str, code: int) -> int:
    # The last guard: whatever a message quotes (a click usage error, an exception's text), a
    # value shaped like a key or bearer token never reaches the terminal.
    sys.stderr.write(f"qcc: {scrub(_one_line(message))}\n")
    sys.stderr.flush()
    return code


def _usage_error(exc: typer.TyperException) -> int:
    """Click's usage and parameter errors, as one line pointing at the right ``--help``."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # `qcc cluster` alone: show its help
        sys.stdout.write(exc.format_message().rstrip("\n") + "\n")
        return 0
    message = _one_line(exc.format_message()).rstrip(".")
    if ctx is None:
        return _fail(f"error: {message}", exc.exit_code or EXIT_USAGE)
    return _fail(f"error: {message}; see '{ctx.command_path} --help'", exc.exit_code)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the app on ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    Nothing raised escapes: every error becomes one line on stderr.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = app(args=args, prog_name="qcc", standalone_mode=False)
    except QccError as err:
        return _fail(f"error: {err}", err.exit_code)
    except typer.Exit as exc:  # raised (older typer) rather than returned
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt, EOFError):
        return _fail("interrupted", EXIT_INTERRUPTED)
    except typer.TyperException as exc:
        return _usage_error(exc)
    except SystemExit as exc:  # e.g. typer's broken-pipe handling
        return exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:
        return _fail(f"internal error: {type(exc).__name__}: {exc}", EXIT_INTERNAL)
    if result == EXIT_INTERRUPTED:  # typer turns Ctrl-C into a silent exit code 130
        return _fail("interrupted", EXIT_INTERRUPTED)
    return result if isinstance(result, int) else 0


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console entry point (``qcc``, ``python -m qcc``)."""
    sys.exit(run(argv))
