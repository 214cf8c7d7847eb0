"""The variables that point Claude Code at the proxy, and the shell lines that set them.

Claude Code reads ``ANTHROPIC_BASE_URL`` and a credential from its environment (or from the
``"env"`` object of its ``settings.json``: :mod:`qcc.claude_settings`).

* :func:`proxy_env` builds the variables from the config; :func:`shell_lines` prints them for
  ``eval`` in sh/bash/zsh, fish or PowerShell (:func:`detect_shell` picks one from ``$SHELL``).

The credential is ``ANTHROPIC_AUTH_TOKEN`` (sent as ``Authorization: Bearer``), never
``ANTHROPIC_API_KEY``: Claude Code asks the user to approve a custom API key it finds in
``ANTHROPIC_API_KEY``, but uses an auth token as is. The proxy replaces the credential with the
chosen account's anyway; when ``proxy.access_key`` is set the token is that key (the proxy
accepts it as a Bearer token), otherwise it is the placeholder ``qcc``.

Pure: nothing here reads or writes files or prints.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qcc.config.model import Config, mask_secret
from qcc.errors import QccError
from qcc.proxy.record import client_url

BASE_URL_KEY = "ANTHROPIC_BASE_URL"
TOKEN_KEY = "ANTHROPIC_AUTH_TOKEN"
PLACEHOLDER_TOKEN = "qcc"
SECRET_KEYS = frozenset({TOKEN_KEY})
SHELLS = ("sh", "bash", "zsh", "fish", "powershell")
_SHELL_ALIASES = {"dash": "sh", "ksh": "sh", "mksh": "sh", "ash": "sh", "pwsh": "powershell"}


class UnknownShellError(QccError):
    """``--shell`` names a shell qcc cannot write lines for."""


# --- the variables ---------------------------------------------------------------------------


def proxy_url(config: Config) -> str:
    """The URL clients on this machine use; a wildcard bind address becomes loopback."""
    return client_url(config.proxy.host, config.proxy.port)


def proxy_env(config: Config, url: str | None = None) -> dict[str, str]:
    """``ANTHROPIC_BASE_URL`` (``url``, else the proxy's) and ``ANTHROPIC_AUTH_TOKEN``."""
    token = config.proxy.access_key or PLACEHOLDER_TOKEN
    return {BASE_URL_KEY: (url or proxy_url(config)).rstrip("/"), TOKEN_KEY: token}


def display_value(key: str, value: Any) -> str:
    """A value fit for a confirmation message: secrets masked, the placeholder shown."""
    if key in SECRET_KEYS and value != PLACEHOLDER_TOKEN:
        return mask_secret(value) if isinstance(value, str) else "…"
    return value if isinstance(value, str) else json.dumps(value)


# --- shell lines -----------------------------------------------------------------------------


def detect_shell(environ: Mapping[str, str] | None = None) -> str:
    """The shell named by ``$SHELL`` (``sh`` when unset or unknown; ``powershell`` on Windows)."""
    env = os.environ if environ is None else environ
    raw = env.get("SHELL", "")
    if not raw:
        return "powershell" if os.name == "nt" else "sh"
    name = Path(raw).name.lower().removesuffix(".exe")
    name = _SHELL_ALIASES.get(name, name)
    return name if name in SHELLS else "sh"


def _posix_quote(value: str) -> str:
    quoted = shlex.quote(value)
    return quoted if quoted.startswith("'") else f"'{value}'"  # always quoted, for readability


def _fish_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _powershell_quote(value: str) -> str:
    # Inside "...", PowerShell expands $ and backtick escapes, and also ends the string at the
    # typographic double quotes; a backtick before each makes it literal.
    return '"' + re.sub(r'([`$"\u201c\u201d\u201e])', r"`\1", value) + '"'


def shell_lines(env: Mapping[str, str], shell: str | None = None) -> str:
    """``env`` as lines that set (and export) each variable in ``shell``; ends with a newline."""
    name = (shell or detect_shell()).lower()
    name = _SHELL_ALIASES.get(name, name)
    if name in ("sh", "bash", "zsh"):
        lines = [f"export {key}={_posix_quote(value)}" for key, value in env.items()]
    elif name == "fish":
        lines = [f"set -gx {key} {_fish_quote(value)}" for key, value in env.items()]
    elif name == "powershell":
        lines = [f"$env:{key} = {_powershell_quote(value)}" for key, value in env.items()]
    else:
        raise UnknownShellError(f"unknown shell '{shell}'; use one of {', '.join(SHELLS)}")
    return "".join(line + "\n" for line in lines)
