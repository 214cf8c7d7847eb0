"""Parsing ``qcc account add``'s options: the one credential (inline, env var name or
command), ``--weight``/``--priority`` and ``--model FROM=TO``, each with a one-line error that
names the option and never quotes a value that may be a secret; and the warning when a named
environment variable would not give the proxy a usable credential. Also the parameter types
the ``qcc account`` commands share (``NAME``, ``--cluster``, ``--json`` for line output).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import typer

from qcc.cli import render
from qcc.config.checks import ENV_NAME_RE
from qcc.config.model import Credential, header_value_problem
from qcc.errors import ConfigValidationError, CredentialError
from qcc.redact import looks_like_secret

NameArg = Annotated[str, typer.Argument(metavar="NAME", show_default=False, help="Account name.")]
ClusterOpt = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        "-c",
        metavar="C",
        show_default=False,
        help="Cluster of the account. Default: the default cluster (or the only one).",
    ),
]
JsonLinesOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout instead of lines.")
]

# (option, kind in the config file) in the order the error messages name them
CREDENTIAL_OPTIONS = (
    ("--api-key", "api_key"),
    ("--auth-token", "auth_token"),
    ("--api-key-env", "api_key_env"),
    ("--auth-token-env", "auth_token_env"),
    ("--api-key-command", "api_key_command"),
    ("--auth-token-command", "auth_token_command"),
)


def utf8(option: str, value: str) -> str:
    """Refuse text Python could only decode with surrogate escapes (argv bytes not in UTF-8)."""
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in value):
        raise ConfigValidationError(
            option, "is not valid UTF-8 text; check the terminal's encoding and type it again"
        )
    return value


def _shown(value: str) -> str:
    """``value`` quoted for an error message, unless it may be a key pasted in the wrong place."""
    return "a value that looks like a key (not shown)" if looks_like_secret(value) else f"'{value}'"


def non_negative(option: str, raw: str) -> int:
    """Parse an integer option ourselves so ``-1`` and ``abc`` get one clear line."""
    try:
        value = int(raw.strip())
    except ValueError:
        shown = raw if not looks_like_secret(raw) else "a value that looks like a key (not shown)"
        raise ConfigValidationError(option, f"must be an integer >= 0, got {shown}") from None
    if value < 0:
        raise ConfigValidationError(option, f"must be an integer >= 0, got {value}")
    return value


def model_renames(pairs: list[str] | None) -> dict[str, str]:
    renames: dict[str, str] = {}
    for pair in pairs or []:
        source, sep, target = utf8("--model", pair).partition("=")
        source, target = source.strip(), target.strip()
        if not sep or not source or not target:
            raise ConfigValidationError(
                "--model",
                f"expected FROM=TO such as claude-sonnet-4-5=claude-sonnet-4-5-20250929, "
                f"got {_shown(pair)}",
            )
        if source in renames:
            raise ConfigValidationError("--model", f"{_shown(source)} is renamed twice")
        renames[source] = target
    return renames


def credential_from_options(
    name: str, given: dict[str, str | None], environ: Mapping[str, str]
) -> Credential | None:
    """The one credential passed on the command line; None when there is none.

    No error quotes a value that may be a secret.
    """
    present = [(option, kind) for option, kind in CREDENTIAL_OPTIONS if given[kind] is not None]
    if len(present) > 1:
        options = [option for option, _ in present]
        listed = ", ".join(options[:-1]) + " and " + options[-1]
        raise CredentialError(f"account '{name}' got both {listed}; pass exactly one credential")
    if not present:
        return None
    option, kind = present[0]
    value = given[kind] or ""
    if kind.endswith("_command"):
        if not utf8(option, value).strip():
            raise ConfigValidationError(option, "must be a shell command, e.g. 'op read op://…'")
        return Credential(kind, value)
    if kind.endswith("_env"):
        # A valid name that is set here is a name, however random it looks.
        if looks_like_secret(value) and not (ENV_NAME_RE.match(value) and value in environ):
            inline = option.removesuffix("-env")
            raise ConfigValidationError(
                option,
                "that looks like a key, not a variable name; pass the variable's name, "
                f"e.g. ANTHROPIC_API_KEY, or use {inline}",
            )
        if not ENV_NAME_RE.match(utf8(option, value)):
            raise ConfigValidationError(
                option, f"'{value}' is not an environment variable name, e.g. ANTHROPIC_API_KEY"
            )
        return Credential(kind, value)
    if not value.strip():
        raise ConfigValidationError(option, "must not be empty")
    problem = header_value_problem(value)
    if problem is not None:
        raise ConfigValidationError(option, problem)
    return Credential(kind, value)


def warn_unusable_env(credential: Credential, environ: Mapping[str, str]) -> None:
    """Say at once when the proxy would not find a usable value in the named variable."""
    if not credential.from_env:
        return
    if not environ.get(credential.value):
        render.note(
            f"warning: {credential.value} is not set in this shell; "
            "the proxy reads it when it starts"
        )
        return
    try:
        credential.secret(environ)
    except CredentialError as exc:
        render.note(f"warning: {exc}; the proxy will refuse it")
