"""Point Claude Code at the proxy: its env vars, as shell lines, or merged into ``settings.json``.

Claude Code reads ``ANTHROPIC_BASE_URL`` and a credential from its environment, or from the
``"env"`` object of its ``settings.json`` (in ``$CLAUDE_CONFIG_DIR``, else ``~/.claude``).

* :func:`proxy_env` builds the variables from the config; :func:`shell_lines` prints them for
  ``eval`` in sh/bash/zsh, fish or PowerShell.
* :func:`enable` merges only those keys into ``settings.json`` after recording what was there;
  :func:`disable` puts exactly that back and leaves everything else alone.

The credential is ``ANTHROPIC_AUTH_TOKEN`` (sent as ``Authorization: Bearer``), never
``ANTHROPIC_API_KEY``: Claude Code asks the user to approve a custom API key it finds in
``ANTHROPIC_API_KEY``, but uses an auth token as is. The proxy replaces the credential with the
chosen account's anyway; when ``proxy.access_key`` is set the token is that key (the proxy
accepts it as a Bearer token), otherwise it is the placeholder ``qcc``.

What :func:`enable` keeps in qcc's state dir (mode 0600, for :func:`disable`)::

    claude-settings-backup.json   {"version": 1, "settings_path": "...", "existed": bool,
                                   "dir_existed": bool, "env_existed": bool,
                                   "previous": {KEY: value, or null if absent},
                                   "applied": {KEY: sha256 of what qcc wrote},
                                   "original_sha256": "..." or null}
    claude-settings.json.bak      the original file, byte for byte (absent if there was none)

``applied`` holds hashes, not values, so the access key is stored nowhere but settings.json.
The settings file is rewritten as ``json.dumps`` with the file's own indentation (2 spaces for a
new file) and trailing newline; other formatting (spacing inside a line, escapes) may change.
:func:`disable` writes the original bytes back when the result equals the original content.

Nothing here prints; the CLI (:mod:`qcc.cli.claude`) renders the results.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qcc.config.model import Config, mask_secret
from qcc.config.store import atomic_write
from qcc.errors import QccError
from qcc.paths import state_dir

BASE_URL_KEY = "ANTHROPIC_BASE_URL"
TOKEN_KEY = "ANTHROPIC_AUTH_TOKEN"
PLACEHOLDER_TOKEN = "qcc"
SECRET_KEYS = frozenset({TOKEN_KEY})
SHELLS = ("sh", "bash", "zsh", "fish", "powershell")
_SHELL_ALIASES = {"dash": "sh", "ksh": "sh", "mksh": "sh", "ash": "sh", "pwsh": "powershell"}

BACKUP_NAME = "claude-settings-backup.json"
COPY_NAME = "claude-settings.json.bak"
BACKUP_VERSION = 1
NEW_FILE_MODE = 0o644


class ClaudeSettingsError(QccError):
    """settings.json or qcc's backup of it cannot be read, parsed or written."""


class NotEnabledError(ClaudeSettingsError):
    """``disable`` found no backup: ``enable`` was not run (or was undone already)."""


class UnknownShellError(QccError):
    """``--shell`` names a shell qcc cannot write lines for."""


# --- the variables ---------------------------------------------------------------------------


def proxy_url(config: Config) -> str:
    """The URL clients on this machine use; a wildcard bind address becomes loopback."""
    host = config.proxy.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{config.proxy.port}"


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


# --- where the files are ---------------------------------------------------------------------


def settings_path(environ: Mapping[str, str] | None = None) -> Path:
    """Claude Code's user settings: ``$CLAUDE_CONFIG_DIR/settings.json``, else ``~/.claude/``."""
    env = os.environ if environ is None else environ
    base = env.get("CLAUDE_CONFIG_DIR")
    directory = Path(base).expanduser() if base else Path.home() / ".claude"
    return directory / "settings.json"


def backup_path() -> Path:
    """The backup record :func:`enable` writes and :func:`disable` reads."""
    return state_dir() / BACKUP_NAME


def copy_path_for(backup: Path) -> Path:
    """The byte-for-byte copy of the original settings file, next to the backup record."""
    return backup.with_name(COPY_NAME)


def shown(path: Path) -> str:
    """``path`` for messages, with the home directory written as ``~``."""
    try:
        return "~/" + path.relative_to(Path.home()).as_posix()
    except (ValueError, RuntimeError):
        return str(path)


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What happened to one key of ``env``; ``value`` is already masked for display."""

    key: str
    action: str  # enable: added | replaced | unchanged; disable: restored | removed
    value: str | None = None


@dataclass(frozen=True)
class EnableResult:
    settings_path: Path
    created: bool  # the file did not exist
    first: bool  # False when enable was active already (the backup kept the pre-qcc values)
    changes: tuple[Change, ...]
    backup_path: Path
    copy_path: Path | None  # None when there was no original file to copy
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DisableResult:
    settings_path: Path
    changes: tuple[Change, ...]
    deleted: bool  # the file was removed: it did not exist before enable
    notes: tuple[str, ...] = ()


# --- file helpers ----------------------------------------------------------------------------


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _same(a: Any, b: Any) -> bool:
    """Deep equality that also tells ``true`` from ``1`` and respects key order."""
    return json.dumps(a) == json.dumps(b)


def _write_settings(path: Path, data: bytes) -> None:
    """Write through a symlink (dotfile managers) and keep the file's mode."""
    target = path.resolve() if path.is_symlink() else path
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = NEW_FILE_MODE
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, data, mode)
    except OSError as exc:
        raise ClaudeSettingsError(
            f"cannot write {shown(path)} ({exc.strerror or exc}); nothing was changed"
        ) from None


def _write_private(path: Path, data: bytes) -> None:
    """A file in qcc's state dir: mode 0600 in a 0700 directory."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, data, 0o600)
    except OSError as exc:
        raise ClaudeSettingsError(
            f"cannot write the backup {path} ({exc.strerror or exc}); nothing was changed"
        ) from None


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ClaudeSettingsError(
            f"cannot read {shown(path)} ({exc.strerror or exc}); nothing was changed"
        ) from None


def _parse(raw: bytes, path: Path) -> dict[str, Any]:
    """The settings file as a JSON object, or a one-line error naming what is wrong."""
    where = shown(path)
    try:
        text = raw.decode("utf-8-sig")
        data = json.loads(text) if text.strip() else {}  # an empty file is an empty object
    except UnicodeDecodeError:
        raise ClaudeSettingsError(
            f"{where} is not UTF-8 text; fix it or move it away, nothing was changed"
        ) from None
    except json.JSONDecodeError as exc:
        raise ClaudeSettingsError(
            f"{where} is not valid JSON (line {exc.lineno}: {exc.msg}); "
            "fix it or move it away, nothing was changed"
        ) from None
    if not isinstance(data, dict):
        raise ClaudeSettingsError(
            f"{where} holds a JSON {type(data).__name__ if data is not None else 'null'}, "
            "not an object; fix it or move it away, nothing was changed"
        )
    env = data.get("env")
    if env is not None and not isinstance(env, dict):
        raise ClaudeSettingsError(
            f'"env" in {where} is not a JSON object; fix it or move it away, nothing was changed'
        )
    return data


def _render(data: dict[str, Any], like: bytes | None) -> bytes:
    """``data`` as JSON with the indentation and final newline of ``like`` (2 spaces, newline)."""
    indent: str | int = 2
    newline = True
    if like is not None:
        text = like.decode("utf-8-sig")
        match = re.search(r"\n([ \t]+)\S", text)
        if match:
            indent = match.group(1)
        newline = text.endswith("\n") or not text.strip()
    out = json.dumps(data, indent=indent, ensure_ascii=False)
    return (out + "\n" if newline else out).encode("utf-8")


def _load_backup(path: Path) -> dict[str, Any] | None:
    raw = _read(path)
    if raw is None:
        return None
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        record = None
    if (
        not isinstance(record, dict)
        or record.get("version") != BACKUP_VERSION
        or not isinstance(record.get("settings_path"), str)
        or not isinstance(record.get("previous"), dict)
        or not isinstance(record.get("applied"), dict)
    ):
        raise ClaudeSettingsError(
            f"the backup {path} is damaged; restore settings.json by hand "
            f"(a copy of the original may be at {copy_path_for(path)}) and delete the backup"
        )
    return record


def _same_file(a: Path, b: Path) -> bool:
    return a.expanduser().resolve() == b.expanduser().resolve()


def _conflict_notes(data: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """Settings that would send a different credential than the access key qcc set."""
    if env.get(TOKEN_KEY, PLACEHOLDER_TOKEN) == PLACEHOLDER_TOKEN:
        return []
    notes = []
    settings_env = data.get("env") or {}
    if "ANTHROPIC_API_KEY" in settings_env:
        notes.append(
            'settings.json "env" also sets ANTHROPIC_API_KEY; Claude Code sends it as x-api-key '
            "and the proxy checks that before the access key: remove it if requests get 401"
        )
    if "apiKeyHelper" in data:
        notes.append(
            'settings.json sets "apiKeyHelper"; Claude Code may send its output instead of the '
            "access key: remove it if requests get 401"
        )
    return notes


# --- enable / disable ------------------------------------------------------------------------


def enable(settings: Path, env: Mapping[str, str], backup: Path) -> EnableResult:
    """Merge ``env`` into the ``"env"`` object of ``settings``, recording what was there first.

    Only the keys of ``env`` change; every other key, its order and its value stay. Running it
    again keeps the first run's record of the pre-qcc values, so :func:`disable` still restores
    those. Raises :class:`ClaudeSettingsError` (and changes nothing) when the file is not a
    JSON object.
    """
    copy = copy_path_for(backup)
    original = _read(settings)
    data = _parse(original, settings) if original is not None else {}
    current_env: dict[str, Any] = data.get("env") or {}
    record = _load_backup(backup)
    first = record is None
    notes: list[str] = []
    if record is None:
        record = {
            "version": BACKUP_VERSION,
            "settings_path": str(settings.absolute()),
            "existed": original is not None,
            "dir_existed": settings.parent.is_dir(),
            "env_existed": "env" in data,
            "previous": {},
            "applied": {},
            "original_sha256": None if original is None else hashlib.sha256(original).hexdigest(),
        }
    elif not _same_file(Path(record["settings_path"]), settings):
        raise ClaudeSettingsError(
            f"qcc claude enable is active for {shown(Path(record['settings_path']))} already; "
            "run 'qcc claude disable' first"
        )
    previous: dict[str, Any] = record["previous"]
    applied: dict[str, str] = record["applied"]
    for key in env:
        if key not in previous:
            previous[key] = current_env.get(key)
        elif key in applied and _digest(current_env.get(key)) != applied[key]:
            notes.append(f"{key} was changed by hand since the last enable; replaced it")

    changes: list[Change] = []
    merged = dict(current_env)
    for key, value in env.items():
        if key not in merged:
            action = "added"
        elif _same(merged[key], value):
            action = "unchanged"
        else:
            action = "replaced"
        merged[key] = value
        applied[key] = _digest(value)
        changes.append(Change(key, action, display_value(key, value)))
    changed = original is None or "env" not in data or any(c.action != "unchanged" for c in changes)
    data["env"] = merged  # replaces the value in place: "env" keeps its position

    if first and original is not None:
        _write_private(copy, original)
    elif first:
        with contextlib.suppress(FileNotFoundError):
            copy.unlink()  # a copy from an older enable/disable round would mislead
    old_record = None if first else _read(backup)
    _write_private(backup, (json.dumps(record, indent=2) + "\n").encode())
    if changed:
        try:
            _write_settings(settings, _render(data, original))
        except ClaudeSettingsError:  # leave no record of a change that did not happen
            with contextlib.suppress(OSError):
                if old_record is None:
                    backup.unlink()
                else:
                    atomic_write(backup, old_record, 0o600)
            raise
    notes.extend(_conflict_notes(data, env))
    return EnableResult(
        settings_path=settings,
        created=original is None,
        first=first,
        changes=tuple(changes),
        backup_path=backup,
        copy_path=copy if copy.exists() else None,
        notes=tuple(notes),
    )


def disable(settings: Path, backup: Path) -> DisableResult:
    """Put back what :func:`enable` replaced, then delete the backup record.

    A key qcc set is restored to its value from before (or removed if it was absent), unless
    it was changed by hand since: then it is left as it is and a note says so. ``"env"`` goes
    away if qcc created it and it is empty; the file goes away if qcc created it and nothing
    is left. The file recorded by ``enable`` is the one restored, whatever ``settings`` says.
    """
    record = _load_backup(backup)
    if record is None:
        raise NotEnabledError("qcc claude enable was not run (no backup found); nothing to restore")
    path = Path(record["settings_path"])
    notes: list[str] = []
    if not _same_file(path, settings):
        notes.append(f"restored {shown(path)}, the file enable changed (not {shown(settings)})")
    raw = _read(path)
    if raw is None:
        notes.append(f"{shown(path)} no longer exists; nothing to restore")
        backup.unlink()
        return DisableResult(path, (), deleted=False, notes=tuple(notes))
    data = _parse(raw, path)
    env: dict[str, Any] | None = data.get("env")
    previous: dict[str, Any] = record["previous"]
    applied: dict[str, str] = record["applied"]
    changes: list[Change] = []
    for key, before in previous.items():
        now = env.get(key) if env is not None else None
        if key not in applied or _digest(now) != applied[key]:
            state = "removed" if env is None or key not in env else "changed"
            notes.append(f"{key} was {state} by hand since enable; left as it is")
            continue
        assert env is not None  # the key qcc wrote is still there
        if before is None:
            del env[key]
            changes.append(Change(key, "removed"))
        else:
            env[key] = before
            changes.append(Change(key, "restored", display_value(key, before)))
    modified = bool(changes)
    if env is not None and not env and not record.get("env_existed", True):
        del data["env"]
        modified = True

    deleted = False
    if not record.get("existed", True) and not data:
        try:
            path.unlink()
        except OSError as exc:
            raise ClaudeSettingsError(
                f"cannot remove {shown(path)} ({exc.strerror or exc}); nothing was restored"
            ) from None
        deleted = True
        if not record.get("dir_existed", True):
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # only if empty: Claude Code may have put files there
    elif modified:
        _write_settings(path, _restored_bytes(data, raw, record, copy_path_for(backup)))
    backup.unlink()
    return DisableResult(path, tuple(changes), deleted=deleted, notes=tuple(notes))


def _restored_bytes(
    data: dict[str, Any], current: bytes, record: Mapping[str, Any], copy: Path
) -> bytes:
    """The original bytes when ``data`` is the original content, else ``data`` as JSON."""
    original = _read(copy) if record.get("original_sha256") else None
    if original is not None and hashlib.sha256(original).hexdigest() == record["original_sha256"]:
        with contextlib.suppress(ClaudeSettingsError):  # it parsed when enable read it
            if _same(_parse(original, copy), data):
                return original
    return _render(data, current)
